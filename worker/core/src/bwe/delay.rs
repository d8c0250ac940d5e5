//! The delay-based estimate, as libwebrtc's `DelayBasedBwe`: received packets (in arrival
//! order) go through the send-time grouping and the trendline detector; after each feedback
//! the detector's verdict, the acknowledged throughput and any probe result drive the AIMD
//! rate control.

use std::time::{Duration, Instant};

use super::PacketResult;
use super::aimd::AimdRateControl;
use super::trendline::{BandwidthUsage, InterArrival, Trendline};

/// No feedback for this long: the old groups and trend say nothing about the path now.
const STREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What one feedback did to the delay-based estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DelayResult {
    /// The estimate was (re)computed.
    pub(crate) updated: bool,
    /// It was set from a probe result.
    pub(crate) probe: bool,
    pub(crate) target_bps: u64,
}

#[derive(Debug)]
pub(crate) struct DelayBasedBwe {
    inter_arrival: InterArrival,
    trendline: Trendline,
    rate: AimdRateControl,
    last_seen: Option<Instant>,
}

impl DelayBasedBwe {
    pub(crate) fn new(start_bps: u64, min_bps: u64, max_bps: u64) -> Self {
        Self {
            inter_arrival: InterArrival::default(),
            trendline: Trendline::default(),
            rate: AimdRateControl::new(start_bps, min_bps, max_bps),
            last_seen: None,
        }
    }

    pub(crate) fn estimate_bps(&self) -> u64 {
        self.rate.estimate_bps()
    }

    pub(crate) fn usage(&self) -> BandwidthUsage {
        self.trendline.state()
    }

    pub(crate) fn set_rtt(&mut self, rtt: Duration) {
        self.rate.set_rtt(rtt);
    }

    pub(crate) fn set_in_alr(&mut self, in_alr: bool) {
        self.rate.set_in_alr(in_alr);
    }

    pub(crate) fn set_bounds(&mut self, min_bps: u64, max_bps: u64) {
        self.rate.set_bounds(min_bps, max_bps);
    }

    /// See [`AimdRateControl::set_probe_floor`].
    pub(crate) fn set_probe_floor(&mut self, floor: Option<u64>) {
        self.rate.set_probe_floor(floor);
    }

    /// A probe result from outside the feedback path; ignored while overusing.
    pub(crate) fn on_probe_result(&mut self, bps: u64, now: Instant) -> bool {
        if self.usage() == BandwidthUsage::Overusing {
            return false;
        }
        self.rate.set_estimate(bps, now);
        true
    }

    /// Sets the estimate outright (a feedback timeout's backoff), overuse or not.
    pub(crate) fn set_estimate(&mut self, bps: u64, now: Instant) {
        self.rate.set_estimate(bps, now);
    }

    /// One feedback: `received` holds its received packets sorted by arrival.
    pub(crate) fn on_feedback(
        &mut self,
        received: &[PacketResult],
        acked_bps: Option<u64>,
        probe_bps: Option<u64>,
        now: Instant,
    ) -> DelayResult {
        if received.is_empty() {
            return DelayResult {
                updated: false,
                probe: false,
                target_bps: self.estimate_bps(),
            };
        }
        if self
            .last_seen
            .is_some_and(|t| now.saturating_duration_since(t) > STREAM_TIMEOUT)
        {
            self.inter_arrival = InterArrival::default();
            self.trendline = Trendline::default();
        }
        self.last_seen = Some(now);
        for p in received {
            let Some(arrival) = p.arrival else { continue };
            if let Some(delta) = self
                .inter_arrival
                .compute_deltas(p.sent_at, arrival, now, p.size)
            {
                self.trendline.update(delta, arrival);
            }
        }
        self.maybe_update(acked_bps, probe_bps, now)
    }

    fn maybe_update(
        &mut self,
        acked_bps: Option<u64>,
        probe_bps: Option<u64>,
        now: Instant,
    ) -> DelayResult {
        let usage = self.trendline.state();
        let mut result = DelayResult {
            updated: false,
            probe: false,
            target_bps: self.estimate_bps(),
        };
        if usage == BandwidthUsage::Overusing {
            match acked_bps {
                Some(acked) if self.rate.time_to_reduce_further(now, acked) => {
                    result.target_bps = self.rate.update(usage, Some(acked), now);
                    result.updated = true;
                }
                None => {
                    // No throughput yet: halve, at most once per reduction interval.
                    let half = self.estimate_bps() / 2;
                    if self
                        .rate
                        .time_to_reduce_further(now, half.saturating_sub(1))
                    {
                        self.rate.set_estimate(half, now);
                        result.target_bps = self.estimate_bps();
                        result.updated = true;
                    }
                }
                Some(_) => {}
            }
        } else if let Some(probe) = probe_bps {
            self.rate.set_estimate(probe, now);
            result = DelayResult {
                updated: true,
                probe: true,
                target_bps: self.estimate_bps(),
            };
        } else {
            result.target_bps = self.rate.update(usage, acked_bps, now);
            result.updated = true;
        }
        result
    }
}
