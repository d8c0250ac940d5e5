//! A producer piped from one worker's router to another's (two cores in one simulated time,
//! their PipeTransports joined by links): a consumer of type `pipe` forwards every encoding on
//! its own SSRC, the producer of the same id on the far side serves simulcast consumers there;
//! NACKs and PLIs cross the pipe; closing either side closes what depends on it.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::HashSet;
use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::pipe::*;
use ferrosfu_sim::simulcast::*;
use ferrosfu_sim::*;

/// A simulcast publisher on worker a, its producer piped to worker b, a simulcast subscriber
/// on b preferring each layer.
fn piped_simulcast(seed: u64) -> (Piped, SimulcastPublisher, Vec<usize>) {
    let mut p = Piped::new(seed);
    let publisher = SimulcastPublisher::new(&mut p.a, "cam", false);
    p.pipe_producer("cam", LAYERS);
    let subs = (0..LAYERS as u8)
        .map(|l| simulcast_subscriber(&mut p.b, &format!("c{l}"), "cam", layers(l, None)))
        .collect();
    (p, publisher, subs)
}

fn run(p: &mut Piped, publisher: &mut SimulcastPublisher, d: Duration) {
    p.run_with(d, |a| {
        publisher.tick(a);
    });
}

fn stats(sim: &mut Sim, consumer: &str) -> Vec<RtpStreamStats> {
    match sim
        .request(consumer, RequestBody::ConsumerGetStats)
        .unwrap()
    {
        ResponseBody::RtpStreamStats(s) => s,
        other => panic!("{other:?}"),
    }
}

fn notified(sim: &Sim, handler: &str, event: &MediaEvent) -> usize {
    sim.notifications
        .iter()
        .filter(|n| n.handler_id.as_str() == handler && n.event == Event::Media(event.clone()))
        .count()
}

/// Packets of `layer` the subscriber got (after the first of that layer), as the publisher's
/// (frame, data) — and whether they are all of that layer.
fn of_layer(sim: &Sim, sub: usize, layer: usize) -> (Vec<(u32, Vec<u8>)>, bool) {
    let rx = received(sim, sub);
    let start = rx.iter().position(|r| r.layer == layer).unwrap_or(rx.len());
    let rest = &rx[start..];
    let only = rest.iter().all(|r| r.layer == layer);
    (
        rest.iter().map(|r| (r.frame, r.data.clone())).collect(),
        only,
    )
}

#[test]
fn simulcast_through_a_pipe_keeps_every_layer_for_the_far_sides_consumers() {
    let (mut p, mut publisher, subs) = piped_simulcast(31);
    run(&mut p, &mut publisher, Duration::from_secs(3));
    // The pipe consumer sends all three encodings, each on its own SSRC.
    let s = stats(&mut p.a, "pipe-cam");
    assert_eq!(s.len(), LAYERS);
    for (l, st) in s.iter().enumerate() {
        assert_eq!(st.ssrc, PIPE_SSRC + l as u32);
        assert!(st.packet_count > 50, "encoding {l}: {st:?}");
    }
    // Each far-side subscriber gets its own layer, byte for byte, every frame from its first.
    for (l, &sub) in subs.iter().enumerate() {
        let (got, only) = of_layer(&p.b, sub, l);
        assert!(only, "layer {l} only");
        assert!(got.len() > 50, "layer {l}: {} packets", got.len());
        let first = got[0].0;
        let want: Vec<(u32, Vec<u8>)> = publisher
            .sent_of(l, first)
            .map(|pk| (pk.frame, pk.data.clone()))
            .take(got.len())
            .collect();
        assert_eq!(got, want, "layer {l}");
        // Up to the end: nothing of the last second missing.
        let last_sent = publisher.sent_of(l, 0).last().unwrap().frame;
        assert!(
            got.last().unwrap().0 + 2 >= last_sent,
            "layer {l} is current"
        );
    }
    // The pipe's one transport carries it all (no per-consumer traffic across).
    assert!(p.carried[0] > 400 && p.carried[1] > 0, "{:?}", p.carried);
    // A piped producer keeps every encoding: its source worker never tells fewer (dynacast).
    run(&mut p, &mut publisher, Duration::from_secs(4));
    let fewer = p.a.notifications.iter().any(|n| {
        n.handler_id.as_str() == "cam"
            && matches!(&n.event, Event::Media(MediaEvent::ProducerLayersNeeded(l)) if l.len() < LAYERS)
    });
    assert!(!fewer, "the source told the publisher to stop an encoding");
}

#[test]
fn nacks_and_plis_cross_the_pipe() {
    let (mut p, mut publisher, subs) = piped_simulcast(32);
    // 5 % of the RTP from a to b is lost on the way.
    p.ab.loss = 0.05;
    run(&mut p, &mut publisher, Duration::from_secs(5));
    // The far side's producer asked for what was lost, the pipe consumer repaired it.
    let s = stats(&mut p.a, "pipe-cam");
    let nacks: u64 = s.iter().map(|st| st.nack_count).sum();
    let repaired: u64 = s.iter().map(|st| st.retransmitted_packet_count).sum();
    eprintln!("nacks {nacks}, repaired {repaired}");
    assert!(
        nacks > 5 && repaired > 20,
        "nacks {nacks}, repaired {repaired}"
    );
    // The top layer's subscriber misses (almost) nothing up to the last 300 ms.
    let (got, only) = of_layer(&p.b, subs[2], 2);
    assert!(only);
    let first = got[0].0;
    let last = publisher.sent_of(2, 0).last().unwrap().frame - 10;
    let have: HashSet<&[u8]> = got.iter().map(|(_, d)| &d[..]).collect();
    let want: Vec<&[u8]> = publisher
        .sent_of(2, first)
        .filter(|pk| pk.frame < last)
        .map(|pk| &pk.data[..])
        .collect();
    let missing = want.iter().filter(|d| !have.contains(*d)).count();
    eprintln!(
        "missing {missing} of {}; carried {:?}",
        want.len(),
        p.carried
    );
    assert!(
        missing * 200 <= want.len(),
        "{missing} of {} packets missing after repair",
        want.len()
    );

    // A keyframe request on the far side reaches the publisher, for that encoding.
    let peer = publisher.peer;
    let plis = |p: &Piped| p.a.pli_count(peer);
    let keys_before = publisher.keyframes_sent[1];
    let plis_before = plis(&p);
    p.b.request("c1", RequestBody::ConsumerRequestKeyFrame)
        .unwrap();
    run(&mut p, &mut publisher, Duration::from_millis(300));
    assert!(plis(&p) > plis_before, "a PLI crossed the pipe");
    assert!(
        publisher.keyframes_sent[1] > keys_before,
        "encoding 1 sent a keyframe"
    );
}

#[test]
fn closing_either_side_closes_what_depends_on_it() {
    // Source producer closed: the pipe consumer (all its streams) closes, notified once.
    let (mut p, mut publisher, subs) = piped_simulcast(33);
    run(&mut p, &mut publisher, Duration::from_secs(1));
    p.a.request("cam", RequestBody::ProducerClose).unwrap();
    assert_eq!(
        notified(&p.a, "pipe-cam", &MediaEvent::ConsumerProducerClose),
        1
    );
    assert!(p.a.request("pipe-cam", RequestBody::ConsumerDump).is_err());
    // Then the supervisor closes the far producer: its consumers close with it.
    p.b.request("cam", RequestBody::ProducerClose).unwrap();
    for l in 0..LAYERS {
        assert_eq!(
            notified(&p.b, &format!("c{l}"), &MediaEvent::ConsumerProducerClose),
            1
        );
    }
    let _ = subs;

    // The pipe consumer closed: nothing more crosses; the transport lists no consumer.
    let (mut p, mut publisher, subs) = piped_simulcast(34);
    run(&mut p, &mut publisher, Duration::from_secs(1));
    match p.a.request("pipe-a", RequestBody::TransportDump).unwrap() {
        ResponseBody::PlainTransportDump(d) => {
            assert_eq!(d.consumer_ids, vec![ConsumerId::new("pipe-cam")]);
        }
        other => panic!("{other:?}"),
    }
    p.a.request("pipe-cam", RequestBody::ConsumerClose).unwrap();
    let before = received(&p.b, subs[0]).len();
    run(&mut p, &mut publisher, Duration::from_millis(500));
    assert_eq!(
        received(&p.b, subs[0]).len(),
        before,
        "no media after the close"
    );
    match p.a.request("pipe-a", RequestBody::TransportDump).unwrap() {
        ResponseBody::PlainTransportDump(d) => assert!(d.consumer_ids.is_empty()),
        other => panic!("{other:?}"),
    }

    // The pipe transport closed (by the supervisor): the pipe consumer and its streams close
    // with it; nothing more crosses.
    let (mut p, mut publisher, subs) = piped_simulcast(35);
    run(&mut p, &mut publisher, Duration::from_secs(1));
    p.a.request("pipe-a", RequestBody::TransportClose).unwrap();
    assert!(p.a.request("pipe-cam", RequestBody::ConsumerDump).is_err());
    let before = received(&p.b, subs[2]).len();
    run(&mut p, &mut publisher, Duration::from_millis(500));
    assert_eq!(
        received(&p.b, subs[2]).len(),
        before,
        "no media after the close"
    );
}
