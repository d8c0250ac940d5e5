//! DTLS authentication of a WebRtcTransport against one real `rtc-dtls` peer, through a whole
//! `WorkerCore`. The input chooses the peer's DTLS role, whether it presents a certificate (as
//! client), the fingerprints it signals in `transport.connect` (sha-1/sha-256/sha-384/sha-512/
//! md5/unknown algorithms, each of the presented certificate, of another one, or malformed),
//! whether ICE completes before or after `connect`, and how the records in flight are delivered
//! (in order, dropped, duplicated, a byte flipped, truncated) between time steps. Then every
//! record is delivered faithfully until the handshake is over or has timed out.
//!
//! Must hold (RFC 8122 §5, as the core implements it):
//! - no panic; every request gets exactly one reply;
//! - the transport reports DTLS `connected` (at most once, never after `failed`) only if
//!   `connect` was accepted and the presented certificate's digest under the strongest of
//!   sha-256/384/512 signaled equals one signaled value of that algorithm (the oracle hashes
//!   with `ring` itself);
//! - the peer finishes its handshake (it could then derive SRTP keys) only under that condition;
//! - a handshake started is over (connected, failed or closed) 31 s later at most;
//! - with no record perturbed and the handshake started in time, an authentic peer connects and
//!   an inauthentic one fails.
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run dtls_auth -- -max_total_time=60
//!
//! `DTLS_AUTH_TRACE=1` prints the setup, every delivery and the outcome.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::{Result, Unstructured};
use bytes::BytesMut;
use ferrosfu_fbs::{
    ConnectParams, DtlsFingerprint, DtlsParameters, DtlsRole, DtlsState, Event, MediaEvent,
    RequestBody, RequestFailure, ResponseBody, RouterId, TransportProtocol, WebRtcTransportListen,
};
use ferrosfu_sim::drive::{self, Binding, Requests, addr, bound, listen, webrtc_options};
use ferrosfu_sim::dtls::{certificate, config, endpoint, verify_first};
use ferrosfu_worker_core::{
    BoundSocket, Input, Output, PacketKind, Protocol, SrtpProfile, Tuple, WorkerCore, classify,
};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};

const TRANSPORT: &str = "webrtc";
/// Ops before the faithful delivery.
const MAX_OPS: usize = 48;
/// How long after the handshake started it must be over (the core gives up after 30 s).
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(31);

fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("DTLS_AUTH_TRACE").is_some())
}

/// The certificate the peer presents and another one (made once: certificates are slow).
fn certificates() -> &'static (Certificate, Certificate) {
    static CERTS: OnceLock<(Certificate, Certificate)> = OnceLock::new();
    CERTS.get_or_init(|| (certificate("peer"), certificate("other")))
}

/// Upper-case colon-separated hex, as SDP writes fingerprints.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The oracle's digest of `der` under `algorithm` (None: not a hash ring knows).
fn digest(algorithm: &str, der: &[u8]) -> Option<String> {
    use ring::digest;
    let alg = match algorithm.to_ascii_lowercase().as_str() {
        "sha-1" => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        "sha-256" => &digest::SHA256,
        "sha-384" => &digest::SHA384,
        "sha-512" => &digest::SHA512,
        _ => return None,
    };
    Some(hex(digest::digest(alg, der).as_ref()))
}

/// Rank of the algorithms a fingerprint may be checked with (RFC 8122 §5: the strongest wins).
fn rank(algorithm: &str) -> Option<usize> {
    ["sha-256", "sha-384", "sha-512"]
        .iter()
        .position(|a| a.eq_ignore_ascii_case(algorithm))
}

/// Whether `presented` is authenticated by `signaled`.
fn authentic(presented: Option<&[u8]>, signaled: &[DtlsFingerprint]) -> bool {
    let Some(der) = presented else { return false };
    let Some(best) = signaled.iter().filter_map(|f| rank(&f.algorithm)).max() else {
        return false;
    };
    signaled
        .iter()
        .filter(|f| rank(&f.algorithm) == Some(best))
        .any(|f| digest(&f.algorithm, der).is_some_and(|d| d.eq_ignore_ascii_case(&f.value)))
}

/// One signaled fingerprint.
fn fingerprint(u: &mut Unstructured<'_>) -> Result<DtlsFingerprint> {
    let (presented, other) = certificates();
    let algorithm = match u.int_in_range(0..=7u8)? {
        0 => "sha-1",
        1 => "sha-256",
        2 => "sha-384",
        3 => "sha-512",
        4 => "md5",
        5 => "SHA-256",
        6 => "sha-257",
        _ => "",
    };
    // md5 and unknown names: a value of the length an md5 would have.
    let of = |cert: &Certificate| {
        digest(algorithm, &cert.certificate[0]).unwrap_or_else(|| hex(&[0xAB; 16]))
    };
    let value = match u.int_in_range(0..=4u8)? {
        0 => of(presented),
        1 => of(other),
        2 => of(presented).to_ascii_lowercase(),
        // Right length, wrong digest.
        3 => {
            let mut v = of(presented);
            v.replace_range(..2, if v.starts_with("00") { "01" } else { "00" });
            v
        }
        // Malformed: one byte short.
        _ => {
            let v = of(presented);
            v[..v.len().saturating_sub(3)].to_owned()
        }
    };
    Ok(DtlsFingerprint {
        algorithm: algorithm.to_owned(),
        value,
    })
}

/// What happens to one record in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Deliver,
    Drop,
    Duplicate,
    /// XOR the byte at this index (modulo the length) with this mask.
    Flip(usize, u8),
    /// Keep this many bytes (modulo the length).
    Truncate(usize),
}

impl Fate {
    fn arbitrary(u: &mut Unstructured<'_>) -> Result<Self> {
        Ok(match u.int_in_range(0..=7u8)? {
            0..=3 => Fate::Deliver,
            4 => Fate::Drop,
            5 => Fate::Duplicate,
            6 => Fate::Flip(u.int_in_range(0..=1023)?, u.int_in_range(1..=255)?),
            _ => Fate::Truncate(u.int_in_range(0..=1023)?),
        })
    }

    /// The datagrams that arrive instead of `data`.
    fn apply(self, mut data: Vec<u8>) -> Vec<Vec<u8>> {
        match self {
            Fate::Deliver => vec![data],
            Fate::Drop => vec![],
            Fate::Duplicate => vec![data.clone(), data],
            Fate::Flip(i, mask) => {
                if !data.is_empty() {
                    let i = i % data.len();
                    data[i] ^= mask;
                }
                vec![data]
            }
            Fate::Truncate(n) => {
                data.truncate(n % data.len().max(1));
                vec![data]
            }
        }
    }
}

struct Run {
    core: WorkerCore,
    now: Instant,
    requests: Requests,
    /// The transport's socket, and the peer's address.
    local: SocketAddr,
    remote: SocketAddr,
    ice: (String, String),
    /// Binding requests sent (each gets its own transaction id).
    bindings: u8,
    peer: Endpoint,
    peer_done: bool,
    to_core: VecDeque<Vec<u8>>,
    to_peer: VecDeque<Vec<u8>>,
    /// DTLS states the transport reported, in order.
    states: Vec<DtlsState>,
    ice_selected: bool,
    connect_ok: bool,
    /// When the core could start the handshake (ICE selected and `connect` accepted).
    started: Option<Instant>,
    /// Whether a record was lost, duplicated or damaged.
    perturbed: bool,
    /// The oracle's verdict on what the peer presents and signals.
    authentic: bool,
}

impl Run {
    fn output(&mut self, o: Output) {
        match o {
            Output::Notify(n) if n.handler_id.as_str() == TRANSPORT => match n.event {
                Event::Media(MediaEvent::TransportDtlsStateChange { state, reason }) => {
                    if trace() {
                        eprintln!("  core dtls {state:?} {reason:?}");
                    }
                    self.on_state(state);
                }
                Event::Media(MediaEvent::TransportIceSelectedTupleChange(_)) => {
                    self.ice_selected = true;
                    self.maybe_started();
                }
                _ => {}
            },
            Output::Notify(_) | Output::ReleaseSockets(_) => {}
            Output::Reply(r) => panic!("unsolicited reply {r:?}"),
            Output::Closed => panic!("worker closed without worker.close"),
        }
    }

    fn on_state(&mut self, state: DtlsState) {
        if state == DtlsState::Connected {
            assert!(
                self.connect_ok && self.authentic,
                "DTLS connected with a certificate the signaled fingerprints do not authenticate"
            );
            assert!(
                !self.states.contains(&DtlsState::Connected),
                "connected twice"
            );
            assert!(
                !self.states.contains(&DtlsState::Failed),
                "connected after failing"
            );
        }
        self.states.push(state);
    }

    fn maybe_started(&mut self) {
        if self.ice_selected && self.connect_ok && self.started.is_none() {
            self.started = Some(self.now);
        }
    }

    fn drain(&mut self) {
        let (local, remote) = (self.local, self.remote);
        let to_peer = &mut self.to_peer;
        drive::transmits(&mut self.core, self.now, |tuple, data| {
            assert_eq!(tuple.local, local, "transmit from another socket");
            assert_eq!(tuple.remote, remote, "transmit to another remote");
            if classify(data) == PacketKind::Dtls {
                to_peer.push_back(data.to_vec());
            }
        });
        while let Some(o) = self.core.poll_output() {
            self.output(o);
        }
    }

    fn request(
        &mut self,
        handler: &str,
        body: RequestBody,
        sockets: Option<Vec<BoundSocket>>,
    ) -> std::result::Result<ResponseBody, RequestFailure> {
        let (reply, others) = self
            .requests
            .send(&mut self.core, self.now, handler, body, sockets);
        for o in others {
            self.output(o);
        }
        reply
    }

    fn connect(&mut self, params: DtlsParameters) {
        let connect = ConnectParams::WebRtc {
            dtls_parameters: params,
        };
        let reply = self.request(TRANSPORT, RequestBody::TransportConnect(connect), None);
        if trace() {
            eprintln!("connect: {:?}", reply.as_ref().map(|_| ()));
        }
        self.connect_ok = reply.is_ok();
        self.maybe_started();
    }

    /// The peer's ICE check (nominating), which the core answers and selects the tuple on.
    fn binding(&mut self) {
        self.bindings = self.bindings.wrapping_add(1);
        let data = Binding {
            ufrag: &self.ice.0,
            pwd: &self.ice.1,
            from_port: self.remote.port(),
            transaction: [self.bindings; 12],
            priority: 1_853_817_087,
            controlled: false,
            nominate: true,
        }
        .build();
        self.core_receive(&data);
    }

    fn core_receive(&mut self, data: &[u8]) {
        let tuple = Tuple {
            local: self.local,
            remote: self.remote,
            protocol: Protocol::Udp,
        };
        self.core.handle_input(
            Input::Datagram {
                tuple,
                data,
                arrival: self.now,
            },
            self.now,
        );
        self.drain();
    }

    fn peer_receive(&mut self, data: Vec<u8>) {
        let events = self
            .peer
            .read(self.now, self.local, None, BytesMut::from(&data[..]));
        if trace() {
            match &events {
                Ok(e) => eprintln!("  peer read: {} events", e.len()),
                Err(e) => eprintln!("  peer read: {e}"),
            }
        }
        if let Ok(events) = events
            && events
                .iter()
                .any(|e| matches!(e, EndpointEvent::HandshakeComplete))
        {
            assert!(
                self.connect_ok && self.authentic,
                "the peer finished a handshake the signaled fingerprints do not authenticate"
            );
            self.peer_done = true;
        }
        self.flush_peer();
    }

    fn flush_peer(&mut self) {
        while let Some(t) = self.peer.poll_transmit() {
            self.to_core.push_back(t.message.to_vec());
        }
    }

    /// Delivers the oldest record in flight one way, as `fate` says.
    fn deliver(&mut self, to_core: bool, fate: Fate) {
        let queue = if to_core {
            &mut self.to_core
        } else {
            &mut self.to_peer
        };
        let Some(data) = queue.pop_front() else {
            return;
        };
        if trace() {
            let dir = if to_core {
                "peer -> core"
            } else {
                "core -> peer"
            };
            eprintln!(
                "{dir} {} bytes [{:02x?}..]: {fate:?}",
                data.len(),
                &data[..data.len().min(1)]
            );
        }
        if fate != Fate::Deliver {
            self.perturbed = true;
        }
        for d in fate.apply(data) {
            if to_core {
                self.core_receive(&d);
            } else {
                self.peer_receive(d);
            }
        }
    }

    /// Delivers everything in flight, both ways, until nothing is.
    fn flush(&mut self) {
        for _ in 0..64 {
            if self.to_core.is_empty() && self.to_peer.is_empty() {
                return;
            }
            while !self.to_core.is_empty() {
                self.deliver(true, Fate::Deliver);
            }
            while !self.to_peer.is_empty() {
                self.deliver(false, Fate::Deliver);
            }
        }
    }

    /// Moves time to `to` and runs every timer that came (the core's and the peer's).
    fn advance_to(&mut self, to: Instant) {
        self.now = self.now.max(to);
        let mut rounds = 0;
        while let Some(t) = self.core.poll_timeout()
            && t <= self.now
        {
            rounds += 1;
            assert!(
                rounds < 64,
                "poll_timeout stays at or before now after Timeout"
            );
            self.core.handle_input(Input::Timeout, self.now);
            self.drain();
        }
        if self
            .peer
            .poll_timeout(&self.local)
            .is_some_and(|t| t <= self.now)
        {
            // An error is the peer giving up its retransmissions: the core times out on its own.
            let _ = self.peer.handle_timeout(self.local, self.now);
            self.flush_peer();
        }
    }

    /// The earliest timer, the core's or the peer's.
    fn next_timer(&self) -> Option<Instant> {
        match (
            self.core.poll_timeout(),
            self.peer.poll_timeout(&self.local),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn op(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        match u.int_in_range(0..=6u8)? {
            0 | 1 => {
                let fate = Fate::arbitrary(u)?;
                self.deliver(true, fate);
            }
            2 | 3 => {
                let fate = Fate::arbitrary(u)?;
                self.deliver(false, fate);
            }
            4 => self.flush(),
            5 => {
                let ms = u.int_in_range(0..=3000u64)?;
                self.advance_to(self.now + Duration::from_millis(ms));
            }
            _ => {
                if let Some(t) = self.next_timer() {
                    self.advance_to(t);
                }
            }
        }
        Ok(())
    }

    fn over(&self) -> bool {
        self.states.iter().any(|s| {
            matches!(
                s,
                DtlsState::Connected | DtlsState::Failed | DtlsState::Closed
            )
        })
    }

    /// Faithful delivery until the handshake is over and nothing is in flight, or the time the
    /// core must have given up by has passed.
    fn settle(&mut self) {
        self.flush();
        let Some(started) = self.started else {
            // `connect` was refused: no handshake to wait for.
            return;
        };
        let give_up = started + HANDSHAKE_LIMIT;
        let mut last_binding = self.now;
        // The core's timer ticks every 20 ms: 31 s is about 1600 steps.
        for _ in 0..4000 {
            self.flush();
            let done = match self.states.last() {
                // The peer finishes once the core's last flight reaches it.
                Some(DtlsState::Connected) => self.peer_done,
                Some(DtlsState::Failed | DtlsState::Closed) => true,
                _ => false,
            };
            if done || self.now >= give_up {
                break;
            }
            // ICE consent: a check every few seconds keeps the tuple.
            if self.now >= last_binding + Duration::from_secs(5) {
                last_binding = self.now;
                self.binding();
            }
            let next = self
                .next_timer()
                .map_or(give_up, |t| t.min(give_up))
                .max(self.now + Duration::from_millis(10));
            self.advance_to(next);
        }
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let _ = outcome(data);
}

/// Runs one input and returns the last DTLS state the transport reported (`None`: none, or the
/// input ended before the setup was complete).
pub fn outcome(data: &[u8]) -> Option<DtlsState> {
    let mut u = Unstructured::new(data);
    let Ok((peer_is_server, no_certificate, fingerprints, ice_first)) = (|| {
        let peer_is_server: bool = u.arbitrary()?;
        let no_certificate: bool = u.ratio(1, 8)?;
        let mut fingerprints = Vec::new();
        for _ in 0..u.int_in_range(0..=4u8)? {
            fingerprints.push(fingerprint(&mut u)?);
        }
        Ok::<_, arbitrary::Error>((peer_is_server, no_certificate, fingerprints, u.arbitrary()?))
    })() else {
        return None;
    };
    // A DTLS server must have a certificate.
    let no_certificate = no_certificate && !peer_is_server;
    let (cert, _) = certificates();
    let presented = (!no_certificate).then(|| cert.certificate[0].to_vec());
    let now = drive::start();
    let local = addr("10.0.0.2:40002");
    let remote = addr("192.168.1.10:5000");
    let mut r = Run {
        core: drive::core(now),
        now,
        requests: Requests::default(),
        local,
        remote,
        ice: Default::default(),
        bindings: 0,
        peer: Endpoint::new(remote, rtc_shared::TransportProtocol::UDP, None),
        peer_done: false,
        to_core: VecDeque::new(),
        to_peer: VecDeque::new(),
        states: Vec::new(),
        ice_selected: false,
        connect_ok: false,
        started: None,
        perturbed: false,
        authentic: authentic(presented.as_deref(), &fingerprints),
    };
    let router = RouterId::new("router");
    r.request(
        "",
        RequestBody::WorkerCreateRouter {
            router_id: router.clone(),
        },
        None,
    )
    .expect("router");
    let listen = WebRtcTransportListen::Individual(vec![listen(TransportProtocol::Udp, local)]);
    let Ok(ResponseBody::WebRtcTransportDump(dump)) = r.request(
        router.as_str(),
        RequestBody::RouterCreateWebRtcTransport(webrtc_options(TRANSPORT, listen)),
        Some(vec![bound(Protocol::Udp, local)]),
    ) else {
        panic!("webrtc transport not created");
    };
    r.ice = (
        dump.ice_parameters.username_fragment,
        dump.ice_parameters.password,
    );
    r.peer = peer(
        peer_is_server,
        presented.is_some(),
        dump.dtls_parameters.fingerprints,
        r.now,
        local,
        remote,
    );
    r.flush_peer();
    if trace() {
        eprintln!(
            "peer is DTLS {}, presents {}, signals {fingerprints:?}; authentic: {}",
            if peer_is_server { "server" } else { "client" },
            if no_certificate {
                "nothing"
            } else {
                "its certificate"
            },
            r.authentic
        );
    }
    let params = DtlsParameters {
        role: if peer_is_server {
            DtlsRole::Server
        } else {
            DtlsRole::Client
        },
        fingerprints,
    };
    if ice_first {
        r.binding();
        r.connect(params);
    } else {
        r.connect(params);
        r.binding();
    }
    for _ in 0..MAX_OPS {
        if u.is_empty() || r.op(&mut u).is_err() {
            break;
        }
    }
    let started_in_time = r
        .started
        .is_some_and(|s| r.now < s + Duration::from_secs(10));
    r.settle();
    if trace() {
        eprintln!(
            "outcome after {:?}: core {:?}, peer done {}, perturbed {}",
            r.now - now,
            r.states,
            r.peer_done,
            r.perturbed
        );
    }
    if r.started.is_some() {
        assert!(
            r.over(),
            "a handshake started {HANDSHAKE_LIMIT:?} ago is not over: {:?}",
            r.states
        );
    }
    if r.connect_ok && !r.perturbed && started_in_time {
        let want = if r.authentic {
            DtlsState::Connected
        } else {
            DtlsState::Failed
        };
        assert!(
            r.states.contains(&want),
            "an undisturbed handshake with an {} peer: {:?}",
            if r.authentic {
                "authentic"
            } else {
                "inauthentic"
            },
            r.states
        );
    }
    if let Some(last) = r.states.last().copied() {
        let Ok(ResponseBody::TransportStats(stats)) =
            r.request(TRANSPORT, RequestBody::TransportGetStats, None)
        else {
            panic!("transport stats");
        };
        assert_eq!(
            stats.dtls_state,
            Some(last),
            "stats and notifications disagree"
        );
    }
    r.states.last().copied()
}

/// The peer's endpoint (already connecting when it is the client): it verifies the SFU's
/// certificate honestly against what the SFU signaled.
fn peer(
    is_server: bool,
    with_certificate: bool,
    sfu: Vec<DtlsFingerprint>,
    now: Instant,
    local: SocketAddr,
    remote: SocketAddr,
) -> Endpoint {
    let (cert, _) = certificates();
    let certificates = if with_certificate {
        vec![cert.clone()]
    } else {
        vec![]
    };
    let verify = verify_first(move |der| {
        sfu.iter()
            .any(|f| digest(&f.algorithm, der).is_some_and(|d| d.eq_ignore_ascii_case(&f.value)))
    });
    let config = config(
        !is_server,
        certificates,
        SrtpProfile::AeadAes128Gcm,
        Some(verify),
    );
    endpoint(is_server, remote, local, config, now)
}
