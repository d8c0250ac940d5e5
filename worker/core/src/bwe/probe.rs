//! Probe results from the feedback of a probe cluster, as libwebrtc's
//! `ProbeBitrateEstimator`: once enough of a cluster's packets came back (at least 4, and at
//! least 80 % of those reported), the send rate is the cluster's bytes minus its last sent
//! packet over the send span, the receive rate its bytes minus its first received packet over
//! the arrival span; the result is the smaller, or 95 % of the receive rate when the link was
//! saturated (receive rate < 90 % of the send rate). Bounded: at most 8 clusters, forgotten
//! after 1 s.

use std::time::{Duration, Instant};

use super::PacketResult;

/// libwebrtc takes 80 % of the cluster's planned 5 probes.
const MIN_RECEIVED_PROBES: u32 = 4;
const MIN_RECEIVED_RATIO: f64 = 0.8;
/// A send or receive span longer than this is not a probe.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// A receive rate over twice the send rate is a measurement error.
const MAX_VALID_RATIO: f64 = 2.0;
const MIN_RATIO_FOR_UNSATURATED_LINK: f64 = 0.9;
const TARGET_UTILIZATION_FRACTION: f64 = 0.95;
const MAX_CLUSTER_HISTORY: Duration = Duration::from_secs(1);
const MAX_CLUSTERS: usize = 8;

/// What a probe cluster measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeMeasurement {
    /// The cluster's id.
    pub cluster: u32,
    /// Bit/s.
    pub bps: u64,
    /// The link saturated (less arrived than was sent): the path carries at most this. Else
    /// at least this (the cluster was sent at this rate and all of it got through).
    pub saturated: bool,
}

#[derive(Clone, Copy, Debug)]
struct Cluster {
    id: u32,
    first_send: Instant,
    last_send: Instant,
    first_receive: Instant,
    last_receive: Instant,
    size_last_send: usize,
    size_first_receive: usize,
    size_total: usize,
    received: u32,
    lost: u32,
}

/// Turns probe clusters' feedback into bitrates.
#[derive(Debug, Default)]
pub(crate) struct ProbeBitrateEstimator {
    clusters: [Option<Cluster>; MAX_CLUSTERS],
    /// The latest result.
    last_estimate: Option<ProbeMeasurement>,
}

impl ProbeBitrateEstimator {
    /// One packet of the feedback; returns the cluster's estimate when it has one.
    pub(crate) fn on_packet(&mut self, p: &PacketResult) -> Option<u64> {
        let id = p.probe_cluster?;
        let Some(arrival) = p.arrival else {
            if let Some(c) = self.clusters.iter_mut().flatten().find(|c| c.id == id) {
                c.lost += 1;
            }
            return None;
        };
        // Forget clusters whose last packet arrived over a second before this one.
        for slot in &mut self.clusters {
            if slot.is_some_and(|c| {
                arrival.saturating_duration_since(c.last_receive) > MAX_CLUSTER_HISTORY
            }) {
                *slot = None;
            }
        }
        let c = self.cluster_mut(id, p.sent_at, arrival, p.size);
        if p.sent_at < c.first_send {
            c.first_send = p.sent_at;
        }
        if p.sent_at > c.last_send {
            c.last_send = p.sent_at;
            c.size_last_send = p.size;
        }
        if arrival < c.first_receive {
            c.first_receive = arrival;
            c.size_first_receive = p.size;
        }
        if arrival > c.last_receive {
            c.last_receive = arrival;
        }
        c.size_total += p.size;
        c.received += 1;
        let c = *c;
        if c.received < MIN_RECEIVED_PROBES
            || f64::from(c.received) < MIN_RECEIVED_RATIO * f64::from(c.received + c.lost)
        {
            return None;
        }
        let send_interval = c.last_send.saturating_duration_since(c.first_send);
        let receive_interval = c.last_receive.saturating_duration_since(c.first_receive);
        if send_interval.is_zero()
            || send_interval > MAX_PROBE_INTERVAL
            || receive_interval.is_zero()
            || receive_interval > MAX_PROBE_INTERVAL
        {
            return None;
        }
        let send_bps = 8.0 * c.size_total.saturating_sub(c.size_last_send) as f64
            / send_interval.as_secs_f64();
        let receive_bps = 8.0 * c.size_total.saturating_sub(c.size_first_receive) as f64
            / receive_interval.as_secs_f64();
        if receive_bps / send_bps > MAX_VALID_RATIO {
            return None;
        }
        let mut result = send_bps.min(receive_bps);
        let saturated = receive_bps < MIN_RATIO_FOR_UNSATURATED_LINK * send_bps;
        if saturated {
            // The link saturated: it carries a little less than what arrived.
            result = TARGET_UTILIZATION_FRACTION * receive_bps;
        }
        let result = result as u64;
        self.last_estimate = Some(ProbeMeasurement {
            cluster: c.id,
            bps: result,
            saturated,
        });
        Some(result)
    }

    /// The latest estimate since the last call, if any.
    pub(crate) fn take_estimate(&mut self) -> Option<ProbeMeasurement> {
        self.last_estimate.take()
    }

    /// The cluster `id`, created (replacing the stalest when full) if new.
    fn cluster_mut(
        &mut self,
        id: u32,
        send: Instant,
        arrival: Instant,
        size: usize,
    ) -> &mut Cluster {
        let index = match self
            .clusters
            .iter()
            .position(|s| s.is_some_and(|c| c.id == id))
        {
            Some(i) => i,
            None => {
                let i = self
                    .clusters
                    .iter()
                    .position(Option::is_none)
                    .unwrap_or_else(|| {
                        // Full: replace the cluster that received last longest ago.
                        let mut oldest = 0;
                        for (i, slot) in self.clusters.iter().enumerate() {
                            if let (Some(c), Some(o)) = (slot, &self.clusters[oldest]) {
                                if c.last_receive < o.last_receive {
                                    oldest = i;
                                }
                            }
                        }
                        oldest
                    });
                self.clusters[i] = Some(Cluster {
                    id,
                    first_send: send,
                    last_send: send,
                    first_receive: arrival,
                    last_receive: arrival,
                    size_last_send: size,
                    size_first_receive: size,
                    size_total: 0,
                    received: 0,
                    lost: 0,
                });
                i
            }
        };
        self.clusters[index]
            .as_mut()
            .expect("the slot was just found or filled")
    }
}

#[cfg(test)]
mod tests;
