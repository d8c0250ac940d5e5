//! Acknowledged bitrate: what the subscriber actually received, as libwebrtc's
//! `AcknowledgedBitrateEstimator` + `BitrateEstimator` — the Bayesian one, not a plain
//! sliding window: bytes received are summed over 150 ms windows of arrival time (500 ms for
//! the first sample), and each window's rate updates an estimate whose variance grows by 5
//! per window and whose sample variance grows with the sample's distance from the estimate
//! (so a single outlier window moves it little, a lasting change moves it within a few
//! windows).

use std::time::Instant;

use super::trendline::signed_ms;

const INITIAL_RATE_WINDOW_MS: f64 = 500.0;
const RATE_WINDOW_MS: f64 = 150.0;
/// Sample uncertainty = this × |estimate − sample| / estimate.
const UNCERTAINTY_SCALE: f64 = 10.0;
const INITIAL_VARIANCE: f64 = 50.0;
/// Process noise added to the estimate's variance at each sample.
const PROCESS_NOISE_VARIANCE: f64 = 5.0;
const FAST_CHANGE_VARIANCE: f64 = 200.0;

/// Bayesian acknowledged-throughput estimator (kbit/s internally, as libwebrtc).
#[derive(Debug)]
pub(crate) struct AckedBitrate {
    sum_bytes: f64,
    current_window_ms: f64,
    prev_arrival: Option<Instant>,
    estimate_kbps: Option<f64>,
    variance: f64,
}

impl Default for AckedBitrate {
    fn default() -> Self {
        Self {
            sum_bytes: 0.0,
            current_window_ms: 0.0,
            prev_arrival: None,
            estimate_kbps: None,
            variance: INITIAL_VARIANCE,
        }
    }
}

impl AckedBitrate {
    /// The estimate in bit/s; `None` until a first window completed.
    /// The sender is about to send much more (an upgrade, a verification, the end of an
    /// application-limited period): the next samples may move the estimate fast (libwebrtc's
    /// `ExpectFastRateChange`), else an overuse then backs off from the old, lower rate.
    pub(crate) fn expect_fast_rate_change(&mut self) {
        self.variance += FAST_CHANGE_VARIANCE;
    }

    pub(crate) fn bitrate_bps(&self) -> Option<u64> {
        self.estimate_kbps.map(|k| (k * 1e3) as u64)
    }

    /// One received packet, in arrival order.
    pub(crate) fn on_packet(&mut self, arrival: Instant, size: usize) {
        let window_ms = if self.estimate_kbps.is_some() {
            RATE_WINDOW_MS
        } else {
            INITIAL_RATE_WINDOW_MS
        };
        let Some(sample_kbps) = self.update_window(arrival, size, window_ms) else {
            return;
        };
        let estimate = match self.estimate_kbps {
            Some(estimate) if estimate > 0.0 => estimate,
            // No estimate yet (or a zero one, which cannot weigh a sample): take the sample.
            _ => {
                self.estimate_kbps = Some(sample_kbps);
                return;
            }
        };
        let uncertainty = UNCERTAINTY_SCALE * (estimate - sample_kbps).abs() / estimate;
        let sample_variance = uncertainty * uncertainty;
        let predicted_variance = self.variance + PROCESS_NOISE_VARIANCE;
        let total = sample_variance + predicted_variance;
        self.estimate_kbps =
            Some((sample_variance * estimate + predicted_variance * sample_kbps) / total);
        self.variance = sample_variance * predicted_variance / total;
    }

    /// Sums bytes over windows of arrival time; returns a window's rate (kbit/s) when one
    /// completes (the packet that completes it counts in the next one).
    fn update_window(&mut self, arrival: Instant, size: usize, window_ms: f64) -> Option<f64> {
        if let Some(prev) = self.prev_arrival {
            let dt_ms = signed_ms(arrival, prev);
            if dt_ms < 0.0 {
                self.sum_bytes = 0.0;
                self.current_window_ms = 0.0;
            } else {
                self.current_window_ms += dt_ms;
                if dt_ms > window_ms {
                    // A gap longer than a window: nothing was sent, do not average it in.
                    self.sum_bytes = 0.0;
                    self.current_window_ms %= window_ms;
                }
            }
        }
        self.prev_arrival = Some(arrival);
        let mut sample = None;
        if self.current_window_ms >= window_ms {
            sample = Some(8.0 * self.sum_bytes / window_ms);
            self.current_window_ms -= window_ms;
            self.sum_bytes = 0.0;
        }
        self.sum_bytes += size as f64;
        sample
    }
}

#[cfg(test)]
mod tests;
