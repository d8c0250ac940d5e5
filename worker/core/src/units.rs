//! Media newtypes: SSRC, payload type, and sequence numbers extended to 64 bits before any
//! arithmetic (wrap-around is handled once, here).

use std::fmt;

/// RTP synchronisation source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

/// RTP payload type (7 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pt(pub u8);

/// A sequence number extended with its roll-over count: `rollovers << 16 | seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqNo(pub u64);

impl SeqNo {
    /// The 16-bit value on the wire.
    pub fn wire(self) -> u16 {
        self.0 as u16
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Extends 16-bit RTP sequence numbers to [`SeqNo`], tolerating reordering: a value is placed in
/// the roll-over period that puts it closest to the highest one seen (RFC 3550 A.1, RFC 3711
/// 3.3.1 index estimation).
#[derive(Clone, Debug, Default)]
pub struct SeqExtender {
    max: Option<u64>,
}

impl SeqExtender {
    pub fn extend(&mut self, seq: u16) -> SeqNo {
        let Some(max) = self.max else {
            // Start one period in, so that early reordered packets from "before" the first do
            // not underflow.
            let v = (1u64 << 16) | u64::from(seq);
            self.max = Some(v);
            return SeqNo(v);
        };
        let roc = max >> 16;
        let candidates = [roc.checked_sub(1), Some(roc), roc.checked_add(1)];
        let v = candidates
            .into_iter()
            .flatten()
            .map(|r| (r << 16) | u64::from(seq))
            .min_by_key(|v| v.abs_diff(max))
            .expect("roc itself is always a candidate");
        if v > max {
            self.max = Some(v);
        }
        SeqNo(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_across_wrap_and_tolerates_reordering() {
        let mut e = SeqExtender::default();
        let first = e.extend(65534).0;
        assert_eq!(e.extend(65535).0, first + 1);
        assert_eq!(e.extend(0).0, first + 2, "wrap");
        assert_eq!(e.extend(1).0, first + 3);
        assert_eq!(
            e.extend(65533).0,
            first - 1,
            "late packet from before the wrap"
        );
        assert_eq!(e.extend(2).0, first + 4);
        assert_eq!(e.extend(2).wire(), 2);
    }

    #[test]
    fn long_runs_stay_monotonic() {
        let mut e = SeqExtender::default();
        let start = e.extend(40000).0;
        for i in 1..300_000u64 {
            let s = ((40000 + i) % 65536) as u16;
            assert_eq!(e.extend(s).0, start + i);
        }
    }

    #[test]
    fn a_late_packet_right_after_the_first_does_not_underflow() {
        let mut e = SeqExtender::default();
        let first = e.extend(0).0;
        assert_eq!(e.extend(65535).0, first - 1);
    }
}
