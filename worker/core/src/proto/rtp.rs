//! RTP header parsing and rewriting, by hand: this is the hot path (every packet, every
//! consumer), so it is a zero-copy view over the datagram and a single write into a pooled
//! buffer, with no allocation per packet (the `rtc-rtp` crate allocates a `Packet` with owned
//! extension vectors per parse).

use crate::proto::vp8::Vp8Descriptor;
use crate::units::{Pt, Ssrc};

/// RFC 8285 one-byte header extension profile.
const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// RFC 8285 two-byte header extension profile (0x100 + appbits).
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Why a datagram is not an RTP packet we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtpError {
    TooShort,
    BadVersion,
    BadCsrcCount,
    BadExtension,
    BadPadding,
}

/// A parsed RTP header: offsets into the datagram it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub pt: Pt,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: Ssrc,
    /// Number of CSRCs (their 4-byte entries follow the fixed header).
    pub csrc_count: u8,
    /// Profile and byte range of the extension block's *content* (after its 4-byte header).
    pub extension: Option<(u16, usize, usize)>,
    /// Byte range of the payload (padding excluded).
    pub payload: (usize, usize),
    /// Padding length (including its count byte); 0 without padding.
    pub padding: usize,
}

impl RtpHeader {
    /// Parses the header of `buf`. Never panics on any input.
    pub fn parse(buf: &[u8]) -> Result<Self, RtpError> {
        if buf.len() < 12 {
            return Err(RtpError::TooShort);
        }
        if buf[0] >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let has_padding = buf[0] & 0x20 != 0;
        let has_ext = buf[0] & 0x10 != 0;
        let csrc_count = buf[0] & 0x0f;
        let marker = buf[1] & 0x80 != 0;
        let pt = Pt(buf[1] & 0x7f);
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let ssrc = Ssrc(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
        let mut pos = 12 + 4 * csrc_count as usize;
        if buf.len() < pos {
            return Err(RtpError::BadCsrcCount);
        }
        let mut extension = None;
        if has_ext {
            if buf.len() < pos + 4 {
                return Err(RtpError::BadExtension);
            }
            let profile = u16::from_be_bytes([buf[pos], buf[pos + 1]]);
            let words = u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]) as usize;
            let start = pos + 4;
            let end = start + 4 * words;
            if buf.len() < end {
                return Err(RtpError::BadExtension);
            }
            extension = Some((profile, start, end));
            pos = end;
        }
        let mut end = buf.len();
        let mut padding = 0;
        if has_padding {
            padding = buf[buf.len() - 1] as usize;
            if padding == 0 || end < pos + padding {
                return Err(RtpError::BadPadding);
            }
            end -= padding;
        }
        Ok(Self {
            marker,
            pt,
            seq,
            timestamp,
            ssrc,
            csrc_count,
            extension,
            payload: (pos, end),
            padding,
        })
    }

    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.payload.0..self.payload.1]
    }

    /// Iterates the header extensions as (id, data). Malformed trailing bytes end the iteration.
    pub fn extensions<'a>(&self, buf: &'a [u8]) -> Extensions<'a> {
        match self.extension {
            Some((profile, start, end)) if profile == ONE_BYTE_PROFILE => Extensions {
                data: &buf[start..end],
                two_byte: false,
            },
            Some((profile, start, end)) if profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE => {
                Extensions {
                    data: &buf[start..end],
                    two_byte: true,
                }
            }
            _ => Extensions {
                data: &[],
                two_byte: false,
            },
        }
    }

    /// The value of extension `id`, if present.
    pub fn extension<'a>(&self, buf: &'a [u8], id: u8) -> Option<&'a [u8]> {
        if id == 0 {
            return None;
        }
        self.extensions(buf).find(|(i, _)| *i == id).map(|(_, d)| d)
    }
}

#[derive(Debug)]
pub struct Extensions<'a> {
    data: &'a [u8],
    two_byte: bool,
}

impl<'a> Iterator for Extensions<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&first, rest) = self.data.split_first()?;
            if first == 0 {
                // Padding byte between elements.
                self.data = rest;
                continue;
            }
            let (id, len, rest) = if self.two_byte {
                let (&len, rest) = rest.split_first()?;
                (first, len as usize, rest)
            } else {
                let id = first >> 4;
                if id == 15 {
                    // Reserved: stop processing (RFC 8285 §4.2).
                    self.data = &[];
                    return None;
                }
                (id, (first & 0x0f) as usize + 1, rest)
            };
            if rest.len() < len {
                self.data = &[];
                return None;
            }
            let (value, rest) = rest.split_at(len);
            self.data = rest;
            return Some((id, value));
        }
    }
}

/// How a consumer rewrites a packet. Header-extension ids are remapped through `ext_map`
/// (index = incoming id, value = outgoing id, 0 = drop the element).
#[derive(Clone, Debug)]
pub struct Rewrite<'a> {
    pub ssrc: Ssrc,
    pub pt: Pt,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub ext_map: &'a [u8; 256],
    /// Elements the consumer writes itself, after the remapped ones.
    pub own: OwnExts<'a>,
}

/// Header-extension elements a consumer writes itself (id, value) rather than forwarding the
/// publisher's.
#[derive(Clone, Copy, Debug, Default)]
pub struct OwnExts<'a> {
    /// Its MID.
    pub mid: Option<(u8, &'a [u8])>,
    /// Its transport's transport-wide sequence number (2 bytes on the wire).
    pub twcc: Option<(u8, u16)>,
    /// abs-send-time, 24 bits (3 bytes on the wire).
    pub abs_send_time: Option<(u8, u32)>,
}

/// Writes the rewritten packet (`hdr` of `src`) into `out` (cleared first): new SSRC, PT,
/// sequence, timestamp; CSRCs kept; extensions remapped and re-encoded (one-byte form when all
/// fit, else two-byte), the consumer's `own` elements added after them; payload copied; padding dropped. `prefix`
/// bytes (e.g. the RTX OSN) are inserted before the payload.
pub fn write_rewritten(
    out: &mut Vec<u8>,
    src: &[u8],
    hdr: &RtpHeader,
    rw: &Rewrite<'_>,
    prefix: &[u8],
) {
    out.clear();
    let csrc_end = 12 + 4 * hdr.csrc_count as usize;
    out.extend_from_slice(&src[..csrc_end]);
    out[0] &= !0x30; // no padding; extension bit set below if any
    out[1] = (if rw.marker { 0x80 } else { 0 }) | (rw.pt.0 & 0x7f);
    out[2..4].copy_from_slice(&rw.seq.to_be_bytes());
    out[4..8].copy_from_slice(&rw.timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&rw.ssrc.0.to_be_bytes());

    let mut two_byte = false;
    let mut any = false;
    let needs_two_byte = |id: u8, len: usize| id > 14 || len > 16 || len == 0;
    if hdr.extension.is_some() {
        for (id, data) in hdr.extensions(src) {
            let out_id = rw.ext_map[id as usize];
            if out_id != 0 {
                any = true;
                two_byte |= needs_two_byte(out_id, data.len());
            }
        }
    }
    let twcc = rw.own.twcc.map(|(id, seq)| (id, seq.to_be_bytes()));
    let abs = rw.own.abs_send_time.map(|(id, t)| {
        let b = t.to_be_bytes();
        (id, [b[1], b[2], b[3]])
    });
    let own = rw
        .own
        .mid
        .into_iter()
        .chain(twcc.as_ref().map(|(id, v)| (*id, &v[..])))
        .chain(abs.as_ref().map(|(id, v)| (*id, &v[..])));
    for (id, data) in own.clone() {
        any = true;
        two_byte |= needs_two_byte(id, data.len());
    }
    if any {
        let ext_header = out.len();
        let profile = if two_byte {
            TWO_BYTE_PROFILE
        } else {
            ONE_BYTE_PROFILE
        };
        out.extend_from_slice(&profile.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        let start = out.len();
        let mapped = hdr
            .extension
            .is_some()
            .then(|| hdr.extensions(src))
            .into_iter()
            .flatten()
            .filter_map(|(id, data)| Some((rw.ext_map[id as usize], data)).filter(|e| e.0 != 0));
        for (out_id, data) in mapped.chain(own) {
            if two_byte {
                // Values are at most 255 bytes: the parser took the length from one byte.
                out.push(out_id);
                out.push(data.len() as u8);
            } else {
                out.push((out_id << 4) | (data.len() as u8 - 1));
            }
            out.extend_from_slice(data);
        }
        while (out.len() - start) % 4 != 0 {
            out.push(0);
        }
        let words = ((out.len() - start) / 4) as u16;
        out[ext_header + 2..ext_header + 4].copy_from_slice(&words.to_be_bytes());
        out[0] |= 0x10;
    }
    out.extend_from_slice(prefix);
    out.extend_from_slice(hdr.payload(src));
}

/// Builds a minimal RTP packet (tests, fuzz seeds, probes).
pub fn build_packet(
    pt: Pt,
    seq: u16,
    ts: u32,
    ssrc: Ssrc,
    marker: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + payload.len());
    v.push(0x80);
    v.push((if marker { 0x80 } else { 0 }) | pt.0);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.0.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Whether the payload starts a keyframe, for codecs where that is cheap to tell.
pub fn is_keyframe(mime: Codec, payload: &[u8]) -> bool {
    match mime {
        Codec::Vp8 => Vp8Descriptor::parse(payload).is_some_and(|d| d.keyframe),
        Codec::H264 => {
            let Some(&n) = payload.first() else {
                return false;
            };
            match n & 0x1f {
                5 | 7 => true,
                // STAP-A: look at each NAL.
                24 => {
                    let mut p = &payload[1..];
                    while p.len() > 2 {
                        let len = u16::from_be_bytes([p[0], p[1]]) as usize;
                        if let Some(&nal) = p.get(2)
                            && matches!(nal & 0x1f, 5 | 7)
                        {
                            return true;
                        }
                        p = p.get(2 + len..).unwrap_or(&[]);
                    }
                    false
                }
                // FU-A start of an IDR.
                28 => payload
                    .get(1)
                    .is_some_and(|h| h & 0x80 != 0 && h & 0x1f == 5),
                _ => false,
            }
        }
        Codec::Vp9 => {
            // RFC 9628 descriptor: P bit = inter-picture predicted; B = start of frame.
            payload
                .first()
                .is_some_and(|b| b & 0x40 == 0 && b & 0x08 != 0)
        }
        Codec::Audio | Codec::Other => false,
    }
}

/// The codecs whose payload the core looks into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Audio,
    Vp8,
    Vp9,
    H264,
    Other,
}

impl Codec {
    pub fn from_mime(mime: &str) -> Self {
        let m = mime.to_ascii_lowercase();
        match m.as_str() {
            "video/vp8" => Codec::Vp8,
            "video/vp9" => Codec::Vp9,
            "video/h264" => Codec::H264,
            _ if m.starts_with("audio/") => Codec::Audio,
            _ => Codec::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ext(exts: &[(u8, &[u8])]) -> Vec<u8> {
        let mut v = build_packet(Pt(96), 1000, 90000, Ssrc(0x1234), true, &[]);
        v[0] |= 0x10;
        let mut body = Vec::new();
        for (id, d) in exts {
            body.push((id << 4) | (d.len() as u8 - 1));
            body.extend_from_slice(d);
        }
        while body.len() % 4 != 0 {
            body.push(0);
        }
        v.extend_from_slice(&ONE_BYTE_PROFILE.to_be_bytes());
        v.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
        v.extend_from_slice(&body);
        v.extend_from_slice(b"payload!");
        v
    }

    #[test]
    fn parses_and_iterates_one_byte_extensions() {
        let p = with_ext(&[(1, b"ab"), (3, b"\x01\x02\x03")]);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(
            (h.pt, h.seq, h.timestamp, h.ssrc),
            (Pt(96), 1000, 90000, Ssrc(0x1234))
        );
        assert!(h.marker);
        let e: Vec<_> = h.extensions(&p).collect();
        assert_eq!(e, vec![(1, &b"ab"[..]), (3, &b"\x01\x02\x03"[..])]);
        assert_eq!(h.payload(&p), b"payload!");
    }

    /// SSRC 7, PT 101, seq 5, timestamp 42, no marker.
    fn rewrite_to_7<'a>(map: &'a [u8; 256], own: OwnExts<'a>) -> Rewrite<'a> {
        Rewrite {
            ssrc: Ssrc(7),
            pt: Pt(101),
            seq: 5,
            timestamp: 42,
            marker: false,
            ext_map: map,
            own,
        }
    }

    #[test]
    fn rewrite_changes_header_and_remaps_extensions_without_touching_the_source() {
        let p = with_ext(&[(1, b"ab"), (3, b"xyz"), (4, b"q")]);
        let before = p.clone();
        let h = RtpHeader::parse(&p).unwrap();
        let mut map = [0u8; 256];
        map[1] = 9;
        map[3] = 2; // 4 dropped
        let mut out = Vec::new();
        write_rewritten(
            &mut out,
            &p,
            &h,
            &rewrite_to_7(&map, OwnExts::default()),
            &[0xAA, 0xBB],
        );
        assert_eq!(p, before);
        let o = RtpHeader::parse(&out).unwrap();
        assert_eq!(
            (o.pt, o.seq, o.timestamp, o.ssrc, o.marker),
            (Pt(101), 5, 42, Ssrc(7), false)
        );
        let e: Vec<_> = o.extensions(&out).collect();
        assert_eq!(e, vec![(9, &b"ab"[..]), (2, &b"xyz"[..])]);
        assert_eq!(o.payload(&out), b"\xAA\xBBpayload!");
    }

    #[test]
    fn rewrite_adds_the_consumers_own_elements_in_either_form() {
        let mut map = [0u8; 256];
        map[1] = 9;
        let own = OwnExts {
            mid: Some((4, b"7")),
            twcc: Some((5, 0x0102)),
            abs_send_time: Some((6, 0x00ab_cdef)),
        };
        let want_own = [
            (4, &b"7"[..]),
            (5, &[1, 2][..]),
            (6, &[0xab, 0xcd, 0xef][..]),
        ];
        for (src, own, want_two_byte) in [
            (with_ext(&[(1, b"ab")]), own, false),
            (
                build_packet(Pt(96), 1, 2, Ssrc(3), false, b"payload!"),
                own,
                false,
            ),
            // An id above 14 needs the two-byte form, for the remapped elements too.
            (
                with_ext(&[(1, b"ab")]),
                OwnExts {
                    mid: Some((20, b"7")),
                    ..own
                },
                true,
            ),
        ] {
            let h = RtpHeader::parse(&src).unwrap();
            let mut out = Vec::new();
            write_rewritten(&mut out, &src, &h, &rewrite_to_7(&map, own), &[]);
            let o = RtpHeader::parse(&out).unwrap();
            let profile = if want_two_byte {
                TWO_BYTE_PROFILE
            } else {
                ONE_BYTE_PROFILE
            };
            assert_eq!(o.extension.map(|e| e.0), Some(profile));
            let e: Vec<_> = o.extensions(&out).collect();
            let mut want = Vec::new();
            if h.extension.is_some() {
                want.push((9, &b"ab"[..]));
            }
            want.push(own.mid.unwrap());
            want.extend_from_slice(&want_own[1..]);
            assert_eq!(e, want);
            assert_eq!(o.payload(&out), b"payload!");
        }
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for len in 0..40 {
            let mut v = vec![0xBFu8; len];
            let _ = RtpHeader::parse(&v);
            v.iter_mut().for_each(|b| *b = 0x90);
            let _ = RtpHeader::parse(&v);
        }
        assert_eq!(RtpHeader::parse(&[0x80; 11]), Err(RtpError::TooShort));
    }

    #[test]
    fn vp8_keyframe_detection() {
        // S=1, PID=0, no X; VP8 header byte with P=0.
        assert!(is_keyframe(Codec::Vp8, &[0x10, 0x00, 0x9d]));
        assert!(!is_keyframe(Codec::Vp8, &[0x10, 0x01]));
        assert!(!is_keyframe(Codec::Vp8, &[0x00, 0x00]));
        // X with PictureID (2 bytes).
        assert!(is_keyframe(Codec::Vp8, &[0x90, 0x80, 0x81, 0x02, 0x00]));
    }
}
