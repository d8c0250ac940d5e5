//! ferrosfu as the system under test: protoo signaling over WebSocket (no SDP), one connection
//! per peer with its own reader task that answers `newConsumer` at once and drains every
//! notification (a client that stops reading is disconnected by the server).
//!
//! Publisher: getRouterRtpCapabilities → createWebRtcTransport(producing) → connect(role
//! client) → join → produce. Subscriber: createWebRtcTransport(consuming) → connect(role
//! server) → join (the consuming transport must exist before `join`: consumers of existing
//! producers are created right after it). Meeting peer: both transports, join, produce.
//! Peers join `client::JOIN_PARALLELISM` at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::LoadConfig;
use crate::client::{self, Rpc};
use crate::media::{EngineHandle, MediaKind, PeerId};
use crate::types::Scenario;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value>>>>>;
/// Called with (method, data) for every server request before it is answered with ok.
type RequestHandler = Arc<dyn Fn(&str, &Value) + Send + Sync>;

/// One protoo connection: requests with responses; server requests answered by the reader.
pub(crate) struct Protoo {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Protoo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protoo").finish_non_exhaustive()
    }
}

impl Protoo {
    /// Connects `ws://…/?roomId=R&peerId=P[&token=T]` with subprotocol `protoo`.
    pub(crate) async fn connect(
        ws_base: &str,
        room: &str,
        peer: &str,
        token: Option<&str>,
        handler: Option<RequestHandler>,
    ) -> Result<Protoo> {
        let mut url = format!("{ws_base}/?roomId={room}&peerId={peer}");
        if let Some(t) = token {
            url.push_str("&token=");
            url.push_str(t);
        }
        let mut req = url.as_str().into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("protoo"));
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .with_context(|| format!("websocket {url}"))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        let pending: Pending = Arc::default();
        let reader_pending = pending.clone();
        let reader_out = out.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let text = t.as_str();
                // Notifications (newPeer: O(N²) of them while peers join) are only drained.
                if text.contains("\"notification\":true") {
                    continue;
                }
                let Ok(v) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                if v["response"] == true {
                    let Some(id) = v["id"].as_u64() else { continue };
                    let waiter = reader_pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    if let Some(w) = waiter {
                        let r = if v["ok"] == true {
                            Ok(v["data"].clone())
                        } else {
                            Err(anyhow!(
                                "error {} {}",
                                v["errorCode"],
                                v["errorReason"].as_str().unwrap_or_default()
                            ))
                        };
                        let _ = w.send(r);
                    }
                } else if v["request"] == true {
                    let method = v["method"].as_str().unwrap_or_default();
                    if let Some(h) = &handler {
                        h(method, &v["data"]);
                    }
                    let reply = json!({"response": true, "id": v["id"], "ok": true, "data": {}});
                    let _ = reader_out.send(Message::Text(reply.to_string().into()));
                }
            }
            // Closed: fail every request still waiting.
            reader_pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        });
        Ok(Protoo {
            out,
            pending,
            next_id: AtomicU64::new(1),
            reader,
        })
    }

    async fn request_inner(&self, method: &str, data: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let m = json!({"request": true, "id": id, "method": method, "data": data});
        self.out
            .send(Message::Text(m.to_string().into()))
            .map_err(|_| anyhow!("{method}: connection closed"))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Err(_) => bail!("{method}: no response in {REQUEST_TIMEOUT:?}"),
            Ok(Err(_)) => bail!("{method}: connection closed"),
            Ok(Ok(r)) => r.with_context(|| format!("{method} refused")),
        }
    }

    /// Sends a close frame; the server then closes the peer.
    pub(crate) fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}

impl Rpc for Protoo {
    async fn request(&self, method: &str, data: Value) -> Result<Value> {
        self.request_inner(method, data).await
    }
}

impl Drop for Protoo {
    fn drop(&mut self) {
        let _ = self.out.send(Message::Close(None));
        self.reader.abort();
    }
}

/// An HS256 token `{room, peer, role, exp}` for a server without `--dev`.
pub(crate) fn token(secret: &str, room: &str, peer: &str, role: &str) -> String {
    let exp = crate::stats::wall_ns() / 1_000_000_000 + 24 * 3600;
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64url(
        json!({"room": room, "peer": peer, "role": role, "exp": exp})
            .to_string()
            .as_bytes(),
    );
    let input = format!("{header}.{claims}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64url(sig.as_ref()))
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(data.len() * 4 / 3 + 3);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            s.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    s
}

/// What every join needs.
struct Ctx {
    cfg: LoadConfig,
    engine: EngineHandle,
    ws_base: String,
    room: String,
    jwt_secret: Option<String>,
    caps: OnceLock<Value>,
}

impl Ctx {
    async fn connect(
        &self,
        name: &str,
        role: &str,
        handler: Option<RequestHandler>,
    ) -> Result<Protoo> {
        let token = self
            .jwt_secret
            .as_deref()
            .map(|s| token(s, &self.room, name, role));
        Protoo::connect(&self.ws_base, &self.room, name, token.as_deref(), handler).await
    }

    fn caps(&self) -> Result<&Value> {
        self.caps.get().context("router capabilities not fetched")
    }

    async fn join(&self, conn: &Protoo, name: &str) -> Result<()> {
        conn.request(
            "join",
            json!({"displayName": name, "device": {"name": "loadgen"},
                   "rtpCapabilities": self.caps()?}),
        )
        .await?;
        Ok(())
    }

    async fn transport(
        &self,
        conn: &Protoo,
        name: &str,
        producing: bool,
    ) -> Result<(PeerId, String)> {
        client::transport(conn, &self.engine, &self.cfg, name, producing).await
    }

    async fn produce(&self, conn: &Protoo, send: PeerId, tid: &str, kind: MediaKind) -> Result<()> {
        client::produce(conn, &self.engine, &self.cfg, send, tid, kind).await?;
        Ok(())
    }

    /// A handler that registers every `newConsumer` with the engine, on the peer `recv` holds.
    fn consumer_handler(&self, recv: Arc<OnceLock<PeerId>>) -> RequestHandler {
        let engine = self.engine.clone();
        Arc::new(move |method: &str, data: &Value| {
            if method != "newConsumer" {
                return;
            }
            let ssrc = data["rtpParameters"]["encodings"][0]["ssrc"].as_u64();
            let producer = data["producerId"].as_str();
            match (recv.get(), ssrc, producer) {
                (Some(&peer), Some(ssrc), Some(producer)) => {
                    let _ = engine.add_consumer(peer, ssrc as u32, producer.to_owned());
                }
                _ => tracing::warn!(target: "signaling", "newConsumer not registered: {data}"),
            }
        })
    }

    async fn publisher(&self, i: u32) -> Result<Protoo> {
        let name = format!("pub{i}");
        let conn = self.connect(&name, "publish", None).await?;
        let (send, tid) = self.transport(&conn, &name, true).await?;
        self.join(&conn, &name).await?;
        let kind = match self.cfg.scenario {
            Scenario::AudioMeeting => MediaKind::Audio,
            Scenario::Fanout | Scenario::Meeting => MediaKind::Video,
        };
        self.produce(&conn, send, &tid, kind).await?;
        Ok(conn)
    }

    /// A subscriber: its connection and its receiving peer in the engine.
    async fn subscriber(&self, i: u32) -> Result<(Protoo, PeerId)> {
        let name = format!("sub{i}");
        let recv = Arc::new(OnceLock::new());
        let conn = self
            .connect(
                &name,
                "subscribe",
                Some(self.consumer_handler(recv.clone())),
            )
            .await?;
        let (peer, _) = self.transport(&conn, &name, false).await?;
        let _ = recv.set(peer);
        self.join(&conn, &name).await?;
        Ok((conn, peer))
    }

    /// A meeting peer: sends audio + video, receives everyone else's.
    async fn member(&self, i: u32) -> Result<Protoo> {
        let name = format!("peer{i}");
        let recv = Arc::new(OnceLock::new());
        let conn = self
            .connect(&name, "publish", Some(self.consumer_handler(recv.clone())))
            .await?;
        let (send, tid) = self.transport(&conn, &name, true).await?;
        let (peer, _) = self.transport(&conn, &name, false).await?;
        let _ = recv.set(peer);
        self.join(&conn, &name).await?;
        self.produce(&conn, send, &tid, MediaKind::Audio).await?;
        self.produce(&conn, send, &tid, MediaKind::Video).await?;
        Ok(conn)
    }
}

/// ferrosfu driven through protoo. Peers stay between steps: each step adds the missing ones
/// (and [`crate::Target::shrink`] closes the newest subscribers).
pub(crate) struct FerrosfuTarget {
    ctx: Arc<Ctx>,
    url: String,
    /// The capabilities connection, publishers and meeting peers.
    conns: Vec<Protoo>,
    /// Fan-out subscribers in join order, with their receiving peer.
    subs: Vec<(Protoo, PeerId)>,
    /// Subscribers ever started: names stay unique after a shrink.
    next_sub: u32,
    publishers: u32,
    peers: u32,
    failed_joins: u32,
}

impl std::fmt::Debug for FerrosfuTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FerrosfuTarget")
            .field("url", &self.url)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl FerrosfuTarget {
    pub(crate) fn new(
        cfg: LoadConfig,
        engine: EngineHandle,
        url: &str,
        room: String,
        jwt_secret: Option<String>,
    ) -> Result<FerrosfuTarget> {
        let url = url.trim_end_matches('/').to_owned();
        let ws_base = if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            bail!("--url must start with http:// or https://: {url}");
        };
        Ok(FerrosfuTarget {
            ctx: Arc::new(Ctx {
                cfg,
                engine,
                ws_base,
                room,
                jwt_secret,
                caps: OnceLock::new(),
            }),
            url,
            conns: Vec::new(),
            subs: Vec::new(),
            next_sub: 0,
            publishers: 0,
            peers: 0,
            failed_joins: 0,
        })
    }
}

impl crate::Target for FerrosfuTarget {
    async fn prepare(&mut self) -> Result<()> {
        if self.ctx.caps.get().is_none() {
            // The connection that asked stays open: the room lives as long as a peer is in it.
            let conn = self.ctx.connect("lg-caps", "subscribe", None).await?;
            let caps = conn.request("getRouterRtpCapabilities", json!({})).await?;
            let _ = self.ctx.caps.set(client::subscriber_caps(
                caps,
                self.ctx.cfg.header_extensions,
            ));
            self.conns.push(conn);
        }
        Ok(())
    }

    async fn grow(&mut self, n: u32) -> Result<()> {
        self.prepare().await?;
        let ctx = self.ctx.clone();
        if ctx.cfg.scenario == Scenario::Meeting {
            if n > self.peers {
                let (joined, failed) =
                    client::join_parallel(self.peers..n, "peer", |i| ctx.member(i)).await;
                self.conns.extend(joined);
                self.failed_joins += failed;
                self.peers = n;
                self.publishers = n;
            }
            return Ok(());
        }
        while self.publishers < ctx.cfg.publishers {
            let c = ctx
                .publisher(self.publishers)
                .await
                .with_context(|| format!("publisher {}", self.publishers))?;
            self.conns.push(c);
            self.publishers += 1;
        }
        if n > self.peers {
            let first = self.next_sub;
            let count = n - self.peers;
            self.next_sub += count;
            let (joined, failed) =
                client::join_parallel(first..first + count, "subscriber", |i| ctx.subscriber(i))
                    .await;
            self.subs.extend(joined);
            self.failed_joins += failed;
            self.peers = n;
        }
        Ok(())
    }

    async fn shrink(&mut self, n: u32) -> Result<()> {
        if self.ctx.cfg.scenario == Scenario::Meeting {
            bail!("ferrosfu: a meeting cannot shrink");
        }
        while self.subs.len() > n as usize {
            let (conn, peer) = self.subs.pop().expect("longer than n");
            // The server closes the peer's transports and consumers when its socket closes.
            conn.close();
            self.ctx.engine.remove_peer(peer)?;
        }
        self.peers = self.peers.min(n);
        Ok(())
    }

    fn publishers(&self) -> u32 {
        self.publishers
    }

    async fn sut_pids(&self) -> Result<Vec<u32>> {
        let workers = crate::stats::ferrosfu_workers(&self.url).await?;
        Ok(workers.into_iter().filter_map(|w| w.pid).collect())
    }

    fn notes(&self) -> Vec<String> {
        let mut n = vec![
            "ferrosfu: protoo signaling, one WebRtcTransport (own UDP port) per client transport; \
             generator subscribers are DTLS servers, publishers DTLS clients"
                .to_owned(),
        ];
        if self.ctx.cfg.header_extensions {
            n.push(
                "subscribers negotiate the router's header extensions (forwarded packets carry \
                 MID, transport-wide sequence, abs-send-time)"
                    .to_owned(),
            );
        }
        if self.failed_joins > 0 {
            n.push(format!("{} peers failed to join", self.failed_joins));
        }
        n
    }

    async fn close(self) {
        for c in self.conns.iter().chain(self.subs.iter().map(|(c, _)| c)) {
            c.close();
        }
        // Let the writers flush their close frames.
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(self.conns);
        drop(self.subs);
    }
}
