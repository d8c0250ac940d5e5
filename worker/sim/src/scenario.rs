//! Scenario building blocks: one VP8 publisher and N subscribers, and the RTP parameters they
//! use.

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_worker_core::{Pt, RtpHeader, SrtpProfile, Ssrc, build_packet};

use crate::Sim;

pub const VP8_PT: u8 = 96;
pub const VP8_RTX_PT: u8 = 97;
pub const OPUS_PT: u8 = 111;
pub const CONSUMER_VP8_PT: u8 = 101;
pub const CONSUMER_RTX_PT: u8 = 102;
pub const CONSUMER_OPUS_PT: u8 = 100;

pub const PUB_SSRC: u32 = 0x1111;

/// Sends `count` VP8 packets from peer `p` at 100 packets/s; a keyframe first and whenever the
/// publisher received a PLI/FIR since the previous packet. Returns the payloads sent.
pub fn publish(sim: &mut Sim, p: usize, count: u32, first_seq: u16) -> Vec<Vec<u8>> {
    publish_from(sim, p, count, (first_seq, 0, 0))
}

/// [`publish`] from sequence number, timestamp and payload number `first` (an encoder that
/// continues, or restarts elsewhere).
pub fn publish_from(sim: &mut Sim, p: usize, count: u32, first: (u16, u32, u32)) -> Vec<Vec<u8>> {
    let (first_seq, first_ts, first_n) = first;
    let mut sent = Vec::new();
    let mut plis = sim.pli_count(p);
    for n in 0..count {
        let now_plis = sim.pli_count(p);
        let key = n == 0 || now_plis > plis;
        plis = now_plis;
        let pkt = vp8_packet(
            PUB_SSRC,
            first_seq.wrapping_add(n as u16),
            first_ts.wrapping_add(n * 900),
            first_n + n,
            key,
        );
        let h = RtpHeader::parse(&pkt).unwrap();
        sent.push(h.payload(&pkt).to_vec());
        sim.peer_send_rtp(p, pkt);
        sim.run_for(Duration::from_millis(10));
    }
    sent
}

pub fn setup(sim: &mut Sim, subscribers: usize, delay_ms: u32) -> (usize, Vec<usize>) {
    setup_with(sim, subscribers, delay_ms, |_| {})
}

/// [`setup`] with each consumer's options changed by `tweak` (extensions, type…).
pub fn setup_with(
    sim: &mut Sim,
    subscribers: usize,
    delay_ms: u32,
    tweak: impl Fn(&mut ConsumeOptions),
) -> (usize, Vec<usize>) {
    let p = sim.add_peer(SrtpProfile::AeadAes128Gcm);
    sim.request(
        "transport-0",
        RequestBody::TransportProduce(vp8_producer("prod", PUB_SSRC, delay_ms)),
    )
    .unwrap();
    let mut subs = Vec::new();
    for k in 0..subscribers {
        let s = sim.add_peer(SrtpProfile::AesCm128HmacSha1_80);
        let tid = sim.peers[s].transport_id.clone();
        let ssrc = 0x2000 + k as u32;
        let rtx = 0x3000 + k as u32;
        let mut o = vp8_consumer(&format!("cons-{k}"), "prod", ssrc, rtx, false);
        tweak(&mut o);
        let r = sim.request(&tid, RequestBody::TransportConsume(o)).unwrap();
        assert!(
            matches!(r, ResponseBody::Consumed { paused: false, .. }),
            "{r:?}"
        );
        sim.peers[s].rtx_of.insert(rtx, ssrc);
        subs.push(s);
    }
    (p, subs)
}

pub fn delivered(sim: &Sim, sub: usize, sent: &[Vec<u8>]) -> usize {
    let got = sim.unique_payloads(sub);
    sent.iter().filter(|p| got.contains(*p)).count()
}

pub fn fb(kind: &str, parameter: &str) -> RtcpFeedback {
    RtcpFeedback {
        kind: kind.into(),
        parameter: parameter.into(),
    }
}

/// VP8 on payload type `pt` with NACK, PLI and FIR feedback.
pub fn vp8(pt: u8) -> RtpCodecParameters {
    RtpCodecParameters {
        mime_type: "video/VP8".into(),
        payload_type: pt,
        clock_rate: 90000,
        channels: None,
        parameters: vec![],
        rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
    }
}

/// [`vp8`] on `pt` and its RTX on `rtx`.
pub fn vp8_codecs(pt: u8, rtx: u8) -> Vec<RtpCodecParameters> {
    vec![
        vp8(pt),
        RtpCodecParameters {
            mime_type: "video/rtx".into(),
            payload_type: rtx,
            clock_rate: 90000,
            channels: None,
            parameters: vec![("apt".into(), pt.to_string())],
            rtcp_feedback: vec![],
        },
    ]
}

pub fn vp8_producer(id: &str, ssrc: u32, delay_ms: u32) -> ProduceOptions {
    ProduceOptions {
        producer_id: ProducerId::new(id),
        kind: MediaKind::Video,
        rtp_parameters: RtpParameters {
            mid: Some("0".into()),
            codecs: vec![vp8(VP8_PT)],
            header_extensions: vec![RtpHeaderExtensionParameters {
                uri: "urn:ietf:params:rtp-hdrext:sdes:mid".into(),
                id: 1,
                encrypt: false,
            }],
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            }],
            rtcp: RtcpParameters {
                cname: "pub".into(),
                reduced_size: true,
            },
        },
        rtp_mapping: RtpMapping {
            codecs: vec![CodecMapping {
                payload_type: VP8_PT,
                mapped_payload_type: 101,
            }],
            encodings: vec![EncodingMapping {
                ssrc: Some(ssrc),
                rid: None,
                scalability_mode: None,
                mapped_ssrc: 0x5000_0000 | ssrc,
            }],
        },
        key_frame_request_delay: delay_ms,
        paused: false,
    }
}

pub fn vp8_consumer(
    id: &str,
    producer: &str,
    ssrc: u32,
    rtx_ssrc: u32,
    paused: bool,
) -> ConsumeOptions {
    ConsumeOptions {
        consumer_id: ConsumerId::new(id),
        producer_id: ProducerId::new(producer),
        kind: MediaKind::Video,
        rtp_parameters: RtpParameters {
            mid: Some("0".into()),
            codecs: vp8_codecs(CONSUMER_VP8_PT, CONSUMER_RTX_PT),
            header_extensions: vec![],
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(ssrc),
                rtx_ssrc: Some(rtx_ssrc),
                ..Default::default()
            }],
            rtcp: RtcpParameters {
                cname: "sub".into(),
                reduced_size: true,
            },
        },
        consumable_rtp_encodings: vec![],
        paused,
        ignore_dtx: false,
        consumer_type: ConsumerType::Simple,
        preferred_layers: None,
    }
}

/// A VP8 packet whose payload carries `n` and filler: descriptor S=1, and a keyframe header when
/// `key`.
pub fn vp8_packet(ssrc: u32, seq: u16, ts: u32, n: u32, key: bool) -> Vec<u8> {
    let mut payload = vec![0x10, if key { 0x00 } else { 0x01 }];
    payload.extend_from_slice(&n.to_be_bytes());
    payload.extend((0..1000u32).map(|i| (i.wrapping_mul(31) ^ n) as u8));
    build_packet(Pt(VP8_PT), seq, ts, Ssrc(ssrc), true, &payload)
}
