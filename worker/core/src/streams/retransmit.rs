//! Retransmission history: one copy of what a producer stream forwarded ([`PacketStore`]) and,
//! per consumer stream, which input packet each sent one was ([`RetransmitBuffer`]).

use std::time::{Duration, Instant};

use crate::proto::vp8::PictureIds;

/// Retransmission history per stream, in packets (≈ 2 s of 500-packet/s video).
pub(crate) const RETRANSMIT_SLOTS: usize = 1024;

/// One packet of a producer stream's [`PacketStore`].
#[derive(Debug, Default)]
struct StoredPacket {
    ext_seq: u64,
    used: bool,
    packet: Vec<u8>,
}

/// The last [`RETRANSMIT_SLOTS`] packets a producer stream forwarded (plaintext, as received,
/// RTX already unwrapped), indexed by extended input sequence number. Every consumer of the
/// stream retransmits from this one copy: a consumer keeps only the mapping from its output
/// sequence numbers to input ones ([`RetransmitBuffer`]), so its memory does not grow with the
/// packet size (a copy per consumer cost ~1.3 MiB each).
#[derive(Debug)]
pub struct PacketStore {
    slots: Vec<StoredPacket>,
}

impl Default for PacketStore {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketStore {
    pub fn new() -> Self {
        Self {
            slots: (0..RETRANSMIT_SLOTS)
                .map(|_| StoredPacket::default())
                .collect(),
        }
    }

    /// Keeps a copy of `packet` (input sequence `ext_seq`), replacing the oldest one on its slot.
    pub fn put(&mut self, ext_seq: u64, packet: &[u8]) {
        let s = &mut self.slots[ext_seq as usize % RETRANSMIT_SLOTS];
        s.ext_seq = ext_seq;
        s.used = true;
        s.packet.clear();
        s.packet.extend_from_slice(packet);
    }

    /// The stored packet `ext_seq`, if it is still there.
    pub fn get(&self, ext_seq: u64) -> Option<&[u8]> {
        let s = &self.slots[ext_seq as usize % RETRANSMIT_SLOTS];
        (s.used && s.ext_seq == ext_seq).then_some(&s.packet[..])
    }
}

/// What a sent packet of a consumer stream was: which input packet (encoding, extended input
/// sequence number), and what the consumer wrote into it that is not the input's (timestamp,
/// PictureID / TL0PICIDX): a retransmission repeats them exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SentFrom {
    pub encoding: u8,
    pub in_ext_seq: u64,
    pub timestamp: u32,
    /// The RTP marker bit it was sent with (SVC consumers set it where a picture ends).
    pub marker: bool,
    pub picture: Option<PictureIds>,
}

/// One sent packet of a consumer stream and when it was last resent.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    seq: u16,
    used: bool,
    from: SentFrom,
    resent_at: Option<Instant>,
}

/// Last-N sent packets of a consumer stream, indexed by output sequence number: the input
/// packet each one was rewritten from (in the producer's [`PacketStore`]) and when it was last
/// resent. 48 bytes a slot.
#[derive(Debug)]
pub struct RetransmitBuffer {
    slots: Box<[Slot]>,
}

impl Default for RetransmitBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl RetransmitBuffer {
    pub fn new() -> Self {
        Self {
            slots: vec![Slot::default(); RETRANSMIT_SLOTS].into_boxed_slice(),
        }
    }

    /// Output packet `seq` was rewritten `from` an input packet.
    pub fn record(&mut self, seq: u16, from: SentFrom) {
        self.slots[seq as usize % RETRANSMIT_SLOTS] = Slot {
            seq,
            used: true,
            from,
            resent_at: None,
        };
    }

    /// What sent packet `seq` was, unless it was already resent within `min_interval` (or is
    /// too old).
    pub fn get_for_resend(
        &mut self,
        seq: u16,
        now: Instant,
        min_interval: Duration,
    ) -> Option<SentFrom> {
        let s = &mut self.slots[seq as usize % RETRANSMIT_SLOTS];
        if !s.used || s.seq != seq {
            return None;
        }
        if s.resent_at
            .is_some_and(|t| now.saturating_duration_since(t) < min_interval)
        {
            return None;
        }
        s.resent_at = Some(now);
        Some(s.from)
    }

    pub fn clear(&mut self) {
        for s in &mut self.slots {
            s.used = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(in_ext_seq: u64) -> SentFrom {
        SentFrom {
            encoding: 1,
            in_ext_seq,
            timestamp: in_ext_seq as u32 * 3,
            marker: true,
            picture: Some(PictureIds::new(in_ext_seq as u16, 7)),
        }
    }

    #[test]
    fn retransmission_goes_through_the_shared_store() {
        let t0 = crate::test_epoch();
        let mut store = PacketStore::new();
        let mut a = RetransmitBuffer::new();
        let mut b = RetransmitBuffer::new();
        for ext in 70_000u64..70_000 + 2 * RETRANSMIT_SLOTS as u64 {
            store.put(ext, &ext.to_be_bytes());
            a.record(ext as u16, from(ext));
            b.record((ext as u16).wrapping_add(500), from(ext));
        }
        let last = 70_000 + 2 * RETRANSMIT_SLOTS as u64 - 1;
        // Both consumers find the one stored copy under their own output numbers.
        let ext = a.get_for_resend(last as u16, t0, Duration::from_millis(10));
        assert_eq!(ext, Some(from(last)));
        assert_eq!(store.get(last), Some(&last.to_be_bytes()[..]));
        let ext = b.get_for_resend((last as u16).wrapping_add(500), t0, Duration::ZERO);
        assert_eq!(ext, Some(from(last)));
        // Not twice within the interval; again after it.
        assert_eq!(
            a.get_for_resend(last as u16, t0, Duration::from_millis(10)),
            None
        );
        let later = t0 + Duration::from_millis(10);
        assert_eq!(
            a.get_for_resend(last as u16, later, Duration::from_millis(10)),
            Some(from(last))
        );
        // Older than the history: the slot now holds a newer packet.
        let old = last - RETRANSMIT_SLOTS as u64;
        assert_eq!(a.get_for_resend(old as u16, t0, Duration::ZERO), None);
        assert_eq!(store.get(old), None);
        a.clear();
        assert_eq!(a.get_for_resend(last as u16, later, Duration::ZERO), None);
    }
}
