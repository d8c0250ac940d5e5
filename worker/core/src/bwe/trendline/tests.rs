use super::*;

fn ms(n: f64) -> Duration {
    Duration::from_secs_f64(n / 1e3)
}

/// Feeds packets sent every `send_ms` and arriving every `arrive_ms`; returns the deltas.
fn deltas(count: usize, send_ms: f64, arrive_ms: f64) -> Vec<GroupDelta> {
    let t0 = crate::test_epoch();
    let mut ia = InterArrival::default();
    (0..count)
        .filter_map(|i| {
            let send = t0 + ms(send_ms * i as f64);
            let arrival = t0 + ms(50.0 + arrive_ms * i as f64);
            ia.compute_deltas(send, arrival, arrival, 1200)
        })
        .collect()
}

#[test]
fn packets_are_grouped_by_five_ms_of_send_time() {
    // One packet per ms: groups of 6 (the group ends when a send is > 5 ms after its first).
    let d = deltas(60, 1.0, 1.0);
    assert_eq!(
        d.len(),
        60 / 6 - 2,
        "one delta per group after the first two"
    );
    for delta in &d {
        assert!((delta.send_delta_ms - 6.0).abs() < 1e-6, "{delta:?}");
        assert!(
            (delta.arrival_delta_ms - delta.send_delta_ms).abs() < 1e-6,
            "{delta:?}"
        );
    }
}

#[test]
fn a_burst_arriving_back_to_back_stays_one_group() {
    // Sent 10 ms apart but arriving 1 ms apart (released from a queue): one burst.
    assert!(deltas(20, 10.0, 1.0).is_empty());
}

#[test]
fn packets_sent_before_the_current_group_are_ignored() {
    let t0 = crate::test_epoch();
    let mut ia = InterArrival::default();
    assert_eq!(
        ia.compute_deltas(t0 + ms(100.0), t0 + ms(150.0), t0, 1200),
        None
    );
    assert_eq!(
        ia.compute_deltas(t0 + ms(90.0), t0 + ms(151.0), t0, 1200),
        None
    );
    assert_eq!(
        ia.current.map(|g| g.size),
        Some(1200),
        "the reordered packet was not counted"
    );
}

/// Feeds `n` group deltas of `send_ms` / `arrive_ms` into a trendline; returns its states.
fn run_trendline(
    t: &mut Trendline,
    t0: Instant,
    start: usize,
    n: usize,
    send_ms: f64,
    arrive_ms: f64,
) -> Vec<BandwidthUsage> {
    (start..start + n)
        .map(|i| {
            t.update(
                GroupDelta {
                    send_delta_ms: send_ms,
                    arrival_delta_ms: arrive_ms,
                },
                t0 + ms(send_ms * i as f64),
            );
            t.state()
        })
        .collect()
}

#[test]
fn stable_delay_is_normal() {
    let mut t = Trendline::default();
    let states = run_trendline(&mut t, crate::test_epoch(), 0, 200, 5.0, 5.0);
    assert!(states.iter().all(|s| *s == BandwidthUsage::Normal));
}

#[test]
fn growing_delay_is_overuse_and_draining_is_underuse() {
    let t0 = crate::test_epoch();
    let mut t = Trendline::default();
    run_trendline(&mut t, t0, 0, 100, 5.0, 5.0);
    // The queue grows by 1 ms per 5 ms group.
    let states = run_trendline(&mut t, t0, 100, 40, 5.0, 6.0);
    let first = states.iter().position(|s| *s == BandwidthUsage::Overusing);
    assert!(
        first.is_some_and(|i| i >= 1),
        "needs > 10 ms and two groups over the threshold: {states:?}"
    );
    // It drains by 1 ms per group.
    let states = run_trendline(&mut t, t0, 140, 60, 5.0, 4.0);
    assert!(states.contains(&BandwidthUsage::Underusing), "{states:?}");
}

#[test]
fn a_single_late_group_is_not_overuse() {
    let t0 = crate::test_epoch();
    let mut t = Trendline::default();
    run_trendline(&mut t, t0, 0, 100, 5.0, 5.0);
    let states = run_trendline(&mut t, t0, 100, 1, 5.0, 9.0);
    assert_eq!(states, [BandwidthUsage::Normal]);
}

#[test]
fn threshold_adapts_within_its_bounds() {
    let t0 = crate::test_epoch();
    let mut t = Trendline::default();
    run_trendline(&mut t, t0, 0, 400, 5.0, 5.0);
    // A flat trend pulls the threshold down (k_down) to its floor.
    assert!(
        (t.threshold_ms - MIN_THRESHOLD_MS).abs() < 1e-9,
        "{}",
        t.threshold_ms
    );
    // A steady moderate trend pulls it up (k_up), never past the ceiling.
    run_trendline(&mut t, t0, 400, 2000, 5.0, 5.3);
    assert!(
        t.threshold_ms > MIN_THRESHOLD_MS && t.threshold_ms <= MAX_THRESHOLD_MS,
        "{}",
        t.threshold_ms
    );
}
