//! The VP8 RTP payload descriptor (RFC 7741 §4.2): what a simulcast consumer needs from each
//! packet (start of frame, keyframe, temporal layer, PictureID, TL0PICIDX) and the in-place
//! rewrite of PictureID and TL0PICIDX that keeps one continuous stream across layer switches.
//!
//! ```text
//!       0 1 2 3 4 5 6 7
//!      +-+-+-+-+-+-+-+-+
//!      |X|R|N|S|R| PID | (REQUIRED)
//!      +-+-+-+-+-+-+-+-+
//! X:   |I|L|T|K| RSV   | (OPTIONAL)
//!      +-+-+-+-+-+-+-+-+
//! I:   |M| PictureID   | (OPTIONAL, M: 15 bits in two bytes)
//!      +-+-+-+-+-+-+-+-+
//! L:   |   TL0PICIDX   | (OPTIONAL)
//!      +-+-+-+-+-+-+-+-+
//! T/K: |TID|Y| KEYIDX  | (OPTIONAL)
//!      +-+-+-+-+-+-+-+-+
//! ```
//!
//! Parsing reads a few bytes of the payload and allocates nothing; a payload too short for the
//! fields its flags announce is `None`.

/// A parsed descriptor. Offsets are from the start of the RTP payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// N: the frame is not used as a reference by any other frame.
    pub non_reference: bool,
    /// S with partition index 0: the packet starts a frame.
    pub start_of_frame: bool,
    /// The frame is a keyframe (known only on the packet that starts it).
    pub keyframe: bool,
    /// PictureID and whether it is the 15-bit form.
    pub picture_id: Option<(u16, bool)>,
    pub tl0picidx: Option<u8>,
    /// Temporal layer index (TID) when the T bit is set.
    pub tid: Option<u8>,
    /// Y: layer sync: the frame depends only on base-layer (TID 0) frames.
    pub layer_sync: bool,
    /// Where PictureID and TL0PICIDX sit, for the rewrite.
    picture_id_at: usize,
    tl0picidx_at: usize,
    /// Length of the descriptor: the VP8 payload header follows.
    pub len: usize,
}

/// The PictureID and TL0PICIDX a consumer writes into a packet it forwards (`None`: left as
/// received).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PictureIds {
    pub picture_id: Option<u16>,
    pub tl0picidx: Option<u8>,
}

impl PictureIds {
    pub fn new(picture_id: u16, tl0picidx: u8) -> PictureIds {
        PictureIds {
            picture_id: Some(picture_id),
            tl0picidx: Some(tl0picidx),
        }
    }
}

impl Vp8Descriptor {
    pub fn parse(payload: &[u8]) -> Option<Vp8Descriptor> {
        let b0 = *payload.first()?;
        let mut d = Vp8Descriptor {
            non_reference: b0 & 0x20 != 0,
            start_of_frame: b0 & 0x10 != 0 && b0 & 0x07 == 0,
            ..Vp8Descriptor::default()
        };
        let mut at = 1;
        if b0 & 0x80 != 0 {
            let x = *payload.get(at)?;
            at += 1;
            if x & 0x80 != 0 {
                let p = *payload.get(at)?;
                d.picture_id_at = at;
                if p & 0x80 != 0 {
                    let p2 = *payload.get(at + 1)?;
                    d.picture_id = Some((u16::from_be_bytes([p & 0x7f, p2]), true));
                    at += 2;
                } else {
                    d.picture_id = Some((u16::from(p), false));
                    at += 1;
                }
            }
            if x & 0x40 != 0 {
                d.tl0picidx = Some(*payload.get(at)?);
                d.tl0picidx_at = at;
                at += 1;
            }
            if x & 0x30 != 0 {
                let tk = *payload.get(at)?;
                if x & 0x20 != 0 {
                    d.tid = Some(tk >> 6);
                    d.layer_sync = tk & 0x20 != 0;
                }
                at += 1;
            }
        }
        d.len = at;
        // The VP8 payload header's P bit (inverse key frame flag), on the frame's first packet.
        d.keyframe = d.start_of_frame && payload.get(at).is_some_and(|h| h & 0x01 == 0);
        Some(d)
    }

    /// Writes `ids` (the PictureID wrapped to the field's width) into `payload` (the one this
    /// descriptor was parsed from) where the descriptor has those fields; a field it lacks, or
    /// a value `ids` lacks, is left out. Same length: nothing moves.
    pub fn rewrite(&self, payload: &mut [u8], ids: PictureIds) {
        match (self.picture_id, ids.picture_id) {
            (Some((_, true)), Some(picture_id)) => {
                if let Some(f) = payload.get_mut(self.picture_id_at..self.picture_id_at + 2) {
                    let v = picture_id & 0x7fff;
                    f[0] = 0x80 | (v >> 8) as u8;
                    f[1] = v as u8;
                }
            }
            (Some((_, false)), Some(picture_id)) => {
                if let Some(f) = payload.get_mut(self.picture_id_at) {
                    *f = (picture_id & 0x7f) as u8;
                }
            }
            _ => {}
        }
        if let (Some(_), Some(tl0picidx)) = (self.tl0picidx, ids.tl0picidx)
            && let Some(f) = payload.get_mut(self.tl0picidx_at)
        {
            *f = tl0picidx;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X=1, S=1 PID=0; I (15-bit PictureID), L, T: TID 2, Y; then a VP8 keyframe header byte.
    const FULL: [u8; 8] = [0x90, 0xe0, 0x80 | 0x12, 0x34, 0x07, 0b1010_0000, 0x10, 0xff];

    #[test]
    fn parses_every_field() {
        let d = Vp8Descriptor::parse(&FULL).expect("valid");
        assert!(d.start_of_frame && d.keyframe && !d.non_reference);
        assert_eq!(d.picture_id, Some((0x1234, true)));
        assert_eq!(d.tl0picidx, Some(7));
        assert_eq!((d.tid, d.layer_sync), (Some(2), true));
        assert_eq!(d.len, 6);
    }

    #[test]
    fn minimal_and_seven_bit_descriptors() {
        // No X: one byte; an inter frame (P=1), not a start of partition 0.
        let d = Vp8Descriptor::parse(&[0x01, 0x01]).expect("valid");
        assert_eq!((d.len, d.start_of_frame, d.keyframe), (1, false, false));
        assert_eq!((d.picture_id, d.tl0picidx, d.tid), (None, None, None));
        // X with a 7-bit PictureID, N set, inter frame.
        let d = Vp8Descriptor::parse(&[0xb0, 0x80, 0x05, 0x01]).expect("valid");
        assert_eq!(d.picture_id, Some((5, false)));
        assert!(d.non_reference && d.start_of_frame && !d.keyframe);
        assert_eq!(d.len, 3);
    }

    #[test]
    fn a_payload_shorter_than_its_flags_is_refused() {
        for n in 0..6 {
            assert_eq!(Vp8Descriptor::parse(&FULL[..n]), None, "{n} bytes");
        }
        // The descriptor alone parses (no payload header: not a keyframe).
        let d = Vp8Descriptor::parse(&FULL[..6]).expect("descriptor complete");
        assert!(!d.keyframe);
    }

    #[test]
    fn rewrite_keeps_the_field_widths_and_everything_else() {
        let mut p = FULL;
        let d = Vp8Descriptor::parse(&p).expect("valid");
        d.rewrite(&mut p, PictureIds::new(0x8001, 200));
        let r = Vp8Descriptor::parse(&p).expect("still valid");
        assert_eq!(r.picture_id, Some((0x0001, true)), "wrapped to 15 bits");
        assert_eq!(r.tl0picidx, Some(200));
        assert_eq!(
            (r.tid, r.layer_sync, r.keyframe, r.len),
            (d.tid, d.layer_sync, true, 6)
        );
        assert_eq!(p[6..], FULL[6..]);

        let mut p = [0xb0, 0x80, 0x05, 0x01];
        let d = Vp8Descriptor::parse(&p).expect("valid");
        d.rewrite(&mut p, PictureIds::new(300, 9));
        assert_eq!(
            p,
            [0xb0, 0x80, 44, 0x01],
            "300 mod 128 in 7 bits; no TL0PICIDX to write"
        );
    }
}
