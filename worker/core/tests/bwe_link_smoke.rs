//! Send-side estimation toward a subscriber behind a bottleneck (issue 13), the smoke test of
//! the simulation it needs: a simulcast publisher at 150 / 500 / 1500 kbit/s, one subscriber
//! preferring the highest layer behind a 600 kbit/s link, answering with transport-wide
//! feedback. The SFU does not adapt yet (the allocator comes with issue 13): it forwards the
//! 1500k layer into the bottleneck, whose queue fills and drops. This holds the simulation to
//! its word (feedback reaches the SFU's estimator, the link shapes) without asserting what the
//! SFU does about it.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::bwe::{BweScenario, windows};
use ferrosfu_sim::*;

fn run(seed: u64) -> (BweScenario, Sim) {
    let mut sim = Sim::new(seed);
    let down = Link {
        latency: Duration::from_millis(20),
        ..Link::bottleneck(600_000)
    };
    let mut s = BweScenario::new(&mut sim, 1, &down, seed);
    s.run_for(&mut sim, Duration::from_secs(5));
    (s, sim)
}

#[test]
fn subscriber_behind_600k_bottleneck_sends_feedback_and_the_queue_shapes() {
    let (s, mut sim) = run(31);
    let peer = s.subscribers[0];
    let start = sim.start;
    let link = sim.peers[peer].down.stats;
    let feedbacks = sim.peers[peer].twcc_feedbacks_sent;
    eprintln!("down link: {link:?}; {feedbacks} feedback packets");
    // About one feedback per 100 ms for 5 s.
    assert!(
        (35..=60).contains(&feedbacks),
        "{feedbacks} feedback packets"
    );
    let est = s.available_outgoing_bitrate(&mut sim, 0);
    eprintln!("availableOutgoingBitrate: {est} bit/s");
    assert!(est > 0, "the feedback reached the estimator");
    // 1.5 Mbit/s into 600 kbit/s: the queue hits its 200 ms limit and drops.
    assert!(link.queue_drops > 50, "{link:?}");
    assert!(
        link.max_queue_delay >= Duration::from_millis(150),
        "{link:?}"
    );
    assert!(
        link.max_queue_delay <= Duration::from_millis(200),
        "{link:?}"
    );
    // The subscriber's receiver reports say it loses (the consumer's score follows).
    let c = s.consumers[0].clone();
    let stats = match sim.request(&c, RequestBody::ConsumerGetStats).unwrap() {
        ResponseBody::RtpStreamStats(st) => st,
        other => panic!("{other:?}"),
    };
    eprintln!("consumer: {:?}", stats[0]);
    assert!(
        stats[0].fraction_lost > 0 && stats[0].packets_lost > 0,
        "{stats:?}"
    );
    assert!(stats[0].score < 10, "{stats:?}");
    // What arrived is the bottleneck's rate, and it is the top layer, with loss.
    let ws = windows(
        &sim,
        peer,
        start + Duration::from_secs(2),
        Duration::from_secs(1),
    );
    assert_eq!(ws.len(), 3, "{ws:?}");
    for w in &ws {
        eprintln!("{w:?}");
        assert!(
            (450_000..=620_000).contains(&w.bitrate_bps),
            "the link's rate: {w:?}"
        );
        assert_eq!(w.layer, Some(2), "{w:?}");
        assert!(w.loss_before_repair() > 0.1, "{w:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let (a, sa) = run(5);
    let (b, sb) = run(5);
    let (pa, pb) = (a.subscribers[0], b.subscribers[0]);
    assert_eq!(sa.peers[pa].down.stats, sb.peers[pb].down.stats);
    assert_eq!(sa.peers[pa].rx_raw, sb.peers[pb].rx_raw);
    assert_eq!(a.publisher.bytes_sent, b.publisher.bytes_sent);
}
