//! Per-stream RTP state: what a producer receives ([`RecvStream`]: loss, jitter, NACK generation,
//! receiver reports, score) and what a consumer sends ([`SendStream`]: sequence/timestamp
//! rewriting, retransmission buffer, sender reports, RR processing, score).
//!
//! `rtc-interceptor` has NACK/report/TWCC interceptors, but they own packets in a chain of boxed
//! trait objects per stream and keep their own clocks via `Instant::now()` in places; the SFU core
//! needs per-consumer buffers it already owns and simulated time everywhere, so these are ours.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::rtcp::{ReportBlock, ntp_middle};
use crate::rtp::Codec;
use crate::units::SeqExtender;

/// Gaps larger than this are not NACKed (a keyframe is requested instead).
const MAX_NACK_GAP: u64 = 1000;
/// A lost packet is NACKed at most this many times.
const MAX_NACK_RETRIES: u8 = 10;
/// Minimum time between two NACKs of the same packet when the RTT is unknown or smaller.
const MIN_NACK_INTERVAL: Duration = Duration::from_millis(20);
/// Retransmission history per stream, in packets (≈ 2 s of 500-packet/s video).
pub(crate) const RETRANSMIT_SLOTS: usize = 1024;

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
fn score_from_loss(fraction_lost: u8) -> u8 {
    let pct = fraction_lost as u32 * 100 / 256;
    10u32.saturating_sub(pct.div_ceil(2)) as u8
}

#[derive(Clone, Copy, Debug)]
struct Missing {
    sent_at: Option<Instant>,
    retries: u8,
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
    ext: SeqExtender,
    base_seq: Option<u64>,
    max_seq: u64,
    pub packets: u64,
    pub bytes: u64,
    pub retransmitted: u64,
    expected_prior: u64,
    received_prior: u64,
    jitter: f64,
    last_transit: Option<f64>,
    /// NTP middle 32 bits and arrival of the last SR from the publisher.
    last_sr: Option<(u32, Instant)>,
    /// (ntp, rtp, arrival) of the last SR: the publisher's NTP/RTP mapping.
    pub sr_mapping: Option<(u64, u32, Instant)>,
    /// (timestamp, arrival) of the newest packet.
    pub last_packet: Option<(u32, Instant)>,
    missing: BTreeMap<u64, Missing>,
    pub rtt: Option<Duration>,
    pub rate: RateMeter,
    pub score: u8,
    pub fraction_lost: u8,
    pub nack_count: u64,
    pub nack_packet_count: u64,
    pub pli_count: u64,
    pub fir_count: u64,
    /// Packets recovered by retransmission (gap filled after being reported missing).
    pub recovered: u64,
}

/// What the producer should do after a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvVerdict {
    /// New packet: forward it.
    Forward,
    /// Already seen (duplicate retransmission): drop.
    Duplicate,
    /// Older than what we keep track of: drop.
    TooOld,
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
            ext: SeqExtender::default(),
            base_seq: None,
            max_seq: 0,
            packets: 0,
            bytes: 0,
            retransmitted: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter: 0.0,
            last_transit: None,
            last_sr: None,
            sr_mapping: None,
            last_packet: None,
            missing: BTreeMap::new(),
            rtt: None,
            rate: RateMeter::default(),
            score: 10,
            fraction_lost: 0,
            nack_count: 0,
            nack_packet_count: 0,
            pli_count: 0,
            fir_count: 0,
            recovered: 0,
        }
    }

    /// Accounts one packet (after RTX de-encapsulation). Returns the verdict and the extended
    /// sequence number. `big_gap` is set when a gap too large to NACK was seen (ask a keyframe).
    pub fn on_packet(
        &mut self,
        seq: u16,
        ts: u32,
        len: usize,
        now: Instant,
        retransmission: bool,
    ) -> (RecvVerdict, u64, bool) {
        let ext = self.ext.extend(seq).0;
        let mut big_gap = false;
        match self.base_seq {
            None => {
                self.base_seq = Some(ext);
                self.max_seq = ext;
            }
            Some(_) if ext > self.max_seq => {
                let gap = ext - self.max_seq - 1;
                if self.nack_enabled && gap > 0 {
                    if gap > MAX_NACK_GAP {
                        self.missing.clear();
                        big_gap = true;
                    } else {
                        for s in self.max_seq + 1..ext {
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
                    }
                }
                self.max_seq = ext;
            }
            Some(_) => {
                if self.missing.remove(&ext).is_some() {
                    self.recovered += 1;
                } else if self.max_seq - ext < 2 * RETRANSMIT_SLOTS as u64 || retransmission {
                    return (RecvVerdict::Duplicate, ext, false);
                } else {
                    return (RecvVerdict::TooOld, ext, false);
                }
            }
        }
        self.packets += 1;
        self.bytes += len as u64;
        if retransmission {
            self.retransmitted += 1;
        }
        self.rate.add(len, now);
        if !retransmission {
            self.update_jitter(ts, now);
            if self
                .last_packet
                .is_none_or(|(last, _)| ts.wrapping_sub(last) < 0x8000_0000)
            {
                self.last_packet = Some((ts, now));
            }
        }
        (RecvVerdict::Forward, ext, big_gap)
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

    pub fn on_sender_report(&mut self, ntp: u64, rtp: u32, now: Instant) {
        self.last_sr = Some((ntp_middle(ntp), now));
        self.sr_mapping = Some((ntp, rtp, now));
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
        self.base_seq.map_or(0, |b| self.max_seq - b + 1)
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
            ext_highest_seq: self.max_seq as u32,
            jitter: self.jitter as u32,
            lsr,
            dlsr,
        })
    }

    pub fn jitter(&self) -> u32 {
        self.jitter as u32
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

/// One sent packet of a consumer stream: which input packet it was and when it was last resent.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    seq: u16,
    used: bool,
    in_ext_seq: u64,
    resent_at: Option<Instant>,
}

/// Last-N sent packets of a consumer stream, indexed by output sequence number: the input
/// packet each one was rewritten from (in the producer's [`PacketStore`]) and when it was last
/// resent. 24 bytes a slot.
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

    /// Output packet `seq` was rewritten from input packet `in_ext_seq`.
    pub fn record(&mut self, seq: u16, in_ext_seq: u64) {
        self.slots[seq as usize % RETRANSMIT_SLOTS] = Slot {
            seq,
            used: true,
            in_ext_seq,
            resent_at: None,
        };
    }

    /// The input sequence number of sent packet `seq`, unless it was already resent within
    /// `min_interval` (or is too old).
    pub fn get_for_resend(
        &mut self,
        seq: u16,
        now: Instant,
        min_interval: Duration,
    ) -> Option<u64> {
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
        Some(s.in_ext_seq)
    }

    pub fn clear(&mut self) {
        for s in &mut self.slots {
            s.used = false;
        }
    }
}

/// A stream a consumer sends.
#[derive(Debug)]
pub struct SendStream {
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
    pub pt_rtx: Option<u8>,
    pub mime_type: String,
    pub clock_rate: u32,
    /// Output seq = input extended seq + offset (mod 2^16); re-anchored after pause/resume.
    seq_offset: u16,
    /// Input extended seq at which the current anchor starts; older packets are dropped.
    anchor_in: Option<u64>,
    pub last_out_seq: u16,
    ts_offset: u32,
    pub last_out_ts: Option<(u32, Instant)>,
    rtx_seq: u16,
    pub packets: u64,
    pub bytes: u64,
    pub rtx_packets: u64,
    pub rate: RateMeter,
    pub nack_count: u64,
    pub nack_packet_count: u64,
    pub pli_count: u64,
    pub fir_count: u64,
    pub rtt: Option<Duration>,
    pub fraction_lost: u8,
    pub packets_lost: u32,
    pub jitter: u32,
    pub score: u8,
    /// (ntp middle, sent at) of our SRs, to compute RTT from RRs.
    pub buffer: Option<RetransmitBuffer>,
}

impl SendStream {
    pub fn new(
        ssrc: u32,
        rtx: Option<(u32, u8)>,
        mime_type: String,
        clock_rate: u32,
        nack_enabled: bool,
        initial_seq: u16,
        ts_offset: u32,
    ) -> Self {
        Self {
            ssrc,
            rtx_ssrc: rtx.map(|r| r.0),
            pt_rtx: rtx.map(|r| r.1),
            mime_type,
            clock_rate: clock_rate.max(1),
            seq_offset: 0,
            anchor_in: None,
            last_out_seq: initial_seq.wrapping_sub(1),
            ts_offset,
            last_out_ts: None,
            rtx_seq: initial_seq ^ 0x5555,
            packets: 0,
            bytes: 0,
            rtx_packets: 0,
            rate: RateMeter::default(),
            nack_count: 0,
            nack_packet_count: 0,
            pli_count: 0,
            fir_count: 0,
            rtt: None,
            fraction_lost: 0,
            packets_lost: 0,
            jitter: 0,
            score: 10,
            buffer: nack_enabled.then(RetransmitBuffer::new),
        }
    }

    /// Forget the anchor: the next forwarded packet continues right after the last sent one.
    pub fn resync(&mut self) {
        self.anchor_in = None;
    }

    pub fn needs_sync(&self) -> bool {
        self.anchor_in.is_none()
    }

    /// The output sequence number for input `ext_seq`, or `None` when the packet predates the
    /// current anchor (sent before a pause, or older than a resync).
    pub fn map_seq(&mut self, ext_seq: u64) -> Option<u16> {
        match self.anchor_in {
            None => {
                self.anchor_in = Some(ext_seq);
                self.seq_offset = self
                    .last_out_seq
                    .wrapping_add(1)
                    .wrapping_sub(ext_seq as u16);
            }
            Some(a) if ext_seq < a => return None,
            Some(_) => {}
        }
        let out = (ext_seq as u16).wrapping_add(self.seq_offset);
        if out.wrapping_sub(self.last_out_seq) < 0x8000 {
            self.last_out_seq = out;
        }
        Some(out)
    }

    pub fn map_ts(&self, ts: u32) -> u32 {
        ts.wrapping_add(self.ts_offset)
    }

    pub fn on_sent(&mut self, out_ts: u32, len: usize, now: Instant) {
        self.packets += 1;
        self.bytes += len as u64;
        self.rate.add(len, now);
        if self
            .last_out_ts
            .is_none_or(|(t, _)| out_ts.wrapping_sub(t) < 0x8000_0000)
        {
            self.last_out_ts = Some((out_ts, now));
        }
    }

    pub fn next_rtx_seq(&mut self) -> u16 {
        self.rtx_seq = self.rtx_seq.wrapping_add(1);
        self.rtx_seq
    }

    /// Our SR: NTP now and the RTP time that corresponds to it in our (rewritten) timeline.
    /// `producer_rtp_now` is the producer's RTP time now (from its SR or last packet).
    pub fn sender_report(
        &self,
        now: Instant,
        ntp: &NtpClock,
        producer_rtp_now: Option<u32>,
    ) -> Option<crate::rtcp::Rtcp> {
        let rtp = match producer_rtp_now {
            Some(r) => self.map_ts(r),
            None => {
                let (ts, at) = self.last_out_ts?;
                let d = now.saturating_duration_since(at).as_secs_f64() * self.clock_rate as f64;
                ts.wrapping_add(d as u32)
            }
        };
        self.last_out_ts?;
        Some(crate::rtcp::Rtcp::SenderReport {
            ssrc: self.ssrc,
            ntp: ntp.ntp(now),
            rtp,
            packets: self.packets as u32,
            octets: self.bytes as u32,
            reports: vec![],
        })
    }

    /// Processes the RR block about this stream: RTT (from LSR/DLSR), loss, score.
    pub fn on_report_block(&mut self, b: &ReportBlock, now: Instant, ntp: &NtpClock) {
        self.fraction_lost = b.fraction_lost;
        self.packets_lost = b.total_lost;
        self.jitter = b.jitter;
        self.score = score_from_loss(b.fraction_lost);
        if b.lsr != 0 {
            let now_mid = ntp_middle(ntp.ntp(now));
            let rtt = now_mid.wrapping_sub(b.lsr).wrapping_sub(b.dlsr);
            if rtt < 0x8000_0000 {
                self.rtt = Some(Duration::from_secs_f64(rtt as f64 / 65536.0));
            }
        }
    }
}

/// Keyframe requests toward a publisher, throttled by `key_frame_request_delay`: a request
/// inside the delay window is remembered and sent when the window ends (at most one), unless a
/// keyframe arrives first.
#[derive(Debug, Default)]
pub struct KeyFrameRequester {
    pub delay: Duration,
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyFrameRequester {
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            last_sent: None,
            pending: false,
        }
    }

    /// A keyframe is wanted now. Returns true when a request must be sent now.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(t) if now.saturating_duration_since(t) < self.delay => {
                self.pending = true;
                false
            }
            _ => {
                self.last_sent = Some(now);
                self.pending = false;
                true
            }
        }
    }

    pub fn on_keyframe(&mut self) {
        self.pending = false;
    }

    pub fn timeout(&self) -> Option<Instant> {
        if self.pending {
            self.last_sent.map(|t| t + self.delay)
        } else {
            None
        }
    }

    /// Whether a deferred request is due now.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.pending && self.timeout().is_some_and(|t| now >= t) {
            self.pending = false;
            self.last_sent = Some(now);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_stream_nacks_gaps_and_counts_recovery() {
        let t0 = Instant::now();
        let mut s = RecvStream::new(1, None, None, "video/VP8".into(), 90000, true);
        for seq in [10u16, 11, 14] {
            s.on_packet(seq, 0, 100, t0, false);
        }
        assert_eq!(s.poll_nacks(t0), vec![12, 13]);
        assert!(s.poll_nacks(t0).is_empty(), "not again within the interval");
        let (v, _, _) = s.on_packet(12, 0, 100, t0, true);
        assert_eq!(v, RecvVerdict::Forward);
        assert_eq!(s.poll_nacks(t0 + Duration::from_millis(25)), vec![13]);
        let (v, _, _) = s.on_packet(12, 0, 100, t0, true);
        assert_eq!(v, RecvVerdict::Duplicate);
        assert_eq!(s.recovered, 1);
    }

    #[test]
    fn send_stream_is_continuous_across_resync() {
        let mut s = SendStream::new(5, None, "audio/opus".into(), 48000, false, 100, 0);
        assert_eq!(s.map_seq(1000), Some(100));
        assert_eq!(s.map_seq(1001), Some(101));
        s.resync();
        assert_eq!(s.map_seq(2000), Some(102));
        assert_eq!(s.map_seq(1999), None);
        assert_eq!(s.map_seq(2001), Some(103));
    }

    #[test]
    fn retransmission_goes_through_the_shared_store() {
        let t0 = Instant::now();
        let mut store = PacketStore::new();
        let mut a = RetransmitBuffer::new();
        let mut b = RetransmitBuffer::new();
        for ext in 70_000u64..70_000 + 2 * RETRANSMIT_SLOTS as u64 {
            store.put(ext, &ext.to_be_bytes());
            a.record(ext as u16, ext);
            b.record((ext as u16).wrapping_add(500), ext);
        }
        let last = 70_000 + 2 * RETRANSMIT_SLOTS as u64 - 1;
        // Both consumers find the one stored copy under their own output numbers.
        let ext = a.get_for_resend(last as u16, t0, Duration::from_millis(10));
        assert_eq!(ext, Some(last));
        assert_eq!(store.get(last), Some(&last.to_be_bytes()[..]));
        let ext = b.get_for_resend((last as u16).wrapping_add(500), t0, Duration::ZERO);
        assert_eq!(ext, Some(last));
        // Not twice within the interval; again after it.
        assert_eq!(
            a.get_for_resend(last as u16, t0, Duration::from_millis(10)),
            None
        );
        let later = t0 + Duration::from_millis(10);
        assert_eq!(
            a.get_for_resend(last as u16, later, Duration::from_millis(10)),
            Some(last)
        );
        // Older than the history: the slot now holds a newer packet.
        let old = last - RETRANSMIT_SLOTS as u64;
        assert_eq!(a.get_for_resend(old as u16, t0, Duration::ZERO), None);
        assert_eq!(store.get(old), None);
        a.clear();
        assert_eq!(a.get_for_resend(last as u16, later, Duration::ZERO), None);
    }

    #[test]
    fn keyframe_requests_are_throttled() {
        let t0 = Instant::now();
        let mut k = KeyFrameRequester::new(Duration::from_millis(1000));
        assert!(k.request(t0));
        assert!(!k.request(t0 + Duration::from_millis(10)));
        assert!(!k.request(t0 + Duration::from_millis(20)));
        assert_eq!(k.timeout(), Some(t0 + Duration::from_millis(1000)));
        assert!(!k.handle_timeout(t0 + Duration::from_millis(999)));
        assert!(k.handle_timeout(t0 + Duration::from_millis(1000)));
        assert_eq!(k.timeout(), None);
    }

    #[test]
    fn rtt_from_lsr_dlsr() {
        let t0 = Instant::now();
        let clock = NtpClock {
            anchor: t0,
            anchor_ntp: 1 << 40,
        };
        let mut s = SendStream::new(5, None, "video/VP8".into(), 90000, false, 0, 0);
        let sent = t0 + Duration::from_secs(1);
        let lsr = ntp_middle(clock.ntp(sent));
        // Remote held it 100 ms; the RR arrives 180 ms after the SR was sent → RTT 80 ms.
        let b = ReportBlock {
            ssrc: 5,
            lsr,
            dlsr: 6554,
            ..Default::default()
        };
        s.on_report_block(&b, sent + Duration::from_millis(180), &clock);
        let rtt = s.rtt.unwrap().as_millis();
        assert!((79..=81).contains(&rtt), "{rtt}");
    }
}
