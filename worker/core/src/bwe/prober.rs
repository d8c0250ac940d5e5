//! Probing: when the allocator wants more than the estimate, a transport sends a short cluster
//! at a higher rate (what it sends anyway, topped up with padding) and the subscriber's feedback
//! says what got through ([`super::probe::ProbeBitrateEstimator`]). As libwebrtc's
//! `ProbeController`: a success (the result reaches 70 % of the probe's rate) probes again at
//! twice the result at once; a failure or no result waits [`RETRY_AFTER`] (the caller may ask
//! for less: [`RETRY_PAUSED_AFTER`]).

use std::time::{Duration, Instant};

/// A cluster lasts at least this long at its rate...
const CLUSTER_DURATION: Duration = Duration::from_millis(15);
/// ... and holds at least this many packets (the estimator needs as many).
const CLUSTER_PACKETS: u32 = 6;
/// After a failed probe, or while the estimate suffices, the next probe waits this long.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(5);
/// The wait instead while the allocator keeps every video consumer of the transport paused:
/// then nothing but the probes can show that the path has room again, and a failed cluster
/// costs little (the transport sends no video meanwhile).
pub(crate) const RETRY_PAUSED_AFTER: Duration = Duration::from_secs(2);
/// A cluster without a result this long after it ended failed.
const RESULT_TIMEOUT: Duration = Duration::from_secs(1);
/// A result at this fraction of the probe's rate or more is a success: probe further.
const SUCCESS_RATIO: f64 = 0.7;

#[derive(Clone, Copy, Debug)]
struct Cluster {
    id: u32,
    rate_bps: u64,
    start: Instant,
    bytes: u64,
    packets: u32,
}

impl Cluster {
    fn done(&self) -> bool {
        let min_bytes = self.rate_bps as f64 * CLUSTER_DURATION.as_secs_f64() / 8.0;
        self.packets >= CLUSTER_PACKETS && self.bytes as f64 >= min_bytes
    }
}

/// The probing of one transport. Time is an argument.
#[derive(Debug, Default)]
pub(crate) struct Prober {
    next_id: u32,
    active: Option<Cluster>,
    /// The cluster sent last, waiting for its result: (id, rate, ended at).
    awaiting: Option<(u32, u64, Instant)>,
    /// Since when probing waits (a failure, or a result that sufficed).
    waiting_since: Option<Instant>,
    /// Probing bytes sent (stats: probation bytes).
    pub(crate) bytes_sent: u64,
    pub(crate) clusters_sent: u64,
}

impl Prober {
    /// The allocator wants `desired_bps` and the estimate is `estimate_bps`: starts a cluster
    /// when probing may tell more, `retry_after` after a failure at the soonest. Returns its
    /// rate when one starts.
    pub(crate) fn maybe_probe(
        &mut self,
        desired_bps: u64,
        estimate_bps: u64,
        max_bps: u64,
        retry_after: Duration,
        now: Instant,
    ) -> Option<u64> {
        if self.active.is_some() || desired_bps <= estimate_bps {
            return None;
        }
        if let Some((_, _, ended)) = self.awaiting {
            if now < ended + RESULT_TIMEOUT {
                return None;
            }
            // No result: failed.
            self.awaiting = None;
            self.waiting_since = Some(now);
            return None;
        }
        if self.waiting_since.is_some_and(|t| now < t + retry_after) {
            return None;
        }
        // Twice the estimate, but no more than twice what is wanted: a cluster only a little
        // above a link's rate arrives spread too little to tell (15 ms, a few packets, feedback
        // timestamps to 250 µs), so a path just narrower than what is wanted would read as wide
        // enough (Chromium behind 600 kbit/s read 650-680 probing at 675).
        let rate = (estimate_bps * 2)
            .min(desired_bps * 2)
            .max(estimate_bps + estimate_bps / 4)
            .min(max_bps);
        self.start(rate, now);
        Some(rate)
    }

    fn start(&mut self, rate_bps: u64, now: Instant) {
        self.next_id = self.next_id.wrapping_add(1);
        self.clusters_sent += 1;
        self.active = Some(Cluster {
            id: self.next_id,
            rate_bps,
            start: now,
            bytes: 0,
            packets: 0,
        });
    }

    /// The cluster cannot be sent (nothing to pad with): dropped, and probing waits.
    pub(crate) fn abort(&mut self) {
        if self.active.take().is_some() {
            self.waiting_since = None;
        }
    }

    /// A packet of `size` bytes left the transport: the cluster it belongs to, if one is
    /// being sent.
    pub(crate) fn on_sent(&mut self, size: usize, padding: bool, now: Instant) -> Option<u32> {
        let c = self.active.as_mut()?;
        c.bytes += size as u64;
        c.packets += 1;
        if padding {
            self.bytes_sent += size as u64;
        }
        let id = c.id;
        if c.done() {
            self.awaiting = Some((c.id, c.rate_bps, now));
            self.active = None;
        }
        Some(id)
    }

    /// When the cluster needs its next padding packet (what left already is ahead of the
    /// rate: none yet); `None`: no cluster.
    pub(crate) fn padding_due(&self) -> Option<Instant> {
        let c = self.active.as_ref()?;
        let at = Duration::from_secs_f64(c.bytes as f64 * 8.0 / c.rate_bps.max(1) as f64);
        Some(c.start + at)
    }

    /// The estimator measured `bps` for a probe cluster: probe further on a success while more
    /// is wanted, else wait. Returns the rate of a cluster started at once.
    pub(crate) fn on_result(&mut self, bps: u64, desired_bps: u64, now: Instant) -> Option<u64> {
        let (_, rate, _) = self.awaiting.take()?;
        if bps as f64 >= SUCCESS_RATIO * rate as f64 && desired_bps > bps && self.active.is_none() {
            let next = (bps * 2).min(desired_bps * 2).max(bps + bps / 4);
            self.start(next, now);
            return Some(next);
        }
        self.waiting_since = Some(now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        #[allow(clippy::disallowed_methods)] // tests: an arbitrary origin
        Instant::now()
    }

    /// Sends the active cluster's padding in packets of `size` bytes.
    fn send_cluster(p: &mut Prober, size: usize, now: Instant) {
        while p.padding_due().is_some() {
            p.on_sent(size, true, now);
        }
    }

    #[test]
    fn probes_only_when_more_is_wanted_and_spreads_the_cluster_at_its_rate() {
        let now = t0();
        let mut p = Prober::default();
        assert_eq!(
            p.maybe_probe(500_000, 600_000, 10_000_000, RETRY_AFTER, now),
            None
        );
        let rate = p
            .maybe_probe(3_000_000, 600_000, 10_000_000, RETRY_AFTER, now)
            .unwrap();
        assert_eq!(rate, 1_200_000, "twice the estimate");
        assert_eq!(p.padding_due(), Some(now));
        // 1.2 Mbit/s for 15 ms = 2250 B: 9 packets of 250 B, 1.67 ms apart.
        let mut t = now;
        let mut n = 0;
        while let Some(due) = p.padding_due() {
            t = due;
            assert_eq!(p.on_sent(250, true, t), Some(1));
            n += 1;
        }
        assert_eq!(n, 9);
        assert!(t.duration_since(now) >= Duration::from_millis(13));
        assert_eq!(p.bytes_sent, 2250);
    }

    #[test]
    fn a_success_probes_further_and_a_failure_waits() {
        let now = t0();
        let mut p = Prober::default();
        p.maybe_probe(5_000_000, 250_000, 10_000_000, RETRY_AFTER, now)
            .unwrap();
        send_cluster(&mut p, 1000, now);
        let next = p.on_result(480_000, 5_000_000, now).unwrap();
        assert_eq!(next, 960_000);
        send_cluster(&mut p, 1000, now);
        assert_eq!(p.on_result(400_000, 5_000_000, now), None, "failed");
        assert_eq!(
            p.maybe_probe(5_000_000, 400_000, 10_000_000, RETRY_AFTER, now),
            None
        );
        let later = now + RETRY_AFTER;
        assert!(
            p.maybe_probe(5_000_000, 400_000, 10_000_000, RETRY_AFTER, later)
                .is_some()
        );
    }

    #[test]
    fn a_cluster_without_a_result_counts_as_failed() {
        let now = t0();
        let mut p = Prober::default();
        p.maybe_probe(5_000_000, 250_000, 10_000_000, RETRY_AFTER, now)
            .unwrap();
        send_cluster(&mut p, 1000, now);
        let t = now + RESULT_TIMEOUT;
        assert_eq!(
            p.maybe_probe(5_000_000, 250_000, 10_000_000, RETRY_AFTER, t),
            None
        );
        assert!(
            p.maybe_probe(5_000_000, 250_000, 10_000_000, RETRY_AFTER, t + RETRY_AFTER)
                .is_some()
        );
    }

    #[test]
    fn the_caller_may_retry_sooner_after_a_failure() {
        let now = t0();
        let mut p = Prober::default();
        p.maybe_probe(5_000_000, 30_000, 10_000_000, RETRY_PAUSED_AFTER, now)
            .unwrap();
        send_cluster(&mut p, 300, now);
        assert_eq!(p.on_result(30_000, 5_000_000, now), None, "failed");
        let t = now + RETRY_PAUSED_AFTER;
        assert_eq!(
            p.maybe_probe(5_000_000, 30_000, 10_000_000, RETRY_AFTER, t),
            None
        );
        assert!(
            p.maybe_probe(5_000_000, 30_000, 10_000_000, RETRY_PAUSED_AFTER, t)
                .is_some()
        );
    }
}
