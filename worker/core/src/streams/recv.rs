//! Per-stream RTP state: what a producer receives ([`RecvStream`]: loss, jitter, NACK generation,
//! receiver reports, score) and what a consumer sends ([`SendStream`]: sequence/timestamp
//! rewriting, retransmission buffer, sender reports, RR processing, score).
//!
//! `rtc-interceptor` has NACK/report/TWCC interceptors, but they own packets in a chain of boxed
//! trait objects per stream and keep their own clocks via `Instant::now()` in places; the SFU core
//! needs per-consumer buffers it already owns and simulated time everywhere, so these are ours.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::proto::rtcp::{ReportBlock, ntp_middle};
use crate::proto::rtp::Codec;
use crate::proto::seq::{CandidateKind, SeqTracker, SeqVerdict};

/// Gaps larger than this are not NACKed (a keyframe is requested instead).
const MAX_NACK_GAP: u64 = 1000;
/// A lost packet is NACKed at most this many times.
const MAX_NACK_RETRIES: u8 = 10;
/// Minimum time between two NACKs of the same packet when the RTT is unknown or smaller.
const MIN_NACK_INTERVAL: Duration = Duration::from_millis(20);

/// Converts an `Instant` to 64-bit NTP time through a fixed anchor given by the shell.
#[derive(Clone, Copy, Debug)]
pub struct NtpClock {
    pub anchor: Instant,
    /// NTP time (32.32 fixed point) at `anchor`.
    pub anchor_ntp: u64,
}

impl NtpClock {
    pub fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.anchor);
        let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
        self.anchor_ntp
            .wrapping_add(d.as_secs() << 32)
            .wrapping_add(frac)
    }
}

/// Bytes per second over a sliding 1 s window, in 100 ms buckets.
#[derive(Clone, Debug, Default)]
pub struct RateMeter {
    buckets: [u64; 10],
    current: usize,
    bucket_start: Option<Instant>,
}

impl RateMeter {
    pub fn add(&mut self, bytes: usize, now: Instant) {
        self.roll(now);
        self.buckets[self.current] += bytes as u64;
    }

    fn roll(&mut self, now: Instant) {
        let start = *self.bucket_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start).as_millis() as u64 / 100;
        if elapsed == 0 {
            return;
        }
        for _ in 0..elapsed.min(10) {
            self.current = (self.current + 1) % 10;
            self.buckets[self.current] = 0;
        }
        self.bucket_start = Some(start + Duration::from_millis(100 * elapsed));
    }

    /// Bits per second.
    pub fn bitrate(&mut self, now: Instant) -> u32 {
        self.roll(now);
        (self.buckets.iter().sum::<u64>() * 8).min(u32::MAX as u64) as u32
    }
}

/// 0–10 from a loss fraction (0–255): 10 when clean, −1 per ~2 % lost.
pub(crate) fn score_from_loss(fraction_lost: u8) -> u8 {
    let pct = fraction_lost as u32 * 100 / 256;
    10u32.saturating_sub(pct.div_ceil(2)) as u8
}

#[derive(Clone, Copy, Debug)]
struct Missing {
    sent_at: Option<Instant>,
    retries: u8,
}

/// A sender report or a duplicate's timestamp further than this from the stream's timeline does
/// not belong to it (a stray packet, a restarted sender): it needs confirmation.
const TIMELINE_TOLERANCE_S: f64 = 5.0;
/// A duplicate's timestamp further than this from the timeline marks a possible restart.
const FOREIGN_TIMESTAMP_S: f64 = 60.0;

/// Seconds between timestamp `ts` and the timeline `(timestamp, arrival)` of a stream at `now`
/// (0 without one).
fn timeline_distance(
    timeline: Option<(u32, Instant)>,
    clock_rate: u32,
    ts: u32,
    now: Instant,
) -> f64 {
    let Some((last, at)) = timeline else {
        return 0.0;
    };
    let ticks = now.saturating_duration_since(at).as_secs_f64() * f64::from(clock_rate);
    let expected = last.wrapping_add(ticks as u32);
    f64::from((ts.wrapping_sub(expected) as i32).unsigned_abs()) / f64::from(clock_rate)
}

/// A stream a producer receives (one encoding).
#[derive(Debug)]
pub struct RecvStream {
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
    pub rid: Option<String>,
    pub mime_type: String,
    pub codec: Codec,
    pub clock_rate: u32,
    pub nack_enabled: bool,
    seq: SeqTracker,
    /// Extended number of the first packet (of the stream, not of a restart).
    base_seq: Option<u64>,
    /// The candidate packet of [`SeqTracker`], kept to be forwarded if it is confirmed.
    held: Vec<u8>,
    pub packets: u64,
    pub bytes: u64,
    pub retransmitted: u64,
    /// Retransmissions of nothing sent (RTX ahead of the stream or out of its range).
    invalid_retransmissions: u64,
    pub duplicates: u64,
    expected_prior: u64,
    received_prior: u64,
    jitter: f64,
    last_transit: Option<f64>,
    /// NTP middle 32 bits and arrival of the last SR from the publisher.
    last_sr: Option<(u32, Instant)>,
    /// (ntp, rtp, arrival) of the last SR: the publisher's NTP/RTP mapping.
    pub sr_mapping: Option<(u64, u32, Instant)>,
    /// An SR inconsistent with the stream, waiting for a second one to confirm it.
    sr_candidate: Option<(u64, u32, Instant)>,
    /// (timestamp, arrival) of the newest packet.
    pub last_packet: Option<(u32, Instant)>,
    missing: BTreeMap<u64, Missing>,
    pub rtt: Option<Duration>,
    pub rate: RateMeter,
    pub score: u8,
    pub fraction_lost: u8,
    /// Packets expected in the interval of the last report block (0: the stream was idle).
    pub interval_expected: u64,
    pub nack_count: u64,
    pub nack_packet_count: u64,
    pub pli_count: u64,
    pub fir_count: u64,
    /// Packets recovered by retransmission (gap filled after being reported missing).
    pub recovered: u64,
}

/// What the producer does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvVerdict {
    /// New packet `ext`: forward it. `big_gap`: too many lost to NACK (ask a keyframe).
    Forward { ext: u64, big_gap: bool },
    /// Confirms the held packet: forward [`RecvStream::take_held`] as `ext − 1`, then this one
    /// as `ext`. `restart`: the sender restarted its sequence space (consumers re-anchor).
    ForwardHeld { ext: u64, restart: bool },
    /// Held as the possible start of a new sequence space (not forwarded, for now).
    Held,
    /// Already received: drop.
    Duplicate,
    /// Its sequence number does not belong to the stream: drop (counted).
    BadSequence,
}

impl RecvStream {
    pub fn new(
        ssrc: u32,
        rtx_ssrc: Option<u32>,
        rid: Option<String>,
        mime_type: String,
        clock_rate: u32,
        nack_enabled: bool,
    ) -> Self {
        Self {
            ssrc,
            rtx_ssrc,
            rid,
            codec: Codec::from_mime(&mime_type),
            mime_type,
            clock_rate: clock_rate.max(1),
            nack_enabled,
            seq: SeqTracker::default(),
            base_seq: None,
            held: Vec::new(),
            packets: 0,
            bytes: 0,
            retransmitted: 0,
            invalid_retransmissions: 0,
            duplicates: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter: 0.0,
            last_transit: None,
            last_sr: None,
            sr_mapping: None,
            sr_candidate: None,
            last_packet: None,
            missing: BTreeMap::new(),
            rtt: None,
            rate: RateMeter::default(),
            score: 10,
            fraction_lost: 0,
            interval_expected: 0,
            nack_count: 0,
            nack_packet_count: 0,
            pli_count: 0,
            fir_count: 0,
            recovered: 0,
        }
    }

    /// Accounts packet `pkt` (after RTX de-encapsulation; `retransmission` when it came from
    /// RTX) with sequence number `seq` and timestamp `ts`, and says what to do with it.
    pub fn on_packet(
        &mut self,
        pkt: &[u8],
        seq: u16,
        ts: u32,
        now: Instant,
        retransmission: bool,
    ) -> RecvVerdict {
        // Only a duplicate asks whether its timestamp is foreign: no float work per packet.
        let (timeline, clock_rate) = (self.last_packet, self.clock_rate);
        let foreign = || timeline_distance(timeline, clock_rate, ts, now) > FOREIGN_TIMESTAMP_S;
        match self.seq.check(u64::from(seq), retransmission, foreign) {
            SeqVerdict::Ahead { ext, gap } => {
                let big_gap = self.on_gap(ext, gap);
                self.accept(pkt.len(), ts, now, retransmission, true);
                RecvVerdict::Forward { ext, big_gap }
            }
            SeqVerdict::Late { ext } => {
                if self.missing.remove(&ext).is_some() {
                    self.recovered += 1;
                }
                self.accept(pkt.len(), ts, now, retransmission, false);
                RecvVerdict::Forward {
                    ext,
                    big_gap: false,
                }
            }
            SeqVerdict::LateWithCandidate { ext } => {
                for e in [ext - 1, ext] {
                    if self.missing.remove(&e).is_some() {
                        self.recovered += 1;
                    }
                }
                self.packets += 1;
                self.bytes += self.held.len() as u64;
                self.rate.add(self.held.len(), now);
                self.accept(pkt.len(), ts, now, false, false);
                RecvVerdict::ForwardHeld {
                    ext,
                    restart: false,
                }
            }
            SeqVerdict::Duplicate => {
                self.duplicates += 1;
                RecvVerdict::Duplicate
            }
            SeqVerdict::Candidate(kind) => {
                if kind == CandidateKind::Duplicate {
                    self.duplicates += 1;
                }
                self.held.clear();
                self.held.extend_from_slice(pkt);
                RecvVerdict::Held
            }
            SeqVerdict::Confirmed { ext, restart } => {
                if restart {
                    self.missing.clear();
                    self.last_transit = None;
                    self.last_packet = None;
                    self.sr_mapping = None;
                    self.sr_candidate = None;
                    tracing::debug!(target: "rtp", ssrc = self.ssrc, seq, "stream restarted: resync");
                } else {
                    self.base_seq = Some(ext - 1);
                }
                // The held packet: counted, not timed (it arrived earlier, its arrival is gone).
                self.packets += 1;
                self.bytes += self.held.len() as u64;
                self.rate.add(self.held.len(), now);
                self.accept(pkt.len(), ts, now, false, true);
                RecvVerdict::ForwardHeld { ext, restart }
            }
            SeqVerdict::Invalid => {
                self.invalid_retransmissions += 1;
                RecvVerdict::BadSequence
            }
        }
    }

    /// The packet held by the last [`RecvVerdict::Held`], after [`RecvVerdict::ForwardHeld`].
    /// Give the buffer back with [`Self::recycle_held`].
    pub fn take_held(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }

    pub fn recycle_held(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.held = buf;
    }

    /// Packets not forwarded for their sequence number: jumps and probation packets that no
    /// packet confirmed, retransmissions of nothing sent.
    pub fn bad_sequence(&self) -> u64 {
        self.seq.discarded() + self.invalid_retransmissions
    }

    /// Restarts confirmed (the sender's sequence space changed).
    pub fn resyncs(&self) -> u64 {
        self.seq.restarts()
    }

    /// NACK bookkeeping for a new highest packet after `gap` skipped numbers. True when the
    /// gap is too large to NACK.
    fn on_gap(&mut self, ext: u64, gap: u64) -> bool {
        if !self.nack_enabled || gap == 0 {
            return false;
        }
        if gap > MAX_NACK_GAP {
            self.missing.clear();
            return true;
        }
        for s in ext - gap..ext {
            self.missing.insert(
                s,
                Missing {
                    sent_at: None,
                    retries: 0,
                },
            );
        }
        // Bound memory when loss persists.
        while self.missing.len() as u64 > MAX_NACK_GAP {
            self.missing.pop_first();
        }
        false
    }

    fn accept(&mut self, len: usize, ts: u32, now: Instant, retransmission: bool, newest: bool) {
        self.packets += 1;
        self.bytes += len as u64;
        if retransmission {
            self.retransmitted += 1;
        }
        self.rate.add(len, now);
        if !retransmission {
            self.update_jitter(ts, now);
        }
        // The timeline follows sequence order, not timestamps: a late or stray timestamp
        // cannot move it.
        if newest {
            self.last_packet = Some((ts, now));
        }
    }

    fn update_jitter(&mut self, ts: u32, now: Instant) {
        // RFC 3550 A.8 with arrival in RTP units relative to the first packet's arrival.
        let Some((first_ts, first_at)) = self.last_packet.or(Some((ts, now))) else {
            return;
        };
        let arrival = now.saturating_duration_since(first_at).as_secs_f64()
            * self.clock_rate as f64
            + first_ts as f64;
        let transit = arrival - ts as f64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            if d < self.clock_rate as f64 * 10.0 {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last_transit = Some(transit);
    }

    /// A sender report. One that does not fit the stream (its RTP time far from the packets'
    /// timeline, or its NTP time not advancing with arrival since the last SR) is kept aside
    /// and only used if the next SR confirms it: one stray SR cannot move the mapping that
    /// consumers' SRs (lip sync) are built from. Returns whether the SR was taken.
    pub fn on_sender_report(&mut self, ntp: u64, rtp: u32, now: Instant) -> bool {
        let sr = (ntp, rtp, now);
        let fits = match self.sr_mapping {
            Some(prev) => self.sr_follows(prev, sr),
            None => {
                timeline_distance(self.last_packet, self.clock_rate, rtp, now)
                    <= TIMELINE_TOLERANCE_S
            }
        };
        if !fits {
            let confirmed = self.sr_candidate.is_some_and(|c| self.sr_follows(c, sr));
            if !confirmed {
                tracing::debug!(target: "rtcp", ssrc = self.ssrc, "sender report off the stream's timeline: held");
                self.sr_candidate = Some(sr);
                return false;
            }
        }
        self.sr_candidate = None;
        self.last_sr = Some((ntp_middle(ntp), now));
        self.sr_mapping = Some(sr);
        true
    }

    /// Whether SR `next` continues SR `prev`: NTP advanced as arrival did, RTP as NTP did.
    fn sr_follows(&self, prev: (u64, u32, Instant), next: (u64, u32, Instant)) -> bool {
        let ntp_s = next.0.wrapping_sub(prev.0) as i64 as f64 / 4_294_967_296.0;
        let arrival_s = next.2.saturating_duration_since(prev.2).as_secs_f64();
        let rtp_s = f64::from(next.1.wrapping_sub(prev.1) as i32) / f64::from(self.clock_rate);
        (ntp_s - arrival_s).abs() <= TIMELINE_TOLERANCE_S
            && (rtp_s - ntp_s).abs() <= TIMELINE_TOLERANCE_S
    }
    /// Sequence numbers to NACK now (16-bit), marking them sent.
    pub fn poll_nacks(&mut self, now: Instant) -> Vec<u16> {
        let interval = self.rtt.unwrap_or_default().max(MIN_NACK_INTERVAL);
        let mut out = Vec::new();
        self.missing.retain(|seq, m| {
            let due = m
                .sent_at
                .is_none_or(|t| now.saturating_duration_since(t) >= interval);
            if !due {
                return true;
            }
            if m.retries >= MAX_NACK_RETRIES {
                return false;
            }
            m.retries += 1;
            m.sent_at = Some(now);
            out.push(*seq as u16);
            true
        });
        if !out.is_empty() {
            self.nack_count += 1;
            self.nack_packet_count += out.len() as u64;
        }
        out
    }

    /// When [`Self::poll_nacks`] next has something to send.
    pub fn nack_timeout(&self) -> Option<Instant> {
        let interval = self.rtt.unwrap_or_default().max(MIN_NACK_INTERVAL);
        self.missing
            .values()
            .filter(|m| m.retries < MAX_NACK_RETRIES)
            .filter_map(|m| m.sent_at.map(|t| t + interval))
            .min()
    }

    pub fn has_unsent_nacks(&self) -> bool {
        self.missing.values().any(|m| m.sent_at.is_none())
    }

    pub fn missing_count(&self) -> usize {
        self.missing.len()
    }

    /// Cumulative packets lost (expected − received), RFC 3550 A.3.
    pub fn packets_lost(&self) -> u64 {
        let expected = self.expected();
        expected
            .saturating_sub(self.packets - self.retransmitted.min(self.packets))
            .min(expected)
    }

    fn expected(&self) -> u64 {
        match (self.base_seq, self.seq.max()) {
            (Some(b), Some(max)) => max - b + 1 - self.seq.skipped(),
            _ => 0,
        }
    }

    /// A report block for our RR, updating the interval loss and the score. `None` before the
    /// first packet.
    pub fn report_block(&mut self, now: Instant, ntp: &NtpClock) -> Option<ReportBlock> {
        self.base_seq?;
        let expected = self.expected();
        let received = self.packets;
        let expected_interval = expected - self.expected_prior;
        let received_interval = received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = received;
        self.interval_expected = expected_interval;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        self.fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        if expected_interval > 0 {
            self.score = score_from_loss(self.fraction_lost);
        }
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                (lsr, (d.as_secs_f64() * 65536.0) as u32)
            }
            None => (0, 0),
        };
        let _ = ntp;
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost: self.fraction_lost,
            total_lost: self.packets_lost().min(0x7f_ffff) as u32,
            // Cycles count from 0 on the wire (the extended space starts one period in).
            ext_highest_seq: self.seq.max().unwrap_or_default().saturating_sub(1 << 16) as u32,
            jitter: self.jitter as u32,
            lsr,
            dlsr,
        })
    }

    pub fn jitter(&self) -> u32 {
        self.jitter as u32
    }

    /// The publisher's RTP time when its NTP clock reads `sender_ntp`, from its last SR (the
    /// sender's own NTP/RTP relation, see `streams::sender_clock`); `None` before an SR.
    pub fn rtp_time_at_sender_ntp(&self, sender_ntp: u64) -> Option<u32> {
        let (ntp, rtp, _) = self.sr_mapping?;
        let elapsed = sender_ntp.wrapping_sub(ntp) as i64 as f64 / 4_294_967_296.0;
        Some(rtp.wrapping_add((elapsed * f64::from(self.clock_rate)).round() as i64 as u32))
    }

    /// The RTP time in `other`'s timeline (another encoding of the same sender) of the instant
    /// this stream stamps `ts`, by both streams' sender reports; `None` until both have one.
    pub fn same_instant_in(&self, ts: u32, other: &RecvStream) -> Option<u32> {
        let (ntp, rtp, _) = self.sr_mapping?;
        let ticks = i64::from(ts.wrapping_sub(rtp) as i32);
        let offset = (ticks << 32) / i64::from(self.clock_rate);
        other.rtp_time_at_sender_ntp(ntp.wrapping_add(offset as u64))
    }

    /// The publisher's RTP time at `now`, from its last SR or else its newest packet.
    pub fn rtp_time_at(&self, now: Instant) -> Option<u32> {
        let (rtp, at) = match (self.sr_mapping, self.last_packet) {
            (Some((_, rtp, at)), _) => (rtp, at),
            (None, Some((ts, at))) => (ts, at),
            (None, None) => return None,
        };
        let d = now.saturating_duration_since(at).as_secs_f64() * self.clock_rate as f64;
        Some(rtp.wrapping_add(d as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video() -> RecvStream {
        RecvStream::new(1, None, None, "video/VP8".into(), 90000, true)
    }

    #[test]
    fn recv_stream_nacks_gaps_and_counts_recovery() {
        let t0 = crate::test_epoch();
        let mut s = video();
        let p = [0u8; 100];
        assert_eq!(s.on_packet(&p, 10, 0, t0, false), RecvVerdict::Held);
        assert!(matches!(
            s.on_packet(&p, 11, 0, t0, false),
            RecvVerdict::ForwardHeld { restart: false, .. }
        ));
        assert_eq!(s.take_held().len(), 100);
        assert!(matches!(
            s.on_packet(&p, 14, 0, t0, false),
            RecvVerdict::Forward { big_gap: false, .. }
        ));
        assert_eq!(s.poll_nacks(t0), vec![12, 13]);
        assert!(s.poll_nacks(t0).is_empty(), "not again within the interval");
        let v = s.on_packet(&p, 12, 0, t0, true);
        assert!(matches!(v, RecvVerdict::Forward { .. }), "{v:?}");
        assert_eq!(s.poll_nacks(t0 + Duration::from_millis(25)), vec![13]);
        assert_eq!(s.on_packet(&p, 12, 0, t0, true), RecvVerdict::Duplicate);
        assert_eq!(s.recovered, 1);
        assert_eq!(s.packets, 4);
        // Lost on the publisher's link: 12 and 13 (12 came back by retransmission).
        assert_eq!(s.packets_lost(), 2);
    }

    /// Feeds `n` packets of 30 fps video from `seq`/`ts` at `t`, returning the verdicts.
    fn run(s: &mut RecvStream, seq: u16, ts: u32, t: Instant, n: u16) -> Vec<RecvVerdict> {
        (0..n)
            .map(|i| {
                let at = t + Duration::from_millis(33 * u64::from(i));
                s.on_packet(
                    &[1; 50],
                    seq.wrapping_add(i),
                    ts.wrapping_add(3000 * u32::from(i)),
                    at,
                    false,
                )
            })
            .collect()
    }

    #[test]
    fn a_stray_packet_is_dropped_and_counted_the_stream_goes_on() {
        let t0 = crate::test_epoch();
        for jump in [1001u16, 3000, 32767, 0u16.wrapping_sub(3000)] {
            let mut s = video();
            run(&mut s, 100, 0, t0, 10);
            let t1 = t0 + Duration::from_millis(330);
            let v = s.on_packet(&[9; 50], 110u16.wrapping_add(jump), 30_000, t1, false);
            if jump < 3000 {
                // Within the dropout window: loss, too large to NACK.
                assert_eq!(
                    v,
                    RecvVerdict::Forward {
                        ext: s.seq.max().unwrap(),
                        big_gap: true
                    }
                );
                continue;
            }
            assert_eq!(v, RecvVerdict::Held, "jump {jump}");
            let after = run(&mut s, 110, 30_000, t1, 10);
            assert!(
                after
                    .iter()
                    .all(|v| matches!(v, RecvVerdict::Forward { big_gap: false, .. })),
                "jump {jump}: {after:?}"
            );
            assert_eq!(s.bad_sequence(), 1);
            assert_eq!(s.resyncs(), 0);
            assert_eq!(s.packets_lost(), 0);
        }
    }

    #[test]
    fn a_restarted_sender_resyncs_on_its_second_packet() {
        let t0 = crate::test_epoch();
        let mut s = video();
        run(&mut s, 100, 0, t0, 10);
        s.on_sender_report(1 << 40, 27_000, t0 + Duration::from_millis(300));
        assert!(s.sr_mapping.is_some());
        // New sequence and timestamp spaces.
        let t1 = t0 + Duration::from_millis(400);
        let v = run(&mut s, 50_000, 123_456_789, t1, 3);
        assert_eq!(v[0], RecvVerdict::Held);
        let RecvVerdict::ForwardHeld { ext, restart: true } = v[1] else {
            panic!("{v:?}");
        };
        assert_eq!(ext as u16, 50_001);
        assert!(matches!(v[2], RecvVerdict::Forward { big_gap: false, .. }));
        assert_eq!(s.resyncs(), 1);
        assert_eq!(s.bad_sequence(), 0, "the held packet was forwarded");
        assert_eq!(s.packets, 13);
        assert_eq!(s.packets_lost(), 0, "a restart is not loss");
        assert!(
            s.sr_mapping.is_none(),
            "the old SR mapping is of the old timeline"
        );
        let (ts, _) = s.last_packet.unwrap();
        assert_eq!(ts, 123_456_789 + 6000);
    }

    #[test]
    fn a_restart_behind_the_stream_resyncs_on_two_foreign_duplicates() {
        let t0 = crate::test_epoch();
        let mut s = video();
        run(&mut s, 1000, 0, t0, 100);
        // Numbers already received, but timestamps from another timeline.
        let t1 = t0 + Duration::from_millis(3300);
        let v = run(&mut s, 1050, 2_000_000_000, t1, 3);
        assert_eq!(v[0], RecvVerdict::Held);
        assert!(
            matches!(v[1], RecvVerdict::ForwardHeld { restart: true, .. }),
            "{v:?}"
        );
        // The same numbers with the stream's own timestamps are duplicates.
        let mut s = video();
        run(&mut s, 1000, 0, t0, 100);
        let v = run(&mut s, 1050, 150_000, t0 + Duration::from_millis(1650), 3);
        assert_eq!(v, vec![RecvVerdict::Duplicate; 3]);
        assert_eq!(s.duplicates, 3);
    }

    #[test]
    fn reordered_packets_are_forwarded_once_without_nack() {
        let t0 = crate::test_epoch();
        let mut s = RecvStream::new(1, None, None, "audio/opus".into(), 48000, false);
        let p = [0u8; 10];
        s.on_packet(&p, 1, 0, t0, false);
        s.on_packet(&p, 2, 960, t0, false);
        for (seq, want) in [
            (4u16, true),
            (3, true),
            (3, false),
            (6, true),
            (5, true),
            (5, false),
        ] {
            let v = s.on_packet(&p, seq, 960 * u32::from(seq), t0, false);
            assert_eq!(
                matches!(v, RecvVerdict::Forward { .. }),
                want,
                "{seq}: {v:?}"
            );
        }
        assert_eq!(s.packets_lost(), 0);
    }

    #[test]
    fn retransmissions_ahead_of_the_stream_are_dropped() {
        let t0 = crate::test_epoch();
        let mut s = video();
        run(&mut s, 100, 0, t0, 5);
        assert_eq!(
            s.on_packet(&[0; 10], 110, 0, t0, true),
            RecvVerdict::BadSequence
        );
        assert_eq!(
            s.on_packet(&[0; 10], 40_000, 0, t0, true),
            RecvVerdict::BadSequence
        );
        assert!(matches!(
            s.on_packet(&[0; 10], 105, 15_000, t0, false),
            RecvVerdict::Forward { big_gap: false, .. }
        ));
        assert_eq!(s.bad_sequence(), 2);
    }

    #[test]
    fn a_stray_sender_report_needs_a_second_to_move_the_mapping() {
        let t0 = crate::test_epoch();
        let mut s = video();
        run(&mut s, 100, 0, t0, 31);
        let t1 = t0 + Duration::from_secs(1);
        let ntp = 1u64 << 40;
        s.on_sender_report(ntp, 90_000, t1);
        assert_eq!(s.sr_mapping, Some((ntp, 90_000, t1)));
        // RTP time an hour off: held.
        let t2 = t1 + Duration::from_secs(1);
        s.on_sender_report(ntp + (1 << 32), 90_000 + 3600 * 90_000, t2);
        assert_eq!(s.sr_mapping, Some((ntp, 90_000, t1)));
        // NTP time a day ahead: held.
        s.on_sender_report(ntp + (86_400 << 32), 180_000, t2);
        assert_eq!(s.sr_mapping, Some((ntp, 90_000, t1)));
        // The real next SR goes on.
        s.on_sender_report(ntp + (1 << 32), 180_000, t2);
        assert_eq!(s.sr_mapping, Some((ntp + (1 << 32), 180_000, t2)));
        // A sender that really moved: the second SR confirms the first.
        let t3 = t2 + Duration::from_secs(1);
        let far = 1_000_000_000u32;
        s.on_sender_report(ntp + (2 << 32), far, t3);
        assert_eq!(s.sr_mapping.unwrap().1, 180_000);
        let t4 = t3 + Duration::from_secs(1);
        s.on_sender_report(ntp + (3 << 32), far + 90_000, t4);
        assert_eq!(s.sr_mapping, Some((ntp + (3 << 32), far + 90_000, t4)));
    }
}
