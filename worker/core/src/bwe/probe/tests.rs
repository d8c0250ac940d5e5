use super::*;

use std::time::Duration;

fn packet(seq: u64, t0: Instant, send_us: u64, arrive_us: Option<u64>) -> PacketResult {
    PacketResult {
        seq,
        sent_at: t0 + Duration::from_micros(send_us),
        size: 1200,
        arrival: arrive_us.map(|a| t0 + Duration::from_micros(50_000 + a)),
        probe_cluster: Some(7),
    }
}

/// A cluster of `n` packets sent 2 ms apart (4.8 Mbit/s), arriving `arrive_every_us` apart.
fn cluster(n: u64, arrive_every_us: u64) -> (ProbeBitrateEstimator, Vec<Option<u64>>) {
    let t0 = crate::test_epoch();
    let mut p = ProbeBitrateEstimator::default();
    let results = (0..n)
        .map(|i| p.on_packet(&packet(i, t0, i * 2000, Some(i * arrive_every_us))))
        .collect();
    (p, results)
}

#[test]
fn unsaturated_link_gives_the_send_rate() {
    let (mut p, results) = cluster(5, 2000);
    assert_eq!(results[..3], [None, None, None], "fewer than 4 packets");
    assert_eq!(results[3], Some(4_800_000));
    assert_eq!(results[4], Some(4_800_000));
    assert_eq!(
        p.take_estimate(),
        Some(ProbeMeasurement {
            cluster: 7,
            bps: 4_800_000,
            saturated: false
        })
    );
    assert_eq!(p.take_estimate(), None);
}

#[test]
fn saturated_link_gives_95_percent_of_the_receive_rate() {
    let (mut p, results) = cluster(5, 4000);
    assert_eq!(results[4], Some(2_280_000));
    assert!(p.take_estimate().unwrap().saturated, "at most this");
}

#[test]
fn slightly_slower_arrival_gives_the_receive_rate() {
    // Receive rate 4.8M × 2/2.1 ≈ 4.57M: over 90 % of the send rate, so the min of both.
    let (mut p, results) = cluster(5, 2100);
    assert_eq!(results[4], Some(4_571_428));
    assert!(!p.take_estimate().unwrap().saturated, "at least this");
}

#[test]
fn under_80_percent_received_gives_nothing() {
    let t0 = crate::test_epoch();
    let mut p = ProbeBitrateEstimator::default();
    assert_eq!(p.on_packet(&packet(0, t0, 0, Some(0))), None);
    assert_eq!(p.on_packet(&packet(1, t0, 2000, None)), None);
    assert_eq!(p.on_packet(&packet(2, t0, 4000, None)), None);
    for i in 3..6 {
        // 4 of 6 received at i = 5.
        assert_eq!(
            p.on_packet(&packet(i, t0, i * 2000, Some(i * 2000))),
            None,
            "{i}"
        );
    }
    // 7 of 9 (78 %): still nothing; 8 of 10: a result (the lost packets' bytes do not
    // count, their send span does: 7 × 1200 B over 18 ms).
    for i in 6..9 {
        assert_eq!(
            p.on_packet(&packet(i, t0, i * 2000, Some(i * 2000))),
            None,
            "{i}"
        );
    }
    assert_eq!(
        p.on_packet(&packet(9, t0, 18_000, Some(18_000))),
        Some(3_733_333)
    );
}

#[test]
fn receive_rate_over_twice_the_send_rate_is_rejected() {
    let (_, results) = cluster(5, 500);
    assert_eq!(results[4], None);
}

#[test]
fn media_packets_are_not_probes() {
    let t0 = crate::test_epoch();
    let mut p = ProbeBitrateEstimator::default();
    for i in 0..10 {
        let mut media = packet(i, t0, i * 2000, Some(i * 2000));
        media.probe_cluster = None;
        assert_eq!(p.on_packet(&media), None);
    }
}
