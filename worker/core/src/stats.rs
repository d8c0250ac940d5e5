//! Worker-wide counters ([`CoreStats`]) and what `worker.get_media_counters` answers from them.
//!
//! Counting is plain integer adds beside the per-stream and per-transport counters that are
//! updated anyway: no lock, no allocation, no lookup. The histograms ([`Buckets`]) are fed when
//! RTCP reports are built or received (once a second per stream), never per packet.

use ferrosfu_fbs::{
    DataCounters, FeedbackCounters, Histogram, MediaCounters, MediaKind, RtpCounters,
};

use crate::WorkerCore;

/// Upper bounds of the loss histograms: the fraction lost of a report block (0–1).
pub const LOSS_BOUNDS: [f64; 8] = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];
/// Upper bounds of the jitter histograms, seconds.
pub const JITTER_BOUNDS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Upper bounds of the round-trip time histogram, seconds.
pub const RTT_BOUNDS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A stream's round-trip time as the stats report it: whole milliseconds, 0 when not yet
/// measured. A measured time is rounded up, so a sub-millisecond loopback RTT reads 1, not
/// "unmeasured".
pub(crate) fn rtt_ms(rtt: Option<std::time::Duration>) -> u32 {
    rtt.map_or(0, |r| {
        u32::try_from(r.as_micros().div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1)
    })
}

/// Observations in the fixed buckets `bounds` (Prometheus' `le`: a value goes to the first
/// bucket whose bound it does not exceed), and above the last bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Buckets<const N: usize> {
    bounds: &'static [f64; N],
    counts: [u64; N],
    above: u64,
    sum: f64,
}

impl<const N: usize> Buckets<N> {
    pub const fn new(bounds: &'static [f64; N]) -> Self {
        Self {
            bounds,
            counts: [0; N],
            above: 0,
            sum: 0.0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        match self.counts.get_mut(self.bounds.partition_point(|b| *b < v)) {
            Some(c) => *c += 1,
            None => self.above += 1,
        }
        self.sum += v;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.above
    }

    pub fn to_histogram(&self) -> Histogram {
        Histogram {
            bounds: self.bounds.to_vec(),
            counts: self.counts.iter().copied().chain([self.above]).collect(),
            sum: self.sum,
        }
    }
}

/// What RTCP reports said, in histograms (see `FBS.Worker.MediaCountersResponse`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReportHistograms {
    /// Fraction lost per report block: of streams producers receive (our RRs), of streams
    /// consumers send (the subscribers' RRs).
    pub loss_received: Buckets<8>,
    pub loss_sent: Buckets<8>,
    /// Interarrival jitter per report block, seconds.
    pub jitter_received: Buckets<10>,
    pub jitter_sent: Buckets<10>,
    /// Round-trip times of the streams consumers send (LSR/DLSR of the subscribers' RRs).
    pub rtt: Buckets<10>,
}

impl Default for ReportHistograms {
    fn default() -> Self {
        Self {
            loss_received: Buckets::new(&LOSS_BOUNDS),
            loss_sent: Buckets::new(&LOSS_BOUNDS),
            jitter_received: Buckets::new(&JITTER_BOUNDS),
            jitter_sent: Buckets::new(&JITTER_BOUNDS),
            rtt: Buckets::new(&RTT_BOUNDS),
        }
    }
}

/// Worker-wide counters: packets that reached no transport, sequence validation of what
/// producers receive, RTP by kind, RTCP feedback, SRTP/ICE/DTLS failures, report histograms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CoreStats {
    pub unknown_socket: u64,
    pub unknown_tuple: u64,
    /// RTP packets not forwarded for their sequence number (RFC 3550 A.1: jumps, RTX of
    /// packets never sent), over every producer stream this worker had.
    pub rtp_bad_sequence: u64,
    /// Producer streams that restarted in a new sequence space (confirmed by two packets).
    pub rtp_resyncs: u64,
    /// DTLS handshakes that failed (a certificate that does not match the signaled
    /// fingerprint among them).
    pub dtls_failures: u64,
    /// What the SCTP associations of closed transports counted.
    pub data_closed: DataCounters,
    /// RTP producers received and consumers sent, by kind.
    pub audio: RtpCounters,
    pub video: RtpCounters,
    pub feedback: FeedbackCounters,
    pub srtp_auth_failures: u64,
    pub srtp_replays: u64,
    pub ice_consent_lost: u64,
    pub ice_unauthorized: u64,
    pub ice_bad_requests: u64,
    pub reports: ReportHistograms,
}

impl CoreStats {
    /// The RTP counters of `kind`.
    #[inline]
    pub(crate) fn rtp(&mut self, kind: MediaKind) -> &mut RtpCounters {
        match kind {
            MediaKind::Audio => &mut self.audio,
            MediaKind::Video => &mut self.video,
        }
    }
}

impl WorkerCore {
    /// The answer to `worker.get_media_counters`.
    pub(crate) fn media_counters(&self) -> MediaCounters {
        let s = &self.stats;
        let r = &s.reports;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        MediaCounters {
            unknown_socket: s.unknown_socket,
            unknown_tuple: s.unknown_tuple,
            rtp_bad_sequence: s.rtp_bad_sequence,
            rtp_resyncs: s.rtp_resyncs,
            dtls_failures: s.dtls_failures,
            data: self.data_counters(),
            audio: s.audio,
            video: s.video,
            feedback: s.feedback,
            srtp_auth_failures: s.srtp_auth_failures,
            srtp_replays: s.srtp_replays,
            ice_consent_lost: s.ice_consent_lost,
            ice_unauthorized: s.ice_unauthorized,
            ice_bad_requests: s.ice_bad_requests,
            transports: count(self.tables.transports.len()),
            producers: count(self.tables.producers.len()),
            consumers: count(self.tables.consumers.len()),
            loss_received: r.loss_received.to_histogram(),
            loss_sent: r.loss_sent.to_histogram(),
            jitter_received: r.jitter_received.to_histogram(),
            jitter_sent: r.jitter_sent.to_histogram(),
            rtt: r.rtt.to_histogram(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_goes_to_the_first_bucket_it_does_not_exceed() {
        static B: [f64; 3] = [0.0, 0.1, 1.0];
        let mut h = Buckets::new(&B);
        for v in [0.0, 0.05, 0.1, 0.1000001, 1.0, 7.0] {
            h.observe(v);
        }
        let out = h.to_histogram();
        assert_eq!(out.bounds, B);
        assert_eq!(out.counts, [1, 2, 2, 1]);
        assert_eq!(h.count(), 6);
        assert!((out.sum - 8.2500001).abs() < 1e-9);
    }

    #[test]
    fn a_measured_rtt_is_never_reported_as_unmeasured() {
        use std::time::Duration;
        assert_eq!(rtt_ms(None), 0);
        assert_eq!(rtt_ms(Some(Duration::ZERO)), 1);
        assert_eq!(rtt_ms(Some(Duration::from_micros(150))), 1);
        assert_eq!(rtt_ms(Some(Duration::from_micros(1000))), 1);
        assert_eq!(rtt_ms(Some(Duration::from_micros(1001))), 2);
        assert_eq!(rtt_ms(Some(Duration::from_millis(42))), 42);
    }

    #[test]
    fn counters_by_kind() {
        let mut s = CoreStats::default();
        s.rtp(MediaKind::Audio).received(100);
        s.rtp(MediaKind::Video).sent(1200, true);
        s.rtp(MediaKind::Video).sent(1000, false);
        assert_eq!((s.audio.packets_received, s.audio.bytes_received), (1, 100));
        assert_eq!(
            (
                s.video.packets_sent,
                s.video.bytes_sent,
                s.video.retransmissions_sent
            ),
            (2, 2200, 1)
        );
    }
}
