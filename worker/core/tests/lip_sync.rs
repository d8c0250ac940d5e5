//! Lip sync through the SFU, in simulated time: the sender reports a consumer sends map its RTP
//! time to NTP through the publisher's own clock, so two streams of one publisher stay aligned
//! even when their sender reports reach the worker with different delays.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::*;
use ferrosfu_worker_core::{Rtcp, RtpHeader, SrtpProfile};

const A: u32 = 0x1111;
const B: u32 = 0x1112;
const BASE_A: u32 = 1_000_000;
const BASE_B: u32 = 3_000_000_000;
/// The publisher's NTP clock at the start (any value: not ours).
const PUB_NTP0: u64 = 3_800_000_000 << 32;
const SECOND: u64 = 1 << 32;

/// Where consumer SR `(ntp, rtp)` puts the publisher's time 0 on our NTP clock, for a stream
/// whose consumer RTP time is the publisher's + `offset` and which started at `base`.
fn zero_at(sr: (u64, u32), offset: u32, base: u32) -> i128 {
    let pub_ticks = sr.1.wrapping_sub(offset).wrapping_sub(base);
    let pub_secs = f64::from(pub_ticks) / 90_000.0;
    i128::from(sr.0) - (pub_secs * SECOND as f64) as i128
}

#[test]
fn two_streams_of_one_publisher_stay_aligned_when_their_sender_reports_are_delayed_differently() {
    let mut sim = Sim::new(21);
    let p = sim.add_peer(SrtpProfile::AeadAes128Gcm);
    let mut second = vp8_producer("prod-b", B, 0);
    second.rtp_parameters.mid = Some("1".into());
    for o in [vp8_producer("prod-a", A, 0), second] {
        sim.request("transport-0", RequestBody::TransportProduce(o))
            .unwrap();
    }
    let s = sim.add_peer(SrtpProfile::AesCm128HmacSha1_80);
    let tid = sim.peers[s].transport_id.clone();
    for (k, prod) in ["prod-a", "prod-b"].into_iter().enumerate() {
        let mut o = vp8_consumer(
            &format!("c{k}"),
            prod,
            0x2000 + k as u32,
            0x3000 + k as u32,
            false,
        );
        o.rtp_parameters.mid = Some(k.to_string());
        sim.request(&tid, RequestBody::TransportConsume(o)).unwrap();
    }
    // 3.5 s of both streams on one timeline (a frame every 10 ms), and each stream's SR every
    // second stamped when it left the publisher; B's SRs take 80 ms longer to arrive.
    let start = sim.now;
    let mut late_b = Vec::new();
    for k in 0..350u32 {
        let t_ms = 10 * k;
        for (ssrc, base) in [(A, BASE_A), (B, BASE_B)] {
            let pkt = vp8_packet(ssrc, k as u16, base + 90 * t_ms, k, k % 50 == 0);
            sim.peer_send_rtp(p, pkt);
        }
        if k % 100 == 50 {
            let ntp = PUB_NTP0 + u64::from(t_ms) * SECOND / 1000;
            let sr = |ssrc, base: u32| Rtcp::SenderReport {
                ssrc,
                ntp,
                rtp: base + 90 * t_ms,
                packets: k,
                octets: k * 1000,
                reports: vec![],
            };
            sim.peer_send_rtcp(p, &[sr(A, BASE_A)]);
            late_b.push((sim.now + Duration::from_millis(80), sr(B, BASE_B)));
        }
        while late_b.first().is_some_and(|(at, _)| *at <= sim.now) {
            let (_, sr) = late_b.remove(0);
            sim.peer_send_rtcp(p, &[sr]);
        }
        sim.run_for(Duration::from_millis(10));
    }
    assert!(sim.now >= start + Duration::from_secs(3));
    // Each consumer's RTP offset from the publisher's, from its first forwarded packet.
    let offset = |ssrc: u32, base: u32| {
        let pkt = sim.peers[s]
            .rx_rtp
            .iter()
            .find(|pkt| RtpHeader::parse(pkt).unwrap().ssrc.0 == ssrc)
            .expect("forwarded");
        let h = RtpHeader::parse(pkt).unwrap();
        // The payload carries the frame number n (vp8_packet): publisher time 10 n ms.
        let n = u32::from_be_bytes(h.payload(pkt)[2..6].try_into().unwrap());
        h.timestamp.wrapping_sub(base + 900 * n)
    };
    let (off_a, off_b) = (offset(0x2000, BASE_A), offset(0x2001, BASE_B));
    let last_sr = |ssrc: u32| {
        sim.peers[s]
            .rx_rtcp
            .iter()
            .rev()
            .find_map(|r| match r {
                Rtcp::SenderReport {
                    ssrc: x, ntp, rtp, ..
                } if *x == ssrc => Some((*ntp, *rtp)),
                _ => None,
            })
            .expect("a consumer SR")
    };
    let za = zero_at(last_sr(0x2000), off_a, BASE_A);
    let zb = zero_at(last_sr(0x2001), off_b, BASE_B);
    let skew_ms = (za - zb) as f64 / SECOND as f64 * 1000.0;
    assert!(
        skew_ms.abs() < 2.0,
        "the two streams' consumer SRs disagree by {skew_ms:.1} ms (B's SRs arrive 80 ms later)"
    );
}
