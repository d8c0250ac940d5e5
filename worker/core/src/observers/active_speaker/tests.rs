//! Scenario tests in simulated time: every producer sends a level every 20 ms (or nothing, for
//! DTX), decisions run every 300 ms (mediasoup's default), and the test asserts when the
//! dominant speaker changes.

use super::*;

/// Room noise between words, −70 dBov: what an open microphone sends when its user is quiet.
const NOISE: u8 = 70;
/// Digital silence (a muted or noise-suppressed microphone).
const SILENCE: u8 = 127;
/// A cough: −5 dBov.
const COUGH: u8 = 5;

/// Speech around −20 dBov (−20 to −29), varying from packet to packet.
fn speech(t: u64) -> u8 {
    20 + (t / 20 % 4) as u8 * 3
}

/// Someone who talks in spurts: `on` ms of speech, then `off` ms of room noise.
fn talker(t: u64, on: u64, off: u64) -> u8 {
    if t % (on + off) < on {
        speech(t)
    } else {
        NOISE
    }
}

struct Sim {
    o: ActiveSpeakerObserver<u32>,
    producers: Vec<u32>,
    t0: Instant,
    /// Simulated time, in ms since `t0`.
    now: u64,
    /// Dominant-speaker changes: (ms, producer).
    changes: Vec<(u64, u32)>,
}

impl Sim {
    fn new(producers: &[u32]) -> Self {
        let t0 = crate::test_epoch();
        let mut o = ActiveSpeakerObserver::new(ActiveSpeakerObserver::<u32>::DEFAULT_INTERVAL, t0);
        for &p in producers {
            o.add_producer(p, t0);
        }
        Self {
            o,
            producers: producers.to_vec(),
            t0,
            now: 0,
            changes: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn ms(&self, t: Instant) -> u64 {
        (t - self.t0).as_millis() as u64
    }

    /// Runs until `until` ms: every 20 ms the decisions that are due, then one level from each
    /// producer for which `level(producer, ms)` is `Some` (−dBov).
    fn run(&mut self, until: u64, level: impl Fn(u32, u64) -> Option<u8>) {
        while self.now < until {
            let now = self.at(self.now);
            while let Some(due) = self.o.timeout().filter(|&due| due <= now) {
                if let Some(p) = self.o.on_timeout(due) {
                    self.changes.push((self.ms(due), p));
                }
            }
            for &p in &self.producers {
                if let Some(l) = level(p, self.now) {
                    self.o.on_audio_level(p, l, now);
                }
            }
            self.now += 20;
        }
    }

    /// The changes after `ms`.
    fn changes_after(&self, ms: u64) -> Vec<(u64, u32)> {
        self.changes
            .iter()
            .copied()
            .filter(|&(t, _)| t > ms)
            .collect()
    }
}

#[test]
fn activity_scores_follow_the_formula() {
    assert_eq!(binomial(13, 6), 1716);
    assert_eq!(binomial(10, 0), 1);
    assert_eq!(binomial(5, 5), 1);
    // Nothing active: the floor, on every scale.
    for scale in SCALES {
        assert_eq!(activity_score(0, scale), MIN_ACTIVITY_SCORE);
    }
    // Five of five active blocks: 5 ln 0.5 − ln 24 + 5 × 24.
    let medium = activity_score(5, SCALES[1]);
    assert!(
        (medium - (5.0 * 0.5f64.ln() - 24f64.ln() + 120.0)).abs() < 1e-9,
        "{medium}"
    );
    // Immediate: a quiet band (3) still scores the floor, a speech band (10) does not.
    assert_eq!(activity_score(3, SCALES[0]), MIN_ACTIVITY_SCORE);
    assert!(activity_score(10, SCALES[0]) > 4.0);
    assert_eq!(SUBUNIT_LENGTH_N1, 10);
    assert_eq!(LEVELS_LEN, 50);
}

#[test]
fn noise_floor_drops_at_once_and_rises_over_fifteen_seconds() {
    let t0 = crate::test_epoch();
    let mut s = Speaker::new(t0);
    let mut t = t0;
    let mut feed = |s: &mut Speaker, level: u8, n: u32| {
        for _ in 0..n {
            t += SAMPLE;
            s.level_changed(level, t);
        }
    };
    feed(&mut s, 100, 1);
    assert_eq!(s.min_level, 100);
    feed(&mut s, 0, 10); // Digital silence does not count.
    assert_eq!(s.min_level, 100);
    feed(&mut s, 40, 1);
    assert_eq!(s.min_level, 40);
    // 750 samples never below 90: the floor rises to sqrt(40 × 90) = 60.
    feed(&mut s, 90, MIN_LEVEL_WINDOW_LEN);
    assert_eq!(s.min_level, 60);
    // Levels within one sub-band of the floor are zeroed, the others quantized.
    feed(&mut s, 69, 1);
    feed(&mut s, 70, 1);
    s.eval_activity_scores();
    assert_eq!(s.immediates[..2], [7, 0]);
}

#[test]
fn a_late_packet_writes_the_samples_it_missed() {
    let t0 = crate::test_epoch();
    let mut s = Speaker::new(t0);
    s.level_changed(30, t0 + Duration::from_millis(100)); // 5 samples.
    s.level_changed(100, t0 + Duration::from_millis(110)); // 10 ms later: still one.
    s.level_changed(90, t0 + Duration::from_millis(100)); // Older: dropped.
    s.level_changed(100, t0 + Duration::from_secs(10)); // Capped at the ring's 50.
    assert!(s.levels.iter().all(|&l| l == 100));
    s.level_changed(127, t0 + Duration::from_millis(10_060)); // 60 ms: three samples.
    assert_eq!(s.levels.iter().filter(|&&l| l == 127).count(), 3);
}

#[test]
fn lone_producer_is_dominant_at_the_first_decision() {
    let mut sim = Sim::new(&[1]);
    sim.run(2000, |_, _| Some(NOISE));
    assert_eq!(sim.changes, [(300, 1)]);
    assert_eq!(sim.o.dominant_speaker(), Some(1));
}

#[test]
fn first_speaker_takes_the_floor_from_the_default_candidate() {
    // Nobody speaks at the first decision: the first producer added is the candidate.
    let mut sim = Sim::new(&[1, 2]);
    sim.run(3000, |p, t| {
        Some(if p == 2 && t >= 500 { speech(t) } else { NOISE })
    });
    assert_eq!(sim.changes, [(300, 1), (600, 2)]);
}

#[test]
fn floor_passes_to_the_next_speaker_when_the_dominant_one_stops() {
    // 1 talks from 0.5 s to 4 s, then 2 from 4 s on.
    let mut sim = Sim::new(&[2, 1]);
    sim.run(8000, |p, t| {
        let talking = if p == 1 {
            (500..4000).contains(&t)
        } else {
            t >= 4000
        };
        Some(if talking { speech(t) } else { NOISE })
    });
    assert_eq!(sim.changes, [(300, 2), (600, 1), (4800, 2)]);
    // 800 ms after 2 started: once 2 has had more fully active 100 ms blocks in the last
    // second than 1 (at 4.5 s it is 5 to 5, at 4.8 s 8 to 2).
}

#[test]
fn steady_speaker_takes_over_from_one_who_talks_in_spurts() {
    // 1 talks in 700 ms spurts with 300 ms pauses; from 3 s, 2 talks without pause and louder.
    let mut sim = Sim::new(&[2, 1]);
    sim.run(10_000, |p, t| {
        Some(match p {
            1 if t >= 500 => talker(t, 700, 300),
            2 if t >= 3000 => speech(t) - 10,
            _ => NOISE,
        })
    });
    // 2 takes over at the first decision inside one of 1's pauses (the newest 100 ms quiet):
    // 3.9 s, 900 ms after 2 started. 1's spurts then do not take it back: 2 never pauses.
    assert_eq!(sim.changes, [(300, 2), (600, 1), (3900, 2)]);
}

#[test]
fn quiet_but_continuous_speaker_keeps_the_floor_against_a_louder_one() {
    // Loudness counts only through the quantization: −45 dBov speech is active speech.
    let mut sim = Sim::new(&[1, 2]);
    sim.run(10_000, |p, t| {
        Some(match p {
            1 if t >= 500 => 45 + (t / 20 % 2) as u8,
            2 if t >= 3000 => speech(t) - 15,
            _ => NOISE,
        })
    });
    assert_eq!(sim.changes, [(300, 1)]);
}

/// 1 talks in spurts (700 ms, 300 ms pauses) until `until` ms; 3 is quiet (room noise, or with `dtx`
/// one noise packet every 400 ms) but coughs for 200 ms at each of `coughs` (ms).
fn cough_scenario(coughs: &[u64], dtx: bool, until: u64) -> Sim {
    let mut sim = Sim::new(&[3, 1]);
    sim.run(until, |p, t| {
        if p == 1 {
            return Some(if t >= 500 { talker(t, 700, 300) } else { NOISE });
        }
        if coughs.iter().any(|&c| (c..c + 200).contains(&t)) {
            Some(COUGH)
        } else if dtx {
            (t % 400 == 0).then_some(NOISE)
        } else {
            Some(NOISE)
        }
    });
    sim
}

#[test]
fn a_cough_does_not_take_the_floor_wherever_it_falls() {
    // One cough, at every 20 ms phase of the talker's 1 s cycle and of the 300 ms decisions
    // (3 s of phases), including during the talker's pauses.
    for dtx in [false, true] {
        for phase in (0..3000).step_by(20) {
            let sim = cough_scenario(&[5000 + phase], dtx, 10_000);
            assert_eq!(
                sim.changes,
                [(300, 3), (600, 1)],
                "cough at +{phase} ms, dtx {dtx}"
            );
        }
    }
}

#[test]
fn a_cough_every_few_seconds_does_not_take_the_floor() {
    let coughs: Vec<u64> = (2000..30_000).step_by(2_570).collect();
    for dtx in [false, true] {
        let sim = cough_scenario(&coughs, dtx, 30_000);
        assert_eq!(sim.changes, [(300, 3), (600, 1)], "dtx {dtx}");
    }
}

#[test]
fn a_sustained_shout_from_the_quiet_participant_does_take_the_floor() {
    // The control for the cough tests: the same participant, 1.5 s instead of 200 ms.
    let mut sim = Sim::new(&[3, 1]);
    sim.run(10_000, |p, t| {
        Some(match p {
            1 if t >= 500 => talker(t, 700, 300),
            3 if (5000..6500).contains(&t) => COUGH,
            _ => NOISE,
        })
    });
    // 3 takes the floor 1 s into the shout (at 1's next pause), and 1 takes it back 700 ms
    // after 3 stops.
    assert_eq!(sim.changes_after(600), [(6000, 3), (7200, 1)]);
}

#[test]
fn silence_of_everyone_keeps_the_last_dominant_speaker() {
    let mut sim = Sim::new(&[1, 2]);
    // 2 talks until 3 s; then room noise until 10 s, no packets (DTX) until 20 s, digital
    // silence until 30 s.
    sim.run(30_000, |p, t| match t {
        500..3000 if p == 2 => Some(speech(t)),
        0..10_000 => Some(NOISE),
        10_000..20_000 => None,
        _ => Some(SILENCE),
    });
    assert_eq!(sim.changes, [(300, 1), (600, 2)]);
    assert_eq!(sim.o.dominant_speaker(), Some(2));
}

#[test]
fn removing_the_dominant_speaker_decides_at_once() {
    let mut sim = Sim::new(&[1, 2, 3]);
    // 1 talks from 0.5 s without pause; 3 from 3 s, and cannot take over while 1 talks.
    sim.run(5000, |p, t| match p {
        1 if t >= 500 => Some(speech(t)),
        3 if t >= 3000 => Some(speech(t)),
        _ => Some(NOISE),
    });
    assert_eq!(sim.changes, [(300, 1)]);
    let now = sim.at(5000);
    // 3 is speaking: it beats 2, the default candidate.
    assert_eq!(sim.o.remove_producer(1, now), Some(3));
    // Removing someone else decides nothing.
    assert_eq!(sim.o.remove_producer(1, now), None);
    // The last one left is dominant at once, then nobody is.
    assert_eq!(sim.o.remove_producer(3, now), Some(2));
    assert_eq!(sim.o.remove_producer(2, now), None);
    assert_eq!(sim.o.dominant_speaker(), None);
    assert_eq!(sim.o.on_timeout(sim.at(6000)), None);
}

#[test]
fn paused_producer_cannot_take_the_floor() {
    let mut sim = Sim::new(&[1, 2]);
    // 1 talks from 0.5 s to 2 s; 2 talks from 2 s on, but is paused from 1 s to 5 s.
    let script = |p: u32, t: u64| {
        let talking = if p == 1 {
            (500..2000).contains(&t)
        } else {
            t >= 2000
        };
        Some(if talking { speech(t) } else { NOISE })
    };
    sim.run(1000, script);
    sim.o.set_producer_paused(2, true);
    sim.run(5000, script);
    assert_eq!(sim.changes, [(300, 1)]);
    sim.o.set_producer_paused(2, false);
    sim.run(8000, script);
    // Its levels were ignored while paused (it was fed silence). Its first level after the
    // resume, 200 ms after the last decision, fills those 200 ms (mediasoup's 20 ms sample
    // clock), so it has two fully active blocks at the next decision.
    assert_eq!(sim.changes_after(5000), [(5100, 2)]);
}

#[test]
fn paused_observer_decides_nothing_until_resumed() {
    let mut sim = Sim::new(&[1, 2]);
    sim.run(1000, |_, _| Some(NOISE));
    assert_eq!(sim.changes, [(300, 1)]);
    sim.o.pause();
    assert!(sim.o.is_paused());
    assert_eq!(sim.o.timeout(), None);
    let script = |p: u32, t: u64| {
        Some(if p == 2 && t >= 1000 {
            speech(t)
        } else {
            NOISE
        })
    };
    sim.run(3000, script);
    assert_eq!(sim.o.on_timeout(sim.at(3000)), None);
    assert_eq!(
        sim.changes,
        [(300, 1)],
        "levels and decisions ignored while paused"
    );
    sim.o.resume(sim.at(3010));
    assert_eq!(sim.o.timeout(), Some(sim.at(3310)));
    sim.run(6000, script);
    assert_eq!(sim.changes_after(3000), [(3310, 2)]);
}

#[test]
fn interval_is_clamped() {
    let t0 = crate::test_epoch();
    let o = ActiveSpeakerObserver::<u32>::new(Duration::from_millis(1), t0);
    assert_eq!(o.interval(), Duration::from_millis(100));
    let o = ActiveSpeakerObserver::<u32>::new(Duration::from_secs(9), t0);
    assert_eq!(o.interval(), Duration::from_secs(5));
}
