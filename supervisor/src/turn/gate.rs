//! What ferrosfu adds in front of the TURN protocol engine (turn-server-proto): the REST
//! credentials (a user is told to the engine once its first request proves it holds the
//! credential; expired ones are refused), the relay policy (peers must be this node's own media
//! addresses: a TURN server that relays anywhere is an open proxy) and the per-user quota.
//!
//! Pure: bytes in, a verdict out; the IO shell ([`super::shell`]) acts on it.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use turn_server_proto::types::attribute::{RequestedTransport, XorPeerAddress};
use turn_server_proto::types::message::{ALLOCATE, CHANNEL_BIND, CONNECT, CREATE_PERMISSION, SEND};
use turn_server_proto::types::stun::attribute::{
    Attribute, AttributeFromRaw, AttributeStaticType, ErrorCode, Fingerprint, Nonce, Realm,
    Username, XorMappedAddress,
};
use turn_server_proto::types::stun::message::{
    BINDING, IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageClass, MessageWrite,
    MessageWriteExt, MessageWriteVec,
};

use super::credentials::{self, Refusal};

/// The addresses relays may talk to: this node's media IPs and ports.
#[derive(Debug, Clone, Default)]
pub struct AllowedPeers {
    pub ips: Vec<IpAddr>,
    pub ports: Vec<RangeInclusive<u16>>,
}

impl AllowedPeers {
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.ips.contains(&ip.to_canonical())
    }

    pub fn allows(&self, addr: SocketAddr) -> bool {
        self.allows_ip(addr.ip()) && self.ports.iter().any(|r| r.contains(&addr.port()))
    }
}

/// Why a message was not handed to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    /// Not STUN nor ChannelData, or a response/unknown class from a client.
    Malformed,
    /// The credential's expiry has passed (401).
    Expired,
    /// A permission, channel or send toward an address that is not this node's media (403).
    ForbiddenPeer,
    /// The user already holds its quota of allocations (486).
    UserQuota,
    /// A TCP relay (RFC 6062) was asked for (442): relays here are UDP.
    UnsupportedTransport,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed",
            Refused::Expired => "expired",
            Refused::ForbiddenPeer => "forbidden_peer",
            Refused::UserQuota => "user_quota",
            Refused::UnsupportedTransport => "unsupported_transport",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the bytes to the engine; first tell it this (username, password) if given.
    Pass { new_user: Option<(String, String)> },
    /// Answer with these bytes (an error response) instead.
    Reply(Vec<u8>, Refused),
    /// Answer with these bytes, served here: a STUN Binding (see [`binding_response`]).
    Answer(Vec<u8>),
    /// Drop without an answer (indications, garbage).
    Drop(Refused),
}

const MAX_PENDING: usize = 10_000;

#[derive(Debug)]
pub struct Gate {
    secret: Vec<u8>,
    realm: String,
    allowed: AllowedPeers,
    max_per_user: usize,
    /// Usernames the engine knows.
    known: HashSet<String>,
    /// Live allocations by user (the part after the expiry).
    allocations: HashMap<String, usize>,
    /// Allocate requests passed, by (listen, client): whose the next allocation there is.
    pending: HashMap<(SocketAddr, SocketAddr), String>,
}

impl Gate {
    pub fn new(secret: &[u8], realm: &str, allowed: AllowedPeers, max_per_user: usize) -> Self {
        Self {
            secret: secret.to_vec(),
            realm: realm.to_owned(),
            allowed,
            max_per_user,
            known: HashSet::new(),
            allocations: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    pub fn allowed(&self) -> &AllowedPeers {
        &self.allowed
    }

    /// Looks at one message a client sent to the listener `listen` from `from`.
    pub fn inspect(
        &mut self,
        data: &[u8],
        listen: SocketAddr,
        from: SocketAddr,
        now_unix: u64,
    ) -> Verdict {
        // ChannelData (first two bits 01): goes to a bound, already checked, peer.
        if data.len() >= 4 && data[0] & 0xC0 == 0x40 {
            return Verdict::Pass { new_user: None };
        }
        let Ok(msg) = Message::from_bytes(data) else {
            return Verdict::Drop(Refused::Malformed);
        };
        match msg.class() {
            MessageClass::Indication => {
                if msg.method() == SEND && !self.peers_allowed(&msg, true) {
                    return Verdict::Drop(Refused::ForbiddenPeer);
                }
                Verdict::Pass { new_user: None }
            }
            MessageClass::Request if msg.method() == BINDING => {
                Verdict::Answer(binding_response(&msg, from))
            }
            MessageClass::Request => self.request(&msg, listen, from, now_unix),
            _ => Verdict::Drop(Refused::Malformed),
        }
    }

    fn request(
        &mut self,
        msg: &Message<'_>,
        listen: SocketAddr,
        from: SocketAddr,
        now_unix: u64,
    ) -> Verdict {
        let Ok(username) = msg.attribute::<Username>() else {
            // The first Allocate (the engine answers 401 with a nonce) or a Binding.
            return Verdict::Pass { new_user: None };
        };
        let username = username.username();
        let user = match credentials::check_username(username, now_unix) {
            Ok(user) => user,
            Err(Refusal::Expired) => {
                return Verdict::Reply(
                    self.unauthorized(msg, "credential expired"),
                    Refused::Expired,
                );
            }
            // Not ours: the engine does not know it and answers 401.
            Err(Refusal::Malformed) => return Verdict::Pass { new_user: None },
        };
        let password = credentials::password(&self.secret, username);
        let key =
            LongTermKeyCredentials::new(username.into(), password.clone(), self.realm.clone());
        if msg.validate_integrity(&key.clone().into()).is_err() {
            // Wrong credential or no integrity: the engine refuses it (401).
            return Verdict::Pass { new_user: None };
        }
        let refusal = match msg.method() {
            ALLOCATE => {
                let udp = msg
                    .attribute::<RequestedTransport>()
                    .map_or(true, |t| t.protocol() == RequestedTransport::UDP);
                if !udp {
                    Some((
                        ErrorCode::UNSUPPORTED_TRANSPORT_PROTOCOL,
                        Refused::UnsupportedTransport,
                    ))
                } else if self.allocations.get(user).copied().unwrap_or(0) >= self.max_per_user {
                    Some((ErrorCode::ALLOCATION_QUOTA_REACHED, Refused::UserQuota))
                } else {
                    if self.pending.len() >= MAX_PENDING {
                        self.pending.clear();
                    }
                    self.pending.insert((listen, from), user.to_owned());
                    None
                }
            }
            CREATE_PERMISSION if !self.peers_allowed(msg, false) => {
                Some((ErrorCode::FORBIDDEN, Refused::ForbiddenPeer))
            }
            CHANNEL_BIND if !self.peers_allowed(msg, true) => {
                Some((ErrorCode::FORBIDDEN, Refused::ForbiddenPeer))
            }
            CONNECT => Some((ErrorCode::FORBIDDEN, Refused::ForbiddenPeer)),
            _ => None,
        };
        if let Some((code, why)) = refusal {
            return Verdict::Reply(signed_error(msg, code, why.label(), &key), why);
        }
        let new_user = self
            .known
            .insert(username.to_owned())
            .then(|| (username.to_owned(), password));
        Verdict::Pass { new_user }
    }

    /// Every XOR-PEER-ADDRESS is this node's (with the port when `with_port`); none is "no".
    fn peers_allowed(&self, msg: &Message<'_>, with_port: bool) -> bool {
        let mut any = false;
        for (_, raw) in msg.iter_attributes() {
            if raw.get_type() != XorPeerAddress::TYPE {
                continue;
            }
            let Ok(peer) = XorPeerAddress::from_raw_ref(&raw) else {
                return false;
            };
            let addr = peer.addr(msg.transaction_id());
            let ok = if with_port {
                self.allowed.allows(addr)
            } else {
                self.allowed.allows_ip(addr.ip())
            };
            if !ok {
                return false;
            }
            any = true;
        }
        any
    }

    fn unauthorized(&self, msg: &Message<'_>, reason: &str) -> Vec<u8> {
        let mut out = Message::builder_error(msg, MessageWriteVec::new());
        let code = ErrorCode::builder(ErrorCode::UNAUTHORIZED)
            .reason(reason)
            .build()
            .expect("valid error code");
        let nonce = format!("{:016x}", rand_u64());
        let _ = out.add_attribute(&code);
        let _ = out.add_attribute(&Realm::new(&self.realm).expect("realm checked by the config"));
        let _ = out.add_attribute(&Nonce::new(&nonce).expect("hex nonce"));
        let _ = out.add_fingerprint();
        out.finish()
    }

    /// Whose allocation the engine is about to make for (listen, client), if an Allocate of a
    /// known user passed.
    pub fn take_pending(&mut self, listen: SocketAddr, client: SocketAddr) -> Option<String> {
        self.pending.remove(&(listen, client))
    }

    pub fn allocated(&mut self, user: &str) {
        *self.allocations.entry(user.to_owned()).or_default() += 1;
    }

    pub fn released(&mut self, user: &str) {
        if let Some(n) = self.allocations.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.allocations.remove(user);
            }
        }
    }

    /// Distinct usernames told to the engine (it keeps them for its lifetime).
    pub fn known_users(&self) -> usize {
        self.known.len()
    }
}

/// The answer to a STUN Binding request from `from`: its address as XOR-MAPPED-ADDRESS (or 420
/// for attributes it must understand and does not), as RFC 8489 has a STUN server answer.
/// Browsers use every TURN server as a STUN server too (Chromium sends attribute-less Binding
/// requests to the TURN port). Served here because turn-server-proto 0.7.3 addresses its Binding
/// answer to the server's own listen address (`self.stun.send(response, transmit.to, ..)`): on
/// UDP it came back to the listener as a Binding success "from" itself (counted as malformed)
/// and the client never got one; on TCP it was dropped.
pub fn binding_response(msg: &Message<'_>, from: SocketAddr) -> Vec<u8> {
    if let Some(error) = Message::check_attribute_types(
        msg,
        &[Fingerprint::TYPE],
        &[],
        MessageWriteVec::with_capacity(64),
    ) {
        return error.finish();
    }
    let mut out = Message::builder_success(msg, MessageWriteVec::with_capacity(64));
    let _ = out.add_attribute(&XorMappedAddress::new(from, msg.transaction_id()));
    let _ = out.add_fingerprint();
    out.finish()
}

fn signed_error(
    msg: &Message<'_>,
    code: u16,
    reason: &str,
    key: &LongTermKeyCredentials,
) -> Vec<u8> {
    let mut out = Message::builder_error(msg, MessageWriteVec::new());
    let code = ErrorCode::builder(code)
        .reason(reason)
        .build()
        .expect("valid error code");
    let _ = out.add_attribute(&code);
    let _ = out.add_message_integrity(&key.clone().into(), IntegrityAlgorithm::Sha1);
    let _ = out.add_fingerprint();
    out.finish()
}

/// What a refused message looks like, for a debug log: its length, first bytes and, when it
/// parses as STUN, its class and method.
pub fn describe(data: &[u8]) -> String {
    let head: String = data.iter().take(8).map(|b| format!("{b:02x}")).collect();
    match Message::from_bytes(data) {
        Ok(msg) => format!(
            "{} B [{head}] stun {:?} method {:#05x}",
            data.len(),
            msg.class(),
            msg.method().value()
        ),
        Err(e) => format!("{} B [{head}] not stun: {e:?}", data.len()),
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("system randomness");
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn gate() -> Gate {
        let allowed = AllowedPeers {
            ips: vec![IpAddr::from([10, 214, 0, 1])],
            ports: vec![22000..=22999],
        };
        Gate::new(b"secret", "ferrosfu", allowed, 10)
    }

    /// The Binding request Chromium sends to a TURN server's port (it uses every TURN server as
    /// a STUN server too), as captured in browser_turn: 20 bytes, no attributes.
    const CHROMIUM_BINDING: [u8; 20] = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0x35, 0x57, 0x6b, 0x33, 0x32, 0x4f, 0x45,
        0x51, 0x62, 0x5a, 0x48, 0x70,
    ];

    #[test]
    fn a_binding_request_is_answered_with_the_senders_address() {
        let listen: SocketAddr = "10.214.0.1:3478".parse().unwrap();
        let from: SocketAddr = "10.214.0.1:60389".parse().unwrap();
        let Verdict::Answer(bytes) = gate().inspect(&CHROMIUM_BINDING, listen, from, 0) else {
            panic!("a Binding request is answered by the gate");
        };
        let msg = Message::from_bytes(&bytes).unwrap();
        assert_eq!(msg.class(), MessageClass::Success);
        assert_eq!(msg.method(), BINDING);
        assert_eq!(
            msg.transaction_id(),
            Message::from_bytes(&CHROMIUM_BINDING)
                .unwrap()
                .transaction_id()
        );
        let mapped = msg.attribute::<XorMappedAddress>().unwrap();
        assert_eq!(mapped.addr(msg.transaction_id()), from);
    }

    #[test]
    fn a_binding_request_with_an_unknown_required_attribute_gets_420() {
        // CHROMIUM_BINDING plus attribute 0x0023 (comprehension-required, unknown), 4 bytes.
        let mut req = CHROMIUM_BINDING.to_vec();
        req[3] = 8;
        req.extend_from_slice(&[0x00, 0x23, 0x00, 0x04, 1, 2, 3, 4]);
        let from: SocketAddr = "10.214.0.2:5000".parse().unwrap();
        let Verdict::Answer(bytes) = gate().inspect(&req, from, from, 0) else {
            panic!("answered");
        };
        let msg = Message::from_bytes(&bytes).unwrap();
        assert_eq!(msg.class(), MessageClass::Error);
        assert_eq!(msg.attribute::<ErrorCode>().unwrap().code(), 420);
    }

    #[test]
    fn responses_and_garbage_from_clients_are_malformed() {
        let a: SocketAddr = "10.214.0.2:5000".parse().unwrap();
        // A Binding success (what the engine used to send the listener itself).
        let mut success = CHROMIUM_BINDING.to_vec();
        success[1] = 0x01;
        success[0] = 0x01;
        for bad in [
            &success[..],
            &[0xff; 40][..],
            &[0x00, 0x01, 0x00][..],
            b"\x00\x01\x00\x08garbage",
        ] {
            assert_eq!(
                gate().inspect(bad, a, a, 0),
                Verdict::Drop(Refused::Malformed),
                "{}",
                describe(bad)
            );
        }
    }
}
