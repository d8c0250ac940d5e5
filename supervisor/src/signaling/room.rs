//! Rooms and peers, as mediasoup-demo's `server/lib/Room.js` runs them.
//!
//! A room is created by its first peer, gets one router on the least-loaded worker and closes
//! when its last peer (WebSocket peer or REST broadcaster) leaves. Each room's state sits behind
//! one async mutex: requests of all its peers are applied one at a time, as a single-threaded
//! Node room would, while different rooms run in parallel. Nothing awaits a client while holding
//! the lock: `newConsumer` requests are sent from their own tasks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ferrosfu_fbs::{
    ConsumeOptions, ConsumerId, IceState, ListenInfo, MediaEvent, PlainTransportOptions,
    ProduceOptions, ProducerId, TransportId, TransportProtocol, WebRtcTransportListen,
    WebRtcTransportOptions,
};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::json as js;
use super::protoo::{PeerConn, ProtooError};
use crate::auth::Role;
use crate::media::{CloseReason, Consumer, Producer, Transport};
use crate::ortc::{self, ConsumerRtpOptions, MediaKind, RtpCapabilities, RtpParameters};
use crate::pool::WorkerPool;
use crate::store::{Store, UserRef, Write};
use crate::worker::{Router, RouterClosed, new_id};

/// How long a client has to accept `newConsumer`.
const NEW_CONSUMER_TIMEOUT: Duration = Duration::from_secs(15);
/// A transport whose ICE stays `disconnected` this long closes its peer.
const ICE_DISCONNECTED_GRACE: Duration = Duration::from_secs(20);
/// Producers' keyframe request delay (ms): at most one PLI/FIR upstream per this interval,
/// later requests deferred to its end.
const KEY_FRAME_REQUEST_DELAY_MS: u32 = 1000;

/// Where RTC transports listen and what they announce.
#[derive(Clone, Debug)]
pub(crate) struct MediaSettings {
    pub listen_ip: IpAddr,
    /// The address put in ICE candidates and plain transport tuples.
    pub announced: Option<String>,
}

impl MediaSettings {
    fn listen(&self, protocol: TransportProtocol) -> ListenInfo {
        ListenInfo {
            protocol,
            ip: self.listen_ip.to_string(),
            announced_address: self.announced.clone(),
            port: 0,
        }
    }

    /// The address clients are told to send to.
    fn public_ip(&self) -> String {
        self.announced
            .clone()
            .unwrap_or_else(|| self.listen_ip.to_string())
    }
}

/// Every room of this supervisor.
#[derive(Debug)]
pub(crate) struct Rooms {
    pool: WorkerPool,
    media: MediaSettings,
    caps: RtpCapabilities,
    store: Store,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_session: AtomicU64,
}

impl Rooms {
    pub(crate) fn new(pool: WorkerPool, media: MediaSettings, store: Store) -> Arc<Self> {
        let caps = ortc::router_rtp_capabilities(&ortc::default_media_codecs())
            .expect("the default media codecs are valid");
        Arc::new(Self {
            pool,
            media,
            caps,
            store,
            rooms: Mutex::default(),
            next_session: AtomicU64::new(1),
        })
    }

    /// The router RTP capabilities every room has (they depend only on the media codecs).
    pub(crate) fn rtp_capabilities(&self) -> &RtpCapabilities {
        &self.caps
    }

    pub(crate) fn new_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) async fn get(&self, id: &str) -> Option<Arc<Room>> {
        self.rooms
            .lock()
            .await
            .get(id)
            .filter(|r| !r.is_closed())
            .cloned()
    }

    /// The open room `id`, created (router on the least-loaded worker) when there is none;
    /// `creator` is the peer or broadcaster that asks (the meeting's creator when it opens).
    pub(crate) async fn get_or_create(
        self: &Arc<Self>,
        id: &str,
        creator: &str,
    ) -> Result<Arc<Room>, ProtooError> {
        let mut map = self.rooms.lock().await;
        if let Some(r) = map.get(id).filter(|r| !r.is_closed()) {
            return Ok(r.clone());
        }
        let mut load: HashMap<u32, usize> = HashMap::new();
        for r in map.values() {
            *load.entry(r.router.worker().pid()).or_default() += 1;
        }
        let worker = self
            .pool
            .workers()
            .into_iter()
            .filter(|w| w.is_alive())
            .min_by_key(|w| load.get(&w.pid()).copied().unwrap_or(0))
            .ok_or_else(|| ProtooError::new(503, "no worker is running"))?;
        let router = worker.create_router().await?;
        let room = Arc::new(Room {
            id: id.to_owned(),
            router: router.clone(),
            caps: self.caps.clone(),
            media: self.media.clone(),
            store: self.store.clone(),
            rooms: Arc::downgrade(self),
            state: Mutex::new(RoomState::default()),
            closed: AtomicBool::new(false),
        });
        map.insert(id.to_owned(), room.clone());
        tracing::info!(room = id, router = %router.id().as_str(), worker = worker.pid(), "room opened");
        // The meeting whose code is the room id (reopened when it existed).
        self.store.write(Write::MeetingStarted {
            id: new_id(),
            code: id.to_owned(),
            creator: Some(UserRef {
                id: creator.to_owned(),
                display_name: creator.to_owned(),
            }),
            settings: json!({ "routerId": router.id().as_str(), "workerPid": worker.pid() }),
            at: chrono::Utc::now(),
        });
        // A dead worker takes the room with it: its peers are disconnected so they rejoin.
        let weak = Arc::downgrade(&room);
        tokio::spawn(async move {
            if let RouterClosed::WorkerDied(exit) = router.closed().await
                && let Some(room) = weak.upgrade()
            {
                tracing::warn!(room = %room.id, ?exit, "worker died: closing the room");
                room.close_all(1012, "media worker died; rejoin").await;
            }
        });
        Ok(room)
    }

    async fn remove(&self, room: &Arc<Room>) {
        let mut map = self.rooms.lock().await;
        if map.get(&room.id).is_some_and(|r| Arc::ptr_eq(r, room)) {
            map.remove(&room.id);
        }
    }

    /// Closes every room (supervisor shutdown).
    pub(crate) async fn close_all(&self) {
        let rooms: Vec<_> = self.rooms.lock().await.values().cloned().collect();
        for r in rooms {
            r.close_all(1001, "server shutting down").await;
        }
    }
}

#[derive(Debug)]
pub(crate) struct Room {
    pub id: String,
    router: Router,
    caps: RtpCapabilities,
    media: MediaSettings,
    store: Store,
    rooms: Weak<Rooms>,
    state: Mutex<RoomState>,
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct RoomState {
    peers: HashMap<String, Peer>,
}

#[derive(Debug)]
struct Peer {
    id: String,
    /// Connection session; 0 for REST broadcasters.
    session: u64,
    conn: Option<PeerConn>,
    role: Role,
    joined: bool,
    display_name: String,
    device: Value,
    rtp_caps: Option<RtpCapabilities>,
    transports: HashMap<String, PeerTransport>,
    producers: HashMap<String, ProducerEntry>,
    consumers: HashMap<String, Consumer>,
    /// The participants row of this join (set when the peer joins).
    participant: Option<Participant>,
}

#[derive(Debug)]
struct Participant {
    id: String,
    joined: tokio::time::Instant,
    producers: u32,
}

/// A producer to record, with what consuming it needs.
#[derive(Clone, Debug)]
pub(crate) struct RecordSource {
    pub producer: Producer,
    pub kind: MediaKind,
    pub consumable: RtpParameters,
    pub peer_id: String,
}

impl Peer {
    fn info(&self) -> Value {
        json!({ "id": self.id, "displayName": self.display_name, "device": self.device })
    }

    fn notify(&self, method: &str, data: Value) {
        if let Some(c) = &self.conn {
            c.notify(method, data);
        }
    }
}

#[derive(Debug)]
struct PeerTransport {
    t: Transport,
    consuming: bool,
    next_mid: u32,
}

#[derive(Clone, Debug)]
struct ProducerEntry {
    p: Producer,
    kind: MediaKind,
    consumable: RtpParameters,
    app_data: Value,
}

/// Work to do after the response to a request is sent.
#[derive(Debug)]
pub(crate) enum After {
    /// Consume every producer of the other joined peers (after `join`).
    ConsumeAll { peer: String },
}

/// What a request handler gives back.
pub(crate) type Handled = (Result<Value, ProtooError>, Option<After>);

fn str_field<'a>(data: &'a Value, key: &str) -> Result<&'a str, ProtooError> {
    data.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ProtooError::bad_request(format!("missing or invalid '{key}' (a string)")))
}

fn bool_field(data: &Value, key: &str) -> Result<bool, ProtooError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ProtooError::bad_request(format!(
            "'{key}' must be a boolean"
        ))),
    }
}

fn parse<T: serde::de::DeserializeOwned>(data: &Value, key: &str) -> Result<T, ProtooError> {
    let v = data
        .get(key)
        .ok_or_else(|| ProtooError::bad_request(format!("missing '{key}'")))?;
    serde_json::from_value(v.clone())
        .map_err(|e| ProtooError::bad_request(format!("invalid '{key}': {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn fbs_kind(k: ferrosfu_fbs::MediaKind) -> &'static str {
    match k {
        ferrosfu_fbs::MediaKind::Audio => "audio",
        ferrosfu_fbs::MediaKind::Video => "video",
    }
}

fn next_ssrc() -> u32 {
    ortc::random_ssrc()
}

impl Room {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// The producers to record: every open producer of `peer`, or the listed ones (each must
    /// belong to this room). 404 for an unknown peer or producer, 409 for a peer with nothing
    /// to record.
    pub(crate) async fn recording_sources(
        &self,
        peer: Option<&str>,
        producer_ids: &[String],
    ) -> Result<Vec<RecordSource>, ProtooError> {
        let st = self.state.lock().await;
        let source = |owner: &Peer, e: &ProducerEntry| RecordSource {
            producer: e.p.clone(),
            kind: e.kind,
            consumable: e.consumable.clone(),
            peer_id: owner.id.clone(),
        };
        let mut out = Vec::new();
        if let Some(peer) = peer {
            let p = st.peers.get(peer).ok_or_else(|| {
                ProtooError::not_found(format!("peer \"{peer}\" is not in room \"{}\"", self.id))
            })?;
            let mut entries: Vec<&ProducerEntry> = p.producers.values().collect();
            // Audio first, then video, each by id: a stable track order in the file.
            entries.sort_by(|a, b| {
                (a.kind.as_str(), a.p.id().as_str()).cmp(&(b.kind.as_str(), b.p.id().as_str()))
            });
            out.extend(
                entries
                    .into_iter()
                    .filter(|e| !e.p.is_closed())
                    .map(|e| source(p, e)),
            );
            if out.is_empty() {
                return Err(ProtooError::conflict(format!(
                    "peer \"{peer}\" has no producer to record"
                )));
            }
        }
        for id in producer_ids {
            let found = st
                .peers
                .values()
                .find_map(|p| p.producers.get(id).map(|e| (p, e)))
                .filter(|(_, e)| !e.p.is_closed());
            let (p, e) = found.ok_or_else(|| {
                ProtooError::not_found(format!("producer \"{id}\" is not in room \"{}\"", self.id))
            })?;
            if !out
                .iter()
                .any(|s: &RecordSource| s.producer.id() == e.p.id())
            {
                out.push(source(p, e));
            }
        }
        Ok(out)
    }

    pub(crate) fn rtp_capabilities(&self) -> &RtpCapabilities {
        &self.caps
    }

    /// A WebSocket peer arrives (not joined yet). The same peer id already here is replaced:
    /// its socket is closed and the others see it leave. Fails when the room closed meanwhile
    /// (the caller then gets a fresh room).
    pub(crate) async fn attach(
        self: &Arc<Self>,
        peer_id: &str,
        session: u64,
        conn: Option<PeerConn>,
        role: Role,
    ) -> Result<(), ()> {
        let mut st = self.state.lock().await;
        if self.is_closed() {
            return Err(());
        }
        if st.peers.contains_key(peer_id) {
            tracing::info!(room = %self.id, peer = peer_id, "peer reconnected: replacing the old one");
            if let Some(old) = self.remove_peer(&mut st, peer_id) {
                if let Some(c) = &old.conn {
                    c.close(4000, "replaced by a new connection");
                }
                self.close_peer_media(old);
            }
        }
        st.peers.insert(
            peer_id.to_owned(),
            Peer {
                id: peer_id.to_owned(),
                session,
                conn,
                role,
                joined: false,
                display_name: String::new(),
                device: json!({}),
                rtp_caps: None,
                transports: HashMap::new(),
                producers: HashMap::new(),
                consumers: HashMap::new(),
                participant: None,
            },
        );
        Ok(())
    }

    /// A peer's connection ended (only if it is still the same session).
    pub(crate) async fn detach(self: &Arc<Self>, peer_id: &str, session: u64) {
        let mut st = self.state.lock().await;
        if st.peers.get(peer_id).is_none_or(|p| p.session != session) {
            return;
        }
        if let Some(p) = self.remove_peer(&mut st, peer_id) {
            self.close_peer_media(p);
        }
        self.close_if_empty(&st);
    }

    /// Writes the participants row of a peer that joins.
    fn participant_joined(&self, peer_id: &str, display_name: &str) -> Participant {
        let id = new_id();
        self.store.write(Write::ParticipantJoined {
            id: id.clone(),
            meeting_code: self.id.clone(),
            user: UserRef {
                id: peer_id.to_owned(),
                display_name: display_name.to_owned(),
            },
            display_name: display_name.to_owned(),
            at: chrono::Utc::now(),
        });
        Participant {
            id,
            joined: tokio::time::Instant::now(),
            producers: 0,
        }
    }

    /// Ends the participants row of a peer that leaves.
    fn participant_left(&self, p: &Peer) {
        if let Some(part) = &p.participant {
            self.store.write(Write::ParticipantLeft {
                id: part.id.clone(),
                at: chrono::Utc::now(),
                stats: json!({
                    "durationSeconds": part.joined.elapsed().as_secs_f64(),
                    "producers": part.producers,
                    "device": p.device,
                }),
            });
        }
    }

    /// Removes a peer and tells the others (if it had joined).
    fn remove_peer(&self, st: &mut RoomState, peer_id: &str) -> Option<Peer> {
        let p = st.peers.remove(peer_id)?;
        self.participant_left(&p);
        if p.joined {
            for other in st.peers.values().filter(|o| o.joined) {
                other.notify("peerClosed", json!({ "peerId": peer_id }));
            }
        }
        tracing::info!(room = %self.id, peer = peer_id, "peer left");
        Some(p)
    }

    /// Closes a removed peer's transports (its producers and consumers go with them; the
    /// consumers of its producers close with `ProducerClosed`).
    fn close_peer_media(&self, p: Peer) {
        tokio::spawn(async move {
            for (_, t) in p.transports {
                let _ = t.t.close().await;
            }
        });
    }

    /// Marks the room closed; true for the call that closed it (which ends the meeting).
    fn mark_closed(&self) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.store.write(Write::MeetingEnded {
            code: self.id.clone(),
            at: chrono::Utc::now(),
        });
        true
    }

    fn close_if_empty(self: &Arc<Self>, st: &RoomState) {
        if !st.peers.is_empty() || !self.mark_closed() {
            return;
        }
        tracing::info!(room = %self.id, "room closed (last peer left)");
        let room = self.clone();
        tokio::spawn(async move {
            if let Some(rooms) = room.rooms.upgrade() {
                rooms.remove(&room).await;
            }
            let _ = room.router.close().await;
        });
    }

    /// Disconnects every peer and closes the room (worker death, shutdown).
    async fn close_all(self: &Arc<Self>, code: u16, reason: &str) {
        let mut st = self.state.lock().await;
        self.mark_closed();
        for (_, p) in st.peers.drain() {
            self.participant_left(&p);
            if let Some(c) = &p.conn {
                c.close(code, reason);
            }
        }
        drop(st);
        if let Some(rooms) = self.rooms.upgrade() {
            rooms.remove(self).await;
        }
        let _ = self.router.close().await;
    }

    /// Closes one peer (e.g. its transport failed): socket closed, others told.
    async fn close_peer(self: &Arc<Self>, peer_id: &str, why: &str) {
        let mut st = self.state.lock().await;
        if let Some(p) = self.remove_peer(&mut st, peer_id) {
            tracing::warn!(room = %self.id, peer = peer_id, "closing peer: {why}");
            if let Some(c) = &p.conn {
                c.close(4000, why);
            }
            self.close_peer_media(p);
        }
        self.close_if_empty(&st);
    }

    // -----------------------------------------------------------------------------------------
    // protoo requests

    /// Handles one request of `peer_id` (mediasoup-demo's `_handleProtooRequest`).
    pub(crate) async fn handle(
        self: &Arc<Self>,
        peer_id: &str,
        method: &str,
        data: Value,
    ) -> Handled {
        let r = match method {
            "getRouterRtpCapabilities" => Ok(to_json(&self.caps)),
            "join" => return self.join(peer_id, &data).await,
            "createWebRtcTransport" => self.create_webrtc_transport(peer_id, &data).await,
            "connectWebRtcTransport" => self.connect_webrtc_transport(peer_id, &data).await,
            "restartIce" => self.restart_ice(peer_id, &data).await,
            "produce" => self.produce(peer_id, &data).await,
            "closeProducer" | "pauseProducer" | "resumeProducer" => {
                self.producer_op(peer_id, method, &data).await
            }
            "pauseConsumer"
            | "resumeConsumer"
            | "requestConsumerKeyFrame"
            | "setConsumerPreferredLayers"
            | "setConsumerPriority" => self.consumer_op(peer_id, method, &data).await,
            "changeDisplayName" => self.change_display_name(peer_id, &data).await,
            "getTransportStats" => self.transport_stats(peer_id, &data).await,
            "getProducerStats" => self.producer_stats(peer_id, &data).await,
            "getConsumerStats" => self.consumer_stats(peer_id, &data).await,
            other => Err(ProtooError::not_found(format!("unknown method {other:?}"))),
        };
        (r, None)
    }

    async fn join(self: &Arc<Self>, peer_id: &str, data: &Value) -> Handled {
        let r = async {
            let display_name = match data.get("displayName") {
                None | Some(Value::Null) => peer_id.to_owned(),
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(ProtooError::bad_request("'displayName' must be a string")),
            };
            let device = match data.get("device") {
                None | Some(Value::Null) => json!({}),
                Some(v @ Value::Object(_)) => v.clone(),
                Some(_) => return Err(ProtooError::bad_request("'device' must be an object")),
            };
            let caps: RtpCapabilities = match data.get("rtpCapabilities") {
                None | Some(Value::Null) => RtpCapabilities::default(),
                Some(_) => parse(data, "rtpCapabilities")?,
            };
            if !caps.codecs.is_empty() {
                ortc::validate_rtp_capabilities(&caps)?;
            }
            let mut st = self.state.lock().await;
            let peer = st
                .peers
                .get_mut(peer_id)
                .ok_or_else(|| ProtooError::conflict("peer is gone"))?;
            if peer.joined {
                return Err(ProtooError::conflict("peer already joined"));
            }
            peer.joined = true;
            peer.participant = Some(self.participant_joined(peer_id, &display_name));
            peer.display_name = display_name;
            peer.device = device;
            peer.rtp_caps = (!caps.codecs.is_empty()).then_some(caps);
            let me = st.peers[peer_id].info();
            let mut peers = Vec::new();
            for other in st.peers.values().filter(|o| o.joined && o.id != peer_id) {
                peers.push(other.info());
                other.notify("newPeer", me.clone());
            }
            tracing::info!(room = %self.id, peer = peer_id, "peer joined");
            Ok(json!({ "peers": peers }))
        }
        .await;
        let after = r.is_ok().then(|| After::ConsumeAll {
            peer: peer_id.to_owned(),
        });
        (r, after)
    }

    /// Runs what a handler asked for after its response went out.
    pub(crate) async fn run_after(self: &Arc<Self>, after: After) {
        match after {
            After::ConsumeAll { peer } => {
                let st = self.state.lock().await;
                let producers: Vec<(String, ProducerEntry)> = st
                    .peers
                    .values()
                    .filter(|o| o.joined && o.id != peer)
                    .flat_map(|o| o.producers.values().map(|p| (o.id.clone(), p.clone())))
                    .collect();
                drop(st);
                for (owner, p) in producers {
                    self.create_consumer(&peer, &owner, &p).await;
                }
            }
        }
    }

    async fn new_webrtc_transport(
        self: &Arc<Self>,
        force_tcp: bool,
    ) -> Result<Transport, ProtooError> {
        let listen = if force_tcp {
            vec![self.media.listen(TransportProtocol::Tcp)]
        } else {
            vec![
                self.media.listen(TransportProtocol::Udp),
                self.media.listen(TransportProtocol::Tcp),
            ]
        };
        let t = Transport::create_webrtc(
            &self.router,
            WebRtcTransportOptions {
                transport_id: TransportId::new(new_id()),
                listen: WebRtcTransportListen::Individual(listen),
                enable_udp: !force_tcp,
                enable_tcp: true,
                prefer_udp: !force_tcp,
                prefer_tcp: force_tcp,
                ice_consent_timeout: 30,
                initial_available_outgoing_bitrate: 1_000_000,
            },
        )
        .await?;
        Ok(t)
    }

    fn webrtc_transport_json(t: &Transport) -> Value {
        match t.webrtc() {
            Some(d) => json!({
                "id": t.id().as_str(),
                "iceParameters": js::ice_parameters(&d.ice_parameters),
                "iceCandidates": js::ice_candidates(&d.ice_candidates),
                "dtlsParameters": js::dtls_parameters(&d.dtls_parameters),
                "sctpParameters": Value::Null,
            }),
            None => json!({ "id": t.id().as_str() }),
        }
    }

    async fn create_webrtc_transport(
        self: &Arc<Self>,
        peer_id: &str,
        data: &Value,
    ) -> Result<Value, ProtooError> {
        let force_tcp = bool_field(data, "forceTcp")?;
        let producing = bool_field(data, "producing")?;
        let consuming = bool_field(data, "consuming")?;
        if producing && self.role_of(peer_id).await == Some(Role::Subscribe) {
            return Err(ProtooError::forbidden("this token may not publish"));
        }
        let t = self.new_webrtc_transport(force_tcp).await?;
        let out = Self::webrtc_transport_json(&t);
        self.add_transport(peer_id, t, consuming).await?;
        Ok(out)
    }

    async fn role_of(&self, peer_id: &str) -> Option<Role> {
        self.state.lock().await.peers.get(peer_id).map(|p| p.role)
    }

    /// Stores a new transport on the peer and watches it (DTLS failure or ICE disconnected for
    /// too long closes the peer).
    async fn add_transport(
        self: &Arc<Self>,
        peer_id: &str,
        t: Transport,
        consuming: bool,
    ) -> Result<(), ProtooError> {
        let mut st = self.state.lock().await;
        let Some(peer) = st.peers.get_mut(peer_id) else {
            drop(st);
            let _ = t.close().await;
            return Err(ProtooError::conflict("peer is gone"));
        };
        peer.transports.insert(
            t.id().as_str().to_owned(),
            PeerTransport {
                t: t.clone(),
                consuming,
                next_mid: 0,
            },
        );
        drop(st);
        if t.webrtc().is_some() {
            self.watch_transport(peer_id.to_owned(), t);
        }
        Ok(())
    }

    fn watch_transport(self: &Arc<Self>, peer_id: String, t: Transport) {
        let room = Arc::downgrade(self);
        let mut events = t.events();
        tokio::spawn(async move {
            let mut disconnected_since: Option<tokio::time::Instant> = None;
            loop {
                let deadline = disconnected_since.map(|s| s + ICE_DISCONNECTED_GRACE);
                tokio::select! {
                    e = events.recv() => match e {
                        Ok(MediaEvent::TransportDtlsStateChange {
                            state: ferrosfu_fbs::DtlsState::Failed,
                            ..
                        }) =>
                        {
                            if let Some(r) = room.upgrade() {
                                r.close_peer(&peer_id, "DTLS failed").await;
                            }
                            return;
                        }
                        Ok(MediaEvent::TransportIceStateChange(s)) => {
                            disconnected_since = (s == IceState::Disconnected)
                                .then(tokio::time::Instant::now);
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    },
                    _ = async {
                        match deadline {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    } => {
                        if let Some(r) = room.upgrade() {
                            r.close_peer(&peer_id, "ICE disconnected").await;
                        }
                        return;
                    }
                    _ = t.closed() => return,
                }
            }
        });
    }

    async fn transport_of(
        &self,
        peer_id: &str,
        transport_id: &str,
    ) -> Result<Transport, ProtooError> {
        let st = self.state.lock().await;
        st.peers
            .get(peer_id)
            .and_then(|p| p.transports.get(transport_id))
            .map(|t| t.t.clone())
            .ok_or_else(|| {
                ProtooError::not_found(format!("transport with id \"{transport_id}\" not found"))
            })
    }

    async fn connect_webrtc_transport(
        &self,
        peer_id: &str,
        data: &Value,
    ) -> Result<Value, ProtooError> {
        let tid = str_field(data, "transportId")?;
        let dtls = js::parse_dtls_parameters(
            data.get("dtlsParameters")
                .ok_or_else(|| ProtooError::bad_request("missing 'dtlsParameters'"))?,
        )?;
        let t = self.transport_of(peer_id, tid).await?;
        if t.webrtc().is_none() {
            return Err(ProtooError::bad_request("not a WebRTC transport"));
        }
        t.connect_webrtc(dtls).await?;
        Ok(json!({}))
    }

    async fn restart_ice(&self, peer_id: &str, data: &Value) -> Result<Value, ProtooError> {
        let tid = str_field(data, "transportId")?;
        let t = self.transport_of(peer_id, tid).await?;
        if t.webrtc().is_none() {
            return Err(ProtooError::bad_request("not a WebRTC transport"));
        }
        let p = t.restart_ice().await?;
        Ok(js::ice_parameters(&p))
    }

    async fn produce(self: &Arc<Self>, peer_id: &str, data: &Value) -> Result<Value, ProtooError> {
        let tid = str_field(data, "transportId")?;
        let kind: MediaKind = parse(data, "kind")?;
        let mut params: RtpParameters = parse(data, "rtpParameters")?;
        let app_data = data.get("appData").cloned().unwrap_or_else(|| json!({}));
        {
            let st = self.state.lock().await;
            let p = st
                .peers
                .get(peer_id)
                .ok_or_else(|| ProtooError::conflict("peer is gone"))?;
            if !p.joined {
                return Err(ProtooError::conflict("peer not yet joined"));
            }
            if p.role != Role::Publish {
                return Err(ProtooError::forbidden("this token may not publish"));
            }
        }
        let t = self.transport_of(peer_id, tid).await?;
        let mut ssrc = next_ssrc;
        let mapping =
            ortc::get_producer_rtp_parameters_mapping(&mut params, &self.caps, &mut ssrc)?;
        let consumable = ortc::get_consumable_rtp_parameters(kind, &params, &self.caps, &mapping)?;
        if params
            .codecs
            .iter()
            .any(|c| !c.mime_type.to_ascii_lowercase().starts_with(kind.as_str()))
        {
            return Err(ProtooError::bad_request("codec kinds do not match 'kind'"));
        }
        let id = new_id();
        let producer = t
            .produce(ProduceOptions {
                producer_id: ProducerId::new(id.clone()),
                kind: kind.into(),
                rtp_parameters: (&params).into(),
                rtp_mapping: (&mapping).into(),
                key_frame_request_delay: KEY_FRAME_REQUEST_DELAY_MS,
                paused: bool_field(data, "paused")?,
            })
            .await?;
        let entry = ProducerEntry {
            p: producer.clone(),
            kind,
            consumable,
            app_data,
        };
        let others: Vec<String> = {
            let mut st = self.state.lock().await;
            let Some(peer) = st.peers.get_mut(peer_id) else {
                drop(st);
                let _ = producer.close().await;
                return Err(ProtooError::conflict("peer is gone"));
            };
            peer.producers.insert(id.clone(), entry.clone());
            if let Some(part) = &mut peer.participant {
                part.producers += 1;
                self.store.write(Write::MediaTrackCreated {
                    id: id.clone(),
                    participant_id: part.id.clone(),
                    kind: kind.as_str().to_owned(),
                    codec: params
                        .codecs
                        .first()
                        .map(|c| c.mime_type.clone())
                        .unwrap_or_default(),
                    parameters: to_json(&params),
                    at: chrono::Utc::now(),
                });
            }
            st.peers
                .values()
                .filter(|o| o.joined && o.id != peer_id && o.conn.is_some())
                .map(|o| o.id.clone())
                .collect()
        };
        self.watch_producer(peer_id.to_owned(), producer);
        tracing::info!(room = %self.id, peer = peer_id, producer = %id, kind = kind.as_str(), "producer created");
        // Consumers for everyone else, in the background (the response goes out first).
        let room = self.clone();
        let owner = peer_id.to_owned();
        tokio::spawn(async move {
            for other in others {
                room.create_consumer(&other, &owner, &entry).await;
            }
        });
        Ok(json!({ "id": id }))
    }

    fn watch_producer(self: &Arc<Self>, peer_id: String, p: Producer) {
        let room = Arc::downgrade(self);
        let mut events = p.events();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    e = events.recv() => match e {
                        Ok(MediaEvent::ProducerScore(scores)) => {
                            let Some(r) = room.upgrade() else { return };
                            let st = r.state.lock().await;
                            if let Some(peer) = st.peers.get(&peer_id) {
                                let score: Vec<Value> = scores.iter().enumerate().map(|(i, (ssrc, rid, s))| json!({
                                    "encodingIdx": i, "ssrc": ssrc, "rid": rid, "score": s,
                                })).collect();
                                peer.notify("producerScore", json!({ "producerId": p.id().as_str(), "score": score }));
                            }
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break,
                    },
                    _ = p.closed() => break,
                }
            }
            // Gone (closed by the peer, its transport or the worker): forget it.
            if let Some(r) = room.upgrade() {
                let mut st = r.state.lock().await;
                if let Some(peer) = st.peers.get_mut(&peer_id) {
                    peer.producers.remove(p.id().as_str());
                }
            }
        });
    }

    /// Creates a paused consumer of `producer` (of `owner`) for `peer_id`, asks the client with
    /// `newConsumer` and resumes it when the client accepts (mediasoup-demo's `_createConsumer`).
    async fn create_consumer(
        self: &Arc<Self>,
        peer_id: &str,
        owner: &str,
        producer: &ProducerEntry,
    ) {
        if let Err(e) = self.try_create_consumer(peer_id, owner, producer).await {
            tracing::warn!(room = %self.id, peer = peer_id, producer = %producer.p.id().as_str(), "consumer not created: {e}");
        }
    }

    async fn try_create_consumer(
        self: &Arc<Self>,
        peer_id: &str,
        owner: &str,
        producer: &ProducerEntry,
    ) -> Result<(), ProtooError> {
        if producer.p.is_closed() {
            return Ok(());
        }
        let (transport, caps, conn, mid) = {
            let mut st = self.state.lock().await;
            let Some(peer) = st.peers.get_mut(peer_id) else {
                return Ok(());
            };
            let (Some(caps), Some(conn)) = (peer.rtp_caps.clone(), peer.conn.clone()) else {
                return Ok(());
            };
            if !ortc::can_consume(&producer.consumable, &caps) {
                return Ok(());
            }
            let Some(t) = peer.transports.values_mut().find(|t| t.consuming) else {
                return Ok(());
            };
            let mid = t.next_mid;
            t.next_mid += 1;
            (t.t.clone(), caps, conn, mid)
        };
        let Some((consumer, params)) = self
            .new_consumer(peer_id, &transport, mid, producer, &caps, true)
            .await?
        else {
            return Ok(());
        };
        let cid = consumer.id().as_str().to_owned();
        let data = json!({
            "peerId": owner,
            "producerId": producer.p.id().as_str(),
            "id": cid,
            "kind": producer.kind.as_str(),
            "rtpParameters": to_json(&params),
            "type": "simple",
            "appData": producer.app_data,
            "producerPaused": consumer.producer_paused(),
        });
        match conn
            .request("newConsumer", data, NEW_CONSUMER_TIMEOUT)
            .await
        {
            Ok(_) => {
                consumer.resume().await?;
                let s = consumer.score();
                conn.notify(
                    "consumerScore",
                    json!({ "consumerId": cid, "score": {
                        "score": s.score, "producerScore": s.producer_score,
                        "producerScores": [s.producer_score],
                    }}),
                );
                Ok(())
            }
            Err(e) => {
                let _ = consumer.close().await;
                Err(ProtooError::new(
                    e.code,
                    format!("newConsumer refused: {}", e.reason),
                ))
            }
        }
    }

    /// Computes a consumer's parameters for `caps` (mid `mid` on its transport), creates it on
    /// `transport`, stores it on `peer_id` and watches it. None when the peer left meanwhile
    /// (the consumer is then closed again).
    async fn new_consumer(
        self: &Arc<Self>,
        peer_id: &str,
        transport: &Transport,
        mid: u32,
        producer: &ProducerEntry,
        caps: &RtpCapabilities,
        paused: bool,
    ) -> Result<Option<(Consumer, RtpParameters)>, ProtooError> {
        let mut ssrc = next_ssrc;
        let mut params = ortc::get_consumer_rtp_parameters(
            &producer.consumable,
            caps,
            ConsumerRtpOptions::for_kind(producer.kind),
            &mut ssrc,
        )?;
        params.mid = Some(mid.to_string());
        let consumer = transport
            .consume(ConsumeOptions {
                consumer_id: ConsumerId::new(new_id()),
                producer_id: producer.p.id().clone(),
                kind: producer.kind.into(),
                rtp_parameters: (&params).into(),
                consumable_rtp_encodings: producer
                    .consumable
                    .encodings
                    .iter()
                    .map(Into::into)
                    .collect(),
                paused,
                ignore_dtx: false,
            })
            .await?;
        {
            let mut st = self.state.lock().await;
            let Some(peer) = st.peers.get_mut(peer_id) else {
                drop(st);
                let _ = consumer.close().await;
                return Ok(None);
            };
            peer.consumers
                .insert(consumer.id().as_str().to_owned(), consumer.clone());
        }
        self.watch_consumer(peer_id.to_owned(), consumer.clone());
        Ok(Some((consumer, params)))
    }

    fn watch_consumer(self: &Arc<Self>, peer_id: String, c: Consumer) {
        let room = Arc::downgrade(self);
        let mut events = c.events();
        tokio::spawn(async move {
            let cid = c.id().as_str().to_owned();
            let notify = |method: &'static str, data: Value| {
                let room = room.clone();
                let peer_id = peer_id.clone();
                async move {
                    if let Some(r) = room.upgrade()
                        && let Some(p) = r.state.lock().await.peers.get(&peer_id)
                    {
                        p.notify(method, data);
                    }
                }
            };
            loop {
                tokio::select! {
                    e = events.recv() => match e {
                        Ok(MediaEvent::ConsumerProducerPause) => {
                            notify("consumerPaused", json!({ "consumerId": cid })).await;
                        }
                        Ok(MediaEvent::ConsumerProducerResume) => {
                            notify("consumerResumed", json!({ "consumerId": cid })).await;
                        }
                        Ok(MediaEvent::ConsumerScore(s)) => {
                            notify("consumerScore", json!({ "consumerId": cid, "score": {
                                "score": s.score, "producerScore": s.producer_score,
                                "producerScores": [s.producer_score],
                            }})).await;
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break,
                    },
                    _ = c.closed() => break,
                }
            }
            let reason = c.closed().await;
            if let Some(r) = room.upgrade() {
                let mut st = r.state.lock().await;
                if let Some(peer) = st.peers.get_mut(&peer_id) {
                    peer.consumers.remove(&cid);
                    if reason == CloseReason::ProducerClosed {
                        peer.notify("consumerClosed", json!({ "consumerId": cid }));
                    }
                }
            }
        });
    }

    async fn producer_op(
        &self,
        peer_id: &str,
        method: &str,
        data: &Value,
    ) -> Result<Value, ProtooError> {
        let id = str_field(data, "producerId")?;
        let p = {
            let st = self.state.lock().await;
            st.peers
                .get(peer_id)
                .and_then(|p| p.producers.get(id))
                .map(|e| e.p.clone())
                .ok_or_else(|| {
                    ProtooError::not_found(format!("producer with id \"{id}\" not found"))
                })?
        };
        match method {
            "closeProducer" => {
                p.close().await?;
                let mut st = self.state.lock().await;
                if let Some(peer) = st.peers.get_mut(peer_id) {
                    peer.producers.remove(id);
                }
            }
            "pauseProducer" => p.pause().await?,
            _ => p.resume().await?,
        }
        Ok(json!({}))
    }

    async fn consumer_of(&self, peer_id: &str, id: &str) -> Result<Consumer, ProtooError> {
        let st = self.state.lock().await;
        st.peers
            .get(peer_id)
            .and_then(|p| p.consumers.get(id))
            .cloned()
            .ok_or_else(|| ProtooError::not_found(format!("consumer with id \"{id}\" not found")))
    }

    async fn consumer_op(
        &self,
        peer_id: &str,
        method: &str,
        data: &Value,
    ) -> Result<Value, ProtooError> {
        let id = str_field(data, "consumerId")?;
        let c = self.consumer_of(peer_id, id).await?;
        match method {
            "pauseConsumer" => c.pause().await?,
            "resumeConsumer" => c.resume().await?,
            "requestConsumerKeyFrame" => c.request_key_frame().await?,
            "setConsumerPreferredLayers" => {
                // Simple consumers have one layer; the values are checked and accepted, as
                // mediasoup does for them.
                let layer = |k: &str| match data.get(k) {
                    None | Some(Value::Null) => Ok(()),
                    Some(v) if v.as_u64().is_some_and(|n| n < 16) => Ok(()),
                    Some(_) => Err(ProtooError::bad_request(format!(
                        "'{k}' must be a layer number"
                    ))),
                };
                if data.get("spatialLayer").is_none() {
                    return Err(ProtooError::bad_request("missing 'spatialLayer'"));
                }
                layer("spatialLayer")?;
                layer("temporalLayer")?;
            }
            _ => {
                // setConsumerPriority: one stream per consumer here, nothing to weigh yet.
                if !data
                    .get("priority")
                    .and_then(Value::as_u64)
                    .is_some_and(|p| (1..=255).contains(&p))
                {
                    return Err(ProtooError::bad_request("'priority' must be 1-255"));
                }
            }
        }
        Ok(json!({}))
    }

    async fn change_display_name(&self, peer_id: &str, data: &Value) -> Result<Value, ProtooError> {
        let name = str_field(data, "displayName")?.to_owned();
        let mut st = self.state.lock().await;
        let peer = st
            .peers
            .get_mut(peer_id)
            .ok_or_else(|| ProtooError::conflict("peer is gone"))?;
        let old = std::mem::replace(&mut peer.display_name, name.clone());
        if peer.joined {
            for other in st.peers.values().filter(|o| o.joined && o.id != peer_id) {
                other.notify(
                    "peerDisplayNameChanged",
                    json!({ "peerId": peer_id, "displayName": name, "oldDisplayName": old }),
                );
            }
        }
        Ok(json!({}))
    }

    async fn transport_stats(&self, peer_id: &str, data: &Value) -> Result<Value, ProtooError> {
        let id = str_field(data, "transportId")?;
        let t = self.transport_of(peer_id, id).await?;
        Ok(js::transport_stats(&t.get_stats().await?))
    }

    async fn producer_stats(&self, peer_id: &str, data: &Value) -> Result<Value, ProtooError> {
        let id = str_field(data, "producerId")?;
        let p = {
            let st = self.state.lock().await;
            st.peers
                .get(peer_id)
                .and_then(|p| p.producers.get(id))
                .map(|e| e.p.clone())
                .ok_or_else(|| {
                    ProtooError::not_found(format!("producer with id \"{id}\" not found"))
                })?
        };
        let now = js::now_ms();
        let kind = fbs_kind(p.kind());
        Ok(p.get_stats()
            .await?
            .iter()
            .map(|s| js::rtp_stream_stats("inbound-rtp", kind, s, now))
            .collect())
    }

    async fn consumer_stats(&self, peer_id: &str, data: &Value) -> Result<Value, ProtooError> {
        let id = str_field(data, "consumerId")?;
        let c = self.consumer_of(peer_id, id).await?;
        let now = js::now_ms();
        let kind = fbs_kind(c.kind());
        Ok(c.get_stats()
            .await?
            .iter()
            .map(|s| js::rtp_stream_stats("outbound-rtp", kind, s, now))
            .collect())
    }

    // -----------------------------------------------------------------------------------------
    // Broadcasters (REST)

    /// Adds a broadcaster (a joined peer without a socket). Returns the other peers.
    pub(crate) async fn add_broadcaster(
        self: &Arc<Self>,
        id: &str,
        display_name: &str,
        device: Value,
        caps: Option<RtpCapabilities>,
        role: Role,
    ) -> Result<Value, ProtooError> {
        if let Some(c) = &caps {
            ortc::validate_rtp_capabilities(c)?;
        }
        let mut st = self.state.lock().await;
        if self.is_closed() {
            return Err(ProtooError::new(503, "room closed"));
        }
        if st.peers.contains_key(id) {
            return Err(ProtooError::conflict(format!(
                "broadcaster with id \"{id}\" already exists"
            )));
        }
        let peer = Peer {
            id: id.to_owned(),
            session: 0,
            conn: None,
            role,
            joined: true,
            display_name: display_name.to_owned(),
            device,
            rtp_caps: caps,
            transports: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            participant: Some(self.participant_joined(id, display_name)),
        };
        let me = peer.info();
        let mut peers = Vec::new();
        for other in st.peers.values().filter(|o| o.joined) {
            peers.push(other.info());
            other.notify("newPeer", me.clone());
        }
        st.peers.insert(id.to_owned(), peer);
        tracing::info!(room = %self.id, broadcaster = id, "broadcaster joined");
        Ok(json!({ "peers": peers }))
    }

    async fn broadcaster_exists(&self, id: &str) -> Result<(), ProtooError> {
        let st = self.state.lock().await;
        match st.peers.get(id) {
            Some(p) if p.conn.is_none() => Ok(()),
            _ => Err(ProtooError::not_found(format!(
                "broadcaster with id \"{id}\" does not exist"
            ))),
        }
    }

    pub(crate) async fn delete_broadcaster(self: &Arc<Self>, id: &str) -> Result<(), ProtooError> {
        self.broadcaster_exists(id).await?;
        let mut st = self.state.lock().await;
        if let Some(p) = self.remove_peer(&mut st, id) {
            self.close_peer_media(p);
        }
        self.close_if_empty(&st);
        Ok(())
    }

    pub(crate) async fn broadcaster_transport(
        self: &Arc<Self>,
        id: &str,
        data: &Value,
    ) -> Result<Value, ProtooError> {
        self.broadcaster_exists(id).await?;
        match data.get("type").and_then(Value::as_str) {
            Some("webrtc") => {
                let t = self.new_webrtc_transport(false).await?;
                let out = Self::webrtc_transport_json(&t);
                self.add_transport(id, t, true).await?;
                Ok(out)
            }
            Some("plain") => {
                let comedia = bool_field(data, "comedia")?;
                let rtcp_mux = match data.get("rtcpMux") {
                    None | Some(Value::Null) => true,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(ProtooError::bad_request("'rtcpMux' must be a boolean")),
                };
                let t = Transport::create_plain(
                    &self.router,
                    PlainTransportOptions {
                        transport_id: TransportId::new(new_id()),
                        listen_info: self.media.listen(TransportProtocol::Udp),
                        rtcp_listen_info: None,
                        rtcp_mux,
                        comedia,
                        srtp_crypto_suite: None,
                    },
                )
                .await?;
                let d = t
                    .plain()
                    .ok_or_else(|| ProtooError::internal("no plain dump"))?;
                let mut out = json!({
                    "id": t.id().as_str(),
                    "ip": self.media.public_ip(),
                    "port": d.tuple.local_port,
                });
                if let Some(r) = &d.rtcp_tuple {
                    out["rtcpPort"] = json!(r.local_port);
                }
                self.add_transport(id, t, true).await?;
                Ok(out)
            }
            _ => Err(ProtooError::bad_request(
                "'type' must be \"plain\" or \"webrtc\"",
            )),
        }
    }

    pub(crate) async fn broadcaster_connect(
        &self,
        id: &str,
        transport_id: &str,
        data: &Value,
    ) -> Result<(), ProtooError> {
        self.broadcaster_exists(id).await?;
        let t = self.transport_of(id, transport_id).await?;
        if t.webrtc().is_some() {
            let dtls = js::parse_dtls_parameters(
                data.get("dtlsParameters")
                    .ok_or_else(|| ProtooError::bad_request("missing 'dtlsParameters'"))?,
            )?;
            t.connect_webrtc(dtls).await?;
        } else {
            let ip = data.get("ip").and_then(Value::as_str).map(str::to_owned);
            if ip.as_ref().is_some_and(|ip| ip.parse::<IpAddr>().is_err()) {
                return Err(ProtooError::bad_request("'ip' must be an IP address"));
            }
            let port = |k: &str| -> Result<Option<u16>, ProtooError> {
                match data.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0)
                        .map(Some)
                        .ok_or_else(|| ProtooError::bad_request(format!("'{k}' must be a port"))),
                }
            };
            t.connect_plain(ip, port("port")?, port("rtcpPort")?, None)
                .await?;
        }
        Ok(())
    }

    /// A broadcaster's producer: consumed by every joined WebSocket peer.
    pub(crate) async fn broadcaster_produce(
        self: &Arc<Self>,
        id: &str,
        transport_id: &str,
        data: &Value,
    ) -> Result<Value, ProtooError> {
        self.broadcaster_exists(id).await?;
        let mut d = data.clone();
        d["transportId"] = json!(transport_id);
        self.produce(id, &d).await
    }

    pub(crate) async fn broadcaster_consume(
        self: &Arc<Self>,
        id: &str,
        transport_id: &str,
        producer_id: &str,
    ) -> Result<Value, ProtooError> {
        self.broadcaster_exists(id).await?;
        let t = self.transport_of(id, transport_id).await?;
        let (caps, producer) = {
            let st = self.state.lock().await;
            let caps = st
                .peers
                .get(id)
                .and_then(|p| p.rtp_caps.clone())
                .ok_or_else(|| {
                    ProtooError::bad_request("broadcaster does not have rtpCapabilities")
                })?;
            let producer = st
                .peers
                .values()
                .find_map(|p| p.producers.get(producer_id))
                .cloned()
                .ok_or_else(|| {
                    ProtooError::not_found(format!("producer with id \"{producer_id}\" not found"))
                })?;
            (caps, producer)
        };
        if !ortc::can_consume(&producer.consumable, &caps) {
            return Err(ProtooError::bad_request("cannot consume this producer"));
        }
        let mid = {
            let mut st = self.state.lock().await;
            let pt = st
                .peers
                .get_mut(id)
                .and_then(|p| p.transports.get_mut(transport_id))
                .ok_or_else(|| ProtooError::not_found("transport gone"))?;
            pt.next_mid += 1;
            pt.next_mid - 1
        };
        let (consumer, params) = self
            .new_consumer(id, &t, mid, &producer, &caps, false)
            .await?
            .ok_or_else(|| ProtooError::conflict("broadcaster is gone"))?;
        let cid = consumer.id().as_str().to_owned();
        Ok(json!({
            "id": cid,
            "producerId": producer_id,
            "kind": producer.kind.as_str(),
            "rtpParameters": to_json(&params),
            "type": "simple",
        }))
    }
}
