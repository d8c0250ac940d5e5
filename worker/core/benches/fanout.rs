//! Core cost per forwarded packet: one VP8 publisher on a WebRtcTransport (AEAD_AES_128_GCM)
//! fanned out to N subscribers on their own WebRtcTransports (AES_CM_128_HMAC_SHA1_80). Each
//! iteration feeds one SRTP packet (~1000 B payload) to `WorkerCore::handle_input` (`Input::Datagram`) and drains
//! every output: SRTP unprotect, producer receive stream (NACK tracking, rate), router fan-out,
//! per-consumer rewrite into its pooled buffer, retransmission buffer, SRTP protect, Transmit.
//! Throughput is in forwarded packets (N per input packet), so "elem/s" is packets out per
//! second on one core; time / N is the cost per forwarded packet.
//!
//! The peers connect over the simulated network of `ferrosfu-sim` (real ICE, DTLS, SRTP); the timed
//! section then talks to the core directly, with simulated time held still.
//!
//! `layers/…`: the cost of layer selection. A three-encoding VP8 simulcast publisher (L1T3,
//! 310-byte packets: 1, 2 and 3 packets a frame on encodings 0, 1, 2) to 48 simulcast
//! consumers, 16 preferring each encoding (every input packet goes to the 16 of its encoding:
//! 16 packets out per packet in), against one encoding of the same packets to 48 simple
//! consumers (48 out per packet in). Time / elements is the cost per forwarded packet of each.
//!
//!   scripts/bench fanout   (writes results/fanout-<date>-<commit>.txt)

#![allow(clippy::unwrap_used)] // bench: a panic is the failure report

use std::collections::VecDeque;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrosfu_fbs::RtpHeaderExtensionParameters;
use ferrosfu_fbs::{ConsumerLayers, ConsumerType};
use ferrosfu_sim::simulcast::{SimulcastPublisher, subscriber};
use ferrosfu_sim::{PUB_SSRC, Sim, setup_with, vp8_packet};
use ferrosfu_worker_core::{Input, Protocol, Tuple};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    // The last: 50 subscribers that negotiated transport-wide-cc (our sequence number in every
    // packet, recorded for the send-side estimator).
    for (n, twcc) in [(1usize, false), (10, false), (50, false), (50, true)] {
        let mut sim = Sim::new(1);
        setup_with(&mut sim, n, 0, |o| {
            if twcc {
                o.rtp_parameters
                    .header_extensions
                    .push(RtpHeaderExtensionParameters {
                    uri:
                        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
                            .into(),
                    id: 5,
                    encrypt: false,
                });
            }
        });
        let tuple = Tuple {
            local: sim.peers[0].server,
            remote: sim.peers[0].addr,
            protocol: Protocol::Udp,
        };
        let now = sim.now;
        let mut k = 1u32; // 0 and 1 are the warm-up packets
        // Warm up: a keyframe first (held until the next packet confirms the new stream), and
        // check that every subscriber gets what is sent.
        let mut out = 0;
        for seq in 0..2 {
            let pkt = vp8_packet(PUB_SSRC, seq, 0, u32::from(seq), seq == 0);
            let wire = sim.protect_rtp(0, &pkt);
            sim.core.handle_input(
                Input::Datagram {
                    tuple,
                    data: &wire,
                    arrival: now,
                },
                now,
            );
            let mut buf = Vec::new();
            while let Some(t) = sim.core.poll_transmit(now, 1, &mut buf) {
                out += t.datagrams(&buf).count();
                buf.clear();
            }
            while sim.core.poll_output().is_some() {}
        }
        assert_eq!(out, 2 * n, "one transmit per subscriber and packet");

        let mut tx_buf = Vec::with_capacity(64 * 1024);
        g.throughput(Throughput::Elements(n as u64));
        let name = if twcc {
            format!("webrtc_1_to_{n}_twcc")
        } else {
            format!("webrtc_1_to_{n}")
        };
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    k += 1;
                    let plain = vp8_packet(PUB_SSRC, k as u16, k * 3000, k, false);
                    sim.peers[0].client.protect_rtp(&plain).unwrap()
                },
                |wire| {
                    sim.core.handle_input(
                        Input::Datagram {
                            tuple,
                            data: &wire,
                            arrival: now,
                        },
                        now,
                    );
                    let mut sent = 0usize;
                    // The shell's buffer: owned by the caller, reused for every transmit.
                    while let Some(t) = sim.core.poll_transmit(now, 1, &mut tx_buf) {
                        sent += t.size;
                        tx_buf.clear();
                    }
                    while sim.core.poll_output().is_some() {}
                    sent
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// 48 subscribers of a simulcast publisher: simulcast consumers, 16 on each encoding, or
/// simple consumers of a one-encoding publisher of the same packets.
fn layers(c: &mut Criterion) {
    let mut g = c.benchmark_group("layers");
    for (name, encodings, forwarded) in [("simulcast_48_mixed", 3, 16u64), ("simple_48", 1, 48)] {
        let mut sim = Sim::new(2);
        let mut publisher = SimulcastPublisher::with_layers(&mut sim, "cam", false, encodings);
        publisher.record = false;
        for k in 0..48 {
            let id = format!("c{k}");
            if encodings == 1 {
                subscriber(&mut sim, &id, "cam", ConsumerType::Simple, None);
            } else {
                let preferred = ConsumerLayers {
                    spatial_layer: (k % 3) as u8,
                    temporal_layer: None,
                };
                subscriber(
                    &mut sim,
                    &id,
                    "cam",
                    ConsumerType::Simulcast,
                    Some(preferred),
                );
            }
        }
        // Every consumer on its layer (keyframes asked and sent) before timing.
        publisher.run(&mut sim, 20);
        let tuple = Tuple {
            local: sim.peers[0].server,
            remote: sim.peers[0].addr,
            protocol: Protocol::Udp,
        };
        let now = sim.now;
        let Sim { core, peers, .. } = &mut sim;
        let client = &mut peers[0].client;
        let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
        let mut tx_buf = Vec::with_capacity(64 * 1024);
        let mut out = 0u64;
        let mut fed = 0u64;
        g.throughput(Throughput::Elements(forwarded));
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    if queue.is_empty() {
                        queue.extend(publisher.next_frame(&[]));
                    }
                    let plain = queue.pop_front().unwrap();
                    client.protect_rtp(&plain).unwrap()
                },
                |wire| {
                    core.handle_input(
                        Input::Datagram {
                            tuple,
                            data: &wire,
                            arrival: now,
                        },
                        now,
                    );
                    while let Some(t) = core.poll_transmit(now, 1, &mut tx_buf) {
                        out += t.datagrams(&tx_buf).count() as u64;
                        tx_buf.clear();
                    }
                    while core.poll_output().is_some() {}
                    fed += 1;
                },
                BatchSize::SmallInput,
            )
        });
        // What was timed forwarded what the throughput says (whole frames: 6 packets in, 96
        // out with simulcast; one encoding of 1 packet a frame to 48).
        // (Nothing fed: the bench was filtered out.)
        let per_in = out as f64 / fed.max(1) as f64;
        assert!(
            fed == 0 || (per_in - forwarded as f64).abs() < 1.0,
            "{name}: {per_in:.2} packets out per packet in"
        );
    }
    g.finish();
}

criterion_group!(benches, bench, layers);
criterion_main!(benches);
