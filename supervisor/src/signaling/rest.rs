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
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Signaling;
use super::json as js;
use super::requests::{self, ConnectBody, ProduceBody, ProduceDataBody, SctpCapabilities};
use crate::api_error::ApiError;
use crate::auth::{Auth, Role};
use crate::ortc::RtpCapabilities;
use crate::rooms::{BroadcasterTransport, BroadcasterTransportRequest, RoomError};

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
        .route(
            "/rooms/{room_id}/broadcasters/{bid}/transports/{tid}/produce/data",
            post(produce_data),
        )
        .route(
            "/rooms/{room_id}/broadcasters/{bid}/transports/{tid}/consume/data",
            post(consume_data),
        )
        .with_state(s)
}

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        ApiError::new(e.status(), e.to_string())
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

/// The body as `T` (any content type, as the demo scripts send `application/json` anyway); an
/// empty body is an empty object.
fn body<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let v: Value = if raw.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    requests::parse(v).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewBroadcaster {
    id: Option<String>,
    display_name: Option<String>,
    device: Option<Value>,
    rtp_capabilities: Option<RtpCapabilities>,
}

async fn create_broadcaster(
    State(s): State<Signaling>,
    Path(room_id): Path<String>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    let b: NewBroadcaster = body(&raw)?;
    let id =
        b.id.filter(|s| !s.is_empty() && s.len() <= 128)
            .ok_or_else(|| ApiError::bad_request("missing body.id"))?;
    let display_name = b
        .display_name
        .ok_or_else(|| ApiError::bad_request("missing body.displayName"))?;
    let device = b.device.unwrap_or_else(|| json!({}));
    if !device.get("name").is_some_and(Value::is_string) {
        return Err(ApiError::bad_request("missing body.device.name"));
    }
    let role = check(&s, &headers, &room_id, Some(&id))?;
    let mut tries = 0;
    loop {
        let room = s.rooms.get_or_create(&room_id, &id).await?;
        match room
            .add_broadcaster(
                &id,
                &display_name,
                device.clone(),
                b.rtp_capabilities.clone(),
                role,
            )
            .await
        {
            // The room closed between lookup and insert: take a fresh one.
            Err(RoomError::RoomClosed) if tries < 3 => tries += 1,
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
    s.rooms
        .existing(&room_id)
        .await?
        .delete_broadcaster(&bid)
        .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum TransportType {
    Plain,
    Webrtc,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewTransport {
    #[serde(rename = "type")]
    kind: Option<TransportType>,
    comedia: Option<bool>,
    rtcp_mux: Option<bool>,
    sctp_capabilities: Option<SctpCapabilities>,
}

async fn create_transport(
    State(s): State<Signaling>,
    Path((room_id, bid)): Path<(String, String)>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    check(&s, &headers, &room_id, Some(&bid))?;
    let b: NewTransport = body(&raw)?;
    let req = match b.kind {
        Some(TransportType::Webrtc) => BroadcasterTransportRequest::WebRtc {
            sctp: b.sctp_capabilities.map(SctpCapabilities::streams),
        },
        Some(TransportType::Plain) => BroadcasterTransportRequest::Plain {
            comedia: b.comedia.unwrap_or(false),
            rtcp_mux: b.rtcp_mux.unwrap_or(true),
        },
        None => {
            return Err(ApiError::bad_request(
                "'type' must be \"plain\" or \"webrtc\"",
            ));
        }
    };
    let out = s
        .rooms
        .existing(&room_id)
        .await?
        .broadcaster_transport(&bid, req)
        .await?;
    let out = match out {
        BroadcasterTransport::WebRtc(d) => js::webrtc_transport(&d),
        BroadcasterTransport::Plain { dump, ip } => {
            let mut out = json!({
                "id": dump.id.as_str(),
                "ip": ip,
                "port": dump.tuple.local_port,
            });
            if let Some(r) = &dump.rtcp_tuple {
                out["rtcpPort"] = json!(r.local_port);
            }
            out
        }
    };
    Ok(Json(out).into_response())
}

async fn connect_transport(
    State(s): State<Signaling>,
    Path((room_id, bid, tid)): Path<(String, String, String)>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    check(&s, &headers, &room_id, Some(&bid))?;
    let b: ConnectBody = body(&raw)?;
    s.rooms
        .existing(&room_id)
        .await?
        .broadcaster_connect(&bid, &tid, b.into())
        .await?;
    Ok(Json(json!({})).into_response())
}

/// The token may publish in `room_id` as broadcaster `bid`.
fn check_publish(
    s: &Signaling,
    headers: &HeaderMap,
    room_id: &str,
    bid: &str,
) -> Result<(), ApiError> {
    if check(s, headers, room_id, Some(bid))? != Role::Publish {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "this token may not publish".into(),
        ));
    }
    Ok(())
}

async fn produce(
    State(s): State<Signaling>,
    Path((room_id, bid, tid)): Path<(String, String, String)>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    check_publish(&s, &headers, &room_id, &bid)?;
    let b: ProduceBody = body(&raw)?;
    let out = s
        .rooms
        .existing(&room_id)
        .await?
        .broadcaster_produce(&bid, b.on(tid))
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
        .ok_or_else(|| ApiError::bad_request("missing query producerId"))?;
    let out = s
        .rooms
        .existing(&room_id)
        .await?
        .broadcaster_consume(&bid, &tid, &pid, None, None)
        .await?;
    Ok(Json(out).into_response())
}

async fn produce_data(
    State(s): State<Signaling>,
    Path((room_id, bid, tid)): Path<(String, String, String)>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    check_publish(&s, &headers, &room_id, &bid)?;
    let b: ProduceDataBody = body(&raw)?;
    let out = s
        .rooms
        .existing(&room_id)
        .await?
        .broadcaster_produce_data(&bid, b.on(tid))
        .await?;
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsumeDataBody {
    data_producer_id: Option<String>,
}

/// `{dataProducerId}` → `{id, streamId, sctpStreamParameters, label, protocol}`.
async fn consume_data(
    State(s): State<Signaling>,
    Path((room_id, bid, tid)): Path<(String, String, String)>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    check(&s, &headers, &room_id, Some(&bid))?;
    let b: ConsumeDataBody = body(&raw)?;
    let pid = b
        .data_producer_id
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing body.dataProducerId"))?;
    let info = s
        .rooms
        .existing(&room_id)
        .await?
        .broadcaster_consume_data(&bid, &tid, &pid)
        .await?;
    Ok(Json(json!({
        "id": info.id,
        "dataProducerId": info.data_producer_id,
        "streamId": info.sctp_stream_parameters.stream_id,
        "sctpStreamParameters": info.sctp_stream_parameters,
        "label": info.label,
        "protocol": info.protocol,
    }))
    .into_response())
}
