//! Conversion of resolved parameters to the worker's typed messages (`ferrosfu_fbs`).
//!
//! Codec parameters become `(key, value)` string pairs sorted by key, numbers in decimal;
//! header-extension parameters, `scaleResolutionDownBy` and a missing CNAME (→ "") have no
//! counterpart on the worker side.

use ferrosfu_fbs as fbs;

use super::types::{
    CodecMapping, EncodingMapping, MediaKind, Parameters, RtcpFeedback, RtcpParameters,
    RtpCodecParameters, RtpEncodingParameters, RtpHeaderExtensionParameters, RtpMapping,
    RtpParameters,
};

impl From<MediaKind> for fbs::MediaKind {
    fn from(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Audio => fbs::MediaKind::Audio,
            MediaKind::Video => fbs::MediaKind::Video,
        }
    }
}

impl From<fbs::MediaKind> for MediaKind {
    fn from(kind: fbs::MediaKind) -> Self {
        match kind {
            fbs::MediaKind::Audio => MediaKind::Audio,
            fbs::MediaKind::Video => MediaKind::Video,
        }
    }
}

/// Sorted by key (the map is ordered), values as text.
fn parameter_pairs(parameters: &Parameters) -> Vec<(String, String)> {
    parameters
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

impl From<&RtcpFeedback> for fbs::RtcpFeedback {
    fn from(fb: &RtcpFeedback) -> Self {
        fbs::RtcpFeedback {
            kind: fb.kind.clone(),
            parameter: fb.parameter.clone(),
        }
    }
}

impl From<&RtpCodecParameters> for fbs::RtpCodecParameters {
    fn from(c: &RtpCodecParameters) -> Self {
        fbs::RtpCodecParameters {
            mime_type: c.mime_type.clone(),
            payload_type: c.payload_type,
            clock_rate: c.clock_rate,
            channels: c.channels,
            parameters: parameter_pairs(&c.parameters),
            rtcp_feedback: c.rtcp_feedback.iter().map(Into::into).collect(),
        }
    }
}

impl From<&RtpHeaderExtensionParameters> for fbs::RtpHeaderExtensionParameters {
    fn from(e: &RtpHeaderExtensionParameters) -> Self {
        fbs::RtpHeaderExtensionParameters {
            uri: e.uri.clone(),
            id: e.id,
            encrypt: e.encrypt,
        }
    }
}

impl From<&RtpEncodingParameters> for fbs::RtpEncodingParameters {
    fn from(e: &RtpEncodingParameters) -> Self {
        fbs::RtpEncodingParameters {
            ssrc: e.ssrc,
            rid: e.rid.clone(),
            codec_payload_type: e.codec_payload_type,
            rtx_ssrc: e.rtx.map(|r| r.ssrc),
            max_bitrate: e.max_bitrate,
            scalability_mode: e.scalability_mode.clone(),
            dtx: e.dtx,
        }
    }
}

impl From<&RtcpParameters> for fbs::RtcpParameters {
    fn from(r: &RtcpParameters) -> Self {
        fbs::RtcpParameters {
            cname: r.cname.clone().unwrap_or_default(),
            reduced_size: r.reduced_size,
        }
    }
}

impl From<&RtpParameters> for fbs::RtpParameters {
    fn from(p: &RtpParameters) -> Self {
        fbs::RtpParameters {
            mid: p.mid.clone(),
            codecs: p.codecs.iter().map(Into::into).collect(),
            header_extensions: p.header_extensions.iter().map(Into::into).collect(),
            encodings: p.encodings.iter().map(Into::into).collect(),
            rtcp: (&p.rtcp).into(),
        }
    }
}

impl From<&CodecMapping> for fbs::CodecMapping {
    fn from(m: &CodecMapping) -> Self {
        fbs::CodecMapping {
            payload_type: m.payload_type,
            mapped_payload_type: m.mapped_payload_type,
        }
    }
}

impl From<&EncodingMapping> for fbs::EncodingMapping {
    fn from(m: &EncodingMapping) -> Self {
        fbs::EncodingMapping {
            ssrc: m.ssrc,
            rid: m.rid.clone(),
            scalability_mode: m.scalability_mode.clone(),
            mapped_ssrc: m.mapped_ssrc,
        }
    }
}

impl From<&RtpMapping> for fbs::RtpMapping {
    fn from(m: &RtpMapping) -> Self {
        fbs::RtpMapping {
            codecs: m.codecs.iter().map(Into::into).collect(),
            encodings: m.encodings.iter().map(Into::into).collect(),
        }
    }
}
