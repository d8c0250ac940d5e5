//! The operators' chat REST endpoint (JSON; errors `{"error": …}` like the recordings API):
//!
//! - `GET /api/rooms/:roomId/chat[?limit=N]` → `{"roomId", "messages": [ChatMessage…]}`: the
//!   last N messages (default [`HISTORY_LEN`], at most [`MAX_LIMIT`]) of the room's meeting,
//!   oldest first, from the store (so a closed room's chat and a restarted supervisor's too).
//!
//! Tokens: `Authorization: Bearer` with role `admin` for the room (or room `"*"`); `--dev`
//! lets requests without a token in. 401 without or with a bad token, 403 for a token of
//! another room or role, 404 when no meeting has this room id, 400 for a bad `limit`.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::{ChatMessage, HISTORY_LEN};
use crate::api_error::ApiError;
use crate::auth::Auth;
use crate::store::Store;

/// The most messages one request returns.
pub(crate) const MAX_LIMIT: usize = 1000;

#[derive(Clone, Debug)]
pub(crate) struct ApiState {
    pub store: Store,
    pub auth: Arc<Auth>,
}

pub(crate) fn routes(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/api/rooms/{room_id}/chat", get(history))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatLog {
    room_id: String,
    messages: Vec<ChatMessage>,
}

async fn history(
    State(s): State<ApiState>,
    Path(room_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<ChatLog>, ApiError> {
    s.auth.authorize_admin_request(&headers, Some(&room_id))?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = match q.limit {
        None => HISTORY_LEN,
        Some(n @ 1..=MAX_LIMIT) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit {n}: give 1 to {MAX_LIMIT}"
            )));
        }
    };
    if s.store.meeting(&room_id).await?.is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("room \"{room_id}\" has no meeting"),
        ));
    }
    let rows = s.store.chat_history(&room_id, limit).await?;
    Ok(Json(ChatLog {
        room_id,
        messages: rows.into_iter().map(ChatMessage::from).collect(),
    }))
}

#[cfg(test)]
mod tests;
