//! The captions REST API (JSON; errors `{"error": …}`; admin token for the room, or `--dev`):
//!
//! - `POST /api/rooms/:roomId/transcription` → 201 the tap's state (200 when it ran already);
//!   body `{"action": "stop"}` stops it instead (for clients that only POST)
//! - `DELETE /api/rooms/:roomId/transcription` → the stopped tap's state (404 when none)
//! - `GET /api/rooms/:roomId/transcription` → `{roomId, active, startedAt, engine,
//!   transcribers: [{producerId, peerId, pid, restarts}], waiting: [producerId]}`
//! - `GET /api/rooms/:roomId/transcript[?limit=N]` → `{roomId, captions: [{id, peerId,
//!   displayName, producerId, text, startedAt, endedAt}]}`: the stored final captions of the
//!   room's meeting, oldest first (at most N, default 1000, at most 10000)

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Captions, CaptionsError};
use crate::api_error::ApiError;
use crate::auth::Auth;
use crate::store::Store;

#[derive(Clone, Debug)]
pub(crate) struct ApiState {
    pub captions: Arc<Captions>,
    pub auth: Arc<Auth>,
    pub store: Store,
}

pub(crate) fn routes(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route(
            "/api/rooms/{room_id}/transcription",
            post(start).delete(stop).get(state_of),
        )
        .route(
            "/api/rooms/{room_id}/transcript",
            axum::routing::get(transcript),
        )
        .with_state(state)
}

impl From<CaptionsError> for ApiError {
    fn from(e: CaptionsError) -> Self {
        ApiError::new(e.0, e.1)
    }
}

fn check(s: &ApiState, headers: &HeaderMap, room: &str) -> Result<(), ApiError> {
    Ok(s.auth.authorize_admin_request(headers, Some(room))?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    action: Option<String>,
}

async fn start(
    State(s): State<ApiState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Body>>,
) -> Result<Response, ApiError> {
    check(&s, &headers, &room)?;
    match body.and_then(|Json(b)| b.action).as_deref() {
        None | Some("start") => {
            let was = s.captions.state(&room)["active"] == true;
            let v = s.captions.start(&room).await?;
            let code = if was {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((code, Json(v)).into_response())
        }
        Some("stop") => Ok(Json(s.captions.stop(&room)?).into_response()),
        Some(other) => Err(ApiError::bad_request(format!(
            "action {other:?}: use \"start\" or \"stop\""
        ))),
    }
}

async fn stop(
    State(s): State<ApiState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check(&s, &headers, &room)?;
    Ok(Json(s.captions.stop(&room)?))
}

async fn state_of(
    State(s): State<ApiState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check(&s, &headers, &room)?;
    Ok(Json(s.captions.state(&room)))
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn transcript(
    State(s): State<ApiState>,
    Path(room): Path<String>,
    Query(q): Query<Limit>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check(&s, &headers, &room)?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit: 1 to 10000"));
    }
    let rows = s.store.transcript(&room, limit).await?;
    let captions: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "peerId": r.peer_id,
                "displayName": r.display_name,
                "producerId": r.producer_id,
                "text": r.text,
                "startedAt": r.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "endedAt": r.ended_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            })
        })
        .collect();
    Ok(Json(json!({ "roomId": room, "captions": captions })))
}
