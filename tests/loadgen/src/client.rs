//! What the ferrosfu (protoo) and mediasoup targets share. ferrosfu's protoo API copies
//! mediasoup's shapes, and our mediasoup driver (`tests/loadgen/mediasoup/server.mjs`) keeps
//! ferrosfu's method names, so one client does both: `createWebRtcTransport` → the server's ICE
//! and DTLS parameters → `connectWebRtcTransport` with our role and fingerprint → a controlling
//! ICE peer in the engine (both servers are ICE-lite); `produce` with a generator stream.

use std::future::Future;
use std::ops::Range;
use std::time::Instant;

use anyhow::{Context as _, Result};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::LoadConfig;
use crate::media::{EngineHandle, MediaKind, PeerId, SendSpec, check_spec};
use crate::peer::{self, IceRole, local_transport, random_bytes};
use crate::types::{DtlsRole, RemoteTransport};

/// Joins in flight at once.
pub(crate) const JOIN_PARALLELISM: usize = 32;
/// The payload types our producers use (the router maps them to its own).
pub(crate) const VIDEO_PT: u8 = 96;
pub(crate) const OPUS_PT: u8 = 111;

/// A request/response signaling channel (a protoo WebSocket, the mediasoup driver's HTTP API).
pub(crate) trait Rpc {
    async fn request(&self, method: &str, data: Value) -> Result<Value>;
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

pub(crate) fn random_ssrc() -> u32 {
    let b = random_bytes(4);
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]).max(1)
}

/// A producer's `rtpParameters` (mediasoup's shape).
pub(crate) fn rtp_parameters(kind: MediaKind, ssrc: u32) -> Value {
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

/// The router's capabilities as our subscribers declare them: without header extensions
/// unless `--header-extensions` (then forwarded packets carry MID, transport-wide sequence
/// number and abs-send-time, as a browser would negotiate).
pub(crate) fn subscriber_caps(mut caps: Value, header_extensions: bool) -> Value {
    if !header_extensions {
        caps["headerExtensions"] = json!([]);
    }
    caps
}

/// createWebRtcTransport + connectWebRtcTransport + the client peer in the engine: the
/// engine's peer and the server's transport id. Producing transports: we are the DTLS client;
/// consuming ones: the DTLS server (the server sends the ClientHello once ICE is up).
pub(crate) async fn transport(
    conn: &impl Rpc,
    engine: &EngineHandle,
    cfg: &LoadConfig,
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
    let (our_role, signaled) = if producing {
        (DtlsRole::Client, "client")
    } else {
        (DtlsRole::Server, "server")
    };
    let remote = remote_transport(&t, our_role)?;
    let local = local_transport(engine.local_addr())?;
    conn.request(
        "connectWebRtcTransport",
        json!({"transportId": id, "dtlsParameters": {"role": signaled,
               "fingerprints": [{"algorithm": "sha-256", "value": local.fingerprint_sha256}]}}),
    )
    .await?;
    // Added after connect: our ClientHello must not reach a transport without a DTLS role.
    let peer = peer::connect(
        local,
        remote,
        cfg.profile,
        IceRole::Controlling,
        Instant::now(),
    )?;
    let kind = if producing { "send" } else { "recv" };
    let peer = engine.add_peer(format!("{name}/{kind}"), peer).await?;
    Ok((peer, id))
}

/// A generator stream on `send` and the server's producer for it: the producer's id.
pub(crate) async fn produce(
    conn: &impl Rpc,
    engine: &EngineHandle,
    cfg: &LoadConfig,
    send: PeerId,
    transport_id: &str,
    kind: MediaKind,
) -> Result<String> {
    let ssrc = random_ssrc();
    let spec = SendSpec {
        kind,
        ssrc,
        pt: match kind {
            MediaKind::Video => VIDEO_PT,
            MediaKind::Audio => OPUS_PT,
        },
        bitrate: cfg.bitrate,
        packet_size: cfg.packet_size,
    };
    check_spec(&spec)?;
    let stream = engine.add_send_stream(send, spec).await?;
    let r = conn
        .request(
            "produce",
            json!({"transportId": transport_id, "kind": kind.as_str(),
                   "rtpParameters": rtp_parameters(kind, ssrc), "appData": {}}),
        )
        .await?;
    let id = r["id"].as_str().context("produce: no id")?.to_owned();
    engine.bind_producer(stream, id.clone())?;
    Ok(id)
}

/// Runs `join(i)` for every `i` in `range`, `JOIN_PARALLELISM` at a time; what joined, in any
/// order, and how many failed (each failure printed).
pub(crate) async fn join_parallel<T, F, Fut>(
    range: Range<u32>,
    what: &str,
    join: F,
) -> (Vec<T>, u32)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let results: Vec<(u32, Result<T>)> = futures_util::stream::iter(range)
        .map(|i| {
            let f = join(i);
            async move { (i, f.await) }
        })
        .buffer_unordered(JOIN_PARALLELISM)
        .collect()
        .await;
    let mut ok = Vec::with_capacity(results.len());
    let mut failed = 0;
    for (i, r) in results {
        match r {
            Ok(t) => ok.push(t),
            Err(e) => {
                failed += 1;
                eprintln!("loadgen: {what} {i} did not join: {e:#}");
            }
        }
    }
    (ok, failed)
}
