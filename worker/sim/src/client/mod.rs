//! One WebRTC client transport, sans IO: ICE (checks with USE-CANDIDATE while checking when
//! controlling, answers the remote's checks for full-ICE servers, consent checks once
//! connected), DTLS in the client or server role (rtc-dtls `Endpoint`, started once ICE works),
//! then SRTP in and out (the core's `SrtpSession`) keyed from the DTLS exporter.
//!
//! The one client peer of the project: the simulated peers of [`crate::Sim`] wrap it on a
//! simulated link, the load generator (`tests/loadgen`) drives thousands of them over real
//! sockets.
//!
//! # Drive contract
//!
//! 1. Feed every datagram from [`ClientTransport::remote_addr`] to
//!    [`ClientTransport::handle_datagram`] with the current time. STUN and DTLS are consumed;
//!    for SRTP/SRTCP it only says which one it is ([`Event::Rtp`], [`Event::Rtcp`]) so the
//!    caller decides whether to pay for [`ClientTransport::unprotect_rtp`] /
//!    [`ClientTransport::unprotect_rtcp`].
//! 2. Drain [`ClientTransport::poll_transmit`]: every datagram goes to the remote address.
//! 3. When [`ClientTransport::poll_timeout`] is due, call [`ClientTransport::handle_timeout`],
//!    then drain again.
//!
//! Input never panics: malformed or unauthenticated datagrams are dropped and counted in
//! [`ClientStats`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferrosfu_worker_core::{IceLite, SrtpDrop, SrtpProfile, SrtpSession, StunOutcome, Tuple};
use rtc_dtls::config::HandshakeConfig;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_stun::attributes::ATTR_USERNAME;
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, TransactionId};
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;

use crate::dtls::try_srtp_session;
use crate::stun;

/// Retransmission interval of connectivity checks until one succeeds.
const CHECK_RTO: Duration = Duration::from_millis(50);
/// No successful check for this long: ICE failed.
const CHECKING_GIVE_UP: Duration = Duration::from_secs(20);
/// No consent response for this long: the transport is dead (ferrosfu expires consent after
/// 30 s as well).
const CONSENT_LOST: Duration = Duration::from_secs(30);
/// Transactions remembered for matching responses (the newest ones).
const TRANSACTIONS: usize = 8;

/// Our ICE role. ICE-lite servers (ferrosfu, mediasoup) need a controlling client; a full-ICE
/// server that offers (a Janus subscriber) makes us controlled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IceRole {
    Controlling,
    Controlled,
}

/// When consent checks go out once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    /// Exactly every interval (simulations: reproducible).
    Every(Duration),
    /// Uniformly in 0.8–1.2 × the interval, fixed per transport by its tie-breaker, so that
    /// thousands of transports do not check in lockstep (RFC 7675: 4–6 s for 5 s).
    Spread(Duration),
}

/// What a datagram (or a timeout) produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A check of ours was answered, or (full-ICE remote) a valid check of the remote arrived.
    IceConnected,
    /// DTLS is up and SRTP is keyed.
    Connected,
    /// ICE or DTLS gave up; the transport is dead.
    Failed(String),
    /// An SRTP packet: unprotect it with [`ClientTransport::unprotect_rtp`] for its payload.
    Rtp,
    /// An SRTCP packet (RFC 5761 demux on the packet type).
    Rtcp,
}

/// Datagrams dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub stun_dropped: u64,
    pub stun_requests_answered: u64,
    pub dtls_errors: u64,
    pub srtp_unprotect_failed: u64,
    pub other_dropped: u64,
}

/// Why a packet could not be protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtectError {
    /// SRTP is not keyed yet (before [`Event::Connected`]).
    NotConnected,
    Srtp(SrtpDrop),
}

impl std::fmt::Debug for ClientDtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientDtls")
            .field("client", &self.connect.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials stay out of logs.
        f.debug_struct("ClientConfig")
            .field("remote", &self.remote)
            .field("role", &self.role)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// The DTLS side a transport starts with: an endpoint, and as DTLS client the configuration it
/// connects with once ICE works (`None`: we are DTLS server and wait for the ClientHello).
pub struct ClientDtls {
    pub endpoint: Endpoint,
    pub connect: Option<Arc<HandshakeConfig>>,
}

/// Everything a transport needs to connect.
pub struct ClientConfig {
    /// Our ICE credentials: the ufrag goes into our checks' USERNAME; both authenticate a
    /// full-ICE remote's checks (an empty password refuses them).
    pub local_ufrag: String,
    pub local_pwd: String,
    pub remote: SocketAddr,
    pub remote_ufrag: String,
    pub remote_pwd: String,
    pub role: IceRole,
    /// PRIORITY of our checks.
    pub priority: u32,
    pub tie_breaker: u64,
    pub consent: Consent,
    pub profile: SrtpProfile,
    pub dtls: ClientDtls,
}

#[derive(Debug)]
enum IcePhase {
    /// Sending checks every `CHECK_RTO` since `since`.
    Checking {
        since: Instant,
    },
    Connected,
    Failed,
}

struct Ice {
    role: IceRole,
    phase: IcePhase,
    tie_breaker: u64,
    priority: u32,
    consent: Consent,
    /// Outstanding transactions (newest last).
    transactions: VecDeque<TransactionId>,
    next_check: Option<Instant>,
    last_response: Option<Instant>,
    /// Send our own checks (always for ICE-lite servers; a full-ICE remote may check before
    /// it knows us, our own checks recover from the ones we dropped).
    send_checks: bool,
}

/// One client transport. See the module docs for the drive contract.
pub struct ClientTransport {
    local_ufrag: String,
    local_pwd: String,
    remote: SocketAddr,
    remote_ufrag: String,
    remote_pwd: String,
    profile: SrtpProfile,
    ice: Ice,
    dtls: Option<Endpoint>,
    dtls_connect: Option<Arc<HandshakeConfig>>,
    dtls_started: bool,
    srtp: Option<SrtpSession>,
    transmits: VecDeque<Vec<u8>>,
    /// DTLS application data (SCTP packets) received, not polled yet.
    app_in: VecDeque<BytesMut>,
    stats: ClientStats,
    failed: bool,
}

/// Application-data records held for the owner at most.
const MAX_APP_IN: usize = 1024;

impl std::fmt::Debug for ClientTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials and keys stay out of logs.
        f.debug_struct("ClientTransport")
            .field("remote", &self.remote)
            .field("ice", &self.ice.phase)
            .field("connected", &self.srtp.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientTransport {
    /// A transport as `config` says; checks start at `now`.
    pub fn new(config: ClientConfig, now: Instant) -> ClientTransport {
        ClientTransport {
            local_ufrag: config.local_ufrag,
            local_pwd: config.local_pwd,
            remote: config.remote,
            remote_ufrag: config.remote_ufrag,
            remote_pwd: config.remote_pwd,
            profile: config.profile,
            ice: Ice {
                role: config.role,
                phase: IcePhase::Checking { since: now },
                tie_breaker: config.tie_breaker,
                priority: config.priority,
                consent: config.consent,
                transactions: VecDeque::with_capacity(TRANSACTIONS),
                next_check: Some(now),
                last_response: None,
                send_checks: true,
            },
            dtls: Some(config.dtls.endpoint),
            dtls_connect: config.dtls.connect,
            dtls_started: false,
            srtp: None,
            transmits: VecDeque::new(),
            app_in: VecDeque::new(),
            stats: ClientStats::default(),
            failed: false,
        }
    }

    /// A transport keyed in advance, without ICE or DTLS (a raw forwarding loop's peers).
    pub fn pre_keyed(remote: SocketAddr, srtp: SrtpSession) -> ClientTransport {
        ClientTransport {
            local_ufrag: String::new(),
            local_pwd: String::new(),
            remote,
            remote_ufrag: String::new(),
            remote_pwd: String::new(),
            profile: srtp.profile(),
            ice: Ice {
                role: IceRole::Controlling,
                phase: IcePhase::Connected,
                tie_breaker: 0,
                priority: 0,
                // Never used (no checks), but finite: `now + interval` must not overflow.
                consent: Consent::Every(Duration::from_secs(5)),
                transactions: VecDeque::new(),
                next_check: None,
                last_response: None,
                send_checks: false,
            },
            dtls: None,
            dtls_connect: None,
            dtls_started: true,
            srtp: Some(srtp),
            transmits: VecDeque::new(),
            app_in: VecDeque::new(),
            stats: ClientStats::default(),
            failed: false,
        }
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// DTLS is up and SRTP keyed.
    pub fn is_connected(&self) -> bool {
        self.srtp.is_some()
    }

    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The SRTP session once connected.
    pub fn srtp(&mut self) -> Option<&mut SrtpSession> {
        self.srtp.as_mut()
    }

    /// Stops (or resumes) our checks: a peer that goes silent lets the remote's consent lapse.
    /// While stopped, we do not time the remote out either.
    pub fn set_checks(&mut self, on: bool, now: Instant) {
        self.ice.send_checks = on;
        self.ice.next_check = (on && !self.failed).then_some(now);
    }

    /// A datagram from the remote.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) -> Option<Event> {
        // RFC 7983 demux on the first byte.
        match data.first()? {
            0..=3 => self.handle_stun(now, data),
            20..=63 => self.handle_dtls(now, data),
            128..=191 => {
                if self.srtp.is_none() {
                    self.stats.other_dropped += 1;
                    return None;
                }
                match data.get(1) {
                    Some(192..=223) => Some(Event::Rtcp),
                    Some(_) => Some(Event::Rtp),
                    None => {
                        self.stats.other_dropped += 1;
                        None
                    }
                }
            }
            _ => {
                self.stats.other_dropped += 1;
                None
            }
        }
    }

    fn handle_stun(&mut self, now: Instant, data: &[u8]) -> Option<Event> {
        let mut msg = Message::new();
        if msg.unmarshal_binary(data).is_err() || FINGERPRINT.check(&msg).is_err() {
            self.stats.stun_dropped += 1;
            return None;
        }
        let crypto = stun::crypto();
        if msg.typ == BINDING_SUCCESS {
            if !self.ice.transactions.contains(&msg.transaction_id)
                || MessageIntegrity::check(&mut msg, self.remote_pwd.as_bytes(), crypto.crypto())
                    .is_err()
            {
                self.stats.stun_dropped += 1;
                return None;
            }
            self.ice.transactions.retain(|t| *t != msg.transaction_id);
            self.ice.last_response = Some(now);
            return self.on_ice_success(now);
        }
        if msg.typ == BINDING_REQUEST {
            // A full-ICE remote checks us: authenticate with our password and answer.
            let user_ok = TextAttribute::get_from_as(&msg, ATTR_USERNAME)
                .ok()
                .is_some_and(|u| u.text.split(':').next() == Some(self.local_ufrag.as_str()));
            if !user_ok
                || self.local_pwd.is_empty()
                || MessageIntegrity::check(&mut msg, self.local_pwd.as_bytes(), crypto.crypto())
                    .is_err()
            {
                self.stats.stun_dropped += 1;
                return None;
            }
            let reply = stun::signed(
                &self.local_pwd,
                vec![
                    Box::new(msg.transaction_id),
                    Box::new(BINDING_SUCCESS),
                    Box::new(XorMappedAddress {
                        ip: self.remote.ip(),
                        port: self.remote.port(),
                    }),
                ],
            );
            match reply {
                Ok(r) => {
                    self.transmits.push_back(r);
                    self.stats.stun_requests_answered += 1;
                }
                Err(_) => self.stats.stun_dropped += 1,
            }
            // The remote reached us: the path works both ways once we answered.
            self.ice.last_response = Some(now);
            return self.on_ice_success(now);
        }
        // Indications (libnice keepalives) and errors: nothing to do.
        self.stats.stun_dropped += 1;
        None
    }

    fn on_ice_success(&mut self, now: Instant) -> Option<Event> {
        if !matches!(self.ice.phase, IcePhase::Checking { .. }) {
            return None;
        }
        self.ice.phase = IcePhase::Connected;
        self.ice.next_check = self.ice.send_checks.then(|| now + self.consent_interval());
        self.start_dtls(now);
        Some(Event::IceConnected)
    }

    fn consent_interval(&self) -> Duration {
        match self.ice.consent {
            Consent::Every(d) => d,
            Consent::Spread(d) => {
                let ms = d.as_millis().max(5) as u64;
                let jitter = self.ice.tie_breaker % (ms * 2 / 5);
                Duration::from_millis(ms * 4 / 5 + jitter)
            }
        }
    }

    fn start_dtls(&mut self, now: Instant) {
        if self.dtls_started {
            return;
        }
        self.dtls_started = true;
        // DTLS server: the remote's ClientHello creates the association.
        let (Some(ep), Some(config)) = (self.dtls.as_mut(), self.dtls_connect.clone()) else {
            return;
        };
        if ep.connect(now, self.remote, config, None).is_err() {
            self.fail();
        }
        self.drain_dtls();
    }

    fn handle_dtls(&mut self, now: Instant, data: &[u8]) -> Option<Event> {
        let remote = self.remote;
        let ep = self.dtls.as_mut()?;
        let result = ep.read(now, remote, None, BytesMut::from(data));
        self.drain_dtls();
        match result {
            Ok(events) => {
                let mut out = None;
                for e in events {
                    match e {
                        EndpointEvent::HandshakeComplete => out = self.on_dtls_up(),
                        EndpointEvent::PeerClosed => {
                            let why = "dtls closed by the remote".to_owned();
                            self.fail();
                            out = Some(Event::Failed(why));
                        }
                        EndpointEvent::ApplicationData(d) => {
                            if self.app_in.len() < MAX_APP_IN {
                                self.app_in.push_back(d);
                            } else {
                                self.stats.other_dropped += 1;
                            }
                        }
                        _ => {}
                    }
                }
                out
            }
            Err(_) => {
                self.stats.dtls_errors += 1;
                None
            }
        }
    }

    /// Whether this side is the DTLS client (it sent the ClientHello).
    pub fn is_dtls_client(&self) -> bool {
        self.dtls_connect.is_some()
    }

    /// DTLS application data (an SCTP packet) the remote sent.
    pub fn poll_application_data(&mut self) -> Option<BytesMut> {
        self.app_in.pop_front()
    }

    /// Sends application data (an SCTP packet) over DTLS; false before the handshake ended.
    pub fn write_application_data(&mut self, now: Instant, data: &[u8]) -> bool {
        if self.srtp.is_none() {
            return false;
        }
        let remote = self.remote;
        let Some(ep) = self.dtls.as_mut() else {
            return false;
        };
        let ok = ep.write(now, remote, data).is_ok();
        self.drain_dtls();
        ok
    }

    fn drain_dtls(&mut self) {
        if let Some(ep) = self.dtls.as_mut() {
            while let Some(t) = ep.poll_transmit() {
                self.transmits.push_back(t.message.to_vec());
            }
        }
    }

    fn on_dtls_up(&mut self) -> Option<Event> {
        if self.srtp.is_some() {
            return None;
        }
        let keyed = self
            .dtls
            .as_ref()
            .ok_or_else(|| "no dtls endpoint".to_owned())
            .and_then(|ep| try_srtp_session(ep, self.remote, self.profile));
        match keyed {
            Ok(s) => {
                self.srtp = Some(s);
                Some(Event::Connected)
            }
            Err(e) => {
                let why = format!("srtp keys: {e}");
                self.fail();
                Some(Event::Failed(why))
            }
        }
    }

    fn fail(&mut self) {
        self.failed = true;
        self.ice.phase = IcePhase::Failed;
        self.ice.next_check = None;
    }

    /// The next datagram to send to [`ClientTransport::remote_addr`].
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// When [`ClientTransport::handle_timeout`] is next needed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let dtls = if self.srtp.is_none() {
            self.dtls
                .as_ref()
                .and_then(|ep| ep.poll_timeout(&self.remote))
        } else {
            None
        };
        match (self.ice.next_check, dtls) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Retransmits checks, sends consent checks, drives DTLS retransmissions. Returns
    /// [`Event::Failed`] when ICE or DTLS gives up.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Event> {
        if self.failed {
            return None;
        }
        if let IcePhase::Checking { since } = self.ice.phase
            && now.saturating_duration_since(since) > CHECKING_GIVE_UP
        {
            let why = format!("no ICE response in {CHECKING_GIVE_UP:?}");
            self.fail();
            return Some(Event::Failed(why));
        }
        if matches!(self.ice.phase, IcePhase::Connected)
            && self.ice.send_checks
            && let Some(last) = self.ice.last_response
            && now.saturating_duration_since(last) > CONSENT_LOST
        {
            let why = format!("no consent response in {CONSENT_LOST:?}");
            self.fail();
            return Some(Event::Failed(why));
        }
        if let Some(due) = self.ice.next_check
            && now >= due
        {
            self.send_check();
            self.ice.next_check = Some(match self.ice.phase {
                IcePhase::Checking { .. } => now + CHECK_RTO,
                _ => now + self.consent_interval(),
            });
        }
        if self.srtp.is_none() {
            let remote = self.remote;
            if let Some(ep) = self.dtls.as_mut()
                && ep.poll_timeout(&remote).is_some_and(|t| now >= t)
                && let Err(e) = ep.handle_timeout(remote, now)
            {
                self.drain_dtls();
                let why = format!("dtls handshake: {e}");
                self.fail();
                return Some(Event::Failed(why));
            }
            self.drain_dtls();
        }
        None
    }

    fn send_check(&mut self) {
        let tid = TransactionId::new();
        // Nominate while checking; consent checks carry no USE-CANDIDATE (as browsers do).
        let check = stun::Check {
            username: &format!("{}:{}", self.remote_ufrag, self.local_ufrag),
            pwd: &self.remote_pwd,
            transaction: tid.0,
            priority: self.ice.priority,
            controlling: self.ice.role == IceRole::Controlling,
            tie_breaker: self.ice.tie_breaker,
            nominate: self.ice.role == IceRole::Controlling
                && matches!(self.ice.phase, IcePhase::Checking { .. }),
        };
        if let Ok(raw) = check.build() {
            if self.ice.transactions.len() == TRANSACTIONS {
                self.ice.transactions.pop_front();
            }
            self.ice.transactions.push_back(tid);
            self.transmits.push_back(raw);
        }
    }

    /// Protects an RTP packet for the remote.
    pub fn protect_rtp(&mut self, plain: &[u8]) -> Result<BytesMut, ProtectError> {
        let s = self.srtp.as_mut().ok_or(ProtectError::NotConnected)?;
        s.protect_rtp(plain).map_err(ProtectError::Srtp)
    }

    /// Protects (encrypts, authenticates) an RTCP compound packet for the remote.
    pub fn protect_rtcp(&mut self, plain: &[u8]) -> Result<BytesMut, ProtectError> {
        let s = self.srtp.as_mut().ok_or(ProtectError::NotConnected)?;
        s.protect_rtcp(plain).map_err(ProtectError::Srtp)
    }

    /// Unprotects (authenticates, decrypts) an SRTP packet from the remote.
    pub fn unprotect_rtp(&mut self, data: &[u8]) -> Option<BytesMut> {
        let s = self.srtp.as_mut()?;
        let r = s.unprotect_rtp(data).ok();
        if r.is_none() {
            self.stats.srtp_unprotect_failed += 1;
        }
        r
    }

    /// Unprotects an SRTCP packet from the remote.
    pub fn unprotect_rtcp(&mut self, data: &[u8]) -> Option<BytesMut> {
        let s = self.srtp.as_mut()?;
        let r = s.unprotect_rtcp(data).ok();
        if r.is_none() {
            self.stats.srtp_unprotect_failed += 1;
        }
        r
    }
}

/// Moves datagrams between `a` and `b` until both are connected, time advancing 10 ms per round
/// from `now` (5 s at most); `a`'s STUN goes to `lite` instead when given (`tuple`: as `lite`'s
/// worker sees `a`), its answers back to `a`. Says whether both connected.
pub fn connect_pair(
    a: &mut ClientTransport,
    b: &mut ClientTransport,
    mut lite: Option<(&mut IceLite, Tuple)>,
    mut now: Instant,
) -> bool {
    for _ in 0..500 {
        if a.is_connected() && b.is_connected() {
            return true;
        }
        for p in [&mut *a, &mut *b] {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                let _ = p.handle_timeout(now);
            }
        }
        while let Some(d) = a.poll_transmit() {
            match (&mut lite, d[0]) {
                (Some((l, tuple)), 0..=3) => {
                    if let StunOutcome::Reply(r) = l.handle_stun(&d, *tuple, now) {
                        let _ = a.handle_datagram(now, &r);
                    }
                }
                _ => {
                    let _ = b.handle_datagram(now, &d);
                }
            }
        }
        while let Some(d) = b.poll_transmit() {
            let _ = a.handle_datagram(now, &d);
        }
        now += Duration::from_millis(10);
    }
    false
}

#[cfg(test)]
mod tests;
