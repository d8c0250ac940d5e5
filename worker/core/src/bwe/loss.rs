//! Loss-based estimate, as libwebrtc's `SendSideBandwidthEstimation` (loss-based v1): the
//! loss fraction over at least 20 packets reported since the last loss update; under 2 % the
//! estimate may rise to 1.08 × its minimum over the last second (+1 kbit/s), i.e. about 8 %/s;
//! over 10 % it drops to × (1 − 0.5 × loss), at most once per 300 ms + RTT; in between it
//! holds. It is always capped by the delay-based estimate, and during the first 2 s without
//! loss it simply follows the delay-based estimate (startup).

use crate::bwe::Bounds;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::aimd::DEFAULT_RTT;

/// A loss fraction needs at least this many packets.
const LIMIT_NUM_PACKETS: u64 = 20;
const LOW_LOSS_THRESHOLD: f64 = 0.02;
const HIGH_LOSS_THRESHOLD: f64 = 0.1;
const INCREASE_FACTOR: f64 = 1.08;
const INCREASE_EXTRA_BPS: f64 = 1000.0;
/// The increase is relative to the minimum estimate over this span.
const INCREASE_INTERVAL: Duration = Duration::from_secs(1);
/// Decreases are at least this (+ RTT) apart.
const DECREASE_INTERVAL: Duration = Duration::from_millis(300);
/// While no loss was reported this long after the first report, follow the delay-based estimate.
const START_PHASE: Duration = Duration::from_secs(2);
/// A loss fraction older than this (1.2 × the 5 s max RTCP interval) is not acted on.
const LOSS_REPORT_TIMEOUT: Duration = Duration::from_millis(6000);
/// Bound of the min-history ring (it holds one entry per update within 1 s, monotonic).
const MAX_HISTORY: usize = 256;

/// The loss-based estimator.
#[derive(Debug)]
pub(crate) struct LossBasedBwe {
    bounds: Bounds,
    current_bps: f64,
    delay_based_limit_bps: f64,
    lost_since_update: u64,
    expected_since_update: u64,
    /// Loss fraction of the last report, in 1/256 (as RTCP).
    last_fraction_loss: u8,
    has_decreased_since_last_fraction_loss: bool,
    first_report: Option<Instant>,
    last_loss_report: Option<Instant>,
    time_last_decrease: Option<Instant>,
    rtt: Duration,
    /// (time, estimate), increasing in both: the front is the minimum of the last second.
    min_history: VecDeque<(Instant, f64)>,
}

impl LossBasedBwe {
    pub(crate) fn new(start_bps: u64, min_bps: u64, max_bps: u64) -> Self {
        let mut this = Self {
            bounds: Bounds::new(min_bps, max_bps),
            current_bps: 0.0,
            delay_based_limit_bps: f64::INFINITY,
            lost_since_update: 0,
            expected_since_update: 0,
            last_fraction_loss: 0,
            has_decreased_since_last_fraction_loss: false,
            first_report: None,
            last_loss_report: None,
            time_last_decrease: None,
            rtt: DEFAULT_RTT,
            min_history: VecDeque::with_capacity(MAX_HISTORY),
        };
        this.current_bps = this.clamp(start_bps as f64);
        this
    }

    pub(crate) fn estimate_bps(&self) -> u64 {
        self.current_bps as u64
    }

    /// The loss fraction last acted on, 0.0..=1.0.
    pub(crate) fn fraction_loss(&self) -> f64 {
        f64::from(self.last_fraction_loss) / 256.0
    }

    pub(crate) fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt;
    }

    pub(crate) fn set_bounds(&mut self, min_bps: u64, max_bps: u64) {
        self.bounds = Bounds::new(min_bps, max_bps);
        self.current_bps = self.clamp(self.current_bps);
    }

    fn clamp(&self, bps: f64) -> f64 {
        bps.min(self.delay_based_limit_bps)
            .min(self.bounds.max_bps)
            .max(self.bounds.min_bps)
    }

    /// Sets the estimate outright (a probe result); forgets the delay-based limit (the caller
    /// sets it again) and the min history.
    pub(crate) fn set_send_bitrate(&mut self, bps: u64, now: Instant) {
        self.delay_based_limit_bps = f64::INFINITY;
        self.min_history.clear();
        self.current_bps = self.clamp(bps as f64);
        self.push_history(now);
    }

    /// The delay-based estimate caps this one.
    pub(crate) fn set_delay_based_limit(&mut self, bps: u64) {
        self.delay_based_limit_bps = if bps == 0 { f64::INFINITY } else { bps as f64 };
        self.current_bps = self.clamp(self.current_bps);
    }

    /// `lost` of `expected` packets were reported lost since the last call.
    pub(crate) fn on_packets_lost(&mut self, lost: u64, expected: u64, now: Instant) {
        if expected == 0 {
            return;
        }
        self.first_report.get_or_insert(now);
        self.lost_since_update += lost;
        self.expected_since_update += expected;
        if self.expected_since_update < LIMIT_NUM_PACKETS {
            return;
        }
        self.has_decreased_since_last_fraction_loss = false;
        let fraction =
            (self.lost_since_update.saturating_mul(256) / self.expected_since_update).min(255);
        self.last_fraction_loss = u8::try_from(fraction).unwrap_or(u8::MAX);
        self.lost_since_update = 0;
        self.expected_since_update = 0;
        self.last_loss_report = Some(now);
        self.update(now);
    }

    /// Re-evaluates the estimate (called at every feedback).
    pub(crate) fn update(&mut self, now: Instant) {
        let in_start_phase = self
            .first_report
            .is_none_or(|t| now.saturating_duration_since(t) < START_PHASE);
        if self.last_fraction_loss == 0 && in_start_phase {
            // Startup: trust the delay-based estimate until loss is seen.
            let new = self.clamp(self.current_bps.max(self.delay_based_limit_bps));
            if new != self.current_bps {
                self.current_bps = new;
                self.min_history.clear();
                self.push_history(now);
            }
            return;
        }
        self.push_history(now);
        let Some(last_report) = self.last_loss_report else {
            return;
        };
        if now.saturating_duration_since(last_report) >= LOSS_REPORT_TIMEOUT {
            return;
        }
        let loss = self.fraction_loss();
        let mut new = self.current_bps;
        if loss <= LOW_LOSS_THRESHOLD {
            let min_recent = self
                .min_history
                .front()
                .map_or(self.current_bps, |&(_, b)| b);
            new = min_recent * INCREASE_FACTOR + INCREASE_EXTRA_BPS;
        } else if loss > HIGH_LOSS_THRESHOLD
            && !self.has_decreased_since_last_fraction_loss
            && self
                .time_last_decrease
                .is_none_or(|t| now.saturating_duration_since(t) >= DECREASE_INTERVAL + self.rtt)
        {
            self.time_last_decrease = Some(now);
            new = self.current_bps * (512.0 - f64::from(self.last_fraction_loss)) / 512.0;
            self.has_decreased_since_last_fraction_loss = true;
        }
        self.current_bps = self.clamp(new);
    }

    /// Keeps the min-history monotonic: drops entries older than a second and those not
    /// smaller than the current estimate, then appends it.
    fn push_history(&mut self, now: Instant) {
        while let Some(&(t, _)) = self.min_history.front() {
            if now.saturating_duration_since(t) + Duration::from_millis(1) > INCREASE_INTERVAL {
                self.min_history.pop_front();
            } else {
                break;
            }
        }
        while let Some(&(_, b)) = self.min_history.back() {
            if self.current_bps <= b {
                self.min_history.pop_back();
            } else {
                break;
            }
        }
        if self.min_history.len() == MAX_HISTORY {
            self.min_history.pop_front();
        }
        self.min_history.push_back((now, self.current_bps));
    }
}

#[cfg(test)]
mod tests;
