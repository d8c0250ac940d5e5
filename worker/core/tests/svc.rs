//! SVC consumers over the simulated network: a VP9 publisher of three spatial and three
//! temporal layers in one stream (full SVC and K-SVC), subscribers preferring each layer.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::simulcast::layers;
use ferrosfu_sim::svc::*;
use ferrosfu_sim::*;

/// Sequence numbers consecutive; every picture ends with the marker bit on the last packet of
/// its highest forwarded layer, and only there.
fn assert_pictures(rx: &[SvcReceived]) {
    for w in rx.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "sequence after {:?}",
            w[0]
        );
        let picture_ends = w[1].picture != w[0].picture;
        assert_eq!(
            w[0].marker,
            picture_ends,
            "marker of {:?}",
            (w[0].picture, w[0].sid)
        );
        if picture_ends {
            assert!(w[0].end_of_frame);
        }
    }
}

#[test]
fn svc_consumers_at_each_spatial_layer_get_that_layer_or_below_only() {
    for ksvc in [false, true] {
        let mut sim = Sim::new(21);
        let mut publisher = SvcPublisher::new(&mut sim, "cam", ksvc);
        let subs: Vec<usize> = (0..SPATIAL as u8)
            .map(|s| svc_subscriber(&mut sim, &format!("s{s}"), "cam", layers(s, None)))
            .collect();
        publisher.run(&mut sim, 60);
        sim.run_for(Duration::from_millis(100));
        for (s, &peer) in subs.iter().enumerate() {
            let rx = svc_received(&sim, peer);
            assert!(rx.len() > 40, "layer {s} (ksvc {ksvc}): {}", rx.len());
            assert!(
                rx.iter().all(|r| usize::from(r.sid) <= s),
                "layer {s} or below"
            );
            assert_pictures(&rx);
            // Byte-exact: what the publisher sent of the layers forwarded, from the first
            // picture on (K-SVC: lower layers only in key pictures).
            let first = rx[0].picture;
            let want: Vec<&[u8]> = publisher
                .sent
                .iter()
                .filter(|p| p.picture >= first && usize::from(p.sid) <= s)
                .filter(|p| {
                    let key_picture = publisher
                        .sent
                        .iter()
                        .any(|k| k.picture == p.picture && k.key);
                    !ksvc || usize::from(p.sid) == s || key_picture
                })
                .map(|p| &p.data[..])
                .collect();
            let got: Vec<&[u8]> = rx.iter().map(|r| &r.data[..]).collect();
            assert_eq!(got.len(), want.len(), "layer {s} (ksvc {ksvc})");
            assert_eq!(got, want, "layer {s} (ksvc {ksvc})");
        }
    }
}

#[test]
fn svc_temporal_layer_zero_quarters_the_picture_rate_and_a_switch_up_waits_for_a_key_picture() {
    let mut sim = Sim::new(22);
    let mut publisher = SvcPublisher::new(&mut sim, "cam", false);
    let peer = svc_subscriber(&mut sim, "c", "cam", layers(0, Some(0)));
    publisher.run(&mut sim, 80);
    let rx = svc_received(&sim, peer);
    let mut pictures: Vec<u32> = rx.iter().map(|r| r.picture).collect();
    pictures.dedup();
    let span = pictures.last().unwrap() - pictures[0] + 1;
    assert!(rx.iter().all(|r| r.tid == 0 && r.sid == 0));
    assert!(
        (pictures.len() as f64 - span as f64 / 4.0).abs() <= 2.0,
        "{pictures:?}"
    );
    let before = rx.len();
    let r = sim
        .request(
            "c",
            RequestBody::ConsumerSetPreferredLayers(layers(2, None).unwrap()),
        )
        .unwrap();
    assert_eq!(r, ResponseBody::PreferredLayers(layers(2, Some(2))));
    let asked_at = publisher.picture;
    publisher.run(&mut sim, 40);
    let rx = svc_received(&sim, peer);
    let first_top = rx[before..]
        .iter()
        .find(|r| r.sid == 2)
        .expect("layer 2 forwarded");
    let key_picture = publisher
        .sent
        .iter()
        .find(|p| p.picture == first_top.picture && p.sid == 0)
        .unwrap();
    assert!(key_picture.key, "the switch up is on a key picture");
    assert!(
        first_top.picture - asked_at <= 2,
        "a keyframe was asked at once"
    );
    assert_pictures(&rx);
    let changes: Vec<Option<ConsumerLayers>> = sim
        .notifications
        .iter()
        .filter_map(|n| match &n.event {
            Event::Media(MediaEvent::ConsumerLayersChange(l)) if n.handler_id.as_str() == "c" => {
                Some(*l)
            }
            _ => None,
        })
        .collect();
    assert_eq!(changes.first(), Some(&layers(0, Some(0))));
    assert_eq!(changes.last().unwrap().unwrap().spatial_layer, 2);
}
