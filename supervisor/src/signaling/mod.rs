//! Signaling for mediasoup-client applications: protoo over WebSocket
//! (`ws(s)://HOST:PORT/?roomId=…&peerId=…[&token=…][&p2p=auto|off][&e2ee=1]`, subprotocol
//! `protoo`; `p2p` sets the room's mode when it has none yet, `e2ee=1` marks it end-to-end
//! encrypted) and the
//! mediasoup-demo broadcaster REST API (`/rooms/:roomId/…`), on the HTTP listener. Both only
//! translate: JSON is parsed into typed requests (`requests.rs`), the room (`crate::rooms`)
//! does the work, and its typed answers and notifications go back as the demo's JSON.
//!
//! One connection = one peer. Its frames are read by one task: responses to our requests are
//! resolved at once; its requests are queued and handled one at a time, in order, by a second
//! task (a client may pipeline; answers keep its order). Bad frames get an error response or
//! are logged and dropped; they never close the socket.

mod json;
mod protoo;
mod requests;
mod rest;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

pub use protoo::ProtooError;

use crate::auth::{Auth, Role};
use crate::limits::{Bucket, CLOSE_TOO_MANY, IpConn, IpConns, Quotas};
use crate::rooms::RoomError;
use crate::rooms::{PeerLink, Rooms};
use protoo::{Incoming, OUT_QUEUE, Outgoing, PeerConn};
use requests::Then;

/// Largest protoo frame accepted (an SDP-sized JSON is a few KiB).
const MAX_FRAME: usize = 256 * 1024;

/// What the signaling handlers share.
#[derive(Clone, Debug)]
pub(crate) struct Signaling {
    pub rooms: Arc<Rooms>,
    pub auth: Arc<Auth>,
    /// The built-in TURN server: its URLs and fresh credentials go to every peer.
    pub turn: Option<Arc<crate::turn::Turn>>,
    /// `[limits]`: requests per second per peer, sockets per IP.
    pub quotas: Quotas,
    /// Open signaling sockets per client IP.
    pub ip_conns: Arc<IpConns>,
    /// How long joins take (`/metrics`).
    pub join_times: crate::metrics::JoinTimes,
}

pub(crate) fn routes(s: Signaling) -> axum::Router {
    rest::routes(s.clone())
}

/// `GET /`: a protoo WebSocket when it is an upgrade, otherwise `None` (the caller serves the
/// index page).
pub(crate) async fn ws_or_none(s: &Signaling, req: Request) -> Option<Response> {
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return None;
    }
    let (mut parts, _) = req.into_parts();
    let query = Query::<HashMap<String, String>>::from_request_parts(&mut parts, &())
        .await
        .map(|q| q.0)
        .unwrap_or_default();
    let headers = parts.headers.clone();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(e) => return Some(e.into_response()),
    };
    let room_id = query.get("roomId").filter(|s| valid_id(s)).cloned();
    let peer_id = query.get("peerId").filter(|s| valid_id(s)).cloned();
    let (Some(room_id), Some(peer_id)) = (room_id, peer_id) else {
        return Some(
            (
                StatusCode::BAD_REQUEST,
                "roomId and peerId query parameters are required (1-128 characters)",
            )
                .into_response(),
        );
    };
    let flags = match RoomFlags::from_query(&query) {
        Ok(f) => f,
        Err(e) => return Some((StatusCode::BAD_REQUEST, e).into_response()),
    };
    if let Err(e) = s.auth.check_origin(&headers) {
        return Some((e.status(), e.to_string()).into_response());
    }
    let role = match s.auth.authorize(
        query.get("token").map(String::as_str),
        &room_id,
        Some(&peer_id),
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(room = %room_id, peer = %peer_id, "signaling refused: {e}");
            return Some((e.status(), e.to_string()).into_response());
        }
    };
    // Sockets per client IP (the TCP peer: behind a proxy, the proxy).
    let ip = parts
        .extensions
        .get::<axum::extract::ConnectInfo<crate::tls::ClientAddr>>()
        .map(|c| c.0.0.ip());
    let ip_conn = match (ip, s.quotas.ws_connections_per_ip) {
        (Some(ip), Some(max)) => match s.ip_conns.open(ip, max) {
            Some(c) => Some(c),
            None => {
                tracing::info!(%ip, room = %room_id, peer = %peer_id, "signaling refused: {max} sockets from this address");
                let e = RoomError::too_many(format!(
                    "too many connections from this address: at most {max}"
                ));
                return Some(
                    ws.protocols(["protoo"])
                        .max_message_size(MAX_FRAME)
                        .on_upgrade(move |socket| refused(socket, e))
                        .into_response(),
                );
            }
        },
        _ => None,
    };
    let s = s.clone();
    Some(
        ws.protocols(["protoo"])
            .max_message_size(MAX_FRAME)
            .on_upgrade(move |socket| session(s, socket, (room_id, peer_id, flags), role, ip_conn))
            .into_response(),
    )
}

/// How long a refused peer has to send its first request before its socket closes.
const REFUSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A peer refused before it is in a room (the node is full, no worker runs, the room is full,
/// its address holds too many sockets): its first request (mediasoup-demo's
/// `getRouterRtpCapabilities`) is answered with the error — protoo `errorCode` 503 or 429 and
/// the reason, which the app shows — and the socket closes: code 1013 (try again later) for a
/// 503, 4429 for a 429, else 1011. A client that sends nothing within [`REFUSE_WAIT`] is closed
/// the same way.
async fn refuse<S>(conn: &PeerConn, stream: &mut S, e: &RoomError)
where
    S: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let first_request = async {
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(t) = msg else { continue };
            if let Ok(Incoming {
                request: true,
                id: Some(id),
                ..
            }) = serde_json::from_str(t.as_str())
            {
                return Some(id);
            }
        }
        None
    };
    if let Ok(Some(id)) = tokio::time::timeout(REFUSE_WAIT, first_request).await {
        conn.respond(id, Err(ProtooError::from(e.clone())));
    }
    conn.close(close_code(e), &e.to_string());
}

/// The WebSocket close code for a refusal: 1013 (try again later) for 503, 4429 for 429.
fn close_code(e: &RoomError) -> u16 {
    match e.status() {
        503 => 1013,
        429 => CLOSE_TOO_MANY,
        _ => 1011,
    }
}

/// A socket refused before its session starts: [`refuse`] on it.
async fn refused(socket: WebSocket, e: RoomError) {
    let (conn, mut stream, writer) = open_conn(socket);
    refuse(&conn, &mut stream, &e).await;
    let _ = writer.await;
}

/// The socket split into its reader and a writer task fed by a [`PeerConn`].
fn open_conn(
    socket: WebSocket,
) -> (
    PeerConn,
    futures_util::stream::SplitStream<WebSocket>,
    tokio::task::JoinHandle<()>,
) {
    let (mut sink, stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(OUT_QUEUE);
    let conn = PeerConn::new(out_tx);
    let writer = tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            let r = match o {
                Outgoing::Text(t) => sink.send(Message::Text(t.into())).await,
                Outgoing::Close(code, reason) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    break;
                }
            };
            if r.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    (conn, stream, writer)
}

/// What the join URL says of the room.
#[derive(Clone, Copy, Debug, Default)]
struct RoomFlags {
    /// `p2p=auto|off`: the room's mode, when it has none yet.
    p2p: Option<crate::rooms::P2pMode>,
    /// `e2ee=1`: the room is end-to-end encrypted.
    e2ee: bool,
}

impl RoomFlags {
    fn from_query(q: &HashMap<String, String>) -> Result<Self, String> {
        let p2p = q.get("p2p").map(|m| m.parse()).transpose()?;
        let e2ee = match q.get("e2ee").map(String::as_str) {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => return Err(format!("e2ee={other:?}: use 1 or 0")),
        };
        Ok(Self { p2p, e2ee })
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control)
}

/// How long a flooding peer's socket is read after its close before it is dropped.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Requests refused in a row, at `requests_per_second` = R, after which a flooding peer is
/// disconnected (close 4429): 4 R, i.e. seconds of sending at over twice its rate.
const FLOOD_FACTOR: u32 = 4;

/// One connected peer, until its socket closes (`_ip_conn`: its place in the per-IP count).
async fn session(
    s: Signaling,
    socket: WebSocket,
    (room_id, peer_id, flags): (String, String, RoomFlags),
    role: Role,
    _ip_conn: Option<IpConn>,
) {
    let connected = std::time::Instant::now();
    let (conn, mut stream, writer) = open_conn(socket);

    let session = s.rooms.new_session();
    let link: Arc<dyn PeerLink> = Arc::new(conn.clone());
    let room = loop {
        let room = match s.rooms.get_or_create(&room_id, &peer_id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(room = %room_id, peer = %peer_id, "cannot open the room: {e}");
                refuse(&conn, &mut stream, &e).await;
                let _ = writer.await;
                return;
            }
        };
        match room.attach(&peer_id, session, link.clone(), role).await {
            Ok(()) => break room,
            // A room that closed meanwhile: take a fresh one.
            Err(RoomError::RoomClosed) => continue,
            Err(e) => {
                tracing::info!(room = %room_id, peer = %peer_id, "peer refused: {e}");
                refuse(&conn, &mut stream, &e).await;
                let _ = writer.await;
                return;
            }
        }
    };
    if let Some(mode) = flags.p2p {
        room.set_p2p_mode(mode).await;
    }
    if flags.e2ee {
        room.set_e2ee().await;
    }
    tracing::info!(room = %room_id, peer = %peer_id, "peer connected");

    // Requests are handled in order by one task.
    let (req_tx, mut req_rx) = mpsc::channel::<(u64, String, serde_json::Value)>(256);
    let handler = {
        let room = room.clone();
        let conn = conn.clone();
        let peer_id = peer_id.clone();
        let turn = s.turn.clone();
        let join_times = s.join_times.clone();
        tokio::spawn(async move {
            while let Some((id, method, data)) = req_rx.recv().await {
                let (result, then) =
                    requests::handle(&room, &peer_id, &method, data, turn.as_deref()).await;
                if let Err(e) = &result {
                    tracing::debug!(peer = %peer_id, %method, "request failed: {e}");
                }
                conn.respond(id, result);
                if then == Then::ConsumeAll {
                    join_times.joined(connected);
                    let room = room.clone();
                    let peer_id = peer_id.clone();
                    tokio::spawn(async move { room.consume_all(&peer_id).await });
                }
            }
        })
    };

    let mut rate = s
        .quotas
        .requests_per_second
        .map(|r| (r, Bucket::new(r, std::time::Instant::now()), 0u32));
    while let Some(msg) = stream.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let m: Incoming = match serde_json::from_str(text.as_str()) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(peer = %peer_id, "bad protoo frame dropped: {e}");
                continue;
            }
        };
        if m.response {
            conn.resolve(m);
        } else if m.request {
            let (Some(id), Some(method)) = (m.id, m.method) else {
                if let Some(id) = m.id {
                    conn.respond(
                        id,
                        Err(ProtooError::bad_request("request without a method")),
                    );
                }
                continue;
            };
            if let Some((per_second, bucket, refused)) = &mut rate {
                if let Err(wait) = bucket.take(std::time::Instant::now()) {
                    *refused += 1;
                    if *refused > FLOOD_FACTOR * *per_second {
                        tracing::warn!(room = %room_id, peer = %peer_id, "request flood: disconnected");
                        conn.close(CLOSE_TOO_MANY, "too many requests");
                        // Read on (and drop) until the client answers the close: closing the
                        // TCP connection with its frames unread would reset it, and the client
                        // would never see the close code.
                        let _ = tokio::time::timeout(CLOSE_WAIT, async {
                            while let Some(Ok(m)) = stream.next().await {
                                if matches!(m, Message::Close(_)) {
                                    break;
                                }
                            }
                        })
                        .await;
                        break;
                    }
                    conn.respond(
                        id,
                        Err(ProtooError::new(
                            429,
                            format!(
                                "too many requests: at most {per_second} per second; retry in {} ms",
                                wait.as_millis().max(1)
                            ),
                        )),
                    );
                    continue;
                }
                *refused = 0;
            }
            if req_tx.try_send((id, method, m.data)).is_err() {
                conn.respond(
                    id,
                    Err(ProtooError::new(503, "too many requests in flight")),
                );
            }
        } else if m.notification {
            tracing::debug!(peer = %peer_id, method = ?m.method, "client notification ignored");
        }
        if conn.is_closed() {
            break;
        }
    }
    drop(req_tx);
    let _ = handler.await;
    room.detach(&peer_id, session).await;
    conn.close(1000, "bye");
    let _ = writer.await;
    tracing::info!(room = %room_id, peer = %peer_id, "peer disconnected");
}
