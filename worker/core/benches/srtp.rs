//! SRTP cost per 1200-byte RTP packet (12-byte header + 1188 bytes of payload): protect and
//! unprotect for the two profiles browsers negotiate most (AES_CM_128_HMAC_SHA1_80 and
//! AEAD_AES_128_GCM), through the core's `SrtpSession` on rtc-srtp.
//!
//!   scripts/bench srtp     (writes results/srtp-<date>-<commit>.txt)

#![allow(clippy::unwrap_used)] // bench: a panic is the failure report

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrosfu_worker_core::{Pt, SrtpProfile, SrtpSession, Ssrc, build_packet};

const PACKET: usize = 1200;

fn session(profile: SrtpProfile, flip: bool) -> SrtpSession {
    let crypto = rtc_dtls::crypto_provider::default_provider().unwrap();
    let material: Vec<u8> = (0..profile.keying_material_len() as u8).collect();
    SrtpSession::from_keying_material(profile, &material, flip, &crypto).unwrap()
}

fn packet(seq: u16) -> Vec<u8> {
    let payload: Vec<u8> = (0..PACKET - 12).map(|i| (i * 7) as u8).collect();
    build_packet(
        Pt(96),
        seq,
        u32::from(seq) * 90,
        Ssrc(0x1234),
        false,
        &payload,
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp");
    g.throughput(Throughput::Bytes(PACKET as u64));
    for (name, profile) in [
        ("aes_cm_128_hmac_sha1_80", SrtpProfile::AesCm128HmacSha1_80),
        ("aead_aes_128_gcm", SrtpProfile::AeadAes128Gcm),
    ] {
        // Protect: a new sequence number per packet, as a sender does.
        let mut tx = session(profile, true);
        let mut plain = packet(0);
        let mut seq = 0u16;
        g.bench_function(format!("protect_1200B/{name}"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                plain[2..4].copy_from_slice(&seq.to_be_bytes());
                tx.protect_rtp(&plain).unwrap()
            })
        });

        // Unprotect: every packet is new to the receiver (replay protection is on), so each one
        // is protected by the sender outside the timed section.
        let mut tx = session(profile, true);
        let mut rx = session(profile, false);
        let mut seq = 0u16;
        g.bench_function(format!("unprotect_1200B/{name}"), |b| {
            b.iter_batched(
                || {
                    seq = seq.wrapping_add(1);
                    plain[2..4].copy_from_slice(&seq.to_be_bytes());
                    tx.protect_rtp(&plain).unwrap()
                },
                |wire| rx.unprotect_rtp(&wire).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
