//! What a subscriber's transport-wide feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01)
//! says of the packets we sent it: each reported status, matched with the [`SendHistory`], becomes
//! a [`PacketResult`] whose arrival is in our clock.
//!
//! The subscriber's clock is unknown and only differences between arrivals matter, so the first
//! packet reported received is taken to have arrived when it was sent; every later arrival is
//! placed relative to it by the (unwrapped, 24-bit) reference times and the receive deltas.
//! Every feedback stands alone (absolute reference time), so a lost feedback packet only loses
//! what it said. Feedback is peer input: inconsistencies are counted, never trusted, and the
//! work per feedback is bounded whatever the packet claims.

use std::time::{Duration, Instant};

use rtc_rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, SymbolTypeTcc, TransportLayerCc,
};

use super::PacketResult;
use super::history::{Reported, SendHistory};

/// Statuses read from one feedback at most (half the send history: more cannot all be matched
/// anyway). A status count can claim 65 535 in a few bytes of run-length chunks.
pub(crate) const MAX_STATUSES: usize = super::history::HISTORY_LEN / 2;
/// The reference time counts 64 ms, in 24 bits.
const REFERENCE_US: i64 = 64_000;
const REFERENCE_SPAN: i64 = 1 << 24;
/// What a receive delta can say on the wire: 16 signed bits of 250 µs.
const DELTA_RANGE_US: std::ops::RangeInclusive<i64> = -32_768 * 250..=32_767 * 250;

/// What the adapter did with the feedback it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FeedbackStats {
    /// Feedback packets read.
    pub feedbacks: u64,
    /// Ignored as a repeat of the previous one (same feedback count and base).
    pub duplicates: u64,
    /// Feedback packets that never arrived (gaps in the feedback count).
    pub missing: u64,
    /// Feedback that arrived after a newer one (read all the same: it may tell new arrivals).
    pub reordered: u64,
    /// Feedback that contradicts itself: fewer deltas or chunks than its statuses, reserved
    /// symbols, deltas or arrival times out of range.
    pub malformed: u64,
    /// Feedback claiming more than [`MAX_STATUSES`] statuses (the rest ignored).
    pub capped: u64,
    /// Statuses of packets not in the send history (never sent with that number, or too old).
    pub unknown: u64,
}

/// Turns transport-wide feedback from one subscriber into [`PacketResult`]s.
#[derive(Debug, Default)]
pub(crate) struct FeedbackAdapter {
    /// Feedback count and base sequence number of the newest feedback read.
    last: Option<(u8, u16)>,
    /// Highest reference time seen, unwrapped (64 ms units).
    reference: Option<i64>,
    /// The subscriber's time (µs in the unwrapped reference timeline) mapped to our `Instant`.
    anchor: Option<(i64, Instant)>,
    pub stats: FeedbackStats,
}

impl FeedbackAdapter {
    /// The results of feedback `cc`, in the order of its statuses, for the packets of `history`
    /// it reports on for the first time (a packet reported lost may later be reported received;
    /// one reported received is never reported again). Marks them reported in `history`.
    pub(crate) fn on_feedback(
        &mut self,
        cc: &TransportLayerCc,
        history: &mut SendHistory,
    ) -> Vec<PacketResult> {
        if self.last == Some((cc.fb_pkt_count, cc.base_sequence_number)) {
            self.stats.duplicates += 1;
            return Vec::new();
        }
        self.stats.feedbacks += 1;
        match self.last {
            Some((count, _)) => match cc.fb_pkt_count.wrapping_sub(count) as i8 {
                d if d > 0 => {
                    self.stats.missing += (d - 1) as u64;
                    self.last = Some((cc.fb_pkt_count, cc.base_sequence_number));
                }
                0 => self.last = Some((cc.fb_pkt_count, cc.base_sequence_number)),
                _ => self.stats.reordered += 1,
            },
            None => self.last = Some((cc.fb_pkt_count, cc.base_sequence_number)),
        }
        let claimed = usize::from(cc.packet_status_count);
        if claimed > MAX_STATUSES {
            self.stats.capped += 1;
        }
        let limit = claimed.min(MAX_STATUSES);
        let Some(base) = history.unwrap_sent(cc.base_sequence_number) else {
            self.stats.unknown += limit as u64;
            return Vec::new();
        };
        let mut walk = Walk {
            adapter: self,
            history,
            seq: base,
            remote_us: 0,
            deltas: cc.recv_deltas.iter(),
            bad: false,
            out: Vec::new(),
        };
        walk.remote_us = walk.adapter.unwrap_reference(cc.reference_time) * REFERENCE_US;
        let mut read = 0;
        for chunk in &cc.packet_chunks {
            if read >= limit || walk.bad {
                break;
            }
            match chunk {
                PacketStatusChunk::RunLengthChunk(r) => {
                    let n = usize::from(r.run_length).min(limit - read);
                    for _ in 0..n {
                        if !walk.status(r.packet_status_symbol) {
                            break;
                        }
                    }
                    read += n;
                }
                PacketStatusChunk::StatusVectorChunk(v) => {
                    for &s in v.symbol_list.iter().take(limit - read) {
                        read += 1;
                        if !walk.status(s) {
                            break;
                        }
                    }
                }
            }
        }
        // Fewer statuses in the chunks than the count claims.
        let bad = walk.bad || read < limit;
        let out = walk.out;
        if bad {
            self.stats.malformed += 1;
        }
        out
    }

    /// `r` (24 bits) unwrapped around the highest reference time seen (feedback can be
    /// reordered: the nearest in either direction).
    fn unwrap_reference(&mut self, r: u32) -> i64 {
        let r = i64::from(r) & (REFERENCE_SPAN - 1);
        let Some(high) = self.reference else {
            self.reference = Some(r);
            return r;
        };
        let mut d = (r - high).rem_euclid(REFERENCE_SPAN);
        if d >= REFERENCE_SPAN / 2 {
            d -= REFERENCE_SPAN;
        }
        let u = high + d;
        self.reference = Some(high.max(u));
        u
    }
}

/// The walk over one feedback's statuses.
struct Walk<'a, 'c> {
    adapter: &'a mut FeedbackAdapter,
    history: &'a mut SendHistory,
    /// Sequence number of the next status.
    seq: u64,
    /// Arrival of the last packet received, in the subscriber's time (µs).
    remote_us: i64,
    deltas: std::slice::Iter<'c, rtc_rtcp::transport_feedbacks::transport_layer_cc::RecvDelta>,
    bad: bool,
    out: Vec<PacketResult>,
}

impl Walk<'_, '_> {
    /// Reads the status of the next sequence number; false when the feedback cannot be read
    /// further.
    fn status(&mut self, symbol: SymbolTypeTcc) -> bool {
        let seq = self.seq;
        self.seq += 1;
        let received = match symbol {
            SymbolTypeTcc::PacketNotReceived => false,
            SymbolTypeTcc::PacketReceivedSmallDelta | SymbolTypeTcc::PacketReceivedLargeDelta => {
                true
            }
            // Reserved in a two-bit vector: no delta follows; the status tells nothing.
            SymbolTypeTcc::PacketReceivedWithoutDelta => {
                self.bad = true;
                return true;
            }
        };
        if received {
            let Some(d) = self
                .deltas
                .next()
                .filter(|d| DELTA_RANGE_US.contains(&d.delta))
            else {
                self.bad = true;
                return false;
            };
            self.remote_us += d.delta;
        }
        let Some(sent) = self.history.get(seq) else {
            self.adapter.stats.unknown += 1;
            return true;
        };
        let reported = self.history.reported(seq);
        let arrival = if received {
            if reported == Some(Reported::Received) {
                return true;
            }
            let (anchor_us, anchor_at) = *self
                .adapter
                .anchor
                .get_or_insert((self.remote_us, sent.sent_at));
            let since = self.remote_us - anchor_us;
            let at = if since >= 0 {
                anchor_at.checked_add(Duration::from_micros(since as u64))
            } else {
                anchor_at.checked_sub(Duration::from_micros(since.unsigned_abs()))
            };
            let Some(at) = at else {
                self.bad = true;
                return true;
            };
            self.history.set_reported(seq, Reported::Received);
            Some(at)
        } else {
            if reported != Some(Reported::Not) {
                return true;
            }
            self.history.set_reported(seq, Reported::Lost);
            None
        };
        self.out.push(PacketResult {
            seq,
            sent_at: sent.sent_at,
            size: sent.size,
            arrival,
            probe_cluster: sent.probe_cluster,
        });
        true
    }
}

#[cfg(test)]
mod tests;
