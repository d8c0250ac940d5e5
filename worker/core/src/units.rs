//! Media newtypes: SSRC, payload type, and sequence numbers extended to 64 bits before any
//! arithmetic (wrap-around is handled once, in [`crate::proto::seq`]).

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
