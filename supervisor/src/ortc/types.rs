//! RTP parameters and capabilities with mediasoup's JSON shape (camelCase field names, the same
//! optional fields and defaults), so what mediasoup-client sends over signaling parses as is.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A codec (or header extension) parameter value: JSON string or number, kept as given
/// (`"profile-level-id": "42e01f"`, `"packetization-mode": 1`, `"apt": 101`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParameterValue {
    Number(serde_json::Number),
    String(String),
}

impl ParameterValue {
    /// The value as an unsigned integer: a JSON integer, or a string holding one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            ParameterValue::Number(n) => n.as_u64(),
            ParameterValue::String(s) => s.parse().ok(),
        }
    }

    /// The JSON number, if this is one (mediasoup requires `apt` to be a number).
    pub fn as_number(&self) -> Option<&serde_json::Number> {
        match self {
            ParameterValue::Number(n) => Some(n),
            ParameterValue::String(_) => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParameterValue::String(s) => Some(s),
            ParameterValue::Number(_) => None,
        }
    }
}

/// Strings as they are; numbers in their JSON form (integers in decimal).
impl fmt::Display for ParameterValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParameterValue::Number(n) => fmt::Display::fmt(n, f),
            ParameterValue::String(s) => f.write_str(s),
        }
    }
}

impl From<u8> for ParameterValue {
    fn from(v: u8) -> Self {
        ParameterValue::Number(v.into())
    }
}

impl From<u32> for ParameterValue {
    fn from(v: u32) -> Self {
        ParameterValue::Number(v.into())
    }
}

impl From<u64> for ParameterValue {
    fn from(v: u64) -> Self {
        ParameterValue::Number(v.into())
    }
}

impl From<&str> for ParameterValue {
    fn from(v: &str) -> Self {
        ParameterValue::String(v.to_owned())
    }
}

impl From<String> for ParameterValue {
    fn from(v: String) -> Self {
        ParameterValue::String(v)
    }
}

/// fmtp-style parameters (`parameters` in mediasoup), keyed by name.
pub type Parameters = BTreeMap<String, ParameterValue>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RtcpFeedback {
    /// "nack", "ccm", "goog-remb", "transport-cc" …
    #[serde(rename = "type")]
    pub kind: String,
    /// "" or "pli" / "fir".
    #[serde(default)]
    pub parameter: String,
}

impl RtcpFeedback {
    pub fn new(kind: &str, parameter: &str) -> Self {
        RtcpFeedback {
            kind: kind.to_owned(),
            parameter: parameter.to_owned(),
        }
    }
}

/// A codec a router or an endpoint can handle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecCapability {
    pub kind: MediaKind,
    /// "audio/opus", "video/VP8" … (compared case-insensitively).
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_payload_type: Option<u8>,
    pub clock_rate: u32,
    /// Audio only; absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Sendrecv,
    Sendonly,
    Recvonly,
    Inactive,
}

/// A header extension a router or an endpoint can handle. `direction` is the router's view:
/// `recvonly` = only on what producers send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpHeaderExtension {
    pub kind: MediaKind,
    pub uri: String,
    pub preferred_id: u8,
    #[serde(default)]
    pub preferred_encrypt: bool,
    #[serde(default)]
    pub direction: Direction,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCapabilities {
    #[serde(default)]
    pub codecs: Vec<RtpCodecCapability>,
    #[serde(default)]
    pub header_extensions: Vec<RtpHeaderExtension>,
}

/// One codec of an RTP stream with its payload type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecParameters {
    pub mime_type: String,
    pub payload_type: u8,
    pub clock_rate: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpHeaderExtensionParameters {
    pub uri: String,
    pub id: u8,
    #[serde(default)]
    pub encrypt: bool,
    #[serde(default)]
    pub parameters: Parameters,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RtxParameters {
    pub ssrc: u32,
}

/// One encoding (simulcast layer or the single stream). Fields mediasoup-client adds that the
/// SFU does not use (`active`, `maxFramerate` …) are ignored when parsing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpEncodingParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec_payload_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx: Option<RtxParameters>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dtx: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalability_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_resolution_down_by: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bitrate: Option<u32>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtcpParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cname: Option<String>,
    /// Defaults to true, as in mediasoup.
    #[serde(default = "default_true")]
    pub reduced_size: bool,
}

impl Default for RtcpParameters {
    fn default() -> Self {
        RtcpParameters {
            cname: None,
            reduced_size: true,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    pub codecs: Vec<RtpCodecParameters>,
    #[serde(default)]
    pub header_extensions: Vec<RtpHeaderExtensionParameters>,
    #[serde(default)]
    pub encodings: Vec<RtpEncodingParameters>,
    #[serde(default)]
    pub rtcp: RtcpParameters,
}

/// Producer payload type → the router's payload type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodecMapping {
    pub payload_type: u8,
    pub mapped_payload_type: u8,
}

/// A producer encoding (by SSRC and/or RID) → the SSRC the router uses for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncodingMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalability_mode: Option<String>,
    pub mapped_ssrc: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtpMapping {
    pub codecs: Vec<CodecMapping>,
    pub encodings: Vec<EncodingMapping>,
}

/// Whether a mime type names a retransmission codec ("video/rtx").
pub(crate) fn is_rtx(mime_type: &str) -> bool {
    mime_type
        .split_once('/')
        .is_some_and(|(_, sub)| sub.eq_ignore_ascii_case("rtx"))
}

impl RtpCodecParameters {
    pub fn is_rtx(&self) -> bool {
        is_rtx(&self.mime_type)
    }

    /// The `apt` of an RTX codec, when it is a valid payload type number.
    pub fn apt(&self) -> Option<u8> {
        apt_of(&self.parameters)
    }
}

impl RtpCodecCapability {
    pub fn is_rtx(&self) -> bool {
        is_rtx(&self.mime_type)
    }

    pub fn apt(&self) -> Option<u8> {
        apt_of(&self.parameters)
    }
}

fn apt_of(parameters: &Parameters) -> Option<u8> {
    parameters
        .get("apt")
        .and_then(ParameterValue::as_number)
        .and_then(serde_json::Number::as_u64)
        .and_then(|v| u8::try_from(v).ok())
}
