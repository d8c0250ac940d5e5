//! Simulcast consumers over the simulated network: a three-encoding VP8 publisher (L1T3 each)
//! and subscribers preferring each layer; switches, temporal layers, an encoding that stops.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::simulcast::*;
use ferrosfu_sim::*;

/// Output sequence numbers consecutive, PictureIDs +1 per frame, TL0PICIDX +1 per TID-0 frame,
/// and timestamps advancing by exactly the capture time between frames.
fn assert_continuous(rx: &[Received]) {
    for w in rx.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert_eq!(b.seq, a.seq.wrapping_add(1), "sequence after {a:?}");
        if b.frame == a.frame && b.layer == a.layer {
            assert_eq!((b.picture_id, b.ts), (a.picture_id, a.ts), "within a frame");
            continue;
        }
        assert!(a.marker, "a frame ends with the marker bit: {a:?}");
        assert!(b.start, "a frame starts with S=1: {b:?}");
        assert_eq!(
            b.picture_id,
            (a.picture_id + 1) & 0x7fff,
            "PictureID after frame {} (layer {}) → frame {} (layer {})",
            a.frame,
            a.layer,
            b.frame,
            b.layer
        );
        let tl0 = if b.tid == 0 {
            a.tl0.wrapping_add(1)
        } else {
            a.tl0
        };
        assert_eq!(b.tl0, tl0, "TL0PICIDX after {a:?}");
        let dt = b.ts.wrapping_sub(a.ts);
        // A switch to a frame of the same instant (encodings starting together) comes one
        // tick later.
        let same_instant = u32::from(b.frame == a.frame);
        assert_eq!(
            dt,
            (b.frame - a.frame) * FRAME_TICKS + same_instant,
            "timestamp step from frame {} (layer {}) to {} (layer {})",
            a.frame,
            a.layer,
            b.frame,
            b.layer
        );
    }
}

fn layer_changes(sim: &Sim, consumer: &str) -> Vec<Option<ConsumerLayers>> {
    sim.notifications
        .iter()
        .filter(|n| n.handler_id.as_str() == consumer)
        .filter_map(|n| match &n.event {
            Event::Media(MediaEvent::ConsumerLayersChange(l)) => Some(*l),
            _ => None,
        })
        .collect()
}

#[test]
fn consumers_preferring_each_layer_get_byte_exact_payloads_of_that_layer_only() {
    for by_rid in [false, true] {
        let mut sim = Sim::new(11);
        let mut publisher = SimulcastPublisher::new(&mut sim, "cam", by_rid);
        let subs: Vec<usize> = (0..LAYERS as u8)
            .map(|l| simulcast_subscriber(&mut sim, &format!("c{l}"), "cam", layers(l, None)))
            .collect();
        publisher.run(&mut sim, 100);
        sim.run_for(Duration::from_millis(100));
        for (l, &s) in subs.iter().enumerate() {
            let all = received(&sim, s);
            assert_continuous(&all);
            // The encodings start together: a consumer may show a lower one's first keyframe
            // (the first to arrive) before its own, never anything later.
            let start = all.iter().position(|r| r.layer == l).unwrap();
            assert!(all[..start].iter().all(|r| r.frame == 0 && r.layer < l));
            let rx = &all[start..];
            assert!(
                rx.len() > 50,
                "layer {l} (rid {by_rid}): {} packets",
                rx.len()
            );
            assert!(
                rx.iter().all(|r| r.layer == l),
                "layer {l} only: {:?}",
                rx.iter().map(|r| (r.layer, r.frame)).collect::<Vec<_>>()
            );
            assert!(rx.iter().all(|r| r.pt == SUBSCRIBER_PTS.0));
            // Everything of that layer from the first frame forwarded on, byte for byte.
            let first = rx[0].frame;
            let want: Vec<&[u8]> = publisher.sent_of(l, first).map(|p| &p.data[..]).collect();
            let got: Vec<&[u8]> = rx.iter().map(|r| &r.data[..]).collect();
            assert_eq!(got, want, "layer {l} (rid {by_rid})");
            let changes = layer_changes(&sim, &format!("c{l}"));
            assert_eq!(
                changes.last(),
                Some(&layers(l as u8, Some(2))),
                "layerschange: {changes:?}"
            );
        }
    }
}

#[test]
fn twenty_switches_wait_for_keyframes_and_keep_the_stream_continuous() {
    let mut sim = Sim::new(12);
    let mut publisher = SimulcastPublisher::new(&mut sim, "cam", false);
    let sub = simulcast_subscriber(&mut sim, "c", "cam", layers(0, None));
    publisher.run(&mut sim, 10);
    let order = [2u8, 0, 1, 2, 1, 0, 2, 0, 1, 0, 2, 1, 2, 0, 1, 2, 0, 2, 1, 0];
    let mut requested_at = Vec::new();
    for &target in &order {
        let r = sim
            .request(
                "c",
                RequestBody::ConsumerSetPreferredLayers(layers(target, None).unwrap()),
            )
            .unwrap();
        assert_eq!(r, ResponseBody::PreferredLayers(layers(target, Some(2))));
        requested_at.push((publisher.frame, target));
        publisher.run(&mut sim, 12);
    }
    sim.run_for(Duration::from_millis(100));
    let rx = received(&sim, sub);
    assert_continuous(&rx);
    // Each switch: the new layer's first packet forwarded is a keyframe's first packet.
    let mut switches = 0;
    for w in rx.windows(2) {
        if w[1].layer != w[0].layer {
            switches += 1;
            let sent = publisher
                .sent
                .iter()
                .find(|p| p.layer == w[1].layer && p.frame == w[1].frame)
                .unwrap();
            assert!(sent.key, "switch to layer {} on a keyframe", w[1].layer);
        }
    }
    assert_eq!(switches, order.len(), "every preference change switched");
    // One notification per change of spatial layer (and of temporal layer as the first
    // frames climb from the keyframe's TID 0).
    let mut spatial: Vec<u8> = layer_changes(&sim, "c")
        .iter()
        .map(|c| c.unwrap().spatial_layer)
        .collect();
    spatial.dedup();
    assert_eq!(spatial[0], 0);
    assert_eq!(&spatial[1..], &order[..]);
}

#[test]
fn temporal_layers_halve_and_quarter_the_frame_rate() {
    let mut sim = Sim::new(13);
    let mut publisher = SimulcastPublisher::new(&mut sim, "cam", false);
    let subs: Vec<usize> = (0..3u8)
        .map(|t| simulcast_subscriber(&mut sim, &format!("t{t}"), "cam", layers(2, Some(t))))
        .collect();
    publisher.run(&mut sim, 200);
    sim.run_for(Duration::from_millis(100));
    for (t, &s) in subs.iter().enumerate() {
        let rx = received(&sim, s);
        let mut frames: Vec<u32> = rx.iter().map(|r| r.frame).collect();
        frames.dedup();
        let (first, last) = (frames[0], *frames.last().unwrap());
        // Every frame of TID ≤ t sent meanwhile, and no other.
        let mut want: Vec<u32> = publisher
            .sent_of(2, first)
            .filter(|p| p.frame <= last && p.tid <= t as u8)
            .map(|p| p.frame)
            .collect();
        want.dedup();
        assert_eq!(frames, want, "temporal {t}");
        let span = (last - first + 1) as usize;
        let ratio = span as f64 / frames.len() as f64;
        let expected = [4.0, 2.0, 1.0][t];
        assert!(
            (ratio - expected).abs() < 0.2,
            "temporal {t}: {} frames of {span}",
            frames.len()
        );
        assert!(rx.iter().all(|r| r.tid <= t as u8));
        assert_continuous(&rx);
    }
}

#[test]
fn an_encoding_that_stops_makes_the_consumer_fall_back_within_a_second() {
    let mut sim = Sim::new(14);
    let mut publisher = SimulcastPublisher::new(&mut sim, "cam", false);
    let sub = simulcast_subscriber(&mut sim, "c", "cam", None);
    publisher.run(&mut sim, 50);
    assert_eq!(received(&sim, sub).last().unwrap().layer, 2);
    let before = sim.peers[sub].rx_rtp.len();
    publisher.active[2] = false;
    let stopped_at = sim.now;
    let stopped_frame = publisher.frame;
    publisher.run(&mut sim, 50);
    let rx = received(&sim, sub);
    let first_fallback = rx[before..]
        .iter()
        .find(|r| r.layer != 2)
        .expect("a fallback layer");
    assert_eq!(first_fallback.layer, 1, "the best active layer");
    let waited = (first_fallback.frame - stopped_frame) * FRAME.as_millis() as u32;
    assert!(waited < 1000, "fell back after {waited} ms");
    eprintln!("fell back to layer 1 {waited} ms after layer 2 stopped");
    // No frozen picture longer than that: the subscriber's frames keep coming.
    let _ = stopped_at;
    assert_continuous(&rx);
    let changes = layer_changes(&sim, "c");
    assert_eq!(changes.last().unwrap().unwrap().spatial_layer, 1);
    // It comes back: the consumer returns to it.
    publisher.active[2] = true;
    publisher.run(&mut sim, 40);
    let rx = received(&sim, sub);
    assert_eq!(rx.last().unwrap().layer, 2);
    assert_continuous(&rx);
}

#[test]
fn a_lossy_subscriber_gets_every_packet_back_with_its_own_numbering() {
    let mut sim = Sim::new(15);
    let mut publisher = SimulcastPublisher::new(&mut sim, "cam", false);
    let sub = simulcast_subscriber(&mut sim, "c", "cam", layers(1, None));
    sim.peers[sub].down.loss = 0.05;
    sim.peers[sub].down.latency = Duration::from_millis(20);
    publisher.run(&mut sim, 40);
    sim.request(
        "c",
        RequestBody::ConsumerSetPreferredLayers(layers(2, Some(1)).unwrap()),
    )
    .unwrap();
    publisher.run(&mut sim, 60);
    sim.run_for(Duration::from_secs(1));
    let rtx = sim.peers[sub]
        .rx_raw
        .iter()
        .filter(|p| {
            sim.peers[sub]
                .rtx_of
                .contains_key(&ferrosfu_worker_core::RtpHeader::parse(p).unwrap().ssrc.0)
        })
        .count();
    assert!(rtx > 5, "{rtx} retransmissions");
    let mut rx = received(&sim, sub);
    rx.sort_by_key(|r| (r.frame, r.layer, r.seq));
    rx.dedup();
    // Retransmissions carry the same rewritten PictureID / TL0PICIDX / timestamp: after
    // ordering by output sequence the stream is whole and continuous.
    let first = rx[0].seq;
    rx.sort_by_key(|r| r.seq.wrapping_sub(first));
    assert_continuous(&rx);
}

#[test]
fn a_layer_ceiling_holds_a_consumer_under_its_preference_until_lifted() {
    let mut sim = Sim::new(16);
    let mut publisher = SimulcastPublisher::new(&mut sim, "cam", false);
    let sub = simulcast_subscriber(&mut sim, "c", "cam", None);
    publisher.run(&mut sim, 30);
    assert_eq!(received(&sim, sub).last().unwrap().layer, 2);
    // What a bandwidth allocator does: at most spatial 0, temporal 1.
    let now = sim.now;
    let id = ConsumerId::new("c");
    assert!(sim.core.set_layer_ceiling(&id, layers(0, Some(1)), now));
    publisher.run(&mut sim, 40);
    let rx = received(&sim, sub);
    let last: Vec<&Received> = rx.iter().rev().take(10).collect();
    assert!(last.iter().all(|r| r.layer == 0 && r.tid <= 1), "{last:?}");
    // Lifted: back to the preference (the highest).
    assert!(sim.core.set_layer_ceiling(&id, None, sim.now));
    publisher.run(&mut sim, 40);
    let rx = received(&sim, sub);
    assert_eq!(rx.last().unwrap().layer, 2);
    assert_continuous(&rx);
    // A simple consumer has no layers to hold.
    assert!(
        !sim.core
            .set_layer_ceiling(&ConsumerId::new("nope"), None, sim.now)
    );
}
