//! Sequence-number validation for a received packet stream, after RFC 3550 appendix A.1 (as
//! mediasoup's `RtpStream::UpdateSeq`): no single packet can move a stream's long-lived state.
//!
//! - A packet at most [`MAX_DROPOUT`] − 1 ahead of the highest one is the new highest (the
//!   numbers skipped are loss or still in flight).
//! - A packet at most [`MAX_MISORDER`] behind it is late: reordered or retransmitted, accepted
//!   once (a window of received numbers tells duplicates apart).
//! - Anything else is a *jump*: the packet is not accepted and does not move the stream. It
//!   becomes a candidate; only the next packet to arrive, if it is the next in sequence after
//!   it (`candidate + 1`), confirms a new sequence space (an encoder restart), and then the
//!   stream resyncs with both packets. (A.1 keeps a candidate armed across other packets; here
//!   the confirmation must follow at once, so a stray pair needs two consecutive strays.) A
//!   candidate that is not confirmed is counted as dropped ([`SeqTracker::discarded`]).
//!   A new stream is on probation the same way: its first packet is a candidate until the
//!   second one follows it.
//! - A restart can land just *behind* the highest number, in numbers already received: a
//!   duplicate that is not a retransmission and whose timestamp is foreign to the stream's
//!   timeline (the caller tells) is a candidate too, confirmed the same way. Duplicates from the
//!   stream's own timeline (a datagram duplicated by the network, a retransmission answered
//!   twice) never are.
//!
//! Numbers are extended to 64 bits (`ext as u16` is the wire number); a restart continues the
//! extended space above everything seen so far, so that stores indexed by extended numbers and
//! the consumers' anchors stay ordered. The numbers a restart skips are counted in
//! [`SeqTracker::skipped`], not as loss.
//!
//! Why 3000 and 1500 (mediasoup's values; RFC 3550 suggests 3000 and 100): video at a few
//! Mbit/s sends 300–500 packets/s, so 3000 ahead is 6–10 s of consecutive loss, more than any
//! outage after which the same sequence space would still go on; 1500 behind covers the
//! retransmission history (1024 packets) and a NACK round trip at those rates. A random restart
//! lands in the jump range with probability (65536 − 4500) / 65536 ≈ 93 %, and otherwise on
//! numbers that are the stream's own recent past (duplicates, handled above) or future
//! (indistinguishable from loss, and harmless: the stream just moves on).

/// A jump at least this far ahead of the highest number is a possible restart, not loss.
pub(crate) const MAX_DROPOUT: u64 = 3000;
/// A packet at most this far behind the highest number is late (reordered / retransmitted).
pub(crate) const MAX_MISORDER: u64 = 1500;
/// Received numbers remembered behind the highest, for duplicate detection (≥ MAX_MISORDER).
const WINDOW: u64 = 2048;
const WORDS: usize = (WINDOW / 64) as usize;

/// Why a packet became a candidate instead of being accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CandidateKind {
    /// The first packet of a new stream (probation).
    Probation,
    /// Too far ahead or behind: a jump.
    Jump,
    /// A duplicate with a foreign timestamp: a restart may have landed behind.
    Duplicate,
}

/// What [`SeqTracker::check`] made of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeqVerdict {
    /// The new highest, `gap` numbers after the previous highest were skipped.
    Ahead { ext: u64, gap: u64 },
    /// Behind the highest, not received before: a reordered or retransmitted packet.
    Late { ext: u64 },
    /// Received before (a retransmission answered twice, a duplicated datagram).
    Duplicate,
    /// Not accepted, remembered as the candidate start of a new sequence space.
    Candidate(CandidateKind),
    /// Confirms the candidate: the candidate is `ext − 1`, this packet `ext`. `restart`: the
    /// stream left its previous sequence space (false when it confirms a new stream).
    Confirmed { ext: u64, restart: bool },
    /// Late, and the candidate right before it was one of the stream's own late packets (just
    /// beyond the misorder window or the stream's start, as this one is just inside): both are
    /// accepted, the candidate as `ext − 1`.
    LateWithCandidate { ext: u64 },
    /// A retransmission ahead of the stream or out of its range: never accepted, never a
    /// candidate (nobody retransmits what was not sent before).
    Invalid,
}

/// RFC 3550 A.1 state of one stream of `BITS`-bit wrapping numbers (16 for RTP sequence
/// numbers, 31 for SRTCP indices).
#[derive(Clone, Debug)]
pub(crate) struct SeqTracker<const BITS: u32 = 16> {
    /// The highest accepted extended number; `None` until the stream is confirmed.
    max: Option<u64>,
    /// The first extended number of the current sequence space: nothing before it was ever
    /// part of the stream, so a number behind it is a jump, not a late packet.
    first: u64,
    /// Wire number of the candidate packet (not accepted yet), and why it is one.
    candidate: Option<(u64, CandidateKind)>,
    discarded: u64,
    /// Bit `e % WINDOW`: extended number `e` (within WINDOW behind `max`) was received.
    seen: [u64; WORDS],
    skipped: u64,
    restarts: u64,
}

impl<const BITS: u32> Default for SeqTracker<BITS> {
    fn default() -> Self {
        Self {
            max: None,
            first: 0,
            candidate: None,
            discarded: 0,
            seen: [0; WORDS],
            skipped: 0,
            restarts: 0,
        }
    }
}

impl<const BITS: u32> SeqTracker<BITS> {
    const MODULUS: u64 = 1 << BITS;
    const MASK: u64 = Self::MODULUS - 1;

    /// The highest accepted extended number.
    pub(crate) fn max(&self) -> Option<u64> {
        self.max
    }

    /// Extended numbers skipped by restarts (never expected).
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Candidates (probation, jumps) that no packet confirmed: dropped for their number.
    pub(crate) fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Restarts confirmed so far.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts
    }

    fn prev(seq: u64) -> u64 {
        seq.wrapping_sub(1) & Self::MASK
    }

    /// (distance ahead of the highest, distance behind it), mod 2^BITS.
    fn deltas(seq: u64, max: u64) -> (u64, u64) {
        let ahead = seq.wrapping_sub(max) & Self::MASK;
        (ahead, Self::MODULUS.wrapping_sub(ahead) & Self::MASK)
    }

    /// Whether `seq` was received before (within the window): what replay protection refuses.
    pub(crate) fn is_duplicate(&self, seq: u64) -> bool {
        let Some(max) = self.max else {
            return self.candidate.is_some_and(|(c, _)| c == seq & Self::MASK);
        };
        let (ahead, behind) = Self::deltas(seq & Self::MASK, max);
        ahead == 0 || (behind < ahead && behind < WINDOW && self.is_seen(max - behind))
    }

    /// Whether `seq` is the number right after the candidate (it confirms it).
    pub(crate) fn confirms_candidate(&self, seq: u64) -> bool {
        self.candidate
            .is_some_and(|(c, _)| c == Self::prev(seq & Self::MASK))
    }

    /// Whether `seq` is a jump from the highest number (before the stream is confirmed,
    /// nothing is) that does not confirm the candidate.
    pub(crate) fn is_unconfirmed_jump(&self, seq: u64) -> bool {
        let seq = seq & Self::MASK;
        if self.confirms_candidate(seq) {
            return false;
        }
        let Some(max) = self.max else {
            return false;
        };
        let (ahead, behind) = Self::deltas(seq, max);
        ahead >= MAX_DROPOUT && (behind > MAX_MISORDER || max - behind < self.first)
    }

    /// Remembers `seq` as the candidate without accepting it (for callers that cannot pass a
    /// candidate on, such as SRTCP: the packet is dropped, the next one may confirm it).
    pub(crate) fn hold(&mut self, seq: u64) {
        self.candidate = Some((seq & Self::MASK, CandidateKind::Jump));
    }

    /// Classifies packet `seq`; `retransmission` when it came unwrapped from an RTX packet;
    /// `foreign` tells whether its timestamp is far from the stream's timeline (asked of
    /// duplicates only).
    pub(crate) fn check(
        &mut self,
        seq: u64,
        retransmission: bool,
        foreign: impl FnOnce() -> bool,
    ) -> SeqVerdict {
        let seq = seq & Self::MASK;
        // A candidate lives for one packet: this one confirms it or it is gone (retransmissions
        // come on their own stream and leave it alone).
        let candidate = if retransmission {
            None
        } else {
            self.candidate.take()
        };
        let confirms = match candidate {
            Some((c, _)) if c == Self::prev(seq) => true,
            Some((_, kind)) => {
                if kind != CandidateKind::Duplicate {
                    self.discarded += 1;
                }
                false
            }
            None => false,
        };
        let Some(max) = self.max else {
            if retransmission {
                return SeqVerdict::Invalid;
            }
            if confirms {
                // Start one period in, so that late packets from before the first do not
                // underflow.
                let ext = Self::MODULUS + Self::prev(seq) + 1;
                self.start(ext);
                return SeqVerdict::Confirmed {
                    ext,
                    restart: false,
                };
            }
            self.candidate = Some((seq, CandidateKind::Probation));
            return SeqVerdict::Candidate(CandidateKind::Probation);
        };
        let (ahead, behind) = Self::deltas(seq, max);
        if ahead != 0 && ahead < MAX_DROPOUT {
            if retransmission {
                return SeqVerdict::Invalid;
            }
            let ext = max + ahead;
            self.advance(max, ext);
            return SeqVerdict::Ahead {
                ext,
                gap: ahead - 1,
            };
        }
        if ahead != 0 && (behind > MAX_MISORDER || max - behind < self.first) {
            if retransmission {
                return SeqVerdict::Invalid;
            }
            return self.candidate_or_restart(seq, max, confirms, CandidateKind::Jump);
        }
        let ext = max - behind;
        if !self.is_seen(ext) {
            self.mark(ext);
            if confirms && ext > self.first && !self.is_seen(ext - 1) {
                self.mark(ext - 1);
                return SeqVerdict::LateWithCandidate { ext };
            }
            if confirms {
                self.discarded += 1;
            }
            return SeqVerdict::Late { ext };
        }
        if retransmission || !foreign() {
            return SeqVerdict::Duplicate;
        }
        self.candidate_or_restart(seq, max, confirms, CandidateKind::Duplicate)
    }

    fn candidate_or_restart(
        &mut self,
        seq: u64,
        max: u64,
        confirms: bool,
        kind: CandidateKind,
    ) -> SeqVerdict {
        if !confirms {
            self.candidate = Some((seq, kind));
            return SeqVerdict::Candidate(kind);
        }
        // Two consecutive packets in another sequence space: the sender restarted. Continue
        // the extended space above everything seen (the candidate first).
        let mut first = (max & !Self::MASK) | Self::prev(seq);
        if first <= max {
            first += Self::MODULUS;
        }
        self.skipped += first - max - 1;
        self.restarts += 1;
        self.start(first + 1);
        SeqVerdict::Confirmed {
            ext: first + 1,
            restart: true,
        }
    }

    /// A new sequence space whose first two packets are `ext − 1` and `ext`.
    fn start(&mut self, ext: u64) {
        self.seen = [0; WORDS];
        self.max = Some(ext);
        self.first = ext - 1;
        self.candidate = None;
        self.mark(ext - 1);
        self.mark(ext);
    }

    fn advance(&mut self, from: u64, to: u64) {
        if to - from >= WINDOW {
            self.seen = [0; WORDS];
        } else {
            for e in from + 1..to {
                self.clear(e);
            }
        }
        self.max = Some(to);
        self.mark(to);
    }

    fn is_seen(&self, ext: u64) -> bool {
        let i = ext % WINDOW;
        self.seen[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn mark(&mut self, ext: u64) {
        let i = ext % WINDOW;
        self.seen[(i / 64) as usize] |= 1 << (i % 64);
    }

    fn clear(&mut self, ext: u64) {
        let i = ext % WINDOW;
        self.seen[(i / 64) as usize] &= !(1 << (i % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RTP sequence numbers, as callers pass them.
    #[derive(Default)]
    struct Tracker(SeqTracker);

    impl std::ops::Deref for Tracker {
        type Target = SeqTracker;
        fn deref(&self) -> &SeqTracker {
            &self.0
        }
    }

    impl Tracker {
        fn check(&mut self, seq: u16, retransmission: bool, foreign: bool) -> SeqVerdict {
            self.0.check(u64::from(seq), retransmission, || foreign)
        }
    }

    fn started(first: u16) -> (Tracker, u64) {
        let mut t = Tracker::default();
        assert_eq!(
            t.check(first, false, false),
            SeqVerdict::Candidate(CandidateKind::Probation)
        );
        let SeqVerdict::Confirmed {
            ext,
            restart: false,
        } = t.check(first.wrapping_add(1), false, false)
        else {
            panic!("the second packet confirms a new stream");
        };
        assert_eq!(ext as u16, first.wrapping_add(1));
        (t, ext)
    }

    #[test]
    fn probation_needs_two_packets_in_sequence() {
        let mut t = Tracker::default();
        assert_eq!(
            t.check(100, false, false),
            SeqVerdict::Candidate(CandidateKind::Probation)
        );
        assert_eq!(
            t.check(500, false, false),
            SeqVerdict::Candidate(CandidateKind::Probation),
            "not in sequence: a new candidate"
        );
        assert_eq!(t.check(9, true, false), SeqVerdict::Invalid);
        assert!(matches!(
            t.check(501, false, false),
            SeqVerdict::Confirmed { restart: false, .. }
        ));
        assert_eq!(t.max().map(|m| m as u16), Some(501));
    }

    #[test]
    fn in_order_loss_and_wrap() {
        let (mut t, ext) = started(65533);
        assert_eq!(
            t.check(65535, false, false),
            SeqVerdict::Ahead {
                ext: ext + 1,
                gap: 0
            }
        );
        assert_eq!(
            t.check(3, false, false),
            SeqVerdict::Ahead {
                ext: ext + 5,
                gap: 3
            }
        );
        assert_eq!(t.check(1, false, false), SeqVerdict::Late { ext: ext + 3 });
        assert_eq!(t.check(1, false, false), SeqVerdict::Duplicate);
        assert_eq!(t.check(1, true, true), SeqVerdict::Duplicate);
        assert_eq!(
            t.check(1, false, true),
            SeqVerdict::Candidate(CandidateKind::Duplicate)
        );
        assert_eq!(t.check(0, true, false), SeqVerdict::Late { ext: ext + 2 });
    }

    #[test]
    fn a_single_jump_does_not_move_the_stream() {
        for jump in [
            3000u16,
            32767,
            0u16.wrapping_sub(3000),
            0u16.wrapping_sub(1501),
        ] {
            let (mut t, ext) = started(1000);
            assert_eq!(
                t.check(1001u16.wrapping_add(jump), false, false),
                SeqVerdict::Candidate(CandidateKind::Jump),
                "jump {jump}"
            );
            assert_eq!(
                t.check(1002, false, false),
                SeqVerdict::Ahead {
                    ext: ext + 1,
                    gap: 0
                }
            );
            assert_eq!(t.max(), Some(ext + 1));
        }
    }

    #[test]
    fn the_edges_of_the_windows() {
        let (mut t, ext) = started(10_000);
        assert_eq!(
            t.check(10_001 + 2999, false, false),
            SeqVerdict::Ahead {
                ext: ext + 2999,
                gap: 2998
            }
        );
        let top = ext + 2999;
        assert!(matches!(
            t.check(13_000 - 1500, false, false),
            SeqVerdict::Late { .. }
        ));
        assert_eq!(
            t.check(13_000 - 1501, false, false),
            SeqVerdict::Candidate(CandidateKind::Jump)
        );
        assert_eq!(
            t.check(13_000 + 3000, false, false),
            SeqVerdict::Candidate(CandidateKind::Jump)
        );
        assert_eq!(t.max(), Some(top));
    }

    #[test]
    fn two_consecutive_jumped_packets_restart_the_stream() {
        let (mut t, ext) = started(1000);
        assert_eq!(
            t.check(40_000, false, false),
            SeqVerdict::Candidate(CandidateKind::Jump)
        );
        let SeqVerdict::Confirmed {
            ext: e,
            restart: true,
        } = t.check(40_001, false, false)
        else {
            panic!("restart");
        };
        assert_eq!(e as u16, 40_001);
        assert!(e > ext + 1, "the extended space goes on upwards");
        assert_eq!(t.skipped(), e - 1 - ext - 1);
        assert_eq!(t.restarts(), 1);
        assert_eq!(
            t.check(40_002, false, false),
            SeqVerdict::Ahead { ext: e + 1, gap: 0 }
        );
        // The old space is now a jump of its own.
        assert_eq!(
            t.check(1002, false, false),
            SeqVerdict::Candidate(CandidateKind::Jump)
        );
    }

    #[test]
    fn a_restart_that_lands_behind_resyncs_on_two_duplicates() {
        let (mut t, ext) = started(5000);
        for s in 5002..5100u16 {
            t.check(s, false, false);
        }
        let max = t.max().unwrap();
        assert_eq!(max, ext + 98);
        // Duplicates of the stream's own timeline are only duplicates.
        assert_eq!(t.check(5050, false, false), SeqVerdict::Duplicate);
        assert_eq!(t.check(5051, false, false), SeqVerdict::Duplicate);
        assert_eq!(
            t.check(5050, false, true),
            SeqVerdict::Candidate(CandidateKind::Duplicate)
        );
        let SeqVerdict::Confirmed {
            ext: e,
            restart: true,
        } = t.check(5051, false, true)
        else {
            panic!("restart");
        };
        assert_eq!(e as u16, 5051);
        assert!(e > max);
        assert_eq!(
            t.check(5052, false, false),
            SeqVerdict::Ahead { ext: e + 1, gap: 0 }
        );
    }

    #[test]
    fn retransmissions_never_move_the_stream() {
        let (mut t, _) = started(100);
        assert_eq!(t.check(102, true, false), SeqVerdict::Invalid, "ahead");
        assert_eq!(t.check(30_000, true, false), SeqVerdict::Invalid, "jump");
        assert_eq!(t.check(30_001, true, false), SeqVerdict::Invalid);
        assert_eq!(t.max().map(|m| m as u16), Some(101));
        assert_eq!(t.check(100, true, false), SeqVerdict::Duplicate);
    }

    #[test]
    fn a_candidate_must_be_confirmed_by_the_very_next_packet() {
        let (mut t, ext) = started(1000);
        assert_eq!(
            t.check(9000, false, false),
            SeqVerdict::Candidate(CandidateKind::Jump)
        );
        assert!(matches!(
            t.check(1002, false, false),
            SeqVerdict::Ahead { .. }
        ));
        // Too late: 9001 is a new candidate, not a confirmation.
        assert_eq!(
            t.check(9001, false, false),
            SeqVerdict::Candidate(CandidateKind::Jump)
        );
        // A retransmission in between leaves the candidate alone.
        assert!(matches!(t.check(1000, true, false), SeqVerdict::Duplicate));
        assert!(matches!(
            t.check(9002, false, false),
            SeqVerdict::Confirmed { restart: true, .. }
        ));
        assert_eq!(t.discarded(), 1, "9000 was dropped");
        assert!(t.max().unwrap() > ext + 1);
    }

    #[test]
    fn srtcp_indices_wrap_at_31_bits() {
        let mut t = SeqTracker::<31>::default();
        let top = (1u64 << 31) - 1;
        assert_eq!(
            t.check(top, false, || false),
            SeqVerdict::Candidate(CandidateKind::Probation)
        );
        let SeqVerdict::Confirmed { ext, .. } = t.check(0, false, || false) else {
            panic!("wraps");
        };
        assert_eq!(
            t.check(1, false, || false),
            SeqVerdict::Ahead {
                ext: ext + 1,
                gap: 0
            }
        );
        assert!(t.is_duplicate(0) && t.is_duplicate(top) && !t.is_duplicate(2));
        assert!(t.is_unconfirmed_jump(5000) && !t.is_unconfirmed_jump(2999));
        t.hold(5000);
        assert!(t.confirms_candidate(5001));
    }

    #[test]
    fn a_candidate_just_beyond_the_late_window_is_released_by_its_successor() {
        let (mut t, ext) = started(1000);
        // A stray 1501 ahead of the next real packet moves the highest number...
        assert!(matches!(
            t.check(1002 + 1501, false, false),
            SeqVerdict::Ahead { .. }
        ));
        // ...so the next real packet is a jump, and the one after it is late: both accepted.
        assert_eq!(
            t.check(1002, false, false),
            SeqVerdict::Candidate(CandidateKind::Jump)
        );
        assert_eq!(
            t.check(1003, false, false),
            SeqVerdict::LateWithCandidate { ext: ext + 2 }
        );
        assert_eq!(t.discarded(), 0);
        assert_eq!(t.check(1003, false, false), SeqVerdict::Duplicate);
    }
}
