//! Janus 1.x videoroom over its HTTP JSON API, and the SDP the generator offers and answers.
//!
//! No media here: the caller's media engine owns the UDP socket and the ICE/DTLS/SRTP state;
//! this module turns a [`LocalTransport`] into an SDP offer/answer and Janus's SDP into a
//! [`RemoteTransport`] plus the streams a subscriber will receive (DESIGN-NOTES §3).
//!
//! Drive order (one [`Janus`] session holds every handle of a run):
//! 1. [`Janus::connect`] creates the session and starts two tasks: a long poll that routes
//!    asynchronous events (plugin replies by transaction, `webrtcup`/`hangup` by handle)
//!    and a keepalive.
//! 2. [`Janus::create_room`] (re)creates a videoroom for this run.
//! 3. [`Janus::publish`] per publisher, then start its media (we are ICE controlling; Janus
//!    answers `setup:active`, so we are the DTLS server) and [`Janus::wait_publisher_up`]: a
//!    subscriber that joins before the publisher's PeerConnection is up gets error 428.
//! 4. Per subscriber, from many tasks at once (a semaphore bounds the requests in flight):
//!    [`Janus::join_subscriber`] (Janus's offer → [`RemoteTransport`], streams, our answer),
//!    register the peer with the media engine, then [`Janus::start_subscriber`] — or
//!    [`Janus::subscribe`] for both at once. Janus offers `setup:actpass`, we answer
//!    `setup:active` (DTLS client); Janus is ICE controlling and starts sending checks, which
//!    must be answered, as soon as it has our answer.
//! 5. [`Janus::close`] destroys the session (Janus hangs up every handle).
//!
//! Janus must gather a candidate the generator can reach from its socket: run it in the bench
//! netns with 127.0.0.2/32 on a veth (`ice_enforce_list`) and bind the generator's socket to
//! 127.0.0.2 (DESIGN-NOTES §3, [`janus_config`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinHandle;

use crate::types::{DtlsRole, LocalTransport, RemoteTransport};

/// Payload type of VP8 in our publisher offers.
pub const VP8_PT: u8 = 96;
/// Payload type of Opus in our publisher offers.
pub const OPUS_PT: u8 = 111;
/// The room the bench uses unless told otherwise.
pub const DEFAULT_ROOM: u64 = 1234;
/// Signaling requests in flight at once per session (attach/join/start of many subscribers).
const MAX_INFLIGHT: usize = 16;
/// How long a plugin request may take before its asynchronous event arrives.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Janus's session_timeout is 60 s in our config; a keepalive every 15 s leaves margin.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);
/// Janus answers a long poll after 30 s without events.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(65);
/// 428 "No such feed": retries of a subscriber join, 100 ms apart.
const NO_SUCH_FEED_RETRIES: u32 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Audio,
    Video,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        }
    }
}

/// What a publisher sends: one m-line per SSRC given (audio first, then video), Opus on
/// [`OPUS_PT`], VP8 on [`VP8_PT`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishMedia {
    pub audio_ssrc: Option<u32>,
    pub video_ssrc: Option<u32>,
    pub cname: String,
}

/// One stream a subscriber will receive, as Janus's offer announced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedStream {
    pub kind: Kind,
    pub mid: String,
    /// The SSRC Janus sends this stream with (the primary of an `ssrc-group:FID`).
    pub ssrc: u32,
    /// The payload type we accepted in our answer (Janus's PT for VP8 or Opus).
    pub pt: u8,
}

// ---------------------------------------------------------------------------------------------
// SDP
// ---------------------------------------------------------------------------------------------

/// One m-line of a parsed SDP (only what the generator needs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SdpMedia {
    /// "audio", "video", "application".
    pub kind: String,
    pub port: u16,
    pub proto: String,
    /// The format list of the m-line, as written.
    pub formats: Vec<String>,
    pub mid: Option<String>,
    /// sendrecv | sendonly | recvonly | inactive (sendrecv when absent).
    pub direction: String,
    /// (payload type, "codec/clock[/channels]").
    pub rtpmap: Vec<(u8, String)>,
    /// SSRCs in order of first appearance in `a=ssrc:` lines.
    pub ssrcs: Vec<u32>,
    /// `a=ssrc-group:FID primary rtx`.
    pub fid: Option<(u32, u32)>,
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    pub fingerprint_sha256: Option<String>,
    pub setup: Option<String>,
    /// `a=candidate:` component 1 UDP candidates (address), in order.
    pub candidates: Vec<SocketAddr>,
}

impl SdpMedia {
    /// The payload type of `codec` ("VP8/90000", "opus/48000"), case-insensitive, prefix match
    /// on the rtpmap encoding (so "opus/48000" matches "opus/48000/2").
    pub fn pt_of(&self, codec: &str) -> Option<u8> {
        let codec = codec.to_ascii_lowercase();
        self.rtpmap
            .iter()
            .find(|(_, enc)| enc.to_ascii_lowercase().starts_with(&codec))
            .map(|(pt, _)| *pt)
    }

    /// The SSRC of the media (not the retransmissions): FID primary, else the first `a=ssrc`.
    pub fn primary_ssrc(&self) -> Option<u32> {
        self.fid
            .map(|(p, _)| p)
            .or_else(|| self.ssrcs.first().copied())
    }
}

/// A parsed SDP: session-level ICE/DTLS attributes and the m-lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sdp {
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    pub fingerprint_sha256: Option<String>,
    pub setup: Option<String>,
    pub bundle: Vec<String>,
    pub media: Vec<SdpMedia>,
}

/// The transport part of a remote SDP (all m-lines are bundled on one transport).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpTransport {
    pub addr: SocketAddr,
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// Upper-case colon hex.
    pub fingerprint_sha256: String,
    pub setup: String,
}

/// Parses the attributes the generator uses; unknown lines are ignored. Fails only when the
/// text has no `v=` line or an m-line is malformed.
pub fn parse_sdp(text: &str) -> anyhow::Result<Sdp> {
    let mut sdp = Sdp::default();
    let mut seen_v = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("v=") {
            seen_v = true;
            continue;
        }
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split_whitespace();
            let kind = f.next().context("m-line without media")?.to_owned();
            let port = f
                .next()
                .context("m-line without port")?
                .split('/')
                .next()
                .unwrap_or_default()
                .parse()
                .with_context(|| format!("m-line port: {line}"))?;
            let proto = f.next().context("m-line without proto")?.to_owned();
            sdp.media.push(SdpMedia {
                kind,
                port,
                proto,
                formats: f.map(str::to_owned).collect(),
                direction: "sendrecv".to_owned(),
                ..SdpMedia::default()
            });
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
        if let Some(m) = sdp.media.last_mut() {
            match name {
                "mid" => m.mid = Some(value.to_owned()),
                "sendrecv" | "sendonly" | "recvonly" | "inactive" => {
                    name.clone_into(&mut m.direction)
                }
                "rtpmap" => {
                    if let Some((pt, enc)) = value.split_once(' ')
                        && let Ok(pt) = pt.parse()
                    {
                        m.rtpmap.push((pt, enc.trim().to_owned()));
                    }
                }
                "ssrc" => {
                    if let Some(ssrc) = value.split_whitespace().next().and_then(|s| s.parse().ok())
                        && !m.ssrcs.contains(&ssrc)
                    {
                        m.ssrcs.push(ssrc);
                    }
                }
                "ssrc-group" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() >= 3
                        && f[0] == "FID"
                        && let (Ok(a), Ok(b)) = (f[1].parse(), f[2].parse())
                    {
                        m.fid = Some((a, b));
                    }
                }
                "candidate" => {
                    if let Some(a) = parse_candidate(value) {
                        m.candidates.push(a);
                    }
                }
                "ice-ufrag" => m.ice_ufrag = Some(value.to_owned()),
                "ice-pwd" => m.ice_pwd = Some(value.to_owned()),
                "fingerprint" => {
                    m.fingerprint_sha256 = sha256_value(value).or(m.fingerprint_sha256.take())
                }
                "setup" => m.setup = Some(value.to_owned()),
                _ => {}
            }
        } else {
            match name {
                "group" => {
                    let mut f = value.split_whitespace();
                    if f.next() == Some("BUNDLE") {
                        sdp.bundle = f.map(str::to_owned).collect();
                    }
                }
                "ice-ufrag" => sdp.ice_ufrag = Some(value.to_owned()),
                "ice-pwd" => sdp.ice_pwd = Some(value.to_owned()),
                "fingerprint" => {
                    sdp.fingerprint_sha256 = sha256_value(value).or(sdp.fingerprint_sha256.take())
                }
                "setup" => sdp.setup = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    if !seen_v {
        bail!("not an SDP (no v= line)");
    }
    Ok(sdp)
}

fn sha256_value(value: &str) -> Option<String> {
    let (alg, fp) = value.split_once(' ')?;
    alg.eq_ignore_ascii_case("sha-256")
        .then(|| fp.trim().to_ascii_uppercase())
}

/// `foundation component transport priority address port typ type ...` → the address of a
/// component-1 UDP candidate.
fn parse_candidate(value: &str) -> Option<SocketAddr> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() < 8 || f[1] != "1" || !f[2].eq_ignore_ascii_case("udp") {
        return None;
    }
    let ip: IpAddr = f[4].parse().ok()?;
    Some(SocketAddr::new(ip, f[5].parse().ok()?))
}

impl Sdp {
    /// ICE credentials, fingerprint, setup and the UDP candidate (IPv4 first) of the bundle
    /// transport: the first m-line that is not rejected, falling back to session level.
    pub fn transport(&self) -> anyhow::Result<SdpTransport> {
        let m = self.media.iter().find(|m| m.port != 0);
        let pick = |media: Option<&String>, session: &Option<String>, what: &str| {
            media
                .or(session.as_ref())
                .cloned()
                .with_context(|| format!("SDP without {what}"))
        };
        let candidates: Vec<SocketAddr> = self
            .media
            .iter()
            .flat_map(|m| m.candidates.iter().copied())
            .collect();
        let addr = candidates
            .iter()
            .find(|a| a.is_ipv4())
            .or(candidates.first())
            .copied()
            .context("SDP without a UDP candidate (is Janus gathering on the bench veth?)")?;
        Ok(SdpTransport {
            addr,
            ice_ufrag: pick(
                m.and_then(|m| m.ice_ufrag.as_ref()),
                &self.ice_ufrag,
                "ice-ufrag",
            )?,
            ice_pwd: pick(m.and_then(|m| m.ice_pwd.as_ref()), &self.ice_pwd, "ice-pwd")?,
            fingerprint_sha256: pick(
                m.and_then(|m| m.fingerprint_sha256.as_ref()),
                &self.fingerprint_sha256,
                "a sha-256 fingerprint",
            )?,
            setup: pick(m.and_then(|m| m.setup.as_ref()), &self.setup, "setup")?,
        })
    }
}

/// Our DTLS role given the remote's `a=setup` in its answer (we offered actpass).
fn role_from_answer(setup: &str) -> anyhow::Result<DtlsRole> {
    match setup {
        "active" => Ok(DtlsRole::Server),
        "passive" => Ok(DtlsRole::Client),
        other => bail!("answer with setup:{other} (expected active or passive)"),
    }
}

fn session_id(local: &LocalTransport) -> u64 {
    // FNV-1a of the ufrag: distinct per peer, deterministic for tests.
    local
        .ice_ufrag
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
        >> 1
}

fn push_transport_attrs(s: &mut String, local: &LocalTransport, setup: &str) {
    let _ = write!(
        s,
        "c=IN IP4 {ip}\r\na=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\na=fingerprint:sha-256 {fp}\r\na=setup:{setup}\r\n",
        ip = ip4_or_any(local.addr.ip()),
        u = local.ice_ufrag,
        p = local.ice_pwd,
        fp = local.fingerprint_sha256,
    );
}

fn push_candidate(s: &mut String, local: &LocalTransport) {
    let _ = write!(
        s,
        "a=candidate:1 1 udp 2130706431 {} {} typ host\r\na=end-of-candidates\r\n",
        local.addr.ip(),
        local.addr.port()
    );
}

fn ip4_or_any(ip: IpAddr) -> IpAddr {
    if ip.is_ipv4() {
        ip
    } else {
        IpAddr::from([0, 0, 0, 0])
    }
}

/// The publisher's offer: sendonly, `setup:actpass`, BUNDLE + rtcp-mux + rtcp-rsize, one m-line
/// per SSRC of `media` (audio mid "0" first when present, then video), our host candidate.
pub fn publisher_offer(local: &LocalTransport, media: &PublishMedia) -> anyhow::Result<String> {
    let mut lines: Vec<(Kind, u32)> = Vec::new();
    if let Some(s) = media.audio_ssrc {
        lines.push((Kind::Audio, s));
    }
    if let Some(s) = media.video_ssrc {
        lines.push((Kind::Video, s));
    }
    if lines.is_empty() {
        bail!("a publisher needs an audio or a video SSRC");
    }
    let mids: Vec<String> = (0..lines.len()).map(|i| i.to_string()).collect();
    let mut s = format!(
        "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\n",
        session_id(local),
        mids.join(" ")
    );
    for ((kind, ssrc), mid) in lines.iter().zip(&mids) {
        let pt = match kind {
            Kind::Audio => OPUS_PT,
            Kind::Video => VP8_PT,
        };
        let _ = write!(s, "m={} 9 UDP/TLS/RTP/SAVPF {pt}\r\n", kind.as_str());
        push_transport_attrs(&mut s, local, "actpass");
        let _ = write!(
            s,
            "a=mid:{mid}\r\na=sendonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n"
        );
        match kind {
            Kind::Audio => {
                let _ = write!(
                    s,
                    "a=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} minptime=10;useinbandfec=1\r\n"
                );
            }
            Kind::Video => {
                let _ = write!(
                    s,
                    "a=rtpmap:{pt} VP8/90000\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\na=rtcp-fb:{pt} ccm fir\r\n"
                );
            }
        }
        let _ = write!(s, "a=ssrc:{ssrc} cname:{}\r\n", media.cname);
        push_candidate(&mut s, local);
    }
    Ok(s)
}

/// Our answer to a subscriber offer: `recvonly`, `setup:active`, the offer's mids, one payload
/// type per m-line (VP8 for video, Opus for audio; no rtx, no extmaps, no rtcp-fb), rtcp-mux;
/// m-lines we cannot take (other codecs, data channels, inactive or rejected) are rejected
/// with port 0. Returns the SDP and the streams Janus will send.
pub fn subscriber_answer(
    offer: &Sdp,
    local: &LocalTransport,
) -> anyhow::Result<(String, Vec<ReceivedStream>)> {
    let mut body = String::new();
    let mut bundle = Vec::new();
    let mut streams = Vec::new();
    for (i, m) in offer.media.iter().enumerate() {
        let mid = m.mid.clone().unwrap_or_else(|| i.to_string());
        let codec = match m.kind.as_str() {
            "audio" => Some((Kind::Audio, "opus/48000")),
            "video" => Some((Kind::Video, "VP8/90000")),
            _ => None,
        };
        let accepted = codec.and_then(|(kind, c)| {
            let pt = m.pt_of(c)?;
            let sends = m.port != 0 && matches!(m.direction.as_str(), "sendonly" | "sendrecv");
            sends.then_some((kind, pt))
        });
        let Some((kind, pt)) = accepted else {
            let _ = write!(
                body,
                "m={} 0 {} {}\r\n",
                m.kind,
                m.proto,
                m.formats.join(" ")
            );
            let _ = write!(body, "c=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=inactive\r\n");
            continue;
        };
        let ssrc = m
            .primary_ssrc()
            .with_context(|| format!("offer m-line {mid} ({}) without a=ssrc", m.kind))?;
        let enc = m
            .rtpmap
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, e)| e.as_str())
            .unwrap_or_default();
        let _ = write!(body, "m={} 9 {} {pt}\r\n", m.kind, m.proto);
        push_transport_attrs(&mut body, local, "active");
        let _ = write!(
            body,
            "a=mid:{mid}\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:{pt} {enc}\r\n"
        );
        push_candidate(&mut body, local);
        bundle.push(mid.clone());
        streams.push(ReceivedStream {
            kind,
            mid,
            ssrc,
            pt,
        });
    }
    if streams.is_empty() {
        bail!("the offer has no VP8 or Opus stream to receive");
    }
    let s = format!(
        "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\n{body}",
        session_id(local),
        bundle.join(" ")
    );
    Ok((s, streams))
}

fn remote_transport(t: SdpTransport, our_dtls_role: DtlsRole) -> RemoteTransport {
    RemoteTransport {
        addr: t.addr,
        ice_ufrag: t.ice_ufrag,
        ice_pwd: t.ice_pwd,
        ice_lite: false,
        fingerprint_sha256: t.fingerprint_sha256,
        our_dtls_role,
    }
}

/// A subscriber that joined and has Janus's offer, not started yet (see
/// [`Janus::join_subscriber`]).
#[derive(Clone, Debug)]
pub struct SubscriberOffer {
    /// Janus's handle of this subscriber.
    pub handle: u64,
    pub feed: u64,
    /// Janus's side of the transport.
    pub remote: RemoteTransport,
    /// What the subscriber will receive, in m-line order.
    pub streams: Vec<ReceivedStream>,
    /// Our answer, sent by [`Janus::start_subscriber`].
    answer: String,
}

// ---------------------------------------------------------------------------------------------
// Session, handles, events
// ---------------------------------------------------------------------------------------------

/// Why `Mutex::lock` cannot fail here: no code panics while holding one of these locks.
const NOT_POISONED: &str = "no panic while a janus lock is held";

/// Where a handle's PeerConnection stands, from Janus's `webrtcup` / `hangup` events.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PcState {
    New,
    Up,
    HungUp(String),
}

#[derive(Debug, Default)]
struct Shared {
    /// Plugin requests waiting for their asynchronous event, by transaction.
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// Every attached handle.
    handles: Mutex<HashMap<u64, watch::Sender<PcState>>>,
}

impl Shared {
    fn dispatch(&self, ev: Value) {
        let kind = ev["janus"].as_str().unwrap_or_default();
        let sender = ev["sender"].as_u64();
        match kind {
            "keepalive" | "ack" => {}
            "event" => {
                let waiter = ev["transaction"]
                    .as_str()
                    .and_then(|t| self.pending.lock().expect(NOT_POISONED).remove(t));
                match waiter {
                    Some(w) => {
                        let _ = w.send(ev);
                    }
                    None => {
                        tracing::debug!(target: "janus", sender, event = %ev, "unsolicited plugin event")
                    }
                }
            }
            "webrtcup" | "hangup" | "detached" => {
                let state = if kind == "webrtcup" {
                    PcState::Up
                } else {
                    PcState::HungUp(ev["reason"].as_str().unwrap_or(kind).to_owned())
                };
                if let Some(h) = sender
                    && let Some(tx) = self.handles.lock().expect(NOT_POISONED).get(&h)
                {
                    tx.send_replace(state);
                }
                if kind != "webrtcup" {
                    tracing::debug!(target: "janus", sender, event = %ev, "handle down");
                }
            }
            _ => tracing::trace!(target: "janus", event = %ev, "event"),
        }
    }
}

/// One Janus session (HTTP API) with the videoroom plugin.
#[derive(Debug)]
pub struct Janus {
    http: reqwest::Client,
    /// e.g. `http://127.0.0.1:18088/janus`.
    base: String,
    session: u64,
    shared: Arc<Shared>,
    /// Handle for room requests.
    control: u64,
    feeds: Mutex<HashMap<u64, u64>>,
    inflight: Semaphore,
    next_tx: AtomicU64,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Janus {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Janus's synchronous reply: `success` (or `ack`), else the error it carries.
fn check_reply(v: Value) -> anyhow::Result<Value> {
    match v["janus"].as_str() {
        Some("success" | "ack") => Ok(v),
        Some("error") => bail!(
            "janus error {}: {}",
            v["error"]["code"],
            v["error"]["reason"].as_str().unwrap_or("?")
        ),
        _ => bail!("unexpected janus reply: {v}"),
    }
}

/// A videoroom error reply (`error_code`, `error`), e.g. 427 room exists, 428 no such feed.
#[derive(Debug)]
pub struct VideoroomError {
    pub code: i64,
    pub reason: String,
}

impl std::fmt::Display for VideoroomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "videoroom error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for VideoroomError {}

/// A plugin error inside an event or a synchronous plugin reply.
fn plugin_error(v: &Value) -> Option<VideoroomError> {
    let d = &v["plugindata"]["data"];
    d["error_code"].as_i64().map(|code| VideoroomError {
        code,
        reason: d["error"].as_str().unwrap_or_default().to_owned(),
    })
}

fn is_videoroom_error(e: &anyhow::Error, code: i64) -> bool {
    e.downcast_ref::<VideoroomError>()
        .is_some_and(|v| v.code == code)
}

async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let resp = http
        .post(url)
        .json(body)
        .timeout(EVENT_TIMEOUT)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    resp.json()
        .await
        .with_context(|| format!("POST {url}: reply"))
}

impl Janus {
    /// Creates a session on `base` (`http://IP:PORT/janus`) and starts the long poll and the
    /// keepalive. Needs a tokio runtime.
    pub async fn connect(base: &str) -> anyhow::Result<Janus> {
        let base = base.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(MAX_INFLIGHT + 2)
            .build()?;
        let reply = check_reply(
            post_json(
                &http,
                &base,
                &json!({"janus": "create", "transaction": "lg-create"}),
            )
            .await?,
        )
        .with_context(|| format!("creating a Janus session at {base}"))?;
        let session = reply["data"]["id"]
            .as_u64()
            .context("create: no session id")?;
        let shared = Arc::new(Shared::default());
        let poll = tokio::spawn(long_poll(
            http.clone(),
            format!("{base}/{session}"),
            shared.clone(),
        ));
        let keepalive = tokio::spawn(keepalive(http.clone(), format!("{base}/{session}")));
        let mut janus = Janus {
            http,
            base,
            session,
            shared,
            control: 0,
            feeds: Mutex::new(HashMap::new()),
            inflight: Semaphore::new(MAX_INFLIGHT),
            next_tx: AtomicU64::new(1),
            tasks: vec![poll, keepalive],
        };
        janus.control = janus.attach().await?;
        Ok(janus)
    }

    pub fn session_id(&self) -> u64 {
        self.session
    }

    fn transaction(&self) -> String {
        format!("lg{}", self.next_tx.fetch_add(1, Ordering::Relaxed))
    }

    async fn attach(&self) -> anyhow::Result<u64> {
        let url = format!("{}/{}", self.base, self.session);
        let body = json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": self.transaction()});
        let reply = check_reply(post_json(&self.http, &url, &body).await?).context("attach")?;
        let handle = reply["data"]["id"]
            .as_u64()
            .context("attach: no handle id")?;
        self.shared
            .handles
            .lock()
            .expect(NOT_POISONED)
            .insert(handle, watch::channel(PcState::New).0);
        Ok(handle)
    }

    /// A videoroom request on `handle`: the synchronous reply (`success`) or, for
    /// asynchronous requests (`ack`), the event with our transaction. Plugin errors are
    /// [`VideoroomError`]s.
    async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let tx = self.transaction();
        let (wtx, wrx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .expect(NOT_POISONED)
            .insert(tx.clone(), wtx);
        let mut msg = json!({"janus": "message", "transaction": tx, "body": body});
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        let url = format!("{}/{}/{handle}", self.base, self.session);
        let reply = match post_json(&self.http, &url, &msg)
            .await
            .and_then(check_reply)
        {
            Ok(r) => r,
            Err(e) => {
                self.shared.pending.lock().expect(NOT_POISONED).remove(&tx);
                return Err(e.context(format!("videoroom {}", body["request"])));
            }
        };
        let ev = if reply["janus"] == "success" {
            self.shared.pending.lock().expect(NOT_POISONED).remove(&tx);
            reply
        } else {
            match tokio::time::timeout(EVENT_TIMEOUT, wrx).await {
                Ok(Ok(ev)) => ev,
                Ok(Err(_)) => bail!("janus session poll ended"),
                Err(_) => {
                    self.shared.pending.lock().expect(NOT_POISONED).remove(&tx);
                    bail!(
                        "videoroom {}: no event within {EVENT_TIMEOUT:?}",
                        body["request"]
                    );
                }
            }
        };
        if let Some(e) = plugin_error(&ev) {
            return Err(e.into());
        }
        Ok(ev)
    }

    /// (Re)creates videoroom `room` for up to `publishers` publishers: VP8 + Opus, no bitrate
    /// cap, no periodic FIR (the generator sends keyframes itself), not permanent.
    pub async fn create_room(&self, room: u64, publishers: u32) -> anyhow::Result<()> {
        let create = json!({
            "request": "create", "room": room, "permanent": false, "description": "loadgen",
            "publishers": publishers.max(1), "bitrate": 0, "fir_freq": 0,
            "videocodec": "vp8", "audiocodec": "opus", "record": false,
        });
        match self.message(self.control, create.clone(), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_videoroom_error(&e, 427) => {
                // Left over from an earlier run of this Janus: start clean.
                self.destroy_room(room).await?;
                self.message(self.control, create, None).await.map(drop)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn destroy_room(&self, room: u64) -> anyhow::Result<()> {
        self.message(
            self.control,
            json!({"request": "destroy", "room": room}),
            None,
        )
        .await
        .map(drop)
    }

    /// Publishes in `room`: our offer from `local`/`media`, Janus's answer as the
    /// [`RemoteTransport`] (Janus answers `setup:active`: we are the DTLS server and ICE
    /// controlling) and the feed id subscribers join.
    pub async fn publish(
        &self,
        room: u64,
        local: &LocalTransport,
        media: &PublishMedia,
    ) -> anyhow::Result<(RemoteTransport, u64)> {
        let offer = publisher_offer(local, media)?;
        let _permit = self.inflight.acquire().await?;
        let handle = self.attach().await?;
        let body = json!({"request": "joinandconfigure", "ptype": "publisher", "room": room, "display": media.cname});
        let ev = self
            .message(handle, body, Some(json!({"type": "offer", "sdp": offer})))
            .await?;
        let feed = ev["plugindata"]["data"]["id"]
            .as_u64()
            .context("publisher joined without an id")?;
        let sdp = ev["jsep"]["sdp"]
            .as_str()
            .context("publisher join without an answer")?;
        tracing::trace!(target: "janus", feed, %offer, answer = %sdp, "publisher SDP");
        let t = parse_sdp(sdp)?.transport().context("Janus's answer")?;
        let role = role_from_answer(&t.setup)?;
        self.feeds.lock().expect(NOT_POISONED).insert(feed, handle);
        tracing::debug!(target: "janus", feed, handle, addr = %t.addr, "published");
        Ok((remote_transport(t, role), feed))
    }

    /// Waits for Janus's `webrtcup` on the publisher of `feed` (its ICE and DTLS are up).
    pub async fn wait_publisher_up(&self, feed: u64, timeout: Duration) -> anyhow::Result<()> {
        let handle = *self
            .feeds
            .lock()
            .expect(NOT_POISONED)
            .get(&feed)
            .with_context(|| format!("feed {feed} was not published here"))?;
        let mut rx = self
            .shared
            .handles
            .lock()
            .expect(NOT_POISONED)
            .get(&handle)
            .context("publisher handle gone")?
            .subscribe();
        let state = tokio::time::timeout(timeout, rx.wait_for(|s| *s != PcState::New))
            .await
            .map_err(|_| anyhow!("publisher {feed}: no webrtcup within {timeout:?}"))?
            .map_err(|_| anyhow!("publisher {feed}: handle dropped"))?
            .clone();
        match state {
            PcState::Up => Ok(()),
            PcState::HungUp(r) => bail!("publisher {feed} hung up: {r}"),
            PcState::New => unreachable!("waited for a state other than New"),
        }
    }

    /// Subscribes to `feed` in one call: [`Janus::join_subscriber`] then
    /// [`Janus::start_subscriber`]. Janus starts its ICE checks as soon as it has our answer,
    /// possibly before this returns: a media engine that registers the peer only afterwards
    /// must send checks of its own (controlled role) to recover from the checks it dropped,
    /// or use the two calls and register the peer in between.
    pub async fn subscribe(
        &self,
        room: u64,
        feed: u64,
        local: &LocalTransport,
    ) -> anyhow::Result<(RemoteTransport, Vec<ReceivedStream>)> {
        let sub = self.join_subscriber(room, feed, local).await?;
        self.start_subscriber(&sub).await?;
        Ok((sub.remote, sub.streams))
    }

    /// Attaches a handle and joins `feed` as a subscriber (retrying 428 "No such feed" while the
    /// publisher comes up): Janus's offer gives the [`RemoteTransport`] (Janus is ICE
    /// controlling, we are the DTLS client) and the streams; our answer from `local` (see
    /// [`subscriber_answer`]) is kept for [`Janus::start_subscriber`]. Safe to call from many
    /// tasks at once.
    pub async fn join_subscriber(
        &self,
        room: u64,
        feed: u64,
        local: &LocalTransport,
    ) -> anyhow::Result<SubscriberOffer> {
        let _permit = self.inflight.acquire().await?;
        let handle = self.attach().await?;
        let join = json!({"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]});
        let mut tries = 0;
        let ev = loop {
            match self.message(handle, join.clone(), None).await {
                Err(e) if is_videoroom_error(&e, 428) && tries < NO_SUCH_FEED_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                r => break r.with_context(|| format!("subscribing to feed {feed}"))?,
            }
        };
        let offer_sdp = ev["jsep"]["sdp"]
            .as_str()
            .context("subscriber join without an offer")?;
        let offer = parse_sdp(offer_sdp)?;
        let t = offer.transport().context("Janus's offer")?;
        let role = match t.setup.as_str() {
            "actpass" | "passive" => DtlsRole::Client,
            "active" => DtlsRole::Server,
            other => bail!("offer with setup:{other}"),
        };
        let (answer, streams) = subscriber_answer(&offer, local)?;
        tracing::trace!(target: "janus", feed, offer = %offer_sdp, %answer, "subscriber SDP");
        Ok(SubscriberOffer {
            handle,
            feed,
            remote: remote_transport(t, role),
            streams,
            answer,
        })
    }

    /// Sends our answer: Janus starts ICE checks towards `local` right away.
    pub async fn start_subscriber(&self, sub: &SubscriberOffer) -> anyhow::Result<()> {
        let _permit = self.inflight.acquire().await?;
        self.message(
            sub.handle,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": sub.answer})),
        )
        .await
        .with_context(|| format!("starting the subscriber of feed {}", sub.feed))?;
        tracing::debug!(target: "janus", feed = sub.feed, handle = sub.handle, addr = %sub.remote.addr, "subscribed");
        Ok(())
    }

    /// Destroys the session (Janus hangs up and detaches every handle) and stops the tasks.
    pub async fn close(self) {
        let url = format!("{}/{}", self.base, self.session);
        let body = json!({"janus": "destroy", "transaction": self.transaction()});
        if let Err(e) = post_json(&self.http, &url, &body)
            .await
            .and_then(check_reply)
        {
            tracing::debug!(target: "janus", error = %e, "destroying the session");
        }
    }
}

async fn long_poll(http: reqwest::Client, url: String, shared: Arc<Shared>) {
    let url = format!("{url}?maxev=64");
    loop {
        let got = async {
            let r = http.get(&url).timeout(LONG_POLL_TIMEOUT).send().await?;
            anyhow::Ok(r.json::<Value>().await?)
        }
        .await;
        match got {
            Ok(Value::Array(evs)) => evs.into_iter().for_each(|e| shared.dispatch(e)),
            Ok(v) if v["janus"] == "error" => {
                tracing::warn!(target: "janus", reply = %v, "long poll: session gone");
                shared.pending.lock().expect(NOT_POISONED).clear();
                return;
            }
            Ok(v) => shared.dispatch(v),
            Err(e) => {
                tracing::debug!(target: "janus", error = %e, "long poll");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn keepalive(http: reqwest::Client, url: String) {
    let mut n = 0u64;
    loop {
        tokio::time::sleep(KEEPALIVE_EVERY).await;
        n += 1;
        let body = json!({"janus": "keepalive", "transaction": format!("lg-ka{n}")});
        if let Err(e) = post_json(&http, &url, &body).await {
            tracing::debug!(target: "janus", error = %e, "keepalive");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The config templates (tests/loadgen/janus/), also rendered by scripts/bench-loadgen with sed.
const TEMPLATES: [(&str, &str); 4] = [
    ("janus.jcfg", include_str!("../janus/janus.jcfg.in")),
    (
        "janus.transport.http.jcfg",
        include_str!("../janus/janus.transport.http.jcfg.in"),
    ),
    (
        "janus.plugin.videoroom.jcfg",
        include_str!("../janus/janus.plugin.videoroom.jcfg.in"),
    ),
    (
        "janus.plugin.streaming.jcfg",
        include_str!("../janus/janus.plugin.streaming.jcfg.in"),
    ),
];

/// Janus's module directory (`/usr/lib/<multiarch>/janus`, with `plugins/`).
pub fn janus_lib_dir() -> anyhow::Result<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/usr/lib/janus"),
        PathBuf::from("/usr/local/lib/janus"),
    ];
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        dirs.extend(rd.flatten().map(|e| e.path().join("janus")));
    }
    dirs.into_iter()
        .find(|d| d.join("plugins").join("libjanus_videoroom.so").is_file())
        .context("Janus's plugins not found (apt-get install janus)")
}

/// Writes the Janus config of DESIGN-NOTES §3 into `dir`: HTTP API on 127.0.0.1:`http_port`
/// (`/janus`), ICE/RTP on `rtp_ports`, candidates only from interface `iface` (the bench veth
/// that carries 127.0.0.2), only the videoroom (+ an empty streaming config, whose stock file
/// binds 5002/5004), `event_loops` = 0 for Janus's default (one loop thread per handle).
/// Start Janus with `janus -F DIR -C DIR/janus.jcfg -o`; returns `DIR/janus.jcfg`.
pub fn janus_config(
    dir: &Path,
    http_port: u16,
    rtp_ports: (u16, u16),
    iface: &str,
    event_loops: u32,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let lib = janus_lib_dir()?;
    let dir_s = dir.to_str().context("config dir is not UTF-8")?;
    for (name, template) in TEMPLATES {
        let text = template
            .replace("@CONFIG_DIR@", dir_s)
            .replace("@LIB_DIR@", lib.to_str().context("lib dir is not UTF-8")?)
            .replace("@HTTP_PORT@", &http_port.to_string())
            .replace("@RTP_PORTS@", &format!("{}-{}", rtp_ports.0, rtp_ports.1))
            .replace("@ICE_IFACE@", iface)
            .replace("@EVENT_LOOPS@", &event_loops.to_string());
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))?;
    }
    Ok(dir.join("janus.jcfg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from Janus 1.1.2 in the bench netns (tests/loadgen/janus/fixtures/).
    const PUB_ANSWER: &str = include_str!("../janus/fixtures/publisher-answer.sdp");
    const SUB_OFFER: &str = include_str!("../janus/fixtures/subscriber-offer.sdp");

    fn local() -> LocalTransport {
        LocalTransport {
            addr: "127.0.0.2:40000".parse().unwrap(),
            ice_ufrag: "lgufrag1".into(),
            ice_pwd: "lg-password-0123456789abcd".into(),
            fingerprint_sha256: "AB:CD:EF".into(),
        }
    }

    #[test]
    fn publisher_offer_audio_and_video() {
        let media = PublishMedia {
            audio_ssrc: Some(1111),
            video_ssrc: Some(2222),
            cname: "lg".into(),
        };
        let offer = publisher_offer(&local(), &media).unwrap();
        assert!(offer.starts_with("v=0\r\n"));
        assert!(
            offer.lines().all(|l| !l.is_empty()),
            "no empty lines:\n{offer}"
        );
        assert!(offer.ends_with("\r\n"));
        let p = parse_sdp(&offer).unwrap();
        assert_eq!(p.bundle, ["0", "1"]);
        assert_eq!(p.media.len(), 2);
        let (a, v) = (&p.media[0], &p.media[1]);
        assert_eq!(
            (a.kind.as_str(), a.mid.as_deref(), a.formats.as_slice()),
            ("audio", Some("0"), &["111".to_owned()][..])
        );
        assert_eq!(
            (v.kind.as_str(), v.mid.as_deref(), v.formats.as_slice()),
            ("video", Some("1"), &["96".to_owned()][..])
        );
        assert_eq!(a.pt_of("opus/48000"), Some(OPUS_PT));
        assert_eq!(v.pt_of("vp8/90000"), Some(VP8_PT));
        assert_eq!(
            (a.ssrcs.as_slice(), v.ssrcs.as_slice()),
            (&[1111][..], &[2222][..])
        );
        for m in &p.media {
            assert_eq!(m.direction, "sendonly");
            assert_eq!(m.setup.as_deref(), Some("actpass"));
            assert_eq!(
                m.candidates,
                ["127.0.0.2:40000".parse::<SocketAddr>().unwrap()]
            );
        }
        for want in [
            "a=rtcp-mux\r\n",
            "a=rtcp-rsize\r\n",
            "a=rtcp-fb:96 nack pli\r\n",
            "a=ssrc:2222 cname:lg\r\n",
        ] {
            assert!(offer.contains(want), "{want:?} missing:\n{offer}");
        }
        let t = p.transport().unwrap();
        assert_eq!(
            (t.ice_ufrag.as_str(), t.fingerprint_sha256.as_str()),
            ("lgufrag1", "AB:CD:EF")
        );
    }

    #[test]
    fn publisher_offer_video_only() {
        let media = PublishMedia {
            audio_ssrc: None,
            video_ssrc: Some(7),
            cname: "c".into(),
        };
        let p = parse_sdp(&publisher_offer(&local(), &media).unwrap()).unwrap();
        assert_eq!(p.bundle, ["0"]);
        assert_eq!(p.media.len(), 1);
        assert_eq!(p.media[0].kind, "video");
        let none = PublishMedia {
            audio_ssrc: None,
            video_ssrc: None,
            cname: "c".into(),
        };
        assert!(publisher_offer(&local(), &none).is_err());
    }

    #[test]
    fn janus_publisher_answer() {
        let p = parse_sdp(PUB_ANSWER).unwrap();
        let t = p.transport().unwrap();
        assert_eq!(t.setup, "active");
        assert_eq!(role_from_answer(&t.setup).unwrap(), DtlsRole::Server);
        assert_eq!(t.addr.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_ne!(t.addr.port(), 0);
        assert!(!t.ice_ufrag.is_empty() && !t.ice_pwd.is_empty());
        assert_eq!(t.fingerprint_sha256.len(), 32 * 3 - 1);
        assert!(
            t.fingerprint_sha256
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase() || c == ':')
        );
        assert!(p.media.iter().all(|m| m.direction == "recvonly"));
    }

    #[test]
    fn janus_subscriber_offer_and_our_answer() {
        let offer = parse_sdp(SUB_OFFER).unwrap();
        let t = offer.transport().unwrap();
        assert_eq!(t.setup, "actpass");
        assert_eq!(t.addr.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        let video = offer.media.iter().find(|m| m.kind == "video").unwrap();
        assert!(video.fid.is_some(), "Janus offers rtx with an FID group");
        assert_eq!(video.primary_ssrc(), video.fid.map(|f| f.0));

        let (answer, streams) = subscriber_answer(&offer, &local()).unwrap();
        let kinds: Vec<Kind> = streams.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [Kind::Audio, Kind::Video]);
        for s in &streams {
            let m = offer
                .media
                .iter()
                .find(|m| m.mid.as_deref() == Some(&s.mid))
                .unwrap();
            assert_eq!(Some(s.ssrc), m.primary_ssrc());
            assert_eq!(
                s.pt,
                if s.kind == Kind::Video {
                    m.pt_of("VP8/90000")
                } else {
                    m.pt_of("opus")
                }
                .unwrap()
            );
        }
        let a = parse_sdp(&answer).unwrap();
        assert_eq!(a.media.len(), offer.media.len());
        for (am, om) in a.media.iter().zip(&offer.media) {
            assert_eq!(am.mid, om.mid);
            assert_eq!(am.direction, "recvonly");
            assert_eq!(am.setup.as_deref(), Some("active"));
            assert_eq!(am.formats.len(), 1, "one payload type per m-line");
            assert!(am.ssrcs.is_empty());
        }
        assert_eq!(
            a.bundle,
            offer
                .media
                .iter()
                .filter_map(|m| m.mid.clone())
                .collect::<Vec<_>>()
        );
        for absent in ["rtx", "extmap", "rtcp-fb", "ssrc-group", "actpass"] {
            assert!(
                !answer.contains(absent),
                "{absent} in our answer:\n{answer}"
            );
        }
    }

    #[test]
    fn answer_rejects_what_we_cannot_receive() {
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n\
            a=fingerprint:sha-256 aa:bb\r\na=setup:actpass\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 98\r\na=mid:0\r\na=sendonly\r\na=rtpmap:98 H264/90000\r\na=ssrc:5 cname:j\r\n\
            a=candidate:1 1 udp 1 127.0.0.2 20000 typ host\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n\
            a=ssrc-group:FID 10 11\r\na=ssrc:10 cname:j\r\na=ssrc:11 cname:j\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
        let offer = parse_sdp(offer).unwrap();
        let t = offer.transport().unwrap();
        assert_eq!(t.fingerprint_sha256, "AA:BB");
        let (answer, streams) = subscriber_answer(&offer, &local()).unwrap();
        assert_eq!(
            streams,
            [ReceivedStream {
                kind: Kind::Video,
                mid: "1".into(),
                ssrc: 10,
                pt: 96
            }]
        );
        let a = parse_sdp(&answer).unwrap();
        assert_eq!(a.bundle, ["1"]);
        assert_eq!(
            a.media.iter().map(|m| m.port).collect::<Vec<_>>(),
            [0, 9, 0]
        );
        assert_eq!(a.media[2].kind, "application");
    }

    #[test]
    fn parse_errors() {
        assert!(parse_sdp("hello").is_err());
        let no_candidate = "v=0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\na=fingerprint:sha-256 AA\r\na=setup:active\r\nm=video 9 X 96\r\n";
        assert!(parse_sdp(no_candidate).unwrap().transport().is_err());
        assert!(role_from_answer("actpass").is_err());
    }

    #[test]
    fn config_has_no_stock_ports_and_no_placeholders() {
        let Ok(lib) = janus_lib_dir() else {
            eprintln!("janus not installed: skipped");
            return;
        };
        let dir = std::env::temp_dir().join(format!("lg-janus-cfg-{}", std::process::id()));
        let main = janus_config(&dir, 18088, (20000, 29999), "lg0", 0).unwrap();
        assert_eq!(main, dir.join("janus.jcfg"));
        let mut all = String::new();
        for (name, _) in TEMPLATES {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            all.extend(
                text.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .map(|l| format!("{l}\n")),
            );
        }
        assert!(!all.contains('@'), "unrendered placeholder:\n{all}");
        for stock in ["8088 ", "8188", "5002", "5004", "= 8088"] {
            assert!(!all.contains(stock), "stock port {stock} in:\n{all}");
        }
        assert!(all.contains("port = 18088"));
        assert!(all.contains("rtp_port_range = \"20000-29999\""));
        assert!(all.contains("ice_enforce_list = \"lg0\""));
        assert!(all.contains(&format!("plugins_folder = \"{}/plugins\"", lib.display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
