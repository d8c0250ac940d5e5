//! Delay-based overuse detection, as libwebrtc's `InterArrivalDelta` and `TrendlineEstimator`
//! (modules/congestion_controller/goog_cc): packets are grouped by send time into 5 ms groups
//! (bursts that arrive back to back join the group), each new group yields a delay variation
//! (arrival delta − send delta), a least-squares trend over the last 20 smoothed accumulated
//! delays is compared with an adaptive threshold, and the detector says whether the path is
//! overused, underused or normal. Fixed-size state: no allocation per packet.

use std::time::{Duration, Instant};

/// Packets sent within this span of the group's first packet belong to the same group.
const SEND_TIME_GROUP_LENGTH: Duration = Duration::from_millis(5);
/// A packet arriving this soon after the group's last one, earlier than its send spacing would
/// have it, is part of a burst (the group goes on).
const BURST_DELTA_THRESHOLD_MS: f64 = 5.0;
/// A burst never lasts longer than this.
const MAX_BURST_DURATION: Duration = Duration::from_millis(100);
/// The arrival clock jumped against the feedback clock by more than this: start over.
const ARRIVAL_TIME_OFFSET_THRESHOLD_MS: f64 = 3000.0;
/// So many groups in a row arriving before the previous one: start over.
const REORDERED_RESET_THRESHOLD: u32 = 3;

/// Number of (arrival time, smoothed delay) points the trend is fitted on.
const TRENDLINE_WINDOW: usize = 20;
const SMOOTHING_COEF: f64 = 0.9;
const THRESHOLD_GAIN: f64 = 4.0;
/// The trend is scaled by the number of deltas seen, up to this.
const MIN_NUM_DELTAS: u32 = 60;
const DELTA_COUNTER_MAX: u32 = 1000;
/// Overuse is declared after the trend stayed above the threshold this long (and twice).
const OVERUSING_TIME_THRESHOLD_MS: f64 = 10.0;
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
const INITIAL_THRESHOLD_MS: f64 = 12.5;
const MIN_THRESHOLD_MS: f64 = 6.0;
const MAX_THRESHOLD_MS: f64 = 600.0;
/// Outliers (trend far above the threshold) do not move the threshold.
const MAX_ADAPT_OFFSET_MS: f64 = 15.0;
const MAX_THRESHOLD_TIME_DELTA_MS: f64 = 100.0;

/// `a − b` in milliseconds, negative when `a` is the earlier.
pub(crate) fn signed_ms(a: Instant, b: Instant) -> f64 {
    match a.checked_duration_since(b) {
        Some(d) => d.as_secs_f64() * 1e3,
        None => -(b.duration_since(a).as_secs_f64() * 1e3),
    }
}

/// What the delay-based detector concludes about the path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BandwidthUsage {
    /// Queues are stable.
    #[default]
    Normal,
    /// Queues grow: we send more than the bottleneck carries.
    Overusing,
    /// Queues drain.
    Underusing,
}

/// The packets sent within one 5 ms span (plus the bursts that joined them).
#[derive(Clone, Copy, Debug)]
struct SendTimeGroup {
    size: usize,
    first_send: Instant,
    /// The latest send time in the group.
    send: Instant,
    first_arrival: Instant,
    /// The arrival of the group's last packet.
    complete: Instant,
    /// When we learned of the group's last packet (feedback time).
    last_system: Instant,
}

impl SendTimeGroup {
    fn start(send: Instant, arrival: Instant, system: Instant) -> Self {
        Self {
            size: 0,
            first_send: send,
            send,
            first_arrival: arrival,
            complete: arrival,
            last_system: system,
        }
    }

    fn belongs_to_burst(&self, send: Instant, arrival: Instant) -> bool {
        let arrival_delta_ms = signed_ms(arrival, self.complete);
        let send_delta_ms = signed_ms(send, self.send);
        if send_delta_ms == 0.0 {
            return true;
        }
        let propagation_delta_ms = arrival_delta_ms - send_delta_ms;
        propagation_delta_ms < 0.0
            && arrival_delta_ms <= BURST_DELTA_THRESHOLD_MS
            && signed_ms(arrival, self.first_arrival) < MAX_BURST_DURATION.as_secs_f64() * 1e3
    }

    fn is_new_group(&self, send: Instant, arrival: Instant) -> bool {
        !self.belongs_to_burst(send, arrival)
            && send.saturating_duration_since(self.first_send) > SEND_TIME_GROUP_LENGTH
    }
}

/// The deltas between two consecutive complete send-time groups.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GroupDelta {
    pub(crate) send_delta_ms: f64,
    pub(crate) arrival_delta_ms: f64,
}

/// Groups packets by send time and yields the deltas between consecutive groups
/// (libwebrtc `InterArrivalDelta`).
#[derive(Debug, Default)]
pub(crate) struct InterArrival {
    current: Option<SendTimeGroup>,
    prev: Option<SendTimeGroup>,
    consecutive_reordered: u32,
}

impl InterArrival {
    /// Feeds one received packet (in arrival order); `system` is when its feedback came in.
    /// Returns the deltas when this packet closed a group and a previous group exists.
    pub(crate) fn compute_deltas(
        &mut self,
        send: Instant,
        arrival: Instant,
        system: Instant,
        size: usize,
    ) -> Option<GroupDelta> {
        let mut deltas = None;
        let mut cur = match self.current {
            None => SendTimeGroup::start(send, arrival, system),
            Some(cur) if send < cur.first_send => return None, // reordered: ignore
            Some(mut cur) => {
                if cur.is_new_group(send, arrival) {
                    if let Some(prev) = self.prev {
                        let send_delta_ms = signed_ms(cur.send, prev.send);
                        let arrival_delta_ms = signed_ms(cur.complete, prev.complete);
                        let system_delta_ms = signed_ms(cur.last_system, prev.last_system);
                        if arrival_delta_ms - system_delta_ms >= ARRIVAL_TIME_OFFSET_THRESHOLD_MS {
                            *self = Self::default();
                            return None;
                        }
                        if arrival_delta_ms < 0.0 {
                            self.consecutive_reordered += 1;
                            if self.consecutive_reordered >= REORDERED_RESET_THRESHOLD {
                                *self = Self::default();
                            }
                            return None;
                        }
                        self.consecutive_reordered = 0;
                        deltas = Some(GroupDelta {
                            send_delta_ms,
                            arrival_delta_ms,
                        });
                    }
                    self.prev = Some(cur);
                    SendTimeGroup::start(send, arrival, system)
                } else {
                    cur.send = cur.send.max(send);
                    cur
                }
            }
        };
        cur.size += size;
        cur.complete = arrival;
        cur.last_system = system;
        self.current = Some(cur);
        deltas
    }
}

/// The trendline filter and overuse detector (libwebrtc `TrendlineEstimator`).
#[derive(Debug)]
pub(crate) struct Trendline {
    num_deltas: u32,
    first_arrival: Option<Instant>,
    accumulated_delay_ms: f64,
    smoothed_delay_ms: f64,
    /// Ring of (ms since first arrival, smoothed delay ms).
    history: [(f64, f64); TRENDLINE_WINDOW],
    history_len: usize,
    history_next: usize,
    prev_trend: f64,
    threshold_ms: f64,
    last_threshold_update: Option<Instant>,
    /// How long the trend has been above the threshold; `None`: it is not.
    time_over_using_ms: Option<f64>,
    overuse_counter: u32,
    state: BandwidthUsage,
}

impl Default for Trendline {
    fn default() -> Self {
        Self {
            num_deltas: 0,
            first_arrival: None,
            accumulated_delay_ms: 0.0,
            smoothed_delay_ms: 0.0,
            history: [(0.0, 0.0); TRENDLINE_WINDOW],
            history_len: 0,
            history_next: 0,
            prev_trend: 0.0,
            threshold_ms: INITIAL_THRESHOLD_MS,
            last_threshold_update: None,
            time_over_using_ms: None,
            overuse_counter: 0,
            state: BandwidthUsage::Normal,
        }
    }
}

impl Trendline {
    pub(crate) fn state(&self) -> BandwidthUsage {
        self.state
    }

    /// Feeds the deltas of one group, closed by a packet that arrived at `arrival`.
    pub(crate) fn update(&mut self, delta: GroupDelta, arrival: Instant) {
        let delay_ms = delta.arrival_delta_ms - delta.send_delta_ms;
        self.num_deltas = (self.num_deltas + 1).min(DELTA_COUNTER_MAX);
        let first_arrival = *self.first_arrival.get_or_insert(arrival);
        self.accumulated_delay_ms += delay_ms;
        self.smoothed_delay_ms = SMOOTHING_COEF * self.smoothed_delay_ms
            + (1.0 - SMOOTHING_COEF) * self.accumulated_delay_ms;
        self.history[self.history_next] =
            (signed_ms(arrival, first_arrival), self.smoothed_delay_ms);
        self.history_next = (self.history_next + 1) % TRENDLINE_WINDOW;
        self.history_len = (self.history_len + 1).min(TRENDLINE_WINDOW);
        let mut trend = self.prev_trend;
        if self.history_len == TRENDLINE_WINDOW {
            trend = self.linear_fit_slope().unwrap_or(trend);
        }
        self.detect(trend, delta.send_delta_ms, arrival);
    }

    fn linear_fit_slope(&self) -> Option<f64> {
        let points = &self.history[..self.history_len];
        let n = points.len() as f64;
        let (sum_x, sum_y) = points
            .iter()
            .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
        let (x_avg, y_avg) = (sum_x / n, sum_y / n);
        let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
            (
                num + (x - x_avg) * (y - y_avg),
                den + (x - x_avg) * (x - x_avg),
            )
        });
        (den != 0.0).then(|| num / den)
    }

    fn detect(&mut self, trend: f64, send_delta_ms: f64, now: Instant) {
        if self.num_deltas < 2 {
            self.state = BandwidthUsage::Normal;
            return;
        }
        let modified_trend =
            f64::from(self.num_deltas.min(MIN_NUM_DELTAS)) * trend * THRESHOLD_GAIN;
        if modified_trend > self.threshold_ms {
            let over = match self.time_over_using_ms {
                // Assume the trend was above the threshold for half the send delta.
                None => send_delta_ms / 2.0,
                Some(t) => t + send_delta_ms,
            };
            self.time_over_using_ms = Some(over);
            self.overuse_counter += 1;
            if over > OVERUSING_TIME_THRESHOLD_MS
                && self.overuse_counter > 1
                && trend >= self.prev_trend
            {
                self.time_over_using_ms = Some(0.0);
                self.overuse_counter = 0;
                self.state = BandwidthUsage::Overusing;
            }
        } else if modified_trend < -self.threshold_ms {
            self.time_over_using_ms = None;
            self.overuse_counter = 0;
            self.state = BandwidthUsage::Underusing;
        } else {
            self.time_over_using_ms = None;
            self.overuse_counter = 0;
            self.state = BandwidthUsage::Normal;
        }
        self.prev_trend = trend;
        self.update_threshold(modified_trend, now);
    }

    fn update_threshold(&mut self, modified_trend: f64, now: Instant) {
        let last = *self.last_threshold_update.get_or_insert(now);
        self.last_threshold_update = Some(now);
        let abs = modified_trend.abs();
        if abs > self.threshold_ms + MAX_ADAPT_OFFSET_MS {
            // A spike (e.g. a route change): do not adapt to it.
            return;
        }
        let k = if abs < self.threshold_ms {
            K_DOWN
        } else {
            K_UP
        };
        let dt_ms = signed_ms(now, last).clamp(0.0, MAX_THRESHOLD_TIME_DELTA_MS);
        self.threshold_ms += k * (abs - self.threshold_ms) * dt_ms;
        self.threshold_ms = self.threshold_ms.clamp(MIN_THRESHOLD_MS, MAX_THRESHOLD_MS);
    }
}

#[cfg(test)]
mod tests;
