//! Media behaviours of the worker core over a simulated, seeded, lossy network: real ICE, DTLS
//! and SRTP on every peer, simulated time, no sockets.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::*;
use ferrosfu_worker_core::Rtcp;

#[test]
fn fan_out_1_to_n_delivers_byte_exact_payloads_in_order() {
    let mut sim = Sim::new(1);
    let (p, subs) = setup(&mut sim, 5, 0);
    let sent = publish(&mut sim, p, 300, 65_500); // crosses the sequence wrap
    sim.run_for(Duration::from_millis(200));
    for &s in &subs {
        let rx = &sim.peers[s].rx_rtp;
        assert_eq!(rx.len(), sent.len(), "subscriber {s}");
        let mut last_seq = None;
        for (pkt, want) in rx.iter().zip(&sent) {
            let h = ferrosfu_worker_core::RtpHeader::parse(pkt).unwrap();
            assert_eq!(h.payload(pkt), &want[..]);
            assert_eq!(h.pt.0, CONSUMER_VP8_PT);
            assert_eq!(h.ssrc.0, 0x2000 + (s as u32 - 1));
            if let Some(l) = last_seq {
                assert_eq!(
                    h.seq,
                    u16::wrapping_add(l, 1),
                    "consecutive output sequence"
                );
            }
            last_seq = Some(h.seq);
        }
    }
}

#[test]
fn nack_recovers_five_percent_random_loss_on_both_legs() {
    let mut sim = Sim::new(7);
    let (p, subs) = setup(&mut sim, 3, 0);
    sim.peers[p].up.loss = 0.05;
    sim.peers[p].up.latency = Duration::from_millis(20);
    for &s in &subs {
        sim.peers[s].down.loss = 0.05;
        sim.peers[s].down.latency = Duration::from_millis(20);
    }
    let sent = publish(&mut sim, p, 2000, 100);
    sim.run_for(Duration::from_secs(2));
    for &s in &subs {
        let got = delivered(&sim, s, &sent);
        let ratio = got as f64 / sent.len() as f64;
        assert!(
            ratio >= 0.999,
            "subscriber {s}: {got}/{} delivered",
            sent.len()
        );
    }
    assert!(
        sim.peers[p].retransmissions_sent > 0,
        "the SFU NACKed the publisher"
    );
    let stats = match sim
        .request("cons-0", RequestBody::ConsumerGetStats)
        .unwrap()
    {
        ResponseBody::RtpStreamStats(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(
        stats[0].retransmitted_packet_count > 0,
        "the SFU answered NACKs with RTX"
    );
}

#[test]
fn nack_recovers_a_20_packet_burst() {
    let mut sim = Sim::new(11);
    let (p, subs) = setup(&mut sim, 2, 0);
    sim.peers[p].up.burst = Some((200, 20));
    sim.peers[subs[0]].down.burst = Some((500, 20));
    for i in 0..sim.peers.len() {
        sim.peers[i].up.latency = Duration::from_millis(15);
        sim.peers[i].down.latency = Duration::from_millis(15);
    }
    let sent = publish(&mut sim, p, 1000, 0);
    sim.run_for(Duration::from_secs(2));
    for &s in &subs {
        let got = delivered(&sim, s, &sent);
        assert!(
            got as f64 / sent.len() as f64 >= 0.999,
            "subscriber {s}: {got}"
        );
    }
}

/// Two consumers of one producer, one without RTX (plain retransmission on the media SSRC):
/// both recover their own losses from the producer's single packet store.
#[test]
fn nack_without_rtx_retransmits_on_the_media_stream() {
    let mut sim = Sim::new(13);
    let (p, subs) = setup(&mut sim, 1, 0);
    let s = sim.add_peer(ferrosfu_worker_core::SrtpProfile::AesCm128HmacSha1_80);
    let tid = sim.peers[s].transport_id.clone();
    let mut opts = vp8_consumer("plain", "prod", 0x2100, 0, false);
    opts.rtp_parameters.codecs.truncate(1);
    opts.rtp_parameters.encodings[0].rtx_ssrc = None;
    sim.request(&tid, RequestBody::TransportConsume(opts))
        .unwrap();
    for &k in subs.iter().chain([&s]) {
        sim.peers[k].down.loss = 0.05;
        sim.peers[k].down.latency = Duration::from_millis(20);
    }
    let sent = publish(&mut sim, p, 1000, 40_000);
    sim.run_for(Duration::from_secs(2));
    for &k in subs.iter().chain([&s]) {
        let got = delivered(&sim, k, &sent);
        assert!(
            got as f64 / sent.len() as f64 >= 0.999,
            "subscriber {k}: {got}/{}",
            sent.len()
        );
    }
    let rx = &sim.peers[s].rx_rtp;
    assert!(rx.len() > sent.len() * 95 / 100, "{}", rx.len());
    for pkt in rx {
        let h = ferrosfu_worker_core::RtpHeader::parse(pkt).unwrap();
        assert_eq!((h.ssrc.0, h.pt.0), (0x2100, CONSUMER_VP8_PT));
    }
    let stats = match sim.request("plain", RequestBody::ConsumerGetStats).unwrap() {
        ResponseBody::RtpStreamStats(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(stats[0].retransmitted_packet_count > 0, "{stats:?}");
}

/// `pkt` (without extensions) with one-byte header extension elements (RFC 8285).
fn with_extensions(pkt: &[u8], elements: &[(u8, &[u8])]) -> Vec<u8> {
    let mut ext = vec![0xbe, 0xde, 0, 0];
    for (id, value) in elements {
        ext.push((id << 4) | (value.len() as u8 - 1));
        ext.extend_from_slice(value);
    }
    while ext.len() % 4 != 0 {
        ext.push(0);
    }
    let words = (ext.len() / 4 - 1) as u16;
    ext[2..4].copy_from_slice(&words.to_be_bytes());
    let mut out = pkt[..12].to_vec();
    out[0] |= 0x10;
    out.extend_from_slice(&ext);
    out.extend_from_slice(&pkt[12..]);
    out
}

const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";

fn ext(uri: &str, id: u8) -> RtpHeaderExtensionParameters {
    RtpHeaderExtensionParameters {
        uri: uri.into(),
        id,
        encrypt: false,
    }
}

/// The MID a consumer sends is its own (from its RTP parameters), never the one the publisher
/// put in its packets: browsers demultiplex by MID first, so a forwarded publisher MID sends a
/// consumer's media to another transceiver of the subscriber (audio into a video m-line).
#[test]
fn consumers_send_their_own_mid_not_the_publishers() {
    let mut sim = Sim::new(17);
    let p = sim.add_peer(ferrosfu_worker_core::SrtpProfile::AeadAes128Gcm);
    sim.request(
        "transport-0",
        RequestBody::TransportProduce(vp8_producer("prod", PUB_SSRC, 0)),
    )
    .unwrap();
    let s = sim.add_peer(ferrosfu_worker_core::SrtpProfile::AesCm128HmacSha1_80);
    let tid = sim.peers[s].transport_id.clone();
    let mut opts = vp8_consumer("cons", "prod", 0x2000, 0x3000, false);
    opts.rtp_parameters.mid = Some("7".into());
    opts.rtp_parameters.header_extensions = vec![ext(MID, 4)];
    sim.request(&tid, RequestBody::TransportConsume(opts))
        .unwrap();
    for n in 0..20u32 {
        let pkt = vp8_packet(PUB_SSRC, 500 + n as u16, n * 900, n, n == 0);
        sim.peer_send_rtp(p, with_extensions(&pkt, &[(1, b"0")]));
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(Duration::from_millis(100));
    let rx = &sim.peers[s].rx_rtp;
    assert_eq!(rx.len(), 20);
    for pkt in rx {
        let h = ferrosfu_worker_core::RtpHeader::parse(pkt).unwrap();
        let ext: Vec<(u8, Vec<u8>)> = h.extensions(pkt).map(|(i, v)| (i, v.to_vec())).collect();
        assert_eq!(ext, vec![(4, b"7".to_vec())], "the consumer's MID only");
    }
}

/// Transport-wide sequence numbers and abs-send-time describe the leg they travel on: a
/// consumer writes its transport's sequence (one sequence for all consumers of the transport,
/// retransmissions included) and its own send time, never the publisher's values.
#[test]
fn consumers_write_their_transports_twcc_sequence_and_send_time() {
    let mut sim = Sim::new(19);
    let p = sim.add_peer(ferrosfu_worker_core::SrtpProfile::AeadAes128Gcm);
    let mut prod = vp8_producer("prod", PUB_SSRC, 0);
    prod.rtp_parameters.header_extensions = vec![ext(TWCC, 3), ext(ABS_SEND_TIME, 2)];
    sim.request("transport-0", RequestBody::TransportProduce(prod))
        .unwrap();
    let s = sim.add_peer(ferrosfu_worker_core::SrtpProfile::AesCm128HmacSha1_80);
    let tid = sim.peers[s].transport_id.clone();
    // Two consumers of the same producer on one subscriber transport share its sequence.
    for (id, ssrc) in [("a", 0x2000), ("b", 0x2100)] {
        let mut opts = vp8_consumer(id, "prod", ssrc, ssrc + 1, false);
        opts.rtp_parameters.header_extensions = vec![ext(TWCC, 7), ext(ABS_SEND_TIME, 8)];
        sim.request(&tid, RequestBody::TransportConsume(opts))
            .unwrap();
        sim.peers[s].rtx_of.insert(ssrc + 1, ssrc);
    }
    sim.peers[s].down.loss = 0.1;
    sim.peers[s].down.latency = Duration::from_millis(10);
    for n in 0..200u32 {
        let pkt = vp8_packet(PUB_SSRC, 500 + n as u16, n * 900, n, n == 0);
        // The publisher's own sequence (stride 3) and a fixed send time.
        let twcc = (1000 + 3 * n as u16).to_be_bytes();
        let pkt = with_extensions(&pkt, &[(3, &twcc), (2, &[0xab, 0xcd, 0xef])]);
        sim.peer_send_rtp(p, pkt);
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(Duration::from_millis(500));
    // Received packets (RTX unwrapped, duplicates dropped) keep the elements they came with.
    let mut seqs = Vec::new();
    for pkt in &sim.peers[s].rx_rtp {
        let h = ferrosfu_worker_core::RtpHeader::parse(pkt).unwrap();
        let ext: Vec<(u8, Vec<u8>)> = h.extensions(pkt).map(|(i, v)| (i, v.to_vec())).collect();
        let ids: Vec<u8> = ext.iter().map(|e| e.0).collect();
        assert_eq!(ids, vec![7, 8], "only our own elements: {ext:?}");
        seqs.push(u16::from_be_bytes([ext[0].1[0], ext[0].1[1]]));
        assert_ne!(
            ext[1].1,
            vec![0xab, 0xcd, 0xef],
            "our send time, not the publisher's"
        );
    }
    assert!(seqs.len() > 400 * 85 / 100, "{}", seqs.len());
    let mut rtx = 0;
    for id in ["a", "b"] {
        match sim.request(id, RequestBody::ConsumerGetStats).unwrap() {
            ResponseBody::RtpStreamStats(st) => rtx += st[0].retransmitted_packet_count as usize,
            other => panic!("{other:?}"),
        }
    }
    assert!(rtx > 0, "retransmissions happened");
    // Received: one transport sequence (1, 2, …) over both consumers, their retransmissions
    // and the prober's padding (the loss holds the allocation back, so it probes), without
    // duplicates: every number at most the count of packets the transport sent.
    let sent = match sim.request(&tid, RequestBody::TransportGetStats).unwrap() {
        ResponseBody::TransportStats(st) => (st.rtp_packets_sent + st.rtx_packets_sent) as usize,
        other => panic!("{other:?}"),
    };
    assert!(sent >= 400 + rtx, "{sent} sent");
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seqs.len(), "no sequence number used twice");
    assert!(
        sorted.iter().all(|&q| (1..=sent as u16).contains(&q)),
        "{sent} sent: {sorted:?}"
    );
}

/// Publishers get transport-wide congestion control feedback (every ~100 ms): each transport-wide
/// sequence number reported once, as received with its arrival time or as lost.
#[test]
fn publishers_get_transport_wide_feedback() {
    use rtc_rtcp::transport_feedbacks::transport_layer_cc::{PacketStatusChunk, SymbolTypeTcc};

    let mut sim = Sim::new(23);
    let p = sim.add_peer(ferrosfu_worker_core::SrtpProfile::AeadAes128Gcm);
    let mut prod = vp8_producer("prod", PUB_SSRC, 0);
    prod.rtp_parameters.header_extensions = vec![ext(TWCC, 3)];
    // No NACK: a retransmission here would repeat its original's transport-wide number.
    prod.rtp_parameters.codecs[0].rtcp_feedback.clear();
    sim.request("transport-0", RequestBody::TransportProduce(prod))
        .unwrap();
    sim.peers[p].up.loss = 0.05;
    sim.peers[p].up.latency = Duration::from_millis(20);
    for n in 0..300u32 {
        let pkt = vp8_packet(PUB_SSRC, 500 + n as u16, n * 900, n, n == 0);
        let twcc = (65_400u16.wrapping_add(n as u16)).to_be_bytes(); // crosses the wrap
        sim.peer_send_rtp(p, with_extensions(&pkt, &[(3, &twcc)]));
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(Duration::from_millis(300));
    let feedback: Vec<_> = sim.peers[p]
        .rx_rtcp
        .iter()
        .filter_map(|r| match r {
            Rtcp::TransportCc(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    assert!(
        (25..=36).contains(&feedback.len()),
        "about one every 100 ms over 3.3 s: {}",
        feedback.len()
    );
    // (transport-wide seq, arrival µs on the feedback's clock) in report order.
    let mut reported: Vec<(u16, Option<i64>)> = Vec::new();
    for (i, f) in feedback.iter().enumerate() {
        assert_eq!(f.fb_pkt_count as usize, i);
        let mut statuses = Vec::new();
        for c in &f.packet_chunks {
            match c {
                PacketStatusChunk::RunLengthChunk(r) => statuses.extend(std::iter::repeat_n(
                    r.packet_status_symbol,
                    r.run_length as usize,
                )),
                PacketStatusChunk::StatusVectorChunk(v) => statuses.extend(&v.symbol_list),
            }
        }
        statuses.truncate(f.packet_status_count as usize);
        let mut at = i64::from(f.reference_time) * 64_000;
        let mut deltas = f.recv_deltas.iter();
        for (k, st) in statuses.into_iter().enumerate() {
            let seq = f.base_sequence_number.wrapping_add(k as u16);
            if st == SymbolTypeTcc::PacketNotReceived {
                reported.push((seq, None));
            } else {
                at += deltas.next().unwrap().delta;
                reported.push((seq, Some(at)));
            }
        }
        assert!(deltas.next().is_none());
    }
    let seqs: Vec<u16> = reported.iter().map(|r| r.0).collect();
    let want: Vec<u16> = (0..seqs.len() as u16)
        .map(|n| 65_400u16.wrapping_add(n))
        .collect();
    assert_eq!(seqs, want, "every number once, in order");
    assert!(seqs.len() >= 295, "{}", seqs.len());
    let lost = reported.iter().filter(|r| r.1.is_none()).count();
    assert!(
        (3..=30).contains(&lost),
        "lost {lost} of {}",
        reported.len()
    );
    // Sent 10 ms apart over a fixed 20 ms link: arrivals 10 ms apart (250 µs resolution).
    let received: Vec<(i64, i64)> = reported
        .iter()
        .enumerate()
        .filter_map(|(n, r)| r.1.map(|at| (n as i64, at)))
        .collect();
    for w in received.windows(2) {
        let (gap, took) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
        assert!(
            (took - gap * 10_000).abs() <= 250,
            "{gap} packets apart arrived {took} µs apart"
        );
    }
}

#[test]
fn consumer_resume_requests_a_keyframe() {
    let mut sim = Sim::new(3);
    let p = sim.add_peer(ferrosfu_worker_core::SrtpProfile::AeadAes256Gcm);
    sim.request(
        "transport-0",
        RequestBody::TransportProduce(vp8_producer("prod", PUB_SSRC, 0)),
    )
    .unwrap();
    publish(&mut sim, p, 20, 0);
    let s = sim.add_peer(ferrosfu_worker_core::SrtpProfile::AesCm128HmacSha1_32);
    sim.request(
        "transport-1",
        RequestBody::TransportConsume(vp8_consumer("c", "prod", 0x2000, 0x3000, true)),
    )
    .unwrap();
    publish(&mut sim, p, 20, 20);
    let before = sim.pli_count(p);
    assert!(
        sim.peers[s].rx_rtp.is_empty(),
        "a paused consumer forwards nothing"
    );
    sim.request("c", RequestBody::ConsumerResume).unwrap();
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        sim.pli_count(p),
        before + 1,
        "resume asked the publisher for a keyframe"
    );
    // The subscriber starts on that keyframe.
    publish(&mut sim, p, 20, 40);
    let first = &sim.peers[s].rx_rtp[0];
    let h = ferrosfu_worker_core::RtpHeader::parse(first).unwrap();
    assert_eq!(
        h.payload(first)[1] & 1,
        0,
        "first forwarded packet is a keyframe"
    );
}

#[test]
fn a_pli_storm_is_throttled_by_key_frame_request_delay() {
    let mut sim = Sim::new(5);
    let (p, subs) = setup(&mut sim, 1, 1000);
    publish(&mut sim, p, 10, 0);
    sim.run_for(Duration::from_millis(1100));
    let before = sim.pli_count(p);
    // 50 PLIs from the subscriber within 500 ms.
    for _ in 0..50 {
        sim.peer_send_rtcp(subs[0], &[Rtcp::Pli { media_ssrc: 0x2000 }]);
        sim.run_for(Duration::from_millis(10));
    }
    let during = sim.pli_count(p) - before;
    assert_eq!(during, 1, "one request at once, the rest deferred");
    sim.run_for(Duration::from_millis(600));
    let after = sim.pli_count(p) - before;
    assert_eq!(after, 2, "exactly one deferred request when the delay ends");
}

#[test]
fn sr_rr_round_trip_yields_the_link_rtt() {
    let mut sim = Sim::new(9);
    let (p, subs) = setup(&mut sim, 1, 0);
    let s = subs[0];
    sim.peers[s].down.latency = Duration::from_millis(30);
    sim.peers[s].up.latency = Duration::from_millis(45);
    publish(&mut sim, p, 400, 0);
    sim.run_for(Duration::from_secs(3));
    let stats = match sim
        .request("cons-0", RequestBody::ConsumerGetStats)
        .unwrap()
    {
        ResponseBody::RtpStreamStats(s) => s,
        other => panic!("{other:?}"),
    };
    let rtt = stats[0].round_trip_time;
    assert!((74..=76).contains(&rtt), "rtt {rtt} ms, link 30 + 45 ms");
    // The SR maps NTP to the consumer's RTP timeline: RTP time advances at 90 kHz with NTP.
    let srs: Vec<(u64, u32)> = sim.peers[s]
        .rx_rtcp
        .iter()
        .filter_map(|r| match r {
            Rtcp::SenderReport { ntp, rtp, ssrc, .. } if *ssrc == 0x2000 => Some((*ntp, *rtp)),
            _ => None,
        })
        .collect();
    assert!(srs.len() >= 3, "{srs:?}");
    let (n0, r0) = srs[0];
    let (n1, r1) = srs[srs.len() - 1];
    let secs = (n1 - n0) as f64 / (1u64 << 32) as f64;
    let ticks = r1.wrapping_sub(r0) as f64;
    assert!(
        (ticks / secs - 90_000.0).abs() < 900.0,
        "{ticks} ticks in {secs} s"
    );
}

#[test]
fn consent_timeout_disconnects() {
    let mut sim = Sim::new(13);
    let p = sim.add_peer(ferrosfu_worker_core::SrtpProfile::AeadAes128Gcm);
    sim.run_for(Duration::from_secs(5));
    sim.notifications.clear();
    let now = sim.now;
    sim.peers[p].client.set_checks(false, now);
    sim.run_for(Duration::from_secs(29));
    assert!(
        !sim.notifications.iter().any(|n| matches!(
            n.event,
            Event::Media(MediaEvent::TransportIceStateChange(IceState::Disconnected))
        )),
        "consent lasts 30 s"
    );
    sim.run_for(Duration::from_secs(2));
    assert!(
        sim.notifications
            .iter()
            .any(|n| n.handler_id.as_str() == "transport-0"
                && n.event
                    == Event::Media(MediaEvent::TransportIceStateChange(IceState::Disconnected)))
    );
}

#[test]
fn wrong_srtp_tag_and_replayed_packets_are_dropped_and_counted() {
    let mut sim = Sim::new(17);
    let (p, subs) = setup(&mut sim, 1, 0);
    sim.peers[p].nack_enabled = false;
    publish(&mut sim, p, 5, 0);
    let plain = vp8_packet(PUB_SSRC, 5, 4500, 5, false);
    let wire = sim.protect_rtp(p, &plain);
    let mut bad = wire.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    sim.peer_send(p, bad);
    sim.peer_send(p, wire.clone());
    sim.peer_send(p, wire);
    sim.run_for(Duration::from_millis(50));
    let stats = match sim
        .request("transport-0", RequestBody::TransportGetStats)
        .unwrap()
    {
        ResponseBody::TransportStats(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(stats.srtp_auth_failures, 1);
    assert_eq!(stats.srtp_replays, 1);
    assert_eq!(
        sim.peers[subs[0]].rx_rtp.len(),
        6,
        "only the good packet was forwarded"
    );
}

#[test]
fn producer_close_closes_its_consumers_with_a_notification() {
    let mut sim = Sim::new(19);
    let (_p, _subs) = setup(&mut sim, 2, 0);
    sim.notifications.clear();
    sim.request("prod", RequestBody::ProducerClose).unwrap();
    let closed: Vec<_> = sim
        .notifications
        .iter()
        .filter(|n| n.event == Event::Media(MediaEvent::ConsumerProducerClose))
        .map(|n| n.handler_id.as_str().to_owned())
        .collect();
    assert_eq!(closed.len(), 2, "{closed:?}");
    let err = sim
        .request("cons-0", RequestBody::ConsumerDump)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
}

#[test]
fn router_close_cascades_and_releases_sockets() {
    let mut sim = Sim::new(23);
    setup(&mut sim, 1, 0);
    sim.request("router-1", RequestBody::RouterClose).unwrap();
    for id in ["transport-0", "prod", "cons-0"] {
        let handler_body = match id {
            "prod" => RequestBody::ProducerDump,
            "cons-0" => RequestBody::ConsumerDump,
            _ => RequestBody::TransportDump,
        };
        assert!(sim.request(id, handler_body).is_err(), "{id} is gone");
    }
}
