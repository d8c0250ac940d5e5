use super::*;

use std::time::Duration;

/// 1250-byte packets arriving every 10 ms (1 Mbit/s) for `ms`, then at `then_every_ms`.
fn feed(a: &mut AckedBitrate, t0: Instant, from_ms: u64, to_ms: u64, every_ms: u64) {
    for ms in (from_ms..to_ms).step_by(every_ms as usize) {
        a.on_packet(t0 + Duration::from_millis(ms), 1250);
    }
}

#[test]
fn steady_arrivals_give_their_rate() {
    let t0 = crate::test_epoch();
    let mut a = AckedBitrate::default();
    feed(&mut a, t0, 0, 490, 10);
    assert_eq!(a.bitrate_bps(), None, "the first window is 500 ms");
    feed(&mut a, t0, 490, 3000, 10);
    let bps = a.bitrate_bps().expect("measured");
    assert!((950_000..1_050_000).contains(&bps), "{bps}");
}

#[test]
fn a_lasting_halving_is_followed_within_a_second() {
    let t0 = crate::test_epoch();
    let mut a = AckedBitrate::default();
    feed(&mut a, t0, 0, 3000, 10);
    feed(&mut a, t0, 3000, 4000, 20);
    let bps = a.bitrate_bps().expect("measured");
    assert!((450_000..600_000).contains(&bps), "{bps}");
}

#[test]
fn one_outlier_window_moves_it_little() {
    let t0 = crate::test_epoch();
    let mut a = AckedBitrate::default();
    feed(&mut a, t0, 0, 3000, 10);
    // 150 ms with twice the packets.
    feed(&mut a, t0, 3000, 3150, 5);
    feed(&mut a, t0, 3150, 3310, 10);
    let bps = a.bitrate_bps().expect("measured");
    assert!(bps < 1_300_000, "{bps}");
}
