//! Core cost per forwarded packet: one VP8 publisher on a WebRtcTransport (AEAD_AES_128_GCM)
//! fanned out to N subscribers on their own WebRtcTransports (AES_CM_128_HMAC_SHA1_80). Each
//! iteration feeds one SRTP packet (~1000 B payload) to `WorkerCore::handle_datagram` and drains
//! every output: SRTP unprotect, producer receive stream (NACK tracking, rate), router fan-out,
//! per-consumer rewrite into its pooled buffer, retransmission buffer, SRTP protect, Transmit.
//! Throughput is in forwarded packets (N per input packet), so "elem/s" is packets out per
//! second on one core; time / N is the cost per forwarded packet.
//!
//! The peers connect over the simulated network of `tests/sim` (real ICE, DTLS, SRTP); the timed
//! section then talks to the core directly, with simulated time held still.
//!
//!   scripts/bench fanout   (writes results/fanout-<date>-<commit>.txt)

#![allow(clippy::unwrap_used)] // bench: a panic is the failure report

#[path = "../tests/sim/mod.rs"]
mod sim;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrosfu_fbs::{RequestBody, ResponseBody};
use ferrosfu_worker_core::{Output, Protocol, SrtpProfile, Tuple};
use sim::{Sim, vp8_consumer, vp8_packet, vp8_producer};

const PUB_SSRC: u32 = 0x1111;

fn setup(subscribers: usize) -> Sim {
    let mut sim = Sim::new(1);
    let p = sim.add_peer(SrtpProfile::AeadAes128Gcm);
    sim.request(
        &sim.peers[p].transport_id.clone(),
        RequestBody::TransportProduce(vp8_producer("prod", PUB_SSRC, 0)),
    )
    .unwrap();
    for k in 0..subscribers {
        let s = sim.add_peer(SrtpProfile::AesCm128HmacSha1_80);
        let tid = sim.peers[s].transport_id.clone();
        let r = sim
            .request(
                &tid,
                RequestBody::TransportConsume(vp8_consumer(
                    &format!("cons-{k}"),
                    "prod",
                    0x2000 + k as u32,
                    0x3000 + k as u32,
                    false,
                )),
            )
            .unwrap();
        assert!(matches!(r, ResponseBody::Consumed { paused: false, .. }));
    }
    sim
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    for n in [1usize, 10, 50] {
        let mut sim = setup(n);
        let tuple = Tuple {
            local: sim.peers[0].server,
            remote: sim.peers[0].addr,
            protocol: Protocol::Udp,
        };
        let now = sim.now;
        let mut k = 0u32;
        // Warm up: a keyframe first, and check that every subscriber gets what is sent.
        let key = vp8_packet(PUB_SSRC, 0, 0, 0, true);
        let wire = sim.peers[0]
            .srtp
            .as_mut()
            .unwrap()
            .protect_rtp(&key)
            .unwrap();
        sim.core.handle_datagram(tuple, &wire, now);
        let mut out = 0;
        while let Some(o) = sim.core.poll_output() {
            out += usize::from(matches!(o, Output::Transmit(_)));
        }
        assert_eq!(out, n, "one transmit per subscriber");

        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("webrtc_1_to_{n}"), |b| {
            b.iter_batched(
                || {
                    k += 1;
                    let plain = vp8_packet(PUB_SSRC, k as u16, k * 3000, k, false);
                    sim.peers[0]
                        .srtp
                        .as_mut()
                        .unwrap()
                        .protect_rtp(&plain)
                        .unwrap()
                },
                |wire| {
                    sim.core.handle_datagram(tuple, &wire, now);
                    let mut sent = 0usize;
                    while let Some(o) = sim.core.poll_output() {
                        if let Output::Transmit(t) = o {
                            sent += t.data.len();
                        }
                    }
                    sent
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
