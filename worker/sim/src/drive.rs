//! Driving a `WorkerCore` as the shell does: its configuration and DTLS identity, listen and
//! socket descriptions, a request that checks its one reply, every transmit as datagrams, and
//! STUN binding requests signed with a transport's ICE password.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use ferrosfu_fbs::{
    HandlerId, ListenInfo, Request, RequestBody, RequestFailure, RequestId, ResponseBody,
    TransportId, TransportProtocol, WebRtcTransportListen, WebRtcTransportOptions,
};
use ferrosfu_worker_core::{
    BoundSocket, CoreConfig, DtlsIdentity, Input, NtpClock, Output, Protocol, Tuple, WorkerCore,
};

/// The PRIORITY the simulated peers put in their checks.
pub const PEER_PRIORITY: u32 = 1_853_817_087;

/// Every datagram the core has queued, one by one (GSO batches split), through the caller-owned
/// buffer API.
pub fn transmits(core: &mut WorkerCore, now: Instant, mut f: impl FnMut(Tuple, &[u8])) {
    let mut buf = Vec::new();
    while let Some(t) = core.poll_transmit(now, 64, &mut buf) {
        assert!(t.size <= buf.len(), "a transmit larger than what it wrote");
        for d in t.datagrams(&buf) {
            f(t.tuple, d);
        }
        buf.clear();
    }
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

/// The same simulated start for every caller in a process (certificates and the NTP anchor are
/// made once).
pub fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// The worker's DTLS identity, generated once per process: a certificate costs milliseconds.
pub fn identity() -> DtlsIdentity {
    static IDENTITY: OnceLock<DtlsIdentity> = OnceLock::new();
    IDENTITY
        .get_or_init(|| DtlsIdentity::generate().expect("certificate"))
        .clone()
}

/// A worker core's configuration as the shell makes it: worker 1 on core 0, `seed`, and an NTP
/// clock anchored at `now`.
pub fn core_config(seed: u64, now: Instant) -> CoreConfig {
    let mut config = CoreConfig::new(1, 0);
    config.seed = seed;
    config.ntp = Some(NtpClock {
        anchor: now,
        anchor_ntp: 3_900_000_000u64 << 32,
    });
    config
}

/// A worker core with a fixed seed, NTP anchor and the process's [`identity`].
pub fn core(now: Instant) -> WorkerCore {
    let mut config = core_config(7, now);
    config.identity = Some(identity());
    WorkerCore::new(config)
}

pub fn listen(protocol: TransportProtocol, a: SocketAddr) -> ListenInfo {
    ListenInfo {
        protocol,
        ip: a.ip().to_string(),
        announced_address: None,
        port: a.port(),
    }
}

pub fn bound(protocol: Protocol, local: SocketAddr) -> BoundSocket {
    BoundSocket {
        protocol,
        local,
        announced: None,
    }
}

/// A WebRtcTransport on `listen`, UDP and TCP enabled, UDP preferred, no consent timeout.
pub fn webrtc_options(id: &str, listen: WebRtcTransportListen) -> WebRtcTransportOptions {
    WebRtcTransportOptions {
        transport_id: TransportId::new(id),
        listen,
        enable_udp: true,
        enable_tcp: true,
        prefer_udp: true,
        prefer_tcp: false,
        ice_consent_timeout: 0,
        initial_available_outgoing_bitrate: 1_000_000,
        sctp: None,
    }
}

/// Request ids for one core, from 1 up.
#[derive(Debug)]
pub struct Requests {
    next: u32,
}

impl Default for Requests {
    fn default() -> Self {
        Self { next: 1 }
    }
}

impl Requests {
    /// Sends the next request and drains its outputs (see [`request`]): its result, and every
    /// other output in order.
    pub fn send(
        &mut self,
        core: &mut WorkerCore,
        now: Instant,
        handler: &str,
        body: RequestBody,
        sockets: Option<Vec<BoundSocket>>,
    ) -> (Result<ResponseBody, RequestFailure>, Vec<Output>) {
        let id = self.next;
        self.next += 1;
        let mut others = Vec::new();
        let reply = request(core, now, id, handler, body, sockets, |o| others.push(o));
        (reply, others)
    }
}

/// Sends request `id` and drains its outputs: exactly one reply, to it, comes back (returned);
/// every other output goes to `other`. Transmits stay queued in the core.
pub fn request(
    core: &mut WorkerCore,
    now: Instant,
    id: u32,
    handler: &str,
    body: RequestBody,
    sockets: Option<Vec<BoundSocket>>,
    mut other: impl FnMut(Output),
) -> Result<ResponseBody, RequestFailure> {
    let id = RequestId(id);
    let req = Request {
        id,
        handler_id: HandlerId::new(handler),
        body,
    };
    let input = match sockets {
        Some(s) => Input::CommandWithSockets(req, s),
        None => Input::Command(req),
    };
    core.handle_input(input, now);
    let mut reply = None;
    while let Some(o) = core.poll_output() {
        match o {
            Output::Reply(r) => {
                assert_eq!(r.id, id, "a reply to another request");
                assert!(reply.is_none(), "two replies to one request");
                reply = Some(r.result);
            }
            o => other(o),
        }
    }
    reply.expect("every request gets a reply")
}

/// A binding request from `peer<from_port>` signed with the transport's ICE password.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    pub ufrag: &'a str,
    pub pwd: &'a str,
    pub from_port: u16,
    pub transaction: [u8; 12],
    pub priority: u32,
    /// ICE-CONTROLLED instead of ICE-CONTROLLING (a role conflict for an ICE-lite agent).
    pub controlled: bool,
    pub nominate: bool,
}

impl Binding<'_> {
    pub fn build(&self) -> Vec<u8> {
        crate::stun::Check {
            username: &format!("{}:peer{}", self.ufrag, self.from_port),
            pwd: self.pwd,
            transaction: self.transaction,
            priority: self.priority,
            controlling: !self.controlled,
            tie_breaker: 7,
            nominate: self.nominate,
        }
        .build()
        .expect("binding request")
    }
}
