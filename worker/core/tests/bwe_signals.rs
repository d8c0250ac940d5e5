//! What the send-side controller tells and takes from its app (issue 13), in simulated time:
//! `transport.set_max/min_outgoing_bitrate` bound the estimate and so the layers granted,
//! `transport.enable_trace_event(['bwe'])` turns on `bwe` traces, the allocator's pauses are
//! notified (`ConsumerBwePause`), and dynacast tells a producer which spatial layers its
//! consumers need (`ProducerLayersNeeded`). The publisher sends 150 / 500 / 1500 kbit/s.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::bwe::{BweScenario, PRODUCER, settled_on, windows_of};
use ferrosfu_sim::*;

const STEP: Duration = Duration::from_millis(250);

fn link(rate: Option<u64>) -> Link {
    let mut l = match rate {
        Some(r) => Link::bottleneck(r),
        None => Link::default(),
    };
    l.latency = Duration::from_millis(20);
    l
}

fn scenario(seed: u64, rate: Option<u64>) -> (BweScenario, Sim) {
    let mut sim = Sim::new(seed);
    let s = BweScenario::new(&mut sim, 1, &link(rate), seed);
    (s, sim)
}

fn transport_id(s: &BweScenario, sim: &Sim) -> String {
    sim.peers[s.subscribers[0]].transport_id.clone()
}

fn stats(s: &BweScenario, sim: &mut Sim) -> TransportStats {
    let tid = transport_id(s, sim);
    match sim.request(&tid, RequestBody::TransportGetStats) {
        Ok(ResponseBody::TransportStats(st)) => st,
        other => panic!("transport.getStats: {other:?}"),
    }
}

fn request(s: &BweScenario, sim: &mut Sim, body: RequestBody) -> Result<(), RequestFailure> {
    let tid = transport_id(s, sim);
    sim.request(&tid, body).map(|_| ())
}

/// The notifications of `handler` so far, taken out of the simulation.
fn events_of(sim: &mut Sim, handler: &str) -> Vec<MediaEvent> {
    let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut sim.notifications)
        .into_iter()
        .partition(|n| n.handler_id.as_str() == handler);
    sim.notifications = rest;
    mine.into_iter()
        .filter_map(|n| match n.event {
            Event::Media(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn ssrc_of(sim: &Sim, peer: usize) -> u32 {
    *sim.peers[peer].rtx_of.values().min().unwrap()
}

#[test]
fn max_outgoing_bitrate_caps_the_estimate_and_the_layer_on_a_fast_link() {
    let (mut s, mut sim) = scenario(21, None);
    request(
        &s,
        &mut sim,
        RequestBody::TransportSetMaxOutgoingBitrate(400_000),
    )
    .unwrap();
    s.run_for(&mut sim, Duration::from_secs(10));
    let st = stats(&s, &mut sim);
    assert_eq!(st.max_outgoing_bitrate, 400_000);
    assert!(
        st.available_outgoing_bitrate <= 400_000,
        "estimate {} over the 400k ceiling",
        st.available_outgoing_bitrate
    );
    // Lifted: the estimate grows and the top layer comes.
    request(&s, &mut sim, RequestBody::TransportSetMaxOutgoingBitrate(0)).unwrap();
    s.run_for(&mut sim, Duration::from_secs(15));
    let peer = s.subscribers[0];
    let ws = windows_of(&sim, peer, ssrc_of(&sim, peer), sim.start, STEP);
    let low = settled_on(&ws, 0, 0.0, 10.0).expect("on the low layer under the ceiling");
    assert!(
        low <= Duration::from_secs(3),
        "on the low layer from {low:?}"
    );
    let top = settled_on(&ws, 2, 10.0, 25.0).expect("on the top layer once lifted");
    eprintln!("low from {low:?}, top from {top:?} (lifted at 10 s)");
    assert!(stats(&s, &mut sim).available_outgoing_bitrate > 1_500_000);
}

#[test]
fn outgoing_bounds_are_checked() {
    let (s, mut sim) = scenario(22, None);
    // (request, accepted?) in order: a ceiling under the floor of 30k, a floor over the
    // ceiling and a ceiling under the floor are invalid arguments.
    use RequestBody::{
        TransportSetMaxOutgoingBitrate as Max, TransportSetMinOutgoingBitrate as Min,
    };
    for (body, ok) in [
        (Max(10_000), false),
        (Max(500_000), true),
        (Min(600_000), false),
        (Min(300_000), true),
        (Max(200_000), false),
    ] {
        let what = format!("{body:?}");
        match request(&s, &mut sim, body) {
            Ok(()) => assert!(ok, "{what} accepted"),
            Err(e) => {
                assert!(!ok, "{what} refused: {e:?}");
                assert_eq!(e.kind, ErrorKind::InvalidArgument, "{what}");
            }
        }
    }
    let st = stats(&s, &mut sim);
    assert_eq!(
        (st.min_outgoing_bitrate, st.max_outgoing_bitrate),
        (300_000, 500_000)
    );
}

#[test]
fn bwe_traces_come_only_once_enabled_and_say_the_estimate() {
    let (mut s, mut sim) = scenario(23, Some(600_000));
    let tid = transport_id(&s, &sim);
    s.run_for(&mut sim, Duration::from_secs(3));
    let before = events_of(&mut sim, &tid);
    assert!(
        !before
            .iter()
            .any(|e| matches!(e, MediaEvent::TransportBweTrace(_))),
        "traces before enable_trace_event"
    );
    request(
        &s,
        &mut sim,
        RequestBody::TransportEnableTraceEvent(vec![TraceEventType::Bwe]),
    )
    .unwrap();
    s.run_for(&mut sim, Duration::from_secs(10));
    let traces: Vec<BweTrace> = events_of(&mut sim, &tid)
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::TransportBweTrace(t) => Some(t),
            _ => None,
        })
        .collect();
    // About one a second (more when the estimate drops).
    assert!(
        (8..=40).contains(&traces.len()),
        "{} traces in 10 s",
        traces.len()
    );
    let last = traces.last().unwrap();
    assert_eq!(last.bwe_type, BweType::TransportCc);
    assert!(
        (300_000..=900_000).contains(&last.available_bitrate),
        "available {} behind 600k",
        last.available_bitrate
    );
    assert!(
        last.desired_bitrate >= 1_200_000,
        "desired {}",
        last.desired_bitrate
    );
    assert!(last.effective_desired_bitrate <= last.available_bitrate);
    // Turned off again.
    request(&s, &mut sim, RequestBody::TransportEnableTraceEvent(vec![])).unwrap();
    s.run_for(&mut sim, Duration::from_secs(3));
    assert!(
        !events_of(&mut sim, &tid)
            .iter()
            .any(|e| matches!(e, MediaEvent::TransportBweTrace(_)))
    );
}

#[test]
fn a_consumer_the_link_cannot_carry_is_paused_with_a_notification() {
    // Behind 600k, then 40 kbit/s: not even the low layer's base temporal layer fits.
    let (mut s, mut sim) = scenario(24, Some(600_000));
    s.run_for(&mut sim, Duration::from_secs(5));
    sim.peers[s.subscribers[0]].down.rate_bps = Some(40_000);
    for _ in 0..80 {
        s.run_for(&mut sim, STEP);
        let st = stats(&s, &mut sim);
        eprintln!(
            "t={:?} est={} loss={:?}",
            sim.now - sim.start,
            st.available_outgoing_bitrate,
            st.rtp_packet_loss_sent
        );
    }
    let cid = s.consumers[0].clone();
    let events = events_of(&mut sim, &cid);
    assert!(
        events.contains(&MediaEvent::ConsumerBwePause),
        "no ConsumerBwePause: {events:?}"
    );
    let st = stats(&s, &mut sim);
    assert!(st.rtp_packet_loss_sent.is_some());
}

/// The `ProducerLayersNeeded` notifications of the publisher so far.
fn layers_needed(sim: &mut Sim) -> Vec<Vec<u8>> {
    events_of(sim, PRODUCER)
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::ProducerLayersNeeded(l) => Some(l),
            _ => None,
        })
        .collect()
}

#[test]
fn dynacast_tells_the_producer_the_spatial_layers_its_consumers_need() {
    let (mut s, mut sim) = scenario(25, Some(600_000));
    s.run_for(&mut sim, Duration::from_secs(10));
    let needed = layers_needed(&mut sim);
    eprintln!("layers needed: {needed:?}");
    // Behind 600k the one subscriber is on the middle layer: the top one is not needed.
    assert_eq!(needed.last(), Some(&vec![0, 1]));
    // The subscriber's link lifts: the top layer is needed again.
    sim.peers[s.subscribers[0]].down.rate_bps = Some(5_000_000);
    s.run_for(&mut sim, Duration::from_secs(15));
    let needed = layers_needed(&mut sim);
    assert_eq!(needed.last(), Some(&vec![0, 1, 2]));
}

/// Publishes for `d` in 250 ms steps as an app that follows dynacast: it stops the encodings
/// no consumer needs (keeping the lowest, for a newcomer's first frame) and resumes them when
/// needed again. Returns the layers it was told last.
fn run_obeying_dynacast(s: &mut BweScenario, sim: &mut Sim, d: Duration) -> Option<Vec<u8>> {
    let end = sim.now + d;
    let mut last = None;
    while sim.now < end {
        s.run_for(sim, STEP);
        for e in events_of(sim, PRODUCER) {
            if let MediaEvent::ProducerLayersNeeded(needed) = e {
                for (i, a) in s.publisher.active.iter_mut().enumerate() {
                    *a = i == 0 || needed.contains(&(i as u8));
                }
                eprintln!("t={:?} needed {needed:?}", sim.now - sim.start);
                last = Some(needed);
            }
        }
    }
    last
}

#[test]
fn a_publisher_that_follows_dynacast_stops_the_top_layer_and_resumes_it_when_a_link_lifts() {
    let (mut s, mut sim) = scenario(26, Some(600_000));
    let told = run_obeying_dynacast(&mut s, &mut sim, Duration::from_secs(10));
    assert_eq!(told, Some(vec![0, 1]));
    assert!(!s.publisher.active[2], "the top encoding still sent");
    let top_bytes = s.publisher.bytes_sent[2];
    run_obeying_dynacast(&mut s, &mut sim, Duration::from_secs(5));
    assert_eq!(
        s.publisher.bytes_sent[2], top_bytes,
        "top encoding sent while unneeded"
    );
    // The link lifts: the allocator grants the top layer at its last measured cost, the
    // publisher is told to resume it, and the subscriber gets it.
    sim.peers[s.subscribers[0]].down.rate_bps = Some(5_000_000);
    let lifted = sim.now - sim.start;
    let told = run_obeying_dynacast(&mut s, &mut sim, Duration::from_secs(20));
    assert_eq!(told, Some(vec![0, 1, 2]));
    let peer = s.subscribers[0];
    let ws = windows_of(&sim, peer, ssrc_of(&sim, peer), sim.start, STEP);
    let lift = lifted.as_secs_f64();
    let top = settled_on(&ws, 2, lift, lift + 20.0).expect("on the top layer after the lift");
    eprintln!("top layer {:?} after the lift", top - lifted);
    assert!(top - lifted <= Duration::from_secs(15));
}

#[test]
fn a_link_that_drops_everything_backs_the_estimate_off_without_feedback() {
    // 30 kbit/s behind a 200 ms queue holds no video packet: nothing arrives, no feedback
    // comes, and the estimate must not stay where it was.
    let (mut s, mut sim) = scenario(27, Some(2_000_000));
    s.run_for(&mut sim, Duration::from_secs(8));
    let before = stats(&s, &mut sim).available_outgoing_bitrate;
    sim.peers[s.subscribers[0]].down.rate_bps = Some(30_000);
    let mut fell_at = None;
    for i in 1..=80 {
        s.run_for(&mut sim, STEP);
        let est = stats(&s, &mut sim).available_outgoing_bitrate;
        eprintln!(
            "{:>5.2}s after the drop: estimate {est}",
            f64::from(i) * 0.25
        );
        if est < 100_000 && fell_at.is_none() {
            fell_at = Some(f64::from(i) * 0.25);
        }
    }
    eprintln!("estimate {before} before the drop, under 100k {fell_at:?} s after");
    assert!(before > 1_000_000, "estimate {before} behind 2 Mbit/s");
    let fell_at = fell_at.expect("the estimate stays over 100k without feedback");
    assert!(fell_at <= 6.0, "under 100k only {fell_at} s after the drop");
    let cid = s.consumers[0].clone();
    let events = events_of(&mut sim, &cid);
    assert!(events.contains(&MediaEvent::ConsumerBwePause), "{events:?}");
}

#[test]
fn a_top_layer_the_publisher_has_not_sent_yet_is_not_stopped_by_dynacast() {
    // As a browser whose own estimate is still ramping up: the top encoding is held back for
    // the first 6 s, so the SFU has never measured it when dynacast first decides. The
    // subscriber's link is wide and it prefers the top layer.
    let (mut s, mut sim) = scenario(27, None);
    s.publisher.active[2] = false;
    s.run_for(&mut sim, Duration::from_secs(6));
    let told = layers_needed(&mut sim);
    eprintln!("layers needed while the top encoding was held back: {told:?}");
    assert!(
        told.iter().all(|l| l.contains(&2)),
        "dynacast stopped a layer it never measured: {told:?}"
    );
    // The publisher may send it now, and obeys dynacast from here on (an app that was told to
    // stop it would keep it off): the subscriber gets the top layer.
    s.publisher.active[2] = told.last().is_none_or(|l| l.contains(&2));
    let from = sim.now - sim.start;
    run_obeying_dynacast(&mut s, &mut sim, Duration::from_secs(15));
    assert!(s.publisher.active[2], "the top encoding is off");
    let peer = s.subscribers[0];
    let ws = windows_of(&sim, peer, ssrc_of(&sim, peer), sim.start, STEP);
    let f = from.as_secs_f64();
    let top = settled_on(&ws, 2, f, f + 15.0).expect("on the top layer");
    eprintln!("top layer {:?} after it was first sent", top - from);
}
