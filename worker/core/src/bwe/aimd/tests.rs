use super::*;

fn step(
    a: &mut AimdRateControl,
    t0: Instant,
    from_ms: u64,
    to_ms: u64,
    usage: BandwidthUsage,
    throughput: u64,
) -> u64 {
    let mut last = a.estimate_bps();
    for ms in (from_ms..to_ms).step_by(100) {
        last = a.update(usage, Some(throughput), t0 + Duration::from_millis(ms));
    }
    last
}

#[test]
fn far_from_congestion_it_grows_about_eight_percent_a_second() {
    let t0 = crate::test_epoch();
    let mut a = AimdRateControl::new(1_000_000, 10_000, 10_000_000);
    // Hold -> Increase at 0 ms, then 10 updates over 1 s.
    let after = step(&mut a, t0, 0, 1100, BandwidthUsage::Normal, 1_000_000);
    assert!((1_070_000..1_090_000).contains(&after), "{after}");
}

#[test]
fn increase_is_capped_by_the_acknowledged_throughput() {
    let t0 = crate::test_epoch();
    let mut a = AimdRateControl::new(1_000_000, 10_000, 10_000_000);
    let after = step(&mut a, t0, 0, 3000, BandwidthUsage::Normal, 500_000);
    assert_eq!(
        after, 1_000_000,
        "1.5 × 500k + 10k is under the estimate already"
    );
}

#[test]
fn overuse_backs_off_to_085_of_the_throughput_then_holds_while_draining() {
    let t0 = crate::test_epoch();
    let mut a = AimdRateControl::new(1_000_000, 10_000, 10_000_000);
    let after = a.update(BandwidthUsage::Overusing, Some(900_000), t0);
    assert_eq!(after, 765_000);
    let held = step(&mut a, t0, 100, 1100, BandwidthUsage::Underusing, 900_000);
    assert_eq!(held, 765_000);
}

#[test]
fn near_the_last_congestion_it_grows_additively() {
    let t0 = crate::test_epoch();
    let mut a = AimdRateControl::new(1_000_000, 10_000, 10_000_000);
    a.update(BandwidthUsage::Overusing, Some(1_000_000), t0);
    assert_eq!(a.estimate_bps(), 850_000);
    // Hold -> Increase, then 1 s of normal: about one 1180-byte packet per 300 ms response time.
    let after = step(&mut a, t0, 100, 1200, BandwidthUsage::Normal, 850_000);
    let gained = after - 850_000;
    assert!((25_000..40_000).contains(&gained), "{gained}");
}

#[test]
fn further_reductions_wait_an_rtt_unless_throughput_collapsed() {
    let t0 = crate::test_epoch();
    let mut a = AimdRateControl::new(1_000_000, 10_000, 10_000_000);
    a.update(BandwidthUsage::Overusing, Some(1_000_000), t0);
    let soon = t0 + Duration::from_millis(50);
    assert!(!a.time_to_reduce_further(soon, 800_000));
    assert!(
        a.time_to_reduce_further(soon, 400_000),
        "under half the estimate"
    );
    assert!(a.time_to_reduce_further(t0 + Duration::from_millis(200), 800_000));
    a.set_rtt(Duration::from_millis(20));
    assert!(a.time_to_reduce_further(t0 + Duration::from_millis(20), 800_000));
}

#[test]
fn the_estimate_stays_within_the_bounds() {
    let t0 = crate::test_epoch();
    let mut a = AimdRateControl::new(100_000, 80_000, 200_000);
    assert_eq!(
        a.update(BandwidthUsage::Overusing, Some(10_000), t0),
        80_000
    );
    a.set_estimate(5_000_000, t0);
    assert_eq!(a.estimate_bps(), 200_000);
    a.set_bounds(300_000, 400_000);
    assert_eq!(a.estimate_bps(), 300_000);
}

#[test]
fn an_overuse_while_probing_backs_off_no_lower_than_the_floor_and_learns_no_capacity() {
    let t0 = crate::test_epoch();
    let mut a = AimdRateControl::new(626_000, 10_000, 10_000_000);
    a.set_probe_floor(Some(487_000));
    // The acknowledged rate lags behind the cluster's queue: 0.85 × 222k would be 189k.
    assert_eq!(
        a.update(BandwidthUsage::Overusing, Some(222_000), t0),
        487_000
    );
    assert_eq!(
        step(&mut a, t0, 200, 600, BandwidthUsage::Overusing, 222_000),
        487_000
    );
    assert!(a.link_capacity.estimate_bps().is_none(), "nothing learned");
    // Once it settled, overuse backs off from the throughput again.
    a.set_probe_floor(None);
    let t = t0 + Duration::from_secs(1);
    assert_eq!(
        a.update(BandwidthUsage::Overusing, Some(500_000), t),
        425_000
    );
    assert!(a.link_capacity.estimate_bps().is_some());
}
