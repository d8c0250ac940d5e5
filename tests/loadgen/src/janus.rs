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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinHandle;

use crate::types::{DtlsRole, LocalTransport, RemoteTransport};

mod sdp;

pub use self::sdp::{Sdp, SdpMedia, SdpTransport, parse_sdp, publisher_offer, subscriber_answer};
use self::sdp::{remote_transport, role_from_answer};

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

/// Writes the Janus config of DESIGN-NOTES §3 into `dir` for the installed Janus
/// ([`janus_lib_dir`]); see [`render_janus_config`]. Start Janus with
/// `janus -F DIR -C DIR/janus.jcfg -o`; returns `DIR/janus.jcfg`.
pub fn janus_config(
    dir: &Path,
    http_port: u16,
    rtp_ports: (u16, u16),
    iface: &str,
    event_loops: u32,
) -> anyhow::Result<PathBuf> {
    let lib = janus_lib_dir()?;
    render_janus_config(dir, &lib, http_port, rtp_ports, iface, event_loops)
}

/// Renders the config templates into `dir` with Janus's module directory `lib_dir` (not
/// checked): HTTP API on 127.0.0.1:`http_port` (`/janus`), ICE/RTP on `rtp_ports`, candidates
/// only from interface `iface` (the bench veth that carries 127.0.0.2), only the videoroom
/// (+ an empty streaming config, whose stock file binds 5002/5004), `event_loops` = 0 for
/// Janus's default (one loop thread per handle). Returns `DIR/janus.jcfg`.
pub fn render_janus_config(
    dir: &Path,
    lib_dir: &Path,
    http_port: u16,
    rtp_ports: (u16, u16),
    iface: &str,
    event_loops: u32,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let dir_s = dir.to_str().context("config dir is not UTF-8")?;
    let lib_s = lib_dir.to_str().context("lib dir is not UTF-8")?;
    for (name, template) in TEMPLATES {
        let text = template
            .replace("@CONFIG_DIR@", dir_s)
            .replace("@LIB_DIR@", lib_s)
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

    #[test]
    fn config_has_no_stock_ports_and_no_placeholders() {
        // Rendering needs no Janus (the lib dir is only written into the config): a fake one
        // under the same temp dir stands in for the installed one.
        let root = std::env::temp_dir().join(format!("lg-janus-cfg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let lib = root.join("lib").join("janus");
        let dir = root.join("cfg");
        let main = render_janus_config(&dir, &lib, 18088, (20000, 29999), "lg0", 0).unwrap();
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
        std::fs::remove_dir_all(&root).unwrap();
    }
}
