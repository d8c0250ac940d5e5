//! One client transport, sans IO: ICE (checks with USE-CANDIDATE when controlling, answers the
//! remote's checks for full-ICE servers, consent checks every ~5 s), DTLS in the client or server
//! role (`rtc-dtls` `Endpoint`), then SRTP in and out (`rtc-srtp`) keyed from the exporter.
//!
//! # Drive contract
//!
//! 1. Feed every datagram from [`Peer::remote_addr`] to [`Peer::handle_datagram`] with the
//!    current time. STUN and DTLS are consumed; for SRTP/SRTCP it only says which one it is
//!    ([`Event::Rtp`], [`Event::Rtcp`]) so the caller decides whether to pay for
//!    [`Peer::unprotect_rtp`] / [`Peer::unprotect_rtcp`].
//! 2. Drain [`Peer::poll_transmit`]: every datagram goes to [`Peer::remote_addr`].
//! 3. When [`Peer::poll_timeout`] is due, call [`Peer::handle_timeout`], then drain again.
//!
//! Peer input never panics: malformed or unauthenticated datagrams are dropped and counted in
//! [`PeerStats`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::BytesMut;
use rtc_dtls::config::HandshakeConfig;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_shared::TransportProtocol;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::RTCCrypto;
use rtc_stun::attributes::{
    ATTR_ICE_CONTROLLED, ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_USE_CANDIDATE, ATTR_USERNAME,
};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter, TransactionId};
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;

use crate::types::{DtlsRole, LocalTransport, Profile, RemoteTransport};

mod identity;

use self::identity::dtls_profile;
pub(crate) use self::identity::{Identity, SrtpKey, local_transport, random_bytes, srtp_profile};

/// Retransmission interval of connectivity checks until one succeeds.
const CHECK_RTO: Duration = Duration::from_millis(50);
/// No successful check for this long: ICE failed.
const CHECKING_GIVE_UP: Duration = Duration::from_secs(20);
/// Consent checks once connected (RFC 7675: 4–6 s). ferrosfu expires consent after 30 s.
const CONSENT_INTERVAL_MS: u64 = 5000;
/// No consent response for this long: the transport is dead.
const CONSENT_LOST: Duration = Duration::from_secs(30);
/// PRIORITY of a host candidate: (126 << 24) | (65535 << 8) | (256 - 1).
const HOST_PRIORITY: u32 = 2_130_706_431;
const SRTP_REPLAY_WINDOW: usize = 512;
const SRTCP_REPLAY_WINDOW: usize = 128;
/// Transactions remembered for matching responses (the newest ones).
const TRANSACTIONS: usize = 8;

/// Our ICE role. ICE-lite servers (ferrosfu) need a controlling client; a full-ICE server
/// that offers (a Janus subscriber) makes us controlled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IceRole {
    Controlling,
    Controlled,
}

/// What a datagram (or a timeout) produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A check of ours was answered, or (full-ICE remote) a valid check of the remote arrived.
    IceConnected,
    /// DTLS is up and SRTP is keyed.
    Connected,
    /// ICE or DTLS gave up; the transport is dead.
    Failed(String),
    /// An SRTP packet: unprotect it with [`Peer::unprotect_rtp`] if you want its payload.
    Rtp,
    /// An SRTCP packet (RFC 5761 demux on the packet type).
    Rtcp,
}

/// Datagrams dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerStats {
    pub(crate) stun_dropped: u64,
    pub(crate) stun_requests_answered: u64,
    pub(crate) dtls_errors: u64,
    pub(crate) srtp_unprotect_failed: u64,
    pub(crate) other_dropped: u64,
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
    /// Outstanding transactions (newest last).
    transactions: VecDeque<TransactionId>,
    next_check: Option<Instant>,
    last_response: Option<Instant>,
    /// Send our own checks (always for ICE-lite servers; for a controlled full-ICE transport,
    /// answering the remote's checks is enough but checking too does no harm).
    send_checks: bool,
}

struct Srtp {
    out: Context,
    inp: Context,
}

/// One client transport. See the module docs for the drive contract.
pub(crate) struct Peer {
    local: LocalTransport,
    remote: RemoteTransport,
    profile: Profile,
    ice: Ice,
    dtls: Option<Endpoint>,
    dtls_config: Option<Arc<HandshakeConfig>>,
    dtls_started: bool,
    srtp: Option<Srtp>,
    transmits: VecDeque<Vec<u8>>,
    stats: PeerStats,
    failed: bool,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials and keys stay out of logs.
        f.debug_struct("Peer")
            .field("remote", &self.remote.addr)
            .field("ice", &self.ice.phase)
            .field("connected", &self.srtp.is_some())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A transport to `remote` from `local` (see [`local_transport`]); checks start at `now`.
    pub(crate) fn new(
        local: LocalTransport,
        remote: RemoteTransport,
        profile: Profile,
        role: IceRole,
        now: Instant,
    ) -> Result<Peer> {
        if remote.addr.port() == 0 {
            bail!("remote candidate has port 0");
        }
        let id = Identity::get()?;
        let is_client = remote.our_dtls_role == DtlsRole::Client;
        let config = id.config(&remote.fingerprint_sha256, is_client, profile)?;
        let dtls = if is_client {
            Endpoint::new(local.addr, TransportProtocol::UDP, None)
        } else {
            Endpoint::new(local.addr, TransportProtocol::UDP, Some(config.clone()))
        };
        let tie = random_bytes(8);
        let tie_breaker = u64::from_be_bytes(tie.try_into().expect("8 random bytes"));
        // Always check: an ICE-lite server never does, and a full-ICE server (Janus) may check
        // before the engine knows this peer; our own checks recover from the ones we dropped.
        let send_checks = true;
        Ok(Peer {
            local,
            remote,
            profile,
            ice: Ice {
                role,
                phase: IcePhase::Checking { since: now },
                tie_breaker,
                transactions: VecDeque::with_capacity(TRANSACTIONS),
                next_check: send_checks.then_some(now),
                last_response: None,
                send_checks,
            },
            dtls: Some(dtls),
            dtls_config: Some(config),
            dtls_started: false,
            srtp: None,
            transmits: VecDeque::new(),
            stats: PeerStats::default(),
            failed: false,
        })
    }

    /// A transport keyed in advance (no ICE, no DTLS): the raw forwarder's peers.
    pub(crate) fn pre_keyed(
        local: SocketAddr,
        remote: SocketAddr,
        profile: Profile,
        outbound: &SrtpKey,
        inbound: &SrtpKey,
    ) -> Result<Peer> {
        let fingerprint = Identity::get()?.fingerprint().to_owned();
        Ok(Peer {
            local: LocalTransport {
                addr: local,
                ice_ufrag: String::new(),
                ice_pwd: String::new(),
                fingerprint_sha256: fingerprint.clone(),
            },
            remote: RemoteTransport {
                addr: remote,
                ice_ufrag: String::new(),
                ice_pwd: String::new(),
                ice_lite: true,
                fingerprint_sha256: fingerprint,
                our_dtls_role: DtlsRole::Client,
            },
            profile,
            ice: Ice {
                role: IceRole::Controlling,
                phase: IcePhase::Connected,
                tie_breaker: 0,
                transactions: VecDeque::new(),
                next_check: None,
                last_response: None,
                send_checks: false,
            },
            dtls: None,
            dtls_config: None,
            dtls_started: true,
            srtp: Some(Srtp {
                out: outbound.outbound(profile)?,
                inp: inbound.inbound(profile)?,
            }),
            transmits: VecDeque::new(),
            stats: PeerStats::default(),
            failed: false,
        })
    }

    pub(crate) fn remote_addr(&self) -> SocketAddr {
        self.remote.addr
    }

    /// Our side, for SDP-based signaling (full-ICE targets).
    #[allow(dead_code, reason = "for SDP targets (Janus)")]
    pub(crate) fn local(&self) -> &LocalTransport {
        &self.local
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.srtp.is_some()
    }

    pub(crate) fn stats(&self) -> PeerStats {
        self.stats
    }

    /// A datagram from the remote.
    pub(crate) fn handle_datagram(&mut self, now: Instant, data: &[u8]) -> Option<Event> {
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
        let crypto = Identity::get().ok()?;
        if msg.typ == BINDING_SUCCESS {
            if !self.ice.transactions.contains(&msg.transaction_id)
                || MessageIntegrity::check(
                    &mut msg,
                    self.remote.ice_pwd.as_bytes(),
                    crypto.crypto(),
                )
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
                .is_some_and(|u| u.text.split(':').next() == Some(self.local.ice_ufrag.as_str()));
            if !user_ok
                || self.local.ice_pwd.is_empty()
                || MessageIntegrity::check(&mut msg, self.local.ice_pwd.as_bytes(), crypto.crypto())
                    .is_err()
            {
                self.stats.stun_dropped += 1;
                return None;
            }
            let reply = build_stun(
                crypto.crypto(),
                &self.local.ice_pwd,
                vec![
                    Box::new(msg.transaction_id),
                    Box::new(BINDING_SUCCESS),
                    Box::new(XorMappedAddress {
                        ip: self.remote.addr.ip(),
                        port: self.remote.addr.port(),
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
        // 4–6 s, spread so that 500 peers do not check in lockstep.
        let jitter = self.ice.tie_breaker % (CONSENT_INTERVAL_MS * 2 / 5);
        Duration::from_millis(CONSENT_INTERVAL_MS * 4 / 5 + jitter)
    }

    fn start_dtls(&mut self, now: Instant) {
        if self.dtls_started {
            return;
        }
        self.dtls_started = true;
        if self.remote.our_dtls_role != DtlsRole::Client {
            // Server: the remote's ClientHello creates the association.
            return;
        }
        let (Some(ep), Some(config)) = (self.dtls.as_mut(), self.dtls_config.clone()) else {
            return;
        };
        if let Err(e) = ep.connect(now, self.remote.addr, config, None) {
            self.fail(format!("dtls connect: {e}"));
        }
        self.drain_dtls();
    }

    fn handle_dtls(&mut self, now: Instant, data: &[u8]) -> Option<Event> {
        let remote = self.remote.addr;
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
                            self.fail("dtls close_notify from the remote".into());
                            out = Some(Event::Failed("dtls closed by the remote".into()));
                        }
                        _ => {}
                    }
                }
                out
            }
            Err(e) => {
                self.stats.dtls_errors += 1;
                tracing::debug!(target: "dtls", remote = %remote, "dtls record dropped: {e}");
                None
            }
        }
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
        match self.derive_srtp() {
            Ok(s) => {
                self.srtp = Some(s);
                Some(Event::Connected)
            }
            Err(e) => {
                let msg = format!("srtp keys: {e:#}");
                self.fail(msg.clone());
                Some(Event::Failed(msg))
            }
        }
    }

    fn derive_srtp(&self) -> Result<Srtp> {
        let st = self
            .dtls
            .as_ref()
            .and_then(|ep| ep.get_connection_state(self.remote.addr))
            .context("no dtls association after the handshake")?;
        let want = dtls_profile(self.profile);
        if st.srtp_protection_profile() != want {
            bail!(
                "negotiated {:?}, offered only {want:?}",
                st.srtp_protection_profile()
            );
        }
        let p = srtp_profile(self.profile);
        let (k, s) = (p.key_len(), p.salt_len());
        // RFC 5764 §4.2: client key | server key | client salt | server salt.
        let m = st
            .export_keying_material("EXTRACTOR-dtls_srtp", &[], 2 * (k + s))
            .map_err(|e| anyhow!("exporter: {e}"))?
            .into_bytes()
            .to_vec();
        if m.len() != 2 * (k + s) {
            bail!("exporter returned {} bytes", m.len());
        }
        let client = SrtpKey {
            key: m[..k].to_vec(),
            salt: m[2 * k..2 * k + s].to_vec(),
        };
        let server = SrtpKey {
            key: m[k..2 * k].to_vec(),
            salt: m[2 * k + s..].to_vec(),
        };
        let (local, remote) = if st.is_client() {
            (client, server)
        } else {
            (server, client)
        };
        Ok(Srtp {
            out: local.outbound(self.profile)?,
            inp: remote.inbound(self.profile)?,
        })
    }

    fn fail(&mut self, why: String) {
        if !self.failed {
            tracing::debug!(target: "ice", remote = %self.remote.addr, "transport failed: {why}");
        }
        self.failed = true;
        self.ice.phase = IcePhase::Failed;
        self.ice.next_check = None;
    }

    /// The next datagram to send to [`Peer::remote_addr`].
    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// When [`Peer::handle_timeout`] is next needed.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let dtls = if self.srtp.is_none() {
            self.dtls
                .as_ref()
                .and_then(|ep| ep.poll_timeout(&self.remote.addr))
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
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Event> {
        if self.failed {
            return None;
        }
        if let IcePhase::Checking { since } = self.ice.phase
            && now.saturating_duration_since(since) > CHECKING_GIVE_UP
        {
            let why = format!("no ICE response in {CHECKING_GIVE_UP:?}");
            self.fail(why.clone());
            return Some(Event::Failed(why));
        }
        if matches!(self.ice.phase, IcePhase::Connected)
            && self.ice.send_checks
            && let Some(last) = self.ice.last_response
            && now.saturating_duration_since(last) > CONSENT_LOST
        {
            let why = format!("no consent response in {CONSENT_LOST:?}");
            self.fail(why.clone());
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
            let remote = self.remote.addr;
            if let Some(ep) = self.dtls.as_mut()
                && ep.poll_timeout(&remote).is_some_and(|t| now >= t)
                && let Err(e) = ep.handle_timeout(remote, now)
            {
                self.drain_dtls();
                let why = format!("dtls handshake: {e}");
                self.fail(why.clone());
                return Some(Event::Failed(why));
            }
            self.drain_dtls();
        }
        None
    }

    fn send_check(&mut self) {
        let Ok(id) = Identity::get() else { return };
        let tid = TransactionId::new();
        let role_attr = match self.ice.role {
            IceRole::Controlling => ATTR_ICE_CONTROLLING,
            IceRole::Controlled => ATTR_ICE_CONTROLLED,
        };
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(tid),
            Box::new(BINDING_REQUEST),
            Box::new(TextAttribute::new(
                ATTR_USERNAME,
                format!("{}:{}", self.remote.ice_ufrag, self.local.ice_ufrag),
            )),
            Box::new(rtc_stun::attributes::RawAttribute {
                typ: ATTR_PRIORITY,
                length: 4,
                value: HOST_PRIORITY.to_be_bytes().to_vec(),
            }),
            Box::new(rtc_stun::attributes::RawAttribute {
                typ: role_attr,
                length: 8,
                value: self.ice.tie_breaker.to_be_bytes().to_vec(),
            }),
        ];
        if self.ice.role == IceRole::Controlling {
            setters.push(Box::new(rtc_stun::attributes::RawAttribute {
                typ: ATTR_USE_CANDIDATE,
                length: 0,
                value: vec![],
            }));
        }
        match build_stun(id.crypto(), &self.remote.ice_pwd, setters) {
            Ok(raw) => {
                if self.ice.transactions.len() == TRANSACTIONS {
                    self.ice.transactions.pop_front();
                }
                self.ice.transactions.push_back(tid);
                self.transmits.push_back(raw);
            }
            Err(e) => tracing::warn!(target: "ice", "building a check: {e:#}"),
        }
    }

    /// Protects an RTP packet for the remote. Fails before [`Event::Connected`].
    pub(crate) fn protect_rtp(&mut self, plain: &[u8]) -> Result<BytesMut> {
        let s = self.srtp.as_mut().context("srtp not keyed yet")?;
        s.out
            .encrypt_rtp(plain)
            .map_err(|e| anyhow!("protect: {e}"))
    }

    /// Protects (encrypts, authenticates) an RTCP compound packet for the remote.
    pub(crate) fn protect_rtcp(&mut self, plain: &[u8]) -> Result<BytesMut> {
        let s = self.srtp.as_mut().context("srtp not keyed yet")?;
        s.out
            .encrypt_rtcp(plain)
            .map_err(|e| anyhow!("protect rtcp: {e}"))
    }

    /// Unprotects (authenticates, decrypts) an SRTP packet from the remote.
    pub(crate) fn unprotect_rtp(&mut self, data: &[u8]) -> Option<BytesMut> {
        let s = self.srtp.as_mut()?;
        match s.inp.decrypt_rtp(data) {
            Ok(p) => Some(p),
            Err(_) => {
                self.stats.srtp_unprotect_failed += 1;
                None
            }
        }
    }

    /// Unprotects an SRTCP packet from the remote (PLI/FIR for publishers).
    pub(crate) fn unprotect_rtcp(&mut self, data: &[u8]) -> Option<BytesMut> {
        let s = self.srtp.as_mut()?;
        match s.inp.decrypt_rtcp(data) {
            Ok(p) => Some(p),
            Err(_) => {
                self.stats.srtp_unprotect_failed += 1;
                None
            }
        }
    }
}

fn build_stun(crypto: &dyn RTCCrypto, pwd: &str, setters: Vec<Box<dyn Setter>>) -> Result<Vec<u8>> {
    let mut m = Message::new();
    m.build(&setters).map_err(|e| anyhow!("stun: {e}"))?;
    MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), crypto)
        .add_to(&mut m)
        .map_err(|e| anyhow!("stun integrity: {e}"))?;
    FINGERPRINT
        .add_to(&mut m)
        .map_err(|e| anyhow!("stun fingerprint: {e}"))?;
    Ok(m.raw)
}

#[cfg(test)]
mod tests;
