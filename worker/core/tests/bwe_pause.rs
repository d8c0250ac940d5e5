//! A video consumer the allocator paused (issue 13) in simulated time: a simulcast publisher at
//! 150 / 500 / 1500 kbit/s, one subscriber behind a bottleneck (200 ms drop-tail
//! queue, 20 ms latency) with that one video consumer. Even the lowest layer does not fit: the
//! allocator pauses it. Nothing else is sent on the transport then, so only the prober's
//! padding (padding-only RTX on the paused consumer's stream, covered by the subscriber's
//! transport-wide feedback) can show that the link came back; when it does the consumer
//! resumes on the low layer and climbs. Prints its timeline for the failure report.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::bwe::{BweScenario, RxWindow, between, settled_on, windows_of};
use ferrosfu_sim::*;

const STEP: Duration = Duration::from_millis(250);

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Runs `d` in 250 ms steps, printing the estimate toward the subscriber and its link.
fn run(s: &mut BweScenario, sim: &mut Sim, d: Duration) {
    let end = sim.now + d;
    while sim.now < end {
        s.run_for(sim, STEP);
        let est = s.available_outgoing_bitrate(sim, 0);
        let l = &sim.peers[s.subscribers[0]].down.stats;
        eprintln!(
            "t={:>6.2}s est={est:>8} drops={} maxq={}ms padding={}",
            sim.now.duration_since(sim.start).as_secs_f64(),
            l.queue_drops,
            l.max_queue_delay.as_millis(),
            sim.peers[s.subscribers[0]].rx_padding,
        );
    }
}

/// What the subscriber received of its consumer's stream in 250 ms windows.
fn timeline(sim: &Sim, peer: usize) -> Vec<RxWindow> {
    let ssrc = *sim.peers[peer].rtx_of.values().min().unwrap();
    let ws = windows_of(sim, peer, ssrc, sim.start, STEP);
    for w in &ws {
        eprintln!(
            "  [{:>5.2}-{:>5.2}] layer={:?} {:>8} bps rtx={} loss={:.3}",
            w.start.as_secs_f64(),
            w.end.as_secs_f64(),
            w.layer,
            w.bitrate_bps,
            w.rtx_packets,
            w.loss_before_repair(),
        );
    }
    ws
}

/// The `consumer.layerschange` notifications of consumer `id` so far.
fn layer_changes(sim: &Sim, id: &str) -> Vec<Option<ConsumerLayers>> {
    sim.notifications
        .iter()
        .filter(|n| n.handler_id.as_str() == id)
        .filter_map(|n| match &n.event {
            Event::Media(MediaEvent::ConsumerLayersChange(l)) => Some(*l),
            _ => None,
        })
        .collect()
}

/// The narrow link: under the low layer's base temporal layer (one frame in four of 150
/// kbit/s: about 40 kbit/s with headers), so even the lowest step does not fit. (Behind
/// 100 kbit/s the consumer is not paused: it keeps that base layer.)
const NARROW: u64 = 30_000;
const NARROW_QUEUE: Duration = Duration::from_secs(1);
/// When the link lifts to 5 Mbit/s, in seconds from the start.
const LIFT: f64 = 25.0;

#[test]
fn a_consumer_paused_behind_30k_resumes_on_the_low_layer_when_the_link_lifts() {
    let seed = 23;
    let mut sim = Sim::new(seed);
    let mut down = Link::bottleneck(5_000_000);
    down.latency = Duration::from_millis(20);
    let mut s = BweScenario::new(&mut sim, 1, &down, seed);
    let peer = s.subscribers[0];
    let id = s.consumers[0].clone();
    run(&mut s, &mut sim, secs(5.0));
    let d = &mut sim.peers[peer].down;
    d.rate_bps = Some(NARROW);
    // 200 ms at 30 kbit/s is less than one video packet: a deeper buffer, so that something
    // (and its feedback) gets through.
    d.queue.max_delay = Some(NARROW_QUEUE);
    run(&mut s, &mut sim, secs(20.0));
    let paused_notes = layer_changes(&sim, &id);
    let d = &mut sim.peers[peer].down;
    d.rate_bps = Some(5_000_000);
    d.queue = QueueLimit::default();
    run(&mut s, &mut sim, secs(20.0));
    let ws = timeline(&sim, peer);

    // Paused once the estimate reached the floor (it falls from 2.6 Mbit/s in steps: about
    // 11 s); no media at all from then until the lift.
    let narrow = between(&ws, 5.0, LIFT);
    let last_media = narrow.iter().rposition(|w| w.layer.is_some());
    let paused_at = last_media.map_or(secs(5.0), |i| narrow[i].end);
    eprintln!(
        "paused {:?} after the drop; notifications {paused_notes:?}",
        paused_at - secs(5.0)
    );
    assert!(paused_at <= secs(20.0), "still media at {paused_at:?}");
    assert_eq!(
        paused_notes.last(),
        Some(&None),
        "a layerschange to none when it is paused"
    );

    // Resumes on the low layer within 5 s of the lift, then climbs to the top.
    let after = between(&ws, LIFT, LIFT + 20.0);
    let first = after
        .iter()
        .find(|w| w.layer.is_some())
        .expect("media again after the lift");
    let resumed = first.start.saturating_sub(secs(LIFT));
    let top = settled_on(&ws, 2, LIFT, LIFT + 20.0).map(|t| t - secs(LIFT));
    eprintln!(
        "resumed {resumed:?} after the lift on layer {:?}; on the top layer from {top:?}",
        first.layer
    );
    assert!(resumed <= secs(5.0), "resumed {resumed:?} after the lift");
    assert_eq!(first.layer, Some(0), "the low layer first");
    let top = top.expect("settles on the top layer");
    assert!(top <= secs(15.0), "on the top layer {top:?} after the lift");
    let resumed_notes = &layer_changes(&sim, &id)[paused_notes.len()..];
    assert!(
        resumed_notes.first().is_some_and(|l| l.is_some()),
        "a layerschange to the layers it resumes on: {resumed_notes:?}"
    );
}
