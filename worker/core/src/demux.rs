//! Which transport a datagram belongs to.
//!
//! A datagram is identified by its 5-tuple: once ICE (or comedia) validated a tuple, it maps
//! straight to its transport. Before that, the socket it arrived on decides: a transport's own
//! socket names the transport; a WebRtcServer's shared socket admits only STUN, whose USERNAME
//! carries the transport's local ufrag. Everything else is counted and dropped by the caller.

use std::collections::HashMap;
use std::net::SocketAddr;

use ferrosfu_fbs::WebRtcServerId;

use crate::proto::ice::{Protocol, Tuple};
use crate::proto::packet::PacketKind;
use crate::tables::TransportKey;
use crate::transport::BoundSocket;

/// Who owns a bound socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Transport(TransportKey),
    Server(WebRtcServerId),
}

/// Why a datagram found no transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No socket of ours is bound to its destination.
    UnknownSocket,
    /// It reached a WebRtcServer's socket from a tuple no transport knows, and is not a STUN
    /// check naming one.
    UnknownTuple,
}

#[derive(Debug, Default)]
pub(crate) struct Demux {
    /// (protocol, bound address) → owner.
    sockets: HashMap<(Protocol, SocketAddr), Owner>,
    /// Tuples ICE validated (or a transport selected) → transport.
    tuples: HashMap<Tuple, TransportKey>,
    /// Local ICE username fragment → transport, for first checks on a shared socket.
    ufrags: HashMap<String, TransportKey>,
}

impl Demux {
    /// The transport a datagram of `kind` received on `tuple` belongs to.
    pub(crate) fn route(
        &self,
        tuple: &Tuple,
        kind: PacketKind,
        data: &[u8],
    ) -> Result<TransportKey, Miss> {
        if let Some(&k) = self.tuples.get(tuple) {
            return Ok(k);
        }
        match self.socket_owner(tuple.protocol, tuple.local) {
            Some(Owner::Transport(k)) => Ok(*k),
            Some(Owner::Server(_)) => {
                if kind != PacketKind::Stun {
                    return Err(Miss::UnknownTuple);
                }
                stun_ufrag(data)
                    .and_then(|u| self.ufrags.get(u))
                    .copied()
                    .ok_or(Miss::UnknownTuple)
            }
            None => Err(Miss::UnknownSocket),
        }
    }

    /// The owner of the socket a datagram to `local` arrived on: the socket bound to exactly
    /// `local`, else the one bound to the unspecified address of its family on the same port (the
    /// shell reports the datagram's destination address, not the wildcard). Two hash lookups at
    /// most, no allocation.
    fn socket_owner(&self, protocol: Protocol, local: SocketAddr) -> Option<&Owner> {
        self.sockets.get(&(protocol, local)).or_else(|| {
            let any = unspecified(local);
            (any != local)
                .then(|| self.sockets.get(&(protocol, any)))
                .flatten()
        })
    }

    pub(crate) fn add_socket(&mut self, s: &BoundSocket, owner: Owner) {
        self.sockets.insert((s.protocol, s.local), owner);
    }

    pub(crate) fn remove_socket(&mut self, s: &BoundSocket) {
        self.sockets.remove(&(s.protocol, s.local));
    }

    pub(crate) fn add_ufrag(&mut self, ufrag: String, k: TransportKey) {
        self.ufrags.insert(ufrag, k);
    }

    pub(crate) fn remove_ufrag(&mut self, ufrag: &str) {
        self.ufrags.remove(ufrag);
    }

    pub(crate) fn add_tuple(&mut self, tuple: Tuple, k: TransportKey) {
        self.tuples.insert(tuple, k);
    }

    /// Forgets the tuples of transport `k` that are no longer valid.
    pub(crate) fn retain_tuples(&mut self, k: TransportKey, mut valid: impl FnMut(&Tuple) -> bool) {
        self.tuples.retain(|t, v| *v != k || valid(t));
    }

    /// Forgets every tuple of transport `k` (it closed).
    pub(crate) fn forget_transport(&mut self, k: TransportKey) {
        self.tuples.retain(|_, v| *v != k);
    }
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
pub(crate) fn bound_to(bound: SocketAddr, local: SocketAddr) -> bool {
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
