//! Probing: when the allocator wants more than the estimate, a transport sends a short cluster
//! at a higher rate (what it sends anyway, topped up with padding) and the subscriber's feedback
//! says what got through ([`super::probe::ProbeBitrateEstimator`]). As libwebrtc's
//! `ProbeController`: a success (the result reaches 70 % of the probe's rate) probes again at
//! twice the result at once; a failure or no result waits [`RETRY_AFTER`] (the caller may ask
//! for less: [`RETRY_PAUSED_AFTER`]).
//!
//! A short cluster reads a link's rate only roughly: over 15 ms a few milliseconds of a
//! subscriber's arrival timestamps bunched together (Chromium stamps packets when its network
//! thread reads them, not when they arrive) read 20-30 % over the link (Chromium behind
//! 600 kbit/s: 687 and 721 kbit/s). An upgrade the estimate only just covers is therefore
//! first **verified** ([`Prober::verify`]): one long cluster ([`VERIFY_DURATION`]) at the rate
//! the upgrade needs, media topped up with padding, whose result is exact to a few percent; a
//! link that cannot carry it builds a queue of a few tens of milliseconds for that moment and
//! reads as saturated. After a failed verification the next waits [`RETRY_AFTER`].
//!
//! The queue a cluster builds on a link at capacity sets off overuse, during the cluster and
//! until the queue is gone: while probing and [`SETTLE_AFTER`] after, the estimate is kept at
//! least at what it was before the probing raised it ([`Prober::floor`]).

use std::time::{Duration, Instant};

/// A cluster lasts at least this long at its rate...
const CLUSTER_DURATION: Duration = Duration::from_millis(15);
/// ... and holds at least this many packets (the estimator needs as many).
const CLUSTER_PACKETS: u32 = 6;
/// After a failed probe, or while the estimate suffices, the next probe waits this long.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(3);
/// The wait instead while the allocator keeps every video consumer of the transport paused:
/// then nothing but the probes can show that the path has room again, and a failed cluster
/// costs little (the transport sends no video meanwhile).
pub(crate) const RETRY_PAUSED_AFTER: Duration = Duration::from_secs(2);
/// A cluster without a result this long after it ended failed.
const RESULT_TIMEOUT: Duration = Duration::from_secs(1);
/// A result at this fraction of the probe's rate or more is a success: probe further.
const SUCCESS_RATIO: f64 = 0.7;
/// A verification cluster lasts this long at its rate (long enough that a few milliseconds of
/// bunched arrival stamps are a few percent; short enough that on a link that cannot carry it
/// the queue grows by some 50 ms only).
pub(crate) const VERIFY_DURATION: Duration = Duration::from_millis(300);
/// A verification is sent at what is needed × this and succeeds when its result reaches what
/// is needed: a link that carries the cluster whole reads its rate (Chromium on an unshaped
/// link: 100-104 %), one that cannot reads what it carries, × 0.95 (behind 600 kbit/s: 450 for
/// 670).
pub(crate) const VERIFY_MARGIN: f64 = 1.05;
/// A successful verification counts this long.
const VERIFIED_FOR: Duration = Duration::from_secs(3);
/// The queue a cluster built at a bottleneck it exceeded is gone this long after it ended:
/// until then, overuse and saturated readings are the probing's own (see [`Prober::floor`]).
/// Behind Chromium on 600 kbit/s, a verification's queue set off overuse up to 180 ms after
/// it ended, and the detector read normal again 360 ms after.
pub(crate) const SETTLE_AFTER: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug)]
struct Cluster {
    id: u32,
    rate_bps: u64,
    start: Instant,
    bytes: u64,
    packets: u32,
    /// A verification (long) cluster, not a short probe.
    verify: bool,
}

impl Cluster {
    fn done(&self) -> bool {
        let duration = if self.verify {
            VERIFY_DURATION
        } else {
            CLUSTER_DURATION
        };
        let min_bytes = self.rate_bps as f64 * duration.as_secs_f64() / 8.0;
        self.packets >= CLUSTER_PACKETS && self.bytes as f64 >= min_bytes
    }
}

/// The cluster sent last, waiting for its result.
#[derive(Clone, Copy, Debug)]
struct Awaiting {
    id: u32,
    rate_bps: u64,
    ended: Instant,
    verify: bool,
}

/// The probing of one transport. Time is an argument.
#[derive(Debug, Default)]
pub(crate) struct Prober {
    next_id: u32,
    active: Option<Cluster>,
    awaiting: Option<Awaiting>,
    /// Since when probing waits (a failure, or a result that sufficed).
    waiting_since: Option<Instant>,
    /// When the last verification failed (or had no result).
    verify_failed_at: Option<Instant>,
    /// The last successful verification: (when, what it measured, bit/s).
    verified: Option<(Instant, u64)>,
    /// The estimate when the cluster under way (or awaited) started.
    from_bps: u64,
    /// The estimate before the clusters sent lately raised it: the lowest estimate any of
    /// them started from (clusters less than [`RETRY_AFTER`] apart: a chain of successes, a
    /// short probe and the verification it led to), or lower, what one of them measured. The
    /// floor while they settle ([`Self::floor`]).
    base_bps: u64,
    /// When the last cluster was sent whole.
    last_end: Option<Instant>,
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
        if desired_bps <= estimate_bps || !self.idle(now) {
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
        self.from_bps = estimate_bps;
        self.start(rate, false, now);
        Some(rate)
    }

    /// An upgrade needs `need_bps`: starts a verification cluster at that × [`VERIFY_MARGIN`]
    /// unless one succeeded for it lately ([`Self::verified`]), a cluster is under way, or the
    /// last verification failed less than [`RETRY_AFTER`] ago. Returns its rate when one
    /// starts.
    /// `estimate_bps`: the estimate now (see [`Self::verification_of`]).
    pub(crate) fn verify(
        &mut self,
        need_bps: u64,
        estimate_bps: u64,
        max_bps: u64,
        now: Instant,
    ) -> Option<u64> {
        if self.verified(need_bps, now)
            || !self.idle(now)
            || self.verify_failed_at.is_some_and(|t| now < t + RETRY_AFTER)
        {
            return None;
        }
        let rate = ((need_bps as f64 * VERIFY_MARGIN) as u64).min(max_bps);
        self.from_bps = estimate_bps;
        self.start(rate, true, now);
        Some(rate)
    }

    /// A verification is being sent, or its result awaited: the overuse its own queue sets
    /// off says nothing of the path (its result does).
    pub(crate) fn in_verification(&self, now: Instant) -> bool {
        self.active.is_some_and(|c| c.verify)
            || self
                .awaiting
                .is_some_and(|a| a.verify && now < a.ended + RESULT_TIMEOUT)
    }

    /// Cluster `id` is the one awaited: the estimate when it started. What it measured, up to
    /// that, is a floor for the estimate: the overuse its own queue set off backs the estimate
    /// off to what arrived of the media alone, under what the path carried without it.
    pub(crate) fn cluster_from(&self, id: u32) -> Option<u64> {
        self.awaiting.filter(|a| a.id == id).map(|_| self.from_bps)
    }

    /// A verification showed room for `need_bps` less than [`VERIFIED_FOR`] ago.
    pub(crate) fn verified(&self, need_bps: u64, now: Instant) -> bool {
        self.verified
            .is_some_and(|(at, bps)| now < at + VERIFIED_FOR && bps >= need_bps)
    }

    /// A cluster is being sent, or one ended less than [`SETTLE_AFTER`] ago.
    pub(crate) fn probing(&self, now: Instant) -> bool {
        self.active.is_some() || self.last_end.is_some_and(|e| now < e + SETTLE_AFTER)
    }

    /// While probing ([`Self::probing`]), the estimate before the probing raised it: the
    /// estimate is kept at least there. On a link at capacity a cluster (and the pacing at the
    /// estimate a short probe raised) builds a queue that sets off overuse, and a backoff then
    /// goes to 0.85 × an acknowledged rate that lags behind the queue (Chromium behind
    /// 600 kbit/s: 627 → 189 kbit/s during a verification, with no packet lost, which paused
    /// the middle layer for 3.5 s); a saturated reading of a cluster under way reads what its
    /// first packets met. Neither says the path carries less than it did before the probing.
    pub(crate) fn floor(&self, now: Instant) -> Option<u64> {
        self.probing(now).then_some(self.base_bps)
    }

    /// The cluster being sent, if any (its readings so far are partial).
    pub(crate) fn sending(&self) -> Option<u32> {
        self.active.map(|c| c.id)
    }

    /// No cluster is being sent or awaited (one whose result is overdue has failed).
    fn idle(&mut self, now: Instant) -> bool {
        if self.active.is_some() {
            return false;
        }
        if let Some(a) = self.awaiting {
            if now < a.ended + RESULT_TIMEOUT {
                return false;
            }
            // No result: failed.
            self.awaiting = None;
            if a.verify {
                self.verify_failed_at = Some(now);
            } else {
                self.waiting_since = Some(now);
            }
        }
        true
    }

    fn start(&mut self, rate_bps: u64, verify: bool, now: Instant) {
        // A cluster soon after another (the next of a chain of successes, the verification
        // of what a short probe read) starts from an estimate the probing may have raised.
        let chained = self.last_end.is_some_and(|e| now < e + RETRY_AFTER);
        self.base_bps = if chained {
            self.base_bps.min(self.from_bps)
        } else {
            self.from_bps
        };
        self.next_id = self.next_id.wrapping_add(1);
        self.clusters_sent += 1;
        tracing::debug!(
            target: "bwe",
            cluster = self.next_id,
            rate = rate_bps,
            verify,
            estimate = self.from_bps,
            "probe start"
        );
        self.active = Some(Cluster {
            id: self.next_id,
            rate_bps,
            start: now,
            bytes: 0,
            packets: 0,
            verify,
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
            self.last_end = Some(now);
            self.awaiting = Some(Awaiting {
                id: c.id,
                rate_bps: c.rate_bps,
                ended: now,
                verify: c.verify,
            });
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

    /// The estimator measured `bps` for probe cluster `id`. A short probe's result counts only
    /// when the estimate took it (`applied`: not while the path is overused); then a success
    /// probes further while more is wanted, else probing waits. A verification's counts
    /// whatever the estimate did with it. Returns the rate of a cluster started at once.
    pub(crate) fn on_result(
        &mut self,
        id: u32,
        bps: u64,
        applied: bool,
        desired_bps: u64,
        now: Instant,
    ) -> Option<u64> {
        let a = self.awaiting.filter(|a| a.id == id)?;
        tracing::debug!(
            target: "bwe",
            cluster = id,
            rate = a.rate_bps,
            measured = bps,
            applied,
            verify = a.verify,
            "probe result"
        );
        // What the path carried of the cluster is the floor from now on, if lower: a probe
        // from an estimate over the path's rate measures what it is.
        self.base_bps = self.base_bps.min(bps);
        if a.verify {
            self.awaiting = None;
            if bps as f64 * VERIFY_MARGIN >= a.rate_bps as f64 {
                self.verified = Some((now, bps));
            } else {
                self.verify_failed_at = Some(now);
            }
            return None;
        }
        if !applied {
            return None;
        }
        self.awaiting = None;
        let rate = a.rate_bps;
        if bps as f64 >= SUCCESS_RATIO * rate as f64 && desired_bps > bps && self.active.is_none() {
            let next = (bps * 2).min(desired_bps * 2).max(bps + bps / 4);
            self.from_bps = bps;
            self.start(next, false, now);
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
        let next = p.on_result(1, 480_000, true, 5_000_000, now).unwrap();
        assert_eq!(next, 960_000);
        send_cluster(&mut p, 1000, now);
        assert_eq!(
            p.on_result(2, 400_000, true, 5_000_000, now),
            None,
            "failed"
        );
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
    fn a_verification_is_one_long_cluster_at_the_need_and_succeeds_when_the_need_arrives() {
        let now = t0();
        let mut p = Prober::default();
        let need = 600_000;
        let rate = p.verify(need, 700_000, 10_000_000, now).unwrap();
        assert_eq!(rate, 630_000, "the need × VERIFY_MARGIN");
        // 630 kbit/s for 300 ms = 23 625 B, whatever part of it media is.
        let mut t = now;
        let mut n = 0;
        while let Some(due) = p.padding_due() {
            t = due;
            p.on_sent(1000, n % 2 == 0, t);
            n += 1;
        }
        assert_eq!(n, 24);
        assert!(t.duration_since(now) >= VERIFY_DURATION - Duration::from_millis(15));
        assert_eq!(
            p.verify(need, 700_000, 10_000_000, t),
            None,
            "awaiting its result"
        );
        assert!(!p.verified(need, t));
        // A result for another cluster is not its.
        assert_eq!(p.on_result(99, 650_000, true, 0, t), None);
        assert!(!p.verified(need, t));
        // Unapplied (the path overused at the time) counts for a verification.
        assert_eq!(p.on_result(1, 620_000, false, 0, t), None);
        assert!(p.verified(need, t));
        assert!(
            !p.verified(630_000, t),
            "verified for what it measured only"
        );
        assert!(p.verified(need, t + Duration::from_millis(2900)));
        assert!(!p.verified(need, t + VERIFIED_FOR), "for a while only");
    }

    #[test]
    fn a_failed_verification_waits_before_the_next() {
        let now = t0();
        let mut p = Prober::default();
        p.verify(600_000, 700_000, 10_000_000, now).unwrap();
        send_cluster(&mut p, 1000, now);
        // A link of 565 kbit/s, saturated: 0.95 × 565.
        assert_eq!(p.on_result(1, 536_750, true, 0, now), None);
        assert!(!p.verified(600_000, now));
        assert_eq!(
            p.verify(600_000, 700_000, 10_000_000, now + RETRY_AFTER / 2),
            None
        );
        assert!(
            p.verify(600_000, 700_000, 10_000_000, now + RETRY_AFTER)
                .is_some()
        );
        // No result at all fails the same way.
        let t = now + RETRY_AFTER;
        send_cluster(&mut p, 1000, t);
        assert_eq!(
            p.verify(600_000, 700_000, 10_000_000, t + RESULT_TIMEOUT),
            None
        );
        assert_eq!(
            p.verify(
                600_000,
                700_000,
                10_000_000,
                t + RESULT_TIMEOUT + RETRY_AFTER / 2
            ),
            None
        );
        assert!(
            p.verify(
                600_000,
                700_000,
                10_000_000,
                t + RESULT_TIMEOUT + RETRY_AFTER
            )
            .is_some()
        );
    }

    #[test]
    fn an_unapplied_short_probe_result_is_no_result() {
        let now = t0();
        let mut p = Prober::default();
        p.maybe_probe(5_000_000, 250_000, 10_000_000, RETRY_AFTER, now)
            .unwrap();
        send_cluster(&mut p, 1000, now);
        assert_eq!(p.on_result(1, 480_000, false, 5_000_000, now), None);
        // Still awaited: applied later, it probes further.
        assert!(p.on_result(1, 480_000, true, 5_000_000, now).is_some());
    }

    #[test]
    fn the_floor_is_the_estimate_before_the_probing_raised_it_until_its_queue_settles() {
        let now = t0();
        let mut p = Prober::default();
        assert_eq!(p.floor(now), None);
        // A short probe from 487k reads 626k (a failure: under 70 % of its 974k)...
        p.maybe_probe(663_000, 487_000, 10_000_000, RETRY_AFTER, now)
            .unwrap();
        assert_eq!(p.sending(), Some(1));
        assert_eq!(p.floor(now), Some(487_000));
        let t = now + Duration::from_millis(15);
        send_cluster(&mut p, 1000, t);
        assert_eq!(p.sending(), None);
        assert_eq!(p.on_result(1, 626_000, true, 663_000, t), None);
        // ... and the estimate it raised asks for a verification: it started from 626k, but
        // the floor stays what the path carried before the probing.
        let t = t + Duration::from_millis(200);
        p.verify(597_000, 626_000, 10_000_000, t).unwrap();
        assert_eq!(p.floor(t), Some(487_000));
        let end = t + VERIFY_DURATION;
        send_cluster(&mut p, 1000, end);
        assert_eq!(p.floor(end + SETTLE_AFTER / 2), Some(487_000));
        // What the verification measured, if lower, is the floor from then on.
        assert_eq!(p.on_result(2, 465_000, false, 663_000, end), None);
        assert_eq!(p.floor(end), Some(465_000));
        assert_eq!(p.floor(end + SETTLE_AFTER), None, "settled");
        // A probe long after starts from the estimate then.
        let later = end + RETRY_AFTER * 2;
        p.maybe_probe(663_000, 450_000, 10_000_000, RETRY_AFTER, later)
            .unwrap();
        assert_eq!(p.floor(later), Some(450_000));
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
        assert_eq!(p.on_result(1, 30_000, true, 5_000_000, now), None, "failed");
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
