//! The VP9 RTP payload descriptor (RFC 9628 §4.2): what an SVC consumer needs from each packet
//! (start and end of a layer frame, keyframe, spatial and temporal layer, switching-up point,
//! inter-layer dependency, PictureID) and the scalability structure (SS) a sender puts on key
//! pictures.
//!
//! ```text
//!        0 1 2 3 4 5 6 7
//!       +-+-+-+-+-+-+-+-+
//!       |I|P|L|F|B|E|V|Z| (REQUIRED)
//!       +-+-+-+-+-+-+-+-+
//!  I:   |M| PICTURE ID  | (OPTIONAL, M: 15 bits in two bytes)
//!       +-+-+-+-+-+-+-+-+
//!  M:   | EXTENDED PID  | (OPTIONAL)
//!       +-+-+-+-+-+-+-+-+
//!  L:   | TID |U| SID |D| (OPTIONAL)
//!       +-+-+-+-+-+-+-+-+
//!       |   TL0PICIDX   | (with L in non-flexible mode, F=0)
//!       +-+-+-+-+-+-+-+-+
//!  P,F: | P_DIFF      |N| (flexible mode with P: up to 3, N: another follows)
//!       +-+-+-+-+-+-+-+-+
//!  V:   | SS            | (OPTIONAL, below)
//!       +-+-+-+-+-+-+-+-+
//!
//!  SS:  | N_S |Y|G|-|-|-|
//!       +-+-+-+-+-+-+-+-+
//!  Y:   |  WIDTH (16)   | N_S + 1 times
//!       |  HEIGHT (16)  |
//!       +-+-+-+-+-+-+-+-+
//!  G:   |      N_G      |
//!       +-+-+-+-+-+-+-+-+
//!  N_G: |TID|U| R |-|-| | N_G times, each followed by R P_DIFF bytes
//!       +-+-+-+-+-+-+-+-+
//! ```
//!
//! Parsing reads a few bytes of the payload and allocates nothing (fixed-size arrays); every
//! length is checked against the payload, and a payload too short for the fields its flags
//! announce (or with more than three P_DIFFs) is `None`. Unlike VP8's, the PictureID is never
//! rewritten: an SVC consumer forwards one source stream, whose numbering the receiver's
//! dependency tracking (PictureID gaps, TL0PICIDX) already copes with when layers are dropped.

/// Most spatial layers a scalability structure describes (N_S is 3 bits).
const SS_MAX_LAYERS: usize = 8;
/// Most reference indices (P_DIFF) a flexible-mode descriptor carries.
const MAX_P_DIFFS: usize = 3;

/// The scalability structure (V=1): the stream's spatial layers and their resolutions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vp9ScalabilityStructure {
    /// N_S + 1: how many spatial layers the stream has.
    pub spatial_layers: u8,
    /// Width and height of each spatial layer, when Y is set.
    resolutions: [(u16, u16); SS_MAX_LAYERS],
    has_resolutions: bool,
    /// N_G: pictures in the picture group described (0 without G); their entries are checked
    /// against the payload and skipped.
    pub pictures_in_group: u8,
}

impl Vp9ScalabilityStructure {
    /// (width, height) of each spatial layer, lowest first; empty when the SS has none (Y=0).
    pub fn resolutions(&self) -> &[(u16, u16)] {
        if self.has_resolutions {
            &self.resolutions[..usize::from(self.spatial_layers)]
        } else {
            &[]
        }
    }

    fn parse(r: &mut Reader<'_>) -> Option<Vp9ScalabilityStructure> {
        let b = r.u8()?;
        let mut ss = Vp9ScalabilityStructure {
            spatial_layers: (b >> 5) + 1,
            ..Vp9ScalabilityStructure::default()
        };
        if b & 0x10 != 0 {
            for res in &mut ss.resolutions[..usize::from(ss.spatial_layers)] {
                *res = (r.u16()?, r.u16()?);
            }
            ss.has_resolutions = true;
        }
        if b & 0x08 != 0 {
            ss.pictures_in_group = r.u8()?;
            for _ in 0..ss.pictures_in_group {
                let entry = r.u8()?;
                r.skip(usize::from((entry >> 2) & 0x03))?;
            }
        }
        Some(ss)
    }
}

/// A parsed descriptor. Offsets are from the start of the RTP payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vp9Descriptor {
    /// P: the layer frame uses inter-picture prediction (it depends on an earlier picture).
    pub inter_picture_predicted: bool,
    /// F: flexible mode (references as P_DIFFs, no TL0PICIDX).
    pub flexible: bool,
    /// B: the packet starts a layer frame (one spatial layer of a picture).
    pub start_of_frame: bool,
    /// E: the packet ends a layer frame.
    pub end_of_frame: bool,
    /// Z: the layer frame is not used for inter-layer prediction by higher spatial layers.
    pub not_upper_reference: bool,
    /// PictureID and whether it is the 15-bit form.
    pub picture_id: Option<(u16, bool)>,
    /// Temporal layer index (TID) when the layer indices are present (L).
    pub temporal_id: Option<u8>,
    /// U: switching-up point: a consumer forwarding lower temporal layers may start this one
    /// here.
    pub switching_up_point: bool,
    /// Spatial layer index (SID) when the layer indices are present (L).
    pub spatial_id: Option<u8>,
    /// D: the layer frame depends on the lower spatial layer of the same picture.
    pub inter_layer_dependency: bool,
    /// TL0PICIDX, in non-flexible mode with layer indices.
    pub tl0picidx: Option<u8>,
    p_diffs: [u8; MAX_P_DIFFS],
    n_p_diffs: u8,
    /// The scalability structure, when V is set.
    pub ss: Option<Vp9ScalabilityStructure>,
    /// Length of the descriptor: the VP9 frame data follows.
    pub len: usize,
}

impl Vp9Descriptor {
    pub fn parse(payload: &[u8]) -> Option<Vp9Descriptor> {
        let mut r = Reader {
            buf: payload,
            at: 0,
        };
        let b0 = r.u8()?;
        let mut d = Vp9Descriptor {
            inter_picture_predicted: b0 & 0x40 != 0,
            flexible: b0 & 0x10 != 0,
            start_of_frame: b0 & 0x08 != 0,
            end_of_frame: b0 & 0x04 != 0,
            not_upper_reference: b0 & 0x01 != 0,
            ..Vp9Descriptor::default()
        };
        if b0 & 0x80 != 0 {
            let p = r.u8()?;
            d.picture_id = Some(if p & 0x80 != 0 {
                (u16::from_be_bytes([p & 0x7f, r.u8()?]), true)
            } else {
                (u16::from(p), false)
            });
        }
        if b0 & 0x20 != 0 {
            let l = r.u8()?;
            d.temporal_id = Some(l >> 5);
            d.switching_up_point = l & 0x10 != 0;
            d.spatial_id = Some((l >> 1) & 0x07);
            d.inter_layer_dependency = l & 0x01 != 0;
            if !d.flexible {
                d.tl0picidx = Some(r.u8()?);
            }
        }
        if d.flexible && d.inter_picture_predicted {
            loop {
                let p = r.u8()?;
                let slot = d.p_diffs.get_mut(usize::from(d.n_p_diffs))?;
                *slot = p >> 1;
                d.n_p_diffs += 1;
                if p & 0x01 == 0 {
                    break;
                }
            }
        }
        if b0 & 0x02 != 0 {
            d.ss = Some(Vp9ScalabilityStructure::parse(&mut r)?);
        }
        d.len = r.at;
        Some(d)
    }

    /// The spatial layer (SID), 0 without layer indices.
    pub fn spatial_layer(&self) -> u8 {
        self.spatial_id.unwrap_or(0)
    }

    /// The temporal layer (TID), 0 without layer indices.
    pub fn temporal_layer(&self) -> u8 {
        self.temporal_id.unwrap_or(0)
    }

    /// The reference indices (P_DIFF) of a flexible-mode inter-picture-predicted frame.
    pub fn p_diffs(&self) -> &[u8] {
        &self.p_diffs[..usize::from(self.n_p_diffs)]
    }

    /// The packet starts a key picture: the base spatial layer's frame, not inter-picture
    /// predicted (P=0, B=1, SID 0: mediasoup's `VP9::Parse` rule). The rest of the key picture
    /// (its other packets, its upper layers) is not flagged.
    pub fn is_keyframe(&self) -> bool {
        !self.inter_picture_predicted && self.start_of_frame && self.spatial_layer() == 0
    }
}

/// Reads big-endian fields, refusing to go past the end.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        if self.buf.len() - self.at < n {
            return None;
        }
        self.at += n;
        Some(())
    }
}

#[cfg(test)]
// Descriptor bytes are written in binary grouped by field (TID|U|SID|D, N_S|Y|G|-).
#[allow(clippy::unusual_byte_groupings)]
mod tests {
    use super::*;

    /// Non-flexible, key picture's base layer with SS: I (15-bit PictureID 0x1234), L (TID 0,
    /// U, SID 0, D=0), TL0PICIDX 7; SS: 2 layers with resolutions, a group of 2 pictures, the
    /// second with one P_DIFF; then frame data.
    const KEY: [u8; 19] = [
        0b1010_1110,
        0x80 | 0x12,
        0x34,
        0b000_1_000_0,
        0x07,
        // SS: N_S=1, Y, G.
        0b001_1_1_000,
        0x01,
        0x40,
        0x00,
        0xb4,
        0x02,
        0x80,
        0x01,
        0x68,
        // N_G = 2: TID 0 U R=0; TID 1 U R=1, its P_DIFF.
        2,
        0b000_1_00_00,
        0b001_1_01_00,
        1,
        // Frame data.
        0x82,
    ];

    #[test]
    fn parses_a_key_picture_with_its_scalability_structure() {
        let d = Vp9Descriptor::parse(&KEY).expect("valid");
        assert!(d.is_keyframe() && d.start_of_frame && d.end_of_frame);
        assert!(!d.inter_picture_predicted && !d.flexible && !d.not_upper_reference);
        assert_eq!(d.picture_id, Some((0x1234, true)));
        assert_eq!(
            (d.temporal_id, d.spatial_id, d.tl0picidx),
            (Some(0), Some(0), Some(7))
        );
        assert!(d.switching_up_point && !d.inter_layer_dependency);
        let ss = d.ss.expect("SS");
        assert_eq!(ss.spatial_layers, 2);
        assert_eq!(ss.resolutions(), [(320, 180), (640, 360)]);
        assert_eq!(ss.pictures_in_group, 2);
        assert_eq!(d.len, 18);
        assert!(d.p_diffs().is_empty());
    }

    #[test]
    fn parses_layer_indices_and_flexible_mode_references() {
        // Upper layer of an inter picture: 7-bit PictureID 5, TID 2, SID 1, D, TL0PICIDX 3.
        let d = Vp9Descriptor::parse(&[0b1110_0100, 0x05, 0b010_0_001_1, 0x03]).expect("valid");
        assert_eq!(d.picture_id, Some((5, false)));
        assert_eq!((d.temporal_layer(), d.spatial_layer()), (2, 1));
        assert!(d.inter_layer_dependency && !d.switching_up_point && d.end_of_frame);
        assert!(!d.is_keyframe() && !d.start_of_frame);
        assert_eq!((d.tl0picidx, d.len), (Some(3), 4));
        // Flexible mode, P: three P_DIFFs (1, 2, 4), no TL0PICIDX; Z set.
        let d = Vp9Descriptor::parse(&[0b1111_1001, 0x10, 0b001_1_000_0, 0x03, 0x05, 0x08, 0xaa])
            .expect("valid");
        assert!(d.flexible && d.not_upper_reference && d.tl0picidx.is_none());
        assert_eq!(d.p_diffs(), [1, 2, 4]);
        assert_eq!(d.len, 6);
        // A fourth P_DIFF is more than the format allows.
        assert_eq!(
            Vp9Descriptor::parse(&[0b1101_1000, 0x10, 0x03, 0x05, 0x09, 0x02]),
            None
        );
    }

    #[test]
    fn minimal_descriptors_and_the_keyframe_rule() {
        // One byte, no PictureID nor layer indices: layer 0, a keyframe when P=0 and B=1.
        let d = Vp9Descriptor::parse(&[0b0000_1100]).expect("valid");
        assert_eq!((d.len, d.picture_id, d.spatial_id), (1, None, None));
        assert!(d.is_keyframe());
        assert!(
            !Vp9Descriptor::parse(&[0b0100_1100])
                .expect("valid")
                .is_keyframe(),
            "P"
        );
        assert!(
            !Vp9Descriptor::parse(&[0b0000_0100])
                .expect("valid")
                .is_keyframe(),
            "no B"
        );
        // P=0 on spatial layer 1 (inter-layer predicted only): not the key picture's start.
        let d = Vp9Descriptor::parse(&[0b0010_1000, 0b000_0_001_1, 0]).expect("valid");
        assert!(!d.is_keyframe());
        // SS without resolutions nor picture group.
        let d = Vp9Descriptor::parse(&[0b0000_1010, 0b010_0_0_000]).expect("valid");
        let ss = d.ss.expect("SS");
        assert_eq!(
            (ss.spatial_layers, ss.resolutions(), ss.pictures_in_group),
            (3, &[][..], 0)
        );
    }

    #[test]
    fn a_payload_shorter_than_its_flags_is_refused() {
        for n in 0..18 {
            assert_eq!(Vp9Descriptor::parse(&KEY[..n]), None, "{n} bytes");
        }
        assert_eq!(Vp9Descriptor::parse(&KEY[..18]).map(|d| d.len), Some(18));
        // A picture group entry announcing more P_DIFFs than the payload holds.
        assert_eq!(
            Vp9Descriptor::parse(&[0x0a, 0x08, 1, 0b000_0_11_00, 1, 2]),
            None
        );
        // A flexible descriptor whose P_DIFF chain runs off the end.
        assert_eq!(Vp9Descriptor::parse(&[0b0101_0000, 0x03]), None);
    }
}
