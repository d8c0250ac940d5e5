//! The WHIP and WHEP endpoints and their sessions.
//!
//! ```text
//! POST   /whip/:roomId                   application/sdp offer → 201 answer, Location, ETag, Link
//! POST   /whep/:roomId[?peer=ID]         the same for a player (a peer's, else the speaker's media)
//! PATCH  /whip|whep/:roomId/:resource    application/trickle-ice-sdpfrag: 204 (trickle), or 200
//!                                        with new ICE credentials (ICE restart)
//! DELETE /whip|whep/:roomId/:resource    200: the peer leaves the room
//! ```
//!
//! `Authorization: Bearer <ferrosfu JWT>` for the room (role `publish` for WHIP); the peer id is
//! the token's `peer` (or a new `whip-…`/`whep-…` id without one, e.g. in `--dev`). A resource
//! URL is an unguessable capability (128 random bits); a token sent with PATCH/DELETE must be
//! valid for the room too. Errors are JSON `{"error"}` with 400 (malformed or unusable SDP),
//! 401/403 (token), 404, 409 (peer id taken), 412 (`If-Match`), 413, 415 (content type), 503.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ferrosfu_fbs::{DtlsFingerprint, DtlsParameters, DtlsRole, DtlsState, IceState};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::answer::{self, Local, Media};
use super::negotiate;
use super::sdp::{self, MAX_SDP_BYTES, Offer, SdpError};
use crate::api_error::ApiError;
use crate::auth::{Auth, Role};
use crate::rooms::{BroadcasterTransport, BroadcasterTransportRequest, Connect, Produce, Room};
use crate::signaling::Signaling;

/// Most WHIP/WHEP sessions a node keeps (each is a peer; room limits apply too).
const MAX_SESSIONS: usize = 10_000;
/// A session whose transport never connected, or stayed disconnected/failed, this long is
/// ended (the client vanished without DELETE).
const ABANDONED_AFTER: Duration = Duration::from_secs(30);
const REAP_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Whip,
    Whep,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Whip => "whip",
            Kind::Whep => "whep",
        }
    }
}

#[derive(Clone, Debug)]
struct Session {
    kind: Kind,
    room: String,
    peer: String,
    transport: String,
    /// The client's current ICE ufrag: a PATCH with another one is an ICE restart.
    remote_ufrag: String,
    etag: String,
    first_mid: Option<String>,
    /// Since when the transport is not up (None: it is).
    down_since: Option<tokio::time::Instant>,
}

#[derive(Clone, Debug)]
pub(crate) struct WhipState {
    s: Signaling,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

pub(crate) fn routes(s: Signaling) -> axum::Router {
    let state = WhipState {
        s,
        sessions: Arc::default(),
    };
    tokio::spawn(reap(Arc::downgrade(&state.sessions), state.s.clone()));
    axum::Router::new()
        .route("/whip/{room_id}", post(whip))
        .route("/whep/{room_id}", post(whep))
        .route(
            "/whip/{room_id}/{resource}",
            axum::routing::patch(patch).delete(delete),
        )
        .route(
            "/whep/{room_id}/{resource}",
            axum::routing::patch(patch).delete(delete),
        )
        .layer(DefaultBodyLimit::max(MAX_SDP_BYTES))
        .with_state(state)
}

impl From<SdpError> for ApiError {
    fn from(e: SdpError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

fn content_type_is(headers: &HeaderMap, want: &str) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = ct.split(';').next().unwrap_or("").trim();
    if base.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {want}"),
        ))
    }
}

/// The token's role and the peer id to use (the token's, else a new one).
fn authorize(
    s: &Signaling,
    headers: &HeaderMap,
    room: &str,
    kind: Kind,
) -> Result<(Role, String), ApiError> {
    s.auth.check_origin(headers)?;
    let (role, peer) = s.auth.authorize_room(Auth::bearer(headers), room)?;
    if kind == Kind::Whip && role != Role::Publish {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "this token may not publish".into(),
        ));
    }
    let id = peer.unwrap_or_else(|| format!("{}-{}", kind.path(), random_hex(6)));
    Ok((role, id))
}

/// `bytes` random bytes from the system's CSPRNG as hex (resource URLs are capabilities).
fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("system randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Deserialize)]
struct WhepQuery {
    peer: Option<String>,
}

async fn whip(
    State(w): State<WhipState>,
    Path(room_id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    content_type_is(&headers, "application/sdp")?;
    let (role, peer) = authorize(&w.s, &headers, &room_id, Kind::Whip)?;
    let offer = sdp::parse_offer(&body)?;
    // Everything the offer asks is checked before the room sees the peer.
    let caps = w.s.rooms.rtp_capabilities();
    let mut plan = Vec::with_capacity(offer.sections.len());
    for (i, sec) in offer.sections.iter().enumerate() {
        plan.push(
            if sec.rejected || sec.kind().is_none() || !sec.dir.sends() {
                None
            } else {
                Some(negotiate::producer_parameters(i, sec, caps)?)
            },
        );
    }
    if plan.iter().all(Option::is_none) {
        return Err(SdpError::Unusable("the offer sends no audio or video".into()).into());
    }
    let device = json!({"name": "WHIP", "flag": "whip"});
    let room = join(&w, &room_id, &peer, "WHIP", device, None, role).await?;
    let result = async {
        let (tid, local) = transport(&room, &peer, &offer).await?;
        let mut media = Vec::with_capacity(plan.len());
        for p in plan {
            media.push(match p {
                None => Media::Rejected,
                Some((kind, rtp_parameters)) => {
                    room.broadcaster_produce(
                        &peer,
                        Produce {
                            transport_id: tid.clone(),
                            kind,
                            rtp_parameters: rtp_parameters.clone(),
                            app_data: json!({"whip": true}),
                            paused: false,
                        },
                    )
                    .await?;
                    Media::Recv(rtp_parameters)
                }
            });
        }
        Ok::<_, ApiError>((tid, answer::answer(&offer, &local, &media)))
    }
    .await;
    finish(&w, Kind::Whip, &room, &room_id, peer, &offer, result).await
}

async fn whep(
    State(w): State<WhipState>,
    Path(room_id): Path<String>,
    Query(q): Query<WhepQuery>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    content_type_is(&headers, "application/sdp")?;
    let (role, peer) = authorize(&w.s, &headers, &room_id, Kind::Whep)?;
    let offer = sdp::parse_offer(&body)?;
    let (caps, translation) =
        negotiate::receive_capabilities(&offer, w.s.rooms.rtp_capabilities())?;
    let translate = move |kind, p: &mut crate::ortc::RtpParameters| translation.apply(kind, p);
    let existing = w.s.rooms.existing(&room_id).await?;
    let (source, mut producers) = existing
        .whep_source(q.peer.as_deref().filter(|p| !p.is_empty()), &peer)
        .await?;
    let device = json!({"name": "WHEP", "flag": "whep"});
    let room = join(&w, &room_id, &peer, "WHEP player", device, Some(caps), role).await?;
    let result = async {
        let (tid, local) = transport(&room, &peer, &offer).await?;
        let mut media = Vec::with_capacity(offer.sections.len());
        for sec in &offer.sections {
            let wanted = sec.kind().filter(|_| !sec.rejected && sec.dir.receives());
            let (Some(kind), Some(mid)) = (wanted, sec.mid.as_deref()) else {
                media.push(Media::Rejected);
                continue;
            };
            let Some(at) = producers.iter().position(|(_, k)| *k == kind) else {
                media.push(Media::Inactive);
                continue;
            };
            let (pid, _) = producers.remove(at);
            match room
                .broadcaster_consume(&peer, &tid, &pid, Some(mid), Some(&translate))
                .await
            {
                Ok(c) => media.push(Media::Send {
                    track: c.id.clone(),
                    params: c.rtp_parameters,
                    stream: source.clone(),
                }),
                // A codec the player does not have: that section stays empty.
                Err(e) if e.status() == 400 => media.push(Media::Inactive),
                Err(e) => return Err(e.into()),
            }
        }
        if !media.iter().any(|m| matches!(m, Media::Send { .. })) {
            return Err(SdpError::Unusable(format!(
                "the offer receives none of peer \"{source}\"'s media (kinds or codecs)"
            ))
            .into());
        }
        Ok::<_, ApiError>((tid, answer::answer(&offer, &local, &media)))
    }
    .await;
    finish(&w, Kind::Whep, &room, &room_id, peer, &offer, result).await
}

/// Adds the session's peer as a broadcaster (a fresh room when the one found closes meanwhile).
async fn join(
    w: &WhipState,
    room_id: &str,
    peer: &str,
    name: &str,
    device: serde_json::Value,
    caps: Option<crate::ortc::RtpCapabilities>,
    role: Role,
) -> Result<Arc<Room>, ApiError> {
    if w.sessions.lock().await.len() >= MAX_SESSIONS {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WHIP/WHEP sessions on this node".into(),
        ));
    }
    for _ in 0..3 {
        let room = w.s.rooms.get_or_create(room_id, peer).await?;
        match room
            .add_broadcaster(peer, name, device.clone(), caps.clone(), role)
            .await
        {
            Err(crate::rooms::RoomError::RoomClosed) => continue,
            r => {
                r?;
                return Ok(room);
            }
        }
    }
    Err(ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the room keeps closing".into(),
    ))
}

/// The session's WebRtcTransport, connected with the offer's DTLS parameters, and ferrosfu's
/// side of it for the answer.
async fn transport(
    room: &Arc<Room>,
    peer: &str,
    offer: &Offer,
) -> Result<(String, Local), ApiError> {
    let BroadcasterTransport::WebRtc(dump) = room
        .broadcaster_transport(peer, BroadcasterTransportRequest::WebRtc { sctp: None })
        .await?
    else {
        return Err(ApiError::new(500, "not a WebRTC transport"));
    };
    let tid = dump.id.as_str().to_owned();
    // ferrosfu answers passive (the client is the DTLS client) unless the client is passive.
    let role = match answer::local_setup(offer.setup) {
        "passive" => DtlsRole::Client,
        _ => DtlsRole::Server,
    };
    let dtls = DtlsParameters {
        role,
        fingerprints: offer
            .fingerprints
            .iter()
            .map(|(algorithm, value)| DtlsFingerprint {
                algorithm: algorithm.clone(),
                value: value.to_ascii_uppercase(),
            })
            .collect(),
    };
    room.broadcaster_connect(peer, &tid, Connect::WebRtc(dtls))
        .await?;
    let local = Local {
        ice_ufrag: dump.ice_parameters.username_fragment.clone(),
        ice_pwd: dump.ice_parameters.password.clone(),
        candidates: dump.ice_candidates.clone(),
        fingerprints: dump
            .dtls_parameters
            .fingerprints
            .iter()
            .filter(|f| f.algorithm == "sha-256")
            .map(|f| (f.algorithm.clone(), f.value.clone()))
            .collect(),
    };
    Ok((tid, local))
}

/// Answers 201 with the session, or undoes the peer after a failure.
async fn finish(
    w: &WhipState,
    kind: Kind,
    room: &Arc<Room>,
    room_id: &str,
    peer: String,
    offer: &Offer,
    result: Result<(String, String), ApiError>,
) -> Result<Response, ApiError> {
    let (tid, answer) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = room.delete_broadcaster(&peer).await;
            return Err(e);
        }
    };
    let resource = random_hex(16);
    let etag = format!("\"{}\"", random_hex(8));
    let location = format!("/{}/{room_id}/{resource}", kind.path());
    tracing::info!(room = room_id, peer = %peer, kind = kind.path(), "session created");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    for link in ice_server_links(w, &peer) {
        if let Ok(v) = HeaderValue::from_str(&link) {
            headers.append(header::LINK, v);
        }
    }
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link"),
    );
    w.sessions.lock().await.insert(
        resource,
        Session {
            kind,
            room: room_id.to_owned(),
            peer,
            transport: tid,
            remote_ufrag: offer.ice_ufrag.clone(),
            etag,
            first_mid: offer.sections.iter().find_map(|s| s.mid.clone()),
            down_since: Some(tokio::time::Instant::now()),
        },
    );
    Ok((StatusCode::CREATED, headers, answer).into_response())
}

/// RFC 9725 §4.6 `Link` headers: the node's TURN server with fresh credentials.
fn ice_server_links(w: &WhipState, peer: &str) -> Vec<String> {
    let Some(turn) = &w.s.turn else {
        return Vec::new();
    };
    turn.ice_servers(peer)
        .into_iter()
        .flat_map(|s| {
            s.urls.into_iter().map(move |url| {
                format!(
                    "<{url}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    s.username, s.credential
                )
            })
        })
        .collect()
}

/// The session at `resource` of `room_id` for this path's kind; a token sent must be valid
/// for the room.
async fn session_of(
    w: &WhipState,
    kind: Kind,
    room_id: &str,
    resource: &str,
    headers: &HeaderMap,
) -> Result<Session, ApiError> {
    w.s.auth.check_origin(headers)?;
    if Auth::bearer(headers).is_some() {
        w.s.auth.authorize_room(Auth::bearer(headers), room_id)?;
    }
    w.sessions
        .lock()
        .await
        .get(resource)
        .filter(|s| s.kind == kind && s.room == room_id)
        .cloned()
        .ok_or_else(|| ApiError::new(404, "no such session"))
}

fn kind_of(path: &str) -> Kind {
    if path.starts_with("/whep/") {
        Kind::Whep
    } else {
        Kind::Whip
    }
}

async fn patch(
    State(w): State<WhipState>,
    Path((room_id, resource)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let kind = kind_of(uri.path());
    let Session {
        peer,
        transport: tid,
        first_mid: mid,
        remote_ufrag: ufrag,
        etag,
        ..
    } = session_of(&w, kind, &room_id, &resource, &headers).await?;
    content_type_is(&headers, "application/trickle-ice-sdpfrag")?;
    let value = |key: &str| {
        body.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 256)
    };
    let new_ufrag = value("a=ice-ufrag:");
    let restart = new_ufrag.is_some_and(|u| u != ufrag);
    if let Some(m) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        // `*` is what clients send for an ICE restart; otherwise it must be the current tag.
        if m.trim() != "*" && m.trim() != etag {
            return Err(ApiError(
                StatusCode::PRECONDITION_FAILED,
                "If-Match does not match the session's ETag".into(),
            ));
        }
    }
    if !restart {
        // Trickled candidates: ferrosfu is ICE-lite and learns the client's address from its
        // checks, so there is nothing to do with them.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if value("a=ice-pwd:").is_none() {
        return Err(ApiError::bad_request(
            "an ICE restart needs a=ice-ufrag and a=ice-pwd",
        ));
    }
    let room = w.s.rooms.existing(&room_id).await?;
    let ice = room.restart_ice(&peer, &tid).await?;
    let candidates = room.ice_candidates(&peer, &tid).await.unwrap_or_default();
    let local = Local {
        ice_ufrag: ice.username_fragment,
        ice_pwd: ice.password,
        candidates,
        fingerprints: Vec::new(),
    };
    let new_etag = format!("\"{}\"", random_hex(8));
    if let Some(s) = w.sessions.lock().await.get_mut(&resource) {
        s.remote_ufrag = new_ufrag.unwrap_or_default().to_owned();
        s.etag = new_etag.clone();
    }
    tracing::info!(room = %room_id, peer = %peer, "ICE restart");
    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    if let Ok(v) = HeaderValue::from_str(&new_etag) {
        out.insert(header::ETAG, v);
    }
    Ok((
        StatusCode::OK,
        out,
        answer::ice_fragment(&local, mid.as_deref()),
    )
        .into_response())
}

async fn delete(
    State(w): State<WhipState>,
    Path((room_id, resource)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let kind = kind_of(uri.path());
    let Session { peer, .. } = session_of(&w, kind, &room_id, &resource, &headers).await?;
    w.sessions.lock().await.remove(&resource);
    if let Ok(room) = w.s.rooms.existing(&room_id).await {
        let _ = room.delete_broadcaster(&peer).await;
    }
    tracing::info!(room = %room_id, peer = %peer, kind = kind.path(), "session deleted");
    Ok(StatusCode::OK.into_response())
}

/// Ends sessions whose client vanished: the transport never connected, or stayed
/// disconnected or failed, for [`ABANDONED_AFTER`]; drops sessions whose peer or room is gone.
async fn reap(sessions: Weak<Mutex<HashMap<String, Session>>>, s: Signaling) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        let list: Vec<(String, String, String, String)> = sessions
            .lock()
            .await
            .iter()
            .map(|(r, x)| {
                (
                    r.clone(),
                    x.room.clone(),
                    x.peer.clone(),
                    x.transport.clone(),
                )
            })
            .collect();
        for (resource, room_id, peer, tid) in list {
            let room = s.rooms.existing(&room_id).await.ok();
            let live = match &room {
                Some(r) => r.liveness(&peer, &tid).await.ok(),
                None => None,
            };
            let Some(live) = live else {
                sessions.lock().await.remove(&resource);
                continue;
            };
            let up = matches!(live.ice, Some(IceState::Connected | IceState::Completed))
                && !matches!(live.dtls, Some(DtlsState::Failed | DtlsState::Closed));
            let now = tokio::time::Instant::now();
            let expired = {
                let mut map = sessions.lock().await;
                let Some(x) = map.get_mut(&resource) else {
                    continue;
                };
                if up {
                    x.down_since = None;
                    false
                } else {
                    let since = *x.down_since.get_or_insert(now);
                    now.duration_since(since) >= ABANDONED_AFTER
                }
            };
            if expired {
                sessions.lock().await.remove(&resource);
                if let Some(r) = room {
                    let _ = r.delete_broadcaster(&peer).await;
                }
                tracing::info!(room = %room_id, peer = %peer, "session abandoned: ended");
            }
        }
    }
}
