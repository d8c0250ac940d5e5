//! ferrosfu as the system under test: protoo signaling over WebSocket (no SDP), one connection
//! per peer with its own reader task that answers `newConsumer` at once and drains every
//! notification (a client that stops reading is disconnected by the server).
//!
//! Publisher: getRouterRtpCapabilities → createWebRtcTransport(producing) → connect(role
//! client) → join → produce. Subscriber: createWebRtcTransport(consuming) → connect(role
//! server) → join (the consuming transport must exist before `join`: consumers of existing
//! producers are created right after it). Meeting peer: both transports, join, produce.
//! Peers join `JOIN_PARALLELISM` at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::LoadConfig;
use crate::media::{EngineHandle, MediaKind, PeerId, SendSpec, check_spec};
use crate::peer::{IceRole, Identity, Peer, local_transport, random_bytes};
use crate::types::{DtlsRole, RemoteTransport, Scenario};

/// Joins in flight at once.
const JOIN_PARALLELISM: usize = 32;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const VIDEO_PT: u8 = 96;
const OPUS_PT: u8 = 111;

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

    pub(crate) async fn request(&self, method: &str, data: Value) -> Result<Value> {
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

/// The server side of a transport from `createWebRtcTransport`'s response.
pub(crate) fn remote_transport(t: &Value, our_dtls_role: DtlsRole) -> Result<RemoteTransport> {
    let c = t["iceCandidates"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["protocol"] == "udp"))
        .context("no udp ICE candidate")?;
    let ip = c["address"]
        .as_str()
        .or(c["ip"].as_str())
        .context("candidate without address")?;
    let port = c["port"].as_u64().context("candidate without port")?;
    let fp = t["dtlsParameters"]["fingerprints"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["algorithm"] == "sha-256"))
        .and_then(|f| f["value"].as_str())
        .context("no sha-256 fingerprint")?;
    Ok(RemoteTransport {
        addr: format!("{ip}:{port}")
            .parse()
            .or_else(|_| format!("[{ip}]:{port}").parse())
            .with_context(|| format!("candidate address {ip}:{port}"))?,
        ice_ufrag: t["iceParameters"]["usernameFragment"]
            .as_str()
            .context("no usernameFragment")?
            .to_owned(),
        ice_pwd: t["iceParameters"]["password"]
            .as_str()
            .context("no ICE password")?
            .to_owned(),
        ice_lite: t["iceParameters"]["iceLite"].as_bool().unwrap_or(true),
        fingerprint_sha256: fp.to_owned(),
        our_dtls_role,
    })
}

fn random_ssrc() -> u32 {
    let b = random_bytes(4);
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]).max(1)
}

fn rtp_parameters(kind: MediaKind, ssrc: u32) -> Value {
    let codec = match kind {
        MediaKind::Video => json!({
            "mimeType": "video/VP8", "payloadType": VIDEO_PT, "clockRate": 90000, "parameters": {},
            "rtcpFeedback": [{"type": "nack", "parameter": ""}, {"type": "nack", "parameter": "pli"},
                             {"type": "ccm", "parameter": "fir"}]}),
        MediaKind::Audio => json!({
            "mimeType": "audio/opus", "payloadType": OPUS_PT, "clockRate": 48000, "channels": 2,
            "parameters": {}, "rtcpFeedback": []}),
    };
    let mid = match kind {
        MediaKind::Audio => "0",
        MediaKind::Video => "1",
    };
    json!({"mid": mid, "codecs": [codec], "headerExtensions": [], "encodings": [{"ssrc": ssrc}],
           "rtcp": {"cname": "loadgen", "reducedSize": true}})
}

/// What every join needs.
struct Ctx {
    cfg: LoadConfig,
    engine: EngineHandle,
    ws_base: String,
    room: String,
    jwt_secret: Option<String>,
    caps: OnceLock<Value>,
    fingerprint: String,
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

    /// createWebRtcTransport + connectWebRtcTransport + the client peer in the engine: the
    /// engine's peer and the server's transport id.
    async fn transport(
        &self,
        conn: &Protoo,
        name: &str,
        producing: bool,
    ) -> Result<(PeerId, String)> {
        let t = conn
            .request(
                "createWebRtcTransport",
                json!({"forceTcp": false, "producing": producing, "consuming": !producing}),
            )
            .await?;
        let id = t["id"]
            .as_str()
            .context("createWebRtcTransport: no id")?
            .to_owned();
        // Publisher transports: we are DTLS client; subscriber transports: DTLS server (ferrosfu
        // then sends the ClientHello once ICE is up). Both roles proven against ferrosfu.
        let (our_role, signaled) = if producing {
            (DtlsRole::Client, "client")
        } else {
            (DtlsRole::Server, "server")
        };
        let remote = remote_transport(&t, our_role)?;
        conn.request(
            "connectWebRtcTransport",
            json!({"transportId": id, "dtlsParameters": {"role": signaled,
                   "fingerprints": [{"algorithm": "sha-256", "value": self.fingerprint}]}}),
        )
        .await?;
        // Added after connect: our ClientHello must not reach a transport without a DTLS role.
        let local = local_transport(self.engine.local_addr())?;
        let peer = Peer::new(
            local,
            remote,
            self.cfg.profile,
            IceRole::Controlling,
            Instant::now(),
        )?;
        let kind = if producing { "send" } else { "recv" };
        let peer = self.engine.add_peer(format!("{name}/{kind}"), peer).await?;
        Ok((peer, id))
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

    async fn produce(
        &self,
        conn: &Protoo,
        send: PeerId,
        transport_id: &str,
        kind: MediaKind,
    ) -> Result<()> {
        let ssrc = random_ssrc();
        let spec = SendSpec {
            kind,
            ssrc,
            pt: match kind {
                MediaKind::Video => VIDEO_PT,
                MediaKind::Audio => OPUS_PT,
            },
            bitrate: self.cfg.bitrate,
            packet_size: self.cfg.packet_size,
        };
        check_spec(&spec)?;
        let stream = self.engine.add_send_stream(send, spec).await?;
        let r = conn
            .request(
                "produce",
                json!({"transportId": transport_id, "kind": kind.as_str(),
                       "rtpParameters": rtp_parameters(kind, ssrc), "appData": {}}),
            )
            .await?;
        let id = r["id"].as_str().context("produce: no id")?;
        self.engine.bind_producer(stream, id.to_owned())
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

    async fn subscriber(&self, i: u32) -> Result<Protoo> {
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
        Ok(conn)
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

/// ferrosfu driven through protoo. Peers stay between steps: each step adds the missing ones.
pub(crate) struct FerrosfuTarget {
    ctx: Arc<Ctx>,
    url: String,
    conns: Vec<Protoo>,
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
                fingerprint: Identity::get()?.fingerprint().to_owned(),
            }),
            url,
            conns: Vec::new(),
            publishers: 0,
            peers: 0,
            failed_joins: 0,
        })
    }

    /// Joins peers `from..to` with `JOIN_PARALLELISM` in flight.
    async fn join_many(&mut self, from: u32, to: u32, meeting: bool) {
        let ctx = self.ctx.clone();
        let joined: Vec<(u32, Result<Protoo>)> = futures_util::stream::iter(from..to)
            .map(|i| {
                let ctx = ctx.clone();
                async move {
                    let r = if meeting {
                        ctx.member(i).await
                    } else {
                        ctx.subscriber(i).await
                    };
                    (i, r)
                }
            })
            .buffer_unordered(JOIN_PARALLELISM)
            .collect()
            .await;
        for (i, r) in joined {
            match r {
                Ok(c) => self.conns.push(c),
                Err(e) => {
                    self.failed_joins += 1;
                    eprintln!("loadgen: peer {i} did not join: {e:#}");
                }
            }
        }
    }
}

impl crate::Target for FerrosfuTarget {
    async fn prepare(&mut self) -> Result<()> {
        if self.ctx.caps.get().is_none() {
            // The connection that asked stays open: the room lives as long as a peer is in it.
            let conn = self.ctx.connect("lg-caps", "subscribe", None).await?;
            let mut caps = conn.request("getRouterRtpCapabilities", json!({})).await?;
            if !self.ctx.cfg.header_extensions {
                // No header extensions: no MID/TWCC/abs-send-time in the forwarded packets.
                caps["headerExtensions"] = json!([]);
            }
            let _ = self.ctx.caps.set(caps);
            self.conns.push(conn);
        }
        Ok(())
    }

    async fn grow(&mut self, n: u32) -> Result<()> {
        self.prepare().await?;
        let meeting = self.ctx.cfg.scenario == Scenario::Meeting;
        if !meeting {
            while self.publishers < self.ctx.cfg.publishers {
                let c = self
                    .ctx
                    .publisher(self.publishers)
                    .await
                    .with_context(|| format!("publisher {}", self.publishers))?;
                self.conns.push(c);
                self.publishers += 1;
            }
        }
        if n > self.peers {
            self.join_many(self.peers, n, meeting).await;
            self.peers = n;
            if meeting {
                self.publishers = n;
            }
        }
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
        for c in &self.conns {
            c.close();
        }
        // Let the writers flush their close frames.
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(self.conns);
    }
}
