use super::*;

const FWD: SvcVerdict = SvcVerdict::Forward {
    marker: false,
    sync: false,
    layers_changed: false,
};

/// A VP9 stream as libwebrtc sends it in non-flexible mode: TIDs 0, 2, 1, 2, …; U set on the
/// upper temporal layers' frames when `u`; every spatial layer's frame in `packets` packets;
/// upper spatial layers depend on the lower one (D) on key pictures, and always in full SVC.
#[derive(Clone, Copy)]
struct Stream {
    spatial: u8,
    packets: usize,
    ksvc: bool,
    u: bool,
}

const L1T3: Stream = Stream {
    spatial: 1,
    packets: 1,
    ksvc: false,
    u: true,
};
const L3T3: Stream = Stream {
    spatial: 3,
    packets: 2,
    ksvc: false,
    u: true,
};
const L3T3_KEY: Stream = Stream { ksvc: true, ..L3T3 };

/// A packet as the caller sees it: its descriptor and its RTP marker bit.
type Packet = (Vp9Descriptor, bool);

impl Stream {
    /// Picture `n` (PictureID `n`, 15 bits) in sending order; the last packet has the marker.
    fn picture(&self, n: u16, key: bool) -> Vec<Packet> {
        let tid = [0u8, 2, 1, 2][usize::from(n % 4)];
        let mut out = Vec::new();
        for sid in 0..self.spatial {
            for k in 0..self.packets {
                let (b, e) = (k == 0, k + 1 == self.packets);
                let b0 = 0xa0
                    | if key { 0 } else { 0x40 }
                    | if b { 0x08 } else { 0 }
                    | if e { 0x04 } else { 0 };
                let u = self.u && tid > 0;
                let d = sid > 0 && (key || !self.ksvc);
                let l = (tid << 5) | if u { 0x10 } else { 0 } | (sid << 1) | u8::from(d);
                let bytes = [b0, 0x80 | (n >> 8) as u8, n as u8, l, (n / 4) as u8];
                let desc = Vp9Descriptor::parse(&bytes).expect("valid descriptor");
                out.push((desc, e && sid + 1 == self.spatial));
            }
        }
        out
    }

    /// Pictures `range`, keyframes at `keys`.
    fn pictures(&self, range: std::ops::Range<u16>, keys: &[u16]) -> Vec<Packet> {
        range
            .flat_map(|n| self.picture(n, keys.contains(&n)))
            .collect()
    }
}

/// Feeds `packets`; returns the forwarded ones with the marker bit to send.
fn feed(ctx: &mut SvcContext, packets: &[Packet]) -> Vec<Packet> {
    packets
        .iter()
        .filter_map(|&(d, m)| match ctx.process(&d, m) {
            SvcVerdict::Forward { marker, .. } => Some((d, marker)),
            SvcVerdict::Drop => None,
        })
        .collect()
}

/// (PictureID, SID) of each forwarded layer frame (its first packet).
fn frames(fwd: &[Packet]) -> Vec<(u16, u8)> {
    fwd.iter()
        .filter(|(d, _)| d.start_of_frame)
        .map(|(d, _)| (d.picture_id.expect("has one").0, d.spatial_layer()))
        .collect()
}

/// The highest forwarded layer's last packet of each picture has the marker, no other does.
fn markers_end_each_picture(fwd: &[Packet], top: u8) -> bool {
    fwd.iter()
        .all(|(d, m)| *m == (d.spatial_layer() == top && d.end_of_frame))
}

#[test]
fn l1t3_forwards_every_frame_half_or_a_quarter_of_them() {
    for (target, kept) in [(2u8, 64usize), (1, 32), (0, 16)] {
        let mut ctx = SvcContext::new(1, 3, false);
        assert!(ctx.set_target(Some((0, target))), "starts on a keyframe");
        let fwd = feed(&mut ctx, &L1T3.pictures(0..64, &[0]));
        assert_eq!(fwd.len(), kept, "target {target}");
        assert!(fwd.iter().all(|(d, _)| d.temporal_layer() <= target));
        assert!(markers_end_each_picture(&fwd, 0));
        assert_eq!(ctx.current(), Some((0, target)));
    }
    // T0 only: pictures 0, 4, 8, …
    let mut ctx = SvcContext::new(1, 3, false);
    ctx.set_target(Some((0, 0)));
    let fwd = feed(&mut ctx, &L1T3.pictures(0..12, &[0]));
    assert_eq!(frames(&fwd), [(0, 0), (4, 0), (8, 0)]);
}

#[test]
fn nothing_is_forwarded_before_a_keyframe() {
    let mut ctx = SvcContext::new(1, 3, false);
    ctx.set_target(Some((0, 2)));
    assert!(feed(&mut ctx, &L1T3.pictures(0..8, &[])).is_empty());
    assert_eq!(ctx.current(), None);
    let fwd = feed(&mut ctx, &L1T3.pictures(8..12, &[8]));
    assert_eq!(fwd.len(), 4);
}

#[test]
fn moving_up_a_temporal_layer_waits_for_a_switching_up_point() {
    let mut ctx = SvcContext::new(1, 3, false);
    ctx.set_target(Some((0, 0)));
    assert_eq!(feed(&mut ctx, &L1T3.pictures(0..8, &[0])).len(), 2);
    assert!(
        !ctx.set_target(Some((0, 2))),
        "no keyframe for a temporal layer"
    );
    let no_u = Stream { u: false, ..L1T3 };
    let fwd = feed(&mut ctx, &no_u.pictures(8..16, &[]));
    assert_eq!(frames(&fwd), [(8, 0), (12, 0)]);
    // Picture 17 (TID 2, U) starts every layer up to the target.
    let pictures = L1T3.pictures(16..24, &[]);
    assert_eq!(ctx.process(&pictures[0].0, true), FWD_MARKED);
    let changed = ctx.process(&pictures[1].0, true);
    assert_eq!(
        changed,
        SvcVerdict::Forward {
            marker: true,
            sync: false,
            layers_changed: true
        }
    );
    assert_eq!(ctx.current(), Some((0, 2)));
    assert_eq!(feed(&mut ctx, &pictures[2..]).len(), 6);
}

const FWD_MARKED: SvcVerdict = SvcVerdict::Forward {
    marker: true,
    sync: false,
    layers_changed: false,
};

#[test]
fn moving_up_stops_at_the_target_temporal_layer() {
    // Target T1: the U frames of T2 must not take the current layer above it.
    let mut ctx = SvcContext::new(1, 3, false);
    ctx.set_target(Some((0, 1)));
    let fwd = feed(&mut ctx, &L1T3.pictures(0..8, &[0]));
    assert_eq!(frames(&fwd), [(0, 0), (2, 0), (4, 0), (6, 0)]);
}

#[test]
fn moving_down_a_temporal_layer_cuts_no_frame() {
    let three_packets = Stream { packets: 3, ..L1T3 };
    let mut ctx = SvcContext::new(1, 3, false);
    ctx.set_target(Some((0, 2)));
    assert_eq!(
        feed(&mut ctx, &three_packets.pictures(0..5, &[0])).len(),
        15
    );
    // Picture 5 (TID 2) has started: it is finished, as are the frames up to the end of the
    // next one at or below the target (8, TID 0); then only T0.
    let p5 = three_packets.picture(5, false);
    assert_eq!(ctx.process(&p5[0].0, false), FWD);
    ctx.set_target(Some((0, 0)));
    assert_eq!(feed(&mut ctx, &p5[1..]).len(), 2);
    let fwd = feed(&mut ctx, &three_packets.pictures(6..13, &[]));
    assert_eq!(frames(&fwd), [(6, 0), (7, 0), (8, 0), (12, 0)]);
    assert_eq!(fwd.len(), 12, "whole frames only");
    assert_eq!(ctx.current(), Some((0, 0)));
}

#[test]
fn l3t3_forwards_the_layers_up_to_the_target_and_marks_the_end_of_each_picture() {
    for target in 0..3u8 {
        let mut ctx = SvcContext::new(3, 3, false);
        ctx.set_target(Some((target, 2)));
        let fwd = feed(&mut ctx, &L3T3.pictures(0..8, &[0]));
        assert_eq!(
            fwd.len(),
            8 * 2 * usize::from(target + 1),
            "target {target}"
        );
        assert!(fwd.iter().all(|(d, _)| d.spatial_layer() <= target));
        assert!(markers_end_each_picture(&fwd, target), "target {target}");
        assert_eq!(ctx.current(), Some((target, 2)));
    }
}

#[test]
fn full_svc_moves_up_only_at_a_keyframe() {
    let mut ctx = SvcContext::new(3, 3, false);
    ctx.set_target(Some((0, 2)));
    feed(&mut ctx, &L3T3.pictures(0..4, &[0]));
    assert!(ctx.set_target(Some((2, 2))), "going up needs a keyframe");
    let fwd = feed(&mut ctx, &L3T3.pictures(4..8, &[]));
    assert!(fwd.iter().all(|(d, _)| d.spatial_layer() == 0));
    assert!(markers_end_each_picture(&fwd, 0));

    // Picture 12: layers 1 and 2 not inter-picture predicted (P=0), as when the encoder enables
    // them: layer 0's last packet has gone with the marker already, no switch mid-picture.
    let mut p12 = L3T3.picture(12, false);
    for p in &mut p12[2..] {
        p.0.inter_picture_predicted = false;
    }
    let fwd = feed(&mut ctx, &p12);
    assert_eq!(frames(&fwd), [(12, 0)]);
    assert!(markers_end_each_picture(&fwd, 0));
    // The keyframe reaches the target at once, spatial and temporal (nothing after a keyframe
    // refers to what came before it).
    let key = L3T3.pictures(16..17, &[16]);
    assert!(matches!(
        ctx.process(&key[0].0, false),
        SvcVerdict::Forward {
            layers_changed: true,
            ..
        }
    ));
    assert_eq!(ctx.current(), Some((2, 2)));
    let fwd = feed(&mut ctx, &[&key[1..], &L3T3.pictures(17..18, &[])].concat());
    assert_eq!(frames(&fwd), [(16, 1), (16, 2), (17, 0), (17, 1), (17, 2)]);
    assert!(markers_end_each_picture(&fwd, 2));
    assert_eq!(ctx.current(), Some((2, 2)));
}

#[test]
fn full_svc_moves_down_without_a_keyframe_ending_the_picture_at_the_target() {
    let mut ctx = SvcContext::new(3, 3, false);
    ctx.set_target(Some((2, 2)));
    feed(&mut ctx, &L3T3.pictures(0..4, &[0]));
    assert!(!ctx.set_target(Some((0, 2))), "no keyframe to go down");
    let p4 = L3T3.picture(4, false);
    assert_eq!(ctx.process(&p4[0].0, false), FWD);
    assert_eq!(
        ctx.process(&p4[1].0, false),
        SvcVerdict::Forward {
            marker: true,
            sync: false,
            layers_changed: true
        },
        "the end of layer 0's frame ends the picture"
    );
    assert_eq!(ctx.current(), Some((0, 2)));
    assert!(feed(&mut ctx, &p4[2..]).is_empty());

    // Asked mid-picture, after the target layer's frame: the picture is finished first.
    ctx.set_target(Some((2, 2)));
    feed(&mut ctx, &L3T3.pictures(8..12, &[8]));
    let p12 = L3T3.picture(12, false);
    assert_eq!(feed(&mut ctx, &p12[..4]).len(), 4);
    ctx.set_target(Some((1, 2)));
    let fwd = feed(&mut ctx, &p12[4..]);
    assert_eq!(fwd.len(), 2);
    assert_eq!(
        fwd.last().map(|p| p.1),
        Some(true),
        "the picture's own marker"
    );
    let fwd = feed(&mut ctx, &L3T3.picture(13, false));
    assert_eq!(frames(&fwd), [(13, 0), (13, 1)]);
    assert!(markers_end_each_picture(&fwd, 1));
}

#[test]
fn ksvc_switches_only_at_keyframes_and_forwards_only_the_current_layer_between() {
    let mut ctx = SvcContext::new(3, 3, true);
    assert!(ctx.set_target(Some((2, 2))));
    let fwd = feed(&mut ctx, &L3T3_KEY.pictures(0..3, &[0]));
    // The key picture whole, then layer 2's inter frames only.
    assert_eq!(frames(&fwd), [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2)]);
    assert!(markers_end_each_picture(&fwd, 2));

    assert!(
        ctx.set_target(Some((0, 2))),
        "going down needs a keyframe in K-SVC"
    );
    let fwd = feed(&mut ctx, &L3T3_KEY.pictures(3..5, &[]));
    assert_eq!(
        frames(&fwd),
        [(3, 2), (4, 2)],
        "the current layer flows meanwhile"
    );
    let fwd = feed(&mut ctx, &L3T3_KEY.pictures(8..10, &[8]));
    assert_eq!(frames(&fwd), [(8, 0), (9, 0)]);
    assert!(markers_end_each_picture(&fwd, 0));
    assert_eq!(ctx.current(), Some((0, 2)));

    assert!(ctx.set_target(Some((1, 2))));
    // An intra frame of layer 1 is not a switching point in K-SVC.
    let mut p12 = L3T3_KEY.picture(12, false);
    p12[2].0.inter_picture_predicted = false;
    p12[3].0.inter_picture_predicted = false;
    feed(&mut ctx, &p12);
    assert_eq!(ctx.current().map(|c| c.0), Some(0));
    let fwd = feed(&mut ctx, &L3T3_KEY.pictures(16..18, &[16]));
    assert_eq!(frames(&fwd), [(16, 0), (16, 1), (17, 1)]);
    assert!(markers_end_each_picture(&fwd, 1));
}

#[test]
fn descriptors_naming_layers_the_stream_lacks_are_dropped() {
    let mut ctx = SvcContext::new(2, 2, false);
    let key = L3T3.picture(0, true);
    assert_eq!(ctx.process(&key[0].0, false), SvcVerdict::Drop, "no target");
    ctx.set_target(Some((5, 5)));
    assert_eq!(ctx.target(), Some((1, 1)), "clamped");
    // Layer 2 of the key picture, and TID 2 pictures, are beyond a 2 × 2 stream.
    let fwd = feed(&mut ctx, &L3T3.pictures(0..4, &[0]));
    assert!(!fwd.is_empty());
    assert!(
        fwd.iter()
            .all(|(d, _)| d.spatial_layer() < 2 && d.temporal_layer() < 2)
    );
    // Garbage parses to SID 7, TID 7: dropped; a truncated descriptor does not parse at all.
    let garbage = Vp9Descriptor::parse(&[0xe8, 0xff, 0xff, 0xff, 0xff]).expect("long enough");
    assert_eq!(ctx.process(&garbage, true), SvcVerdict::Drop);
    assert_eq!(Vp9Descriptor::parse(&[0xa0, 0x81]), None);
}

#[test]
fn late_packets_follow_the_current_layers_and_switch_nothing() {
    let mut ctx = SvcContext::new(3, 3, false);
    ctx.set_target(Some((1, 2)));
    let p0 = L3T3.picture(0, true);
    feed(&mut ctx, &L3T3.pictures(0..6, &[0]));
    ctx.set_target(Some((2, 2)));
    // A retransmitted keyframe packet is not a switching point; its layer 2 is not forwarded.
    assert_eq!(ctx.process(&p0[0].0, false), FWD);
    assert_eq!(ctx.process(&p0[5].0, true), SvcVerdict::Drop);
    assert_eq!(ctx.process(&p0[3].0, false), FWD_MARKED, "ends layer 1");
    assert_eq!(ctx.current(), Some((1, 2)));
    // Far behind: the sender renumbered; this keyframe is new.
    let renumbered = L3T3.picture(0, true);
    let mut ctx2 = ctx.clone();
    feed(&mut ctx2, &L3T3.pictures(200..201, &[]));
    assert_eq!(frames(&feed(&mut ctx2, &renumbered)).len(), 3);
    assert_eq!(ctx2.current(), Some((2, 2)));
}

#[test]
fn forwarding_restarts_on_a_keyframe_after_a_resync_or_a_stop() {
    let mut ctx = SvcContext::new(1, 3, false);
    ctx.set_target(Some((0, 2)));
    let first = L1T3.picture(0, true);
    assert_eq!(
        ctx.process(&first[0].0, true),
        SvcVerdict::Forward {
            marker: true,
            sync: true,
            layers_changed: true
        }
    );
    feed(&mut ctx, &L1T3.pictures(1..4, &[]));
    ctx.resync();
    assert!(feed(&mut ctx, &L1T3.pictures(4..8, &[])).is_empty());
    let key = L1T3.picture(8, true);
    assert_eq!(
        ctx.process(&key[0].0, true),
        SvcVerdict::Forward {
            marker: true,
            sync: true,
            layers_changed: false
        },
        "the same layers, from the keyframe on"
    );
    assert_eq!(ctx.process(&L1T3.picture(9, false)[0].0, true), FWD_MARKED);

    assert!(!ctx.set_target(None));
    assert_eq!(ctx.current(), None);
    assert!(feed(&mut ctx, &L1T3.pictures(10..12, &[])).is_empty());
    assert!(ctx.set_target(Some((0, 2))), "a keyframe to start again");
    assert!(feed(&mut ctx, &L1T3.pictures(12..16, &[])).is_empty());
    let key = L1T3.picture(16, true);
    assert!(matches!(
        ctx.process(&key[0].0, true),
        SvcVerdict::Forward { sync: true, .. }
    ));
}
