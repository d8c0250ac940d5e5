//! The bandwidth-estimation simulation is deterministic: a simulcast publisher at 150 / 500 /
//! 1500 kbit/s, one subscriber behind a 600 kbit/s link answering with transport-wide feedback,
//! the SFU estimating, pacing, probing and allocating — the same seed gives the same run, packet
//! for packet (what `bwe_allocation` asserts is reproducible).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_sim::bwe::BweScenario;
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
fn the_same_seed_gives_the_same_run() {
    let (a, sa) = run(5);
    let (b, sb) = run(5);
    let (pa, pb) = (a.subscribers[0], b.subscribers[0]);
    assert_eq!(sa.peers[pa].down.stats, sb.peers[pb].down.stats);
    assert_eq!(sa.peers[pa].rx_raw, sb.peers[pb].rx_raw);
    assert_eq!(a.publisher.bytes_sent, b.publisher.bytes_sent);
}
