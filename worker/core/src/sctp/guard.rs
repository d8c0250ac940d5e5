//! Guards in front of rtc-sctp 0.21.1 against packets that would panic it or cost the worker
//! seconds (both found by the `sctp` fuzz target):
//!
//! - an ABORT or ERROR chunk whose error cause claims more bytes than the chunk holds panics in
//!   `ErrorCause::unmarshal` (`Bytes::slice` out of range): such packets are dropped. This
//!   guard walks chunks by their wire length; the crate advances by each parsed chunk's own
//!   length (a HEARTBEAT's from its parameters), so a bad ABORT can hide inside another chunk:
//!   `SctpAssociation::handle_input` also catches the panic as a backstop;
//! - FORWARD-TSN, below.
//!
//! The crate's FORWARD-TSN handling (`handle_forward_tsn`) advances its cumulative TSN one by one
//! up to the chunk's `new_cumulative_tsn`, popping its payload queue each step: a forged
//! FORWARD-TSN about 2^31 TSNs ahead spins for 2^31 iterations (and in a build with overflow
//! checks panics on `peer_last_tsn + 1` at the u32 wrap). Found by the `sctp` fuzz target.
//!
//! The guard tracks a lower bound of the crate's cumulative TSN — the peer's initial TSN minus
//! one (from its INIT or INIT ACK), then the cumulative TSN ack of every SACK we send — and drops
//! any packet whose FORWARD-TSN jumps more than [`MAX_FORWARD_TSN_JUMP`] past it. A real sender
//! only skips TSNs it sent and abandoned, far fewer than that.

/// The largest FORWARD-TSN advance accepted past the last cumulative TSN we acknowledged.
pub(super) const MAX_FORWARD_TSN_JUMP: u32 = 1 << 16;

const COMMON_HEADER: usize = 12;
const INIT: u8 = 1;
const INIT_ACK: u8 = 2;
const SACK: u8 = 3;
const ABORT: u8 = 6;
const ERROR: u8 = 9;
const FORWARD_TSN: u8 = 192;

/// Whether every error cause of an ABORT or ERROR chunk's value lies inside it.
fn causes_fit(value: &[u8]) -> bool {
    let mut off = 0;
    while off + 4 <= value.len() {
        let len = usize::from(u16::from_be_bytes([value[off + 2], value[off + 3]]));
        if len < 4 || off + len > value.len() {
            return false;
        }
        off += len;
    }
    true
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TsnGuard {
    /// A value the crate's cumulative TSN is at or after (serial arithmetic).
    floor: Option<u32>,
}

/// `(type, value)` of each chunk of a packet (stops at the first malformed length).
fn chunks(packet: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut off = COMMON_HEADER;
    std::iter::from_fn(move || {
        let header = packet.get(off..off + 4)?;
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let value = packet.get(off + 4..off + len.max(4))?;
        off += len.max(4).next_multiple_of(4);
        Some((header[0], value))
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let v = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

/// `a` is after `b` in serial arithmetic (RFC 1982).
fn after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

impl TsnGuard {
    /// Whether an inbound packet may reach the crate.
    pub(super) fn inbound(&mut self, packet: &[u8]) -> bool {
        for (kind, value) in chunks(packet) {
            match kind {
                ABORT | ERROR if !causes_fit(value) => return false,
                // Initiate tag, a_rwnd, OS, MIS, then the initial TSN.
                INIT | INIT_ACK if self.floor.is_none() => {
                    if let Some(tsn) = be32(value, 12) {
                        self.floor = Some(tsn.wrapping_sub(1));
                    }
                }
                FORWARD_TSN => {
                    let Some(new_cum) = be32(value, 0) else {
                        continue;
                    };
                    let Some(floor) = self.floor else {
                        return false;
                    };
                    if after(new_cum, floor) && new_cum.wrapping_sub(floor) > MAX_FORWARD_TSN_JUMP {
                        return false;
                    }
                }
                _ => {}
            }
        }
        true
    }

    /// Notes the cumulative TSN ack of an outbound packet's SACK.
    pub(super) fn outbound(&mut self, packet: &[u8]) {
        for (kind, value) in chunks(packet) {
            if kind == SACK {
                if let Some(cum) = be32(value, 0) {
                    if self.floor.is_none_or(|f| after(cum, f)) {
                        self.floor = Some(cum);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(chunks: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut p = vec![0; COMMON_HEADER];
        for (kind, value) in chunks {
            p.extend_from_slice(&[*kind, 0]);
            p.extend_from_slice(&u16::try_from(4 + value.len()).unwrap().to_be_bytes());
            p.extend_from_slice(value);
            p.resize(p.len().next_multiple_of(4), 0);
        }
        p
    }

    fn init(tsn: u32) -> Vec<u8> {
        let mut v = vec![0; 12];
        v.extend_from_slice(&tsn.to_be_bytes());
        packet(&[(INIT, v)])
    }

    fn fwd(tsn: u32) -> Vec<u8> {
        packet(&[(FORWARD_TSN, tsn.to_be_bytes().to_vec())])
    }

    #[test]
    fn forward_tsn_far_ahead_is_dropped() {
        let mut g = TsnGuard::default();
        assert!(!g.inbound(&fwd(5)), "no floor yet");
        assert!(g.inbound(&init(u32::MAX - 10)));
        assert!(g.inbound(&fwd((u32::MAX - 10).wrapping_add(500))));
        assert!(g.inbound(&fwd(3)), "behind or near: the crate handles it");
        assert!(!g.inbound(&fwd(1 << 20)));
        assert!(!g.inbound(&fwd((u32::MAX - 10).wrapping_add(1 << 30))));
        g.outbound(&packet(&[(SACK, (1u32 << 20).to_be_bytes().to_vec())]));
        assert!(g.inbound(&fwd((1 << 20) + 100)));
        assert!(g.inbound(&[1, 2, 3]), "not a packet: the crate counts it");
    }

    #[test]
    fn error_causes_longer_than_their_chunk_are_dropped() {
        let mut g = TsnGuard::default();
        let cause = |len: u16| [&1u16.to_be_bytes()[..], &len.to_be_bytes(), &[0; 4]].concat();
        assert!(g.inbound(&packet(&[(ABORT, cause(8))])));
        assert!(g.inbound(&packet(&[(ERROR, vec![])])));
        assert!(!g.inbound(&packet(&[(ABORT, cause(12))])));
        assert!(!g.inbound(&packet(&[(ERROR, cause(200))])));
        assert!(!g.inbound(&packet(&[(ABORT, cause(2))])));
    }
}
