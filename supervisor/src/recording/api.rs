//! The recordings REST API (JSON; errors `{"error": …}`):
//!
//! - `POST /api/rooms/:roomId/recordings` `{"peerId"}` | `{"producerIds": […]}` → 201 recording
//! - `GET /api/recordings[?room=ROOM]` → recordings, newest first
//! - `GET /api/recordings/:id` → recording
//! - `POST /api/recordings/:id/stop` → the recording once finalized
//! - `GET /api/recordings/:id/file` → the file (single byte ranges supported); once uploaded
//!   to object storage, 307 to a presigned URL of the object (the local file is served only
//!   while the upload waits, or when the link cannot be made and the file was kept)
//!
//! Tokens: `Authorization: Bearer` with role `admin` for the room (or room `"*"`); `--dev`
//! lets requests without a token in.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{RecError, Recordings, Selection, View};
use crate::api_error::ApiError;
use crate::auth::Auth;
use crate::store::RecordingStatus;

#[derive(Clone, Debug)]
pub(crate) struct ApiState {
    pub recordings: Arc<Recordings>,
    pub auth: Arc<Auth>,
}

pub(crate) fn routes(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/api/rooms/{room_id}/recordings", post(start))
        .route("/api/recordings", get(list))
        .route("/api/recordings/{id}", get(one))
        .route("/api/recordings/{id}/stop", post(stop))
        .route("/api/recordings/{id}/file", get(file))
        .with_state(state)
}

impl From<RecError> for ApiError {
    fn from(e: RecError) -> Self {
        ApiError::new(e.status, e.reason)
    }
}

fn check(s: &ApiState, headers: &HeaderMap, room: Option<&str>) -> Result<(), ApiError> {
    Ok(s.auth.authorize_admin_request(headers, room)?)
}

fn not_found(id: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("recording \"{id}\" not found"),
    )
}

/// A recording the caller may see: 401 without a token (outside dev mode), 404 when unknown,
/// else the token is checked against the recording's room.
async fn visible(s: &ApiState, headers: &HeaderMap, id: &str) -> Result<View, ApiError> {
    if Auth::bearer(headers).is_none() {
        check(s, headers, None)?;
    }
    let v = s.recordings.get(id).await?.ok_or_else(|| not_found(id))?;
    check(s, headers, Some(&v.room_id))?;
    Ok(v)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartBody {
    peer_id: Option<String>,
    producer_ids: Option<Vec<String>>,
}

async fn start(
    State(s): State<ApiState>,
    Path(room_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    check(&s, &headers, Some(&room_id))?;
    let b: StartBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))?;
    let sel = match (b.peer_id, b.producer_ids) {
        (Some(p), None) if !p.is_empty() => Selection {
            peer_id: Some(p),
            producer_ids: Vec::new(),
        },
        (None, Some(ids)) if !ids.is_empty() && ids.iter().all(|i| !i.is_empty()) => Selection {
            peer_id: None,
            producer_ids: ids,
        },
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "give either 'peerId' (a string) or 'producerIds' (a non-empty array)".into(),
            ));
        }
    };
    match s.recordings.start(&room_id, sel).await {
        Ok(v) => Ok((StatusCode::CREATED, Json(v.to_json())).into_response()),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut body = json!({ "error": e.reason });
            if let Some(id) = e.id {
                body["id"] = json!(id);
            }
            Ok((status, Json(body)).into_response())
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    room: Option<String>,
}

async fn list(
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check(&s, &headers, q.room.as_deref())?;
    let list = s.recordings.list(q.room.as_deref()).await?;
    Ok(Json(Value::Array(list.iter().map(View::to_json).collect())))
}

async fn one(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(visible(&s, &headers, &id).await?.to_json()))
}

async fn stop(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    visible(&s, &headers, &id).await?;
    let v = s
        .recordings
        .stop(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(v.to_json()))
}

/// A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range within `len`; None for anything else.
fn byte_range(h: &str, len: u64) -> Option<(u64, u64)> {
    let spec = h.strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

async fn file(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = visible(&s, &headers, &id).await?;
    if let Some(url) = &v.storage_url {
        match s.recordings.download_link(url).await {
            Ok(link) => {
                return Ok((
                    StatusCode::TEMPORARY_REDIRECT,
                    [
                        (header::LOCATION, link),
                        (header::CACHE_CONTROL, "no-store".into()),
                    ],
                )
                    .into_response());
            }
            Err(e) if !std::path::Path::new(&v.path).is_file() => {
                return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, e));
            }
            Err(e) => {
                tracing::warn!(target: "recording", recording = %id, "serving the local copy: {e}");
            }
        }
    }
    if !matches!(v.status, RecordingStatus::Done | RecordingStatus::Uploading) {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("recording \"{id}\" is {}, not done", v.status.as_str()),
        ));
    }
    // The path is the one this supervisor generated and stored, never a request's.
    let mut f = tokio::fs::File::open(&v.path)
        .await
        .map_err(|e| ApiError(StatusCode::GONE, format!("file: {e}")))?;
    let len = f
        .metadata()
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("file: {e}")))?
        .len();
    let mime = v
        .mime_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let name = std::path::Path::new(&v.path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let range = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .map(|r| byte_range(r, len));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(None) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response());
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    f.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("file: {e}")))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f.take(count)));
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, mime)
        .header(header::CONTENT_LENGTH, count)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{name}\""),
        );
    if status == StatusCode::PARTIAL_CONTENT {
        r = r.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    r.body(body)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(byte_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(byte_range("bytes=100-", 100), None);
        assert_eq!(byte_range("bytes=9-0", 100), None);
        assert_eq!(byte_range("bytes=0-1,3-4", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
        assert_eq!(byte_range("bytes=0-", 0), None);
    }
}
