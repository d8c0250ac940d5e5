use super::*;

fn vp8(picture_id: u16, tid: u8, tl0: u8, key: bool) -> Vp8Descriptor {
    // X=1, S=1; I, L, T set; 15-bit PictureID; TID with Y=1; a payload header.
    let p = [
        0x90,
        0xe0,
        0x80 | (picture_id >> 8) as u8,
        picture_id as u8,
        tl0,
        (tid << 6) | 0x20,
        if key { 0x00 } else { 0x01 },
    ];
    Vp8Descriptor::parse(&p).unwrap()
}

fn all_usable(l: &mut Layered, now: Instant) {
    for s in 0..3 {
        let c = l.selector.set_usable(s, true);
        l.after(c, now);
    }
}

#[test]
fn a_switch_reports_the_encoding_sent_before_and_continues_pictures() {
    let t = crate::test_epoch();
    let mut l = Layered::new(3, 3, true);
    all_usable(&mut l, t);
    let (_, c) = l.selector.set_preferred(0, None);
    assert_eq!(l.after(c, t), Some(0));
    let v = l.on_packet(0, true, true, Some(&vp8(100, 0, 10, true)), t);
    assert_eq!(
        v,
        LayerVerdict::Forward {
            resync: true,
            switched_from: None,
            picture: Some(PictureIds::new(1, 1)),
            marker: true,
        }
    );
    assert_eq!(
        l.layers_change(),
        Some(Some(ConsumerLayers {
            spatial_layer: 0,
            temporal_layer: Some(0),
        }))
    );
    assert_eq!(l.layers_change(), None, "reported once");
    let (_, c) = l.selector.set_preferred(2, None);
    assert_eq!(l.after(c, t), Some(2));
    // An inter frame of the target: dropped, not its encoding's own, no second request yet.
    assert_eq!(
        l.on_packet(2, false, true, Some(&vp8(5000, 0, 50, false)), t),
        LayerVerdict::Drop {
            own: false,
            want_key: false
        }
    );
    // Later, still no keyframe: ask again.
    let later = t + KEYFRAME_RETRY;
    assert_eq!(
        l.on_packet(2, false, true, Some(&vp8(5001, 0, 51, false)), later),
        LayerVerdict::Drop {
            own: false,
            want_key: true
        }
    );
    assert!(matches!(
        l.on_packet(0, false, true, Some(&vp8(101, 0, 11, false)), later),
        LayerVerdict::Forward {
            resync: false,
            switched_from: None,
            ..
        }
    ));
    let v = l.on_packet(2, true, true, Some(&vp8(5002, 0, 52, true)), later);
    assert_eq!(
        v,
        LayerVerdict::Forward {
            resync: true,
            switched_from: Some(0),
            picture: Some(PictureIds::new(3, 3)),
            marker: true,
        }
    );
    assert_eq!(l.current().map(|c| c.spatial_layer), Some(2));
    assert_eq!(
        l.on_packet(0, false, true, Some(&vp8(102, 0, 12, false)), later),
        LayerVerdict::Drop {
            own: false,
            want_key: false
        },
        "the old encoding stops"
    );
}

#[test]
fn frames_above_the_temporal_target_are_dropped_as_the_encodings_own() {
    let t = crate::test_epoch();
    let mut l = Layered::new(1, 3, true);
    all_usable(&mut l, t);
    l.selector.set_preferred(0, Some(0));
    assert!(matches!(
        l.on_packet(0, true, true, Some(&vp8(1, 0, 1, true)), t),
        LayerVerdict::Forward { .. }
    ));
    assert_eq!(
        l.on_packet(0, false, true, Some(&vp8(2, 2, 1, false)), t),
        LayerVerdict::Drop {
            own: true,
            want_key: false
        }
    );
}
