//! AIMD rate control, as libwebrtc's `AimdRateControl` and `LinkCapacityEstimator`: the
//! delay-based estimate grows multiplicatively (8 %/s) while the link capacity is unknown or
//! the throughput left its neighbourhood, additively (about one average packet per response
//! time) near the capacity measured at the last overuse, drops to 0.85 × the acknowledged
//! throughput on overuse, and holds while the queues drain.

use crate::bwe::Bounds;
use std::time::{Duration, Instant};

use super::trendline::BandwidthUsage;

/// On overuse the rate drops to this fraction of the acknowledged throughput.
const BACKOFF_FACTOR: f64 = 0.85;
/// Multiplicative increase per second far from the link capacity.
const MULTIPLICATIVE_INCREASE_PER_SECOND: f64 = 1.08;
const MIN_MULTIPLICATIVE_INCREASE_BPS: f64 = 1000.0;
const MIN_ADDITIVE_INCREASE_BPS_PER_SECOND: f64 = 4000.0;
/// The additive increase assumes 30 frames/s sent as packets of at most this many bytes.
const FRAME_INTERVAL_S: f64 = 1.0 / 30.0;
const MAX_PACKET_BYTES: f64 = 1200.0;
/// Response time = RTT + this (the feedback interval and the encoder's reaction).
const RESPONSE_TIME_EXTRA: Duration = Duration::from_millis(100);
/// The estimate never exceeds 1.5 × the acknowledged throughput + this.
const THROUGHPUT_LIMIT_EXTRA_BPS: f64 = 10_000.0;
pub(crate) const DEFAULT_RTT: Duration = Duration::from_millis(200);
/// A further decrease during overuse waits for RTT, clamped to this range.
const MIN_REDUCTION_INTERVAL: Duration = Duration::from_millis(10);
const MAX_REDUCTION_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RateControlState {
    Hold,
    Increase,
    Decrease,
}

/// Running estimate of the link capacity from the throughput at overuse (kbit/s internally,
/// as libwebrtc).
#[derive(Debug, Default)]
struct LinkCapacity {
    estimate_kbps: Option<f64>,
    deviation_kbps: f64,
}

impl LinkCapacity {
    fn new() -> Self {
        Self {
            estimate_kbps: None,
            deviation_kbps: 0.4,
        }
    }

    fn deviation_estimate_kbps(&self) -> f64 {
        // The deviation is normalised by the estimate (it is relative).
        (self.deviation_kbps * self.estimate_kbps.unwrap_or(0.0)).sqrt()
    }

    fn upper_bound_bps(&self) -> f64 {
        match self.estimate_kbps {
            Some(e) => (e + 3.0 * self.deviation_estimate_kbps()) * 1e3,
            None => f64::INFINITY,
        }
    }

    fn lower_bound_bps(&self) -> f64 {
        match self.estimate_kbps {
            Some(e) => ((e - 3.0 * self.deviation_estimate_kbps()) * 1e3).max(0.0),
            None => 0.0,
        }
    }

    fn on_overuse_detected(&mut self, throughput_bps: f64) {
        self.update(throughput_bps, 0.05);
    }

    fn update(&mut self, sample_bps: f64, alpha: f64) {
        let sample_kbps = sample_bps / 1e3;
        let estimate = match self.estimate_kbps {
            None => sample_kbps,
            Some(e) => (1.0 - alpha) * e + alpha * sample_kbps,
        };
        self.estimate_kbps = Some(estimate);
        let norm = estimate.max(1.0);
        let error = estimate - sample_kbps;
        self.deviation_kbps =
            ((1.0 - alpha) * self.deviation_kbps + alpha * error * error / norm).clamp(0.4, 2.5);
    }

    fn estimate_bps(&self) -> Option<f64> {
        self.estimate_kbps.map(|e| e * 1e3)
    }
}

/// The delay-based rate controller.
#[derive(Debug)]
pub(crate) struct AimdRateControl {
    bounds: Bounds,
    current_bps: f64,
    latest_throughput_bps: f64,
    link_capacity: LinkCapacity,
    state: RateControlState,
    time_last_change: Option<Instant>,
    rtt: Duration,
    /// Application-limited: an overuse backs off from the estimate, not the throughput.
    in_alr: bool,
    /// Probing (its queue is the overuse's likely cause): a backoff goes no lower.
    probe_floor: Option<f64>,
}

impl AimdRateControl {
    pub(crate) fn new(start_bps: u64, min_bps: u64, max_bps: u64) -> Self {
        let mut this = Self {
            bounds: Bounds::new(min_bps, max_bps),
            current_bps: 0.0,
            latest_throughput_bps: 0.0,
            link_capacity: LinkCapacity::new(),
            state: RateControlState::Hold,
            time_last_change: None,
            rtt: DEFAULT_RTT,
            in_alr: false,
            probe_floor: None,
        };
        this.current_bps = this.clamp(start_bps as f64);
        this.latest_throughput_bps = this.current_bps;
        this
    }

    pub(crate) fn estimate_bps(&self) -> u64 {
        self.current_bps as u64
    }

    pub(crate) fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt;
    }

    /// Whether the sender is application-limited ([`super::alr`]).
    pub(crate) fn set_in_alr(&mut self, in_alr: bool) {
        self.in_alr = in_alr;
    }

    /// While probing ([`crate::bwe::prober::Prober::floor`]): an overuse backs off to no
    /// less than `floor`, and the throughput then says nothing of the link's capacity (it is
    /// not learned: the capacity would otherwise pull later backoffs down to it).
    pub(crate) fn set_probe_floor(&mut self, floor: Option<u64>) {
        self.probe_floor = floor.map(|f| f as f64);
    }

    pub(crate) fn set_bounds(&mut self, min_bps: u64, max_bps: u64) {
        self.bounds = Bounds::new(min_bps, max_bps);
        self.current_bps = self.clamp(self.current_bps);
    }

    fn clamp(&self, bps: f64) -> f64 {
        self.bounds.clamp(bps)
    }

    /// Whether an overuse that goes on should cut the rate again: an RTT (clamped to
    /// 10..200 ms) passed since the last change, or the throughput fell under half the estimate.
    pub(crate) fn time_to_reduce_further(&self, now: Instant, throughput_bps: u64) -> bool {
        let interval = self
            .rtt
            .clamp(MIN_REDUCTION_INTERVAL, MAX_REDUCTION_INTERVAL);
        match self.time_last_change {
            Some(t) if now.saturating_duration_since(t) < interval => {
                (throughput_bps as f64) < 0.5 * self.current_bps
            }
            _ => true,
        }
    }

    /// Sets the estimate outright (a probe result, or halving without a throughput).
    pub(crate) fn set_estimate(&mut self, bps: u64, now: Instant) {
        self.current_bps = self.clamp(bps as f64);
        self.time_last_change = Some(now);
    }

    /// One detector verdict with the acknowledged throughput, if known; returns the estimate.
    pub(crate) fn update(
        &mut self,
        usage: BandwidthUsage,
        throughput_bps: Option<u64>,
        now: Instant,
    ) -> u64 {
        let throughput = match throughput_bps {
            Some(t) => {
                self.latest_throughput_bps = t as f64;
                t as f64
            }
            None => self.latest_throughput_bps,
        };
        match usage {
            BandwidthUsage::Normal => {
                if self.state == RateControlState::Hold {
                    self.time_last_change = Some(now);
                    self.state = RateControlState::Increase;
                }
            }
            BandwidthUsage::Overusing => self.state = RateControlState::Decrease,
            BandwidthUsage::Underusing => self.state = RateControlState::Hold,
        }
        let mut new_bps = None;
        match self.state {
            RateControlState::Hold => {}
            RateControlState::Increase => {
                if throughput > self.link_capacity.upper_bound_bps() {
                    self.link_capacity = LinkCapacity::new();
                }
                let limit = 1.5 * throughput + THROUGHPUT_LIMIT_EXTRA_BPS;
                if self.current_bps < limit {
                    let increase = if self.link_capacity.estimate_bps().is_some() {
                        self.additive_increase(now)
                    } else {
                        self.multiplicative_increase(now)
                    };
                    new_bps = Some((self.current_bps + increase).min(limit));
                }
                self.time_last_change = Some(now);
            }
            RateControlState::Decrease => {
                // Application-limited, the throughput is what was sent, not what fits: back
                // off from the estimate (a layer switch's keyframe must not send it down to
                // the old layer's rate).
                let throughput = if self.in_alr {
                    throughput.max(self.current_bps)
                } else {
                    throughput
                };
                let mut decreased = throughput * BACKOFF_FACTOR;
                if let Some(floor) = self.probe_floor {
                    decreased = decreased.max(floor);
                } else {
                    if decreased > self.current_bps {
                        if let Some(capacity) = self.link_capacity.estimate_bps() {
                            decreased = BACKOFF_FACTOR * capacity;
                        }
                    }
                    if throughput < self.link_capacity.lower_bound_bps() {
                        // Far below the capacity we knew: that knowledge is stale.
                        self.link_capacity = LinkCapacity::new();
                    }
                    self.link_capacity.on_overuse_detected(throughput);
                }
                // Never increase while overusing.
                if decreased < self.current_bps {
                    new_bps = Some(decreased);
                }
                // Hold until the queues drained.
                self.state = RateControlState::Hold;
                self.time_last_change = Some(now);
            }
        }
        self.current_bps = self.clamp(new_bps.unwrap_or(self.current_bps));
        self.estimate_bps()
    }

    fn elapsed_s(&self, now: Instant) -> f64 {
        self.time_last_change
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64())
    }

    fn multiplicative_increase(&self, now: Instant) -> f64 {
        let alpha = match self.time_last_change {
            Some(_) => MULTIPLICATIVE_INCREASE_PER_SECOND.powf(self.elapsed_s(now).min(1.0)),
            None => MULTIPLICATIVE_INCREASE_PER_SECOND,
        };
        (self.current_bps * (alpha - 1.0)).max(MIN_MULTIPLICATIVE_INCREASE_BPS)
    }

    fn additive_increase(&self, now: Instant) -> f64 {
        self.near_max_increase_bps_per_second() * self.elapsed_s(now)
    }

    /// About one average packet per response time.
    fn near_max_increase_bps_per_second(&self) -> f64 {
        let frame_bytes = self.current_bps * FRAME_INTERVAL_S / 8.0;
        let packets_per_frame = (frame_bytes / MAX_PACKET_BYTES).ceil().max(1.0);
        let avg_packet_bits = frame_bytes / packets_per_frame * 8.0;
        let response_time_s = (self.rtt + RESPONSE_TIME_EXTRA).as_secs_f64();
        (avg_packet_bits / response_time_s).max(MIN_ADDITIVE_INCREASE_BPS_PER_SECOND)
    }
}

#[cfg(test)]
mod tests;
