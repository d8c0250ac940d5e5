//! A VP9 SVC publisher as libwebrtc sends one: one SSRC carrying three spatial layers of three
//! temporal layers (L3T3, or L3T3_KEY: K-SVC), one picture every 30 ms made of a frame per
//! spatial layer (1, 2 and 3 packets for layers 0, 1, 2; the picture's last packet carries the
//! RTP marker bit), non-flexible descriptors with a 15-bit PictureID, TL0PICIDX, TID 0, 2, 1, 2
//! …, switching-up points on every TID > 0 frame, and a key picture on a PLI/FIR. Plus what a
//! subscriber's received packets say ([`SvcReceived`]).

use ferrosfu_fbs::*;
use ferrosfu_worker_core::{Pt, Rtcp, SrtpProfile, Ssrc, Vp9Descriptor, build_packet};

use crate::Sim;
use crate::scenario::{CONSUMER_RTX_PT, CONSUMER_VP8_PT, fb, vp8_consumer};
use crate::simulcast::{FRAME, FRAME_TICKS, received_as};

pub const SVC_PT: u8 = 98;
pub const SVC_SSRC: u32 = 0x9100;
pub const SPATIAL: usize = 3;
const FILLER: usize = 200;

/// One packet the publisher sent.
#[derive(Clone, Debug)]
pub struct SvcSent {
    pub sid: u8,
    pub tid: u8,
    pub picture: u32,
    pub key: bool,
    pub data: Vec<u8>,
}

#[derive(Debug)]
pub struct SvcPublisher {
    pub peer: usize,
    pub ksvc: bool,
    seq: u16,
    picture_id: u16,
    tl0: u8,
    plis: usize,
    pub picture: u32,
    pub sent: Vec<SvcSent>,
    /// Filler bytes in each packet of spatial layer 0, 1, 2 (the bit rate of each layer:
    /// layer `s` sends `s + 1` packets a picture).
    pub filler: [usize; SPATIAL],
}

fn vp9(pt: u8) -> RtpCodecParameters {
    RtpCodecParameters {
        mime_type: "video/VP9".into(),
        payload_type: pt,
        clock_rate: 90000,
        channels: None,
        parameters: vec![("profile-id".into(), "0".into())],
        rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
    }
}

fn rtx(pt: u8, apt: u8) -> RtpCodecParameters {
    RtpCodecParameters {
        mime_type: "video/rtx".into(),
        payload_type: pt,
        clock_rate: 90000,
        channels: None,
        parameters: vec![("apt".into(), apt.to_string())],
        rtcp_feedback: vec![],
    }
}

impl SvcPublisher {
    pub fn new(sim: &mut Sim, id: &str, ksvc: bool) -> SvcPublisher {
        let peer = sim.add_peer(SrtpProfile::AeadAes128Gcm);
        let tid = sim.peers[peer].transport_id.clone();
        let mode = if ksvc { "L3T3_KEY" } else { "L3T3" };
        let encoding = RtpEncodingParameters {
            ssrc: Some(SVC_SSRC),
            scalability_mode: Some(mode.into()),
            ..Default::default()
        };
        let o = ProduceOptions {
            producer_id: ProducerId::new(id),
            kind: MediaKind::Video,
            rtp_parameters: RtpParameters {
                mid: Some("0".into()),
                codecs: vec![vp9(SVC_PT), rtx(99, SVC_PT)],
                header_extensions: vec![],
                encodings: vec![encoding.clone()],
                rtcp: RtcpParameters {
                    cname: "pub".into(),
                    reduced_size: true,
                },
            },
            rtp_mapping: RtpMapping {
                codecs: vec![CodecMapping {
                    payload_type: SVC_PT,
                    mapped_payload_type: 103,
                }],
                encodings: vec![EncodingMapping {
                    ssrc: Some(SVC_SSRC),
                    rid: None,
                    scalability_mode: encoding.scalability_mode,
                    mapped_ssrc: 0x6100_0000,
                }],
            },
            key_frame_request_delay: 0,
            paused: false,
        };
        sim.request(&tid, RequestBody::TransportProduce(o)).unwrap();
        SvcPublisher {
            peer,
            ksvc,
            seq: 30_000,
            picture_id: 0x7ff0,
            tl0: 200,
            plis: 0,
            picture: 0,
            sent: Vec::new(),
            filler: [FILLER; SPATIAL],
        }
    }

    /// Sends the next picture, then lets `FRAME` pass.
    pub fn send_picture(&mut self, sim: &mut Sim) {
        let plis = sim.peers[self.peer]
            .rx_rtcp
            .iter()
            .filter(|r| matches!(r, Rtcp::Pli { .. } | Rtcp::Fir { .. }))
            .count();
        let n = self.picture;
        let key = n == 0 || plis > self.plis;
        self.plis = plis;
        let tid = if key {
            0
        } else {
            [0u8, 2, 1, 2][n as usize % 4]
        };
        if tid == 0 {
            self.tl0 = self.tl0.wrapping_add(1);
        }
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        let ts = 77_000u32.wrapping_add(n.wrapping_mul(FRAME_TICKS));
        for sid in 0..SPATIAL as u8 {
            let packets = usize::from(sid) + 1;
            for k in 0..packets {
                let (b, e) = (k == 0, k + 1 == packets);
                // Inter-picture predicted except a key picture; in full SVC upper layers
                // depend on the layer below (D), in K-SVC only in key pictures.
                let p = !key;
                let d = sid > 0 && (key || !self.ksvc);
                let b0 = 0xA0
                    | if p { 0x40 } else { 0 }
                    | if b { 0x08 } else { 0 }
                    | if e { 0x04 } else { 0 };
                let u = tid > 0;
                let mut payload = vec![
                    b0,
                    0x80 | (self.picture_id >> 8) as u8,
                    self.picture_id as u8,
                    (tid << 5) | if u { 0x10 } else { 0 } | (sid << 1) | u8::from(d),
                    self.tl0,
                ];
                let data_at = payload.len();
                payload.push(sid);
                payload.extend_from_slice(&n.to_be_bytes());
                payload.push(k as u8);
                payload.extend(
                    (0..self.filler[usize::from(sid)] as u32)
                        .map(|i| (i.wrapping_mul(13) ^ n) as u8),
                );
                let marker = sid as usize == SPATIAL - 1 && e;
                let pkt = build_packet(Pt(SVC_PT), self.seq, ts, Ssrc(SVC_SSRC), marker, &payload);
                self.seq = self.seq.wrapping_add(1);
                self.sent.push(SvcSent {
                    sid,
                    tid,
                    picture: n,
                    key: key && sid == 0 && k == 0,
                    data: payload[data_at..].to_vec(),
                });
                sim.peer_send_rtp(self.peer, pkt);
            }
        }
        self.picture += 1;
        sim.run_for(FRAME);
    }

    pub fn run(&mut self, sim: &mut Sim, pictures: u32) {
        for _ in 0..pictures {
            self.send_picture(sim);
        }
    }
}

/// An SVC consumer `id` of `producer` on a new subscriber peer, preferring `preferred`.
pub fn svc_subscriber(
    sim: &mut Sim,
    id: &str,
    producer: &str,
    preferred: Option<ConsumerLayers>,
) -> usize {
    svc_subscriber_with(sim, id, producer, preferred, |_| {})
}

/// [`svc_subscriber`] with its consume options changed by `edit` first.
pub fn svc_subscriber_with(
    sim: &mut Sim,
    id: &str,
    producer: &str,
    preferred: Option<ConsumerLayers>,
    edit: impl FnOnce(&mut ConsumeOptions),
) -> usize {
    let s = sim.add_peer(SrtpProfile::AesCm128HmacSha1_80);
    let tid = sim.peers[s].transport_id.clone();
    let (ssrc, rtx_ssrc) = (0x7000 + s as u32, 0x7800 + s as u32);
    let mut o = vp8_consumer(id, producer, ssrc, rtx_ssrc, false);
    o.rtp_parameters.codecs = vec![vp9(CONSUMER_VP8_PT), rtx(CONSUMER_RTX_PT, CONSUMER_VP8_PT)];
    o.rtp_parameters.encodings[0].scalability_mode = Some("L3T3".into());
    o.consumer_type = ConsumerType::Svc;
    o.preferred_layers = preferred;
    edit(&mut o);
    sim.request(&tid, RequestBody::TransportConsume(o)).unwrap();
    sim.peers[s].rtx_of.insert(rtx_ssrc, ssrc);
    s
}

/// What one packet an SVC subscriber received says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvcReceived {
    pub seq: u16,
    pub marker: bool,
    pub sid: u8,
    pub tid: u8,
    pub end_of_frame: bool,
    pub picture: u32,
    pub data: Vec<u8>,
}

/// The spatial layer of a VP9 payload (for [`crate::bwe::windows_with`]).
pub fn svc_layer(payload: &[u8]) -> Option<usize> {
    Vp9Descriptor::parse(payload).map(|d| usize::from(d.spatial_layer()))
}

pub fn svc_received(sim: &Sim, peer: usize) -> Vec<SvcReceived> {
    received_as(sim, peer, |h, payload| {
        let d = Vp9Descriptor::parse(payload).unwrap();
        let data = payload[d.len..].to_vec();
        SvcReceived {
            seq: h.seq,
            marker: h.marker,
            sid: d.spatial_layer(),
            tid: d.temporal_layer(),
            end_of_frame: d.end_of_frame,
            picture: u32::from_be_bytes([data[1], data[2], data[3], data[4]]),
            data,
        }
    })
}
