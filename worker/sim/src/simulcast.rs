//! A simulcast publisher as a browser sends one: three VP8 encodings (by SSRC or by RID), each
//! with three temporal layers (L1T3: TID 0, 2, 1, 2 …, every frame a layer-sync frame), its own
//! sequence numbers, PictureIDs and random timestamp base, one frame every 30 ms captured at
//! the same instant for all three, sender reports once a second, and a keyframe on an encoding
//! whenever it received a PLI/FIR for it. Plus what a subscriber's received packets say
//! ([`Received`]): which encoding and frame each carries, to check the consumer's output.
//!
//! By default its frames are small and fixed (encoding `l` sends `l + 1` packets of 313 payload bytes
//! a frame), which is what the functional tests want. For bandwidth-estimation scenarios,
//! [`SimulcastPublisher::with_bitrates`] gives each encoding a VP8 bit rate (by default
//! [`DEFAULT_BITRATES`]): frames of `bitrate · 30 ms` bytes (keyframes [`KEY_FACTOR`] times
//! larger) with seeded jitter, cut into packets of at most [`MAX_PAYLOAD`] bytes, sent in
//! simulated time by [`SimulcastPublisher::run_for`].

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use ferrosfu_fbs::*;
use ferrosfu_worker_core::{Pt, Rtcp, RtpHeader, SrtpProfile, Ssrc, Vp8Descriptor, build_packet};

use crate::Sim;
use crate::scenario::{
    CONSUMER_RTX_PT, CONSUMER_VP8_PT, VP8_PT, vp8_codecs, vp8_consumer, vp8_producer,
};

/// Encodings of the simulcast publisher, lowest first.
pub const LAYERS: usize = 3;
/// Frame interval: 30 ms (2700 ticks of 90 kHz).
pub const FRAME: Duration = Duration::from_millis(30);
pub const FRAME_TICKS: u32 = 2700;
/// Bytes of VP8 data after the payload header in each packet (its identity, then filler).
const FILLER: usize = 300;
/// Bytes of the VP8 payload descriptor the publisher writes (X, I with a 15-bit PictureID, L,
/// T/K) and of the identity that starts each packet's data (VP8 header byte, encoding, frame
/// number, packet index).
const DESCRIPTOR: usize = 6;
const IDENTITY: usize = 7;

/// Bit rates of the three encodings for bandwidth-estimation scenarios (VP8 payload, lowest
/// first): what a browser sends for 320×180, 640×360 and 1280×720 at 30 fps.
pub const DEFAULT_BITRATES: [u64; LAYERS] = [150_000, 500_000, 1_500_000];
/// RTP payload bytes of one packet at most (what libwebrtc's packetiser aims at, below an MTU
/// with SRTP and extensions).
pub const MAX_PAYLOAD: usize = 1200;
/// A keyframe is this many times larger than a delta frame of the same encoding.
pub const KEY_FACTOR: u64 = 4;
/// Frame sizes vary uniformly within ± this fraction of their mean (seeded).
pub const FRAME_JITTER: f64 = 0.2;

/// The RID extension id and the MID extension id the publisher uses.
const MID_EXT: u8 = 1;
const RID_EXT: u8 = 2;

/// One packet the publisher sent.
#[derive(Clone, Debug)]
pub struct SentPacket {
    pub layer: usize,
    pub frame: u32,
    pub tid: u8,
    pub key: bool,
    /// The VP8 data after the payload descriptor (what a consumer forwards unchanged).
    pub data: Vec<u8>,
}

#[derive(Debug)]
pub struct SimulcastPublisher {
    pub peer: usize,
    /// Encodings it publishes (the first `layers` of [`LAYERS`]).
    pub layers: usize,
    /// Keep every packet sent in [`SimulcastPublisher::sent`] (tests; a bench does not).
    pub record: bool,
    pub ssrcs: [u32; LAYERS],
    /// Which encodings send (a publisher that drops one for lack of bandwidth stops it).
    pub active: [bool; LAYERS],
    by_rid: bool,
    seq: [u16; LAYERS],
    ts_base: [u32; LAYERS],
    picture_id: [u16; LAYERS],
    tl0: [u8; LAYERS],
    plis: [usize; LAYERS],
    pub frame: u32,
    pub sent: Vec<SentPacket>,
    last_sr: Option<Instant>,
    /// VP8 payload bit rate of each encoding (`None`: the small fixed frames of the
    /// functional tests). Changeable between frames.
    pub bitrates: Option<[u64; LAYERS]>,
    /// Seeded frame-size jitter (with `bitrates`).
    rng: StdRng,
    /// When [`SimulcastPublisher::tick`] sends the next frame.
    next_frame_at: Option<Instant>,
    /// RTP payload bytes, packets and keyframes sent per encoding.
    pub bytes_sent: [u64; LAYERS],
    pub packets_sent: [u64; LAYERS],
    pub keyframes_sent: [u64; LAYERS],
}

impl SimulcastPublisher {
    /// A new peer publishing producer `id` (encodings by RID when `by_rid`, else by SSRC).
    pub fn new(sim: &mut Sim, id: &str, by_rid: bool) -> SimulcastPublisher {
        Self::with_layers(sim, id, by_rid, LAYERS)
    }

    /// [`SimulcastPublisher::new`] with `layers` encodings (1: a VP8 publisher with temporal
    /// layers only).
    pub fn with_layers(sim: &mut Sim, id: &str, by_rid: bool, layers: usize) -> Self {
        let peer = sim.add_peer(SrtpProfile::AeadAes128Gcm);
        let ssrcs = [0x5100, 0x5200, 0x5300];
        let tid = sim.peers[peer].transport_id.clone();
        let layers = layers.clamp(1, LAYERS);
        sim.request(
            &tid,
            RequestBody::TransportProduce(producer(id, &ssrcs[..layers], by_rid)),
        )
        .unwrap();
        let mut active = [false; LAYERS];
        active[..layers].fill(true);
        SimulcastPublisher {
            peer,
            layers,
            record: true,
            ssrcs,
            active,
            by_rid,
            seq: [1000, 20_000, 65_000],
            ts_base: [7_000, 1_500_000_000, 4_000_000_000],
            picture_id: [100, 30_000, 32_700],
            tl0: [5, 100, 250],
            plis: [0; LAYERS],
            frame: 0,
            sent: Vec::new(),
            last_sr: None,
            bitrates: None,
            rng: StdRng::seed_from_u64(0),
            next_frame_at: None,
            bytes_sent: [0; LAYERS],
            packets_sent: [0; LAYERS],
            keyframes_sent: [0; LAYERS],
        }
    }

    /// A publisher of three encodings at `bitrates` (VP8 payload bit/s, lowest first; see
    /// [`DEFAULT_BITRATES`]), frame sizes jittered from `seed`. It does not keep what it sends
    /// ([`SimulcastPublisher::record`] false: a long run sends tens of thousands of packets);
    /// set `record` to compare payloads.
    pub fn with_bitrates(
        sim: &mut Sim,
        id: &str,
        by_rid: bool,
        bitrates: [u64; LAYERS],
        seed: u64,
    ) -> Self {
        let mut p = Self::new(sim, id, by_rid);
        p.bitrates = Some(bitrates);
        p.rng = StdRng::seed_from_u64(seed);
        p.record = false;
        p
    }

    /// Data bytes (after the descriptor) of each packet of the next frame of `layer`.
    fn packet_sizes(&mut self, layer: usize, key: bool) -> Vec<usize> {
        let Some(rates) = self.bitrates else {
            return vec![IDENTITY + FILLER; layer + 1];
        };
        let mean = rates[layer] * FRAME.as_millis() as u64 / 8000;
        let mean = if key { mean * KEY_FACTOR } else { mean };
        let jitter = 1.0 + self.rng.random_range(-FRAME_JITTER..=FRAME_JITTER);
        let bytes = ((mean as f64 * jitter) as usize).max(DESCRIPTOR + IDENTITY);
        let packets = bytes.div_ceil(MAX_PAYLOAD);
        (0..packets)
            .map(|k| {
                // Spread evenly: the first `bytes % packets` packets carry one byte more.
                let payload = bytes / packets + usize::from(k < bytes % packets);
                payload.max(DESCRIPTOR + IDENTITY) - DESCRIPTOR
            })
            .collect()
    }

    fn plis_for(rtcp: &[Rtcp], ssrc: u32) -> usize {
        rtcp.iter()
            .filter(|r| match r {
                Rtcp::Pli { media_ssrc } => *media_ssrc == ssrc,
                Rtcp::Fir { media_ssrcs } => media_ssrcs.contains(&ssrc),
                _ => false,
            })
            .count()
    }

    /// Sends the next frame on every active encoding, then lets `FRAME` pass.
    pub fn send_frame(&mut self, sim: &mut Sim) {
        self.send_now(sim);
        self.next_frame_at = Some(sim.now + FRAME);
        sim.run_for(FRAME);
    }

    /// Sends the next frame (and sender reports once a second) now.
    fn send_now(&mut self, sim: &mut Sim) {
        if self
            .last_sr
            .is_none_or(|t| sim.now.duration_since(t) >= Duration::from_secs(1))
        {
            self.send_reports(sim);
        }
        for pkt in self.next_frame(&sim.peers[self.peer].rx_rtcp) {
            sim.peer_send_rtp(self.peer, pkt);
        }
    }

    /// Sends a frame if one is due at `sim.now` (the first at once, then one every [`FRAME`]);
    /// returns when the next is due. Drive the simulation to that instant, or use
    /// [`SimulcastPublisher::run_for`].
    ///
    /// A publisher not ticked for a while (the simulation ran without it) skips the frames it
    /// missed, as a paused capture would, and keeps its RTP clock in line with time: the
    /// skipped frame numbers advance the timestamps.
    pub fn tick(&mut self, sim: &mut Sim) -> Instant {
        let mut due = *self.next_frame_at.get_or_insert(sim.now);
        if sim.now >= due {
            let missed = ((sim.now - due).as_nanos() / FRAME.as_nanos()) as u32;
            self.frame += missed;
            due += FRAME * missed;
            self.send_now(sim);
            self.next_frame_at = Some(due + FRAME);
        }
        self.next_frame_at.expect("set above")
    }

    /// Publishes for `d` of simulated time: a frame every [`FRAME`], the network and the core
    /// running in between. The frame cadence continues across calls.
    pub fn run_for(&mut self, sim: &mut Sim, d: Duration) {
        let until = sim.now + d;
        while sim.now < until {
            let next = self.tick(sim).clamp(sim.now, until);
            sim.run_for(next - sim.now);
        }
    }

    /// The plaintext packets of the next frame on every active encoding (a keyframe on an
    /// encoding that a PLI/FIR in `rtcp`, what the publisher received, asked one for since its
    /// last frame).
    pub fn next_frame(&mut self, rtcp: &[Rtcp]) -> Vec<Vec<u8>> {
        let n = self.frame;
        let tid = [0u8, 2, 1, 2][n as usize % 4];
        let mut out = Vec::new();
        for layer in 0..LAYERS {
            if !self.active[layer] {
                continue;
            }
            let plis = Self::plis_for(rtcp, self.ssrcs[layer]);
            let key = n == 0 || plis > self.plis[layer];
            self.plis[layer] = plis;
            if tid == 0 || key {
                self.tl0[layer] = self.tl0[layer].wrapping_add(1);
            }
            let tid = if key { 0 } else { tid };
            self.picture_id[layer] = (self.picture_id[layer] + 1) & 0x7fff;
            let sizes = self.packet_sizes(layer, key);
            let packets = sizes.len();
            if key {
                self.keyframes_sent[layer] += 1;
            }
            for (k, size) in sizes.into_iter().enumerate() {
                let mut payload = vec![
                    0x80 | if k == 0 { 0x10 } else { 0 },
                    0xe0,
                    0x80 | (self.picture_id[layer] >> 8) as u8,
                    self.picture_id[layer] as u8,
                    self.tl0[layer],
                    (tid << 6) | 0x20,
                ];
                let data_at = payload.len();
                payload.push(if k == 0 && key { 0x00 } else { 0x01 });
                payload.push(layer as u8);
                payload.extend_from_slice(&n.to_be_bytes());
                payload.push(k as u8);
                let filler = size.saturating_sub(IDENTITY) as u32;
                payload.extend((0..filler).map(|i| (i.wrapping_mul(7) ^ n) as u8));
                self.bytes_sent[layer] += payload.len() as u64;
                self.packets_sent[layer] += 1;
                let seq = self.seq[layer];
                self.seq[layer] = seq.wrapping_add(1);
                let ts = self.ts_base[layer].wrapping_add(n.wrapping_mul(FRAME_TICKS));
                let mut pkt = build_packet(
                    Pt(VP8_PT),
                    seq,
                    ts,
                    Ssrc(self.ssrcs[layer]),
                    k + 1 == packets,
                    &payload,
                );
                if self.by_rid {
                    pkt = with_mid_rid(&pkt, layer);
                }
                if self.record {
                    self.sent.push(SentPacket {
                        layer,
                        frame: n,
                        tid,
                        key: key && k == 0,
                        data: payload[data_at..].to_vec(),
                    });
                }
                out.push(pkt);
            }
        }
        self.frame += 1;
        out
    }

    /// Sends `frames` frames.
    pub fn run(&mut self, sim: &mut Sim, frames: u32) {
        for _ in 0..frames {
            self.send_frame(sim);
        }
    }

    /// An SR per active encoding: one sender clock, each encoding's own RTP timeline.
    fn send_reports(&mut self, sim: &mut Sim) {
        let since = sim.now.duration_since(sim.start);
        let ntp = (3_900_000_000u64 << 32) + ((since.as_nanos() << 32) / 1_000_000_000) as u64;
        // The frame being captured now is `self.frame`, at its timestamp.
        let reports: Vec<Rtcp> = (0..LAYERS)
            .filter(|&l| self.active[l])
            .map(|l| Rtcp::SenderReport {
                ssrc: self.ssrcs[l],
                ntp,
                rtp: self.ts_base[l].wrapping_add(self.frame.wrapping_mul(FRAME_TICKS)),
                packets: 0,
                octets: 0,
                reports: vec![],
            })
            .collect();
        sim.peer_send_rtcp(self.peer, &reports);
        self.last_sr = Some(sim.now);
    }

    /// The packets of `layer` sent from frame `from` on.
    pub fn sent_of(&self, layer: usize, from: u32) -> impl Iterator<Item = &SentPacket> {
        self.sent
            .iter()
            .filter(move |p| p.layer == layer && p.frame >= from)
    }
}

/// RID extension (and MID) added to a packet, the publisher's SSRC unannounced.
fn with_mid_rid(pkt: &[u8], layer: usize) -> Vec<u8> {
    let h = RtpHeader::parse(pkt).unwrap();
    let rid = [b'r', b'0' + layer as u8];
    // One-byte extension header: MID "0", RID "rN", padded to 4 bytes.
    let mut ext = vec![0xbe, 0xde, 0, 2, MID_EXT << 4, b'0', (RID_EXT << 4) | 1];
    ext.extend_from_slice(&rid);
    ext.resize(12, 0);
    let mut out = pkt[..12].to_vec();
    out[0] |= 0x10;
    out.extend_from_slice(&ext);
    out.extend_from_slice(h.payload(pkt));
    out
}

fn producer(id: &str, ssrcs: &[u32], by_rid: bool) -> ProduceOptions {
    let encodings: Vec<RtpEncodingParameters> = (0..ssrcs.len())
        .map(|l| RtpEncodingParameters {
            ssrc: (!by_rid).then_some(ssrcs[l]),
            rid: by_rid.then(|| format!("r{l}")),
            scalability_mode: Some("L1T3".into()),
            ..Default::default()
        })
        .collect();
    // vp8_producer's parameters (VP8, MID extension, cname), with these encodings, RTX and
    // the RID extension when the encodings go by RID.
    let mut o = vp8_producer(id, ssrcs[0], 0);
    let p = &mut o.rtp_parameters;
    p.codecs = vp8_codecs(VP8_PT, 97);
    p.header_extensions[0].id = MID_EXT;
    if by_rid {
        p.header_extensions.push(RtpHeaderExtensionParameters {
            uri: "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id".into(),
            id: RID_EXT,
            encrypt: false,
        });
    }
    o.rtp_mapping.encodings = encodings
        .iter()
        .enumerate()
        .map(|(l, e)| EncodingMapping {
            ssrc: e.ssrc,
            rid: e.rid.clone(),
            scalability_mode: e.scalability_mode.clone(),
            mapped_ssrc: 0x6000_0000 + l as u32,
        })
        .collect();
    o.rtp_parameters.encodings = encodings;
    o
}

/// A layer preference (`temporal` `None`: the highest).
pub fn layers(spatial: u8, temporal: Option<u8>) -> Option<ConsumerLayers> {
    Some(ConsumerLayers {
        spatial_layer: spatial,
        temporal_layer: temporal,
    })
}

/// A simulcast consumer `id` of `producer` on a new subscriber peer, preferring `preferred`
/// (`None`: the highest layers). Returns the peer.
pub fn simulcast_subscriber(
    sim: &mut Sim,
    id: &str,
    producer: &str,
    preferred: Option<ConsumerLayers>,
) -> usize {
    subscriber(sim, id, producer, ConsumerType::Simulcast, preferred)
}

/// A consumer `id` of `producer`, of type `consumer_type`, on a new subscriber peer.
pub fn subscriber(
    sim: &mut Sim,
    id: &str,
    producer: &str,
    consumer_type: ConsumerType,
    preferred: Option<ConsumerLayers>,
) -> usize {
    subscriber_with(sim, id, producer, consumer_type, preferred, |_| {})
}

/// [`subscriber`] with the consumer's options changed by `tweak` (extensions, feedback…).
pub fn subscriber_with(
    sim: &mut Sim,
    id: &str,
    producer: &str,
    consumer_type: ConsumerType,
    preferred: Option<ConsumerLayers>,
    tweak: impl FnOnce(&mut ConsumeOptions),
) -> usize {
    let s = sim.add_peer(SrtpProfile::AesCm128HmacSha1_80);
    let tid = sim.peers[s].transport_id.clone();
    let (ssrc, rtx) = (0x7000 + s as u32, 0x7800 + s as u32);
    let mut o = vp8_consumer(id, producer, ssrc, rtx, false);
    o.consumer_type = consumer_type;
    o.preferred_layers = preferred;
    o.rtp_parameters.encodings[0].scalability_mode = Some("L3T3".into());
    tweak(&mut o);
    sim.request(&tid, RequestBody::TransportConsume(o)).unwrap();
    sim.peers[s].rtx_of.insert(rtx, ssrc);
    s
}

/// What one packet a subscriber received says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub pt: u8,
    pub picture_id: u16,
    pub tl0: u8,
    pub tid: u8,
    pub start: bool,
    /// Encoding and frame from the data's identity bytes.
    pub layer: usize,
    pub frame: u32,
    pub data: Vec<u8>,
}

/// Every packet subscriber `peer` received, in arrival order, as `read` turns its header and
/// payload into what a test checks.
pub fn received_as<T>(sim: &Sim, peer: usize, read: impl Fn(&RtpHeader, &[u8]) -> T) -> Vec<T> {
    sim.peers[peer]
        .rx_rtp
        .iter()
        .map(|pkt| {
            let h = RtpHeader::parse(pkt).unwrap();
            read(&h, h.payload(pkt))
        })
        .collect()
}

/// Every packet subscriber `peer` received, in arrival order.
pub fn received(sim: &Sim, peer: usize) -> Vec<Received> {
    received_as(sim, peer, |h, payload| {
        let d = Vp8Descriptor::parse(payload).unwrap();
        let data = payload[d.len..].to_vec();
        Received {
            seq: h.seq,
            ts: h.timestamp,
            marker: h.marker,
            pt: h.pt.0,
            picture_id: d.picture_id.unwrap().0,
            tl0: d.tl0picidx.unwrap(),
            tid: d.tid.unwrap(),
            start: d.start_of_frame,
            layer: usize::from(data[1]),
            frame: u32::from_be_bytes([data[2], data[3], data[4], data[5]]),
            data,
        }
    })
}

/// The consumer payload types the subscriber negotiated.
pub const SUBSCRIBER_PTS: (u8, u8) = (CONSUMER_VP8_PT, CONSUMER_RTX_PT);
