//! mediasoup-demo's broadcaster REST API (the legacy shape its `broadcasters/*.sh` scripts use),
//! JSON bodies, on the HTTP listener. Tokens: `Authorization: Bearer <jwt>` with `room` = the
//! room and `peer` = the broadcaster id. Errors are JSON `{ "error": … }` with 400/401/403/404/
//! 409/500.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ProtooError, Signaling};
use crate::auth::{Auth, Role};
use crate::http::ApiError;
use crate::ortc::RtpCapabilities;

pub(super) fn routes(s: Signaling) -> axum::Router {
    axum::Router::new()
        .route("/rooms/{room_id}", get(room_info))
        .route("/rooms/{room_id}/broadcasters", post(create_broadcaster))
        .route(
            "/rooms/{room_id}/broadcasters/{bid}",
            delete(delete_broadcaster),
        )
        .route(
            "/rooms/{room_id}/broadcasters/{bid}/transports",
            post(create_transport),
        )
        .route(
            "/rooms/{room_id}/broadcasters/{bid}/transports/{tid}/connect",
            post(connect_transport),
        )
        .route(
            "/rooms/{room_id}/broadcasters/{bid}/transports/{tid}/producers",
            post(produce),
        )
        .route(
            "/rooms/{room_id}/broadcasters/{bid}/transports/{tid}/consume",
            post(consume),
        )
        .with_state(s)
}

impl From<ProtooError> for ApiError {
    fn from(e: ProtooError) -> Self {
        ApiError(
            StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.reason,
        )
    }
}

type ApiResult = Result<Response, ApiError>;

fn check(
    s: &Signaling,
    headers: &HeaderMap,
    room: &str,
    peer: Option<&str>,
) -> Result<Role, ApiError> {
    s.auth.check_origin(headers)?;
    Ok(s.auth.authorize(Auth::bearer(headers), room, peer)?)
}

/// Body as JSON (any content type, as the demo scripts send `application/json` anyway).
fn body(raw: &str) -> Result<Value, ApiError> {
    if raw.trim().is_empty() {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))?;
    if !v.is_object() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object".into(),
        ));
    }
    Ok(v)
}

async fn room_of(
    s: &Signaling,
    room_id: &str,
) -> Result<std::sync::Arc<super::room::Room>, ApiError> {
    s.rooms.get(room_id).await.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("room \"{room_id}\" does not exist"),
        )
    })
}

/// The room's router RTP capabilities (every room has the same ones).
async fn room_info(
    State(s): State<Signaling>,
    Path(room_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    check(&s, &headers, &room_id, None)?;
    let caps = match s.rooms.get(&room_id).await {
        Some(r) => r.rtp_capabilities().clone(),
        None => s.rooms.rtp_capabilities().clone(),
    };
    Ok(Json(caps).into_response())
}

async fn create_broadcaster(
    State(s): State<Signaling>,
    Path(room_id): Path<String>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    let b = body(&raw)?;
    let id = b
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "missing body.id".into()))?
        .to_owned();
    let display_name = b
        .get("displayName")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "missing body.displayName".into()))?
        .to_owned();
    let device = b.get("device").cloned().unwrap_or_else(|| json!({}));
    if !device.get("name").is_some_and(Value::is_string) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "missing body.device.name".into(),
        ));
    }
    let caps: Option<RtpCapabilities> = match b.get("rtpCapabilities") {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("invalid body.rtpCapabilities: {e}"),
            )
        })?),
    };
    let role = check(&s, &headers, &room_id, Some(&id))?;
    let mut tries = 0;
    loop {
        let room = s.rooms.get_or_create(&room_id, &id).await?;
        match room
            .add_broadcaster(&id, &display_name, device.clone(), caps.clone(), role)
            .await
        {
            // The room closed between lookup and insert: take a fresh one.
            Err(e) if e.code == 503 && tries < 3 => tries += 1,
            r => return Ok((StatusCode::OK, Json(r?)).into_response()),
        }
    }
}

async fn delete_broadcaster(
    State(s): State<Signaling>,
    Path((room_id, bid)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    check(&s, &headers, &room_id, Some(&bid))?;
    room_of(&s, &room_id)
        .await?
        .delete_broadcaster(&bid)
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn create_transport(
    State(s): State<Signaling>,
    Path((room_id, bid)): Path<(String, String)>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    check(&s, &headers, &room_id, Some(&bid))?;
    let b = body(&raw)?;
    let out = room_of(&s, &room_id)
        .await?
        .broadcaster_transport(&bid, &b)
        .await?;
    Ok(Json(out).into_response())
}

async fn connect_transport(
    State(s): State<Signaling>,
    Path((room_id, bid, tid)): Path<(String, String, String)>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    check(&s, &headers, &room_id, Some(&bid))?;
    let b = body(&raw)?;
    room_of(&s, &room_id)
        .await?
        .broadcaster_connect(&bid, &tid, &b)
        .await?;
    Ok(Json(json!({})).into_response())
}

async fn produce(
    State(s): State<Signaling>,
    Path((room_id, bid, tid)): Path<(String, String, String)>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    if check(&s, &headers, &room_id, Some(&bid))? != Role::Publish {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "this token may not publish".into(),
        ));
    }
    let b = body(&raw)?;
    let out = room_of(&s, &room_id)
        .await?
        .broadcaster_produce(&bid, &tid, &b)
        .await?;
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsumeQuery {
    producer_id: Option<String>,
}

async fn consume(
    State(s): State<Signaling>,
    Path((room_id, bid, tid)): Path<(String, String, String)>,
    Query(q): Query<ConsumeQuery>,
    headers: HeaderMap,
) -> ApiResult {
    check(&s, &headers, &room_id, Some(&bid))?;
    let pid = q
        .producer_id
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "missing query producerId".into()))?;
    let out = room_of(&s, &room_id)
        .await?
        .broadcaster_consume(&bid, &tid, &pid)
        .await?;
    Ok(Json(out).into_response())
}
