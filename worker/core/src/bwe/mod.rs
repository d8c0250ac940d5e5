//! Send-side bandwidth estimation toward subscribers (issue 13), sans IO: what the subscriber's
//! transport-wide-cc feedback says about the packets a transport sent ([`PacketResult`]), the
//! estimators that turn it into an available bitrate, and (later) the pacer, the prober and
//! the allocator that act on it. Time is an argument everywhere; nothing reads a clock.

pub(crate) mod feedback;
pub(crate) mod history;

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
