//! Transport-wide congestion control feedback for what a transport receives
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01): the arrival time of every RTP packet
//! that carries the transport-wide sequence number, reported to its sender about every 100 ms.
//! A browser publisher that negotiated transport-cc estimates its available bandwidth (and so
//! its video bitrate) from nothing else: without this feedback it stays at its start bitrate.
//!
//! The wire format comes from `rtc-rtcp` ([`TransportLayerCc`]); the choice of chunks and the
//! delta arithmetic are ours: arrival times are counted in 250 µs ticks from one anchor, so
//! deltas never accumulate rounding.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rtc_rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk,
    SymbolSizeTypeTcc, SymbolTypeTcc, TransportLayerCc,
};

use crate::proto::seq::{SeqTracker, SeqVerdict};

/// How often feedback is sent while packets arrive (libwebrtc and mediasoup: 100 ms).
pub(crate) const FEEDBACK_INTERVAL: Duration = Duration::from_millis(100);
/// Packet statuses in one feedback packet at most; a hole this long between reports is not
/// reported as lost (the report restarts after it).
const MAX_STATUSES: u64 = 1000;
/// Bytes of one feedback packet at most (mediasoup: 1200 for all of RTCP): statuses stop being
/// added once the header, chunks and deltas reach this.
const MAX_BYTES: usize = 1100;
/// Arrivals kept unreported at most (a sender flooding one interval cannot grow memory).
const MAX_PENDING: usize = 8192;
/// Receive deltas are in 250 µs units; the reference time in 64 ms units (256 deltas).
const TICK_US: i64 = 250;
const TICKS_PER_REFERENCE: i64 = 256;
/// How long reported arrivals are kept for a late packet's report (libwebrtc: 500 ms).
const BACK_WINDOW: Duration = Duration::from_millis(500);
/// A run-length chunk's run is 13 bits.
const MAX_RUN: usize = 0x1fff;

/// The transport-wide feedback state of one transport.
#[derive(Debug, Default)]
pub struct TwccFeedback {
    /// RFC 3550 A.1 on the transport-wide numbers: one stray number cannot move the report.
    seq: SeqTracker,
    /// Arrival and handling time of the packet [`SeqTracker`] holds as a candidate.
    held_at: Option<(Instant, Instant)>,
    /// Extended transport-wide sequence → arrival, not reported yet.
    pending: BTreeMap<u64, Instant>,
    /// Arrivals reported in the last [`BACK_WINDOW`]: reported again, with the packets after
    /// them, when a packet reported lost before them arrives late.
    reported: BTreeMap<u64, Instant>,
    /// The first sequence number not reported yet (holes before it were reported lost).
    next: Option<u64>,
    /// Zero of the tick clock (the first arrival).
    anchor: Option<Instant>,
    /// SSRC of the latest packet, named as the media source (receivers ignore it).
    media_ssrc: u32,
    fb_count: u8,
    due: Option<Instant>,
}

impl TwccFeedback {
    /// Packet `seq` (from the transport-wide-cc extension) of stream `media_ssrc` arrived, and
    /// is handled, at `now`.
    pub fn on_packet(&mut self, seq: u16, media_ssrc: u32, now: Instant) {
        self.on_packet_arrived(seq, media_ssrc, now, now);
    }

    /// Packet `seq` of stream `media_ssrc` arrived at `arrival` (the kernel's receive time: what
    /// the feedback reports) and is handled at `now` (≥ `arrival`: when feedback falls due).
    pub fn on_packet_arrived(&mut self, seq: u16, media_ssrc: u32, arrival: Instant, now: Instant) {
        let seq = match self.seq.check(u64::from(seq), false, || false) {
            SeqVerdict::Ahead { ext, .. } | SeqVerdict::Late { ext } => ext,
            SeqVerdict::Candidate(_) => {
                self.held_at = Some((arrival, now));
                return;
            }
            SeqVerdict::Confirmed { ext, .. } | SeqVerdict::LateWithCandidate { ext } => {
                // The held packet arrived too (a new space starts above everything seen: the
                // report restarts at its first packet; or it was a late one after all).
                if let Some((arrival, handled)) = self.held_at.take() {
                    self.record(ext - 1, media_ssrc, arrival, handled);
                }
                ext
            }
            SeqVerdict::Duplicate | SeqVerdict::Invalid => return,
        };
        if let Some(n) = self.next
            && seq < n
        {
            // Reported lost (or a duplicate). Late, but still within the recent reports: the
            // next report starts again at it (as libwebrtc's receiver does), so the sender
            // learns that it arrived.
            let recent = self
                .reported
                .first_key_value()
                .is_some_and(|(&k, _)| k <= seq);
            if !recent || self.reported.contains_key(&seq) {
                return;
            }
            let again = self.reported.split_off(&seq);
            self.pending.extend(again);
            self.next = Some(seq);
        }
        self.record(seq, media_ssrc, arrival, now);
    }

    fn record(&mut self, seq: u64, media_ssrc: u32, arrival: Instant, now: Instant) {
        self.anchor.get_or_insert(arrival);
        self.pending.entry(seq).or_insert(arrival);
        if self.pending.len() > MAX_PENDING {
            self.pending.pop_first();
        }
        self.media_ssrc = media_ssrc;
        self.due.get_or_insert(now + FEEDBACK_INTERVAL);
    }

    /// When feedback is due next, if anything arrived since the last.
    pub fn timeout(&self) -> Option<Instant> {
        self.due
    }

    /// The feedback packets due at `now` (none before [`TwccFeedback::timeout`]).
    pub fn poll_feedback(&mut self, now: Instant, sender_ssrc: u32) -> Vec<TransportLayerCc> {
        if self.due.is_none_or(|d| now < d) {
            return Vec::new();
        }
        self.due = None;
        while self
            .reported
            .first_key_value()
            .is_some_and(|(_, &at)| now.saturating_duration_since(at) > BACK_WINDOW)
            || self.reported.len() > MAX_PENDING
        {
            self.reported.pop_first();
        }
        let mut out = Vec::new();
        while let Some(fb) = self.next_packet(sender_ssrc) {
            out.push(fb);
        }
        out
    }

    fn ticks(&self, t: Instant) -> i64 {
        let anchor = self.anchor.unwrap_or(t);
        (t.saturating_duration_since(anchor).as_micros() as i64) / TICK_US
    }

    /// One feedback packet from the oldest unreported sequence number, or None when nothing
    /// is pending.
    fn next_packet(&mut self, sender_ssrc: u32) -> Option<TransportLayerCc> {
        let (&first, &first_at) = self.pending.first_key_value()?;
        // Holes since the last report are reported lost, unless they fill a whole report.
        let base = match self.next {
            Some(n) if first - n < MAX_STATUSES => n,
            _ => first,
        };
        let reference = self.ticks(first_at) / TICKS_PER_REFERENCE;
        let mut prev = reference * TICKS_PER_REFERENCE;
        let mut symbols = Vec::new();
        let mut deltas = Vec::new();
        let mut seq = base;
        // Header, fixed fields, chunks (at most one per 7 statuses) and deltas so far.
        let mut bytes = 20;
        while seq < base + MAX_STATUSES && bytes < MAX_BYTES {
            let Some((&s, &at)) = self.pending.first_key_value() else {
                break;
            };
            if s != seq {
                // Not (yet) arrived: lost unless a later one arrives.
                symbols.push(SymbolTypeTcc::PacketNotReceived);
                bytes += usize::from(symbols.len() % 7 == 1) * 2;
                seq += 1;
                continue;
            }
            let ticks = self.ticks(at);
            let delta = ticks - prev;
            let symbol = if (0..=i64::from(u8::MAX)).contains(&delta) {
                SymbolTypeTcc::PacketReceivedSmallDelta
            } else if (i64::from(i16::MIN)..=i64::from(i16::MAX)).contains(&delta) {
                SymbolTypeTcc::PacketReceivedLargeDelta
            } else {
                break; // more than 8 s from the previous one: the next packet starts over
            };
            self.pending.pop_first();
            self.reported.insert(s, at);
            symbols.push(symbol);
            bytes += usize::from(symbols.len() % 7 == 1) * 2
                + if symbol == SymbolTypeTcc::PacketReceivedSmallDelta {
                    1
                } else {
                    2
                };
            deltas.push(RecvDelta {
                type_tcc_packet: symbol,
                delta: delta * TICK_US,
            });
            prev = ticks;
            seq += 1;
        }
        // Never end on holes: they are reported once something after them arrives.
        while symbols.last() == Some(&SymbolTypeTcc::PacketNotReceived) {
            symbols.pop();
            seq -= 1;
        }
        if symbols.is_empty() {
            // Cannot happen (the first pending packet is within reach of `base`); never loop.
            self.next = Some(first);
            return self.next_packet(sender_ssrc);
        }
        self.next = Some(seq);
        let fb = TransportLayerCc {
            sender_ssrc,
            media_ssrc: self.media_ssrc,
            base_sequence_number: base as u16,
            packet_status_count: symbols.len() as u16,
            reference_time: (reference as u32) & 0x00ff_ffff,
            fb_pkt_count: self.fb_count,
            packet_chunks: chunks(&symbols),
            recv_deltas: deltas,
        };
        self.fb_count = self.fb_count.wrapping_add(1);
        Some(fb)
    }
}

/// How long an arrival waits for the transport to learn the extension's id (a publisher's
/// first `produce()` after its media started).
const EARLY_AGE: Duration = Duration::from_secs(1);
/// Arrivals kept at most while waiting.
const EARLY_MAX: usize = 512;
/// Two-byte header extension elements kept per packet (the transport-wide sequence number is
/// one; few other extensions are two bytes long).
const EARLY_EXTS: usize = 4;

/// Arrivals of RTP packets on a transport that has no producer yet, so no transport-wide-cc
/// extension id to read their sequence numbers with: a browser can send before its first
/// `produce()` reached the worker (a video-first publisher's first probe clusters; mediasoup
/// loses those, and the sender's probing with them). Each packet's two-byte extension elements
/// are kept for [`EARLY_AGE`] and reported once a producer names the id.
#[derive(Debug, Default)]
pub(crate) struct EarlyArrivals {
    items: VecDeque<Early>,
}

#[derive(Debug, Clone, Copy)]
struct Early {
    arrival: Instant,
    now: Instant,
    ssrc: u32,
    exts: [(u8, u16); EARLY_EXTS],
    len: u8,
}

impl EarlyArrivals {
    /// Keeps the two-byte extension elements of a packet of `ssrc` that arrived at `arrival`
    /// (handled at `now`); nothing when it has none.
    pub(crate) fn push<'a>(
        &mut self,
        ssrc: u32,
        arrival: Instant,
        now: Instant,
        extensions: impl Iterator<Item = (u8, &'a [u8])>,
    ) {
        let mut e = Early {
            arrival,
            now,
            ssrc,
            exts: [(0, 0); EARLY_EXTS],
            len: 0,
        };
        for (id, v) in extensions {
            if let &[hi, lo] = v
                && usize::from(e.len) < EARLY_EXTS
            {
                e.exts[usize::from(e.len)] = (id, u16::from_be_bytes([hi, lo]));
                e.len += 1;
            }
        }
        if e.len == 0 {
            return;
        }
        while self.items.front().is_some_and(|f| {
            self.items.len() >= EARLY_MAX || now.saturating_duration_since(f.arrival) > EARLY_AGE
        }) {
            self.items.pop_front();
        }
        self.items.push_back(e);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
    }

    /// Reports what was kept (and is not older than [`EARLY_AGE`] at `now`) to `feedback`,
    /// reading the sequence numbers from extension `id`, and forgets it.
    pub(crate) fn replay(&mut self, id: u8, feedback: &mut TwccFeedback, now: Instant) {
        for e in self.items.drain(..) {
            if now.saturating_duration_since(e.arrival) > EARLY_AGE {
                continue;
            }
            let found = e.exts[..usize::from(e.len)].iter().find(|x| x.0 == id);
            if let Some(&(_, seq)) = found {
                feedback.on_packet_arrived(seq, e.ssrc, e.arrival, e.now);
            }
        }
    }
}

/// Packet status chunks for `symbols`: a run-length chunk for 7 or more equal statuses in a row,
/// else a two-bit status vector of the next 7 (padded with "not received" past the count).
fn chunks(symbols: &[SymbolTypeTcc]) -> Vec<PacketStatusChunk> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < symbols.len() {
        let run = symbols[i..]
            .iter()
            .take(MAX_RUN)
            .take_while(|&&s| s == symbols[i])
            .count();
        if run >= 7 {
            out.push(PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: symbols[i],
                run_length: run as u16,
            }));
            i += run;
        } else {
            let mut list: Vec<SymbolTypeTcc> = symbols[i..].iter().take(7).copied().collect();
            i += list.len();
            list.resize(7, SymbolTypeTcc::PacketNotReceived);
            out.push(PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                symbol_size: SymbolSizeTypeTcc::TwoBit,
                symbol_list: list,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use rtc_shared::marshal::{Marshal, Unmarshal};

    use super::*;

    /// (sequence, arrival µs after t0) as a receiver decodes them from the wire.
    fn decode(fbs: &[TransportLayerCc]) -> Vec<(u16, Option<i64>)> {
        let mut out = Vec::new();
        for fb in fbs {
            let wire = fb.marshal().unwrap();
            let fb = TransportLayerCc::unmarshal(&mut &wire[..]).unwrap();
            let mut statuses = Vec::new();
            for c in &fb.packet_chunks {
                match c {
                    PacketStatusChunk::RunLengthChunk(r) => {
                        statuses.extend(std::iter::repeat_n(
                            r.packet_status_symbol,
                            r.run_length as usize,
                        ));
                    }
                    PacketStatusChunk::StatusVectorChunk(v) => {
                        statuses.extend(v.symbol_list.iter().copied());
                    }
                }
            }
            statuses.truncate(fb.packet_status_count as usize);
            let mut at = i64::from(fb.reference_time) * 64_000;
            let mut deltas = fb.recv_deltas.iter();
            for (i, s) in statuses.iter().enumerate() {
                let seq = fb.base_sequence_number.wrapping_add(i as u16);
                if *s == SymbolTypeTcc::PacketNotReceived {
                    out.push((seq, None));
                } else {
                    at += deltas.next().unwrap().delta;
                    out.push((seq, Some(at)));
                }
            }
        }
        out
    }

    #[test]
    fn reports_arrivals_and_holes_across_the_sequence_wrap() {
        let t0 = crate::test_epoch();
        let mut f = TwccFeedback::default();
        let mut want = Vec::new();
        // 65530 .. 65535, 0 .. 30 with 3 and 10..=19 lost; 1 ms apart, one 70 ms pause.
        let mut at_us = 0;
        for n in 0..42u32 {
            let seq = 65530u16.wrapping_add(n as u16);
            at_us += if n == 20 { 70_000 } else { 1_000 };
            if seq == 3 || (10..=19).contains(&seq) {
                want.push((seq, None));
                continue;
            }
            f.on_packet(seq, 7, t0 + Duration::from_micros(at_us as u64));
            want.push((seq, Some(at_us)));
        }
        let now = t0 + Duration::from_millis(200);
        assert!(f.timeout().unwrap() <= now);
        let fbs = f.poll_feedback(now, 1);
        assert_eq!(fbs.len(), 1);
        // Times relative to the first arrival, which is the zero of the tick clock.
        let first = want.iter().find_map(|w| w.1).unwrap();
        let got: Vec<_> = decode(&fbs)
            .into_iter()
            .map(|(s, a)| (s, a.map(|a| a + first)))
            .collect();
        assert_eq!(got, want);
        assert_eq!(f.timeout(), None);
        assert!(f.poll_feedback(now, 1).is_empty());

        // Next report continues where this one ended.
        f.on_packet(36, 7, now);
        let fbs = f.poll_feedback(now + FEEDBACK_INTERVAL, 1);
        assert_eq!(fbs[0].base_sequence_number, 36);
        assert_eq!(fbs[0].packet_status_count, 1);
        assert_eq!(fbs[0].fb_pkt_count, 1);
        // A packet reported lost arrives late: the next report starts again at it, with what
        // followed it as reported before (duplicates of reported ones are ignored).
        let late = now + FEEDBACK_INTERVAL + Duration::from_millis(5);
        f.on_packet(15, 7, late);
        f.on_packet(21, 7, late);
        f.on_packet(37, 7, late);
        let fbs = f.poll_feedback(late + FEEDBACK_INTERVAL, 1);
        let got = decode(&fbs);
        let seqs: Vec<u16> = got.iter().map(|g| g.0).collect();
        assert_eq!(seqs, (15..=37).collect::<Vec<u16>>());
        let received: Vec<u16> = got.iter().filter(|g| g.1.is_some()).map(|g| g.0).collect();
        let mut want: Vec<u16> = vec![15];
        want.extend(20..=37);
        assert_eq!(received, want);
        // Much later (past the back window), late packets are ignored again.
        let later = late + Duration::from_secs(2);
        assert!(f.poll_feedback(later, 1).is_empty());
        f.on_packet(38, 7, later);
        assert_eq!(f.poll_feedback(later + FEEDBACK_INTERVAL, 1).len(), 1);
        f.on_packet(16, 7, later);
        assert_eq!(f.timeout(), None);
    }

    #[test]
    fn long_reports_split_and_big_gaps_restart() {
        let t0 = crate::test_epoch();
        let mut f = TwccFeedback::default();
        for n in 0..2500u16 {
            f.on_packet(n, 7, t0 + Duration::from_micros(u64::from(n) * 100));
        }
        // One stray number far ahead is ignored.
        // A jump is a restart only when the next number follows it (RFC 3550 A.1).
        f.on_packet(9000, 7, t0 + Duration::from_millis(300));
        f.on_packet(40_000, 7, t0 + Duration::from_millis(300));
        f.on_packet(40_001, 7, t0 + Duration::from_millis(301));
        let fbs = f.poll_feedback(t0 + Duration::from_secs(1), 1);
        let bases: Vec<u16> = fbs.iter().map(|f| f.base_sequence_number).collect();
        assert_eq!((bases[0], bases.last()), (0, Some(&40_000)), "{bases:?}");
        assert!(bases.len() >= 4, "{bases:?}");
        let got = decode(&fbs);
        let seqs: Vec<u16> = got.iter().map(|g| g.0).collect();
        let want: Vec<u16> = (0..2500).chain([40_000, 40_001]).collect();
        assert_eq!(seqs, want);
        assert!(got.iter().all(|g| g.1.is_some()));
        for fb in &fbs {
            assert!(fb.marshal().unwrap().len() <= MAX_BYTES + 4);
        }
    }

    #[test]
    fn a_hole_of_a_whole_report_restarts_and_reports_stay_small() {
        let t0 = crate::test_epoch();
        let mut f = TwccFeedback::default();
        // The first number is on probation until the second follows it.
        f.on_packet(0, 7, t0);
        assert_eq!(f.timeout(), None);
        f.on_packet(1, 7, t0);
        assert_eq!(f.poll_feedback(t0 + FEEDBACK_INTERVAL, 1).len(), 1);
        // Exactly MAX_STATUSES lost since: not reported as lost, no empty report, no hang.
        f.on_packet(1002, 7, t0 + FEEDBACK_INTERVAL);
        let fbs = f.poll_feedback(t0 + FEEDBACK_INTERVAL * 2, 1);
        assert_eq!(fbs.len(), 1);
        assert_eq!(
            (fbs[0].base_sequence_number, fbs[0].packet_status_count),
            (1002, 1)
        );
        // 999 lost: reported lost, then the arrival.
        f.on_packet(2002, 7, t0 + FEEDBACK_INTERVAL * 2);
        let fbs = f.poll_feedback(t0 + FEEDBACK_INTERVAL * 3, 1);
        assert_eq!(
            (fbs[0].base_sequence_number, fbs[0].packet_status_count),
            (1003, 1000)
        );
        // Reordered arrivals (every delta large) split into packets under the byte limit.
        let base = t0 + Duration::from_secs(10);
        for n in 0..1000u16 {
            f.on_packet(5000 + n, 7, base - Duration::from_millis(u64::from(n)));
        }
        let fbs = f.poll_feedback(base + FEEDBACK_INTERVAL, 1);
        assert!(fbs.len() >= 2, "{}", fbs.len());
        for fb in &fbs {
            assert!(fb.marshal().unwrap().len() <= MAX_BYTES + 4);
        }
        assert_eq!(decode(&fbs).len(), 1000);
    }

    #[test]
    fn reports_arrival_times_not_when_a_busy_worker_read_the_packets() {
        let t0 = crate::test_epoch();
        let mut f = TwccFeedback::default();
        // 40 packets 2.5 ms apart on the wire, read in two batches 30 ms and 80 ms late.
        for n in 0..40u16 {
            let arrival = t0 + Duration::from_micros(u64::from(n) * 2_500);
            let read = t0 + Duration::from_millis(if n < 20 { 80 } else { 130 });
            f.on_packet_arrived(n, 7, arrival, read);
        }
        // Due one interval after the first was handled (not after it arrived).
        assert_eq!(
            f.timeout(),
            Some(t0 + Duration::from_millis(80) + FEEDBACK_INTERVAL)
        );
        let got = decode(&f.poll_feedback(t0 + Duration::from_millis(200), 1));
        let times: Vec<i64> = got.iter().map(|g| g.1.unwrap()).collect();
        let want: Vec<i64> = (0..40).map(|n| n * 2_500).collect();
        assert_eq!(times, want, "the spacing on the wire, not two bursts");
    }

    #[test]
    fn arrivals_before_the_extension_id_is_known_are_reported_once_it_is() {
        let t0 = crate::test_epoch();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut early = EarlyArrivals::default();
        let mut f = TwccFeedback::default();
        // A probe cluster before the first produce(): seq 1..=5 in extension 3 (beside a
        // two-byte element of another extension), 2 ms apart; one packet without extensions.
        for n in 1..=5u16 {
            let seq = n.to_be_bytes();
            let exts: [(u8, &[u8]); 2] = [(7, &[0xab, 0xcd]), (3, &seq)];
            early.push(
                9,
                ms(u64::from(n) * 2),
                ms(u64::from(n) * 2),
                exts.into_iter(),
            );
        }
        early.push(9, ms(11), ms(11), std::iter::empty());
        // The producer came: its id is 3. What arrived is reported with its own times.
        early.replay(3, &mut f, ms(30));
        assert!(early.is_empty());
        f.on_packet(6, 9, ms(30));
        let got = decode(&f.poll_feedback(ms(200), 1));
        let at: Vec<(u16, Option<i64>)> =
            got.iter().map(|&(s, a)| (s, a.map(|a| a / 1000))).collect();
        assert_eq!(
            at,
            [
                (1, Some(0)),
                (2, Some(2)),
                (3, Some(4)),
                (4, Some(6)),
                (5, Some(8)),
                (6, Some(28))
            ]
        );
        // Kept one second at most, and at most EARLY_MAX of them.
        for n in 0..(EARLY_MAX as u64 + 10) {
            let seq = (n as u16).to_be_bytes();
            early.push(9, ms(1000 + n), ms(1000 + n), [(3u8, &seq[..])].into_iter());
        }
        assert_eq!(early.items.len(), EARLY_MAX);
        let mut g = TwccFeedback::default();
        early.replay(3, &mut g, ms(3000));
        assert_eq!(g.timeout(), None, "all too old");
    }

    #[test]
    fn chunks_use_runs_and_vectors() {
        use SymbolTypeTcc::*;
        let mut s = vec![PacketReceivedSmallDelta; 20];
        s.extend([
            PacketNotReceived,
            PacketReceivedLargeDelta,
            PacketReceivedSmallDelta,
        ]);
        let c = chunks(&s);
        assert_eq!(c.len(), 2);
        assert!(matches!(&c[0], PacketStatusChunk::RunLengthChunk(r) if r.run_length == 20));
        assert!(
            matches!(&c[1], PacketStatusChunk::StatusVectorChunk(v) if v.symbol_list.len() == 7)
        );
    }
}
