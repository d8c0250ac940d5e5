//! Per-stream parameters (mediasoup's `sctpStreamParameters`) and the PPID mapping.

use rtc_sctp::{PayloadProtocolIdentifier, ReliabilityType};

/// PPID of a DCEP message (RFC 8832).
pub const PPID_DCEP: u32 = 50;
/// PPID of a non-empty UTF-8 message.
pub const PPID_STRING: u32 = 51;
/// PPID of a non-empty binary message.
pub const PPID_BINARY: u32 = 53;
/// PPID of an empty UTF-8 message (its one-byte payload is not data).
pub const PPID_STRING_EMPTY: u32 = 56;
/// PPID of an empty binary message.
pub const PPID_BINARY_EMPTY: u32 = 57;

/// A data channel's delivery: mediasoup's `sctpStreamParameters` without the id. At most one of
/// `max_packet_life_time` and `max_retransmits` is meant to be set; if both are, the life time
/// wins (as in libwebrtc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamParams {
    pub ordered: bool,
    /// Partial reliability by time, milliseconds.
    pub max_packet_life_time: Option<u16>,
    /// Partial reliability by number of retransmissions.
    pub max_retransmits: Option<u16>,
}

impl Default for StreamParams {
    fn default() -> Self {
        Self {
            ordered: true,
            max_packet_life_time: None,
            max_retransmits: None,
        }
    }
}

impl StreamParams {
    /// The crate's `(unordered, reliability type, reliability value)`.
    pub(crate) fn reliability(&self) -> (bool, ReliabilityType, u32) {
        let (kind, value) = match (self.max_packet_life_time, self.max_retransmits) {
            (Some(ms), _) => (ReliabilityType::Timed, u32::from(ms)),
            (None, Some(n)) => (ReliabilityType::Rexmit, u32::from(n)),
            (None, None) => (ReliabilityType::Reliable, 0),
        };
        (!self.ordered, kind, value)
    }
}

/// The crate's PPID for an outgoing message, or None for PPIDs the worker does not send.
/// An empty payload always goes as the matching "empty" PPID.
pub(crate) fn outgoing_ppi(ppid: u32, empty: bool) -> Option<PayloadProtocolIdentifier> {
    let string = match ppid {
        PPID_STRING | PPID_STRING_EMPTY => true,
        PPID_BINARY | PPID_BINARY_EMPTY => false,
        _ => return None,
    };
    Some(match (string, empty) {
        (true, false) => PayloadProtocolIdentifier::String,
        (true, true) => PayloadProtocolIdentifier::StringEmpty,
        (false, false) => PayloadProtocolIdentifier::Binary,
        (false, true) => PayloadProtocolIdentifier::BinaryEmpty,
    })
}

/// The numeric PPID of a known identifier (None for `Unknown`).
pub(crate) fn ppid_number(ppi: PayloadProtocolIdentifier) -> Option<u32> {
    match ppi {
        PayloadProtocolIdentifier::Dcep => Some(PPID_DCEP),
        PayloadProtocolIdentifier::String => Some(PPID_STRING),
        PayloadProtocolIdentifier::Binary => Some(PPID_BINARY),
        PayloadProtocolIdentifier::StringEmpty => Some(PPID_STRING_EMPTY),
        PayloadProtocolIdentifier::BinaryEmpty => Some(PPID_BINARY_EMPTY),
        _ => None,
    }
}
