//! The operator API: `/metrics`, `/api/workers`, `/api/cluster`, `/api/drain`,
//! `/api/log-level`, `/api/rooms` and `/api/rooms/:roomId`. Served on the admin listener
//! (`[http] admin_listen`, default 127.0.0.1:3001), where reads need no token, and on the public
//! listener behind the admin token. Requests that change something (drain, log level) need the admin token on
//! both (`--dev` lets everyone in, as everywhere).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferrosfu_fbs::{LogLevel, ResourceUsage, TransportProtocol};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::channel::RequestError;
use crate::http::AppState;
use crate::pool::WorkerInfo;
use crate::worker::Worker;

/// Who reaches the routes of [`routes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// The admin listener: reads without a token.
    Trusted,
    /// The public listener: every route needs the admin token.
    Token,
}

pub(crate) fn routes(state: AppState, access: Access) -> axum::Router {
    let r = axum::Router::new()
        .route("/api/drain", axum::routing::post(drain))
        .route("/api/workers", get(workers))
        .route("/api/cluster", get(cluster))
        .route("/api/log-level", get(log_level).put(set_log_level))
        .route("/api/rooms", get(rooms))
        .route("/api/rooms/{room_id}", get(room))
        .route("/metrics", get(metrics));
    let r = match access {
        Access::Trusted => r,
        Access::Token => {
            r.route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
        }
    };
    r.with_state(state)
}

async fn require_admin(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match authorize(&s, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn authorize(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    Ok(s.signaling.auth.authorize_admin_request(headers, None)?)
}

/// `POST /api/drain` (admin token): starts a graceful drain, as SIGTERM does; 202 with the
/// deadline (Unix ms). The process exits 0 once its rooms are empty or the deadline passed.
async fn drain(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&s, &headers) {
        return e.into_response();
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
        join_times: s.signaling.join_times.clone(),
    };
    let body = crate::metrics::render(s.lifecycle.phase(), &snap, &usage, &extras);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body)
}

/// `GET /api/rooms`: the open rooms with their peer counts, worker cores and creation time.
async fn rooms(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "rooms": s.signaling.rooms.summaries().await }))
}

/// `GET /api/rooms/:roomId`: a room's peers, transports (bit rates, loss), producers (scores),
/// consumers (layers, scores, RTT); 404 for a room not open here.
async fn room(State(s): State<AppState>, Path(room_id): Path<String>) -> Response {
    match s.signaling.rooms.inspect(&room_id).await {
        Some(d) => Json(d).into_response(),
        None => ApiError(
            StatusCode::NOT_FOUND,
            format!("room \"{room_id}\" does not exist"),
        )
        .into_response(),
    }
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

/// `GET /api/log-level`: the supervisor's filter directives and the workers' level and targets.
async fn log_level(State(s): State<AppState>) -> Json<Value> {
    let (level, targets) = s.pool.worker_log();
    Json(json!({
        "level": crate::logging::current_filter(),
        "workerLevel": level.as_str(),
        "workerTargets": targets,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogLevelBody {
    /// The supervisor's filter: a level or tracing directives ("info,channel=debug").
    level: Option<String>,
    /// The workers' level: trace|debug|info|warn|error.
    worker_level: Option<String>,
    /// Worker targets logged at `worker_level` (others at warn); empty: every target.
    worker_targets: Option<Vec<String>>,
}

/// Longest filter accepted: directives are short; this bounds what a client makes us parse.
const MAX_FILTER_LEN: usize = 1024;

/// `PUT /api/log-level` (admin token) `{"level"?, "workerLevel"?, "workerTargets"?}`: changes
/// the supervisor's filter and/or every worker's level and targets (kept for restarted
/// workers) at once; answers as `GET`. 400 on a bad filter or level, nothing changed then.
async fn set_log_level(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<LogLevelBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(e) = authorize(&s, &headers) {
        return e.into_response();
    }
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return ApiError::bad_request(e.body_text()).into_response(),
    };
    if b.level.is_none() && b.worker_level.is_none() && b.worker_targets.is_none() {
        return ApiError::bad_request("give level, workerLevel and/or workerTargets")
            .into_response();
    }
    if b.level.as_ref().is_some_and(|l| l.len() > MAX_FILTER_LEN)
        || b.worker_targets
            .as_ref()
            .is_some_and(|t| t.len() > 64 || t.iter().any(|t| t.len() > 128))
    {
        return ApiError::bad_request("filter too long").into_response();
    }
    let (cur_level, cur_targets) = s.pool.worker_log();
    let worker_level = match b.worker_level.as_deref().map(str::parse::<LogLevel>) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(_)) => {
            return ApiError::bad_request("workerLevel: one of trace, debug, info, warn, error")
                .into_response();
        }
    };
    if let Some(targets) = &b.worker_targets {
        if let Some(bad) = targets.iter().find(|t| {
            t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        }) {
            return ApiError::bad_request(format!("workerTargets: bad target {bad:?}"))
                .into_response();
        }
    }
    // Check the supervisor's filter before changing anything.
    if let Some(level) = &b.level {
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(level) {
            return ApiError::bad_request(format!("level {level:?}: {e}")).into_response();
        }
    }
    if worker_level.is_some() || b.worker_targets.is_some() {
        let level = worker_level.unwrap_or(cur_level);
        let targets = b.worker_targets.clone().unwrap_or(cur_targets);
        if let Err(e) = s.pool.set_worker_log(level, targets).await {
            return ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("workers: {e}"))
                .into_response();
        }
    }
    if let Some(level) = &b.level {
        if let Err(e) = crate::logging::set_filter(level) {
            return ApiError(StatusCode::SERVICE_UNAVAILABLE, e).into_response();
        }
    }
    tracing::info!(
        level = b.level.as_deref(),
        worker_level = b.worker_level.as_deref(),
        "log levels changed"
    );
    log_level(State(s)).await.into_response()
}
