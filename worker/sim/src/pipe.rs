//! Two workers in one simulated time, a producer of the first piped to a router of the second
//! as the supervisor's `pipe_to_router` does it: a PipeTransport on each side (a plain
//! transport, RTCP multiplexed, no comedia, each connected to the other's address), a consumer
//! of type `pipe` on the source side (every encoding, each on its own SSRC) and, on the target
//! side, a producer with the same id whose encodings are the pipe consumer's. A pair of
//! [`Link`]s joins the two (latency, loss as parameters).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use ferrosfu_fbs::*;
use ferrosfu_worker_core::{Protocol, Tuple};

use crate::drive::{bound, listen};
use crate::link::Link;
use crate::net::Sim;
use crate::scenario::{CONSUMER_RTX_PT, CONSUMER_VP8_PT, vp8_codecs};

/// The pipe's own payload types and SSRCs (what the source side's ORTC would pick).
pub const PIPE_SSRC: u32 = 0x0909_0000;
pub const PIPE_RTX_SSRC: u32 = 0x0919_0000;

/// Two simulations (`a`: the source worker, `b`: the target worker) and the links between
/// their pipe transports.
#[allow(missing_debug_implementations)] // as `Sim`
pub struct Piped {
    pub a: Sim,
    pub b: Sim,
    pub a_addr: SocketAddr,
    pub b_addr: SocketAddr,
    /// a → b and b → a.
    pub ab: Link,
    pub ba: Link,
    rng: StdRng,
    /// In flight: (arrival, to b, tuple as the receiver sees it, data), in send order.
    in_flight: VecDeque<(Instant, bool, Tuple, Vec<u8>)>,
    /// Datagrams each way that crossed the pipe.
    pub carried: [u64; 2],
}

/// Steps of the lockstep between the two simulations.
const STEP: Duration = Duration::from_millis(1);

impl Piped {
    /// Two workers (seeds `seed` and `seed + 1`) starting at the same instant, each with a pipe
    /// transport `pipe-a` / `pipe-b` connected to the other.
    pub fn new(seed: u64) -> Self {
        let a = Sim::new(seed);
        let b = Sim::new_at(seed + 1, a.now);
        let mut p = Piped {
            a,
            b,
            a_addr: "10.9.0.1:40000".parse().unwrap(),
            b_addr: "10.9.0.2:40000".parse().unwrap(),
            ab: Link::default(),
            ba: Link::default(),
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            in_flight: VecDeque::new(),
            carried: [0; 2],
        };
        p.a.outside = Some(Vec::new());
        p.b.outside = Some(Vec::new());
        let (a_addr, b_addr) = (p.a_addr, p.b_addr);
        pipe_transport(&mut p.a, "pipe-a", a_addr, b_addr);
        pipe_transport(&mut p.b, "pipe-b", b_addr, a_addr);
        p
    }

    /// Pipes producer `id` of `a` (`encodings` of them, video VP8 as the simulcast
    /// publisher's) to `b`: the pipe consumer `pipe-<id>` on `a`, the producer `id` on `b`.
    pub fn pipe_producer(&mut self, id: &str, encodings: usize) {
        let params = pipe_parameters(encodings);
        self.a
            .request(
                "pipe-a",
                RequestBody::TransportConsume(ConsumeOptions {
                    consumer_id: ConsumerId::new(format!("pipe-{id}")),
                    producer_id: ProducerId::new(id),
                    kind: MediaKind::Video,
                    rtp_parameters: params.clone(),
                    consumable_rtp_encodings: vec![],
                    paused: false,
                    ignore_dtx: false,
                    consumer_type: ConsumerType::Pipe,
                    preferred_layers: None,
                }),
            )
            .unwrap();
        let mapping = RtpMapping {
            codecs: vec![CodecMapping {
                payload_type: CONSUMER_VP8_PT,
                mapped_payload_type: 101,
            }],
            encodings: params
                .encodings
                .iter()
                .enumerate()
                .map(|(l, e)| EncodingMapping {
                    ssrc: e.ssrc,
                    rid: None,
                    scalability_mode: e.scalability_mode.clone(),
                    mapped_ssrc: 0x6000_0000 + l as u32,
                })
                .collect(),
        };
        self.b
            .request(
                "pipe-b",
                RequestBody::TransportProduce(ProduceOptions {
                    producer_id: ProducerId::new(id),
                    kind: MediaKind::Video,
                    rtp_parameters: params,
                    rtp_mapping: mapping,
                    key_frame_request_delay: 0,
                    paused: false,
                }),
            )
            .unwrap();
    }

    /// Runs both workers (and what crosses the pipe) for `d`, `tick` called before every step
    /// (a publisher sends its due frames there).
    pub fn run_with(&mut self, d: Duration, mut tick: impl FnMut(&mut Sim)) {
        let until = self.a.now + d;
        while self.a.now < until {
            tick(&mut self.a);
            let step = STEP.min(until - self.a.now);
            self.a.run_for(step);
            self.b.run_for(self.a.now - self.b.now);
            self.carry();
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_with(d, |_| {});
    }

    /// What each side sent to the other onto the links; what arrived by now into the cores.
    fn carry(&mut self) {
        let now = self.a.now;
        for to_b in [true, false] {
            let (from, link) = if to_b {
                (&mut self.a, &mut self.ab)
            } else {
                (&mut self.b, &mut self.ba)
            };
            for (tuple, data) in from.outside.as_mut().unwrap().drain(..) {
                let rtp =
                    ferrosfu_worker_core::classify(&data) == ferrosfu_worker_core::PacketKind::Rtp;
                if let Some(at) = link.admit(now, data.len(), rtp, &mut self.rng) {
                    let seen = Tuple {
                        local: tuple.remote,
                        remote: tuple.local,
                        protocol: Protocol::Udp,
                    };
                    self.in_flight.push_back((at, to_b, seen, data));
                }
            }
        }
        let mut later = VecDeque::new();
        while let Some((at, to_b, tuple, data)) = self.in_flight.pop_front() {
            if at > now {
                later.push_back((at, to_b, tuple, data));
                continue;
            }
            self.carried[usize::from(!to_b)] += 1;
            let (sim, link) = if to_b {
                (&mut self.b, &mut self.ab)
            } else {
                (&mut self.a, &mut self.ba)
            };
            link.on_delivered(data.len());
            sim.deliver(tuple, &data);
        }
        self.in_flight = later;
    }
}

/// A pipe transport `id` on `sim`'s router bound to `local`, connected to `remote`.
pub fn pipe_transport(sim: &mut Sim, id: &str, local: SocketAddr, remote: SocketAddr) {
    let router = sim.router.as_str().to_owned();
    sim.request_with_sockets(
        &router,
        RequestBody::RouterCreatePlainTransport(PlainTransportOptions {
            transport_id: TransportId::new(id),
            listen_info: listen(TransportProtocol::Udp, local),
            rtcp_listen_info: None,
            rtcp_mux: true,
            comedia: false,
            srtp_crypto_suite: None,
        }),
        Some(vec![bound(Protocol::Udp, local)]),
    )
    .unwrap();
    sim.request(
        id,
        RequestBody::TransportConnect(ConnectParams::Plain {
            ip: Some(remote.ip().to_string()),
            port: Some(remote.port()),
            rtcp_port: None,
            srtp_parameters: None,
        }),
    )
    .unwrap();
}

/// The pipe consumer's parameters for a VP8 producer of `encodings` encodings: VP8 + RTX with
/// NACK and PLI, one SSRC (and RTX SSRC) per encoding, L1T3 each; no MID, no transport-wide
/// extension (no bandwidth estimation between routers).
pub fn pipe_parameters(encodings: usize) -> RtpParameters {
    RtpParameters {
        mid: None,
        codecs: vp8_codecs(CONSUMER_VP8_PT, CONSUMER_RTX_PT),
        header_extensions: vec![],
        encodings: (0..encodings as u32)
            .map(|l| RtpEncodingParameters {
                ssrc: Some(PIPE_SSRC + l),
                rtx_ssrc: Some(PIPE_RTX_SSRC + l),
                scalability_mode: Some("L1T3".into()),
                ..Default::default()
            })
            .collect(),
        rtcp: RtcpParameters {
            cname: "pub".into(),
            reduced_size: true,
        },
    }
}
