//! ORTC: matching what endpoints send and can receive against what a router supports, with the
//! semantics of mediasoup's `ortc.ts`. Pure functions; the worker only ever sees the resolved
//! result, converted to `ferrosfu_fbs` types with `From` (e.g.
//! `ferrosfu_fbs::RtpParameters::from(&params)`).
//!
//! The flow for a producer: [`validate_rtp_parameters`] →
//! [`get_producer_rtp_parameters_mapping`] (endpoint payload types and SSRCs → the router's) →
//! [`get_consumable_rtp_parameters`] (the producer as consumers see it, in router space). For a
//! consumer: [`can_consume`] → [`get_consumer_rtp_parameters`] (reduced to what the consuming
//! endpoint supports, with fresh SSRCs).
//!
//! SSRCs are drawn from a caller-provided generator (`&mut impl FnMut() -> u32`, e.g.
//! [`random_ssrc`]), so results are reproducible in tests.

mod convert;
mod h264;
mod supported;
mod types;
mod validate;

#[cfg(test)]
mod tests;

pub use ferrosfu_fbs::parse_scalability_mode;
pub use supported::{
    URI_ABS_CAPTURE_TIME, URI_ABS_SEND_TIME, URI_AUDIO_LEVEL, URI_MID, URI_PLAYOUT_DELAY,
    URI_REPAIRED_RTP_STREAM_ID, URI_RTP_STREAM_ID, URI_TOFFSET, URI_TRANSPORT_WIDE_CC,
    URI_VIDEO_ORIENTATION, default_media_codecs, supported_rtp_capabilities,
};
pub use types::{
    CodecMapping, Direction, EncodingMapping, MediaKind, ParameterValue, Parameters, RtcpFeedback,
    RtcpParameters, RtpCapabilities, RtpCodecCapability, RtpCodecParameters, RtpEncodingParameters,
    RtpHeaderExtension, RtpHeaderExtensionParameters, RtpMapping, RtpParameters, RtxParameters,
};
pub use validate::{validate_rtp_capabilities, validate_rtp_parameters};

use validate::mime_kind;

/// Why parameters or capabilities were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrtcError {
    #[error("invalid mime type {mime_type:?} (expected audio/… or video/…)")]
    InvalidMimeType { mime_type: String },
    #[error("codec {mime_type}: kind {kind} does not match the mime type")]
    KindMismatch { mime_type: String, kind: MediaKind },
    #[error("codec {mime_type}: clock rate must be positive")]
    InvalidClockRate { mime_type: String },
    #[error("invalid payload type {payload_type} (must be 0-127)")]
    InvalidPayloadType { payload_type: u8 },
    #[error("duplicate payload type {payload_type}")]
    DuplicatePayloadType { payload_type: u8 },
    #[error("codec PT {payload_type}: invalid apt {apt:?} (must be a payload type number)")]
    InvalidApt {
        payload_type: u8,
        apt: Option<String>,
    },
    #[error("RTX codec PT {payload_type}: apt {apt} names no media codec of the parameters")]
    AptNotFound { payload_type: u8, apt: u8 },
    #[error("codec {mime_type}: RTCP feedback without a type")]
    InvalidRtcpFeedback { mime_type: String },
    #[error("no media codec (only RTX)")]
    NoMediaCodec,
    #[error("header extension without uri")]
    MissingHeaderExtensionUri,
    #[error("header extension {uri}: invalid or duplicate id {id}")]
    InvalidHeaderExtensionId { uri: String, id: u8 },
    #[error("empty mid")]
    EmptyMid,
    #[error("no encodings")]
    NoEncodings,
    #[error(
        "encoding {index}: neither ssrc nor rid (only a single encoding with a mid may omit both)"
    )]
    MissingSsrcOrRid { index: usize },
    #[error("ssrc {ssrc} used twice")]
    DuplicateSsrc { ssrc: u32 },
    #[error("rid {rid:?} used twice")]
    DuplicateRid { rid: String },
    #[error("encoding {index}: codecPayloadType {payload_type} names no media codec")]
    InvalidCodecPayloadType { index: usize, payload_type: u8 },
    #[error("media codec not supported: {mime_type}")]
    UnsupportedMediaCodec { mime_type: String },
    #[error("duplicate preferred payload type {payload_type} in the router's media codecs")]
    DuplicatePreferredPayloadType { payload_type: u8 },
    #[error("no dynamic payload type left")]
    NoDynamicPayloadType,
    #[error("router codec {mime_type} has no preferred payload type")]
    MissingPreferredPayloadType { mime_type: String },
    #[error("unsupported codec {mime_type} (PT {payload_type}): no matching router codec")]
    UnsupportedCodec { mime_type: String, payload_type: u8 },
    #[error("router codec PT {payload_type} has no RTX codec")]
    NoRtxForCodec { payload_type: u8 },
    #[error("RTP mapping has no entry for PT {payload_type}")]
    MissingCodecMapping { payload_type: u8 },
    #[error("router has no codec with PT {payload_type}")]
    UnknownRouterPayloadType { payload_type: u8 },
    #[error("RTP mapping has {mapping} encodings, the parameters {params}")]
    EncodingMappingMismatch { params: usize, mapping: usize },
    #[error("no compatible media codecs")]
    NoCompatibleMediaCodecs,
}

// ---------------------------------------------------------------------------------------------
// Codec matching

/// The fields codec matching looks at, common to capabilities and parameters.
#[derive(Clone, Copy, Debug)]
struct CodecRef<'a> {
    mime_type: &'a str,
    clock_rate: u32,
    channels: Option<u8>,
    parameters: &'a Parameters,
}

impl<'a> From<&'a RtpCodecCapability> for CodecRef<'a> {
    fn from(c: &'a RtpCodecCapability) -> Self {
        CodecRef {
            mime_type: &c.mime_type,
            clock_rate: c.clock_rate,
            channels: c.channels,
            parameters: &c.parameters,
        }
    }
}

impl<'a> From<&'a RtpCodecParameters> for CodecRef<'a> {
    fn from(c: &'a RtpCodecParameters) -> Self {
        CodecRef {
            mime_type: &c.mime_type,
            clock_rate: c.clock_rate,
            channels: c.channels,
            parameters: &c.parameters,
        }
    }
}

impl CodecRef<'_> {
    /// Channels as mediasoup normalizes them: audio defaults to 1, video has none.
    fn channels(&self) -> Option<u8> {
        match mime_kind(self.mime_type) {
            Ok(MediaKind::Audio) => Some(self.channels.unwrap_or(1)),
            _ => None,
        }
    }

    fn param_u64(&self, key: &str) -> Option<u64> {
        self.parameters.get(key).and_then(ParameterValue::as_u64)
    }
}

fn is_h264(mime_type: &str) -> bool {
    mime_type.eq_ignore_ascii_case("video/h264") || mime_type.eq_ignore_ascii_case("video/h264-svc")
}

/// mediasoup's `matchCodecs`: same mime type, clock rate and channels; multi-channel Opus with
/// the same stream layout; with `strict`, H264 with the same packetization mode and a compatible
/// profile, VP9 with the same profile-id.
fn match_codecs(a: CodecRef<'_>, b: CodecRef<'_>, strict: bool) -> bool {
    if !a.mime_type.eq_ignore_ascii_case(b.mime_type)
        || a.clock_rate != b.clock_rate
        || a.channels() != b.channels()
    {
        return false;
    }
    let mime = a.mime_type.to_ascii_lowercase();
    match mime.as_str() {
        "audio/multiopus" => {
            a.param_u64("num_streams") == b.param_u64("num_streams")
                && a.param_u64("coupled_streams") == b.param_u64("coupled_streams")
        }
        "video/h264" | "video/h264-svc" if strict => {
            a.param_u64("packetization-mode").unwrap_or(0)
                == b.param_u64("packetization-mode").unwrap_or(0)
                && h264::is_same_profile(a.parameters, b.parameters)
                && h264::generate_profile_level_id_for_answer(a.parameters, b.parameters).is_ok()
        }
        "video/vp9" if strict => {
            a.param_u64("profile-id").unwrap_or(0) == b.param_u64("profile-id").unwrap_or(0)
        }
        _ => true,
    }
}

/// The codec of `caps` an offered codec matches (strictly, as consuming does: H264 profile and
/// packetization mode, VP9 profile), RTX never. For SDP offers (WHIP/WHEP).
pub fn matching_codec<'a>(
    caps: &'a RtpCapabilities,
    codec: &RtpCodecParameters,
) -> Option<&'a RtpCodecCapability> {
    caps.codecs
        .iter()
        .find(|cap| !cap.is_rtx() && match_codecs((*cap).into(), codec.into(), true))
}

// ---------------------------------------------------------------------------------------------
// Router capabilities

/// The router's capabilities for the given media codecs (mediasoup's
/// `generateRouterRtpCapabilities`): each codec takes the supported codec's RTCP feedback and
/// parameters (the given parameters win), its preferred payload type or the next free dynamic
/// one (100…127, then 96…99); each video codec is followed by a `video/rtx` with `apt`. Header
/// extensions are all the supported ones.
pub fn router_rtp_capabilities(
    media_codecs: &[RtpCodecCapability],
) -> Result<RtpCapabilities, OrtcError> {
    let supported = supported_rtp_capabilities();
    let mut dynamic: Vec<u8> = supported::DYNAMIC_PAYLOAD_TYPES.to_vec();
    let mut caps = RtpCapabilities {
        codecs: Vec::new(),
        header_extensions: supported.header_extensions,
    };
    for media_codec in media_codecs {
        validate::check_codec_capability(media_codec)?;
        let matched = supported
            .codecs
            .iter()
            .find(|s| match_codecs(media_codec.into(), (*s).into(), false))
            .ok_or_else(|| OrtcError::UnsupportedMediaCodec {
                mime_type: media_codec.mime_type.clone(),
            })?;
        let mut codec = matched.clone();
        if let Some(pt) = media_codec.preferred_payload_type {
            codec.preferred_payload_type = Some(pt);
            dynamic.retain(|d| *d != pt);
        } else if codec.preferred_payload_type.is_none() {
            if dynamic.is_empty() {
                return Err(OrtcError::NoDynamicPayloadType);
            }
            codec.preferred_payload_type = Some(dynamic.remove(0));
        }
        let pt = codec.preferred_payload_type.unwrap_or_default();
        if caps
            .codecs
            .iter()
            .any(|c| c.preferred_payload_type == Some(pt))
        {
            return Err(OrtcError::DuplicatePreferredPayloadType { payload_type: pt });
        }
        for (k, v) in &media_codec.parameters {
            codec.parameters.insert(k.clone(), v.clone());
        }
        let rtx = (codec.kind == MediaKind::Video).then(|| RtpCodecCapability {
            kind: MediaKind::Video,
            mime_type: "video/rtx".to_owned(),
            preferred_payload_type: None,
            clock_rate: codec.clock_rate,
            channels: None,
            parameters: [("apt".to_owned(), ParameterValue::from(pt))].into(),
            rtcp_feedback: Vec::new(),
        });
        caps.codecs.push(codec);
        if let Some(mut rtx) = rtx {
            if dynamic.is_empty() {
                return Err(OrtcError::NoDynamicPayloadType);
            }
            rtx.preferred_payload_type = Some(dynamic.remove(0));
            caps.codecs.push(rtx);
        }
    }
    Ok(caps)
}

// ---------------------------------------------------------------------------------------------
// Producers

fn preferred_pt(codec: &RtpCodecCapability) -> Result<u8, OrtcError> {
    codec
        .preferred_payload_type
        .ok_or_else(|| OrtcError::MissingPreferredPayloadType {
            mime_type: codec.mime_type.clone(),
        })
}

/// Maps a producer's payload types and encodings to the router's (mediasoup's
/// `getProducerRtpParametersMapping`). `params` is validated first.
///
/// Each media codec must match a router codec strictly (H264 packetization mode and profile,
/// VP9 profile-id); H264 `profile-level-id` in `params` is rewritten to the negotiated answer,
/// as mediasoup does. Each RTX codec maps to the router RTX codec of its media codec's match.
/// Encodings get consecutive mapped SSRCs starting at one `next_ssrc()`.
pub fn get_producer_rtp_parameters_mapping(
    params: &mut RtpParameters,
    caps: &RtpCapabilities,
    next_ssrc: &mut impl FnMut() -> u32,
) -> Result<RtpMapping, OrtcError> {
    validate_rtp_parameters(params)?;
    let mut mapping = RtpMapping::default();
    // Producer PT → router PT of its media codecs, and H264 profile-level-id answers.
    let mut media_map: Vec<(u8, u8)> = Vec::new();
    let mut h264_answers: Vec<(usize, Option<String>)> = Vec::new();
    for (index, codec) in params.codecs.iter().enumerate() {
        if codec.is_rtx() {
            continue;
        }
        let cap = caps
            .codecs
            .iter()
            .find(|cap| match_codecs(codec.into(), (*cap).into(), true))
            .ok_or_else(|| OrtcError::UnsupportedCodec {
                mime_type: codec.mime_type.clone(),
                payload_type: codec.payload_type,
            })?;
        if is_h264(&codec.mime_type) {
            let answer =
                h264::generate_profile_level_id_for_answer(&codec.parameters, &cap.parameters)
                    .ok()
                    .flatten();
            h264_answers.push((index, answer));
        }
        media_map.push((codec.payload_type, preferred_pt(cap)?));
    }
    let mut rtx_map: Vec<(u8, u8)> = Vec::new();
    for codec in params.codecs.iter().filter(|c| c.is_rtx()) {
        let apt = codec.apt().unwrap_or_default();
        let &(_, cap_media_pt) =
            media_map
                .iter()
                .find(|(pt, _)| *pt == apt)
                .ok_or(OrtcError::AptNotFound {
                    payload_type: codec.payload_type,
                    apt,
                })?;
        let cap_rtx = caps
            .codecs
            .iter()
            .find(|c| c.is_rtx() && c.apt() == Some(cap_media_pt))
            .ok_or(OrtcError::NoRtxForCodec {
                payload_type: cap_media_pt,
            })?;
        rtx_map.push((codec.payload_type, preferred_pt(cap_rtx)?));
    }
    mapping.codecs = media_map
        .into_iter()
        .chain(rtx_map)
        .map(|(payload_type, mapped_payload_type)| CodecMapping {
            payload_type,
            mapped_payload_type,
        })
        .collect();

    let base = next_ssrc();
    mapping.encodings = params
        .encodings
        .iter()
        .zip(0u32..)
        .map(|(enc, i)| EncodingMapping {
            ssrc: enc.ssrc,
            rid: enc.rid.clone(),
            scalability_mode: enc.scalability_mode.clone(),
            mapped_ssrc: base.wrapping_add(i),
        })
        .collect();

    for (index, answer) in h264_answers {
        let parameters = &mut params.codecs[index].parameters;
        match answer {
            Some(id) => {
                parameters.insert("profile-level-id".to_owned(), id.into());
            }
            None => {
                parameters.remove("profile-level-id");
            }
        }
    }
    Ok(mapping)
}

/// The producer's parameters as consumers see them (mediasoup's `getConsumableRtpParameters`):
/// router payload types, mime types, clock rates, channels and RTCP feedback (the producer's
/// codec parameters are kept), the router's RTX codec for each media codec, the router's header
/// extensions of `kind` that may be sent (`sendrecv`/`sendonly`), and the producer's encodings
/// with their mapped SSRC (no rid, rtx or codecPayloadType).
pub fn get_consumable_rtp_parameters(
    kind: MediaKind,
    params: &RtpParameters,
    caps: &RtpCapabilities,
    mapping: &RtpMapping,
) -> Result<RtpParameters, OrtcError> {
    let mut consumable = RtpParameters::default();
    for codec in params.codecs.iter().filter(|c| !c.is_rtx()) {
        let mapped_pt = mapping
            .codecs
            .iter()
            .find(|m| m.payload_type == codec.payload_type)
            .ok_or(OrtcError::MissingCodecMapping {
                payload_type: codec.payload_type,
            })?
            .mapped_payload_type;
        let cap = caps
            .codecs
            .iter()
            .find(|c| c.preferred_payload_type == Some(mapped_pt))
            .ok_or(OrtcError::UnknownRouterPayloadType {
                payload_type: mapped_pt,
            })?;
        consumable.codecs.push(RtpCodecParameters {
            mime_type: cap.mime_type.clone(),
            payload_type: mapped_pt,
            clock_rate: cap.clock_rate,
            channels: cap.channels,
            parameters: codec.parameters.clone(),
            rtcp_feedback: cap.rtcp_feedback.clone(),
        });
        let cap_rtx = caps
            .codecs
            .iter()
            .find(|c| c.is_rtx() && c.apt() == Some(mapped_pt));
        if let Some(cap_rtx) = cap_rtx {
            consumable.codecs.push(RtpCodecParameters {
                mime_type: cap_rtx.mime_type.clone(),
                payload_type: preferred_pt(cap_rtx)?,
                clock_rate: cap_rtx.clock_rate,
                channels: None,
                parameters: cap_rtx.parameters.clone(),
                rtcp_feedback: cap_rtx.rtcp_feedback.clone(),
            });
        }
    }

    consumable.header_extensions = caps
        .header_extensions
        .iter()
        .filter(|ext| {
            ext.kind == kind && matches!(ext.direction, Direction::Sendrecv | Direction::Sendonly)
        })
        .map(|ext| RtpHeaderExtensionParameters {
            uri: ext.uri.clone(),
            id: ext.preferred_id,
            encrypt: ext.preferred_encrypt,
            parameters: Parameters::new(),
        })
        .collect();

    if mapping.encodings.len() != params.encodings.len() {
        return Err(OrtcError::EncodingMappingMismatch {
            params: params.encodings.len(),
            mapping: mapping.encodings.len(),
        });
    }
    consumable.encodings = params
        .encodings
        .iter()
        .zip(&mapping.encodings)
        .map(|(enc, m)| RtpEncodingParameters {
            ssrc: Some(m.mapped_ssrc),
            rid: None,
            codec_payload_type: None,
            rtx: None,
            ..enc.clone()
        })
        .collect();

    consumable.rtcp = RtcpParameters {
        cname: params.rtcp.cname.clone(),
        reduced_size: true,
    };
    Ok(consumable)
}

// ---------------------------------------------------------------------------------------------
// Consumers

/// Whether an endpoint with `caps` can consume a producer with these consumable parameters: the
/// first codec both support must be a media codec (mediasoup's `canConsume`). Invalid
/// capabilities should be refused beforehand with [`validate_rtp_capabilities`].
pub fn can_consume(consumable: &RtpParameters, caps: &RtpCapabilities) -> bool {
    consumable
        .codecs
        .iter()
        .find(|codec| {
            caps.codecs
                .iter()
                .any(|cap| match_codecs(cap.into(), (*codec).into(), true))
        })
        .is_some_and(|first| !first.is_rtx())
}

/// Options of [`get_consumer_rtp_parameters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerRtpOptions {
    /// Keep all the producer's encodings (for a pipe to another router) instead of one.
    pub pipe: bool,
    /// Retransmissions (RTX codec, plain NACK feedback). mediasoup's default: on for video,
    /// off for audio — see [`ConsumerRtpOptions::for_kind`].
    pub enable_rtx: bool,
}

impl ConsumerRtpOptions {
    /// mediasoup's defaults for a consumer of `kind`: no pipe, RTX/NACK for video only.
    pub fn for_kind(kind: MediaKind) -> Self {
        ConsumerRtpOptions {
            pipe: false,
            enable_rtx: kind == MediaKind::Video,
        }
    }
}

/// Parameters for one consumer (mediasoup's `getConsumerRtpParameters`): the consumable codecs
/// the remote supports (strict match), each with the RTCP feedback both sides support; RTX only
/// when enabled and its media codec remains; header extensions the remote has with the same id;
/// transport-cc feedback kept only with the transport-wide-cc extension, goog-remb only with
/// abs-send-time and no transport-cc.
///
/// Not piped: a single encoding with `next_ssrc()` (RTX SSRC = that + 1 when RTX is
/// negotiated), the scalability mode of the producer (`L{n}T{t}` for n simulcast encodings) and
/// the highest `maxBitrate`. Piped: every consumable encoding, with consecutive SSRCs from one
/// `next_ssrc()` and RTX SSRCs from another.
///
/// `mid` is left unset: the transport assigns it.
pub fn get_consumer_rtp_parameters(
    consumable: &RtpParameters,
    remote_caps: &RtpCapabilities,
    options: ConsumerRtpOptions,
    next_ssrc: &mut impl FnMut() -> u32,
) -> Result<RtpParameters, OrtcError> {
    validate::validate_codec_capabilities(remote_caps)?;
    let enable_rtx = options.enable_rtx;
    let mut codecs: Vec<RtpCodecParameters> = Vec::new();
    for codec in &consumable.codecs {
        if !enable_rtx && codec.is_rtx() {
            continue;
        }
        let Some(cap) = remote_caps
            .codecs
            .iter()
            .find(|cap| match_codecs((*cap).into(), codec.into(), true))
        else {
            continue;
        };
        let rtcp_feedback = cap
            .rtcp_feedback
            .iter()
            .filter(|fb| enable_rtx || fb.kind != "nack" || !fb.parameter.is_empty())
            .filter(|fb| codec.rtcp_feedback.contains(fb))
            .cloned()
            .collect();
        codecs.push(RtpCodecParameters {
            rtcp_feedback,
            ..codec.clone()
        });
    }
    // Drop RTX codecs whose media codec did not make it.
    let media_pts: Vec<u8> = codecs
        .iter()
        .filter(|c| !c.is_rtx())
        .map(|c| c.payload_type)
        .collect();
    codecs.retain(|c| !c.is_rtx() || c.apt().is_some_and(|apt| media_pts.contains(&apt)));
    let rtx_supported = codecs.iter().any(RtpCodecParameters::is_rtx);
    if codecs.first().is_none_or(RtpCodecParameters::is_rtx) {
        return Err(OrtcError::NoCompatibleMediaCodecs);
    }

    let header_extensions: Vec<RtpHeaderExtensionParameters> = consumable
        .header_extensions
        .iter()
        .filter(|ext| {
            remote_caps
                .header_extensions
                .iter()
                .any(|cap| cap.preferred_id == ext.id && cap.uri == ext.uri)
        })
        .cloned()
        .collect();
    let has_ext = |uri: &str| header_extensions.iter().any(|e| e.uri == uri);
    let drop: &[&str] = if has_ext(URI_TRANSPORT_WIDE_CC) {
        &["goog-remb"]
    } else if has_ext(URI_ABS_SEND_TIME) {
        &["transport-cc"]
    } else {
        &["transport-cc", "goog-remb"]
    };
    for codec in &mut codecs {
        codec
            .rtcp_feedback
            .retain(|fb| !drop.contains(&fb.kind.as_str()));
    }

    let encodings = if options.pipe {
        let base = next_ssrc();
        let base_rtx = next_ssrc();
        consumable
            .encodings
            .iter()
            .zip(0u32..)
            .map(|(enc, i)| RtpEncodingParameters {
                ssrc: Some(base.wrapping_add(i)),
                rtx: rtx_supported.then(|| RtxParameters {
                    ssrc: base_rtx.wrapping_add(i),
                }),
                ..enc.clone()
            })
            .collect()
    } else {
        let ssrc = next_ssrc();
        let mut scalability_mode = consumable
            .encodings
            .iter()
            .find_map(|e| e.scalability_mode.clone());
        if consumable.encodings.len() > 1 {
            let (_, temporal) = parse_scalability_mode(scalability_mode.as_deref());
            scalability_mode = Some(format!("L{}T{temporal}", consumable.encodings.len()));
        }
        let max_bitrate = consumable
            .encodings
            .iter()
            .filter_map(|e| e.max_bitrate)
            .max()
            .filter(|b| *b > 0);
        vec![RtpEncodingParameters {
            ssrc: Some(ssrc),
            rtx: rtx_supported.then(|| RtxParameters {
                ssrc: ssrc.wrapping_add(1),
            }),
            scalability_mode,
            max_bitrate,
            ..RtpEncodingParameters::default()
        }]
    };

    Ok(RtpParameters {
        mid: None,
        codecs,
        header_extensions,
        encodings,
        rtcp: consumable.rtcp.clone(),
    })
}

/// The consumer type mediasoup gives a producer's consumers, from its consumable parameters:
/// simulcast for several encodings, or one VP8/H264 encoding with temporal layers; SVC for one
/// VP9 encoding with layers; simple otherwise. (One AV1 encoding with layers is SVC in
/// mediasoup: the worker has no AV1 dependency-descriptor support, it forwards that stream
/// whole, every layer, as a simple consumer.)
pub fn consumer_type(consumable: &RtpParameters) -> ferrosfu_fbs::ConsumerType {
    use ferrosfu_fbs::ConsumerType;
    if consumable.encodings.len() > 1 {
        return ConsumerType::Simulcast;
    }
    let mode = consumable
        .encodings
        .first()
        .and_then(|e| e.scalability_mode.as_deref());
    let (spatial, temporal) = parse_scalability_mode(mode);
    if spatial == 1 && temporal == 1 {
        return ConsumerType::Simple;
    }
    let mime = consumable
        .codecs
        .first()
        .map(|c| c.mime_type.to_ascii_lowercase())
        .unwrap_or_default();
    match mime.as_str() {
        "video/vp9" => ConsumerType::Svc,
        "video/vp8" | "video/h264" => ConsumerType::Simulcast,
        _ => ConsumerType::Simple,
    }
}

/// A random SSRC in mediasoup's range (100000000–999999999), from the standard library's
/// randomly keyed hasher (no RNG dependency).
pub fn random_ssrc() -> u32 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let h = std::collections::hash_map::RandomState::new().hash_one(nanos);
    100_000_000 + (h % 900_000_000) as u32
}
