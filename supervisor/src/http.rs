//! The HTTP listener: operations (`/healthz`, `/readyz`, `/api/workers`, `/metrics`), the index page, the
//! protoo WebSocket on `/`, the broadcaster REST API (`/rooms/…`), the chat history
//! (`/api/rooms/:roomId/chat`) and the demo app (`/app/`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use std::path::PathBuf;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use ferrosfu_fbs::{ResourceUsage, TransportProtocol};

use crate::channel::RequestError;
use crate::worker::Worker;
use serde_json::{Value, json};

use crate::lifecycle::{Lifecycle, Phase};
use crate::placement::{self, Limits};
use crate::pool::{WorkerInfo, WorkerPool};
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
        .route("/api/drain", axum::routing::post(drain))
        .route("/api/workers", get(workers))
        .route("/api/cluster", get(cluster))
        .route("/metrics", get(metrics))
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(app_file))
        .route("/app/{*path}", get(app_file))
        .with_state(state.clone())
        .merge(crate::chat::routes(crate::chat::ApiState {
            store: state.store,
            auth: state.signaling.auth.clone(),
        }))
        .merge(crate::whip::routes(state.signaling.clone()))
        .merge(signaling::routes(state.signaling))
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
    /// Every running worker is above its load limit (or none runs).
    full: bool,
}

impl Health {
    fn of(s: &AppState) -> Self {
        let snap = s.pool.snapshot();
        let loads = s.pool.load_tracker().loads(&snap);
        Self {
            phase: s.lifecycle.phase(),
            up: snap.iter().filter(|w| w.worker.is_some()).count(),
            total: snap.len(),
            full: placement::is_full(&loads, &s.limits),
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
        body["reason"] = json!(crate::rooms::RoomError::NodeFull.to_string());
    }
    if let Some(d) = s.drain.deadline() {
        body["drainDeadline"] = json!(d.timestamp_millis());
    }
    (status, Json(body)).into_response()
}

/// `POST /api/drain` (admin token): starts a graceful drain, as SIGTERM does; 202 with the
/// deadline (Unix ms). The process exits 0 once its rooms are empty or the deadline passed.
async fn drain(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Err(e) = s.signaling.auth.authorize_admin_request(&headers, None) {
        return crate::api_error::ApiError::from(e).into_response();
    }
    let deadline = s.drain.start("POST /api/drain").await;
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "draining", "deadline": deadline.timestamp_millis() })),
    )
        .into_response()
}

/// One answer from every running worker, asked in parallel; a worker that does not answer
/// within a second is reported without it.
async fn ask_workers<T, F, Fut>(snap: &[WorkerInfo], ask: F) -> Vec<Option<T>>
where
    F: Fn(Worker) -> Fut,
    Fut: Future<Output = Result<T, RequestError>> + Send + 'static,
    T: Send + 'static,
{
    let asks = snap.iter().map(|info| {
        let asked = info.worker.clone().map(&ask);
        async move {
            tokio::time::timeout(Duration::from_secs(1), asked?)
                .await
                .ok()?
                .ok()
        }
    });
    futures_join_all(asks).await
}

async fn usage_of(snap: &[WorkerInfo]) -> Vec<Option<ResourceUsage>> {
    ask_workers(snap, |w| async move { w.get_resource_usage().await }).await
}

async fn futures_join_all<F: Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("usage query does not panic"));
    }
    out
}

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

async fn workers(State(s): State<AppState>) -> Json<Vec<Value>> {
    let snap = s.pool.snapshot();
    let usage = usage_of(&snap).await;
    let loads = s.pool.load_tracker().loads(&snap);
    let list = snap
        .iter()
        .zip(usage)
        .zip(loads)
        .map(|((info, u), load)| {
            json!({
                "pid": info.worker.as_ref().map(|w| w.pid()),
                "core": info.core,
                "started_at": info.started_at.map(rfc3339),
                "restarts": info.restarts,
                "up": info.worker.is_some(),
                // CPU share of one core over the last 5 s (0-1) and open consumers.
                "load": {
                    "cpu": load.cpu,
                    "consumers": load.consumers,
                    "pending": load.pending,
                },
                // Where its WebRtcServer listens (null without one).
                "webrtc_server": info.webrtc_server.as_ref().map(|s| {
                    s.listen_infos()
                        .iter()
                        .map(|l| json!({
                            "protocol": match l.protocol {
                                TransportProtocol::Udp => "udp",
                                TransportProtocol::Tcp => "tcp",
                            },
                            "ip": l.ip,
                            "port": l.port,
                        }))
                        .collect::<Vec<_>>()
                }),
                "rusage": u.map(|u| json!({
                    "ru_utime_us": u.ru_utime,
                    "ru_stime_us": u.ru_stime,
                    "ru_maxrss_kib": u.ru_maxrss,
                    "ru_minflt": u.ru_minflt,
                    "ru_majflt": u.ru_majflt,
                    "ru_inblock": u.ru_inblock,
                    "ru_oublock": u.ru_oublock,
                    "ru_nvcsw": u.ru_nvcsw,
                    "ru_nivcsw": u.ru_nivcsw,
                })),
            })
        })
        .collect();
    Json(list)
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let snap = s.pool.snapshot();
    let usage: Vec<_> = snap
        .iter()
        .zip(usage_of(&snap).await)
        .filter_map(|(i, u)| Some((i.core, u?)))
        .collect();
    let media: Vec<_> = snap
        .iter()
        .zip(ask_workers(&snap, |w| async move { w.get_media_counters().await }).await)
        .filter_map(|(i, m)| Some((i.core, m?)))
        .collect();
    let extras = crate::metrics::Extras {
        media,
        loads: s.pool.load_tracker().loads(&snap),
        store: s.store.stats(),
        recordings_active: s.recordings.active_count(),
        recordings_finished: s.recordings.finished_counts(),
        cluster: s.cluster.clone(),
        rooms: s.signaling.rooms.stats().await,
        turn: s.signaling.turn.clone(),
    };
    let body = crate::metrics::render(s.lifecycle.phase(), &snap, &usage, &extras);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body)
}

/// `GET /api/cluster`: the live nodes with their load and heartbeat age (`{"enabled": false}`
/// when clustering is off).
async fn cluster(State(s): State<AppState>) -> Json<Value> {
    let Some(c) = &s.cluster else {
        return Json(json!({ "enabled": false }));
    };
    let nodes = c.nodes_now().await;
    Json(json!({
        "enabled": true,
        "nodeId": c.node_id(),
        "redisUp": c.stats().redis_up(),
        "nodes": nodes,
    }))
}
