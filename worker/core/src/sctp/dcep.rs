//! DCEP, the WebRTC Data Channel Establishment Protocol (RFC 8832): the DATA_CHANNEL_OPEN (0x03)
//! and DATA_CHANNEL_ACK (0x02) messages carried with PPID 50.
//!
//! ferrosfu, like mediasoup, negotiates data channels out of band (`negotiated: true, id`), so
//! the worker only parses DCEP to classify and count what a peer sends; it never answers. The
//! codec is complete (parse + marshal) so that policy can change without a new parser.

use bytes::{BufMut, BytesMut};

/// Message type of DATA_CHANNEL_OPEN.
const TYPE_OPEN: u8 = 0x03;
/// Message type of DATA_CHANNEL_ACK.
const TYPE_ACK: u8 = 0x02;
/// Fixed part of DATA_CHANNEL_OPEN: type, channel type, priority (2), reliability (4), label
/// length (2), protocol length (2).
const OPEN_HEADER_LEN: usize = 12;

/// The channel type's reliability (its low bits; bit 0x80 means unordered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DcepReliability {
    /// 0x00: reliable.
    Reliable,
    /// 0x01: partially reliable, `reliability_parameter` retransmissions.
    Rexmit,
    /// 0x02: partially reliable, `reliability_parameter` milliseconds.
    Timed,
}

/// A DATA_CHANNEL_OPEN message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcepOpen {
    pub unordered: bool,
    pub reliability: DcepReliability,
    pub priority: u16,
    pub reliability_parameter: u32,
    pub label: String,
    pub protocol: String,
}

/// A DCEP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dcep {
    Open(DcepOpen),
    Ack,
}

/// Why a PPID 50 payload is not valid DCEP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DcepError {
    /// Empty payload.
    Empty,
    /// A message type other than OPEN or ACK.
    UnknownType(u8),
    /// Shorter than its fixed header or its declared label/protocol lengths.
    Truncated,
    /// Bytes after the declared label and protocol.
    TrailingBytes,
    /// A channel type whose reliability bits are not 0, 1 or 2.
    BadChannelType(u8),
    /// Label or protocol not UTF-8.
    NotUtf8,
}

impl Dcep {
    /// Parses one DCEP message (the whole PPID 50 payload).
    pub fn parse(buf: &[u8]) -> Result<Self, DcepError> {
        match buf.first() {
            None => Err(DcepError::Empty),
            Some(&TYPE_ACK) if buf.len() == 1 => Ok(Dcep::Ack),
            Some(&TYPE_ACK) => Err(DcepError::TrailingBytes),
            Some(&TYPE_OPEN) => DcepOpen::parse(buf).map(Dcep::Open),
            Some(&t) => Err(DcepError::UnknownType(t)),
        }
    }

    /// Appends the wire form to `out`.
    pub fn marshal_to(&self, out: &mut BytesMut) {
        match self {
            Dcep::Ack => out.put_u8(TYPE_ACK),
            Dcep::Open(open) => open.marshal_to(out),
        }
    }
}

impl DcepOpen {
    fn parse(buf: &[u8]) -> Result<Self, DcepError> {
        if buf.len() < OPEN_HEADER_LEN {
            return Err(DcepError::Truncated);
        }
        let channel_type = buf[1];
        let reliability = match channel_type & 0x7f {
            0x00 => DcepReliability::Reliable,
            0x01 => DcepReliability::Rexmit,
            0x02 => DcepReliability::Timed,
            _ => return Err(DcepError::BadChannelType(channel_type)),
        };
        let priority = u16::from_be_bytes([buf[2], buf[3]]);
        let reliability_parameter = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let label_len = usize::from(u16::from_be_bytes([buf[8], buf[9]]));
        let protocol_len = usize::from(u16::from_be_bytes([buf[10], buf[11]]));
        let end = OPEN_HEADER_LEN + label_len + protocol_len;
        if buf.len() < end {
            return Err(DcepError::Truncated);
        }
        if buf.len() > end {
            return Err(DcepError::TrailingBytes);
        }
        let label_end = OPEN_HEADER_LEN + label_len;
        let label = std::str::from_utf8(&buf[OPEN_HEADER_LEN..label_end])
            .map_err(|_| DcepError::NotUtf8)?;
        let protocol = std::str::from_utf8(&buf[label_end..end]).map_err(|_| DcepError::NotUtf8)?;
        Ok(DcepOpen {
            unordered: channel_type & 0x80 != 0,
            reliability,
            priority,
            reliability_parameter,
            label: label.to_owned(),
            protocol: protocol.to_owned(),
        })
    }

    /// Appends the wire form to `out`. Label and protocol are cut at 65535 bytes (on a char
    /// boundary) so the lengths fit their u16 fields.
    pub fn marshal_to(&self, out: &mut BytesMut) {
        let label = truncate_utf8(&self.label, usize::from(u16::MAX));
        let protocol = truncate_utf8(&self.protocol, usize::from(u16::MAX));
        let kind = match self.reliability {
            DcepReliability::Reliable => 0x00,
            DcepReliability::Rexmit => 0x01,
            DcepReliability::Timed => 0x02,
        };
        out.reserve(OPEN_HEADER_LEN + label.len() + protocol.len());
        out.put_u8(TYPE_OPEN);
        out.put_u8(kind | if self.unordered { 0x80 } else { 0 });
        out.put_u16(self.priority);
        out.put_u32(self.reliability_parameter);
        out.put_u16(u16::try_from(label.len()).unwrap_or(u16::MAX));
        out.put_u16(u16::try_from(protocol.len()).unwrap_or(u16::MAX));
        out.put_slice(label.as_bytes());
        out.put_slice(protocol.as_bytes());
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> DcepOpen {
        DcepOpen {
            unordered: true,
            reliability: DcepReliability::Rexmit,
            priority: 256,
            reliability_parameter: 3,
            label: "chat".into(),
            protocol: "é".into(),
        }
    }

    #[test]
    fn open_and_ack_round_trip() {
        let mut out = BytesMut::new();
        Dcep::Open(open()).marshal_to(&mut out);
        assert_eq!(out[..2], [0x03, 0x81]);
        assert_eq!(Dcep::parse(&out), Ok(Dcep::Open(open())));
        let mut ack = BytesMut::new();
        Dcep::Ack.marshal_to(&mut ack);
        assert_eq!(Dcep::parse(&ack), Ok(Dcep::Ack));
    }

    #[test]
    fn bad_messages_are_rejected() {
        let mut out = BytesMut::new();
        Dcep::Open(open()).marshal_to(&mut out);
        assert_eq!(Dcep::parse(&[]), Err(DcepError::Empty));
        assert_eq!(Dcep::parse(&[0x02, 0]), Err(DcepError::TrailingBytes));
        assert_eq!(Dcep::parse(&[0x09]), Err(DcepError::UnknownType(9)));
        assert_eq!(Dcep::parse(&out[..11]), Err(DcepError::Truncated));
        assert_eq!(
            Dcep::parse(&out[..out.len() - 1]),
            Err(DcepError::Truncated)
        );
        let mut long = out.clone();
        long.put_u8(0);
        assert_eq!(Dcep::parse(&long), Err(DcepError::TrailingBytes));
        let mut bad_type = out.clone();
        bad_type[1] = 0x05;
        assert_eq!(Dcep::parse(&bad_type), Err(DcepError::BadChannelType(5)));
        let mut bad_utf8 = out.clone();
        bad_utf8[12] = 0xff;
        assert_eq!(Dcep::parse(&bad_utf8), Err(DcepError::NotUtf8));
    }
}
