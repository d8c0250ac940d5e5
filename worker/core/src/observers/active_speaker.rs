//! mediasoup's ActiveSpeakerObserver: the dominant speaker of a router.
//!
//! This is I. Volfin and I. Cohen, "Dominant Speaker Identification for Multipoint
//! Videoconferencing" (Computer Speech & Language, 2013), as Jitsi implemented it
//! (`DominantSpeakerIdentification`) and mediasoup ported it (`ActiveSpeakerObserver.cpp`),
//! with mediasoup's constants and quirks unless a deviation below says otherwise.
//!
//! # Per speaker: three time scales
//!
//! Each audio level (RFC 6464, converted to `127 − level`: 0 silent, 127 loudest) is a 20 ms
//! sample in a ring of the last [`LEVELS_LEN`] = 50 samples (1 s). A packet that comes more than
//! 20 ms after the previous one writes `elapsed / 20 ms` copies (at most 50), so DTX, pauses and
//! 40/60 ms packets keep the 20 ms sample clock; a speaker with no packet for more than
//! [`LEVEL_IDLE_TIMEOUT`] is fed silence at each decision. From that ring, newest first:
//!
//! - **immediates** (50, one per sample): the level quantized into [`N1`] = 13 sub-bands of
//!   [`SUBUNIT_LENGTH_N1`] = 10 levels (0..=12), after zeroing levels less than one sub-band
//!   above the speaker's noise floor (`min_level`, below);
//! - **mediums** (10, one per 100 ms block of [`N2`] = 5 immediates): how many immediates of the
//!   block are above [`MEDIUM_THRESHOLD`] = 7 (a level of 80, about −47 dBov, or more);
//! - **longs** (1, over the [`N3`] = 10 mediums, 1 s): how many blocks are above
//!   [`LONG_THRESHOLD`] = 4, i.e. fully active 100 ms blocks.
//!
//! The noise floor `min_level` is the lowest non-zero level seen; it drops at once to a lower
//! level, and every [`MIN_LEVEL_WINDOW_LEN`] = 750 samples (15 s) without a lower one it rises to
//! the geometric mean of itself and the window's minimum. Digital silence (level 0) does not
//! count, so a speaker with no background noise needs varying speech levels to register.
//!
//! # Activity scores and the decision
//!
//! Each scale's newest bucket `v` (out of `n` sub-units) is scored by the paper's likelihood
//! ratio of speech against silence, a binomial speech model against an exponential silence
//! model: `ln C(n, v) + v ln p + (n − v) ln(1 − p) − ln λ + λ v`, with `p` = 0.5 and `λ` = 0.78
//! (immediate, n = 13), 24 (medium, n = 5) and 47 (long, n = 10), floored at
//! [`MIN_ACTIVITY_SCORE`] = 1e−10.
//!
//! Every `interval` (default 300 ms) a challenger `i` is compared to the dominant speaker `d` on
//! each scale, `c = ln(score_i / score_d)`, and takes over only if `c1 > C1 = 3`, `c2 > C2 = 2`
//! and `c3 > C3 = 0` all hold (among several, the largest `c2` wins). In practice: the dominant
//! speaker's newest sample and last 100 ms must be (near) silent, and the challenger must have
//! had more fully active 100 ms blocks in the last second than the dominant speaker. A cough
//! raises a silent participant's immediate and medium scores but gives at most two active
//! blocks (up to five with DTX, whose first cough packet also fills the gap since the last
//! decision), fewer than a speaker who is talking, so it does not take the floor; nobody takes
//! it when everyone is silent, since all long scores are then equal. Loudness counts only
//! through the quantization: a quieter speaker who keeps talking keeps the floor.
//!
//! With no dominant speaker yet (or after it was removed), the first producer added is the
//! candidate (mediasoup: the first of a hash map), and a lone producer is dominant at once.
//!
//! # Deviations from mediasoup
//!
//! - Producer order is insertion order, not hash order, so results are reproducible.
//! - A speaker idle for [`SPEAKER_IDLE_TIMEOUT`] (1 h, reachable only after the observer was
//!   paused that long) is left out of the challengers until its next level; mediasoup marks it
//!   paused for good (until its producer is paused and resumed).
//! - `min_level + 10` is computed without mediasoup's `int8_t` wrap (a noise floor of 118 or
//!   more, about −9 dBov, zeroed nothing there and zeroes everything here).
//! - Removing the dominant speaker of a paused observer decides nothing until it is resumed.

use std::hash::Hash;
use std::time::{Duration, Instant};

use super::{ProducerTable, next_tick};

/// Sub-bands of the immediate scale (the paper's N1).
const N1: u8 = 13;
/// Immediates per medium, i.e. 20 ms samples per 100 ms block (N2).
const N2: u8 = 5;
/// Mediums per long, i.e. 100 ms blocks per second (N3).
const N3: u8 = 10;
/// How many longs are kept (only the newest is scored).
const LONG_COUNT: usize = 1;
/// Minimum `ln` ratio of the immediate scores for a challenger to take over.
const C1: f64 = 3.0;
/// Minimum `ln` ratio of the medium scores.
const C2: f64 = 2.0;
/// Minimum `ln` ratio of the long scores.
const C3: f64 = 0.0;
/// The loudest level (127 − 0 −dBov).
const MAX_LEVEL: u8 = 127;
/// Silence (and the "none yet" of the noise floor).
const MIN_LEVEL: u8 = 0;
/// Levels per immediate sub-band: ceil(127 / 13) = 10.
const SUBUNIT_LENGTH_N1: u8 = (MAX_LEVEL - MIN_LEVEL).div_ceil(N1);
/// An immediate above this counts towards its medium.
const MEDIUM_THRESHOLD: u8 = 7;
/// A medium above this counts towards the long.
const LONG_THRESHOLD: u8 = 4;
/// Samples kept: one second of 20 ms samples.
const LEVELS_LEN: usize = LONG_COUNT * N3 as usize * N2 as usize;
const IMMEDIATES_LEN: usize = LEVELS_LEN;
const MEDIUMS_LEN: usize = LONG_COUNT * N3 as usize;
const LONGS_LEN: usize = LONG_COUNT;
/// The sample period the algorithm assumes.
const SAMPLE: Duration = Duration::from_millis(20);
/// Samples over which the noise floor may rise (15 s).
const MIN_LEVEL_WINDOW_LEN: u32 = 15_000 / 20;
/// The floor of every activity score (so that the `ln` ratios stay finite).
const MIN_ACTIVITY_SCORE: f64 = 1e-10;
/// A speaker with no level for longer than this is fed silence at the next decision.
const LEVEL_IDLE_TIMEOUT: Duration = Duration::from_millis(40);
/// A speaker with no level for longer than this stops being a challenger.
const SPEAKER_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// The `p` of the binomial speech model, for all scales.
const P: f64 = 0.5;
/// `(n, λ)` of the immediate, medium and long scores.
const SCALES: [(u8, f64); 3] = [(N1, 0.78), (N2, 24.0), (N3, 47.0)];

/// `C(n, r)`, as mediasoup computes it (exact for the n ≤ 13 used here).
fn binomial(n: u8, r: u8) -> u64 {
    let r = u64::from(r.max(n - r));
    let mut t = 1;
    for (j, i) in (r + 1..=u64::from(n)).rev().enumerate() {
        t = t * i / (j as u64 + 1);
    }
    t
}

/// The activity score of `v` active sub-units out of `n` (see the module docs).
fn activity_score(v: u8, (n, lambda): (u8, f64)) -> f64 {
    let v = v.min(n);
    let score =
        (binomial(n, v) as f64).ln() + f64::from(v) * P.ln() + f64::from(n - v) * (1.0 - P).ln()
            - lambda.ln()
            + lambda * f64::from(v);
    score.max(MIN_ACTIVITY_SCORE)
}

/// Counts, for each big bucket, the littles above `threshold` in its share of `littles`.
/// Returns whether any big bucket changed.
fn compute_bigs(littles: &[u8], bigs: &mut [u8], threshold: u8) -> bool {
    let per_big = littles.len() / bigs.len();
    let mut changed = false;
    for (big, chunk) in bigs.iter_mut().zip(littles.chunks(per_big)) {
        // At most per_big (5 or 10): fits a u8.
        let sum = chunk.iter().filter(|&&l| l > threshold).count() as u8;
        changed |= *big != sum;
        *big = sum;
    }
    changed
}

/// The level history and scores of one producer.
#[derive(Debug)]
struct Speaker {
    /// Ring of 20 ms samples; `next_level` is where the next one goes.
    levels: [u8; LEVELS_LEN],
    next_level: usize,
    /// Newest first.
    immediates: [u8; IMMEDIATES_LEN],
    mediums: [u8; MEDIUMS_LEN],
    longs: [u8; LONGS_LEN],
    /// Immediate, medium and long activity scores.
    scores: [f64; 3],
    min_level: u8,
    next_min_level: u8,
    next_min_level_window_len: u32,
    last_level_change: Instant,
    /// Its producer is paused: not a challenger, levels ignored.
    paused: bool,
    /// No level for [`SPEAKER_IDLE_TIMEOUT`]: not a challenger until the next level.
    idle: bool,
}

impl Speaker {
    fn new(now: Instant) -> Self {
        Self {
            levels: [MIN_LEVEL; LEVELS_LEN],
            next_level: 0,
            immediates: [0; IMMEDIATES_LEN],
            mediums: [0; MEDIUMS_LEN],
            longs: [0; LONGS_LEN],
            scores: [MIN_ACTIVITY_SCORE; 3],
            min_level: MIN_LEVEL,
            next_min_level: MIN_LEVEL,
            next_min_level_window_len: 0,
            last_level_change: now,
            paused: false,
            idle: false,
        }
    }

    /// A level (0 silent, 127 loudest) at `now`: one sample per 20 ms since the last one.
    fn level_changed(&mut self, level: u8, now: Instant) {
        let Some(elapsed) = now.checked_duration_since(self.last_level_change) else {
            return; // Older than the last one: mediasoup drops it too.
        };
        self.last_level_change = now;
        let level = level.min(MAX_LEVEL);
        let samples = (elapsed.as_millis() / SAMPLE.as_millis()).clamp(1, LEVELS_LEN as u128);
        for _ in 0..samples {
            self.levels[self.next_level] = level;
            self.next_level = (self.next_level + 1) % LEVELS_LEN;
        }
        self.update_min_level(level);
    }

    /// Tracks the noise floor (see the module docs).
    fn update_min_level(&mut self, level: u8) {
        if level == MIN_LEVEL {
            return;
        }
        if self.min_level == MIN_LEVEL || self.min_level > level {
            self.min_level = level;
            self.next_min_level = MIN_LEVEL;
            self.next_min_level_window_len = 0;
        } else if self.next_min_level == MIN_LEVEL {
            self.next_min_level = level;
            self.next_min_level_window_len = 1;
        } else {
            self.next_min_level = self.next_min_level.min(level);
            self.next_min_level_window_len += 1;
            if self.next_min_level_window_len >= MIN_LEVEL_WINDOW_LEN {
                let mean = (f64::from(self.min_level) * f64::from(self.next_min_level)).sqrt();
                // Between two levels of 1..=127: the cast truncates like mediasoup's.
                self.min_level = mean.clamp(f64::from(MIN_LEVEL), f64::from(MAX_LEVEL)) as u8;
                self.next_min_level = MIN_LEVEL;
                self.next_min_level_window_len = 0;
            }
        }
    }

    /// Recomputes the scales from the samples, each only if the finer one changed.
    fn eval_activity_scores(&mut self) {
        if !self.compute_immediates() {
            return;
        }
        self.scores[0] = activity_score(self.immediates[0], SCALES[0]);
        if !compute_bigs(&self.immediates, &mut self.mediums, MEDIUM_THRESHOLD) {
            return;
        }
        self.scores[1] = activity_score(self.mediums[0], SCALES[1]);
        if compute_bigs(&self.mediums, &mut self.longs, LONG_THRESHOLD) {
            self.scores[2] = activity_score(self.longs[0], SCALES[2]);
        }
    }

    fn compute_immediates(&mut self) -> bool {
        let floor = u16::from(self.min_level) + u16::from(SUBUNIT_LENGTH_N1);
        let mut changed = false;
        for (i, immediate) in self.immediates.iter_mut().enumerate() {
            let level = self.levels[(self.next_level + LEVELS_LEN - 1 - i) % LEVELS_LEN];
            let level = if u16::from(level) < floor {
                MIN_LEVEL
            } else {
                level
            };
            let quantized = level / SUBUNIT_LENGTH_N1;
            changed |= *immediate != quantized;
            *immediate = quantized;
        }
        changed
    }
}

/// The ActiveSpeakerObserver of one router: Volfin and Cohen's dominant speaker identification,
/// as mediasoup runs it. The algorithm, its constants and where this port differs from mediasoup
/// are explained at the top of `observers/active_speaker.rs`.
#[derive(Debug)]
pub struct ActiveSpeakerObserver<K> {
    interval: Duration,
    /// The next decision; `None` while the observer is paused.
    due: Option<Instant>,
    /// When idle speakers were last fed silence (`None`: never, the first decision skips it).
    last_idle_check: Option<Instant>,
    dominant: Option<K>,
    speakers: ProducerTable<K, Speaker>,
}

impl<K: Copy + Eq + Hash> ActiveSpeakerObserver<K> {
    /// mediasoup's default interval.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(300);
    /// The shortest interval: a shorter one is raised to this (mediasoup's clamp).
    pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
    /// The longest interval: a longer one is lowered to this.
    pub const MAX_INTERVAL: Duration = Duration::from_millis(5000);

    /// A running observer, first deciding at `now + interval` (clamped to
    /// [`Self::MIN_INTERVAL`]..=[`Self::MAX_INTERVAL`]).
    pub fn new(interval: Duration, now: Instant) -> Self {
        let interval = interval.clamp(Self::MIN_INTERVAL, Self::MAX_INTERVAL);
        Self {
            interval,
            due: Some(now + interval),
            last_idle_check: None,
            dominant: None,
            speakers: ProducerTable::new(),
        }
    }

    /// The interval, after clamping.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether the observer is paused.
    pub fn is_paused(&self) -> bool {
        self.due.is_none()
    }

    /// The current dominant speaker, if any was reported.
    pub fn dominant_speaker(&self) -> Option<K> {
        self.dominant
    }

    /// Observes `producer` (an audio producer) from `now` on; adding it twice changes nothing.
    pub fn add_producer(&mut self, producer: K, now: Instant) {
        self.speakers.insert(producer, Speaker::new(now));
    }

    /// Stops observing `producer`. If it was the dominant speaker, a decision is taken at once
    /// (unless the observer is paused) and its result returned: the new dominant speaker.
    pub fn remove_producer(&mut self, producer: K, now: Instant) -> Option<K> {
        self.speakers.remove(producer)?;
        if self.dominant != Some(producer) {
            return None;
        }
        self.dominant = None;
        if self.is_paused() {
            None
        } else {
            self.update(now)
        }
    }

    /// The producer was paused (its levels are ignored and it cannot take the floor; if it has
    /// it, it keeps it until someone else speaks) or resumed.
    pub fn set_producer_paused(&mut self, producer: K, paused: bool) {
        if let Some(speaker) = self.speakers.get_mut(producer) {
            speaker.paused = paused;
        }
    }

    /// Pauses the observer: levels are ignored and nothing is decided until [`Self::resume`].
    /// The speakers' histories are kept.
    pub fn pause(&mut self) {
        self.due = None;
    }

    /// Resumes a paused observer: the next decision is at `now + interval` (no-op if running).
    pub fn resume(&mut self, now: Instant) {
        if self.due.is_none() {
            self.due = Some(now + self.interval);
        }
    }

    /// One level from `producer`'s `ssrc-audio-level` extension, in −dBov (0 loudest, 127
    /// silence; larger values count as 127). The voice-activity bit is not used (mediasoup).
    pub fn on_audio_level(&mut self, producer: K, level: u8, now: Instant) {
        if self.is_paused() {
            return;
        }
        if let Some(speaker) = self.speakers.get_mut(producer).filter(|s| !s.paused) {
            speaker.idle = false;
            speaker.level_changed(MAX_LEVEL - level.min(MAX_LEVEL), now);
        }
    }

    /// When [`Self::on_timeout`] has something to do: the next decision, `None` while paused.
    pub fn timeout(&self) -> Option<Instant> {
        self.due
    }

    /// Takes the decision if it is due; returns the new dominant speaker when it changed.
    pub fn on_timeout(&mut self, now: Instant) -> Option<K> {
        let due = self.due.filter(|&due| due <= now)?;
        self.due = Some(next_tick(due, self.interval, now));
        self.update(now)
    }

    fn update(&mut self, now: Instant) -> Option<K> {
        let idle_check_due = self
            .last_idle_check
            .is_none_or(|t| now.saturating_duration_since(t) >= LEVEL_IDLE_TIMEOUT);
        if idle_check_due {
            if self.last_idle_check.is_some() {
                self.timeout_idle_levels(now);
            }
            self.last_idle_check = Some(now);
        }
        let new = self.calculate_active_speaker()?;
        if self.dominant == Some(new) {
            return None;
        }
        self.dominant = Some(new);
        Some(new)
    }

    /// Feeds silence to speakers without a level for [`LEVEL_IDLE_TIMEOUT`], and retires from
    /// the challengers those without one for [`SPEAKER_IDLE_TIMEOUT`].
    fn timeout_idle_levels(&mut self, now: Instant) {
        let dominant = self.dominant;
        for (key, speaker) in self.speakers.iter_mut() {
            let idle = now.saturating_duration_since(speaker.last_level_change);
            if idle > SPEAKER_IDLE_TIMEOUT && dominant != Some(key) {
                speaker.idle = true;
            } else if idle > LEVEL_IDLE_TIMEOUT {
                speaker.level_changed(MIN_LEVEL, now);
            }
        }
    }

    /// The speaker who should be dominant now, or `None` for "no change" (see the module docs).
    fn calculate_active_speaker(&mut self) -> Option<K> {
        let (first, _) = self.speakers.iter().next()?;
        if self.speakers.len() == 1 {
            return Some(first);
        }
        // Scores are a function of the samples: evaluating everyone (mediasoup evaluates the
        // dominant speaker and the challengers) changes no decision.
        for (_, speaker) in self.speakers.iter_mut() {
            speaker.eval_activity_scores();
        }
        // The reference is the dominant speaker, or, with none, the first producer, which is
        // then also the candidate. The dominant speaker is always in the table (removing it
        // clears it), so the fallback is for safety only.
        let current = self
            .dominant
            .and_then(|d| self.speakers.get(d).map(|s| (d, s.scores)));
        let (mut new, reference) = match current {
            Some((_, scores)) => (None, scores),
            None => (Some(first), self.speakers.get(first).map(|s| s.scores)?),
        };
        let mut best_c2 = C2;
        for (key, speaker) in self.speakers.iter() {
            if self.dominant == Some(key) || speaker.paused || speaker.idle {
                continue;
            }
            let c = |i: usize| (speaker.scores[i] / reference[i]).ln();
            let (c1, c2, c3) = (c(0), c(1), c(2));
            if c1 > C1 && c2 > C2 && c3 > C3 && c2 > best_c2 {
                best_c2 = c2;
                new = Some(key);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests;
