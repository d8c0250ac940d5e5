//! What the SFU can route (the subset of mediasoup's `supportedRtpCapabilities` our worker
//! handles) and the default media codecs of a router.

use super::types::{
    Direction, MediaKind, Parameters, RtcpFeedback, RtpCapabilities, RtpCodecCapability,
    RtpHeaderExtension,
};

pub const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub const URI_RTP_STREAM_ID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
pub const URI_REPAIRED_RTP_STREAM_ID: &str =
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
pub const URI_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub const URI_TRANSPORT_WIDE_CC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
pub const URI_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub const URI_VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";
pub const URI_TOFFSET: &str = "urn:ietf:params:rtp-hdrext:toffset";
pub const URI_PLAYOUT_DELAY: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
pub const URI_ABS_CAPTURE_TIME: &str =
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";

/// Payload types handed out to codecs without a preferred one, in order (mediasoup's list).
pub(crate) const DYNAMIC_PAYLOAD_TYPES: [u8; 32] = [
    100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118,
    119, 120, 121, 122, 123, 124, 125, 126, 127, 96, 97, 98, 99,
];

fn fb(list: &[(&str, &str)]) -> Vec<RtcpFeedback> {
    list.iter().map(|(t, p)| RtcpFeedback::new(t, p)).collect()
}

fn video_feedback() -> Vec<RtcpFeedback> {
    fb(&[
        ("nack", ""),
        ("nack", "pli"),
        ("ccm", "fir"),
        ("goog-remb", ""),
        ("transport-cc", ""),
    ])
}

fn params(pairs: &[(&str, super::types::ParameterValue)]) -> Parameters {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn audio(
    mime_type: &str,
    preferred_payload_type: Option<u8>,
    clock_rate: u32,
    channels: u8,
    parameters: Parameters,
    rtcp_feedback: Vec<RtcpFeedback>,
) -> RtpCodecCapability {
    RtpCodecCapability {
        kind: MediaKind::Audio,
        mime_type: mime_type.to_owned(),
        preferred_payload_type,
        clock_rate,
        channels: Some(channels),
        parameters,
        rtcp_feedback,
    }
}

fn video(mime_type: &str, parameters: Parameters) -> RtpCodecCapability {
    RtpCodecCapability {
        kind: MediaKind::Video,
        mime_type: mime_type.to_owned(),
        preferred_payload_type: None,
        clock_rate: 90000,
        channels: None,
        parameters,
        rtcp_feedback: video_feedback(),
    }
}

fn ext(kind: MediaKind, uri: &str, preferred_id: u8, direction: Direction) -> RtpHeaderExtension {
    RtpHeaderExtension {
        kind,
        uri: uri.to_owned(),
        preferred_id,
        preferred_encrypt: false,
        direction,
    }
}

/// Every codec and header extension a router may be configured with. Codecs follow mediasoup's
/// `supportedRtpCapabilities` (Opus and multi-channel Opus get NACK + transport-cc, video gets
/// NACK, PLI, FIR, REMB, transport-cc) restricted to what the worker handles; header extensions
/// carry mediasoup's ids and directions.
pub fn supported_rtp_capabilities() -> RtpCapabilities {
    use Direction::{Recvonly, Sendrecv};
    use MediaKind::{Audio, Video};

    let audio_fb = || fb(&[("nack", ""), ("transport-cc", "")]);
    let multiopus = |channels: u8, mapping: &str, streams: u32, coupled: u32| {
        audio(
            "audio/multiopus",
            None,
            48000,
            channels,
            params(&[
                ("channel_mapping", mapping.into()),
                ("num_streams", streams.into()),
                ("coupled_streams", coupled.into()),
            ]),
            audio_fb(),
        )
    };
    let laa = || params(&[("level-asymmetry-allowed", 1u32.into())]);
    let transport_cc_only = || fb(&[("transport-cc", "")]);
    RtpCapabilities {
        codecs: vec![
            audio("audio/opus", None, 48000, 2, Parameters::new(), audio_fb()),
            multiopus(4, "0,1,2,3", 2, 2),
            multiopus(6, "0,4,1,2,3,5", 4, 2),
            multiopus(8, "0,6,1,2,3,4,5,7", 5, 3),
            audio(
                "audio/PCMU",
                Some(0),
                8000,
                1,
                Parameters::new(),
                transport_cc_only(),
            ),
            audio(
                "audio/PCMA",
                Some(8),
                8000,
                1,
                Parameters::new(),
                transport_cc_only(),
            ),
            audio(
                "audio/G722",
                Some(9),
                8000,
                1,
                Parameters::new(),
                transport_cc_only(),
            ),
            video("video/VP8", Parameters::new()),
            video("video/VP9", Parameters::new()),
            video("video/H264", laa()),
        ],
        header_extensions: vec![
            ext(Audio, URI_MID, 1, Sendrecv),
            ext(Video, URI_MID, 1, Sendrecv),
            ext(Video, URI_RTP_STREAM_ID, 2, Recvonly),
            ext(Video, URI_REPAIRED_RTP_STREAM_ID, 3, Recvonly),
            ext(Audio, URI_ABS_SEND_TIME, 4, Sendrecv),
            ext(Video, URI_ABS_SEND_TIME, 4, Sendrecv),
            // Audio: transport-wide CC only on what producers send.
            ext(Audio, URI_TRANSPORT_WIDE_CC, 5, Recvonly),
            ext(Video, URI_TRANSPORT_WIDE_CC, 5, Sendrecv),
            ext(Audio, URI_AUDIO_LEVEL, 10, Sendrecv),
            ext(Video, URI_VIDEO_ORIENTATION, 11, Sendrecv),
            ext(Video, URI_TOFFSET, 12, Sendrecv),
            ext(Audio, URI_ABS_CAPTURE_TIME, 13, Sendrecv),
            ext(Video, URI_ABS_CAPTURE_TIME, 13, Sendrecv),
            ext(Audio, URI_PLAYOUT_DELAY, 14, Sendrecv),
            ext(Video, URI_PLAYOUT_DELAY, 14, Sendrecv),
        ],
    }
}

fn media_codec(kind: MediaKind, mime_type: &str, clock_rate: u32) -> RtpCodecCapability {
    RtpCodecCapability {
        kind,
        mime_type: mime_type.to_owned(),
        preferred_payload_type: None,
        clock_rate,
        channels: None,
        parameters: Parameters::new(),
        rtcp_feedback: Vec::new(),
    }
}

/// The router's media codecs unless configured otherwise: Opus 48000/2, VP8, VP9 profile 0 and
/// 2, H264 constrained baseline 3.1 (42e01f) and main 5 (4d0032), both packetization-mode 1.
pub fn default_media_codecs() -> Vec<RtpCodecCapability> {
    let vp9 = |profile_id: u32| RtpCodecCapability {
        parameters: params(&[("profile-id", profile_id.into())]),
        ..media_codec(MediaKind::Video, "video/VP9", 90000)
    };
    let h264 = |profile_level_id: &str| RtpCodecCapability {
        parameters: params(&[
            ("packetization-mode", 1u32.into()),
            ("profile-level-id", profile_level_id.into()),
            ("level-asymmetry-allowed", 1u32.into()),
        ]),
        ..media_codec(MediaKind::Video, "video/H264", 90000)
    };
    vec![
        RtpCodecCapability {
            channels: Some(2),
            ..media_codec(MediaKind::Audio, "audio/opus", 48000)
        },
        media_codec(MediaKind::Video, "video/VP8", 90000),
        vp9(0),
        vp9(2),
        h264("42e01f"),
        h264("4d0032"),
    ]
}
