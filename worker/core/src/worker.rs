use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ferrosfu_fbs::{
    ConnectParams, ConsumeOptions, ConsumerId, DtlsState, Event, HandlerId, IceCandidate,
    ListenInfo, MediaEvent, MediaKind, Notification, PlainTransportOptions, ProduceOptions,
    ProducerId, Request, RequestBody, RequestFailure, Response, ResponseBody, RouterId,
    SrtpCryptoSuite, SrtpParameters, TransportId, TransportProtocol, WebRtcServerDump,
    WebRtcServerId, WebRtcServerOptions, WebRtcTransportListen, WebRtcTransportOptions, WorkerDump,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::consumer::Consumer;
use crate::dtls::{Dtls, DtlsIdentity, DtlsOutput};
use crate::ice::{IceCredentials, IceEvent, IceLite, Protocol, StunOutcome, Tuple};
use crate::packet::{PacketKind, classify};
use crate::producer::Producer;
use crate::retransmit::PacketStore;
use crate::router::Router;
use crate::rtcp::{self, Rtcp};
use crate::rtp::{self, Rewrite, RtpHeader};
use crate::srtp::{SrtpProfile, SrtpSession};
use crate::stream::NtpClock;
use crate::transport::{
    self, BoundSocket, Kind, Plain, RTCP_INTERVAL, Transport, WebRtc, fbs_ice_state, fbs_tuple,
};
use crate::units::{Pt, Ssrc};

mod ingress;

/// How often the core runs its periodic work (NACK retries, deferred keyframe requests, RTCP).
pub const TICK: Duration = Duration::from_millis(20);

/// Facts about the process the core runs in, given by the shell.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub pid: u32,
    pub core: u32,
    /// Seeds ICE credentials, SSRCs and SRTP keys (the shell passes OS randomness; tests a
    /// constant).
    pub seed: u64,
    /// Maps `Instant`s to NTP time for sender reports. `None`: NTP time 0 at the first input.
    pub ntp: Option<NtpClock>,
    /// The worker's DTLS certificate; `None`: generated on first use.
    pub identity: Option<DtlsIdentity>,
}

impl CoreConfig {
    pub fn new(pid: u32, core: u32) -> Self {
        Self {
            pid,
            core,
            seed: u64::from(pid) << 32 | u64::from(core),
            ntp: None,
            identity: None,
        }
    }
}

#[derive(Debug)]
pub enum Input {
    /// A decoded channel request for the core (see the drive contract for those it never gets).
    Command(Request),
    /// A request for which the shell bound sockets first ([`sockets_needed`]), in the order
    /// asked for.
    CommandWithSockets(Request, Vec<BoundSocket>),
    /// The time returned by [`WorkerCore::poll_timeout`] has come.
    Timeout,
}

/// A datagram (or one RFC 4571 frame of a TCP connection) to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// `local` names the socket (UDP socket or TCP listener) and the source address: the address
    /// the tuple's datagrams arrive at, which for a socket bound to `0.0.0.0`/`::` is a specific
    /// IP on the socket's port (the shell finds the wildcard socket and sends from that IP);
    /// `remote` is the destination (for TCP: the connection).
    pub tuple: Tuple,
    pub data: Vec<u8>,
}

#[derive(Debug, PartialEq)]
pub enum Output {
    Reply(Response),
    Notify(Notification),
    Transmit(Transmit),
    /// A transport or WebRtcServer closed: the shell may close these sockets.
    ReleaseSockets(Vec<BoundSocket>),
    /// `worker.close` was handled: everything is closed and the reply was queued before this.
    Closed,
}

/// A socket the shell must bind before handing the request over with
/// [`Input::CommandWithSockets`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketRequest {
    pub protocol: Protocol,
    pub ip: String,
    /// 0 = any port from the worker's RTC port range.
    pub port: u16,
    pub announced: Option<String>,
}

fn socket_request(l: &ListenInfo) -> SocketRequest {
    SocketRequest {
        protocol: match l.protocol {
            TransportProtocol::Udp => Protocol::Udp,
            TransportProtocol::Tcp => Protocol::Tcp,
        },
        ip: l.ip.clone(),
        port: l.port,
        announced: l.announced_address.clone(),
    }
}

/// The sockets a request needs bound by the shell (empty for most requests).
pub fn sockets_needed(req: &Request) -> Vec<SocketRequest> {
    match &req.body {
        RequestBody::WorkerCreateWebRtcServer(o) => {
            o.listen_infos.iter().map(socket_request).collect()
        }
        RequestBody::RouterCreateWebRtcTransport(o) => match &o.listen {
            WebRtcTransportListen::Server(_) => Vec::new(),
            WebRtcTransportListen::Individual(infos) => infos
                .iter()
                .filter(|l| match l.protocol {
                    TransportProtocol::Udp => o.enable_udp,
                    TransportProtocol::Tcp => o.enable_tcp,
                })
                .map(socket_request)
                .collect(),
        },
        RequestBody::RouterCreatePlainTransport(o) => {
            let mut v = vec![socket_request(&o.listen_info)];
            if !o.rtcp_mux {
                let mut r = o
                    .rtcp_listen_info
                    .as_ref()
                    .map_or_else(|| socket_request(&o.listen_info), socket_request);
                if o.rtcp_listen_info.is_none() {
                    r.port = 0;
                }
                v.push(r);
            }
            v
        }
        _ => Vec::new(),
    }
}

#[derive(Debug)]
struct Server {
    sockets: Vec<BoundSocket>,
    transports: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Owner {
    Transport(u64),
    Server(WebRtcServerId),
}

/// Worker-wide counters: packets that reached no transport, and sequence validation of what
/// producers receive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreStats {
    pub unknown_socket: u64,
    pub unknown_tuple: u64,
    /// RTP packets not forwarded for their sequence number (RFC 3550 A.1: jumps, RTX of
    /// packets never sent), over every producer stream this worker had.
    pub rtp_bad_sequence: u64,
    /// Producer streams that restarted in a new sequence space (confirmed by two packets).
    pub rtp_resyncs: u64,
    /// DTLS handshakes that failed (a certificate that does not match the signaled
    /// fingerprint among them).
    pub dtls_failures: u64,
}

/// The worker's state: routers, transports, producers, consumers and the outputs waiting.
#[derive(Debug)]
pub struct WorkerCore {
    config: CoreConfig,
    routers: BTreeMap<RouterId, Router>,
    outputs: VecDeque<Output>,
    closed: bool,
    identity: Option<DtlsIdentity>,
    rng: StdRng,
    ntp: Option<NtpClock>,
    start: Option<Instant>,
    next_key: u64,
    transports: HashMap<u64, Transport>,
    transport_ids: HashMap<TransportId, u64>,
    producers: HashMap<u64, Producer>,
    producer_ids: HashMap<ProducerId, u64>,
    consumers: HashMap<u64, Consumer>,
    consumer_ids: HashMap<ConsumerId, u64>,
    servers: BTreeMap<WebRtcServerId, Server>,
    local_index: HashMap<(Protocol, SocketAddr), Owner>,
    tuple_index: HashMap<Tuple, u64>,
    ufrag_index: HashMap<String, u64>,
    next_tick: Option<Instant>,
    stats: CoreStats,
    /// Where each forwarded or retransmitted packet is rewritten before its transport protects it.
    rewrite_buf: Vec<u8>,
}

fn failure(e: impl std::fmt::Display) -> RequestFailure {
    RequestFailure::failed(e.to_string())
}

fn invalid(e: impl Into<String>) -> RequestFailure {
    RequestFailure::invalid_argument(e)
}

fn suite_profile(s: SrtpCryptoSuite) -> SrtpProfile {
    match s {
        SrtpCryptoSuite::AeadAes256Gcm => SrtpProfile::AeadAes256Gcm,
        SrtpCryptoSuite::AeadAes128Gcm => SrtpProfile::AeadAes128Gcm,
        SrtpCryptoSuite::AesCm128HmacSha1_80 => SrtpProfile::AesCm128HmacSha1_80,
        SrtpCryptoSuite::AesCm128HmacSha1_32 => SrtpProfile::AesCm128HmacSha1_32,
    }
}

const ICE_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

static IDENTITY_EXT_MAP: [u8; 256] = {
    let mut m = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        m[i] = i as u8;
        i += 1;
    }
    m
};

impl WorkerCore {
    pub fn new(config: CoreConfig) -> Self {
        Self {
            rng: StdRng::seed_from_u64(config.seed),
            identity: config.identity.clone(),
            ntp: config.ntp,
            config,
            routers: BTreeMap::new(),
            outputs: VecDeque::new(),
            closed: false,
            start: None,
            next_key: 1,
            transports: HashMap::new(),
            transport_ids: HashMap::new(),
            producers: HashMap::new(),
            producer_ids: HashMap::new(),
            consumers: HashMap::new(),
            consumer_ids: HashMap::new(),
            servers: BTreeMap::new(),
            local_index: HashMap::new(),
            tuple_index: HashMap::new(),
            ufrag_index: HashMap::new(),
            next_tick: None,
            stats: CoreStats::default(),
            rewrite_buf: Vec::with_capacity(1500),
        }
    }

    fn clock(&mut self, now: Instant) -> NtpClock {
        self.start.get_or_insert(now);
        *self.ntp.get_or_insert(NtpClock {
            anchor: now,
            anchor_ntp: 0,
        })
    }

    pub fn handle_input(&mut self, input: Input, now: Instant) {
        self.clock(now);
        match input {
            Input::Command(req) => self.command(req, Vec::new(), now),
            Input::CommandWithSockets(req, sockets) => self.command(req, sockets, now),
            Input::Timeout => self.handle_timeout(now),
        }
    }

    fn command(&mut self, req: Request, sockets: Vec<BoundSocket>, now: Instant) {
        let id = req.id;
        let result = if self.closed {
            Err(RequestFailure::failed("worker is closed"))
        } else {
            self.handle_request(req, sockets, now)
        };
        // The reply goes before anything the request caused (notifications, packets).
        let caused: Vec<Output> = self.outputs.drain(..).collect();
        self.outputs
            .push_back(Output::Reply(Response { id, result }));
        self.outputs.extend(caused);
        if self.closed {
            self.outputs.push_back(Output::Closed);
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the core next needs [`Input::Timeout`]; `None` when it has no timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // While there are transports the tick runs every TICK, and every timeout also serves
        // their ICE and DTLS timers (consent: seconds; DTLS retransmissions: ≥ 1 s), at most one
        // TICK late. So the shell's per-turn call costs O(1), not a walk over every transport:
        // with browsers' RTCP that is thousands of turns per second.
        if self.next_tick.is_some() {
            return self.next_tick;
        }
        let mut t = self.next_tick;
        for tr in self.transports.values() {
            if let Kind::WebRtc(w) = &tr.kind {
                for c in [w.ice.poll_timeout(), w.dtls.poll_timeout()]
                    .into_iter()
                    .flatten()
                {
                    t = Some(t.map_or(c, |x| x.min(c)));
                }
            }
        }
        t
    }

    pub fn router_ids(&self) -> impl Iterator<Item = &RouterId> {
        self.routers.keys()
    }

    pub fn stats(&self) -> CoreStats {
        self.stats
    }

    fn notify(&mut self, handler: HandlerId, event: MediaEvent) {
        self.outputs.push_back(Output::Notify(Notification {
            handler_id: handler,
            event: Event::Media(event),
        }));
    }

    fn key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    fn random_string(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| ICE_CHARS[self.rng.random_range(0..ICE_CHARS.len())] as char)
            .collect()
    }

    fn identity(&mut self) -> Result<DtlsIdentity, RequestFailure> {
        if self.identity.is_none() {
            self.identity = Some(DtlsIdentity::generate().map_err(failure)?);
        }
        Ok(self.identity.clone().expect("set just above"))
    }

    // -----------------------------------------------------------------------------------------
    // Control

    fn handle_request(
        &mut self,
        req: Request,
        sockets: Vec<BoundSocket>,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        let handler = req.handler_id.clone();
        match req.body {
            RequestBody::WorkerDump => Ok(ResponseBody::WorkerDump(WorkerDump {
                pid: self.config.pid,
                core: self.config.core,
                router_ids: self.routers.keys().cloned().collect(),
            })),
            RequestBody::WorkerCreateRouter { router_id } => {
                if router_id.as_str().is_empty() {
                    return Err(invalid("empty router id"));
                }
                if self.routers.contains_key(&router_id) {
                    return Err(invalid(format!(
                        "a router with id {router_id} already exists"
                    )));
                }
                tracing::debug!(target: "router", id = %router_id, "router created");
                self.routers
                    .insert(router_id.clone(), Router::new(router_id));
                Ok(ResponseBody::None)
            }
            RequestBody::WorkerClose => {
                let ids: Vec<RouterId> = self.routers.keys().cloned().collect();
                for id in ids {
                    self.close_router(&id, now);
                }
                let servers: Vec<WebRtcServerId> = self.servers.keys().cloned().collect();
                for s in servers {
                    self.close_server(&s, now);
                }
                self.closed = true;
                Ok(ResponseBody::None)
            }
            RequestBody::WorkerCreateWebRtcServer(o) => self.create_server(o, sockets),
            RequestBody::WebRtcServerDump => {
                let id = WebRtcServerId::new(handler.as_str());
                let s = self
                    .servers
                    .get(&id)
                    .ok_or_else(|| invalid(format!("no webrtc server {id}")))?;
                Ok(ResponseBody::WebRtcServerDump(WebRtcServerDump {
                    id: id.clone(),
                    listen_infos: s
                        .sockets
                        .iter()
                        .map(|b| ListenInfo {
                            protocol: transport::fbs_protocol(b.protocol),
                            ip: b.local.ip().to_string(),
                            announced_address: b.announced.clone(),
                            port: b.local.port(),
                        })
                        .collect(),
                    transport_ids: s
                        .transports
                        .iter()
                        .filter_map(|k| self.transports.get(k).map(|t| t.id.clone()))
                        .collect(),
                }))
            }
            RequestBody::WebRtcServerClose => {
                let id = WebRtcServerId::new(handler.as_str());
                if !self.servers.contains_key(&id) {
                    return Err(invalid(format!("no webrtc server {id}")));
                }
                self.close_server(&id, now);
                Ok(ResponseBody::None)
            }
            RequestBody::RouterDump => Ok(ResponseBody::RouterDump(
                self.router(&handler)?.dump(&self.transports),
            )),
            RequestBody::RouterClose => {
                let id = self.router(&handler)?.id().clone();
                self.close_router(&id, now);
                Ok(ResponseBody::None)
            }
            RequestBody::RouterCreateWebRtcTransport(o) => {
                let router = self.router(&handler)?.id().clone();
                self.create_webrtc_transport(router, o, sockets, now)
            }
            RequestBody::RouterCreatePlainTransport(o) => {
                let router = self.router(&handler)?.id().clone();
                self.create_plain_transport(router, o, sockets, now)
            }
            RequestBody::TransportClose => {
                let k = self.transport_key(&handler)?;
                self.close_transport(k, now, false);
                Ok(ResponseBody::None)
            }
            RequestBody::TransportDump => {
                let k = self.transport_key(&handler)?;
                self.transport_dump(k)
            }
            RequestBody::TransportGetStats => {
                let k = self.transport_key(&handler)?;
                let ts = self.timestamp(now);
                let t = self.transports.get_mut(&k).expect("key from the index");
                Ok(ResponseBody::TransportStats(t.stats(now, ts)))
            }
            RequestBody::TransportConnect(p) => {
                let k = self.transport_key(&handler)?;
                self.connect(k, p, now)
            }
            RequestBody::TransportRestartIce => {
                let k = self.transport_key(&handler)?;
                let creds = IceCredentials {
                    ufrag: self.random_string(16),
                    pwd: self.random_string(32),
                };
                let t = self.transports.get_mut(&k).expect("key from the index");
                let Kind::WebRtc(w) = &mut t.kind else {
                    return Err(invalid("restart_ice on a PlainTransport"));
                };
                let old = w.ice.local_credentials().ufrag.clone();
                w.ice.restart(creds.clone());
                self.ufrag_index.remove(&old);
                self.ufrag_index.insert(creds.ufrag.clone(), k);
                Ok(ResponseBody::IceParameters(ferrosfu_fbs::IceParameters {
                    username_fragment: creds.ufrag,
                    password: creds.pwd,
                    ice_lite: true,
                }))
            }
            RequestBody::TransportSetMaxIncomingBitrate(b) => {
                let k = self.transport_key(&handler)?;
                self.transports
                    .get_mut(&k)
                    .expect("key from the index")
                    .max_incoming_bitrate = b;
                Ok(ResponseBody::None)
            }
            RequestBody::TransportProduce(o) => {
                let k = self.transport_key(&handler)?;
                self.produce(k, o)
            }
            RequestBody::TransportConsume(o) => {
                let k = self.transport_key(&handler)?;
                self.consume(k, o, now)
            }
            RequestBody::ProducerClose => {
                let k = self.producer_key(&handler)?;
                self.close_producer(k, now);
                Ok(ResponseBody::None)
            }
            RequestBody::ProducerDump => {
                let k = self.producer_key(&handler)?;
                Ok(ResponseBody::ProducerDump(self.producers[&k].dump()))
            }
            RequestBody::ProducerGetStats => {
                let k = self.producer_key(&handler)?;
                let p = self.producers.get_mut(&k).expect("key from the index");
                Ok(ResponseBody::RtpStreamStats(p.stats(now)))
            }
            RequestBody::ProducerPause | RequestBody::ProducerResume => {
                let pause = matches!(req.body, RequestBody::ProducerPause);
                let k = self.producer_key(&handler)?;
                self.set_producer_paused(k, pause, now);
                Ok(ResponseBody::None)
            }
            RequestBody::ConsumerClose => {
                let k = self.consumer_key(&handler)?;
                self.close_consumer(k);
                Ok(ResponseBody::None)
            }
            RequestBody::ConsumerDump => {
                let k = self.consumer_key(&handler)?;
                Ok(ResponseBody::ConsumerDump(self.consumers[&k].dump()))
            }
            RequestBody::ConsumerGetStats => {
                let k = self.consumer_key(&handler)?;
                let c = self.consumers.get_mut(&k).expect("key from the index");
                Ok(ResponseBody::RtpStreamStats(c.stats(now)))
            }
            RequestBody::ConsumerPause => {
                let k = self.consumer_key(&handler)?;
                self.consumers
                    .get_mut(&k)
                    .expect("key from the index")
                    .paused = true;
                Ok(ResponseBody::None)
            }
            RequestBody::ConsumerResume => {
                let k = self.consumer_key(&handler)?;
                let c = self.consumers.get_mut(&k).expect("key from the index");
                if c.paused {
                    c.paused = false;
                    c.stream.resync();
                    if c.active() && c.kind == MediaKind::Video {
                        let p = c.producer;
                        self.request_key_frame(p, now);
                    }
                }
                Ok(ResponseBody::None)
            }
            RequestBody::ConsumerRequestKeyFrame => {
                let k = self.consumer_key(&handler)?;
                let p = self.consumers[&k].producer;
                self.request_key_frame(p, now);
                Ok(ResponseBody::None)
            }
            RequestBody::WorkerGetMediaCounters => {
                let s = &self.stats;
                Ok(ResponseBody::MediaCounters(ferrosfu_fbs::MediaCounters {
                    unknown_socket: s.unknown_socket,
                    unknown_tuple: s.unknown_tuple,
                    rtp_bad_sequence: s.rtp_bad_sequence,
                    rtp_resyncs: s.rtp_resyncs,
                    dtls_failures: s.dtls_failures,
                }))
            }
            RequestBody::WorkerGetResourceUsage | RequestBody::WorkerUpdateSettings(_) => {
                Err(RequestFailure::failed(format!(
                    "{} is handled by the worker shell, not the core",
                    req.body.method()
                )))
            }
        }
    }

    fn timestamp(&self, now: Instant) -> u64 {
        self.start
            .map_or(0, |s| now.saturating_duration_since(s).as_millis() as u64)
    }

    fn router(&self, handler: &HandlerId) -> Result<&Router, RequestFailure> {
        self.routers
            .get(&RouterId::new(handler.as_str()))
            .ok_or_else(|| invalid(format!("no router with id {:?}", handler.as_str())))
    }

    fn transport_key(&self, handler: &HandlerId) -> Result<u64, RequestFailure> {
        self.transport_ids
            .get(&TransportId::new(handler.as_str()))
            .copied()
            .ok_or_else(|| invalid(format!("no transport with id {:?}", handler.as_str())))
    }

    fn producer_key(&self, handler: &HandlerId) -> Result<u64, RequestFailure> {
        self.producer_ids
            .get(&ProducerId::new(handler.as_str()))
            .copied()
            .ok_or_else(|| invalid(format!("no producer with id {:?}", handler.as_str())))
    }

    fn consumer_key(&self, handler: &HandlerId) -> Result<u64, RequestFailure> {
        self.consumer_ids
            .get(&ConsumerId::new(handler.as_str()))
            .copied()
            .ok_or_else(|| invalid(format!("no consumer with id {:?}", handler.as_str())))
    }

    fn check_new_transport_id(&self, id: &TransportId) -> Result<(), RequestFailure> {
        if id.as_str().is_empty() {
            return Err(invalid("empty transport id"));
        }
        if self.transport_ids.contains_key(id) {
            return Err(invalid(format!("a transport with id {id} already exists")));
        }
        Ok(())
    }

    fn create_server(
        &mut self,
        o: WebRtcServerOptions,
        sockets: Vec<BoundSocket>,
    ) -> Result<ResponseBody, RequestFailure> {
        let id = o.web_rtc_server_id;
        if id.as_str().is_empty() || self.servers.contains_key(&id) {
            return Err(invalid(format!("bad or duplicate webrtc server id {id:?}")));
        }
        if sockets.is_empty() {
            return Err(invalid("a webrtc server needs at least one listen info"));
        }
        for s in &sockets {
            self.local_index
                .insert((s.protocol, s.local), Owner::Server(id.clone()));
        }
        let dump = WebRtcServerDump {
            id: id.clone(),
            listen_infos: sockets
                .iter()
                .map(|b| ListenInfo {
                    protocol: transport::fbs_protocol(b.protocol),
                    ip: b.local.ip().to_string(),
                    announced_address: b.announced.clone(),
                    port: b.local.port(),
                })
                .collect(),
            transport_ids: vec![],
        };
        self.servers.insert(
            id,
            Server {
                sockets,
                transports: Vec::new(),
            },
        );
        Ok(ResponseBody::WebRtcServerDump(dump))
    }

    fn close_server(&mut self, id: &WebRtcServerId, now: Instant) {
        let Some(server) = self.servers.remove(id) else {
            return;
        };
        for k in server.transports {
            self.close_transport(k, now, false);
        }
        for s in &server.sockets {
            self.local_index.remove(&(s.protocol, s.local));
        }
        self.outputs
            .push_back(Output::ReleaseSockets(server.sockets));
    }

    fn candidates(
        sockets: &[BoundSocket],
        prefer_udp: bool,
        prefer_tcp: bool,
    ) -> Vec<IceCandidate> {
        sockets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                // RFC 8445 §5.1.2.1 host priority; the preferred protocol gets the higher local
                // preference, then listen order.
                let proto_pref: u32 = match s.protocol {
                    Protocol::Udp if prefer_udp || !prefer_tcp => 1,
                    Protocol::Tcp if prefer_tcp => 1,
                    _ => 0,
                };
                let local_pref = (proto_pref * 32768 + 65535 - i as u32 * 2).min(65535);
                let priority = (126u32 << 24) | (local_pref << 8) | 255;
                IceCandidate {
                    foundation: match s.protocol {
                        Protocol::Udp => "udpcandidate".into(),
                        Protocol::Tcp => "tcpcandidate".into(),
                    },
                    priority,
                    address: s.announced_ip(),
                    protocol: transport::fbs_protocol(s.protocol),
                    port: s.local.port(),
                    kind: "host".into(),
                    tcp_type: (s.protocol == Protocol::Tcp).then(|| "passive".into()),
                }
            })
            .collect()
    }

    fn create_webrtc_transport(
        &mut self,
        router: RouterId,
        o: WebRtcTransportOptions,
        sockets: Vec<BoundSocket>,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        self.check_new_transport_id(&o.transport_id)?;
        if !o.enable_udp && !o.enable_tcp {
            return Err(invalid("enable_udp and enable_tcp are both false"));
        }
        let (server, usable, own) = match &o.listen {
            WebRtcTransportListen::Server(sid) => {
                let s = self
                    .servers
                    .get(sid)
                    .ok_or_else(|| invalid(format!("no webrtc server {sid}")))?;
                let usable: Vec<BoundSocket> = s
                    .sockets
                    .iter()
                    .filter(|b| match b.protocol {
                        Protocol::Udp => o.enable_udp,
                        Protocol::Tcp => o.enable_tcp,
                    })
                    .cloned()
                    .collect();
                (Some(sid.clone()), usable, Vec::new())
            }
            WebRtcTransportListen::Individual(_) => (None, sockets.clone(), sockets),
        };
        if usable.is_empty() {
            return Err(invalid("no listen address for the enabled protocols"));
        }
        let identity = self.identity()?;
        let creds = IceCredentials {
            ufrag: self.random_string(16),
            pwd: self.random_string(32),
        };
        let mut ice = IceLite::new(creds.clone(), identity.crypto.clone());
        if o.ice_consent_timeout > 0 {
            ice.set_consent_timeout(Duration::from_secs(o.ice_consent_timeout as u64));
        }
        let web = WebRtc {
            ice,
            dtls: Dtls::new(identity),
            srtp: None,
            server: server.clone(),
            candidates: Self::candidates(&usable, o.prefer_udp, o.prefer_tcp),
        };
        let k = self.key();
        let rtcp_ssrc = self.rng.random();
        let t = Transport::new(
            o.transport_id.clone(),
            router.clone(),
            Kind::WebRtc(Box::new(web)),
            own.clone(),
            rtcp_ssrc,
            now,
        );
        for s in &own {
            self.local_index
                .insert((s.protocol, s.local), Owner::Transport(k));
        }
        if let Some(sid) = &server
            && let Some(s) = self.servers.get_mut(sid)
        {
            s.transports.push(k);
        }
        self.ufrag_index.insert(creds.ufrag, k);
        self.transports.insert(k, t);
        self.transport_ids.insert(o.transport_id, k);
        if let Some(r) = self.routers.get_mut(&router) {
            r.transports.push(k);
        }
        self.ensure_tick(now);
        self.transport_dump(k)
    }

    fn create_plain_transport(
        &mut self,
        router: RouterId,
        o: PlainTransportOptions,
        sockets: Vec<BoundSocket>,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        self.check_new_transport_id(&o.transport_id)?;
        let mut it = sockets.iter().cloned();
        let socket = it.next().ok_or_else(|| invalid("no socket bound"))?;
        let rtcp_socket = if o.rtcp_mux {
            None
        } else {
            Some(it.next().ok_or_else(|| invalid("no RTCP socket bound"))?)
        };
        let local_srtp = match o.srtp_crypto_suite {
            None => None,
            Some(suite) => {
                let p = suite_profile(suite);
                let mut key = vec![0u8; p.key_len() + p.salt_len()];
                self.rng.fill(&mut key[..]);
                let params = SrtpParameters {
                    crypto_suite: suite,
                    key_base64: base64::engine::general_purpose::STANDARD.encode(&key),
                };
                Some((params, key))
            }
        };
        let plain = Plain {
            socket,
            rtcp_socket,
            rtcp_mux: o.rtcp_mux,
            comedia: o.comedia,
            remote: None,
            rtcp_remote: None,
            local: None,
            rtcp_local: None,
            srtp: None,
            local_srtp,
        };
        let k = self.key();
        let rtcp_ssrc = self.rng.random();
        for s in &sockets {
            self.local_index
                .insert((s.protocol, s.local), Owner::Transport(k));
        }
        let t = Transport::new(
            o.transport_id.clone(),
            router.clone(),
            Kind::Plain(Box::new(plain)),
            sockets,
            rtcp_ssrc,
            now,
        );
        self.transports.insert(k, t);
        self.transport_ids.insert(o.transport_id, k);
        if let Some(r) = self.routers.get_mut(&router) {
            r.transports.push(k);
        }
        self.ensure_tick(now);
        self.transport_dump(k)
    }

    fn transport_dump(&self, k: u64) -> Result<ResponseBody, RequestFailure> {
        let t = &self.transports[&k];
        let pids = t
            .producers
            .iter()
            .filter_map(|p| self.producers.get(p).map(|p| p.id.clone()))
            .collect();
        let cids = t
            .consumers
            .iter()
            .filter_map(|c| self.consumers.get(c).map(|c| c.id.clone()))
            .collect();
        match &t.kind {
            Kind::WebRtc(_) => {
                let fps = self
                    .identity
                    .as_ref()
                    .map(|i| i.fingerprints.clone())
                    .unwrap_or_default();
                Ok(ResponseBody::WebRtcTransportDump(
                    t.webrtc_dump(pids, cids, &fps).expect("kind checked"),
                ))
            }
            Kind::Plain(_) => Ok(ResponseBody::PlainTransportDump(
                t.plain_dump(pids, cids).expect("kind checked"),
            )),
        }
    }

    fn connect(
        &mut self,
        k: u64,
        p: ConnectParams,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        let t = self.transports.get_mut(&k).expect("key from the index");
        match (&mut t.kind, p) {
            (Kind::WebRtc(w), ConnectParams::WebRtc { dtls_parameters }) => {
                w.dtls
                    .set_remote(dtls_parameters.role, dtls_parameters.fingerprints)
                    .map_err(invalid)?;
                if w.ice.selected_tuple().is_some() {
                    w.dtls.start(now);
                }
                self.pump_dtls(k, now);
            }
            (
                Kind::Plain(pl),
                ConnectParams::Plain {
                    ip,
                    port,
                    rtcp_port,
                    srtp_parameters,
                },
            ) => {
                if let Some(sp) = srtp_parameters {
                    let (_, local_key) = pl
                        .local_srtp
                        .as_ref()
                        .ok_or_else(|| invalid("SRTP parameters given but SRTP is not enabled"))?;
                    let profile = suite_profile(sp.crypto_suite);
                    let remote_key = base64::engine::general_purpose::STANDARD
                        .decode(sp.key_base64.as_bytes())
                        .map_err(|e| invalid(format!("bad keyBase64: {e}")))?;
                    let kl = profile.key_len();
                    if remote_key.len() != kl + profile.salt_len() {
                        return Err(invalid("keyBase64 has the wrong length for its suite"));
                    }
                    if local_key.len() != kl + profile.salt_len() {
                        return Err(invalid("crypto suite differs from the local one"));
                    }
                    let identity =
                        rtc_dtls::crypto_provider::default_provider().map_err(failure)?;
                    pl.srtp = Some(
                        SrtpSession::new(
                            profile,
                            (&local_key[..kl], &local_key[kl..]),
                            (&remote_key[..kl], &remote_key[kl..]),
                            &identity,
                        )
                        .map_err(failure)?,
                    );
                } else if pl.local_srtp.is_some() {
                    return Err(invalid("SRTP is enabled: srtp_parameters are required"));
                }
                if !pl.comedia {
                    let ip = ip.ok_or_else(|| invalid("ip is required without comedia"))?;
                    let ip: std::net::IpAddr =
                        ip.parse().map_err(|_| invalid(format!("bad ip {ip:?}")))?;
                    let port = port.ok_or_else(|| invalid("port is required without comedia"))?;
                    pl.remote = Some(SocketAddr::new(ip, port));
                    if !pl.rtcp_mux {
                        let rp = rtcp_port
                            .ok_or_else(|| invalid("rtcp_port is required without rtcp_mux"))?;
                        pl.rtcp_remote = Some(SocketAddr::new(ip, rp));
                    }
                }
            }
            _ => {
                return Err(invalid(
                    "connect parameters do not match the transport type",
                ));
            }
        }
        self.transport_dump(k)
    }

    fn produce(&mut self, tk: u64, o: ProduceOptions) -> Result<ResponseBody, RequestFailure> {
        if o.producer_id.as_str().is_empty() || self.producer_ids.contains_key(&o.producer_id) {
            return Err(invalid(format!(
                "bad or duplicate producer id {:?}",
                o.producer_id.as_str()
            )));
        }
        let t = self.transports.get(&tk).expect("key from the index");
        for e in &o.rtp_parameters.encodings {
            for s in [e.ssrc, e.rtx_ssrc].into_iter().flatten() {
                if t.ssrc_producers.contains_key(&s) {
                    return Err(invalid(format!("ssrc {s} already used on this transport")));
                }
            }
        }
        if let Some(mid) = &o.rtp_parameters.mid
            && t.mid_producers.contains_key(mid)
        {
            return Err(invalid(format!(
                "mid {mid:?} already used on this transport"
            )));
        }
        let p = Producer::new(o, tk)?;
        let pk = self.key();
        let t = self.transports.get_mut(&tk).expect("key from the index");
        for (i, e) in p.encodings.iter().enumerate() {
            if let Some(s) = e.ssrc {
                t.ssrc_producers.insert(s, (pk, i, false));
            }
            if let Some(s) = e.rtx_ssrc {
                t.ssrc_producers.insert(s, (pk, i, true));
            }
        }
        if let Some(mid) = &p.params.mid {
            t.mid_producers.insert(mid.clone(), pk);
        }
        if p.twcc_ext != 0 {
            // One id per transport (a browser uses one for every m-line of its connection).
            t.twcc_ext_in = p.twcc_ext;
        }
        t.producers.push(pk);
        tracing::debug!(target: "rtp", id = %p.id, "producer created");
        self.producer_ids.insert(p.id.clone(), pk);
        self.producers.insert(pk, p);
        Ok(ResponseBody::None)
    }

    fn consume(
        &mut self,
        tk: u64,
        o: ConsumeOptions,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        if o.consumer_id.as_str().is_empty() || self.consumer_ids.contains_key(&o.consumer_id) {
            return Err(invalid(format!(
                "bad or duplicate consumer id {:?}",
                o.consumer_id.as_str()
            )));
        }
        let pk = *self
            .producer_ids
            .get(&o.producer_id)
            .ok_or_else(|| invalid(format!("no producer {}", o.producer_id)))?;
        let producer = &self.producers[&pk];
        let t = &self.transports[&tk];
        if self.transports[&producer.transport].router != t.router {
            return Err(invalid("the producer is in another router"));
        }
        for e in &o.rtp_parameters.encodings {
            for s in [e.ssrc, e.rtx_ssrc].into_iter().flatten() {
                if t.ssrc_consumers.contains_key(&s) {
                    return Err(invalid(format!("ssrc {s} already used on this transport")));
                }
            }
        }
        let initial_seq: u16 = self.rng.random();
        let ts_offset: u32 = self.rng.random();
        let c = Consumer::new(o, pk, producer, tk, initial_seq, ts_offset)?;
        let ck = self.key();
        let t = self.transports.get_mut(&tk).expect("key from the index");
        t.ssrc_consumers.insert(c.stream.ssrc, ck);
        if let Some(r) = c.stream.rtx_ssrc {
            t.ssrc_consumers.insert(r, ck);
        }
        t.consumers.push(ck);
        let reply = ResponseBody::Consumed {
            paused: c.paused,
            producer_paused: c.producer_paused,
            score: c.last_score,
        };
        let wants_key = c.active() && c.kind == MediaKind::Video;
        let retransmits = c.stream.buffer.is_some();
        self.consumer_ids.insert(c.id.clone(), ck);
        self.consumers.insert(ck, c);
        let p = self.producers.get_mut(&pk).expect("checked above");
        p.consumers.push(ck);
        if retransmits && let Some(e) = p.encodings.first_mut() {
            // Simple consumers forward the first encoding.
            e.store.get_or_insert_with(PacketStore::new);
        }
        if wants_key {
            self.request_key_frame(pk, now);
        }
        Ok(reply)
    }

    fn set_producer_paused(&mut self, pk: u64, pause: bool, now: Instant) {
        let p = self.producers.get_mut(&pk).expect("key from the index");
        if p.paused == pause {
            return;
        }
        p.paused = pause;
        let consumers = p.consumers.clone();
        let video = p.kind == MediaKind::Video;
        for ck in consumers {
            let Some(c) = self.consumers.get_mut(&ck) else {
                continue;
            };
            c.producer_paused = pause;
            if !pause {
                c.stream.resync();
            }
            let h = HandlerId::from(&c.id);
            self.notify(
                h,
                if pause {
                    MediaEvent::ConsumerProducerPause
                } else {
                    MediaEvent::ConsumerProducerResume
                },
            );
        }
        if !pause && video {
            self.request_key_frame(pk, now);
        }
    }

    fn close_consumer(&mut self, ck: u64) {
        let Some(c) = self.consumers.remove(&ck) else {
            return;
        };
        self.consumer_ids.remove(&c.id);
        if let Some(p) = self.producers.get_mut(&c.producer) {
            p.consumers.retain(|&x| x != ck);
            // The last consumer that retransmits is gone: so is the store it read from.
            let retransmitting = p.consumers.iter().any(|k| {
                self.consumers
                    .get(k)
                    .is_some_and(|c| c.stream.buffer.is_some())
            });
            if !retransmitting {
                for e in &mut p.encodings {
                    e.store = None;
                }
            }
        }
        if let Some(t) = self.transports.get_mut(&c.transport) {
            t.consumers.retain(|&x| x != ck);
            t.ssrc_consumers.retain(|_, &mut v| v != ck);
        }
    }

    fn close_producer(&mut self, pk: u64, _now: Instant) {
        let Some(p) = self.producers.remove(&pk) else {
            return;
        };
        self.producer_ids.remove(&p.id);
        for ck in p.consumers {
            if let Some(c) = self.consumers.get(&ck) {
                let h = HandlerId::from(&c.id);
                self.close_consumer(ck);
                self.notify(h, MediaEvent::ConsumerProducerClose);
            }
        }
        if let Some(t) = self.transports.get_mut(&p.transport) {
            t.producers.retain(|&x| x != pk);
            t.ssrc_producers.retain(|_, v| v.0 != pk);
            t.mid_producers.retain(|_, &mut v| v != pk);
        }
    }

    /// `notify_children`: tell the supervisor about producers/consumers closed with it (used
    /// when the transport closes for a reason the supervisor did not ask for).
    fn close_transport(&mut self, k: u64, now: Instant, notify_children: bool) {
        let Some(t) = self.transports.get(&k) else {
            return;
        };
        let consumers = t.consumers.clone();
        let producers = t.producers.clone();
        for ck in consumers {
            if let Some(c) = self.consumers.get(&ck) {
                let h = HandlerId::from(&c.id);
                self.close_consumer(ck);
                if notify_children {
                    self.notify(h, MediaEvent::ConsumerTransportClose);
                }
            }
        }
        for pk in producers {
            if let Some(p) = self.producers.get(&pk) {
                let h = HandlerId::from(&p.id);
                self.close_producer(pk, now);
                if notify_children {
                    self.notify(h, MediaEvent::ProducerTransportClose);
                }
            }
        }
        let Some(mut t) = self.transports.remove(&k) else {
            return;
        };
        self.transport_ids.remove(&t.id);
        self.tuple_index.retain(|_, &mut v| v != k);
        if let Kind::WebRtc(w) = &mut t.kind {
            self.ufrag_index.remove(&w.ice.local_credentials().ufrag);
            if let Some(sid) = &w.server
                && let Some(s) = self.servers.get_mut(sid)
            {
                s.transports.retain(|&x| x != k);
            }
            w.dtls.close(now);
            // Best effort close_notify to the remote.
            let tuple = w.ice.selected_tuple();
            while let Some(data) = w.dtls.poll_transmit() {
                if let Some(tuple) = tuple {
                    self.outputs
                        .push_back(Output::Transmit(Transmit { tuple, data }));
                }
            }
        }
        if let Some(r) = self.routers.get_mut(&t.router) {
            r.transports.retain(|&x| x != k);
        }
        for s in &t.own_sockets {
            self.local_index.remove(&(s.protocol, s.local));
        }
        if !t.own_sockets.is_empty() {
            self.outputs
                .push_back(Output::ReleaseSockets(std::mem::take(&mut t.own_sockets)));
        }
    }

    fn close_router(&mut self, id: &RouterId, now: Instant) {
        let Some(r) = self.routers.remove(id) else {
            return;
        };
        for k in r.transports.clone() {
            self.close_transport(k, now, false);
        }
        r.close();
    }

    fn ensure_tick(&mut self, now: Instant) {
        if self.next_tick.is_none() {
            self.next_tick = Some(now + TICK);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Media

    /// The owner of the socket a datagram to `local` arrived on: the socket bound to exactly
    /// `local`, else the one bound to the unspecified address of its family on the same port (the
    /// shell reports the datagram's destination address, not the wildcard). Two hash lookups at
    /// most, no allocation.
    fn socket_owner(&self, protocol: Protocol, local: SocketAddr) -> Option<&Owner> {
        self.local_index.get(&(protocol, local)).or_else(|| {
            let any = unspecified(local);
            (any != local)
                .then(|| self.local_index.get(&(protocol, any)))
                .flatten()
        })
    }

    /// One datagram (or one RFC 4571 frame of a TCP connection) received on `tuple`.
    ///
    /// `tuple.local` is the address the datagram was sent to (for a socket bound to `0.0.0.0` or
    /// `::`, the shell's IP_PKTINFO destination), so ICE, comedia and the selected tuple are the
    /// true 5-tuple, and replies leave from it.
    pub fn handle_datagram(&mut self, tuple: Tuple, data: &[u8], now: Instant) {
        self.clock(now);
        let kind = classify(data);
        let k = match self.tuple_index.get(&tuple) {
            Some(&k) => k,
            None => match self.socket_owner(tuple.protocol, tuple.local) {
                Some(Owner::Transport(k)) => *k,
                Some(Owner::Server(_)) => {
                    if kind != PacketKind::Stun {
                        self.stats.unknown_tuple += 1;
                        return;
                    }
                    let Some(k) = stun_ufrag(data).and_then(|u| self.ufrag_index.get(u)) else {
                        self.stats.unknown_tuple += 1;
                        return;
                    };
                    *k
                }
                None => {
                    self.stats.unknown_socket += 1;
                    return;
                }
            },
        };
        let Some(t) = self.transports.get_mut(&k) else {
            return;
        };
        t.counters.bytes_received += data.len() as u64;
        t.counters.recv_rate.add(data.len(), now);
        match &mut t.kind {
            Kind::WebRtc(w) => match kind {
                PacketKind::Stun => {
                    match w.ice.handle_stun(data, tuple, now) {
                        StunOutcome::Reply(reply) => {
                            t.counters.bytes_sent += reply.len() as u64;
                            self.outputs
                                .push_back(Output::Transmit(Transmit { tuple, data: reply }));
                        }
                        StunOutcome::Drop(_) => t.counters.dropped += 1,
                    }
                    if w.ice.is_valid(&tuple) {
                        self.tuple_index.insert(tuple, k);
                    }
                    self.pump_ice(k, now);
                }
                PacketKind::Dtls => {
                    if !w.ice.is_valid(&tuple) {
                        t.counters.dropped += 1;
                        return;
                    }
                    if !w.dtls.handle_datagram(data, now) {
                        t.counters.dropped += 1;
                    }
                    self.pump_dtls(k, now);
                }
                PacketKind::Rtp | PacketKind::Rtcp => {
                    if !w.ice.is_valid(&tuple) {
                        t.counters.dropped += 1;
                        return;
                    }
                    self.media_in(k, data, kind == PacketKind::Rtcp, now);
                }
                PacketKind::Unknown => t.counters.dropped += 1,
            },
            Kind::Plain(p) => {
                let is_rtcp_socket = p.rtcp_socket.as_ref().is_some_and(|s| {
                    s.protocol == tuple.protocol && bound_to(s.local, tuple.local)
                });
                let rtcp = is_rtcp_socket || kind == PacketKind::Rtcp;
                if !matches!(kind, PacketKind::Rtp | PacketKind::Rtcp) {
                    t.counters.dropped += 1;
                    return;
                }
                // Learn (comedia) or check the remote.
                let expected = if is_rtcp_socket {
                    p.rtcp_remote
                } else {
                    p.remote
                };
                match expected {
                    Some(r) if r != tuple.remote => {
                        t.counters.dropped += 1;
                        return;
                    }
                    Some(_) => {}
                    None if p.comedia => {
                        if is_rtcp_socket {
                            p.rtcp_remote = Some(tuple.remote);
                            p.rtcp_local = Some(tuple.local);
                        } else {
                            p.remote = Some(tuple.remote);
                            p.local = Some(tuple.local);
                            if p.rtcp_mux {
                                p.rtcp_remote = Some(tuple.remote);
                                p.rtcp_local = Some(tuple.local);
                            }
                        }
                        let h = HandlerId::from(&t.id);
                        self.notify(
                            h,
                            MediaEvent::PlainTransportTuple {
                                tuple: fbs_tuple(&tuple),
                                rtcp: is_rtcp_socket,
                            },
                        );
                    }
                    None => {
                        t.counters.dropped += 1;
                        return;
                    }
                }
                self.media_in(k, data, rtcp, now);
            }
        }
    }

    fn pump_ice(&mut self, k: u64, now: Instant) {
        let Some(t) = self.transports.get_mut(&k) else {
            return;
        };
        let Kind::WebRtc(w) = &mut t.kind else {
            return;
        };
        let h = HandlerId::from(&t.id);
        let mut events = Vec::new();
        while let Some(e) = w.ice.poll_event() {
            events.push(e);
        }
        let mut start_dtls = false;
        for e in events {
            match e {
                IceEvent::StateChanged(s) => {
                    tracing::debug!(target: "ice", transport = %h, state = ?s, "ice state");
                    self.notify(
                        h.clone(),
                        MediaEvent::TransportIceStateChange(fbs_ice_state(s)),
                    );
                }
                IceEvent::TupleSelected(tuple) => {
                    start_dtls = true;
                    self.tuple_index.insert(tuple, k);
                    self.notify(
                        h.clone(),
                        MediaEvent::TransportIceSelectedTupleChange(fbs_tuple(&tuple)),
                    );
                }
            }
        }
        if start_dtls {
            if let Some(Kind::WebRtc(w)) = self.transports.get_mut(&k).map(|t| &mut t.kind) {
                w.dtls.start(now);
            }
            self.pump_dtls(k, now);
        }
    }

    fn pump_dtls(&mut self, k: u64, now: Instant) {
        let Some(t) = self.transports.get_mut(&k) else {
            return;
        };
        let Kind::WebRtc(w) = &mut t.kind else {
            return;
        };
        let h = HandlerId::from(&t.id);
        let tuple = w.ice.selected_tuple();
        while let Some(data) = w.dtls.poll_transmit() {
            if let Some(tuple) = tuple {
                t.counters.bytes_sent += data.len() as u64;
                self.outputs
                    .push_back(Output::Transmit(Transmit { tuple, data }));
            }
        }
        let mut events = Vec::new();
        while let Some(e) = w.dtls.poll_event() {
            events.push(e);
        }
        for e in events {
            match e {
                DtlsOutput::StateChanged(state, reason) => {
                    if state == DtlsState::Failed {
                        self.stats.dtls_failures += 1;
                        tracing::info!(target: "dtls", transport = %h, ?reason, "dtls failed");
                    }
                    self.notify(
                        h.clone(),
                        MediaEvent::TransportDtlsStateChange { state, reason },
                    );
                }
                DtlsOutput::Connected(c) => {
                    let crypto = match rtc_dtls::crypto_provider::default_provider() {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(target: "srtp", error = %e, "no crypto provider");
                            continue;
                        }
                    };
                    match SrtpSession::from_keying_material(
                        c.profile,
                        &c.keying_material,
                        c.is_client,
                        &crypto,
                    ) {
                        Ok(s) => {
                            if let Some(Kind::WebRtc(w)) =
                                self.transports.get_mut(&k).map(|t| &mut t.kind)
                            {
                                tracing::debug!(target: "srtp", transport = %h, profile = ?c.profile, "srtp ready");
                                w.srtp = Some(s);
                            }
                            // What was forwarded before the transport could send is lost: its
                            // active video consumers need a keyframe now (as mediasoup does
                            // when a transport connects).
                            let producers: Vec<u64> = self
                                .consumers
                                .values()
                                .filter(|c| {
                                    c.transport == k && c.active() && c.kind == MediaKind::Video
                                })
                                .map(|c| c.producer)
                                .collect();
                            for p in producers {
                                self.request_key_frame(p, now);
                            }
                        }
                        Err(e) => {
                            self.stats.dtls_failures += 1;
                            self.notify(
                                h.clone(),
                                MediaEvent::TransportDtlsStateChange {
                                    state: DtlsState::Failed,
                                    reason: Some(e.to_string()),
                                },
                            );
                        }
                    }
                }
            }
        }
    }

    fn media_in(&mut self, k: u64, data: &[u8], rtcp: bool, now: Instant) {
        let t = self.transports.get_mut(&k).expect("caller looked it up");
        let plain = match t.unprotect(data, rtcp) {
            Ok(p) => p,
            Err(e) => {
                t.counters.dropped += 1;
                tracing::trace!(target: "srtp", reason = ?e, "inbound packet dropped");
                return;
            }
        };
        if rtcp {
            t.counters.rtcp_received += 1;
            match rtcp::parse(&plain) {
                Ok(items) => self.rtcp_in(k, items, now),
                Err(_) => t.counters.dropped += 1,
            }
        } else {
            t.counters.rtp_received += 1;
            self.rtp_in(k, &plain, now);
        }
    }

    fn drop_packet(&mut self, k: u64) {
        if let Some(t) = self.transports.get_mut(&k) {
            t.counters.dropped += 1;
        }
    }

    fn rtcp_in(&mut self, k: u64, items: Vec<Rtcp>, now: Instant) {
        let clock = self.clock(now);
        for item in items {
            let t = self.transports.get(&k).expect("caller looked it up");
            match item {
                Rtcp::SenderReport {
                    ssrc,
                    ntp,
                    rtp,
                    reports,
                    ..
                } => {
                    if let Some(&(pk, i, false)) = t.ssrc_producers.get(&ssrc)
                        && let Some(s) = self
                            .producers
                            .get_mut(&pk)
                            .and_then(|p| p.encodings[i].stream.as_mut())
                    {
                        s.on_sender_report(ntp, rtp, now);
                    }
                    self.report_blocks(k, &reports, now, &clock);
                }
                Rtcp::ReceiverReport { reports, .. } => {
                    self.report_blocks(k, &reports, now, &clock);
                }
                Rtcp::Nack { media_ssrc, seqs } => {
                    if let Some(&ck) = t.ssrc_consumers.get(&media_ssrc) {
                        self.retransmit(ck, &seqs, now);
                    }
                }
                Rtcp::Pli { media_ssrc } => {
                    if let Some(&ck) = t.ssrc_consumers.get(&media_ssrc)
                        && let Some(c) = self.consumers.get_mut(&ck)
                    {
                        c.stream.pli_count += 1;
                        let pk = c.producer;
                        if c.active() {
                            self.request_key_frame(pk, now);
                        }
                    }
                }
                Rtcp::Fir { media_ssrcs } => {
                    for s in media_ssrcs {
                        if let Some(&ck) = self.transports[&k].ssrc_consumers.get(&s)
                            && let Some(c) = self.consumers.get_mut(&ck)
                        {
                            c.stream.fir_count += 1;
                            let pk = c.producer;
                            if c.active() {
                                self.request_key_frame(pk, now);
                            }
                        }
                    }
                }
                // Feedback on what we send: for the send-side estimation to come.
                Rtcp::Remb { .. } | Rtcp::Sdes { .. } | Rtcp::TransportCc(_) => {}
            }
        }
    }

    fn report_blocks(
        &mut self,
        k: u64,
        blocks: &[rtcp::ReportBlock],
        now: Instant,
        clock: &NtpClock,
    ) {
        for b in blocks {
            let Some(&ck) = self.transports[&k].ssrc_consumers.get(&b.ssrc) else {
                continue;
            };
            let Some(c) = self.consumers.get_mut(&ck) else {
                continue;
            };
            c.stream.on_report_block(b, now, clock);
        }
    }

    fn retransmit(&mut self, ck: u64, seqs: &[u16], now: Instant) {
        let ntp = self.clock(now).ntp(now);
        let Some(c) = self.consumers.get_mut(&ck) else {
            return;
        };
        c.stream.nack_count += 1;
        c.stream.nack_packet_count += seqs.len() as u64;
        let min_interval = c
            .stream
            .rtt
            .unwrap_or(Duration::from_millis(10))
            .max(Duration::from_millis(10));
        // Simple consumers forward (and so retransmit) the producer's first encoding.
        let Some(store) = self
            .producers
            .get(&c.producer)
            .and_then(|p| p.encodings.first())
            .and_then(|e| e.store.as_ref())
        else {
            return;
        };
        let Some(t) = self.transports.get_mut(&c.transport) else {
            return;
        };
        let Some(tuple) = t.send_tuple(false) else {
            return;
        };
        for &seq in seqs {
            let Some(buffer) = c.stream.buffer.as_mut() else {
                return;
            };
            let Some((in_ext_seq, pkt)) = buffer
                .get_for_resend(seq, now, min_interval)
                .and_then(|in_ext_seq| Some((in_ext_seq, store.get(in_ext_seq)?)))
            else {
                continue;
            };
            let Ok(hdr) = RtpHeader::parse(pkt) else {
                continue;
            };
            let out_pt = c.pt_map[hdr.pt.0 as usize & 0x7f];
            if out_pt == 0 {
                continue;
            }
            let timestamp = c.stream.retransmitted_ts(in_ext_seq, hdr.timestamp);
            // RFC 4588: on the RTX stream, with the original sequence number before the payload.
            let rtx = c.stream.rtx_ssrc.zip(c.stream.pt_rtx);
            let (ssrc, pt, out_seq) = match rtx {
                Some((rtx_ssrc, rtx_pt)) => (rtx_ssrc, rtx_pt, c.stream.next_rtx_seq()),
                None => (c.stream.ssrc, out_pt, seq),
            };
            let osn = rtx.map(|_| seq.to_be_bytes());
            let rw = Rewrite {
                ssrc: Ssrc(ssrc),
                pt: Pt(pt),
                seq: out_seq,
                timestamp,
                marker: hdr.marker,
                ext_map: &c.ext_map,
                own: c.own_exts(|| t.next_twcc_seq(), ntp),
            };
            let buf = &mut self.rewrite_buf;
            rtp::write_rewritten(buf, pkt, &hdr, &rw, osn.as_ref().map_or(&[], |o| &o[..]));
            if let Some(data) = t.protect(buf, false) {
                c.stream.rtx_packets += 1;
                t.counters.rtx_sent += 1;
                t.counters.bytes_sent += data.len() as u64;
                self.outputs
                    .push_back(Output::Transmit(Transmit { tuple, data }));
            }
        }
    }

    /// Asks the publisher of producer `pk` for a keyframe, throttled by its
    /// `key_frame_request_delay`.
    fn request_key_frame(&mut self, pk: u64, now: Instant) {
        let Some(p) = self.producers.get_mut(&pk) else {
            return;
        };
        if p.kind != MediaKind::Video || p.paused {
            return;
        }
        if p.keyframe.request(now) {
            self.send_key_frame_request(pk);
        }
    }

    fn send_key_frame_request(&mut self, pk: u64) {
        let Some(p) = self.producers.get_mut(&pk) else {
            return;
        };
        let mut items = Vec::new();
        for e in &mut p.encodings {
            if let Some(s) = e.stream.as_mut() {
                if p.use_fir {
                    s.fir_count += 1;
                    items.push(Rtcp::Fir {
                        media_ssrcs: vec![s.ssrc],
                    });
                } else {
                    s.pli_count += 1;
                    items.push(Rtcp::Pli { media_ssrc: s.ssrc });
                }
            }
        }
        let tk = p.transport;
        if !items.is_empty() {
            tracing::trace!(target: "rtcp", producer = %p.id, "keyframe requested");
            self.send_rtcp(tk, &items);
        }
    }

    fn send_rtcp(&mut self, tk: u64, items: &[Rtcp]) {
        let Some(t) = self.transports.get_mut(&tk) else {
            return;
        };
        let Some(tuple) = t.send_tuple(true) else {
            return;
        };
        let wire = rtcp::build(items, t.rtcp_ssrc);
        if let Some(data) = t.protect(&wire, true) {
            t.counters.rtcp_sent += 1;
            t.counters.bytes_sent += data.len() as u64;
            self.outputs
                .push_back(Output::Transmit(Transmit { tuple, data }));
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        // ICE consent and DTLS retransmissions.
        let keys: Vec<u64> = self.transports.keys().copied().collect();
        for &k in &keys {
            let Some(t) = self.transports.get_mut(&k) else {
                continue;
            };
            if let Kind::WebRtc(w) = &mut t.kind {
                if w.ice.poll_timeout().is_some_and(|x| x <= now) {
                    w.ice.handle_timeout(now);
                    let valid: Vec<Tuple> = self
                        .tuple_index
                        .iter()
                        .filter(|(_, v)| **v == k)
                        .map(|(t, _)| *t)
                        .collect();
                    for tuple in valid {
                        if !w.ice.is_valid(&tuple) {
                            self.tuple_index.remove(&tuple);
                        }
                    }
                    self.pump_ice(k, now);
                }
                if let Some(Kind::WebRtc(w)) = self.transports.get_mut(&k).map(|t| &mut t.kind)
                    && w.dtls.poll_timeout().is_some_and(|x| x <= now)
                {
                    w.dtls.handle_timeout(now);
                    self.pump_dtls(k, now);
                }
            }
        }
        if self.next_tick.is_some_and(|t| t <= now) {
            self.tick(now);
            self.next_tick = if self.transports.is_empty() {
                None
            } else {
                Some(now + TICK)
            };
        }
    }

    fn tick(&mut self, now: Instant) {
        let clock = self.clock(now);
        // NACK retries and deferred keyframe requests.
        let pks: Vec<u64> = self.producers.keys().copied().collect();
        for pk in pks {
            let p = self.producers.get_mut(&pk).expect("listed above");
            let mut nacks = Vec::new();
            for e in &mut p.encodings {
                if let Some(s) = e.stream.as_mut()
                    && (s.has_unsent_nacks() || s.nack_timeout().is_some_and(|t| t <= now))
                {
                    let seqs = s.poll_nacks(now);
                    if !seqs.is_empty() {
                        nacks.push(Rtcp::Nack {
                            media_ssrc: s.ssrc,
                            seqs,
                        });
                    }
                }
            }
            let tk = p.transport;
            let deferred_key = p.keyframe.handle_timeout(now);
            if !nacks.is_empty() {
                self.send_rtcp(tk, &nacks);
            }
            if deferred_key {
                self.send_key_frame_request(pk);
            }
        }
        // Periodic RTCP per transport: SRs for consumers, RRs for producers, REMB.
        let tks: Vec<u64> = self.transports.keys().copied().collect();
        for &tk in &tks {
            let t = self.transports.get_mut(&tk).expect("listed above");
            // One packet each (reduced-size RTCP): a long report is several near-MTU ones.
            for f in t.twcc_in.poll_feedback(now, t.rtcp_ssrc) {
                self.send_rtcp(tk, &[Rtcp::TransportCc(Box::new(f))]);
            }
        }
        for tk in tks {
            let t = &self.transports[&tk];
            if t.next_rtcp > now {
                continue;
            }
            let mut items = Vec::new();
            let mut cnames = Vec::new();
            for &ck in &t.consumers {
                let Some(c) = self.consumers.get_mut(&ck) else {
                    continue;
                };
                let prtp = self.producers.get(&c.producer).and_then(|p| {
                    p.encodings
                        .first()
                        .and_then(|e| e.stream.as_ref())
                        .and_then(|s| s.rtp_time_at(now))
                });
                if let Some(sr) = c.stream.sender_report(now, &clock, prtp) {
                    if let Rtcp::SenderReport { ssrc, .. } = &sr
                        && !c.params.rtcp.cname.is_empty()
                    {
                        cnames.push((*ssrc, c.params.rtcp.cname.clone()));
                    }
                    items.push(sr);
                }
            }
            if !cnames.is_empty() {
                items.push(Rtcp::Sdes {
                    cnames: std::mem::take(&mut cnames),
                });
            }
            let mut blocks = Vec::new();
            let mut ssrcs = Vec::new();
            for &pk in &t.producers {
                if let Some(p) = self.producers.get_mut(&pk) {
                    for e in &mut p.encodings {
                        if let Some(s) = e.stream.as_mut()
                            && let Some(b) = s.report_block(now, &clock)
                        {
                            ssrcs.push(s.ssrc);
                            blocks.push(b);
                        }
                    }
                }
            }
            if !blocks.is_empty() {
                for chunk in blocks.chunks(31) {
                    items.push(Rtcp::ReceiverReport {
                        ssrc: self.transports[&tk].rtcp_ssrc,
                        reports: chunk.to_vec(),
                    });
                }
            }
            let max = self.transports[&tk].max_incoming_bitrate;
            if max > 0 && !ssrcs.is_empty() {
                items.push(Rtcp::Remb {
                    bitrate: max as u64,
                    ssrcs,
                });
            }
            self.transports
                .get_mut(&tk)
                .expect("listed above")
                .next_rtcp = now + RTCP_INTERVAL;
            if !items.is_empty() {
                // Keep each compound well under the MTU.
                for chunk in items.chunks(8) {
                    self.send_rtcp(tk, chunk);
                }
            }
        }
        self.scores();
    }

    fn scores(&mut self) {
        let pks: Vec<u64> = self.producers.keys().copied().collect();
        for pk in pks {
            let p = self.producers.get_mut(&pk).expect("listed above");
            if let Some(scores) = p.scores_changed() {
                let h = HandlerId::from(&p.id);
                self.notify(h, MediaEvent::ProducerScore(scores));
            }
        }
        let cks: Vec<u64> = self.consumers.keys().copied().collect();
        for ck in cks {
            let c = &self.consumers[&ck];
            let producer_score = self.producers.get(&c.producer).map_or(0, |p| p.score());
            let score = ferrosfu_fbs::ConsumerScore {
                score: c.stream.score,
                producer_score,
            };
            if score != c.last_score {
                let h = HandlerId::from(&c.id);
                self.consumers.get_mut(&ck).expect("listed").last_score = score;
                self.notify(h, MediaEvent::ConsumerScore(score));
            }
        }
    }
}

/// Finds the producer of an unknown SSRC through the MID and RID header extensions, and binds
/// the SSRC to it.
fn bind_by_mid_rid(
    t: &mut Transport,
    producers: &mut HashMap<u64, Producer>,
    hdr: &RtpHeader,
    pkt: &[u8],
) -> Option<(u64, usize, bool)> {
    for &pk in &t.producers {
        let p = producers.get_mut(&pk)?;
        if p.mid_ext == 0 {
            continue;
        }
        let Some(mid) = hdr.extension(pkt, p.mid_ext) else {
            continue;
        };
        if p.params.mid.as_deref().map(str::as_bytes) != Some(mid) {
            continue;
        }
        let rid = (p.rid_ext != 0)
            .then(|| hdr.extension(pkt, p.rid_ext))
            .flatten();
        let rrid = (p.rrid_ext != 0)
            .then(|| hdr.extension(pkt, p.rrid_ext))
            .flatten();
        let (want, is_rtx) = match (rid, rrid) {
            (Some(r), _) => (Some(r), false),
            (None, Some(r)) => (Some(r), true),
            (None, None) => (None, p.rtx_pts.contains_key(&hdr.pt.0)),
        };
        let i = match want {
            Some(r) => p
                .encodings
                .iter()
                .position(|e| e.rid.as_deref().map(str::as_bytes) == Some(r))?,
            None if p.encodings.len() == 1 => 0,
            None => continue,
        };
        if is_rtx {
            p.encodings[i].stream.as_ref()?;
            if let Some(s) = p.encodings[i].stream.as_mut() {
                s.rtx_ssrc = Some(hdr.ssrc.0);
            }
        } else {
            p.bind_ssrc(i, hdr.ssrc.0);
        }
        t.ssrc_producers.insert(hdr.ssrc.0, (pk, i, is_rtx));
        return Some((pk, i, is_rtx));
    }
    None
}

/// `local` with the unspecified address of its family (`0.0.0.0:port` or `[::]:port`).
fn unspecified(local: SocketAddr) -> SocketAddr {
    let ip = match local {
        SocketAddr::V4(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, local.port())
}

/// Whether a datagram to `local` arrived on the socket bound to `bound` (exactly, or to the
/// wildcard address on that port).
fn bound_to(bound: SocketAddr, local: SocketAddr) -> bool {
    bound == local || (bound.port() == local.port() && bound == unspecified(local))
}

/// The local ufrag of a STUN binding request: USERNAME is "local:remote".
fn stun_ufrag(data: &[u8]) -> Option<&str> {
    // Walk the attributes by hand: no allocation, and any malformed input yields None.
    if data.len() < 20 {
        return None;
    }
    let len = u16::from_be_bytes([data[2], data[3]]) as usize;
    let body = data.get(20..20 + len)?;
    let mut p = body;
    while p.len() >= 4 {
        let typ = u16::from_be_bytes([p[0], p[1]]);
        let alen = u16::from_be_bytes([p[2], p[3]]) as usize;
        let v = p.get(4..4 + alen)?;
        if typ == 0x0006 {
            let s = std::str::from_utf8(v).ok()?;
            return s.split(':').next();
        }
        p = p.get(4 + alen.div_ceil(4) * 4..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn datagrams_to_a_specific_ip_belong_to_the_wildcard_socket_on_their_port() {
        assert_eq!(unspecified(a("127.0.0.2:5000")), a("0.0.0.0:5000"));
        assert_eq!(unspecified(a("[::1]:5000")), a("[::]:5000"));
        assert!(bound_to(a("0.0.0.0:5000"), a("127.0.0.2:5000")));
        assert!(bound_to(a("[::]:5000"), a("[::1]:5000")));
        assert!(bound_to(a("127.0.0.2:5000"), a("127.0.0.2:5000")));
        assert!(
            !bound_to(a("0.0.0.0:5000"), a("127.0.0.2:5001")),
            "another port"
        );
        assert!(
            !bound_to(a("[::]:5000"), a("127.0.0.2:5000")),
            "another family"
        );
        assert!(
            !bound_to(a("127.0.0.1:5000"), a("127.0.0.2:5000")),
            "another IP"
        );
    }
}
