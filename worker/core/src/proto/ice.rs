//! ICE-lite (RFC 8445 §2.5): the server never sends checks; it answers the browser's STUN
//! binding requests, which authenticate the remote, nominate a tuple (USE-CANDIDATE) and keep
//! consent fresh (RFC 7675). Sans IO: bytes and time in, reply bytes and events out.
//!
//! Peer input is never trusted: a request that is not ours or is malformed is dropped and counted
//! (no FINGERPRINT, wrong method/class), or answered with a STUN error (400 missing attributes,
//! 401 bad USERNAME or MESSAGE-INTEGRITY, 487 role conflict); it never changes the state.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc_stun::attributes::{
    ATTR_ICE_CONTROLLED, ATTR_MESSAGE_INTEGRITY, ATTR_PRIORITY, ATTR_USE_CANDIDATE, ATTR_USERNAME,
};
use rtc_stun::crypto::RTCCryptoProvider;
use rtc_stun::error_code::{CODE_BAD_REQUEST, CODE_ROLE_CONFLICT, CODE_UNAUTHORIZED, ErrorCode};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS, Message, Setter};
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;

/// RFC 7675: consent expires 30 s after the last authenticated check.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Local ICE credentials (what the signaling hands the browser as `iceParameters`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceCredentials {
    pub ufrag: String,
    pub pwd: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Udp,
    Tcp,
}

/// A 5-tuple as seen by the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// The address the datagram was sent to: for a socket bound to `0.0.0.0`/`::`, the specific
    /// destination IP (IP_PKTINFO) on the socket's port, never the wildcard.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub protocol: Protocol,
}

/// mediasoup's ICE states for an ICE-lite server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IceState {
    /// No valid check yet.
    New,
    /// A valid check arrived; a tuple is usable but not nominated.
    Connected,
    /// A tuple was nominated with USE-CANDIDATE.
    Completed,
    /// Consent expired on every tuple.
    Disconnected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IceEvent {
    StateChanged(IceState),
    /// Media now goes to (and is accepted from) this tuple.
    TupleSelected(Tuple),
}

/// Why a datagram was dropped without a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IceDrop {
    /// Not a parsable STUN message.
    Malformed,
    /// No FINGERPRINT, or a wrong one.
    BadFingerprint,
    /// Not a Binding request (responses and indications are not for an ICE-lite server).
    NotBindingRequest,
}

/// What to do with a STUN datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum StunOutcome {
    /// Send these bytes back on the tuple the request came from.
    Reply(Vec<u8>),
    Drop(IceDrop),
}

/// Counters for `get_stats` / dumps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IceStats {
    pub requests: u64,
    pub dropped: u64,
    pub unauthorized: u64,
    pub bad_requests: u64,
    pub role_conflicts: u64,
}

#[derive(Debug, Clone, Copy)]
struct ValidTuple {
    tuple: Tuple,
    last_consent: Instant,
}

/// The ICE-lite state of one WebRtcTransport.
pub struct IceLite {
    local: IceCredentials,
    /// The credentials before an ICE restart, still accepted (as mediasoup does) until the
    /// first check with the new ones: the remote's consent checks on its current pair keep
    /// succeeding while it brings up the new generation.
    previous: Option<IceCredentials>,
    crypto: Arc<dyn RTCCryptoProvider>,
    state: IceState,
    tuples: Vec<ValidTuple>,
    selected: Option<Tuple>,
    events: VecDeque<IceEvent>,
    stats: IceStats,
    consent_timeout: Duration,
}

impl std::fmt::Debug for IceLite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials stay out of logs.
        f.debug_struct("IceLite")
            .field("ufrag", &self.local.ufrag)
            .field("state", &self.state)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

impl IceLite {
    pub fn new(local: IceCredentials, crypto: Arc<dyn RTCCryptoProvider>) -> Self {
        Self {
            local,
            previous: None,
            crypto,
            state: IceState::New,
            tuples: Vec::new(),
            selected: None,
            events: VecDeque::new(),
            stats: IceStats::default(),
            consent_timeout: CONSENT_TIMEOUT,
        }
    }

    pub fn state(&self) -> IceState {
        self.state
    }

    pub fn selected_tuple(&self) -> Option<Tuple> {
        self.selected
    }

    pub fn local_credentials(&self) -> &IceCredentials {
        &self.local
    }

    /// Overrides the RFC 7675 default of 30 s (`ice_consent_timeout`).
    pub fn set_consent_timeout(&mut self, timeout: Duration) {
        self.consent_timeout = timeout;
    }

    pub fn stats(&self) -> IceStats {
        self.stats
    }

    /// ICE restart: new local credentials. Checks with the old ones are still answered until
    /// the first check with the new ones arrives, refused after that; the current tuple keeps
    /// working until its consent expires or a new one is nominated.
    pub fn restart(&mut self, local: IceCredentials) {
        let old = std::mem::replace(&mut self.local, local);
        if self.state != IceState::New {
            self.previous = Some(old);
        }
    }

    /// Whether media from this tuple is acceptable (it passed a check and has consent).
    pub fn is_valid(&self, tuple: &Tuple) -> bool {
        self.tuples.iter().any(|t| t.tuple == *tuple)
    }

    pub fn poll_event(&mut self) -> Option<IceEvent> {
        self.events.pop_front()
    }

    /// When consent of the oldest valid tuple runs out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tuples
            .iter()
            .map(|t| t.last_consent + self.consent_timeout)
            .min()
    }

    /// Expires tuples whose consent ran out; switches to another valid tuple or disconnects.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timeout = self.consent_timeout;
        self.tuples.retain(|t| now < t.last_consent + timeout);
        if let Some(sel) = self.selected
            && !self.tuples.iter().any(|t| t.tuple == sel)
        {
            let next = self
                .tuples
                .iter()
                .max_by_key(|t| t.last_consent)
                .map(|t| t.tuple);
            self.selected = next;
            match next {
                Some(t) => self.events.push_back(IceEvent::TupleSelected(t)),
                None => self.set_state(IceState::Disconnected),
            }
        }
    }

    /// Handles one STUN datagram received on `tuple`.
    pub fn handle_stun(&mut self, data: &[u8], tuple: Tuple, now: Instant) -> StunOutcome {
        let mut msg = Message::new();
        if msg.unmarshal_binary(data).is_err() {
            return self.drop(IceDrop::Malformed);
        }
        if FINGERPRINT.check(&msg).is_err() {
            return self.drop(IceDrop::BadFingerprint);
        }
        if msg.typ != BINDING_REQUEST {
            return self.drop(IceDrop::NotBindingRequest);
        }
        self.stats.requests += 1;

        if !msg.contains(ATTR_USERNAME)
            || !msg.contains(ATTR_MESSAGE_INTEGRITY)
            || !msg.contains(ATTR_PRIORITY)
        {
            self.stats.bad_requests += 1;
            return self.error(&msg, CODE_BAD_REQUEST);
        }
        // Which credentials the check uses: the current ones, or (after a restart) the previous.
        let creds = TextAttribute::get_from_as(&msg, ATTR_USERNAME)
            .ok()
            .and_then(|u| {
                let (l, _) = u.text.split_once(':')?;
                if l == self.local.ufrag {
                    Some(&self.local)
                } else {
                    self.previous.as_ref().filter(|p| p.ufrag == l)
                }
            });
        let current = creds.is_some_and(|c| std::ptr::eq(c, &self.local));
        let authentic = creds.is_some_and(|c| {
            MessageIntegrity::check(&mut msg, c.pwd.as_bytes(), self.crypto.crypto()).is_ok()
        });
        if !authentic {
            self.stats.unauthorized += 1;
            return self.error(&msg, CODE_UNAUTHORIZED);
        }
        if current {
            // The remote uses the new generation: the old credentials are done.
            self.previous = None;
        }
        if msg.contains(ATTR_ICE_CONTROLLED) {
            // An ICE-lite agent is always controlled; a peer that claims so too is confused.
            self.stats.role_conflicts += 1;
            return self.error(&msg, CODE_ROLE_CONFLICT);
        }

        self.on_valid_check(tuple, msg.contains(ATTR_USE_CANDIDATE), now);
        let reply = self.build(
            &msg,
            &[
                Box::new(BINDING_SUCCESS),
                Box::new(XorMappedAddress {
                    ip: tuple.remote.ip(),
                    port: tuple.remote.port(),
                }),
            ],
        );
        match reply {
            Some(bytes) => StunOutcome::Reply(bytes),
            None => self.drop(IceDrop::Malformed),
        }
    }

    fn on_valid_check(&mut self, tuple: Tuple, nominated: bool, now: Instant) {
        match self.tuples.iter_mut().find(|t| t.tuple == tuple) {
            Some(t) => t.last_consent = now,
            None => self.tuples.push(ValidTuple {
                tuple,
                last_consent: now,
            }),
        }
        let select = nominated || self.selected.is_none();
        if select && self.selected != Some(tuple) {
            self.selected = Some(tuple);
            self.events.push_back(IceEvent::TupleSelected(tuple));
        }
        let next = if nominated || self.state == IceState::Completed {
            IceState::Completed
        } else {
            IceState::Connected
        };
        self.set_state(next);
    }

    fn set_state(&mut self, state: IceState) {
        if self.state != state {
            self.state = state;
            self.events.push_back(IceEvent::StateChanged(state));
        }
    }

    fn drop(&mut self, why: IceDrop) -> StunOutcome {
        self.stats.dropped += 1;
        StunOutcome::Drop(why)
    }

    fn error(&mut self, request: &Message, code: ErrorCode) -> StunOutcome {
        // Error responses carry no MESSAGE-INTEGRITY when the request failed authentication.
        let mut m = Message::new();
        let built = m.build(&[
            Box::new(request.transaction_id),
            Box::new(BINDING_ERROR),
            Box::new(code),
            Box::new(FINGERPRINT),
        ]);
        match built {
            Ok(()) => StunOutcome::Reply(m.raw),
            Err(_) => self.drop(IceDrop::Malformed),
        }
    }

    /// A success response: the request's transaction id, `setters`, then MESSAGE-INTEGRITY with
    /// the local password and FINGERPRINT.
    fn build(&self, request: &Message, setters: &[Box<dyn Setter + '_>]) -> Option<Vec<u8>> {
        let mut m = Message::new();
        let tid = request.transaction_id;
        let integrity = MessageIntegrity::new_short_term_integrity_with_provider(
            self.local.pwd.clone(),
            self.crypto.crypto(),
        );
        let mut all: Vec<&dyn Setter> = vec![&tid];
        all.extend(setters.iter().map(|s| s.as_ref()));
        all.push(&integrity);
        all.push(&FINGERPRINT);
        m.write_header();
        for s in all {
            s.add_to(&mut m).ok()?;
        }
        Some(m.raw)
    }
}

#[cfg(test)]
mod tests {
    //! The browser side is built with the same STUN crate, as Chrome would send it.
    use super::*;
    use rtc_stun::attributes::ATTR_ICE_CONTROLLING;
    use rtc_stun::error_code::ErrorCodeAttribute;
    use rtc_stun::message::{CLASS_ERROR_RESPONSE, TransactionId};

    fn crypto() -> Arc<dyn RTCCryptoProvider> {
        rtc_stun::crypto::default_provider().expect("ring provider")
    }

    fn local() -> IceCredentials {
        IceCredentials {
            ufrag: "srvufrag".into(),
            pwd: "server-password-0123456789".into(),
        }
    }

    fn tuple(port: u16) -> Tuple {
        Tuple {
            local: "127.0.0.1:40000".parse().unwrap(),
            remote: format!("127.0.0.1:{port}").parse().unwrap(),
            protocol: Protocol::Udp,
        }
    }

    struct Check<'a> {
        username: Option<&'a str>,
        pwd: &'a str,
        priority: bool,
        use_candidate: bool,
        controlled: bool,
        fingerprint: bool,
    }

    impl Default for Check<'_> {
        fn default() -> Self {
            Self {
                username: Some("srvufrag:browser"),
                pwd: "server-password-0123456789",
                priority: true,
                use_candidate: false,
                controlled: false,
                fingerprint: true,
            }
        }
    }

    fn request(c: &Check<'_>) -> (Vec<u8>, TransactionId) {
        let p = crypto();
        let mut m = Message::new();
        let tid = TransactionId::new();
        let mut setters: Vec<Box<dyn Setter>> = vec![Box::new(tid), Box::new(BINDING_REQUEST)];
        if let Some(u) = c.username {
            setters.push(Box::new(TextAttribute::new(ATTR_USERNAME, u.to_owned())));
        }
        if c.priority {
            setters.push(Box::new(rtc_stun::attributes::RawAttribute {
                typ: ATTR_PRIORITY,
                length: 4,
                value: 1_853_817_087u32.to_be_bytes().to_vec(),
            }));
        }
        if c.use_candidate {
            setters.push(Box::new(rtc_stun::attributes::RawAttribute {
                typ: ATTR_USE_CANDIDATE,
                length: 0,
                value: vec![],
            }));
        }
        let role = if c.controlled {
            ATTR_ICE_CONTROLLED
        } else {
            ATTR_ICE_CONTROLLING
        };
        setters.push(Box::new(rtc_stun::attributes::RawAttribute {
            typ: role,
            length: 8,
            value: 42u64.to_be_bytes().to_vec(),
        }));
        m.build(&setters).unwrap();
        MessageIntegrity::new_short_term_integrity_with_provider(c.pwd.to_owned(), p.crypto())
            .add_to(&mut m)
            .unwrap();
        if c.fingerprint {
            FINGERPRINT.add_to(&mut m).unwrap();
        }
        (m.raw, tid)
    }

    fn parse_reply(out: StunOutcome, tid: TransactionId) -> Message {
        let StunOutcome::Reply(bytes) = out else {
            panic!("expected a reply, got {out:?}")
        };
        let mut m = Message::new();
        m.unmarshal_binary(&bytes).unwrap();
        assert_eq!(m.transaction_id, tid);
        FINGERPRINT.check(&m).unwrap();
        m
    }

    fn error_code(m: &Message) -> u16 {
        assert_eq!(m.typ.class, CLASS_ERROR_RESPONSE);
        let mut e = ErrorCodeAttribute::default();
        rtc_stun::message::Getter::get_from(&mut e, m).unwrap();
        e.code.0
    }

    #[test]
    fn a_valid_check_is_answered_with_integrity_and_the_mapped_address() {
        let mut ice = IceLite::new(local(), crypto());
        let now = crate::test_epoch();
        let (req, tid) = request(&Check::default());
        let mut m = parse_reply(ice.handle_stun(&req, tuple(5000), now), tid);
        assert_eq!(m.typ, BINDING_SUCCESS);
        MessageIntegrity::check(&mut m, local().pwd.as_bytes(), crypto().crypto()).unwrap();
        let mut xor = XorMappedAddress::default();
        rtc_stun::message::Getter::get_from(&mut xor, &m).unwrap();
        assert_eq!((xor.ip, xor.port), (tuple(5000).remote.ip(), 5000));

        assert_eq!(ice.state(), IceState::Connected);
        assert_eq!(ice.poll_event(), Some(IceEvent::TupleSelected(tuple(5000))));
        assert_eq!(
            ice.poll_event(),
            Some(IceEvent::StateChanged(IceState::Connected))
        );
        assert!(ice.is_valid(&tuple(5000)));
        assert!(!ice.is_valid(&tuple(5001)));
    }

    #[test]
    fn use_candidate_nominates_and_completes() {
        let mut ice = IceLite::new(local(), crypto());
        let now = crate::test_epoch();
        ice.handle_stun(&request(&Check::default()).0, tuple(5000), now);
        let nominate = Check {
            use_candidate: true,
            ..Check::default()
        };
        ice.handle_stun(&request(&nominate).0, tuple(5001), now);
        assert_eq!(ice.state(), IceState::Completed);
        assert_eq!(ice.selected_tuple(), Some(tuple(5001)));
        // A later plain check on the other tuple does not steal the selection.
        ice.handle_stun(&request(&Check::default()).0, tuple(5000), now);
        assert_eq!(ice.selected_tuple(), Some(tuple(5001)));
    }

    #[test]
    fn bad_credentials_get_401_and_change_nothing() {
        let mut ice = IceLite::new(local(), crypto());
        let now = crate::test_epoch();
        for c in [
            Check {
                pwd: "wrong-password",
                ..Check::default()
            },
            Check {
                username: Some("otherufrag:browser"),
                ..Check::default()
            },
            Check {
                username: Some("no-colon"),
                ..Check::default()
            },
        ] {
            let (req, tid) = request(&c);
            assert_eq!(
                error_code(&parse_reply(ice.handle_stun(&req, tuple(5000), now), tid)),
                401
            );
        }
        assert_eq!(ice.state(), IceState::New);
        assert_eq!(ice.poll_event(), None);
        assert_eq!(ice.stats().unauthorized, 3);
    }

    #[test]
    fn missing_attributes_get_400_and_a_controlled_peer_487() {
        let mut ice = IceLite::new(local(), crypto());
        let now = crate::test_epoch();
        let (req, tid) = request(&Check {
            priority: false,
            ..Check::default()
        });
        assert_eq!(
            error_code(&parse_reply(ice.handle_stun(&req, tuple(1), now), tid)),
            400
        );
        let (req, tid) = request(&Check {
            username: None,
            ..Check::default()
        });
        assert_eq!(
            error_code(&parse_reply(ice.handle_stun(&req, tuple(1), now), tid)),
            400
        );
        let (req, tid) = request(&Check {
            controlled: true,
            ..Check::default()
        });
        assert_eq!(
            error_code(&parse_reply(ice.handle_stun(&req, tuple(1), now), tid)),
            487
        );
        assert_eq!(ice.state(), IceState::New);
    }

    #[test]
    fn no_fingerprint_or_garbage_is_dropped_silently() {
        let mut ice = IceLite::new(local(), crypto());
        let now = crate::test_epoch();
        let (req, _) = request(&Check {
            fingerprint: false,
            ..Check::default()
        });
        assert_eq!(
            ice.handle_stun(&req, tuple(1), now),
            StunOutcome::Drop(IceDrop::BadFingerprint)
        );
        assert_eq!(
            ice.handle_stun(&[0, 1, 0, 0], tuple(1), now),
            StunOutcome::Drop(IceDrop::Malformed)
        );
        let (mut req, _) = request(&Check::default());
        let last = req.len() - 1;
        req[last] ^= 0xff; // corrupt the fingerprint
        assert_eq!(
            ice.handle_stun(&req, tuple(1), now),
            StunOutcome::Drop(IceDrop::BadFingerprint)
        );
        assert_eq!(ice.stats().dropped, 3);
        assert_eq!(ice.state(), IceState::New);
    }

    #[test]
    fn consent_expiry_disconnects_and_a_fresh_check_reconnects() {
        let mut ice = IceLite::new(local(), crypto());
        let t0 = crate::test_epoch();
        let nominate = Check {
            use_candidate: true,
            ..Check::default()
        };
        ice.handle_stun(&request(&nominate).0, tuple(5000), t0);
        // Consent refreshed at 20 s: still alive at 45 s, gone at 50 s.
        ice.handle_stun(
            &request(&Check::default()).0,
            tuple(5000),
            t0 + Duration::from_secs(20),
        );
        assert_eq!(ice.poll_timeout(), Some(t0 + Duration::from_secs(50)));
        ice.handle_timeout(t0 + Duration::from_secs(45));
        assert_eq!(ice.state(), IceState::Completed);
        ice.handle_timeout(t0 + Duration::from_secs(50));
        assert_eq!(ice.state(), IceState::Disconnected);
        assert_eq!(ice.selected_tuple(), None);
        assert!(!ice.is_valid(&tuple(5000)));
        ice.handle_stun(
            &request(&nominate).0,
            tuple(5002),
            t0 + Duration::from_secs(60),
        );
        assert_eq!(ice.state(), IceState::Completed);
        assert_eq!(ice.selected_tuple(), Some(tuple(5002)));
    }

    #[test]
    fn expiry_of_the_selected_tuple_falls_back_to_another_valid_one() {
        let mut ice = IceLite::new(local(), crypto());
        let t0 = crate::test_epoch();
        ice.handle_stun(&request(&Check::default()).0, tuple(5000), t0);
        ice.handle_stun(
            &request(&Check::default()).0,
            tuple(5001),
            t0 + Duration::from_secs(10),
        );
        assert_eq!(ice.selected_tuple(), Some(tuple(5000)));
        ice.handle_timeout(t0 + Duration::from_secs(31));
        assert_eq!(ice.selected_tuple(), Some(tuple(5001)));
        assert_eq!(ice.state(), IceState::Connected);
    }

    #[test]
    fn ice_restart_refuses_the_old_credentials() {
        let mut ice = IceLite::new(local(), crypto());
        let now = crate::test_epoch();
        ice.restart(IceCredentials {
            ufrag: "newufrag".into(),
            pwd: "new-password-0123456789".into(),
        });
        let (req, tid) = request(&Check::default());
        assert_eq!(
            error_code(&parse_reply(ice.handle_stun(&req, tuple(1), now), tid)),
            401,
            "a restart before any check leaves nothing to keep"
        );
        let fresh = Check {
            username: Some("newufrag:browser"),
            pwd: "new-password-0123456789",
            ..Check::default()
        };
        let (req, tid) = request(&fresh);
        assert_eq!(
            parse_reply(ice.handle_stun(&req, tuple(1), now), tid).typ,
            BINDING_SUCCESS
        );
    }

    #[test]
    fn after_a_restart_the_old_credentials_work_until_the_new_ones_are_used() {
        let mut ice = IceLite::new(local(), crypto());
        let now = crate::test_epoch();
        let (req, _) = request(&Check {
            use_candidate: true,
            ..Check::default()
        });
        ice.handle_stun(&req, tuple(1), now);
        assert_eq!(ice.selected_tuple(), Some(tuple(1)));
        ice.restart(IceCredentials {
            ufrag: "newufrag".into(),
            pwd: "new-password-0123456789".into(),
        });
        // The browser's consent checks on its current pair, still with the old credentials.
        let (req, tid) = request(&Check::default());
        assert_eq!(
            parse_reply(ice.handle_stun(&req, tuple(1), now), tid).typ,
            BINDING_SUCCESS
        );
        // The new generation nominates a new tuple.
        let fresh = Check {
            username: Some("newufrag:browser"),
            pwd: "new-password-0123456789",
            use_candidate: true,
            ..Check::default()
        };
        let (req, tid) = request(&fresh);
        assert_eq!(
            parse_reply(ice.handle_stun(&req, tuple(2), now), tid).typ,
            BINDING_SUCCESS
        );
        assert_eq!(ice.selected_tuple(), Some(tuple(2)));
        // From now on the old credentials are refused.
        let (req, tid) = request(&Check::default());
        assert_eq!(
            error_code(&parse_reply(ice.handle_stun(&req, tuple(1), now), tid)),
            401
        );
    }
}
