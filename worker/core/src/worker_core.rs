//! [`WorkerCore`]: the tables of entities, and the three calls the shell drives it with
//! ([`WorkerCore::handle_input`], [`WorkerCore::poll_output`], [`WorkerCore::poll_timeout`]).
//! What each input does lives by responsibility: `control/` (requests), `media/` (datagrams,
//! feedback, the periodic tick), `transport/` (ICE/DTLS pumps, plain transports).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ferrosfu_fbs::{
    Event, HandlerId, MediaEvent, Notification, Request, RequestFailure, Response, RouterId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::demux::Demux;
use crate::proto::dtls::DtlsIdentity;
use crate::proto::ice::Tuple;
use crate::stats::CoreStats;
use crate::streams::recv::NtpClock;
use crate::tables::{Tables, TransportKey};
use crate::transmit::{Transmit, TransmitQueue};
use crate::transport::{BoundSocket, Kind};

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
pub enum Input<'a> {
    /// A decoded channel request for the core (see the drive contract for those it never gets).
    Command(Request),
    /// A request for which the shell bound sockets first ([`sockets_needed`](crate::sockets_needed)),
    /// in the order asked for.
    CommandWithSockets(Request, Vec<BoundSocket>),
    /// One datagram (or one RFC 4571 frame of a TCP connection) received on `tuple`.
    ///
    /// `tuple.local` is the address the datagram was sent to (for a socket bound to `0.0.0.0`
    /// or `::`, the shell's IP_PKTINFO destination), so ICE, comedia and the selected tuple are
    /// the true 5-tuple, and replies leave from it. The bytes are borrowed for the call.
    ///
    /// `arrival` is when the datagram reached the host, on the same clock as `now` and never
    /// after it: for UDP the kernel's receive timestamp (`SO_TIMESTAMPNS`), which does not move
    /// when the worker is slow to read its socket; for TCP (and simulated links) `now`. It is
    /// what transport-wide-cc feedback reports to the publisher: with the read time instead, a
    /// busy worker's batches look to the sender like queueing delay, and its bandwidth
    /// estimate falls. A later `arrival` than `now` is taken as `now`.
    Datagram {
        tuple: Tuple,
        data: &'a [u8],
        arrival: Instant,
    },
    /// The time returned by [`WorkerCore::poll_timeout`] has come.
    Timeout,
}

/// What the core hands its shell. Not on the per-packet path (replies and notifications are per
/// request and per event), so a reply is kept inline rather than boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Output {
    Reply(Response),
    Notify(Notification),
    /// A transport or WebRtcServer closed: the shell may close these sockets.
    ReleaseSockets(Vec<BoundSocket>),
    /// `worker.close` was handled: everything is closed and the reply was queued before this.
    Closed,
}

/// The worker's state: the entity tables, the demultiplexer and the outputs waiting.
#[derive(Debug)]
pub struct WorkerCore {
    pub(crate) config: CoreConfig,
    pub(crate) tables: Tables,
    pub(crate) demux: Demux,
    pub(crate) outputs: VecDeque<Output>,
    pub(crate) transmits: TransmitQueue,
    pub(crate) closed: bool,
    pub(crate) identity: Option<DtlsIdentity>,
    pub(crate) rng: StdRng,
    ntp: Option<NtpClock>,
    start: Option<Instant>,
    pub(crate) next_tick: Option<Instant>,
    pub(crate) stats: CoreStats,
    /// Where each forwarded or retransmitted packet is rewritten before its transport protects it.
    pub(crate) rewrite_buf: Vec<u8>,
    /// Transports whose pacer holds packets.
    pub(crate) paced: Vec<TransportKey>,
    /// When the layers producers' consumers need are checked next (dynacast).
    pub(crate) next_dynacast: Option<Instant>,
}

const ICE_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

impl WorkerCore {
    pub fn new(config: CoreConfig) -> Self {
        Self {
            rng: StdRng::seed_from_u64(config.seed),
            identity: config.identity.clone(),
            ntp: config.ntp,
            config,
            tables: Tables::default(),
            demux: Demux::default(),
            outputs: VecDeque::new(),
            transmits: TransmitQueue::default(),
            closed: false,
            start: None,
            next_tick: None,
            stats: CoreStats::default(),
            rewrite_buf: Vec::with_capacity(1500),
            paced: Vec::new(),
            next_dynacast: None,
        }
    }

    pub(crate) fn clock(&mut self, now: Instant) -> NtpClock {
        self.start.get_or_insert(now);
        *self.ntp.get_or_insert(NtpClock {
            anchor: now,
            anchor_ntp: 0,
        })
    }

    pub fn handle_input(&mut self, input: Input<'_>, now: Instant) {
        self.clock(now);
        match input {
            Input::Command(req) => self.command(req, Vec::new(), now),
            Input::CommandWithSockets(req, sockets) => self.command(req, sockets, now),
            Input::Datagram {
                tuple,
                data,
                arrival,
            } => self.datagram(tuple, data, arrival.min(now), now),
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

    /// The next datagram to send (or batch of datagrams to one destination, up to
    /// `max_segments`: the shell's GSO limit, 1 without GSO), appended to `buf`; `None` when
    /// nothing is waiting. `now` is for pacing (packets not yet due stay queued).
    pub fn poll_transmit(
        &mut self,
        _now: Instant,
        max_segments: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        self.transmits.poll(max_segments.max(1), buf)
    }

    /// Where the next [`Self::poll_transmit`] goes, without taking it: a shell can then pass the
    /// send buffer of that destination's socket and have the datagrams appended there directly.
    pub fn peek_transmit(&self) -> Option<Tuple> {
        self.transmits.peek()
    }

    /// When the core next needs [`Input::Timeout`]; `None` when it has no timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // While there are transports the tick runs every TICK, and every timeout also serves
        // their ICE and DTLS timers (consent: seconds; DTLS retransmissions: ≥ 1 s), at most one
        // TICK late. So the shell's per-turn call costs O(1), not a walk over every transport:
        // with browsers' RTCP that is thousands of turns per second.
        // Pacers: the few transports whose queue holds packets.
        let pace = self.pacer_timeout();
        if let Some(tick) = self.next_tick {
            return Some(pace.map_or(tick, |p| p.min(tick)));
        }
        let mut t = pace;
        for tr in self.tables.transports.values() {
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
        self.tables.routers.keys()
    }

    pub fn stats(&self) -> CoreStats {
        self.stats
    }

    pub(crate) fn notify(&mut self, handler: HandlerId, event: MediaEvent) {
        self.outputs.push_back(Output::Notify(Notification {
            handler_id: handler,
            event: Event::Media(event),
        }));
    }

    pub(crate) fn random_string(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| ICE_CHARS[self.rng.random_range(0..ICE_CHARS.len())] as char)
            .collect()
    }

    /// The worker's DTLS certificate, generated on first use.
    pub(crate) fn identity(&mut self) -> Result<DtlsIdentity, RequestFailure> {
        if self.identity.is_none() {
            self.identity =
                Some(DtlsIdentity::generate().map_err(|e| RequestFailure::failed(e.to_string()))?);
        }
        Ok(self.identity.clone().expect("set just above"))
    }

    /// Milliseconds since the first input (stats timestamps).
    pub(crate) fn timestamp(&self, now: Instant) -> u64 {
        self.start
            .map_or(0, |s| now.saturating_duration_since(s).as_millis() as u64)
    }

    /// Starts the periodic tick if it is not running.
    pub(crate) fn ensure_tick(&mut self, now: Instant) {
        if self.next_tick.is_none() {
            self.next_tick = Some(now + TICK);
        }
    }
}
