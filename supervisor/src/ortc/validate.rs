//! Validation of what endpoints send. Missing optional fields already got mediasoup's defaults
//! when parsing; what is left are the checks mediasoup does in `ortc.ts` plus the ones its worker
//! does on producer/consumer parameters (duplicate payload types, RTX `apt`, SSRC/RID presence),
//! since our worker trusts what the supervisor resolved.

use std::collections::HashSet;

use super::OrtcError;
use super::types::{
    MediaKind, Parameters, RtpCapabilities, RtpCodecCapability, RtpParameters, is_rtx,
};

/// The media kind of a mime type ("audio/…" or "video/…", case-insensitive, non-empty subtype).
pub(crate) fn mime_kind(mime_type: &str) -> Result<MediaKind, OrtcError> {
    let invalid = || OrtcError::InvalidMimeType {
        mime_type: mime_type.to_owned(),
    };
    let (kind, sub) = mime_type.split_once('/').ok_or_else(invalid)?;
    if sub.is_empty() {
        return Err(invalid());
    }
    if kind.eq_ignore_ascii_case("audio") {
        Ok(MediaKind::Audio)
    } else if kind.eq_ignore_ascii_case("video") {
        Ok(MediaKind::Video)
    } else {
        Err(invalid())
    }
}

const MAX_PAYLOAD_TYPE: u8 = 127;

fn check_payload_type(payload_type: u8) -> Result<(), OrtcError> {
    if payload_type > MAX_PAYLOAD_TYPE {
        return Err(OrtcError::InvalidPayloadType { payload_type });
    }
    Ok(())
}

/// `apt`, when present, must be a JSON number (mediasoup); RTX codecs must have a valid one.
fn check_apt(mime_type: &str, payload_type: u8, parameters: &Parameters) -> Result<(), OrtcError> {
    let apt = parameters.get("apt");
    let valid = apt
        .and_then(|v| v.as_number())
        .and_then(serde_json::Number::as_u64)
        .is_some_and(|v| v <= u64::from(MAX_PAYLOAD_TYPE));
    if (apt.is_some() || is_rtx(mime_type)) && !valid {
        return Err(OrtcError::InvalidApt {
            payload_type,
            apt: apt.map(ToString::to_string),
        });
    }
    Ok(())
}

pub(crate) fn check_codec_capability(codec: &RtpCodecCapability) -> Result<(), OrtcError> {
    let kind = mime_kind(&codec.mime_type)?;
    if kind != codec.kind {
        return Err(OrtcError::KindMismatch {
            mime_type: codec.mime_type.clone(),
            kind: codec.kind,
        });
    }
    if codec.clock_rate == 0 {
        return Err(OrtcError::InvalidClockRate {
            mime_type: codec.mime_type.clone(),
        });
    }
    let pt = codec.preferred_payload_type.unwrap_or(0);
    check_payload_type(pt)?;
    check_apt(&codec.mime_type, pt, &codec.parameters)?;
    if codec.rtcp_feedback.iter().any(|fb| fb.kind.is_empty()) {
        return Err(OrtcError::InvalidRtcpFeedback {
            mime_type: codec.mime_type.clone(),
        });
    }
    Ok(())
}

/// Checks capabilities (a router's, or what an endpoint announced): valid mime types matching
/// `kind`, non-zero clock rates, payload types ≤ 127, numeric `apt`, non-empty feedback types,
/// header extensions with a URI and a non-zero id.
pub fn validate_rtp_capabilities(caps: &RtpCapabilities) -> Result<(), OrtcError> {
    validate_codec_capabilities(caps)?;
    for ext in &caps.header_extensions {
        if ext.uri.is_empty() {
            return Err(OrtcError::MissingHeaderExtensionUri);
        }
        if ext.preferred_id == 0 {
            return Err(OrtcError::InvalidHeaderExtensionId {
                uri: ext.uri.clone(),
                id: 0,
            });
        }
    }
    Ok(())
}

/// The codec part of [`validate_rtp_capabilities`] (what mediasoup checks of remote
/// capabilities when building consumer parameters).
pub(crate) fn validate_codec_capabilities(caps: &RtpCapabilities) -> Result<(), OrtcError> {
    caps.codecs.iter().try_for_each(check_codec_capability)
}

/// Checks RTP parameters (a producer's as sent, or a consumer's as computed):
/// - codecs: at least one media codec, valid mime types, non-zero clock rates, unique payload
///   types ≤ 127, every RTX codec's `apt` pointing at a media codec of the list;
/// - header extensions: a URI, unique non-zero ids;
/// - encodings: at least one; each with an SSRC or a RID, except a single encoding of
///   parameters with a `mid` (MID-based demux, as mediasoup's worker allows); no SSRC or RID
///   twice; `codecPayloadType`, when given, naming a media codec of the list.
pub fn validate_rtp_parameters(params: &RtpParameters) -> Result<(), OrtcError> {
    if params.mid.as_deref() == Some("") {
        return Err(OrtcError::EmptyMid);
    }
    let mut pts = HashSet::new();
    for codec in &params.codecs {
        mime_kind(&codec.mime_type)?;
        if codec.clock_rate == 0 {
            return Err(OrtcError::InvalidClockRate {
                mime_type: codec.mime_type.clone(),
            });
        }
        check_payload_type(codec.payload_type)?;
        if !pts.insert(codec.payload_type) {
            return Err(OrtcError::DuplicatePayloadType {
                payload_type: codec.payload_type,
            });
        }
        check_apt(&codec.mime_type, codec.payload_type, &codec.parameters)?;
        if codec.rtcp_feedback.iter().any(|fb| fb.kind.is_empty()) {
            return Err(OrtcError::InvalidRtcpFeedback {
                mime_type: codec.mime_type.clone(),
            });
        }
    }
    if !params.codecs.iter().any(|c| !c.is_rtx()) {
        return Err(OrtcError::NoMediaCodec);
    }
    let is_media_pt = |pt: u8| {
        params
            .codecs
            .iter()
            .any(|c| c.payload_type == pt && !c.is_rtx())
    };
    for codec in params.codecs.iter().filter(|c| c.is_rtx()) {
        // check_apt made sure there is one.
        let apt = codec.apt().unwrap_or_default();
        if !is_media_pt(apt) {
            return Err(OrtcError::AptNotFound {
                payload_type: codec.payload_type,
                apt,
            });
        }
    }

    let mut ids = HashSet::new();
    for ext in &params.header_extensions {
        if ext.uri.is_empty() {
            return Err(OrtcError::MissingHeaderExtensionUri);
        }
        if ext.id == 0 || !ids.insert(ext.id) {
            return Err(OrtcError::InvalidHeaderExtensionId {
                uri: ext.uri.clone(),
                id: ext.id,
            });
        }
    }

    if params.encodings.is_empty() {
        return Err(OrtcError::NoEncodings);
    }
    let mid_demux = params.mid.is_some() && params.encodings.len() == 1;
    let mut ssrcs = HashSet::new();
    let mut rids = HashSet::new();
    for (index, enc) in params.encodings.iter().enumerate() {
        let rid = enc.rid.as_deref().filter(|r| !r.is_empty());
        if enc.ssrc.is_none() && rid.is_none() && !mid_demux {
            return Err(OrtcError::MissingSsrcOrRid { index });
        }
        let dup_ssrc = [enc.ssrc, enc.rtx.map(|r| r.ssrc)]
            .into_iter()
            .flatten()
            .find(|s| !ssrcs.insert(*s));
        if let Some(ssrc) = dup_ssrc {
            return Err(OrtcError::DuplicateSsrc { ssrc });
        }
        if let Some(rid) = rid.filter(|r| !rids.insert(*r)) {
            return Err(OrtcError::DuplicateRid {
                rid: rid.to_owned(),
            });
        }
        if let Some(pt) = enc.codec_payload_type.filter(|pt| !is_media_pt(*pt)) {
            return Err(OrtcError::InvalidCodecPayloadType {
                index,
                payload_type: pt,
            });
        }
    }
    Ok(())
}
