//! The HTTP listener: health (`/healthz`, `/livez`, `/readyz`), the operator API (see
//! [`crate::admin`]: behind the admin token here), the index page, the
//! protoo WebSocket on `/`, the broadcaster REST API (`/rooms/…`), the chat history
//! (`/api/rooms/:roomId/chat`) and the demo app (`/app/`).

use std::sync::Arc;

use axum::Json;
use std::path::PathBuf;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use serde_json::{Value, json};

use crate::lifecycle::{Lifecycle, Phase};
use crate::placement::{self, Limits};
use crate::pool::WorkerPool;
use crate::signaling::{self, Signaling};

#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) pool: WorkerPool,
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) signaling: Signaling,
    pub(crate) web_dir: Arc<PathBuf>,
    pub(crate) store: crate::store::Store,
    pub(crate) recordings: Arc<crate::recording::Recordings>,
    pub(crate) cluster: Option<Arc<crate::cluster::Cluster>>,
    /// `[rooms]` limits: admission and readiness.
    pub(crate) limits: Limits,
    /// The graceful drain (`POST /api/drain`).
    pub(crate) drain: Arc<crate::drain::Drain>,
}

pub(crate) fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(app_file))
        .route("/app/{*path}", get(app_file))
        .with_state(state.clone())
        .merge(crate::admin::routes(
            state.clone(),
            crate::admin::Access::Token,
        ))
        .merge(crate::chat::routes(crate::chat::ApiState {
            store: state.store,
            auth: state.signaling.auth.clone(),
        }))
        .merge(crate::whip::routes(state.signaling.clone()))
        .merge(signaling::routes(state.signaling))
}

/// The admin listener: the operator API without a token for reads, and the health endpoints.
pub(crate) fn admin_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .merge(crate::admin::routes(state, crate::admin::Access::Trusted))
}

/// `GET /`: the protoo WebSocket (`?roomId=…&peerId=…`) when it is an upgrade, else the index.
async fn index(State(s): State<AppState>, req: Request) -> Response {
    match signaling::ws_or_none(&s.signaling, req).await {
        Some(r) => r,
        None => Html(include_str!("index.html")).into_response(),
    }
}

/// The demo app bundle (`scripts/build-web`). Paths are resolved inside the web directory only:
/// no `..`, no absolute paths, no hidden files.
async fn app_file(State(s): State<AppState>, path: Option<Path<String>>) -> Response {
    let rel = path.map(|p| p.0).unwrap_or_default();
    let rel = if rel.is_empty() {
        "index.html".to_owned()
    } else {
        rel
    };
    let safe = rel
        .split('/')
        .all(|c| !c.is_empty() && !c.starts_with('.') && !c.contains('\\'));
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    let file = s.web_dir.join(&rel);
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let ct = match file.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("map") | Some("json") => "application/json",
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                Some("ico") => "image/x-icon",
                _ => "application/octet-stream",
            };
            (
                [
                    (header::CONTENT_TYPE, ct),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                bytes,
            )
                .into_response()
        }
        Err(_) if rel == "index.html" => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the demo app is not built in {}: run scripts/build-web (or set --web-dir)",
                s.web_dir.display()
            ),
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// What `/healthz` and `/readyz` report.
struct Health {
    phase: Phase,
    up: usize,
    total: usize,
    /// Every running worker is above its load limit (or none runs), or the node holds
    /// `[limits] rooms_per_node` rooms.
    full: bool,
    /// Why it is full.
    full_reason: String,
}

impl Health {
    fn of(s: &AppState) -> Self {
        let snap = s.pool.snapshot();
        let loads = s.pool.load_tracker().loads(&snap);
        let room_limit = s.signaling.rooms.at_room_limit();
        let full_reason = match room_limit {
            Some(max) => crate::rooms::RoomError::RoomLimit(max),
            None => crate::rooms::RoomError::NodeFull,
        }
        .to_string();
        Self {
            phase: s.lifecycle.phase(),
            up: snap.iter().filter(|w| w.worker.is_some()).count(),
            total: snap.len(),
            full: placement::is_full(&loads, &s.limits) || room_limit.is_some(),
            full_reason,
        }
    }

    /// Alive: running with every worker up.
    fn healthy(&self) -> bool {
        self.phase == Phase::Running && self.up == self.total
    }

    /// Admits new rooms: running, and some worker under its limit.
    fn ready(&self) -> bool {
        self.phase == Phase::Running && self.up > 0 && !self.full
    }

    fn body(&self, status: &str) -> Value {
        json!({
            "status": status,
            "phase": self.phase.as_str(),
            "workers": { "up": self.up, "total": self.total },
            "ready": self.ready(),
            "full": self.full,
        })
    }
}

/// Liveness: 200 while running with every worker up; 503 otherwise (starting, draining, a worker
/// down). A full node is alive (200) with `"ready": false, "full": true`.
async fn healthz(State(s): State<AppState>) -> Response {
    let h = Health::of(&s);
    let (status, word) = if h.healthy() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (status, Json(h.body(word))).into_response()
}

/// Liveness: 200 while the process serves (starting, running, draining: a draining node is
/// alive and must not be restarted), 503 once it stopped. Workers do not count: a dying
/// worker is restarted by the supervisor, not by killing the whole node.
async fn livez(State(s): State<AppState>) -> Response {
    let phase = s.lifecycle.phase();
    let status = if phase < Phase::Stopped {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if status == StatusCode::OK {
        "alive"
    } else {
        "stopped"
    };
    (
        status,
        Json(json!({ "status": word, "phase": phase.as_str() })),
    )
        .into_response()
}

/// Readiness for new rooms: 200 while running with a worker under its load limit (a worker
/// being restarted does not make the node unready while another one runs); 503
/// `{"status":"full"}` when every worker is above it, `{"status":"draining"}` once a drain
/// started, `{"status":"unavailable"}` while starting or without a running worker. A load
/// balancer sends new rooms elsewhere on 503.
async fn readyz(State(s): State<AppState>) -> Response {
    let h = Health::of(&s);
    let (status, word) = if h.ready() {
        (StatusCode::OK, "ready")
    } else if h.phase == Phase::Draining {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if h.full && h.phase == Phase::Running && h.up > 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "full")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let mut body = h.body(word);
    if word == "full" {
        body["reason"] = json!(h.full_reason);
    }
    if let Some(d) = s.drain.deadline() {
        body["drainDeadline"] = json!(d.timestamp_millis());
    }
    (status, Json(body)).into_response()
}
