//! Arbitrary bytes as VP9 RTP payloads through an SVC consumer's layer selection:
//! `Vp9Descriptor::parse` never panics, stays inside the payload and reports consistent fields;
//! `SvcContext`, driven by packets, target changes and resyncs, never panics, forwards no layer
//! above the current ones, changes its current layers only on a forwarded packet (saying so),
//! moves them only toward the target, starts only on a keyframe and adds the marker bit only to
//! the end of the highest forwarded layer's frame.
//!
//! Input: [0] the stream: bits 0-2 spatial layers − 1, bits 3-5 temporal layers − 1, bit 6
//! K-SVC; then operations, each introduced by one byte:
//!   0b11ss_sttt target (spatial s, temporal t); 0b1000_000x no target (x=0) or resync (x=1);
//!   0b0mll_llll a packet of l bytes (fewer at the end of the input) with RTP marker m.
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run vp9 -- -max_total_time=60

use ferrosfu_worker_core::{SvcContext, SvcVerdict, Vp9Descriptor};

/// `parse` on one payload, with the fields' invariants checked.
fn parse(payload: &[u8]) -> Option<Vp9Descriptor> {
    let d = Vp9Descriptor::parse(payload)?;
    assert!(d.len >= 1 && d.len <= payload.len(), "{d:?}");
    assert!(d.p_diffs().len() <= 3);
    assert!(d.p_diffs().is_empty() || (d.flexible && d.inter_picture_predicted));
    assert_eq!(d.tl0picidx.is_some(), d.spatial_id.is_some() && !d.flexible);
    if let Some(ss) = d.ss {
        assert!((1..=8).contains(&ss.spatial_layers));
        let n = ss.resolutions().len();
        assert!(n == 0 || n == usize::from(ss.spatial_layers));
    }
    assert!(!d.is_keyframe() || (d.start_of_frame && !d.inter_picture_predicted));
    assert!(d.spatial_layer() < 8 && d.temporal_layer() < 8);
    Some(d)
}

/// One packet through `ctx`, checking the verdict against the state before and after.
fn packet(ctx: &mut SvcContext, d: &Vp9Descriptor, marker_in: bool) {
    let before = ctx.current();
    let verdict = ctx.process(d, marker_in);
    let after = ctx.current();
    let SvcVerdict::Forward {
        marker,
        layers_changed,
        ..
    } = verdict
    else {
        assert_eq!(after, before, "a dropped packet changes nothing");
        return;
    };
    let (s, t) = after.expect("forwarding has current layers");
    assert!(
        d.spatial_layer() <= s && d.temporal_layer() <= t,
        "{d:?} at {after:?}"
    );
    assert_eq!(layers_changed, after != before);
    if before.is_none() {
        assert!(d.is_keyframe(), "starts on a keyframe: {d:?}");
    }
    if layers_changed {
        let (ts, tt) = ctx.target().expect("moving toward a target");
        let previous_t = before.map_or(0, |b| b.1);
        assert!(
            before.is_some_and(|b| b.0 == s) || s == ts,
            "{before:?} → {after:?}"
        );
        assert!(
            t <= tt.max(previous_t),
            "{before:?} → {after:?}, target {tt}"
        );
    }
    if marker && !marker_in {
        assert!(
            d.spatial_layer() == s && d.end_of_frame,
            "{d:?} at {after:?}"
        );
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let Some((&stream, mut ops)) = data.split_first() else {
        let _ = parse(data);
        return;
    };
    let _ = parse(ops);
    let mut ctx = SvcContext::new(
        (stream & 0x07) + 1,
        ((stream >> 3) & 0x07) + 1,
        stream & 0x40 != 0,
    );
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        match op >> 6 {
            0b11 => {
                ctx.set_target(Some(((op >> 3) & 0x07, op & 0x07)));
                let (s, t) = ctx.target().expect("just set");
                assert!(s <= stream & 0x07 && t <= (stream >> 3) & 0x07);
            }
            0b10 if op & 0x01 == 0 => {
                assert!(!ctx.set_target(None));
                assert_eq!(ctx.current(), None);
            }
            0b10 => ctx.resync(),
            _ => {
                let (payload, rest) = ops.split_at(usize::from(op & 0x3f).min(ops.len()));
                ops = rest;
                if let Some(d) = parse(payload) {
                    packet(&mut ctx, &d, op & 0x40 != 0);
                }
            }
        }
    }
}
