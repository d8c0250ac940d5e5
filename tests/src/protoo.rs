//! A protoo client for tests (what protoo-client does in a browser): requests with responses,
//! server notifications and server requests (`newConsumer`), plus conversions between the
//! mediasoup JSON shapes and the types the webrtc-rs harness (`rtc_client`) uses.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ferrosfu_fbs::{
    DtlsFingerprint, DtlsParameters, DtlsRole, IceCandidate, IceParameters, MediaKind,
    RtpParameters, TransportProtocol,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtooError {
    pub code: u64,
    pub reason: String,
}

impl std::fmt::Display for ProtooError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl std::error::Error for ProtooError {}

/// A connected protoo peer.
pub struct ProtooClient {
    ws: Ws,
    next_id: u64,
    /// Notifications and server requests not consumed yet, in arrival order.
    pub inbox: VecDeque<Value>,
    /// Answer `newConsumer` requests with ok as they arrive (kept in `inbox` too).
    pub auto_accept: bool,
}

impl std::fmt::Debug for ProtooClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtooClient")
            .field("inbox", &self.inbox.len())
            .finish()
    }
}

/// The HTTP status of a refused upgrade, if that is why `connect` failed.
pub fn refused_status(e: &anyhow::Error) -> Option<u16> {
    match e.downcast_ref::<tokio_tungstenite::tungstenite::Error>()? {
        tokio_tungstenite::tungstenite::Error::Http(r) => Some(r.status().as_u16()),
        _ => None,
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

impl ProtooClient {
    pub async fn connect(
        addr: SocketAddr,
        room: &str,
        peer: &str,
        token: Option<&str>,
    ) -> Result<ProtooClient> {
        let mut url = format!("ws://{addr}/?roomId={room}&peerId={peer}");
        if let Some(t) = token {
            url.push_str("&token=");
            url.push_str(t);
        }
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("protoo"));
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(ProtooClient {
            ws,
            next_id: 1,
            inbox: VecDeque::new(),
            auto_accept: true,
        })
    }

    /// The next frame (None: closed or nothing within the timeout).
    async fn next_frame(&mut self, timeout: Duration) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(timeout, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match m {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).ok()?;
                    if v["request"] == true && v["method"] == "newConsumer" && self.auto_accept {
                        let id = v["id"].clone();
                        self.send(json!({"response": true, "id": id, "ok": true, "data": {}}))
                            .await
                            .ok()?;
                    }
                    return Some(v);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    pub async fn send(&mut self, v: Value) -> Result<()> {
        self.ws.send(Message::Text(v.to_string().into())).await?;
        Ok(())
    }

    /// Sends a raw text frame (for malformed-input tests).
    pub async fn send_raw(&mut self, text: &str) -> Result<()> {
        self.ws.send(Message::Text(text.to_owned().into())).await?;
        Ok(())
    }

    /// A request; Ok(data) or Err(ProtooError) for an error response; other failures panic-free
    /// as `anyhow` errors.
    pub async fn request(
        &mut self,
        method: &str,
        data: Value,
    ) -> Result<std::result::Result<Value, ProtooError>> {
        let id = self.send_request(method, data).await?;
        self.response(id).await
    }

    /// Sends a request without waiting for its answer (see [`ProtooClient::response`]);
    /// returns its id.
    pub async fn send_request(&mut self, method: &str, data: Value) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"request": true, "id": id, "method": method, "data": data}))
            .await?;
        Ok(id)
    }

    /// The answer to request `id`: Ok(data) or Err(ProtooError); other frames meanwhile go to
    /// the inbox.
    pub async fn response(&mut self, id: u64) -> Result<std::result::Result<Value, ProtooError>> {
        let answered = |v: &Value| v["response"] == true && v["id"] == id;
        if let Some(i) = self.inbox.iter().position(answered) {
            let v = self.inbox.remove(i).expect("index is valid");
            return Ok(Self::result_of(&v));
        }
        loop {
            let v = self
                .next_frame(TIMEOUT)
                .await
                .ok_or_else(|| anyhow!("request {id}: no response (socket closed or timeout)"))?;
            if answered(&v) {
                return Ok(Self::result_of(&v));
            }
            self.inbox.push_back(v);
        }
    }

    fn result_of(v: &Value) -> std::result::Result<Value, ProtooError> {
        if v["ok"] == true {
            Ok(v["data"].clone())
        } else {
            Err(ProtooError {
                code: v["errorCode"].as_u64().unwrap_or(0),
                reason: v["errorReason"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }

    /// A request that must succeed.
    pub async fn ok(&mut self, method: &str, data: Value) -> Result<Value> {
        self.request(method, data)
            .await?
            .map_err(|e| anyhow!("{method} failed: {e}"))
    }

    /// The router's capabilities as the webrtc-rs client states its own
    /// (`getRouterRtpCapabilities` without header extensions, which it does not negotiate).
    pub async fn client_caps(&mut self) -> Result<Value> {
        let mut caps = self.ok("getRouterRtpCapabilities", json!({})).await?;
        caps["headerExtensions"] = json!([]);
        Ok(caps)
    }

    /// `join` as a webrtc-rs peer named `display_name` with the capabilities `caps`; returns the
    /// answer (the peers already in the room).
    pub async fn join(&mut self, display_name: &str, caps: &Value) -> Result<Value> {
        self.ok(
            "join",
            json!({"displayName": display_name, "device": {"name": "rust"}, "rtpCapabilities": caps}),
        )
        .await
    }

    /// Connects `peer` to `room` on the supervisor at `addr` (dev mode: no token) and joins it
    /// with the server's capabilities.
    pub async fn joined(addr: SocketAddr, room: &str, peer: &str) -> Result<ProtooClient> {
        let mut c = ProtooClient::connect(addr, room, peer, None).await?;
        let caps = c.client_caps().await?;
        c.join(peer, &caps).await?;
        Ok(c)
    }

    /// `createWebRtcTransport` over UDP, for producing (`producing`) or for consuming; returns
    /// the answer (id, ICE and DTLS parameters, candidates).
    pub async fn create_transport(&mut self, producing: bool) -> Result<Value> {
        self.ok(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": producing, "consuming": !producing}),
        )
        .await
    }

    /// Waits for a notification or server request named `method` (taken from the inbox first).
    pub async fn wait_for(&mut self, method: &str) -> Result<Value> {
        if let Some(i) = self.inbox.iter().position(|v| v["method"] == method) {
            return Ok(self.inbox.remove(i).expect("index is valid"));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self
                .next_frame(left)
                .await
                .with_context(|| format!("no {method} (closed or timed out)"))?;
            if v["method"] == method {
                return Ok(v);
            }
            self.inbox.push_back(v);
        }
    }

    /// Reads until the server closes the socket; returns how many frames came before.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut n = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => bail!("socket still open after {timeout:?}"),
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return Ok(n),
                Ok(Some(Ok(_))) => n += 1,
            }
        }
    }

    /// Reads until the server closes the socket; returns its close code (None: closed without
    /// a close frame).
    pub async fn close_code(&mut self, timeout: Duration) -> Result<Option<u16>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => bail!("socket still open after {timeout:?}"),
                Ok(None) | Ok(Some(Err(_))) => return Ok(None),
                Ok(Some(Ok(Message::Close(f)))) => return Ok(f.map(|f| u16::from(f.code))),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions

pub fn ice_parameters(v: &Value) -> Result<IceParameters> {
    Ok(IceParameters {
        username_fragment: v["usernameFragment"]
            .as_str()
            .context("usernameFragment")?
            .to_owned(),
        password: v["password"].as_str().context("password")?.to_owned(),
        ice_lite: v["iceLite"].as_bool().unwrap_or(true),
    })
}

pub fn ice_candidates(v: &Value) -> Result<Vec<IceCandidate>> {
    v.as_array()
        .context("iceCandidates must be an array")?
        .iter()
        .map(|c| {
            Ok(IceCandidate {
                foundation: c["foundation"].as_str().context("foundation")?.to_owned(),
                priority: c["priority"].as_u64().context("priority")? as u32,
                address: c["address"]
                    .as_str()
                    .or(c["ip"].as_str())
                    .context("address")?
                    .to_owned(),
                protocol: if c["protocol"] == "tcp" {
                    TransportProtocol::Tcp
                } else {
                    TransportProtocol::Udp
                },
                port: c["port"].as_u64().context("port")? as u16,
                kind: c["type"].as_str().unwrap_or("host").to_owned(),
                tcp_type: c["tcpType"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

pub fn dtls_parameters(v: &Value) -> Result<DtlsParameters> {
    Ok(DtlsParameters {
        role: match v["role"].as_str() {
            Some("client") => DtlsRole::Client,
            Some("server") => DtlsRole::Server,
            _ => DtlsRole::Auto,
        },
        fingerprints: v["fingerprints"]
            .as_array()
            .context("fingerprints")?
            .iter()
            .map(|f| DtlsFingerprint {
                algorithm: f["algorithm"].as_str().unwrap_or_default().to_owned(),
                value: f["value"].as_str().unwrap_or_default().to_owned(),
            })
            .collect(),
    })
}

pub fn dtls_json(p: &DtlsParameters) -> Value {
    json!({
        "role": match p.role {
            DtlsRole::Auto => "auto",
            DtlsRole::Client => "client",
            DtlsRole::Server => "server",
        },
        "fingerprints": p.fingerprints.iter()
            .map(|f| json!({"algorithm": f.algorithm, "value": f.value}))
            .collect::<Vec<_>>(),
    })
}

fn param_value(v: &str) -> Value {
    v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n))
}

/// mediasoup-client's `rtpParameters` for a producer, from the harness's parameters.
pub fn rtp_parameters_json(p: &RtpParameters) -> Value {
    let rtx_of: Vec<(Option<u32>, Option<u32>)> =
        p.encodings.iter().map(|e| (e.ssrc, e.rtx_ssrc)).collect();
    json!({
        "mid": p.mid,
        "codecs": p.codecs.iter().map(|c| {
            let mut v = json!({
                "mimeType": c.mime_type,
                "payloadType": c.payload_type,
                "clockRate": c.clock_rate,
                "parameters": c.parameters.iter()
                    .map(|(k, v)| (k.clone(), param_value(v)))
                    .collect::<serde_json::Map<_, _>>(),
                "rtcpFeedback": c.rtcp_feedback.iter()
                    .map(|f| json!({"type": f.kind, "parameter": f.parameter}))
                    .collect::<Vec<_>>(),
            });
            if let Some(ch) = c.channels {
                v["channels"] = json!(ch);
            }
            v
        }).collect::<Vec<_>>(),
        "headerExtensions": p.header_extensions.iter()
            .map(|h| json!({"uri": h.uri, "id": h.id, "encrypt": h.encrypt}))
            .collect::<Vec<_>>(),
        "encodings": rtx_of.iter().map(|(ssrc, rtx)| {
            let mut e = json!({"ssrc": ssrc});
            if let Some(r) = rtx {
                e["rtx"] = json!({"ssrc": r});
            }
            e
        }).collect::<Vec<_>>(),
        "rtcp": {"cname": p.rtcp.cname, "reducedSize": p.rtcp.reduced_size},
    })
}

/// A consumer's `rtpParameters` (mediasoup JSON) as the harness's type.
pub fn rtp_parameters_from_json(v: &Value) -> Result<RtpParameters> {
    let p: ferrosfu::ortc::RtpParameters =
        serde_json::from_value(v.clone()).context("rtpParameters")?;
    Ok((&p).into())
}

/// The kind and RTP parameters of a `newConsumer` request's data.
pub fn consumer_of(data: &Value) -> Result<(MediaKind, RtpParameters)> {
    Ok((
        kind_of(&data["kind"]),
        rtp_parameters_from_json(&data["rtpParameters"])?,
    ))
}

/// Creates a send transport on `client` ([`ProtooClient::create_transport`]), connects it with
/// `connectWebRtcTransport` and connects `publisher` to it. Returns the transport (the answer
/// to `createWebRtcTransport`).
pub async fn connect_publisher(
    client: &mut ProtooClient,
    publisher: &crate::rtc_client::Publisher,
) -> Result<Value> {
    let t = client.create_transport(true).await?;
    let id = t["id"]
        .as_str()
        .context("createWebRtcTransport answered no id")?;
    client
        .ok(
            "connectWebRtcTransport",
            json!({"transportId": id, "dtlsParameters": dtls_json(&publisher.local_dtls_parameters())}),
        )
        .await?;
    publisher
        .connect(
            &ice_parameters(&t["iceParameters"])?,
            &ice_candidates(&t["iceCandidates"])?,
            &dtls_parameters(&t["dtlsParameters"])?,
        )
        .await?;
    Ok(t)
}

/// A webrtc-rs [`Subscriber`](crate::rtc_client::Subscriber) for the receive transport `recv`
/// (the answer to `createWebRtcTransport`) and the consumers `remote`, its transport connected
/// with `connectWebRtcTransport` on `client`.
pub async fn connect_subscriber(
    client: &mut ProtooClient,
    recv: &Value,
    remote: &[(MediaKind, RtpParameters)],
) -> Result<crate::rtc_client::Subscriber> {
    connect_subscriber_with(client, recv, remote, Default::default()).await
}

/// [`connect_subscriber`] with a subscriber made with `opts`.
pub async fn connect_subscriber_with(
    client: &mut ProtooClient,
    recv: &Value,
    remote: &[(MediaKind, RtpParameters)],
    opts: crate::rtc_client::ClientOptions,
) -> Result<crate::rtc_client::Subscriber> {
    let subscriber = crate::rtc_client::Subscriber::new(opts).await?;
    let dtls = subscriber
        .connect_and_consume(
            &ice_parameters(&recv["iceParameters"])?,
            &ice_candidates(&recv["iceCandidates"])?,
            &dtls_parameters(&recv["dtlsParameters"])?,
            remote,
        )
        .await?;
    client
        .ok(
            "connectWebRtcTransport",
            json!({"transportId": recv["id"], "dtlsParameters": dtls_json(&dtls)}),
        )
        .await?;
    Ok(subscriber)
}

/// Waits for `n` `newConsumer` requests on `client` (accepted as they arrive), then
/// [`connect_subscriber`]s for their consumers on the receive transport `recv` and waits (10 s
/// at most) until it is connected. Returns the subscriber and the requests' data, in order.
pub async fn subscribe(
    client: &mut ProtooClient,
    recv: &Value,
    n: usize,
) -> Result<(crate::rtc_client::Subscriber, Vec<Value>)> {
    subscribe_with(client, recv, n, Default::default()).await
}

/// [`subscribe`] with a subscriber made with `opts`.
pub async fn subscribe_with(
    client: &mut ProtooClient,
    recv: &Value,
    n: usize,
    opts: crate::rtc_client::ClientOptions,
) -> Result<(crate::rtc_client::Subscriber, Vec<Value>)> {
    let mut requests = Vec::with_capacity(n);
    let mut remote = Vec::with_capacity(n);
    for _ in 0..n {
        let data = client.wait_for("newConsumer").await?["data"].take();
        remote.push(consumer_of(&data)?);
        requests.push(data);
    }
    let subscriber = connect_subscriber_with(client, recv, &remote, opts).await?;
    subscriber.wait_connected(Duration::from_secs(10)).await?;
    Ok((subscriber, requests))
}

/// `produce` on transport `transport_id` for each of the `producers` (kind, RTP parameters, as
/// a webrtc-rs publisher's offer gives them), with `appData.source` = the kind. Returns the
/// producer ids with their kinds, in order.
pub async fn produce_all(
    client: &mut ProtooClient,
    transport_id: &str,
    producers: Vec<(MediaKind, RtpParameters)>,
) -> Result<Vec<(MediaKind, String)>> {
    let mut ids = Vec::new();
    for (kind, params) in producers {
        let kind_s = kind_str(kind);
        let r = client
            .ok(
                "produce",
                json!({
                    "transportId": transport_id, "kind": kind_s,
                    "rtpParameters": rtp_parameters_json(&params),
                    "appData": {"source": kind_s},
                }),
            )
            .await?;
        let id = r["id"].as_str().context("produce answered no id")?;
        ids.push((kind, id.to_owned()));
    }
    Ok(ids)
}

pub fn kind_str(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

pub fn kind_of(v: &Value) -> MediaKind {
    if v == "audio" {
        MediaKind::Audio
    } else {
        MediaKind::Video
    }
}

/// An HS256 token as the supervisor expects it.
pub fn token(secret: &str, room: &str, peer: &str, role: &str, exp_in_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"room": room, "peer": peer, "role": role, "exp": now + exp_in_secs}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token encodes")
}
