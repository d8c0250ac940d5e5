use serde_json::json;

use super::*;

/// Deterministic SSRCs: start, start + 1, …
fn seq(start: u32) -> impl FnMut() -> u32 {
    let mut next = start;
    move || {
        let v = next;
        next += 1;
        v
    }
}

fn router_caps() -> RtpCapabilities {
    router_rtp_capabilities(&default_media_codecs()).unwrap()
}

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn fb(kind: &str, parameter: &str) -> RtcpFeedback {
    RtcpFeedback::new(kind, parameter)
}

/// What Chrome sends through mediasoup-client for a microphone (its own PT and extension ids).
fn chrome_opus() -> RtpParameters {
    parse(json!({
        "mid": "0",
        "codecs": [{
            "mimeType": "audio/opus",
            "payloadType": 111,
            "clockRate": 48000,
            "channels": 2,
            "parameters": { "minptime": 10, "useinbandfec": 1, "sprop-stereo": 1 },
            "rtcpFeedback": [{ "type": "transport-cc", "parameter": "" }]
        }],
        "headerExtensions": [
            { "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4, "encrypt": false, "parameters": {} },
            { "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 2, "encrypt": false, "parameters": {} },
            { "uri": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", "id": 3, "encrypt": false, "parameters": {} },
            { "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 1, "encrypt": false, "parameters": {} }
        ],
        "encodings": [{ "ssrc": 1_111_111_111u32, "dtx": false }],
        "rtcp": { "cname": "u7Gx4aXq1tXbQ2Lr", "reducedSize": true }
    }))
}

/// A camera: VP8 with RTX, one encoding.
fn chrome_vp8() -> RtpParameters {
    parse(json!({
        "mid": "1",
        "codecs": [
            {
                "mimeType": "video/VP8",
                "payloadType": 96,
                "clockRate": 90000,
                "parameters": {},
                "rtcpFeedback": [
                    { "type": "goog-remb", "parameter": "" },
                    { "type": "transport-cc", "parameter": "" },
                    { "type": "ccm", "parameter": "fir" },
                    { "type": "nack", "parameter": "" },
                    { "type": "nack", "parameter": "pli" }
                ]
            },
            {
                "mimeType": "video/rtx",
                "payloadType": 97,
                "clockRate": 90000,
                "parameters": { "apt": 96 },
                "rtcpFeedback": []
            }
        ],
        "headerExtensions": [
            { "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4 },
            { "uri": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "id": 10 },
            { "uri": "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id", "id": 11 },
            { "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 2 },
            { "uri": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", "id": 3 },
            { "uri": "urn:3gpp:video-orientation", "id": 13 },
            { "uri": "urn:ietf:params:rtp-hdrext:toffset", "id": 14 }
        ],
        "encodings": [{
            "ssrc": 2_222_222_222u32,
            "rtx": { "ssrc": 3_333_333_333u32 },
            "scalabilityMode": "L1T3",
            "maxBitrate": 1_500_000,
            "active": true
        }],
        "rtcp": { "cname": "u7Gx4aXq1tXbQ2Lr", "reducedSize": true }
    }))
}

fn chrome_h264(profile_level_id: &str) -> RtpParameters {
    parse(json!({
        "mid": "2",
        "codecs": [
            {
                "mimeType": "video/H264",
                "payloadType": 102,
                "clockRate": 90000,
                "parameters": {
                    "level-asymmetry-allowed": 1,
                    "packetization-mode": 1,
                    "profile-level-id": profile_level_id
                },
                "rtcpFeedback": [
                    { "type": "nack" }, { "type": "nack", "parameter": "pli" },
                    { "type": "ccm", "parameter": "fir" }, { "type": "goog-remb" },
                    { "type": "transport-cc" }
                ]
            },
            {
                "mimeType": "video/rtx",
                "payloadType": 103,
                "clockRate": 90000,
                "parameters": { "apt": 102 }
            }
        ],
        "headerExtensions": [
            { "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4 }
        ],
        "encodings": [{ "ssrc": 444_444_444, "rtx": { "ssrc": 555_555_555 } }],
        "rtcp": { "cname": "h264cname" }
    }))
}

/// `device.rtpCapabilities` of a Chrome mediasoup-client loaded against the default router:
/// the router's PTs and ids, without VP9, abs-capture-time and playout-delay.
fn browser_caps() -> RtpCapabilities {
    parse(json!({
        "codecs": [
            {
                "mimeType": "audio/opus", "kind": "audio", "preferredPayloadType": 100,
                "clockRate": 48000, "channels": 2,
                "parameters": { "minptime": 10, "useinbandfec": 1 },
                "rtcpFeedback": [
                    { "type": "transport-cc", "parameter": "" },
                    { "type": "nack", "parameter": "" }
                ]
            },
            {
                "mimeType": "video/VP8", "kind": "video", "preferredPayloadType": 101,
                "clockRate": 90000, "parameters": {},
                "rtcpFeedback": [
                    { "type": "goog-remb", "parameter": "" },
                    { "type": "transport-cc", "parameter": "" },
                    { "type": "ccm", "parameter": "fir" },
                    { "type": "nack", "parameter": "" },
                    { "type": "nack", "parameter": "pli" }
                ]
            },
            {
                "mimeType": "video/rtx", "kind": "video", "preferredPayloadType": 102,
                "clockRate": 90000, "parameters": { "apt": 101 }, "rtcpFeedback": []
            },
            {
                "mimeType": "video/H264", "kind": "video", "preferredPayloadType": 107,
                "clockRate": 90000,
                "parameters": {
                    "level-asymmetry-allowed": 1, "packetization-mode": 1,
                    "profile-level-id": "42e01f"
                },
                "rtcpFeedback": [
                    { "type": "goog-remb" }, { "type": "transport-cc" },
                    { "type": "ccm", "parameter": "fir" }, { "type": "nack" },
                    { "type": "nack", "parameter": "pli" }
                ]
            },
            {
                "mimeType": "video/rtx", "kind": "video", "preferredPayloadType": 108,
                "clockRate": 90000, "parameters": { "apt": 107 }, "rtcpFeedback": []
            }
        ],
        "headerExtensions": [
            { "kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1, "preferredEncrypt": false, "direction": "sendrecv" },
            { "kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1, "preferredEncrypt": false, "direction": "sendrecv" },
            { "kind": "audio", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "preferredId": 4, "preferredEncrypt": false, "direction": "sendrecv" },
            { "kind": "video", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "preferredId": 4, "preferredEncrypt": false, "direction": "sendrecv" },
            { "kind": "video", "uri": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", "preferredId": 5, "preferredEncrypt": false, "direction": "sendrecv" },
            { "kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "preferredId": 10, "preferredEncrypt": false, "direction": "sendrecv" },
            { "kind": "video", "uri": "urn:3gpp:video-orientation", "preferredId": 11, "preferredEncrypt": false, "direction": "sendrecv" },
            { "kind": "video", "uri": "urn:ietf:params:rtp-hdrext:toffset", "preferredId": 12, "preferredEncrypt": false, "direction": "sendrecv" }
        ]
    }))
}

fn codec_mapping(pairs: &[(u8, u8)]) -> Vec<CodecMapping> {
    pairs
        .iter()
        .map(|&(payload_type, mapped_payload_type)| CodecMapping {
            payload_type,
            mapped_payload_type,
        })
        .collect()
}

fn ext_ids(params: &RtpParameters) -> Vec<(&str, u8)> {
    params
        .header_extensions
        .iter()
        .map(|e| (e.uri.as_str(), e.id))
        .collect()
}

/// Producer → consumable, the way a transport's `produce` does it.
fn produce(
    kind: MediaKind,
    mut params: RtpParameters,
    first_ssrc: u32,
) -> (RtpParameters, RtpMapping, RtpParameters) {
    let caps = router_caps();
    let mapping =
        get_producer_rtp_parameters_mapping(&mut params, &caps, &mut seq(first_ssrc)).unwrap();
    let consumable = get_consumable_rtp_parameters(kind, &params, &caps, &mapping).unwrap();
    (params, mapping, consumable)
}

// ---------------------------------------------------------------------------------------------
// Router capabilities

#[test]
fn router_capabilities_assign_dynamic_payload_types_with_rtx() {
    let caps = router_caps();
    let summary: Vec<(&str, Option<u8>, Option<u8>)> = caps
        .codecs
        .iter()
        .map(|c| (c.mime_type.as_str(), c.preferred_payload_type, c.apt()))
        .collect();
    assert_eq!(
        summary,
        [
            ("audio/opus", Some(100), None),
            ("video/VP8", Some(101), None),
            ("video/rtx", Some(102), Some(101)),
            ("video/VP9", Some(103), None),
            ("video/rtx", Some(104), Some(103)),
            ("video/VP9", Some(105), None),
            ("video/rtx", Some(106), Some(105)),
            ("video/H264", Some(107), None),
            ("video/rtx", Some(108), Some(107)),
            ("video/H264", Some(109), None),
            ("video/rtx", Some(110), Some(109)),
        ]
    );
    let opus = &caps.codecs[0];
    assert_eq!(opus.channels, Some(2));
    assert_eq!(opus.kind, MediaKind::Audio);
    assert_eq!(opus.rtcp_feedback, [fb("nack", ""), fb("transport-cc", "")]);
    let vp8 = &caps.codecs[1];
    assert_eq!(
        vp8.rtcp_feedback,
        [
            fb("nack", ""),
            fb("nack", "pli"),
            fb("ccm", "fir"),
            fb("goog-remb", ""),
            fb("transport-cc", "")
        ]
    );
    assert_eq!(vp8.channels, None);
    assert!(caps.codecs[2].rtcp_feedback.is_empty());
    assert_eq!(caps.codecs[5].parameters["profile-id"], 2u32.into());
    let h264 = &caps.codecs[9];
    assert_eq!(h264.parameters["profile-level-id"], "4d0032".into());
    assert_eq!(h264.parameters["packetization-mode"], 1u32.into());
    assert_eq!(h264.parameters["level-asymmetry-allowed"], 1u32.into());

    let exts: Vec<(MediaKind, &str, u8, Direction)> = caps
        .header_extensions
        .iter()
        .map(|e| (e.kind, e.uri.as_str(), e.preferred_id, e.direction))
        .collect();
    assert!(exts.contains(&(MediaKind::Video, URI_MID, 1, Direction::Sendrecv)));
    assert!(exts.contains(&(MediaKind::Video, URI_RTP_STREAM_ID, 2, Direction::Recvonly)));
    assert!(exts.contains(&(
        MediaKind::Video,
        URI_REPAIRED_RTP_STREAM_ID,
        3,
        Direction::Recvonly
    )));
    assert!(exts.contains(&(MediaKind::Audio, URI_ABS_SEND_TIME, 4, Direction::Sendrecv)));
    assert!(exts.contains(&(
        MediaKind::Audio,
        URI_TRANSPORT_WIDE_CC,
        5,
        Direction::Recvonly
    )));
    assert!(exts.contains(&(
        MediaKind::Video,
        URI_TRANSPORT_WIDE_CC,
        5,
        Direction::Sendrecv
    )));
    assert!(exts.contains(&(MediaKind::Audio, URI_AUDIO_LEVEL, 10, Direction::Sendrecv)));
    assert!(exts.contains(&(
        MediaKind::Video,
        URI_VIDEO_ORIENTATION,
        11,
        Direction::Sendrecv
    )));
    assert!(exts.contains(&(MediaKind::Video, URI_TOFFSET, 12, Direction::Sendrecv)));
    assert!(exts.contains(&(
        MediaKind::Audio,
        URI_ABS_CAPTURE_TIME,
        13,
        Direction::Sendrecv
    )));
    assert!(exts.contains(&(MediaKind::Video, URI_PLAYOUT_DELAY, 14, Direction::Sendrecv)));
    validate_rtp_capabilities(&caps).unwrap();
}

#[test]
fn router_capabilities_keep_preferred_payload_types() {
    let mut codecs = default_media_codecs();
    codecs.truncate(2);
    codecs[0].preferred_payload_type = Some(101);
    let caps = router_rtp_capabilities(&codecs).unwrap();
    let pts: Vec<Option<u8>> = caps
        .codecs
        .iter()
        .map(|c| c.preferred_payload_type)
        .collect();
    // 101 is taken by Opus, so VP8 gets 100 and its RTX 102.
    assert_eq!(pts, [Some(101), Some(100), Some(102)]);

    codecs[1].preferred_payload_type = Some(101);
    assert_eq!(
        router_rtp_capabilities(&codecs),
        Err(OrtcError::DuplicatePreferredPayloadType { payload_type: 101 })
    );
}

#[test]
fn router_capabilities_refuse_unsupported_or_invalid_codecs() {
    let av1: RtpCodecCapability =
        parse(json!({ "kind": "video", "mimeType": "video/AV1", "clockRate": 90000 }));
    assert_eq!(
        router_rtp_capabilities(&[av1]),
        Err(OrtcError::UnsupportedMediaCodec {
            mime_type: "video/AV1".into()
        })
    );
    // Opus without channels means mono, which mediasoup does not support either.
    let mono: RtpCodecCapability =
        parse(json!({ "kind": "audio", "mimeType": "audio/opus", "clockRate": 48000 }));
    assert!(matches!(
        router_rtp_capabilities(&[mono]),
        Err(OrtcError::UnsupportedMediaCodec { .. })
    ));
    let wrong_kind: RtpCodecCapability =
        parse(json!({ "kind": "audio", "mimeType": "video/VP8", "clockRate": 90000 }));
    assert!(matches!(
        router_rtp_capabilities(&[wrong_kind]),
        Err(OrtcError::KindMismatch { .. })
    ));
}

#[test]
fn capabilities_json_uses_mediasoup_field_names() {
    let caps = router_caps();
    let text = serde_json::to_string(&caps).unwrap();
    for needle in [
        r#""headerExtensions":["#,
        r#""mimeType":"audio/opus""#,
        r#""preferredPayloadType":100"#,
        r#""clockRate":48000"#,
        r#""channels":2"#,
        r#""rtcpFeedback":[{"type":"nack","parameter":""}"#,
        r#""preferredId":1"#,
        r#""preferredEncrypt":false"#,
        r#""direction":"recvonly""#,
        r#""kind":"video""#,
        // Numbers stay numbers, strings stay strings.
        r#""profile-id":2"#,
        r#""apt":101"#,
        r#""profile-level-id":"42e01f""#,
        r#""packetization-mode":1"#,
    ] {
        assert!(text.contains(needle), "{needle} missing in {text}");
    }
    assert!(!text.contains("preferred_payload_type"));
    assert!(!text.contains("rtcp_feedback"));
    // Video codecs have no channels.
    let vp8 = serde_json::to_value(&caps.codecs[1]).unwrap();
    assert!(vp8.get("channels").is_none());

    let back: RtpCapabilities = serde_json::from_str(&text).unwrap();
    assert_eq!(back, caps);
}

#[test]
fn parameter_values_are_preserved() {
    let p: Parameters = parse(json!({
        "profile-id": 2, "x-google-start-bitrate": 1000, "apt": 101,
        "profile-level-id": "42e01f", "sprop-maxcapturerate": "48000", "ratio": 0.5
    }));
    assert_eq!(p["profile-id"], ParameterValue::from(2u32));
    assert_eq!(p["sprop-maxcapturerate"], ParameterValue::from("48000"));
    assert_eq!(p["sprop-maxcapturerate"].as_u64(), Some(48000));
    assert_eq!(p["ratio"].to_string(), "0.5");
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        json!({
            "profile-id": 2, "x-google-start-bitrate": 1000, "apt": 101,
            "profile-level-id": "42e01f", "sprop-maxcapturerate": "48000", "ratio": 0.5
        })
    );
}

#[test]
fn defaults_are_filled_when_parsing() {
    let p: RtpParameters = parse(json!({
        "codecs": [{ "mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000 }],
        "encodings": [{ "ssrc": 1 }]
    }));
    assert!(p.header_extensions.is_empty());
    assert!(p.rtcp.reduced_size);
    assert_eq!(p.rtcp.cname, None);
    assert!(p.codecs[0].parameters.is_empty());
    assert!(!p.encodings[0].dtx);
    let caps: RtpCapabilities = parse(json!({
        "headerExtensions": [{ "kind": "audio", "uri": URI_MID, "preferredId": 1 }]
    }));
    assert!(caps.codecs.is_empty());
    assert_eq!(caps.header_extensions[0].direction, Direction::Sendrecv);
    assert!(!caps.header_extensions[0].preferred_encrypt);
}

// ---------------------------------------------------------------------------------------------
// Producers

#[test]
fn opus_producer_maps_payload_type_and_ssrc() {
    let (_, mapping, consumable) = produce(MediaKind::Audio, chrome_opus(), 5000);
    assert_eq!(mapping.codecs, codec_mapping(&[(111, 100)]));
    assert_eq!(
        mapping.encodings,
        [EncodingMapping {
            ssrc: Some(1_111_111_111),
            rid: None,
            scalability_mode: None,
            mapped_ssrc: 5000,
        }]
    );

    assert_eq!(consumable.mid, None);
    assert_eq!(consumable.codecs.len(), 1);
    let opus = &consumable.codecs[0];
    assert_eq!(opus.payload_type, 100);
    assert_eq!(opus.channels, Some(2));
    assert_eq!(opus.rtcp_feedback, [fb("nack", ""), fb("transport-cc", "")]);
    // The producer's codec parameters are kept.
    assert_eq!(opus.parameters["useinbandfec"], 1u32.into());
    assert_eq!(opus.parameters["sprop-stereo"], 1u32.into());
    // Router ids, audio extensions that may be sent (transport-cc is receive-only for audio).
    assert_eq!(
        ext_ids(&consumable),
        [
            (URI_MID, 1),
            (URI_ABS_SEND_TIME, 4),
            (URI_AUDIO_LEVEL, 10),
            (URI_ABS_CAPTURE_TIME, 13),
            (URI_PLAYOUT_DELAY, 14),
        ]
    );
    assert_eq!(consumable.encodings.len(), 1);
    assert_eq!(consumable.encodings[0].ssrc, Some(5000));
    assert_eq!(
        consumable.rtcp,
        RtcpParameters {
            cname: Some("u7Gx4aXq1tXbQ2Lr".into()),
            reduced_size: true
        }
    );
}

#[test]
fn vp8_producer_maps_rtx_via_apt() {
    let (_, mapping, consumable) = produce(MediaKind::Video, chrome_vp8(), 7000);
    assert_eq!(mapping.codecs, codec_mapping(&[(96, 101), (97, 102)]));
    assert_eq!(mapping.encodings[0].ssrc, Some(2_222_222_222));
    assert_eq!(
        mapping.encodings[0].scalability_mode.as_deref(),
        Some("L1T3")
    );
    assert_eq!(mapping.encodings[0].mapped_ssrc, 7000);

    let summary: Vec<(&str, u8, Option<u8>)> = consumable
        .codecs
        .iter()
        .map(|c| (c.mime_type.as_str(), c.payload_type, c.apt()))
        .collect();
    assert_eq!(
        summary,
        [("video/VP8", 101, None), ("video/rtx", 102, Some(101))]
    );
    // Router feedback, not what the browser offered.
    assert_eq!(consumable.codecs[0].rtcp_feedback[0], fb("nack", ""));
    // No rid/rtx in router space; the rest of the encoding is kept.
    let enc = &consumable.encodings[0];
    assert_eq!(enc.ssrc, Some(7000));
    assert_eq!(enc.rtx, None);
    assert_eq!(enc.max_bitrate, Some(1_500_000));
    assert_eq!(enc.scalability_mode.as_deref(), Some("L1T3"));
    // Video extensions the router sends (rid ones are receive-only).
    assert_eq!(
        ext_ids(&consumable),
        [
            (URI_MID, 1),
            (URI_ABS_SEND_TIME, 4),
            (URI_TRANSPORT_WIDE_CC, 5),
            (URI_VIDEO_ORIENTATION, 11),
            (URI_TOFFSET, 12),
            (URI_ABS_CAPTURE_TIME, 13),
            (URI_PLAYOUT_DELAY, 14),
        ]
    );
}

#[test]
fn h264_producer_matches_profile() {
    let (params, mapping, consumable) = produce(MediaKind::Video, chrome_h264("42e01f"), 1);
    assert_eq!(mapping.codecs, codec_mapping(&[(102, 107), (103, 108)]));
    assert_eq!(
        params.codecs[0].parameters["profile-level-id"],
        "42e01f".into()
    );
    assert_eq!(consumable.codecs[0].payload_type, 107);

    // Main profile goes to the 4d0032 codec.
    let (_, mapping, _) = produce(MediaKind::Video, chrome_h264("4d001f"), 1);
    assert_eq!(mapping.codecs, codec_mapping(&[(102, 109), (103, 110)]));
}

#[test]
fn h264_profile_mismatch_is_unsupported() {
    let caps = router_caps();
    // High profile: the router has constrained baseline and main only.
    let mut high = chrome_h264("640032");
    assert_eq!(
        get_producer_rtp_parameters_mapping(&mut high, &caps, &mut seq(1)),
        Err(OrtcError::UnsupportedCodec {
            mime_type: "video/H264".into(),
            payload_type: 102
        })
    );
    // Same profile, other packetization mode.
    let mut mode0 = chrome_h264("42e01f");
    mode0.codecs[0]
        .parameters
        .insert("packetization-mode".into(), 0u32.into());
    assert!(matches!(
        get_producer_rtp_parameters_mapping(&mut mode0, &caps, &mut seq(1)),
        Err(OrtcError::UnsupportedCodec { .. })
    ));
}

#[test]
fn h264_level_is_negotiated_into_producer_parameters() {
    let caps = router_caps();
    // Level 5.2 without level-asymmetry-allowed: the answer takes the lower level (3.1).
    let mut params = chrome_h264("42e034");
    params.codecs[0]
        .parameters
        .remove("level-asymmetry-allowed");
    get_producer_rtp_parameters_mapping(&mut params, &caps, &mut seq(1)).unwrap();
    assert_eq!(
        params.codecs[0].parameters["profile-level-id"],
        "42e01f".into()
    );
    // With asymmetry allowed on both sides the producer keeps its level.
    let mut params = chrome_h264("42e034");
    get_producer_rtp_parameters_mapping(&mut params, &caps, &mut seq(1)).unwrap();
    assert_eq!(
        params.codecs[0].parameters["profile-level-id"],
        "42e034".into()
    );
}

#[test]
fn unsupported_codec_is_refused() {
    let mut params: RtpParameters = parse(json!({
        "mid": "3",
        "codecs": [{ "mimeType": "video/AV1", "payloadType": 45, "clockRate": 90000 }],
        "encodings": [{ "ssrc": 1234 }]
    }));
    assert_eq!(
        get_producer_rtp_parameters_mapping(&mut params, &router_caps(), &mut seq(1)),
        Err(OrtcError::UnsupportedCodec {
            mime_type: "video/AV1".into(),
            payload_type: 45
        })
    );
}

#[test]
fn rtx_with_bad_apt_is_refused() {
    let mut params = chrome_vp8();
    params.codecs[1]
        .parameters
        .insert("apt".into(), 98u32.into());
    let expected = Err(OrtcError::AptNotFound {
        payload_type: 97,
        apt: 98,
    });
    assert_eq!(validate_rtp_parameters(&params), expected);
    assert_eq!(
        get_producer_rtp_parameters_mapping(&mut params, &router_caps(), &mut seq(1)),
        Err(OrtcError::AptNotFound {
            payload_type: 97,
            apt: 98
        })
    );

    // apt must be a number, as in mediasoup.
    params.codecs[1]
        .parameters
        .insert("apt".into(), "96".into());
    assert!(matches!(
        validate_rtp_parameters(&params),
        Err(OrtcError::InvalidApt {
            payload_type: 97,
            ..
        })
    ));
    // RTX pointing at RTX.
    params.codecs[1]
        .parameters
        .insert("apt".into(), 97u32.into());
    assert!(matches!(
        validate_rtp_parameters(&params),
        Err(OrtcError::AptNotFound { .. })
    ));
    params.codecs[1].parameters.remove("apt");
    assert!(matches!(
        validate_rtp_parameters(&params),
        Err(OrtcError::InvalidApt { apt: None, .. })
    ));
}

#[test]
fn rtx_without_router_rtx_is_refused() {
    // A router configured with VP8 only has RTX for it; strip it to simulate a router without.
    let mut caps = router_caps();
    caps.codecs.retain(|c| !c.is_rtx());
    let mut params = chrome_vp8();
    assert_eq!(
        get_producer_rtp_parameters_mapping(&mut params, &caps, &mut seq(1)),
        Err(OrtcError::NoRtxForCodec { payload_type: 101 })
    );
}

#[test]
fn encoding_needs_ssrc_or_rid() {
    let mut params = chrome_opus();
    params.encodings = vec![RtpEncodingParameters::default()];
    // A single encoding of parameters with a mid can be demultiplexed by MID.
    validate_rtp_parameters(&params).unwrap();

    params.mid = None;
    assert_eq!(
        validate_rtp_parameters(&params),
        Err(OrtcError::MissingSsrcOrRid { index: 0 })
    );
    assert_eq!(
        get_producer_rtp_parameters_mapping(&mut params, &router_caps(), &mut seq(1)),
        Err(OrtcError::MissingSsrcOrRid { index: 0 })
    );

    params.mid = Some("0".into());
    params.encodings = vec![
        RtpEncodingParameters {
            rid: Some("r0".into()),
            ..Default::default()
        },
        RtpEncodingParameters::default(),
    ];
    assert_eq!(
        validate_rtp_parameters(&params),
        Err(OrtcError::MissingSsrcOrRid { index: 1 })
    );
    params.encodings.clear();
    assert_eq!(
        validate_rtp_parameters(&params),
        Err(OrtcError::NoEncodings)
    );
}

#[test]
fn validation_catches_duplicates() {
    let mut params = chrome_vp8();
    params.codecs[1].payload_type = 96;
    assert_eq!(
        validate_rtp_parameters(&params),
        Err(OrtcError::DuplicatePayloadType { payload_type: 96 })
    );

    let mut params = chrome_vp8();
    params.header_extensions[1].id = 4;
    assert!(matches!(
        validate_rtp_parameters(&params),
        Err(OrtcError::InvalidHeaderExtensionId { id: 4, .. })
    ));

    let mut params = chrome_vp8();
    params.encodings[0].rtx = Some(RtxParameters {
        ssrc: 2_222_222_222,
    });
    assert_eq!(
        validate_rtp_parameters(&params),
        Err(OrtcError::DuplicateSsrc {
            ssrc: 2_222_222_222
        })
    );

    let mut params = chrome_vp8();
    params.encodings[0].codec_payload_type = Some(97);
    assert_eq!(
        validate_rtp_parameters(&params),
        Err(OrtcError::InvalidCodecPayloadType {
            index: 0,
            payload_type: 97
        })
    );

    let mut params = chrome_vp8();
    params.codecs[0].payload_type = 200;
    assert_eq!(
        validate_rtp_parameters(&params),
        Err(OrtcError::InvalidPayloadType { payload_type: 200 })
    );

    let mut params = chrome_vp8();
    params.codecs[0].mime_type = "VP8".into();
    assert!(matches!(
        validate_rtp_parameters(&params),
        Err(OrtcError::InvalidMimeType { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Consumers

#[test]
fn video_consumer_keeps_what_both_support() {
    let (_, _, consumable) = produce(MediaKind::Video, chrome_vp8(), 7000);
    let remote = browser_caps();
    validate_rtp_capabilities(&remote).unwrap();
    assert!(can_consume(&consumable, &remote));

    let params = get_consumer_rtp_parameters(
        &consumable,
        &remote,
        ConsumerRtpOptions::for_kind(MediaKind::Video),
        &mut seq(9000),
    )
    .unwrap();
    validate_rtp_parameters(&params).unwrap();
    let summary: Vec<(&str, u8)> = params
        .codecs
        .iter()
        .map(|c| (c.mime_type.as_str(), c.payload_type))
        .collect();
    assert_eq!(summary, [("video/VP8", 101), ("video/rtx", 102)]);
    // transport-cc is negotiated, so REMB goes; the remote's order is kept.
    assert_eq!(
        params.codecs[0].rtcp_feedback,
        [
            fb("transport-cc", ""),
            fb("ccm", "fir"),
            fb("nack", ""),
            fb("nack", "pli")
        ]
    );
    // Only extensions the remote knows under the same id.
    assert_eq!(
        ext_ids(&params),
        [
            (URI_MID, 1),
            (URI_ABS_SEND_TIME, 4),
            (URI_TRANSPORT_WIDE_CC, 5),
            (URI_VIDEO_ORIENTATION, 11),
            (URI_TOFFSET, 12),
        ]
    );
    assert_eq!(params.encodings.len(), 1);
    let enc = &params.encodings[0];
    assert_eq!(enc.ssrc, Some(9000));
    assert_eq!(enc.rtx, Some(RtxParameters { ssrc: 9001 }));
    assert_eq!(enc.scalability_mode.as_deref(), Some("L1T3"));
    assert_eq!(enc.max_bitrate, Some(1_500_000));
    assert_eq!(enc.rid, None);
    assert_eq!(params.rtcp.cname.as_deref(), Some("u7Gx4aXq1tXbQ2Lr"));
    assert_eq!(params.mid, None);

    // Without RTX: no RTX codec, no RTX SSRC, no plain NACK.
    let no_rtx = get_consumer_rtp_parameters(
        &consumable,
        &remote,
        ConsumerRtpOptions {
            pipe: false,
            enable_rtx: false,
        },
        &mut seq(9000),
    )
    .unwrap();
    assert_eq!(no_rtx.codecs.len(), 1);
    assert_eq!(no_rtx.encodings[0].rtx, None);
    assert!(!no_rtx.codecs[0].rtcp_feedback.contains(&fb("nack", "")));
    assert!(no_rtx.codecs[0].rtcp_feedback.contains(&fb("nack", "pli")));
}

#[test]
fn audio_consumer_reduces_extensions_and_feedback() {
    let (_, _, consumable) = produce(MediaKind::Audio, chrome_opus(), 5000);
    let remote = browser_caps();
    let params = get_consumer_rtp_parameters(
        &consumable,
        &remote,
        ConsumerRtpOptions::for_kind(MediaKind::Audio),
        &mut seq(42),
    )
    .unwrap();
    assert_eq!(params.codecs.len(), 1);
    assert_eq!(params.codecs[0].payload_type, 100);
    assert_eq!(params.codecs[0].channels, Some(2));
    assert_eq!(
        ext_ids(&params),
        [(URI_MID, 1), (URI_ABS_SEND_TIME, 4), (URI_AUDIO_LEVEL, 10)]
    );
    // No transport-wide-cc extension for audio → no transport-cc; NACK off for audio.
    assert!(params.codecs[0].rtcp_feedback.is_empty());
    assert_eq!(params.encodings.len(), 1);
    assert_eq!(params.encodings[0].ssrc, Some(42));
    assert_eq!(params.encodings[0].rtx, None);

    // Opus NACK when enabled and supported by both.
    let params = get_consumer_rtp_parameters(
        &consumable,
        &remote,
        ConsumerRtpOptions {
            pipe: false,
            enable_rtx: true,
        },
        &mut seq(42),
    )
    .unwrap();
    assert_eq!(params.codecs[0].rtcp_feedback, [fb("nack", "")]);
    assert_eq!(params.encodings[0].rtx, None);
}

#[test]
fn h264_consumer() {
    let (_, _, consumable) = produce(MediaKind::Video, chrome_h264("42e01f"), 1);
    let remote = browser_caps();
    assert!(can_consume(&consumable, &remote));
    let params = get_consumer_rtp_parameters(
        &consumable,
        &remote,
        ConsumerRtpOptions::for_kind(MediaKind::Video),
        &mut seq(10),
    )
    .unwrap();
    let summary: Vec<(&str, u8)> = params
        .codecs
        .iter()
        .map(|c| (c.mime_type.as_str(), c.payload_type))
        .collect();
    assert_eq!(summary, [("video/H264", 107), ("video/rtx", 108)]);
    // Main-profile H264 is not something this browser can decode.
    let (_, _, main) = produce(MediaKind::Video, chrome_h264("4d0032"), 1);
    assert!(!can_consume(&main, &remote));
}

#[test]
fn cannot_consume_codec_the_remote_lacks() {
    let vp9: RtpParameters = parse(json!({
        "mid": "4",
        "codecs": [
            { "mimeType": "video/VP9", "payloadType": 98, "clockRate": 90000,
              "parameters": { "profile-id": 0 } },
            { "mimeType": "video/rtx", "payloadType": 99, "clockRate": 90000,
              "parameters": { "apt": 98 } }
        ],
        "encodings": [{ "ssrc": 77, "rtx": { "ssrc": 78 }, "scalabilityMode": "L3T3_KEY" }]
    }));
    let (_, mapping, consumable) = produce(MediaKind::Video, vp9, 1);
    assert_eq!(mapping.codecs, codec_mapping(&[(98, 103), (99, 104)]));
    let remote = browser_caps();
    assert!(!can_consume(&consumable, &remote));
    assert_eq!(
        get_consumer_rtp_parameters(
            &consumable,
            &remote,
            ConsumerRtpOptions::for_kind(MediaKind::Video),
            &mut seq(1)
        ),
        Err(OrtcError::NoCompatibleMediaCodecs)
    );

    // A remote with VP9 profile 2 only cannot take profile 0 either.
    let mut remote_vp9_2 = remote.clone();
    remote_vp9_2.codecs.push(parse(json!({
        "kind": "video", "mimeType": "video/VP9", "preferredPayloadType": 105,
        "clockRate": 90000, "parameters": { "profile-id": 2 }
    })));
    assert!(!can_consume(&consumable, &remote_vp9_2));
    // With profile 0 it can; the RTX codec matches too.
    let mut remote_vp9 = remote.clone();
    remote_vp9.codecs.push(parse(json!({
        "kind": "video", "mimeType": "video/VP9", "preferredPayloadType": 103,
        "clockRate": 90000, "parameters": { "profile-id": 0 },
        "rtcpFeedback": [{ "type": "nack" }, { "type": "nack", "parameter": "pli" }]
    })));
    assert!(can_consume(&consumable, &remote_vp9));
    let params = get_consumer_rtp_parameters(
        &consumable,
        &remote_vp9,
        ConsumerRtpOptions::for_kind(MediaKind::Video),
        &mut seq(1),
    )
    .unwrap();
    assert_eq!(params.codecs.len(), 2);
    assert_eq!(
        params.encodings[0].scalability_mode.as_deref(),
        Some("L3T3_KEY")
    );
    assert_eq!(consumer_type(&consumable), ferrosfu_fbs::ConsumerType::Svc);
}

fn simulcast_vp8() -> RtpParameters {
    let mut params = chrome_vp8();
    params.encodings = ["r0", "r1", "r2"]
        .iter()
        .zip([150_000, 500_000, 1_200_000])
        .map(|(rid, max_bitrate)| RtpEncodingParameters {
            rid: Some((*rid).into()),
            scalability_mode: Some("L1T3".into()),
            max_bitrate: Some(max_bitrate),
            ..Default::default()
        })
        .collect();
    params
}

#[test]
fn simulcast_consumer_gets_one_encoding() {
    let (_, mapping, consumable) = produce(MediaKind::Video, simulcast_vp8(), 100);
    let mapped: Vec<(Option<&str>, u32)> = mapping
        .encodings
        .iter()
        .map(|e| (e.rid.as_deref(), e.mapped_ssrc))
        .collect();
    assert_eq!(
        mapped,
        [(Some("r0"), 100), (Some("r1"), 101), (Some("r2"), 102)]
    );
    assert!(consumable.encodings.iter().all(|e| e.rid.is_none()));

    let params = get_consumer_rtp_parameters(
        &consumable,
        &browser_caps(),
        ConsumerRtpOptions::for_kind(MediaKind::Video),
        &mut seq(500),
    )
    .unwrap();
    assert_eq!(params.encodings.len(), 1);
    assert_eq!(
        params.encodings[0].scalability_mode.as_deref(),
        Some("L3T3")
    );
    assert_eq!(params.encodings[0].max_bitrate, Some(1_200_000));
    assert_eq!(params.encodings[0].rtx, Some(RtxParameters { ssrc: 501 }));
    assert_eq!(
        consumer_type(&consumable),
        ferrosfu_fbs::ConsumerType::Simulcast
    );
    // One encoding: with temporal layers (L1T3) simulcast, without simple.
    let mut single = chrome_vp8();
    assert_eq!(single.encodings.len(), 1);
    let (_, _, consumable) = produce(MediaKind::Video, single.clone(), 100);
    assert_eq!(
        consumer_type(&consumable),
        ferrosfu_fbs::ConsumerType::Simulcast
    );
    single.encodings[0].scalability_mode = None;
    let (_, _, consumable) = produce(MediaKind::Video, single, 100);
    assert_eq!(
        consumer_type(&consumable),
        ferrosfu_fbs::ConsumerType::Simple
    );
}

#[test]
fn pipe_consumer_keeps_all_encodings() {
    let (_, _, consumable) = produce(MediaKind::Video, simulcast_vp8(), 100);
    let params = get_consumer_rtp_parameters(
        &consumable,
        &browser_caps(),
        ConsumerRtpOptions {
            pipe: true,
            enable_rtx: true,
        },
        &mut seq(1000),
    )
    .unwrap();
    let ssrcs: Vec<(Option<u32>, Option<u32>)> = params
        .encodings
        .iter()
        .map(|e| (e.ssrc, e.rtx.map(|r| r.ssrc)))
        .collect();
    assert_eq!(
        ssrcs,
        [
            (Some(1000), Some(1001)),
            (Some(1001), Some(1002)),
            (Some(1002), Some(1003))
        ]
    );
    assert_eq!(params.encodings[2].max_bitrate, Some(1_200_000));
}

#[test]
fn feedback_follows_bandwidth_estimation_extension() {
    let (_, _, consumable) = produce(MediaKind::Video, chrome_vp8(), 1);
    let kinds = |remote: &RtpCapabilities| -> Vec<String> {
        get_consumer_rtp_parameters(
            &consumable,
            remote,
            ConsumerRtpOptions::for_kind(MediaKind::Video),
            &mut seq(1),
        )
        .unwrap()
        .codecs[0]
            .rtcp_feedback
            .iter()
            .map(|f| f.kind.clone())
            .collect()
    };
    let mut remote = browser_caps();
    remote
        .header_extensions
        .retain(|e| e.uri != URI_TRANSPORT_WIDE_CC);
    // abs-send-time only: REMB, no transport-cc.
    assert_eq!(kinds(&remote), ["goog-remb", "ccm", "nack", "nack"]);
    remote
        .header_extensions
        .retain(|e| e.uri != URI_ABS_SEND_TIME);
    // Neither: no bandwidth feedback at all.
    assert_eq!(kinds(&remote), ["ccm", "nack", "nack"]);
}

// ---------------------------------------------------------------------------------------------
// Conversion and helpers

#[test]
fn converts_to_worker_types() {
    let (params, mapping, consumable) = produce(MediaKind::Video, chrome_h264("42e01f"), 3000);
    let remote = browser_caps();
    let consumer = get_consumer_rtp_parameters(
        &consumable,
        &remote,
        ConsumerRtpOptions::for_kind(MediaKind::Video),
        &mut seq(60),
    )
    .unwrap();

    let w = ferrosfu_fbs::RtpParameters::from(&consumer);
    assert_eq!(w.mid, None);
    assert_eq!(w.codecs[0].mime_type, "video/H264");
    assert_eq!(w.codecs[0].payload_type, 107);
    assert_eq!(w.codecs[0].channels, None);
    assert_eq!(
        w.codecs[0].parameters,
        [
            ("level-asymmetry-allowed".to_owned(), "1".to_owned()),
            ("packetization-mode".to_owned(), "1".to_owned()),
            ("profile-level-id".to_owned(), "42e01f".to_owned()),
        ]
    );
    assert_eq!(
        w.codecs[1].parameters,
        [("apt".to_owned(), "107".to_owned())]
    );
    assert_eq!(
        w.codecs[0].rtcp_feedback[0],
        ferrosfu_fbs::RtcpFeedback {
            kind: "transport-cc".into(),
            parameter: String::new()
        }
    );
    assert_eq!(
        w.encodings,
        [ferrosfu_fbs::RtpEncodingParameters {
            ssrc: Some(60),
            rtx_ssrc: Some(61),
            ..Default::default()
        }]
    );
    assert_eq!(w.rtcp.cname, "h264cname");
    assert!(w.rtcp.reduced_size);
    assert_eq!(w.header_extensions[0].uri, URI_MID);
    assert_eq!(w.header_extensions[0].id, 1);

    let p = ferrosfu_fbs::RtpParameters::from(&params);
    assert_eq!(p.mid.as_deref(), Some("2"));
    assert_eq!(p.encodings[0].rtx_ssrc, Some(555_555_555));
    assert_eq!(p.header_extensions[0].id, 4);

    let m = ferrosfu_fbs::RtpMapping::from(&mapping);
    assert_eq!(
        m.codecs,
        [
            ferrosfu_fbs::CodecMapping {
                payload_type: 102,
                mapped_payload_type: 107
            },
            ferrosfu_fbs::CodecMapping {
                payload_type: 103,
                mapped_payload_type: 108
            }
        ]
    );
    assert_eq!(
        m.encodings,
        [ferrosfu_fbs::EncodingMapping {
            ssrc: Some(444_444_444),
            rid: None,
            scalability_mode: None,
            mapped_ssrc: 3000
        }]
    );
    assert_eq!(
        ferrosfu_fbs::MediaKind::from(MediaKind::Audio),
        ferrosfu_fbs::MediaKind::Audio
    );
}

#[test]
fn scalability_modes() {
    assert_eq!(parse_scalability_mode(None), (1, 1));
    assert_eq!(parse_scalability_mode(Some("L1T3")), (1, 3));
    assert_eq!(parse_scalability_mode(Some("S3T3")), (3, 3));
    assert_eq!(parse_scalability_mode(Some("L3T3_KEY")), (3, 3));
    assert_eq!(parse_scalability_mode(Some("L12T2")), (12, 2));
    assert_eq!(parse_scalability_mode(Some("L0T2")), (1, 1));
    assert_eq!(parse_scalability_mode(Some("X1T2")), (1, 1));
    assert_eq!(parse_scalability_mode(Some("L1")), (1, 1));
}

#[test]
fn random_ssrcs_are_in_mediasoup_range() {
    let ssrcs: Vec<u32> = (0..64).map(|_| random_ssrc()).collect();
    assert!(
        ssrcs
            .iter()
            .all(|s| (100_000_000..1_000_000_000).contains(s))
    );
    let distinct: std::collections::HashSet<_> = ssrcs.iter().collect();
    assert!(distinct.len() > 60);
}
