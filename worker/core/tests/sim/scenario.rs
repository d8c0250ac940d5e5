//! Scenario building blocks shared by the test files: one VP8 publisher and N subscribers.

use std::time::Duration;

use ferrosfu_fbs::*;

use super::*;

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
        let r = sim
            .request(
                &tid,
                RequestBody::TransportConsume(vp8_consumer(
                    &format!("cons-{k}"),
                    "prod",
                    ssrc,
                    rtx,
                    false,
                )),
            )
            .unwrap();
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
