#![allow(clippy::unwrap_used)]

use super::answer::{self, Local, Media};
use super::negotiate::{producer_parameters, receive_capabilities};
use super::sdp::{Dir, SdpError, Setup, parse_offer};
use crate::ortc::{self, MediaKind, RtxParameters};

const CHROME_WHIP: &str = include_str!("testdata/chrome-whip.sdp");
const CHROME_WHEP: &str = include_str!("testdata/chrome-whep.sdp");
const SIMULCAST_WHIP: &str = include_str!("testdata/simulcast-whip.sdp");

fn router() -> ortc::RtpCapabilities {
    ortc::router_rtp_capabilities(&ortc::default_media_codecs()).unwrap()
}

fn local() -> Local {
    Local {
        ice_ufrag: "srvufrag".into(),
        ice_pwd: "srvpassword0123456789".into(),
        candidates: vec![ferrosfu_fbs::IceCandidate {
            foundation: "udpcandidate".into(),
            priority: 1_076_302_079,
            address: "127.0.0.1".into(),
            protocol: ferrosfu_fbs::TransportProtocol::Udp,
            port: 40000,
            kind: "host".into(),
            tcp_type: None,
        }],
        fingerprints: vec![("sha-256".into(), "AA:BB".into())],
    }
}

#[test]
fn a_chrome_whip_offer_is_read() {
    let o = parse_offer(CHROME_WHIP).unwrap();
    assert_eq!(o.ice_ufrag, "EsAw");
    assert_eq!(o.ice_pwd, "bP+XJMM09aR8AiX1jdukzR6Y");
    assert_eq!(o.setup, Setup::Actpass);
    assert_eq!(o.fingerprints[0].0, "sha-256");
    assert_eq!(o.sections.len(), 2);
    let (a, v) = (&o.sections[0], &o.sections[1]);
    assert_eq!(
        (a.kind(), a.dir, a.mid.as_deref()),
        (Some(MediaKind::Audio), Dir::SendOnly, Some("0"))
    );
    assert_eq!(
        (v.kind(), v.dir, v.mid.as_deref()),
        (Some(MediaKind::Video), Dir::SendOnly, Some("1"))
    );
    assert_eq!(a.codecs[0].mime_type, "audio/opus");
    assert_eq!(a.codecs[0].channels, Some(2));
    assert_eq!(
        a.codecs[0]
            .parameters
            .get("useinbandfec")
            .and_then(|p| p.as_u64()),
        Some(1)
    );
    assert_eq!(v.fid, vec![(1111, 2222)]);
    assert_eq!(v.cname.as_deref(), Some("Yq/sZ+5PMwVd1cG4"));
    let h264 = v.codecs.iter().find(|c| c.payload_type == 102).unwrap();
    assert_eq!(
        h264.parameters
            .get("profile-level-id")
            .and_then(|p| p.as_str()),
        Some("42001f")
    );
}

#[test]
fn whip_sections_become_producers_with_the_first_codec_the_router_routes() {
    let o = parse_offer(CHROME_WHIP).unwrap();
    let caps = router();
    let (kind, audio) = producer_parameters(0, &o.sections[0], &caps).unwrap();
    assert_eq!(kind, MediaKind::Audio);
    assert_eq!(audio.codecs.len(), 1);
    assert_eq!(
        (audio.codecs[0].payload_type, audio.mid.as_deref()),
        (111, Some("0"))
    );
    assert_eq!(audio.encodings[0].ssrc, Some(3_485_940_486));
    assert!(audio.rtcp.reduced_size);
    let uris: Vec<&str> = audio
        .header_extensions
        .iter()
        .map(|h| h.uri.as_str())
        .collect();
    assert!(uris.contains(&ortc::URI_MID) && uris.contains(&ortc::URI_AUDIO_LEVEL));
    let (kind, video) = producer_parameters(1, &o.sections[1], &caps).unwrap();
    assert_eq!(kind, MediaKind::Video);
    let pts: Vec<u8> = video.codecs.iter().map(|c| c.payload_type).collect();
    assert_eq!(pts, vec![96, 97], "VP8 (first offered) and its RTX");
    assert_eq!(video.encodings[0].ssrc, Some(1111));
    assert_eq!(video.encodings[0].rtx, Some(RtxParameters { ssrc: 2222 }));
    assert!(
        video.codecs[0]
            .rtcp_feedback
            .iter()
            .any(|f| f.kind == "nack" && f.parameter == "pli")
    );
}

#[test]
fn h264_is_taken_when_offered_first() {
    let text = CHROME_WHIP
        .replace("profile-level-id=42001f", "profile-level-id=42e01f")
        .replace(
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 45 116 117",
            "m=video 9 UDP/TLS/RTP/SAVPF 102 103 96 97 45 116 117",
        );
    let o = parse_offer(&text).unwrap();
    let (_, video) = producer_parameters(1, &o.sections[1], &router()).unwrap();
    let pts: Vec<u8> = video.codecs.iter().map(|c| c.payload_type).collect();
    assert_eq!(pts, vec![102, 103]);
    assert_eq!(video.codecs[0].mime_type, "video/H264");
}

#[test]
fn simulcast_rids_become_encodings_in_simulcast_order() {
    let o = parse_offer(SIMULCAST_WHIP).unwrap();
    assert_eq!(o.sections[0].send_rids, vec!["q", "h", "f"]);
    let (_, p) = producer_parameters(0, &o.sections[0], &router()).unwrap();
    let rids: Vec<&str> = p
        .encodings
        .iter()
        .filter_map(|e| e.rid.as_deref())
        .collect();
    assert_eq!(rids, vec!["q", "h", "f"]);
    let a = answer::answer(&o, &local(), &[Media::Recv(p)]);
    assert!(
        a.contains("a=rid:q recv\r\n") && a.contains("a=simulcast:recv q;h;f\r\n"),
        "{a}"
    );
}

#[test]
fn the_whip_answer_is_ice_lite_recvonly_with_the_chosen_codecs_and_reads_back() {
    let o = parse_offer(CHROME_WHIP).unwrap();
    let caps = router();
    let media: Vec<Media> = o
        .sections
        .iter()
        .enumerate()
        .map(|(i, s)| Media::Recv(producer_parameters(i, s, &caps).unwrap().1))
        .collect();
    let a = answer::answer(&o, &local(), &media);
    for line in [
        "a=ice-lite",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n",
        "a=setup:passive",
        "a=recvonly",
        "a=ice-ufrag:srvufrag",
        "a=fingerprint:sha-256 AA:BB",
        "a=candidate:udpcandidate 1 udp 1076302079 127.0.0.1 40000 typ host",
        "a=fmtp:97 apt=96",
        "a=rtcp-fb:96 nack pli",
    ] {
        assert!(a.contains(line), "missing {line:?} in\n{a}");
    }
    let back = parse_offer(&a).unwrap();
    assert_eq!(back.sections.len(), 2);
    assert_eq!(back.sections[1].codecs.len(), 2);
    assert_eq!(back.sections[0].dir, Dir::RecvOnly);
}

#[test]
fn a_whep_offer_gives_the_players_capabilities_with_its_payload_types() {
    let o = parse_offer(CHROME_WHEP).unwrap();
    let (caps, tr) = receive_capabilities(&o, &router()).unwrap();
    let mimes: Vec<&str> = caps.codecs.iter().map(|c| c.mime_type.as_str()).collect();
    assert_eq!(
        mimes,
        vec!["audio/opus", "video/VP8", "video/rtx"],
        "router-numbered, offer order"
    );
    // A consumer of a VP8 producer, computed as for any peer, then in the player's numbering.
    let o2 = parse_offer(CHROME_WHIP).unwrap();
    let (_, mut producer) = producer_parameters(1, &o2.sections[1], &router()).unwrap();
    let mapping =
        ortc::get_producer_rtp_parameters_mapping(&mut producer, &router(), &mut || 7).unwrap();
    let consumable =
        ortc::get_consumable_rtp_parameters(MediaKind::Video, &producer, &router(), &mapping)
            .unwrap();
    let mut ssrc = 1000u32;
    let mut next = || {
        ssrc += 1;
        ssrc
    };
    let mut c = ortc::get_consumer_rtp_parameters(
        &consumable,
        &caps,
        ortc::ConsumerRtpOptions::for_kind(MediaKind::Video),
        &mut next,
    )
    .unwrap();
    c.mid = Some("1".into());
    tr.apply(MediaKind::Video, &mut c);
    assert_eq!(c.codecs[1].apt(), Some(96));
    let ids: Vec<(u8, &str)> = c
        .header_extensions
        .iter()
        .map(|h| (h.id, h.uri.as_str()))
        .collect();
    assert!(ids.contains(&(4, ortc::URI_MID)), "{ids:?}");
    assert!(ids.contains(&(3, ortc::URI_TRANSPORT_WIDE_CC)), "{ids:?}");
    let pts: Vec<u8> = c.codecs.iter().map(|x| x.payload_type).collect();
    assert_eq!(pts, vec![96, 97]);
    let media = vec![
        Media::Inactive,
        Media::Send {
            params: c,
            stream: "alice".into(),
            track: "consumer1".into(),
        },
    ];
    let a = answer::answer(&o, &local(), &media);
    for line in [
        "a=sendonly",
        "a=inactive",
        "a=msid:alice consumer1",
        "a=ssrc-group:FID 1001 1002",
        "a=ssrc:1001 msid:alice consumer1",
        "a=group:BUNDLE 0 1",
    ] {
        assert!(a.contains(line), "missing {line:?} in\n{a}");
    }
    assert!(parse_offer(&a).is_ok());
}

#[test]
fn bad_offers_are_typed_errors() {
    assert!(matches!(parse_offer("hello"), Err(SdpError::Malformed(_))));
    assert!(matches!(
        parse_offer("v=0\r\nx"),
        Err(SdpError::Malformed(_))
    ));
    let big = format!("v=0\r\n{}", "a".repeat(70_000));
    assert_eq!(parse_offer(&big), Err(SdpError::TooLarge));
    let no_ufrag = CHROME_WHIP.replace("a=ice-ufrag:EsAw\r\n", "");
    assert!(matches!(parse_offer(&no_ufrag), Err(SdpError::Missing(_))));
    let no_fp = CHROME_WHIP.replace("a=fingerprint:", "a=x-fingerprint:");
    assert!(matches!(parse_offer(&no_fp), Err(SdpError::Missing(_))));
    let bad_setup = CHROME_WHIP.replace("a=setup:actpass", "a=setup:sideways");
    assert!(matches!(
        parse_offer(&bad_setup),
        Err(SdpError::Malformed(_))
    ));
    let bad_rtpmap = CHROME_WHIP.replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus");
    assert!(matches!(
        parse_offer(&bad_rtpmap),
        Err(SdpError::Section { index: 0, .. })
    ));
    // Only codecs ferrosfu does not route.
    let o = parse_offer(
        &CHROME_WHIP
            .replace("VP8/90000", "XYZ/90000")
            .replace("H264/90000", "XYZ/90000")
            .replace("AV1/90000", "XYZ/90000"),
    )
    .unwrap();
    let e = producer_parameters(1, &o.sections[1], &router()).unwrap_err();
    assert!(e.to_string().contains("no codec ferrosfu routes"), "{e}");
    // No SSRC and no RID: the stream cannot be identified.
    let no_ssrc: String = CHROME_WHIP
        .split("\r\n")
        .filter(|l| !l.starts_with("a=ssrc"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let o = parse_offer(no_ssrc.trim_end_matches("\r\n\r\n")).unwrap();
    assert!(producer_parameters(0, &o.sections[0], &router()).is_err());
    let many = format!(
        "{}{}",
        CHROME_WHIP,
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:x\r\n".repeat(20)
    );
    assert_eq!(parse_offer(&many), Err(SdpError::TooManySections));
}

#[test]
fn the_fuzz_entry_point_accepts_real_offers() {
    assert!(super::offer_round_trip(CHROME_WHIP, &router()).is_ok());
    assert!(super::offer_round_trip(SIMULCAST_WHIP, &router()).is_ok());
    assert!(super::offer_round_trip(CHROME_WHEP, &router()).is_ok());
}
