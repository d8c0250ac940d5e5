//! Send-side bandwidth estimation toward subscribers (issue 13), sans IO: what the subscriber's
//! transport-wide-cc feedback says about the packets a transport sent ([`PacketResult`]), the
//! estimators that turn it into an available bitrate, and (later) the pacer, the prober and
//! the allocator that act on it. Time is an argument everywhere; nothing reads a clock.

pub(crate) mod allocator;
pub(crate) mod alr;
pub(crate) mod feedback;
pub(crate) mod history;
pub(crate) mod pacer;
pub(crate) mod prober;

use std::time::Instant;

mod acked;
mod aimd;
mod delay;
mod estimator;
mod loss;
mod probe;
mod trendline;

pub use estimator::{BweUpdate, SendSideBwe};
pub use trendline::BandwidthUsage;

/// One packet a transport sent with a transport-wide sequence number, as the subscriber's
/// feedback reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketResult {
    /// Transport-wide sequence number, unwrapped (monotonic over the transport's life).
    pub seq: u64,
    /// When it left (the time the core handed it to the shell).
    pub sent_at: Instant,
    /// Its size on the wire, in bytes (RTP + SRTP overhead).
    pub size: usize,
    /// When the subscriber received it, in the subscriber's clock mapped to ours (only the
    /// differences between arrivals are meaningful); `None`: reported lost.
    pub arrival: Option<Instant>,
    /// It belonged to a probe cluster (id), not to media.
    pub probe_cluster: Option<u32>,
}

/// What a transport's send-side controller keeps between estimates: its prober, the
/// allocator's hysteresis and schedule, and what it reported last.
#[derive(Debug, Default)]
pub(crate) struct Control {
    pub prober: prober::Prober,
    pub alr: alr::AlrDetector,
    pub hysteresis: allocator::Hysteresis,
    /// When the allocator runs next (it also runs at once when the estimate drops).
    pub next_run: Option<Instant>,
    /// The estimate the allocator last ran with.
    pub last_estimate: u64,
    /// What every consumer would take at its preferred layers, bit/s.
    pub desired_bps: u64,
    /// What the allocation granted, bit/s.
    pub effective_desired_bps: u64,
    /// When the allocation last raised a consumer's layers.
    pub upgraded_at: Option<Instant>,
    /// Since when the estimate has stayed under what the transport sends.
    pub under_since: Option<Instant>,
    /// When the next `bwe` trace is due.
    pub next_trace: Option<Instant>,
    /// When the last transport-wide feedback came, and when the estimate last backed off
    /// for the lack of one.
    pub last_feedback: Option<Instant>,
    pub last_timeout_backoff: Option<Instant>,
    /// When a probe result last raised the estimate.
    pub probe_raised_at: Option<Instant>,
    /// The delay detector's verdict and the estimate after the last feedback (for the `bwe`
    /// debug log of their changes).
    pub last_usage: BandwidthUsage,
    pub last_update_bps: u64,
}

impl Control {
    /// Transport-wide feedback came within `timeout` of `now`.
    pub(crate) fn feedback_fresh(&self, timeout: std::time::Duration, now: Instant) -> bool {
        self.last_feedback.is_some_and(|f| now < f + timeout)
    }
}

/// The bitrate range (bit/s) an estimate is kept in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bounds {
    pub min_bps: f64,
    pub max_bps: f64,
}

impl Bounds {
    /// `min_bps..=max_bps` (a max under the min is the min).
    pub(crate) fn new(min_bps: u64, max_bps: u64) -> Self {
        Self {
            min_bps: min_bps as f64,
            max_bps: max_bps.max(min_bps) as f64,
        }
    }

    pub(crate) fn clamp(&self, bps: f64) -> f64 {
        bps.clamp(self.min_bps, self.max_bps)
    }
}
