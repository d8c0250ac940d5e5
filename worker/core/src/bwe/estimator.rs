//! The send-side bandwidth estimator of one transport, as libwebrtc's GoogCC feedback path
//! (`GoogCcNetworkController::OnTransportPacketsFeedback`): each transport-wide-cc feedback
//! updates the loss counts, the acknowledged bitrate, the probe results and the delay-based
//! estimate; the estimate is the loss-based one, which the delay-based one caps.

use std::time::{Duration, Instant};

use super::PacketResult;
use super::acked::AckedBitrate;
use super::delay::DelayBasedBwe;
use super::loss::LossBasedBwe;
use super::probe::{ProbeBitrateEstimator, ProbeMeasurement};
use super::trendline::BandwidthUsage;

/// Loss fractions are computed over the feedback of at least this span.
const LOSS_UPDATE_INTERVAL: Duration = Duration::from_secs(1);
/// A probe reading lowers the estimate to no less than this × the acknowledged rate.
const PROBE_DROP_THROUGHPUT_FRACTION: f64 = 0.85;

/// The estimator's state after a feedback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BweUpdate {
    /// The available bitrate: min of the delay-based and the loss-based estimates.
    pub estimate_bps: u64,
    /// The delay-based (trendline + AIMD) estimate alone.
    pub delay_based_bps: u64,
    /// The loss-based estimate alone (capped by the delay-based one).
    pub loss_based_bps: u64,
    /// What the subscriber received, if measured yet.
    pub acked_bps: Option<u64>,
    /// A probe cluster completed in this feedback and gave this bitrate, and the estimate
    /// took it (not while the path is overused).
    pub probe_bps: Option<u64>,
    /// A probe cluster completed in this feedback: what it measured, taken by the estimate or
    /// not.
    pub probe_measured: Option<ProbeMeasurement>,
    /// The delay detector's verdict.
    pub usage: BandwidthUsage,
}

/// Send-side bandwidth estimation (GoogCC) for one transport. Deterministic: time is an
/// argument, and the same feedback sequence gives the same estimates.
#[derive(Debug)]
pub struct SendSideBwe {
    delay: DelayBasedBwe,
    loss: LossBasedBwe,
    acked: AckedBitrate,
    probe: ProbeBitrateEstimator,
    /// The received packets of the feedback being processed, by arrival (reused).
    by_arrival: Vec<PacketResult>,
    lost_since_loss_update: u64,
    expected_since_loss_update: u64,
    next_loss_update: Option<Instant>,
    /// The probe cluster being sent: what its first packets measured is not its result.
    sending_cluster: Option<u32>,
}

impl SendSideBwe {
    /// Starts at `start_bps`, always within `min_bps..=max_bps`.
    pub fn new(start_bps: u64, min_bps: u64, max_bps: u64) -> Self {
        let delay = DelayBasedBwe::new(start_bps, min_bps, max_bps);
        let mut loss = LossBasedBwe::new(start_bps, min_bps, max_bps);
        loss.set_delay_based_limit(delay.estimate_bps());
        Self {
            delay,
            loss,
            acked: AckedBitrate::default(),
            probe: ProbeBitrateEstimator::default(),
            by_arrival: Vec::new(),
            lost_since_loss_update: 0,
            expected_since_loss_update: 0,
            next_loss_update: None,
            sending_cluster: None,
        }
    }

    /// The available bitrate toward the subscriber, bit/s.
    pub fn estimate(&self) -> u64 {
        self.delay.estimate_bps().min(self.loss.estimate_bps())
    }

    /// The delay-based estimate alone, bit/s.
    pub fn delay_based(&self) -> u64 {
        self.delay.estimate_bps()
    }

    /// The loss-based estimate alone, bit/s.
    pub fn loss_based(&self) -> u64 {
        self.loss.estimate_bps()
    }

    /// The acknowledged (received) bitrate, bit/s, once measured.
    pub fn acked_bitrate(&self) -> Option<u64> {
        self.acked.bitrate_bps()
    }

    /// The loss fraction last acted on, 0.0..=1.0.
    pub fn fraction_loss(&self) -> f64 {
        self.loss.fraction_loss()
    }

    /// The delay detector's verdict.
    pub fn usage(&self) -> BandwidthUsage {
        self.delay.usage()
    }

    /// The round-trip time (from RTCP), which paces decreases and additive increases.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.delay.set_rtt(rtt);
        self.loss.set_rtt(rtt);
    }

    /// Whether the transport is application-limited ([`super::alr`]).
    pub fn set_in_alr(&mut self, in_alr: bool) {
        self.delay.set_in_alr(in_alr);
    }

    /// What the prober is doing, before each feedback: while probing (or its queue settles),
    /// an overuse backs the delay-based estimate off to no less than `floor` and teaches it
    /// nothing of the link's capacity; cluster `sending` is still being sent, so what its
    /// packets reported so far measured is not taken (a long verification cluster's first
    /// packets, meeting the queue it starts to build, read as saturated).
    pub fn set_probing(&mut self, floor: Option<u64>, sending: Option<u32>) {
        self.delay.set_probe_floor(floor);
        self.sending_cluster = sending;
    }

    /// New bounds; the estimates are clamped into them.
    pub fn set_bounds(&mut self, min_bps: u64, max_bps: u64) {
        self.delay.set_bounds(min_bps, max_bps);
        self.loss.set_delay_based_limit(self.delay.estimate_bps());
        self.loss.set_bounds(min_bps, max_bps);
    }

    /// A probe result measured elsewhere: both estimates jump to it (unless the path is
    /// overused right now, as libwebrtc).
    pub fn on_probe_result(&mut self, bps: u64, now: Instant) {
        if self.delay.on_probe_result(bps, now) {
            self.apply_delay_based(true, now);
        }
    }

    /// No feedback came for a while although packets were sent (all lost on the way, or the
    /// feedback path broken): the estimate backs off by `factor` (libwebrtc's feedback
    /// timeout). Returns the new estimate.
    pub fn on_feedback_timeout(&mut self, factor: f64, now: Instant) -> u64 {
        let bps = (self.estimate() as f64 * factor) as u64;
        self.set_estimate(bps, now)
    }

    /// The transport is about to send much more than it did (see
    /// [`super::acked::AckedBitrate::expect_fast_rate_change`]).
    pub fn expect_fast_rate_change(&mut self) {
        self.acked.expect_fast_rate_change();
    }

    /// A probe cluster measured that the path carries `bps`: the estimate is at least that (the
    /// overuse backoff its own queue set off was to what arrived of the media alone). Returns
    /// the estimate.
    pub fn raise_to(&mut self, bps: u64, now: Instant) -> u64 {
        if bps > self.estimate() {
            self.set_estimate(bps, now);
        }
        self.estimate()
    }

    fn set_estimate(&mut self, bps: u64, now: Instant) -> u64 {
        self.delay.set_estimate(bps, now);
        self.loss.set_send_bitrate(self.delay.estimate_bps(), now);
        self.loss.set_delay_based_limit(self.delay.estimate_bps());
        self.estimate()
    }

    /// One transport-wide-cc feedback: the packets it reports, in any order, received or lost.
    pub fn on_feedback(&mut self, packets: &[PacketResult], now: Instant) -> BweUpdate {
        if packets.is_empty() {
            return self.snapshot(None);
        }
        // Loss, over at least a second of feedback.
        self.expected_since_loss_update += packets.len() as u64;
        self.lost_since_loss_update +=
            packets.iter().filter(|p| p.arrival.is_none()).count() as u64;
        if self.next_loss_update.is_none_or(|t| now >= t) {
            self.next_loss_update = Some(now + LOSS_UPDATE_INTERVAL);
            self.loss.on_packets_lost(
                self.lost_since_loss_update,
                self.expected_since_loss_update,
                now,
            );
            self.lost_since_loss_update = 0;
            self.expected_since_loss_update = 0;
        }
        // Received packets by arrival (the key is unique: no allocation, deterministic).
        self.by_arrival.clear();
        self.by_arrival
            .extend(packets.iter().filter(|p| p.arrival.is_some()));
        self.by_arrival.sort_unstable_by_key(|p| (p.arrival, p.seq));
        for p in &self.by_arrival {
            if let Some(arrival) = p.arrival {
                self.acked.on_packet(arrival, p.size);
            }
        }
        for p in packets.iter().filter(|p| p.probe_cluster.is_some()) {
            self.probe.on_packet(p);
        }
        let estimate = self.estimate();
        // A saturated reading says the path carries no more, but never less than the media
        // demonstrably got through: as libwebrtc (`limit_probes_lower_than_throughput_
        // estimate`), no lower than 0.85 × the acknowledged rate, or the estimate if that is
        // lower. (A short cluster reads a link roughly: Chromium behind 600 kbit/s read 171
        // and 327 kbit/s while 350 and 263 were acknowledged.)
        let floor = self.acked.bitrate_bps().map_or(0, |a| {
            ((a as f64 * PROBE_DROP_THROUGHPUT_FRACTION) as u64).min(estimate)
        });
        let measured = self
            .probe
            .take_estimate()
            .filter(|m| Some(m.cluster) != self.sending_cluster)
            .map(|m| ProbeMeasurement {
                bps: m.bps.max(floor),
                ..m
            });
        // A cluster that got through whole says the path carries at least its rate: under the
        // estimate (a verification of an upgrade the estimate covers) it says nothing new.
        let probe_bps = measured
            .filter(|m| m.saturated || m.bps > estimate)
            .map(|m| m.bps);
        let result =
            self.delay
                .on_feedback(&self.by_arrival, self.acked.bitrate_bps(), probe_bps, now);
        if result.updated {
            self.apply_delay_based(result.probe, now);
        }
        self.loss.update(now);
        let mut update = self.snapshot(probe_bps.filter(|_| result.probe));
        update.probe_measured = measured;
        update
    }

    fn apply_delay_based(&mut self, probe: bool, now: Instant) {
        let target = self.delay.estimate_bps();
        if probe {
            self.loss.set_send_bitrate(target, now);
        }
        self.loss.set_delay_based_limit(target);
    }

    fn snapshot(&self, probe_bps: Option<u64>) -> BweUpdate {
        BweUpdate {
            estimate_bps: self.estimate(),
            delay_based_bps: self.delay_based(),
            loss_based_bps: self.loss_based(),
            acked_bps: self.acked_bitrate(),
            probe_bps,
            probe_measured: None,
            usage: self.usage(),
        }
    }
}

#[cfg(test)]
mod tests;
