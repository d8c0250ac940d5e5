//! Splitting a transport's estimate between its consumers: audio always; then the lowest layer
//! of every video consumer, highest priority first, pausing those whose lowest layer no longer
//! fits; then upgrades in rounds, a consumer of priority `p` taking up to `p` steps a round,
//! interleaved, highest priority first (so priority 2 climbs twice as fast as priority 1, and
//! equal priorities share alike), until nothing more fits.
//!
//! A pure function of what it is given ([`allocate`]); [`Hysteresis`] turns its answers into
//! what is applied: a step down at once once the estimate no longer covers [`KEEP_SHARE`] of
//! it, a step up only after the allocation asked for it for [`UP_HOLD`] without interruption
//! (a paused consumer resumes on its lowest layer, and climbs from there like any other).

use std::time::{Duration, Instant};

/// An upgrade is applied once the estimate allowed it for this long.
pub(crate) const UP_HOLD: Duration = Duration::from_millis(1500);
/// The hold instead when a verification showed the path carries the upgrade.
pub(crate) const UP_HOLD_VERIFIED: Duration = Duration::from_millis(750);

/// What the allocator knows of one consumer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate {
    /// 1 (lowest) ..= 255.
    pub priority: u8,
    /// Audio: always sent, at `steps[0]`'s bitrate.
    pub audio: bool,
    /// The bitrates (bit/s) of the layers it may take, lowest first, each the total of that
    /// choice (not the increment); its preference is the last. Empty: nothing to send now.
    pub steps: Vec<u64>,
}

/// What a consumer gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Grant {
    /// Its lowest layer does not fit: send nothing.
    Paused,
    /// `steps[i]`.
    Step(usize),
}

/// The allocation of `budget_bps` between `cands` (same order), and the bitrate it uses.
pub(crate) fn allocate(budget_bps: u64, cands: &[Candidate]) -> (Vec<Grant>, u64) {
    let mut grants = vec![Grant::Paused; cands.len()];
    let mut left = budget_bps;
    let mut used = 0;
    for (i, c) in cands.iter().enumerate() {
        if c.audio {
            let b = c.steps.first().copied().unwrap_or(0);
            grants[i] = Grant::Step(0);
            left = left.saturating_sub(b);
            used += b;
        }
    }
    let mut order: Vec<usize> = (0..cands.len()).filter(|&i| !cands[i].audio).collect();
    // Highest priority first; equal priorities in the order given (stable).
    order.sort_by_key(|&i| std::cmp::Reverse(cands[i].priority));
    for &i in &order {
        if let Some(&b) = cands[i].steps.first()
            && b <= left
        {
            grants[i] = Grant::Step(0);
            left -= b;
            used += b;
        }
    }
    // Rounds of weighted round robin: in a round, pass k gives one step to every consumer of
    // priority > k, highest priority first, so steps interleave and equal priorities share alike.
    let passes = order
        .iter()
        .map(|&i| cands[i].priority.max(1))
        .max()
        .unwrap_or(1);
    loop {
        let mut changed = false;
        for k in 0..passes {
            for &i in &order {
                if cands[i].priority.max(1) <= k {
                    continue;
                }
                let Grant::Step(s) = grants[i] else {
                    continue;
                };
                let steps = &cands[i].steps;
                let Some(&next) = steps.get(s + 1) else {
                    continue;
                };
                let cost = next.saturating_sub(steps[s]);
                if cost > left {
                    continue;
                }
                left -= cost;
                used += cost;
                grants[i] = Grant::Step(s + 1);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    (grants, used)
}

/// A granted layer is kept while the estimate covers this share of it: a dip the size of a
/// keyframe's overuse backoffs (0.85, two or three times) does not switch down, a real drop does.
pub(crate) const KEEP_SHARE: f64 = 0.75;

/// What an upgrade waits for besides the allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpGate {
    /// [`UP_HOLD`] of asking.
    Hold,
    /// A verification of the path under way (the time asked still counts).
    Wait,
    /// A verification showed the path carries it: [`UP_HOLD_VERIFIED`] of asking.
    Verified,
}

/// Applies allocations with hysteresis: down at once, up after [`UP_HOLD`] of asking.
#[derive(Debug, Default)]
pub(crate) struct Hysteresis {
    /// Since when the allocation has asked for more than is applied.
    up_since: Option<Instant>,
}

impl Hysteresis {
    /// `applied` (updated in place) moves toward `wanted` (the allocation of the budget):
    /// down at once as far as `keep` (the allocation of the budget ÷ [`KEEP_SHARE`]) says; up,
    /// to `wanted`, once more has been wanted for [`UP_HOLD`] — from a pause, to the lowest
    /// step only (its keyframe is the smallest; the path's room was measured with padding, not
    /// video). `gate`: whether the upgrade also waits for a verification of the path. Returns
    /// whether any upgrade is still held back.
    pub(crate) fn apply(
        &mut self,
        applied: &mut [Grant],
        wanted: &[Grant],
        keep: &[Grant],
        gate: UpGate,
        now: Instant,
    ) -> bool {
        let mut up = false;
        for ((a, &w), &k) in applied.iter_mut().zip(wanted).zip(keep) {
            if k < *a {
                *a = k;
            }
            if w > *a {
                up = true;
            }
        }
        if !up {
            self.up_since = None;
            return false;
        }
        let since = *self.up_since.get_or_insert(now);
        let hold = match gate {
            UpGate::Wait => return true,
            UpGate::Hold => UP_HOLD,
            UpGate::Verified => UP_HOLD_VERIFIED,
        };
        if now.saturating_duration_since(since) < hold {
            return true;
        }
        let mut held = false;
        for (a, &w) in applied.iter_mut().zip(wanted) {
            if *a == Grant::Paused && w > Grant::Step(0) {
                *a = Grant::Step(0);
                held = true;
            } else {
                *a = (*a).max(w);
            }
        }
        self.up_since = held.then_some(now);
        held
    }

    /// A drop of the estimate: what was held for an upgrade starts over.
    pub(crate) fn congested(&mut self) {
        self.up_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(priority: u8, steps: &[u64]) -> Candidate {
        Candidate {
            priority,
            audio: false,
            steps: steps.to_vec(),
        }
    }

    const SIMULCAST: &[u64] = &[150_000, 650_000, 2_150_000];

    #[test]
    fn audio_always_then_the_lowest_layers_then_upgrades() {
        let audio = Candidate {
            priority: 1,
            audio: true,
            steps: vec![40_000],
        };
        let c = [audio, video(1, SIMULCAST), video(1, SIMULCAST)];
        let (g, used) = allocate(900_000, &c);
        assert_eq!(g, [Grant::Step(0), Grant::Step(1), Grant::Step(0)]);
        assert_eq!(used, 40_000 + 650_000 + 150_000);
        // Under the audio: it still goes, and video pauses.
        let (g, _) = allocate(30_000, &c);
        assert_eq!(g, [Grant::Step(0), Grant::Paused, Grant::Paused]);
    }

    #[test]
    fn a_settles_on_the_middle_layer_at_600k_and_the_low_one_at_250k() {
        let c = [video(1, &[150_000, 500_000, 1_500_000])];
        assert_eq!(allocate(600_000, &c).0, [Grant::Step(1)]);
        assert_eq!(allocate(250_000, &c).0, [Grant::Step(0)]);
        assert_eq!(allocate(100_000, &c).0, [Grant::Paused]);
        assert_eq!(allocate(5_000_000, &c).0, [Grant::Step(2)]);
    }

    #[test]
    fn priorities_split_the_estimate_as_documented() {
        // Steps of 100k: priority 3 climbs three steps a round to priority 1's one.
        let steps: Vec<u64> = (1..=10).map(|i| i * 100_000).collect();
        let c = [video(1, &steps), video(3, &steps)];
        let (g, _) = allocate(800_000, &c);
        // Lowest layers: 100k each (600k left); round 1: p3 +1, p1 +1, p3 +1, p3 +1 (200k
        // left); round 2: p3 +1, p1 +1 (0 left).
        assert_eq!(g, [Grant::Step(2), Grant::Step(4)]);
        // Equal priorities share alike.
        let c = [video(2, &steps), video(2, &steps)];
        assert_eq!(allocate(800_000, &c).0, [Grant::Step(3), Grant::Step(3)]);
        // The higher priority keeps its lowest layer when only one fits.
        let c = [video(1, &steps), video(9, &steps)];
        assert_eq!(allocate(150_000, &c).0, [Grant::Paused, Grant::Step(0)]);
    }

    #[test]
    fn hysteresis_goes_down_at_once_and_up_after_the_hold() {
        #[allow(clippy::disallowed_methods)] // tests: an arbitrary origin
        let t0 = Instant::now();
        let mut h = Hysteresis::default();
        let mut applied = [Grant::Step(2)];
        let (s0, s1) = ([Grant::Step(0)], [Grant::Step(1)]);
        // What the tolerant allocation keeps stays.
        assert!(!h.apply(&mut applied, &s0, &[Grant::Step(2)], UpGate::Hold, t0));
        assert_eq!(applied, [Grant::Step(2)]);
        assert!(!h.apply(&mut applied, &s0, &s0, UpGate::Hold, t0));
        assert_eq!(applied, [Grant::Step(0)]);
        assert!(h.apply(&mut applied, &s1, &s1, UpGate::Hold, t0));
        assert!(h.apply(&mut applied, &s1, &s1, UpGate::Hold, t0 + UP_HOLD / 2));
        assert_eq!(applied, [Grant::Step(0)]);
        // An interruption starts the hold over.
        h.apply(&mut applied, &s0, &s1, UpGate::Hold, t0 + UP_HOLD / 2);
        h.apply(&mut applied, &s1, &s1, UpGate::Hold, t0 + UP_HOLD);
        assert_eq!(applied, [Grant::Step(0)]);
        assert!(!h.apply(&mut applied, &s1, &s1, UpGate::Hold, t0 + UP_HOLD * 2));
        assert_eq!(applied, [Grant::Step(1)]);
    }

    #[test]
    fn a_verification_holds_an_upgrade_and_its_success_shortens_the_hold() {
        #[allow(clippy::disallowed_methods)] // tests: an arbitrary origin
        let t0 = Instant::now();
        let mut h = Hysteresis::default();
        let mut applied = [Grant::Step(0)];
        let s1 = [Grant::Step(1)];
        // Waiting for the verification: nothing, however long, but the time asked counts.
        assert!(h.apply(&mut applied, &s1, &s1, UpGate::Wait, t0));
        assert!(h.apply(&mut applied, &s1, &s1, UpGate::Wait, t0 + UP_HOLD * 2));
        assert_eq!(applied, [Grant::Step(0)]);
        // Verified: up once asked for UP_HOLD_VERIFIED (here long since).
        assert!(!h.apply(&mut applied, &s1, &s1, UpGate::Verified, t0 + UP_HOLD * 2));
        assert_eq!(applied, [Grant::Step(1)]);
        // A fresh ask, verified at once: UP_HOLD_VERIFIED, not UP_HOLD.
        let s2 = [Grant::Step(2)];
        let t1 = t0 + UP_HOLD * 3;
        assert!(h.apply(&mut applied, &s2, &s2, UpGate::Verified, t1));
        assert!(!h.apply(
            &mut applied,
            &s2,
            &s2,
            UpGate::Verified,
            t1 + UP_HOLD_VERIFIED
        ));
        assert_eq!(applied, [Grant::Step(2)]);
    }

    #[test]
    fn a_paused_consumer_resumes_on_its_lowest_step_then_climbs() {
        #[allow(clippy::disallowed_methods)] // tests: an arbitrary origin
        let t0 = Instant::now();
        let mut h = Hysteresis::default();
        let mut applied = [Grant::Paused];
        let s2 = [Grant::Step(2)];
        assert!(h.apply(&mut applied, &s2, &s2, UpGate::Hold, t0));
        assert_eq!(applied, [Grant::Paused]);
        // After the hold: the lowest step, and the rest held anew.
        assert!(h.apply(&mut applied, &s2, &s2, UpGate::Hold, t0 + UP_HOLD));
        assert_eq!(applied, [Grant::Step(0)]);
        assert!(h.apply(&mut applied, &s2, &s2, UpGate::Hold, t0 + UP_HOLD * 3 / 2));
        assert_eq!(applied, [Grant::Step(0)]);
        assert!(!h.apply(&mut applied, &s2, &s2, UpGate::Hold, t0 + UP_HOLD * 2));
        assert_eq!(applied, [Grant::Step(2)]);
    }
}
