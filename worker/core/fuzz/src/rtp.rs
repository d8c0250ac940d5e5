//! Arbitrary bytes as an RTP packet: `RtpHeader::parse`, the header-extension iterator and
//! `write_rewritten` (with an arbitrary extension-id map) never panic; a parsed header's ranges
//! lie inside the buffer; a rewritten packet parses back with the fields, extensions and payload
//! it was given.
//!
//! Input: an 18-byte rewrite description, then the packet.
//!   [0] ext map mode, [1] its parameter, [2] pt, [3] bit 0 marker, bits 1-2 prefix length,
//!   [4..8] prefix bytes, [8..10] seq, [10..14] timestamp, [14..18] ssrc (big endian).
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run rtp -- -max_total_time=60

use ferrosfu_worker_core::{OwnExts, Pt, Rewrite, RtpHeader, Ssrc, write_rewritten};

const CONFIG: usize = 18;

fn ext_map(mode: u8, k: u8) -> [u8; 256] {
    std::array::from_fn(|i| {
        let id = i as u8;
        match mode % 4 {
            0 => id,
            1 => 0,
            2 => id.wrapping_add(k),
            _ if (id ^ k) & 1 == 0 => id.wrapping_mul(k | 1),
            _ => 0,
        }
    })
}

/// One input.
pub fn run(data: &[u8]) {
    if data.len() < CONFIG {
        let _ = RtpHeader::parse(data);
        return;
    }
    let (c, pkt) = data.split_at(CONFIG);
    let Ok(h) = RtpHeader::parse(pkt) else { return };

    // Ranges: fixed header + CSRCs ≤ extension ≤ payload ≤ padding = end of buffer.
    let csrc_end = 12 + 4 * usize::from(h.csrc_count);
    let (ps, pe) = h.payload;
    assert!(csrc_end <= ps && ps <= pe && pe <= pkt.len(), "{h:?}");
    assert_eq!(pe + h.padding, pkt.len(), "{h:?}");
    if let Some((_, s, e)) = h.extension {
        assert!(csrc_end + 4 <= s && s <= e && e == ps, "{h:?}");
        assert_eq!((e - s) % 4, 0);
    }
    assert_eq!(h.payload(pkt).len(), pe - ps);
    let exts: Vec<(u8, &[u8])> = h.extensions(pkt).collect();
    // A one-byte element with id 0 but a non-zero length nibble is yielded as element 0 (RFC 8285
    // reserves id 0 for padding, a whole zero byte). Consumers never map id 0, so the core drops
    // it on rewrite; `extension(_, 0)` is always None.
    assert!(h.extension(pkt, 0).is_none());
    for (id, _) in exts.iter().filter(|(id, _)| *id != 0) {
        assert!(h.extension(pkt, *id).is_some());
    }

    let map = ext_map(c[0], c[1]);
    let prefix = &c[4..4 + usize::from((c[3] >> 1) & 3)];
    let rw = Rewrite {
        ssrc: Ssrc(u32::from_be_bytes([c[14], c[15], c[16], c[17]])),
        pt: Pt(c[2]),
        seq: u16::from_be_bytes([c[8], c[9]]),
        timestamp: u32::from_be_bytes([c[10], c[11], c[12], c[13]]),
        marker: c[3] & 1 != 0,
        ext_map: &map,
        own: OwnExts::default(),
    };
    let mut out = vec![0xEE; 7]; // stale content: the writer must clear it
    write_rewritten(&mut out, pkt, &h, &rw, prefix);

    let o = RtpHeader::parse(&out).expect("a rewritten packet is valid RTP");
    assert_eq!(
        (o.ssrc, o.pt, o.seq, o.timestamp, o.marker),
        (rw.ssrc, Pt(rw.pt.0 & 0x7f), rw.seq, rw.timestamp, rw.marker)
    );
    assert_eq!(o.csrc_count, h.csrc_count);
    assert_eq!(out[12..csrc_end], pkt[12..csrc_end]);
    assert_eq!(o.padding, 0);
    let payload = o.payload(&out);
    assert_eq!(&payload[..prefix.len()], prefix);
    assert_eq!(&payload[prefix.len()..], h.payload(pkt));
    let want: Vec<(u8, &[u8])> = exts
        .iter()
        .filter(|(id, _)| map[usize::from(*id)] != 0)
        .map(|(id, d)| (map[usize::from(*id)], *d))
        .collect();
    let got: Vec<(u8, &[u8])> = o.extensions(&out).collect();
    assert_eq!(got, want);
    assert_eq!(o.extension.is_some(), !want.is_empty());
}
