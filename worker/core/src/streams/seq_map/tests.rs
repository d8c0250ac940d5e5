use super::*;

#[test]
fn dropped_inputs_leave_no_gap_but_loss_does() {
    let mut m = SeqMap::new(15);
    let mut out = Vec::new();
    for i in 1..=10u16 {
        if i == 3 || i == 5 {
            m.drop_input(i);
        } else if i != 8 {
            // 8 is lost on the way: a gap the decoder must see.
            out.push(m.input(i).expect("not dropped"));
        }
    }
    // 1 2 (3) 4 (5) 6 7 [8 lost] 9 10: the drops close up, the loss stays a gap (6).
    assert_eq!(out, [1, 2, 3, 4, 5, 7, 8]);
    // A late copy of a dropped input stays dropped; the lost one, late, fills its gap.
    assert_eq!(m.input(5), None);
    assert_eq!(m.input(8), Some(6));
}

#[test]
fn renumbering_wraps_at_the_field_width() {
    let mut m = SeqMap::new(15);
    let mut out = Vec::new();
    for i in [32765u16, 32766, 32767, 0, 1, 2] {
        if i == 32767 {
            m.drop_input(i);
        } else {
            out.push(m.input(i).expect("kept"));
        }
    }
    assert_eq!(out, [32765, 32766, 32767, 0, 1]);
    let mut m = SeqMap::new(8);
    let out: Vec<_> = [254u16, 255, 0, 1]
        .iter()
        .map(|&i| m.input(i).expect("kept"))
        .collect();
    assert_eq!(out, [254, 255, 0, 1]);
}

#[test]
fn sync_continues_after_the_last_output() {
    let mut m = SeqMap::new(15);
    for i in 100..=110 {
        m.input(i);
    }
    // Another encoding, numbered 5000..: its first input follows 110.
    m.sync(4999);
    assert_eq!(m.input(5000), Some(111));
    assert_eq!(m.input(5001), Some(112));
    // The window of dropped inputs is bounded: 200 drops, numbering stays consecutive.
    for i in 5002..5202 {
        m.drop_input(i);
    }
    assert_eq!(m.input(5202), Some(113));
}
