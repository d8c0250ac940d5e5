use super::*;

const MS: Duration = Duration::from_millis(1);

/// A loss-based estimator past its start phase, at 1 Mbit/s, capped at 10 Mbit/s.
fn started(t0: Instant) -> LossBasedBwe {
    let mut l = LossBasedBwe::new(1_000_000, 50_000, 20_000_000);
    l.set_delay_based_limit(1_000_000);
    l.on_packets_lost(0, 20, t0);
    l.update(t0 + 2000 * MS);
    l.set_delay_based_limit(10_000_000);
    l
}

/// A report of `lost` of 20 packets every 100 ms in `from_ms..to_ms`.
fn reports(l: &mut LossBasedBwe, t0: Instant, from_ms: u32, to_ms: u32, lost: u64) {
    for ms in (from_ms..to_ms).step_by(100) {
        l.on_packets_lost(lost, 20, t0 + ms * MS);
    }
}

#[test]
fn a_fraction_needs_twenty_packets() {
    let t0 = crate::test_epoch();
    let mut l = LossBasedBwe::new(1_000_000, 50_000, 20_000_000);
    l.on_packets_lost(5, 10, t0);
    assert_eq!(l.fraction_loss(), 0.0);
    l.on_packets_lost(0, 10, t0);
    assert_eq!(l.fraction_loss(), 64.0 / 256.0);
}

#[test]
fn startup_without_loss_follows_the_delay_based_estimate() {
    let t0 = crate::test_epoch();
    let mut l = LossBasedBwe::new(300_000, 50_000, 20_000_000);
    l.on_packets_lost(0, 20, t0);
    l.set_delay_based_limit(900_000);
    l.update(t0 + 100 * MS);
    assert_eq!(l.estimate_bps(), 900_000);
}

#[test]
fn low_loss_allows_about_eight_percent_a_second() {
    let t0 = crate::test_epoch();
    let mut l = started(t0);
    reports(&mut l, t0, 2000, 7000, 0);
    let after = l.estimate_bps();
    // 1.08^5 ≈ 1.47 (+1 kbit/s a step).
    assert!((1_400_000..1_560_000).contains(&after), "{after}");
}

#[test]
fn moderate_loss_holds() {
    let t0 = crate::test_epoch();
    let mut l = started(t0);
    reports(&mut l, t0, 2000, 7000, 1); // 5 %
    assert_eq!(l.estimate_bps(), 1_000_000);
}

#[test]
fn high_loss_cuts_by_half_the_loss_at_most_every_300_ms_plus_rtt() {
    let t0 = crate::test_epoch();
    let mut l = started(t0);
    l.on_packets_lost(3, 20, t0 + 2000 * MS); // 15 %: 38/256
    assert_eq!(l.estimate_bps(), 1_000_000 * (512 - 38) / 512);
    l.on_packets_lost(3, 20, t0 + 2100 * MS);
    assert_eq!(
        l.estimate_bps(),
        1_000_000 * (512 - 38) / 512,
        "100 ms later: too soon"
    );
    reports(&mut l, t0, 2200, 7000, 3);
    let after = l.estimate_bps();
    // One cut per 500 ms (300 ms + 200 ms default RTT): ~10 cuts of 7.4 %.
    assert!((400_000..550_000).contains(&after), "{after}");
}

#[test]
fn the_delay_based_estimate_caps_it() {
    let t0 = crate::test_epoch();
    let mut l = started(t0);
    l.set_delay_based_limit(700_000);
    assert_eq!(l.estimate_bps(), 700_000);
    reports(&mut l, t0, 2000, 5000, 0);
    assert_eq!(l.estimate_bps(), 700_000);
}
