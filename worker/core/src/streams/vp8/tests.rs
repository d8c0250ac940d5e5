use super::*;

/// One single-packet frame of an L1T3 stream: PictureID `n`, TL0PICIDX counting TID 0 frames.
fn frame(n: u16, layer_sync: bool) -> Vp8Descriptor {
    // TID pattern 0, 2, 1, 2, 0, 2, 1, 2, …
    let tid = [0u8, 2, 1, 2][usize::from(n % 4)];
    let mut payload = vec![0x90, 0xe0, 0x80 | (n >> 8) as u8, n as u8, (n / 4) as u8];
    payload.push((tid << 6) | if layer_sync { 0x20 } else { 0 });
    payload.push(if n == 0 { 0x10 } else { 0x11 });
    Vp8Descriptor::parse(&payload).expect("valid descriptor")
}

/// Forwards frames `range` at `target`: (input PictureID, output PictureID, output TL0PICIDX).
fn run(
    ctx: &mut Vp8Context,
    range: std::ops::Range<u16>,
    target: u8,
    y: bool,
) -> Vec<(u16, u16, u8)> {
    range
        .filter_map(|n| match ctx.process(&frame(n, y), target) {
            Vp8Verdict::Forward(PictureIds {
                picture_id: Some(p),
                tl0picidx: Some(t),
            }) => Some((n, p, t)),
            Vp8Verdict::Forward(_) => panic!("fields missing"),
            Vp8Verdict::Drop => None,
        })
        .collect()
}

fn consecutive(out: &[(u16, u16, u8)]) -> bool {
    out.windows(2).all(|w| w[1].1 == w[0].1 + 1)
}

#[test]
fn temporal_layers_halve_and_quarter_the_frame_rate_with_consecutive_picture_ids() {
    for (target, kept) in [(2u8, 64usize), (1, 32), (0, 16)] {
        let mut ctx = Vp8Context::default();
        let out = run(&mut ctx, 0..64, target, true);
        assert_eq!(out.len(), kept, "target {target}");
        assert!(consecutive(&out), "target {target}: {out:?}");
        assert_eq!(ctx.current_temporal_layer(), target);
        // TL0PICIDX counts base frames, none of which is ever dropped.
        assert!(out.iter().all(|&(n, _, t)| u16::from(t) == n / 4));
    }
}

#[test]
fn moving_up_waits_for_a_layer_sync_frame() {
    let mut ctx = Vp8Context::default();
    let base = run(&mut ctx, 0..8, 0, true);
    assert_eq!(base.len(), 2);
    // Target 2 now, but frames without Y cannot start a higher layer: only base frames pass.
    let no_sync = run(&mut ctx, 8..16, 2, false);
    assert_eq!(no_sync.iter().map(|f| f.0).collect::<Vec<_>>(), [8, 12]);
    // The first layer-sync frame of a higher layer starts it.
    let synced = run(&mut ctx, 16..24, 2, true);
    assert_eq!(synced.len(), 8);
    let all: Vec<_> = [base, no_sync, synced].concat();
    assert!(consecutive(&all), "{all:?}");
}

#[test]
fn a_switch_to_another_encoding_continues_the_numbering() {
    let mut ctx = Vp8Context::default();
    let before = run(&mut ctx, 0..10, 2, true);
    let last = *before.last().expect("forwarded");
    ctx.sync();
    // The other encoding is numbered 1000.. with TL0PICIDX 250..: it continues after `last`.
    let after = run(&mut ctx, 1000..1004, 2, true);
    assert_eq!(after[0].1, last.1 + 1);
    assert_eq!(after[0].2, last.2.wrapping_add(1));
    assert!(consecutive(&after));
}
