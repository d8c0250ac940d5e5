//! Arbitrary bytes as a VP8 RTP payload: `Vp8Descriptor::parse` never panics and stays inside
//! the payload; a keyframe always starts a frame; rewriting PictureID and TL0PICIDX in place
//! keeps every other field and byte, and writes the values wrapped to the fields' widths.
//!
//! Input: PictureID (2 bytes, big endian) and TL0PICIDX (1 byte) to write, then the payload.
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run vp8 -- -max_total_time=60

use ferrosfu_worker_core::{PictureIds, Vp8Descriptor};

/// What a rewrite must not change.
fn unchanged(d: &Vp8Descriptor) -> (usize, bool, bool, bool, Option<u8>, bool) {
    let f = (d.non_reference, d.start_of_frame, d.keyframe);
    (d.len, f.0, f.1, f.2, d.tid, d.layer_sync)
}

/// One input.
pub fn run(data: &[u8]) {
    if data.len() < 3 {
        let _ = Vp8Descriptor::parse(data);
        return;
    }
    let (c, payload) = data.split_at(3);
    let Some(d) = Vp8Descriptor::parse(payload) else {
        return;
    };
    assert!(d.len >= 1 && d.len <= payload.len(), "{d:?}");
    assert!(!d.keyframe || d.start_of_frame, "{d:?}");
    let picture_id = u16::from_be_bytes([c[0], c[1]]);
    let mut out = payload.to_vec();
    d.rewrite(&mut out, PictureIds::new(picture_id, c[2]));
    let r = Vp8Descriptor::parse(&out).expect("a rewritten descriptor parses");
    assert_eq!(unchanged(&r), unchanged(&d));
    match d.picture_id {
        Some((_, true)) => assert_eq!(r.picture_id, Some((picture_id & 0x7fff, true))),
        Some((_, false)) => assert_eq!(r.picture_id, Some((picture_id & 0x7f, false))),
        None => assert_eq!(r.picture_id, None),
    }
    assert_eq!(r.tl0picidx, d.tl0picidx.map(|_| c[2]));
    assert_eq!(
        out[d.len..],
        payload[d.len..],
        "only the descriptor changes"
    );
    assert_eq!(out[0], payload[0]);
}
