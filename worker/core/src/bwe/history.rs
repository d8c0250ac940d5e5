//! What each packet a transport sent with a transport-wide sequence number was: when it left,
//! its size on the wire and its probe cluster, kept in a fixed ring indexed by the unwrapped
//! sequence number until the subscriber's feedback reports on it ([`super::feedback`]).
//!
//! The ring is allocated once, on the first packet sent (a transport that only receives never
//! pays for it); recording a packet is one unwrap and one slot write.

use std::time::{Duration, Instant};

/// Packets remembered (a power of two: the slot is the low bits of the sequence number). At
/// 10 000 packets/s this is 0.8 s, several feedback intervals.
pub(crate) const HISTORY_LEN: usize = 8192;
const MASK: u64 = HISTORY_LEN as u64 - 1;
/// `probe` of a media packet.
const NO_PROBE: u32 = u32::MAX;
/// `seq` of a slot never written.
const EMPTY: u64 = u64::MAX;

/// What the feedback said of a packet so far (so each packet is reported once as received, and
/// once at most as lost before that).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reported {
    Not,
    Lost,
    Received,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Unwrapped sequence number ([`EMPTY`]: never written).
    seq: u64,
    /// Nanoseconds after [`SendHistory::origin`].
    sent_ns: u64,
    probe: u32,
    size: u16,
    reported: Reported,
}

const EMPTY_SLOT: Slot = Slot {
    seq: EMPTY,
    sent_ns: 0,
    probe: NO_PROBE,
    size: 0,
    reported: Reported::Not,
};

/// One sent packet, as remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SentPacket {
    pub seq: u64,
    pub sent_at: Instant,
    /// Bytes on the wire (after SRTP).
    pub size: usize,
    pub probe_cluster: Option<u32>,
}

/// The last [`HISTORY_LEN`] packets a transport sent with a transport-wide sequence number.
#[derive(Debug, Default)]
pub(crate) struct SendHistory {
    /// Empty until the first packet; then exactly [`HISTORY_LEN`] slots.
    slots: Box<[Slot]>,
    /// Zero of the stored send times (the first packet's).
    origin: Option<Instant>,
    /// Highest unwrapped sequence number sent.
    last: Option<u64>,
}

impl SendHistory {
    /// Records packet `seq` (as written on the wire) sent at `at`, `size` bytes after
    /// protection, `probe`: its probe cluster. Returns the unwrapped sequence number.
    pub(crate) fn on_sent(
        &mut self,
        seq: u16,
        at: Instant,
        size: usize,
        probe: Option<u32>,
    ) -> u64 {
        let seq = match self.last {
            // Numbers come from one counter: forward by the shortest way, or (a number reused
            // after a wrap of the 16 bits, never in practice) backwards within half the space.
            Some(last) => {
                last.saturating_add_signed(i64::from(seq.wrapping_sub(last as u16) as i16))
            }
            None => u64::from(seq),
        };
        if self.slots.is_empty() {
            self.slots = vec![EMPTY_SLOT; HISTORY_LEN].into_boxed_slice();
        }
        let origin = *self.origin.get_or_insert(at);
        self.last = Some(self.last.map_or(seq, |l| l.max(seq)));
        let i = (seq & MASK) as usize;
        self.slots[i] = Slot {
            seq,
            sent_ns: at.saturating_duration_since(origin).as_nanos() as u64,
            probe: probe.unwrap_or(NO_PROBE),
            size: size.min(usize::from(u16::MAX)) as u16,
            reported: Reported::Not,
        };
        seq
    }

    /// The unwrapped sequence number of `seq` (as on the wire) at or before the last one sent
    /// (feedback only reports on what was sent); `None` before anything was sent or when it
    /// would be before the first.
    pub(crate) fn unwrap_sent(&self, seq: u16) -> Option<u64> {
        let last = self.last?;
        last.checked_sub(u64::from((last as u16).wrapping_sub(seq)))
    }

    /// Packet `seq`, if it is still in the ring.
    pub(crate) fn get(&self, seq: u64) -> Option<SentPacket> {
        let s = self.slot(seq)?;
        Some(SentPacket {
            seq,
            sent_at: self.origin? + Duration::from_nanos(s.sent_ns),
            size: usize::from(s.size),
            probe_cluster: (s.probe != NO_PROBE).then_some(s.probe),
        })
    }

    /// What feedback said of packet `seq` so far (`None`: not in the ring).
    pub(crate) fn reported(&self, seq: u64) -> Option<Reported> {
        self.slot(seq).map(|s| s.reported)
    }

    /// Notes what feedback said of packet `seq` (nothing if it left the ring).
    pub(crate) fn set_reported(&mut self, seq: u64, r: Reported) {
        if let Some(s) = self.slots.get_mut((seq & MASK) as usize)
            && s.seq == seq
        {
            s.reported = r;
        }
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        self.slots
            .get((seq & MASK) as usize)
            .filter(|s| s.seq == seq && seq != EMPTY)
    }
}

#[cfg(test)]
mod tests;
