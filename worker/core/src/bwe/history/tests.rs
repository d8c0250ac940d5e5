#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn remembers_each_packet_exactly() {
    let t0 = crate::test_epoch();
    let mut h = SendHistory::default();
    assert_eq!(h.unwrap_sent(0), None);
    assert_eq!(h.get(0), None);
    let at = t0 + Duration::from_nanos(1_234_567);
    assert_eq!(h.on_sent(7, t0, 1200, None), 7);
    assert_eq!(h.on_sent(8, at, 90, Some(3)), 8);
    assert_eq!(
        h.get(7),
        Some(SentPacket {
            seq: 7,
            sent_at: t0,
            size: 1200,
            probe_cluster: None
        })
    );
    assert_eq!(
        h.get(8),
        Some(SentPacket {
            seq: 8,
            sent_at: at,
            size: 90,
            probe_cluster: Some(3)
        })
    );
    assert_eq!(h.get(9), None);
    assert_eq!(h.unwrap_sent(8), Some(8));
    assert_eq!(h.reported(8), Some(Reported::Not));
    h.set_reported(8, Reported::Received);
    assert_eq!(h.reported(8), Some(Reported::Received));
    // A number ahead of the last one sent is read as 65 536 behind it: before the first.
    assert_eq!(h.unwrap_sent(9), None);
    assert_eq!(h.unwrap_sent(7), Some(7));
}

#[test]
fn unwraps_across_65535() {
    let t0 = crate::test_epoch();
    let mut h = SendHistory::default();
    let mut got = Vec::new();
    for n in 0..6u16 {
        got.push(h.on_sent(65533u16.wrapping_add(n), t0 + MS * u32::from(n), 100, None));
    }
    assert_eq!(got, [65533, 65534, 65535, 65536, 65537, 65538]);
    assert_eq!(h.unwrap_sent(65535), Some(65535));
    assert_eq!(h.unwrap_sent(0), Some(65536));
    assert_eq!(h.unwrap_sent(2), Some(65538));
    assert_eq!(h.get(65536).unwrap().sent_at, t0 + MS * 3);
    // Several wraps later the numbers keep counting.
    let mut last = 0;
    for n in 0..3 * 65536u32 {
        last = h.on_sent((n as u16).wrapping_add(3), t0, 100, None);
    }
    assert_eq!(last, 65538 + 3 * 65536);
    assert_eq!(h.unwrap_sent(2), Some(last));
    assert_eq!(h.unwrap_sent(3), Some(last - 65535));
}

#[test]
fn overwrites_the_oldest() {
    let t0 = crate::test_epoch();
    let mut h = SendHistory::default();
    let n = HISTORY_LEN as u64 + 10;
    for s in 0..n {
        h.on_sent(s as u16, t0 + MS * s as u32, 50 + s as usize % 1000, None);
    }
    for s in 0..10 {
        assert_eq!(h.get(s), None, "{s}");
        assert_eq!(h.reported(s), None);
        // Marking a packet that left the ring touches nothing.
        h.set_reported(s, Reported::Lost);
    }
    for s in 10..n {
        let p = h.get(s).unwrap();
        assert_eq!(
            (p.sent_at, p.size),
            (t0 + MS * s as u32, 50 + s as usize % 1000)
        );
        assert_eq!(h.reported(s), Some(Reported::Not));
    }
    // Sizes beyond 16 bits saturate (nothing on the wire is that big).
    h.on_sent(n as u16, t0, 100_000, None);
    assert_eq!(h.get(n).unwrap().size, 65_535);
}

#[test]
fn a_slot_is_24_bytes() {
    // 8192 of them: 192 KiB per transport that sends with transport-wide numbers.
    assert_eq!(size_of::<Slot>(), 24);
}
