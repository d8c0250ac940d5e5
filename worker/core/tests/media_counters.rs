//! The worker-wide counters `worker.get_media_counters` reports (what `/metrics` exports), over
//! the simulated network: RTP by kind and direction agree with the per-stream stats, RTCP
//! feedback is counted both ways, receiver reports feed the loss, jitter and RTT histograms, and
//! SRTP and ICE failures are counted worker-wide.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::drive::Binding;
use ferrosfu_sim::*;
use ferrosfu_worker_core::{Rtcp, RtpHeader, SrtpProfile};

fn media_counters(sim: &mut Sim) -> MediaCounters {
    match sim
        .request("", RequestBody::WorkerGetMediaCounters)
        .unwrap()
    {
        ResponseBody::MediaCounters(c) => *c,
        other => panic!("{other:?}"),
    }
}

fn stream_stats(sim: &mut Sim, id: &str, body: RequestBody) -> RtpStreamStats {
    match sim.request(id, body).unwrap() {
        ResponseBody::RtpStreamStats(mut s) => s.remove(0),
        other => panic!("{other:?}"),
    }
}

fn consumer_stats(sim: &mut Sim, k: usize) -> RtpStreamStats {
    stream_stats(sim, &format!("cons-{k}"), RequestBody::ConsumerGetStats)
}

/// Observations of histogram `h` at or below `bound` (Prometheus' cumulative bucket).
fn at_or_below(h: &Histogram, bound: f64) -> u64 {
    let n = h.bounds.iter().take_while(|b| **b <= bound).count();
    h.counts[..n].iter().sum()
}

#[test]
fn rtp_is_counted_by_kind_and_direction_as_the_streams_count_it() {
    let mut sim = Sim::new(31);
    let (p, subs) = setup(&mut sim, 2, 0);
    let sent = publish(&mut sim, p, 100, 1000);
    sim.run_for(Duration::from_millis(200));
    for &s in &subs {
        assert_eq!(delivered(&sim, s, &sent), 100);
    }
    let c = media_counters(&mut sim);
    let prod = stream_stats(&mut sim, "prod", RequestBody::ProducerGetStats);
    assert_eq!(c.video.packets_received, 100);
    assert_eq!(c.video.bytes_received, prod.byte_count);
    let cons: Vec<_> = (0..2).map(|k| consumer_stats(&mut sim, k)).collect();
    assert_eq!(c.video.packets_sent, 200);
    assert_eq!(
        c.video.bytes_sent,
        cons.iter().map(|s| s.byte_count).sum::<u64>()
    );
    assert_eq!(c.video.retransmissions_sent, 0);
    assert_eq!(c.audio, RtpCounters::default(), "no audio flowed");
    assert_eq!((c.transports, c.producers, c.consumers), (3, 1, 2));
}

#[test]
fn nacks_plis_and_retransmissions_are_counted_both_ways() {
    let mut sim = Sim::new(37);
    let (p, subs) = setup(&mut sim, 2, 0);
    sim.peers[p].up.loss = 0.05;
    for &s in &subs {
        sim.peers[s].down.loss = 0.05;
    }
    publish(&mut sim, p, 500, 0);
    sim.run_for(Duration::from_secs(1));
    sim.peer_send_rtcp(subs[0], &[Rtcp::Pli { media_ssrc: 0x2000 }]);
    sim.run_for(Duration::from_millis(100));

    let c = media_counters(&mut sim);
    let prod = stream_stats(&mut sim, "prod", RequestBody::ProducerGetStats);
    let cons: Vec<_> = (0..2).map(|k| consumer_stats(&mut sim, k)).collect();
    let f = c.feedback;
    assert!(f.nacks_sent > 0, "{f:?}");
    assert_eq!(f.nacks_sent, prod.nack_count, "one NACK message per poll");
    assert!(f.nacks_received > 0, "{f:?}");
    assert_eq!(
        f.nacks_received,
        cons.iter().map(|s| s.nack_count).sum::<u64>()
    );
    let rtx: u64 = cons.iter().map(|s| s.retransmitted_packet_count).sum();
    assert!(rtx > 0);
    assert_eq!(c.video.retransmissions_sent, rtx);
    // Every retransmission is a packet sent too.
    assert!(
        c.video.packets_sent >= 2 * 500 * 9 / 10 + rtx,
        "{:?}",
        c.video
    );
    assert_eq!(f.plis_received, 1);
    assert_eq!(f.plis_sent, prod.pli_count);
    assert!(f.plis_sent >= 1, "the PLI reached the publisher");
    assert_eq!((f.firs_received, f.firs_sent), (0, 0));
}

#[test]
fn receiver_reports_feed_the_loss_jitter_and_rtt_histograms() {
    let mut sim = Sim::new(41);
    let (p, subs) = setup(&mut sim, 1, 0);
    let s = subs[0];
    sim.peers[s].rr_loss = true;
    sim.peers[s].down.latency = Duration::from_millis(40);
    // Every tenth sequence number never sent: the publisher cannot answer its NACKs, so about
    // 10 % stays lost in our receiver reports.
    for n in 0..400u32 {
        if n % 10 != 9 {
            let pkt = vp8_packet(PUB_SSRC, n as u16, n * 900, n, n == 0);
            sim.peer_send_rtp(p, pkt);
        }
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(Duration::from_secs(2));
    let c = media_counters(&mut sim);

    // The subscriber's reports (one a second, with LSR/DLSR of our SRs): RTT ≈ the 40 ms
    // of its downlink.
    let rtt = &c.rtt;
    assert_eq!(rtt.bounds, ferrosfu_worker_core::RTT_BOUNDS);
    assert_eq!(rtt.counts.len(), rtt.bounds.len() + 1);
    assert!(rtt.count() >= 2, "{rtt:?}");
    let mean = rtt.sum / rtt.count() as f64;
    assert!((0.035..0.06).contains(&mean), "mean RTT {mean}");
    assert_eq!(at_or_below(rtt, 0.025), 0, "{rtt:?}");
    assert_eq!(at_or_below(rtt, 0.05), rtt.count(), "{rtt:?}");
    assert_eq!(c.loss_sent.count(), c.jitter_sent.count());
    assert!(c.loss_sent.count() >= rtt.count());

    // Our own receiver reports of the publisher's stream: about 10 % lost.
    let loss = &c.loss_received;
    assert!(loss.count() >= 3, "{loss:?}");
    let mean = loss.sum / loss.count() as f64;
    assert!((0.05..0.15).contains(&mean), "mean loss {mean}");
    assert_eq!(at_or_below(loss, 0.02), 0, "{loss:?}");
    assert_eq!(c.jitter_received.count(), loss.count());
    // Packets sent on a 10 ms clock at 90 kHz timestamps 900 apart: no jitter to speak of.
    assert_eq!(at_or_below(&c.jitter_received, 0.001), loss.count());
}

#[test]
fn srtp_and_ice_failures_are_counted_worker_wide() {
    let mut sim = Sim::new(43);
    let (p, _subs) = setup(&mut sim, 1, 0);
    publish(&mut sim, p, 5, 0);
    // A bad tag, then one packet twice.
    let wire = sim.protect_rtp(p, &vp8_packet(PUB_SSRC, 5, 4500, 5, false));
    let mut bad = wire.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    sim.peer_send(p, bad);
    sim.peer_send(p, wire.clone());
    sim.peer_send(p, wire);
    // A check signed with the wrong password.
    let ufrag = match sim
        .request("transport-0", RequestBody::TransportDump)
        .unwrap()
    {
        ResponseBody::WebRtcTransportDump(d) => d.ice_parameters.username_fragment,
        other => panic!("{other:?}"),
    };
    let check = Binding {
        ufrag: &ufrag,
        pwd: "not the password",
        from_port: sim.peers[p].addr.port(),
        transaction: [9; 12],
        priority: 1,
        controlled: false,
        nominate: false,
    };
    sim.peer_send(p, check.build());
    sim.run_for(Duration::from_millis(50));
    let c = media_counters(&mut sim);
    assert_eq!((c.srtp_auth_failures, c.srtp_replays), (1, 1));
    assert_eq!((c.ice_unauthorized, c.ice_bad_requests), (1, 0));
    assert_eq!(c.ice_consent_lost, 0);

    // The publisher goes silent: its consent lapses after 30 s.
    let now = sim.now;
    sim.peers[p].client.set_checks(false, now);
    sim.run_for(Duration::from_secs(31));
    let c = media_counters(&mut sim);
    assert_eq!(c.ice_consent_lost, 1);
}

#[test]
fn audio_is_counted_apart_from_video() {
    let mut sim = Sim::new(47);
    let p = sim.add_peer(SrtpProfile::AeadAes128Gcm);
    let mut o = vp8_producer("mic", 0x4444, 0);
    o.kind = MediaKind::Audio;
    o.rtp_parameters.codecs = vec![RtpCodecParameters {
        mime_type: "audio/opus".into(),
        payload_type: OPUS_PT,
        clock_rate: 48000,
        channels: Some(2),
        parameters: vec![],
        rtcp_feedback: vec![],
    }];
    o.rtp_parameters.encodings[0].ssrc = Some(0x4444);
    o.rtp_mapping.codecs[0] = CodecMapping {
        payload_type: OPUS_PT,
        mapped_payload_type: 100,
    };
    o.rtp_mapping.encodings[0].ssrc = Some(0x4444);
    sim.request("transport-0", RequestBody::TransportProduce(o))
        .unwrap();
    let mut bytes = 0;
    for n in 0..20u16 {
        let pkt = ferrosfu_worker_core::build_packet(
            ferrosfu_worker_core::Pt(OPUS_PT),
            n,
            u32::from(n) * 960,
            ferrosfu_worker_core::Ssrc(0x4444),
            false,
            &[0xAB; 80],
        );
        bytes += pkt.len() as u64;
        assert!(RtpHeader::parse(&pkt).is_ok());
        sim.peer_send_rtp(p, pkt);
        sim.run_for(Duration::from_millis(20));
    }
    let c = media_counters(&mut sim);
    assert_eq!(
        (c.audio.packets_received, c.audio.bytes_received),
        (20, bytes)
    );
    assert_eq!(c.video, RtpCounters::default());
}
