use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn observer(max_entries: u16, threshold: i8) -> (AudioLevelObserver<u32>, Instant) {
    let t0 = crate::test_epoch();
    let mut o = AudioLevelObserver::new(max_entries, threshold, SECOND, t0);
    for p in 1..=4 {
        o.add_producer(p);
    }
    (o, t0)
}

/// 50 packets (1 s at 20 ms) of `level` (−dBov) from `producer`.
fn speak(o: &mut AudioLevelObserver<u32>, producer: u32, level: u8) {
    for _ in 0..50 {
        o.on_audio_level(producer, level);
    }
}

fn volumes(v: &[(u32, i8)]) -> Option<AudioLevelEvent<u32>> {
    Some(AudioLevelEvent::Volumes(v.to_vec()))
}

#[test]
fn volumes_are_sorted_loudest_first_and_capped() {
    let (mut o, t0) = observer(3, -80);
    speak(&mut o, 1, 50);
    speak(&mut o, 2, 10);
    speak(&mut o, 3, 70);
    speak(&mut o, 4, 30);
    assert_eq!(o.timeout(), Some(t0 + SECOND));
    assert_eq!(o.on_timeout(t0 + SECOND / 2), None, "not due yet");
    assert_eq!(
        o.on_timeout(t0 + SECOND),
        volumes(&[(2, -10), (4, -30), (1, -50)])
    );
    assert_eq!(o.timeout(), Some(t0 + 2 * SECOND));
}

#[test]
fn mean_is_taken_in_the_db_domain_and_truncated_like_mediasoup() {
    let (mut o, t0) = observer(1, -80);
    // 25 packets at −20 and 25 at −41: the mean of the dB values, 30.5, reads −30.
    for i in 0..50 {
        o.on_audio_level(1, if i % 2 == 0 { 20 } else { 41 });
    }
    assert_eq!(o.on_timeout(t0 + SECOND), volumes(&[(1, -30)]));
}

#[test]
fn equal_levels_keep_the_order_producers_were_added_in() {
    let (mut o, t0) = observer(4, -80);
    speak(&mut o, 3, 40);
    speak(&mut o, 1, 40);
    speak(&mut o, 2, 20);
    assert_eq!(
        o.on_timeout(t0 + SECOND),
        volumes(&[(2, -20), (1, -40), (3, -40)])
    );
}

#[test]
fn threshold_and_minimum_packet_count_filter_producers() {
    let (mut o, t0) = observer(4, -60);
    speak(&mut o, 1, 60); // −60 ≥ −60: kept.
    speak(&mut o, 2, 61); // −61: below the threshold.
    for _ in 0..MIN_PACKETS - 1 {
        o.on_audio_level(3, 0); // The loudest, but too few packets to count.
    }
    assert_eq!(o.on_timeout(t0 + SECOND), volumes(&[(1, -60)]));
}

#[test]
fn silence_is_reported_once_and_again_only_after_volumes() {
    let (mut o, t0) = observer(1, -50);
    // The observer starts silent: a quiet room reports nothing at all.
    speak(&mut o, 1, 100);
    assert_eq!(o.on_timeout(t0 + SECOND), None);
    speak(&mut o, 1, 10);
    assert_eq!(o.on_timeout(t0 + 2 * SECOND), volumes(&[(1, -10)]));
    // Volumes repeat every interval while someone is loud.
    speak(&mut o, 1, 12);
    assert_eq!(o.on_timeout(t0 + 3 * SECOND), volumes(&[(1, -12)]));
    // Then one silence, for quiet packets and for no packets alike.
    speak(&mut o, 1, 100);
    assert_eq!(
        o.on_timeout(t0 + 4 * SECOND),
        Some(AudioLevelEvent::Silence)
    );
    assert_eq!(o.on_timeout(t0 + 5 * SECOND), None);
    speak(&mut o, 1, 90);
    assert_eq!(o.on_timeout(t0 + 6 * SECOND), None);
    speak(&mut o, 2, 20);
    assert_eq!(o.on_timeout(t0 + 7 * SECOND), volumes(&[(2, -20)]));
    assert_eq!(
        o.on_timeout(t0 + 8 * SECOND),
        Some(AudioLevelEvent::Silence)
    );
}

#[test]
fn paused_producer_is_ignored_until_resumed() {
    let (mut o, t0) = observer(4, -80);
    speak(&mut o, 1, 10);
    speak(&mut o, 2, 20);
    o.set_producer_paused(1, true); // What 1 sent this interval is forgotten too.
    speak(&mut o, 1, 10);
    assert_eq!(o.on_timeout(t0 + SECOND), volumes(&[(2, -20)]));
    o.set_producer_paused(1, false);
    speak(&mut o, 1, 10);
    assert_eq!(o.on_timeout(t0 + 2 * SECOND), volumes(&[(1, -10)]));
}

#[test]
fn paused_observer_reports_silence_once_then_nothing_and_forgets_the_interval() {
    let (mut o, t0) = observer(4, -80);
    speak(&mut o, 1, 10);
    assert_eq!(o.on_timeout(t0 + SECOND), volumes(&[(1, -10)]));
    speak(&mut o, 1, 10);
    assert_eq!(o.pause(), Some(AudioLevelEvent::Silence));
    assert_eq!(o.pause(), None);
    assert!(o.is_paused());
    assert_eq!(o.timeout(), None);
    speak(&mut o, 2, 10); // Ignored while paused.
    assert_eq!(o.on_timeout(t0 + 2 * SECOND), None);

    let resumed = t0 + 2 * SECOND + SECOND / 4;
    o.resume(resumed);
    assert_eq!(
        o.timeout(),
        Some(resumed + SECOND),
        "a fresh interval from the resume"
    );
    // Only what came after the resume counts: 1's levels before the pause were dropped.
    speak(&mut o, 3, 33);
    assert_eq!(o.on_timeout(resumed + SECOND), volumes(&[(3, -33)]));
}

#[test]
fn pausing_a_silent_observer_reports_nothing() {
    let (mut o, _) = observer(1, -80);
    assert_eq!(o.pause(), None);
}

#[test]
fn producer_removed_mid_interval_is_not_reported() {
    let (mut o, t0) = observer(4, -80);
    speak(&mut o, 1, 10);
    speak(&mut o, 2, 20);
    o.remove_producer(1);
    o.on_audio_level(1, 0); // A late packet of the removed producer: ignored.
    assert_eq!(o.on_timeout(t0 + SECOND), volumes(&[(2, -20)]));
    o.remove_producer(1); // Twice: no-op.
    o.add_producer(1);
    speak(&mut o, 1, 5);
    assert_eq!(o.on_timeout(t0 + 2 * SECOND), volumes(&[(1, -5)]));
}

#[test]
fn interval_is_clamped_and_a_late_wake_keeps_no_backlog() {
    let t0 = crate::test_epoch();
    let mut o = AudioLevelObserver::<u32>::new(1, -80, Duration::from_millis(10), t0);
    assert_eq!(o.interval(), Duration::from_millis(250));
    let o2 = AudioLevelObserver::<u32>::new(1, -80, Duration::from_secs(60), t0);
    assert_eq!(o2.interval(), Duration::from_secs(5));
    o.add_producer(1);
    speak(&mut o, 1, 10);
    // The shell woke 1 s late: one report, and the next interval starts from now.
    let late = t0 + Duration::from_millis(1250);
    assert_eq!(o.on_timeout(late), volumes(&[(1, -10)]));
    assert_eq!(o.timeout(), Some(late + Duration::from_millis(250)));
}
