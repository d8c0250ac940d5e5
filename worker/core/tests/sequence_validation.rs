//! RFC 3550 A.1 on what publishers send, over the simulated network: one stray sequence number
//! costs the real stream at most two packets, a restarted publisher resyncs within two packets
//! while its subscribers see one continuous stream, and reordering is still forwarded.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::*;
use ferrosfu_worker_core::RtpHeader;

fn producer_stats(sim: &mut Sim) -> RtpStreamStats {
    match sim.request("prod", RequestBody::ProducerGetStats).unwrap() {
        ResponseBody::RtpStreamStats(mut s) => s.remove(0),
        other => panic!("{other:?}"),
    }
}

fn media_counters(sim: &mut Sim) -> MediaCounters {
    match sim
        .request("", RequestBody::WorkerGetMediaCounters)
        .unwrap()
    {
        ResponseBody::MediaCounters(c) => *c,
        other => panic!("{other:?}"),
    }
}

/// The media packets (not RTX) subscriber `s` received, in arrival order: (seq, ts, payload).
fn received(sim: &Sim, s: usize) -> Vec<(u16, u32, Vec<u8>)> {
    let media_ssrc = 0x2000 + (s as u32 - 1);
    sim.peers[s]
        .rx_raw
        .iter()
        .map(|p| (RtpHeader::parse(p).unwrap(), p))
        .filter(|(h, _)| h.ssrc.0 == media_ssrc)
        .map(|(h, p)| (h.seq, h.timestamp, h.payload(p).to_vec()))
        .collect()
}

/// Every output sequence number follows the one before it.
fn assert_continuous(rx: &[(u16, u32, Vec<u8>)]) {
    for w in rx.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1), "output sequence broke");
    }
}

#[test]
fn a_stray_packet_far_ahead_or_behind_costs_the_stream_at_most_two_packets() {
    for (i, jump) in [3000i32, 32767, -3000].into_iter().enumerate() {
        let mut sim = Sim::new(20 + i as u64);
        let (p, subs) = setup(&mut sim, 2, 0);
        let mut sent = publish_from(&mut sim, p, 100, (1000, 0, 0));
        // From the publisher itself (authenticated: a buggy encoder, or a comedia source).
        let stray_seq = (1099 + jump) as u16;
        let stray = vp8_packet(PUB_SSRC, stray_seq, 90_000, 9999, false);
        let stray_payload = RtpHeader::parse(&stray).unwrap().payload(&stray).to_vec();
        sim.peer_send_rtp(p, stray);
        sent.extend(publish_from(&mut sim, p, 100, (1100, 90_000, 100)));
        sim.run_for(Duration::from_millis(300));
        for &s in &subs {
            let got = delivered(&sim, s, &sent);
            assert!(got + 2 >= sent.len(), "jump {jump}: {got}/{}", sent.len());
            let rx = received(&sim, s);
            assert!(
                rx.iter().all(|r| r.2 != stray_payload),
                "jump {jump}: forwarded"
            );
            assert_continuous(&rx);
        }
        let st = producer_stats(&mut sim);
        assert_eq!(
            (st.bad_sequence_dropped, st.resync_count),
            (1, 0),
            "jump {jump}"
        );
        let c = media_counters(&mut sim);
        assert_eq!((c.rtp_bad_sequence, c.rtp_resyncs), (1, 0), "jump {jump}");
    }
}

/// One publisher restart at `restart_seq` after 100 packets from 1000; returns the packets sent
/// after the restart and checks what every subscriber received is one continuous stream.
fn restart(sim: &mut Sim, restart_seq: u16) -> (Vec<usize>, Vec<Vec<u8>>) {
    let (p, subs) = setup(sim, 2, 0);
    let before = publish_from(sim, p, 100, (1000, 0, 0));
    // The encoder restarts: new sequence and timestamp spaces, a keyframe first.
    let after = publish_from(sim, p, 100, (restart_seq, 3_000_000_000, 100));
    sim.run_for(Duration::from_millis(300));
    for &s in &subs {
        assert_eq!(delivered(sim, s, &before), before.len());
        let rx = received(sim, s);
        assert_continuous(&rx);
        // The output timeline goes on by the time between the packets (10 ms = 900 ticks at
        // 90 kHz) or a little more, not by the publisher's jump.
        let k = rx.iter().position(|r| after.contains(&r.2)).unwrap();
        let step = rx[k].1.wrapping_sub(rx[k - 1].1);
        assert!((1..=5 * 900).contains(&step), "timestamp step {step}");
        for w in rx[k..].windows(2) {
            assert_eq!(w[1].1.wrapping_sub(w[0].1), 900);
        }
    }
    (subs, after)
}

#[test]
fn a_restarted_publisher_resyncs_within_two_packets_and_subscribers_see_one_stream() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    // Random new starts, and two edge cases: far below, and just past the dropout limit.
    let mut starts: Vec<u16> = (0..6).map(|_| rng.random()).collect();
    starts.extend([7, 1099 + 3000]);
    // Numbers the stream received lately are the case below.
    starts.retain(|s| s.wrapping_sub(1000) >= 100 + 2048);
    assert!(starts.len() >= 7, "{starts:?}");
    for (i, restart_seq) in starts.into_iter().enumerate() {
        let mut sim = Sim::new(40 + i as u64);
        let (subs, after) = restart(&mut sim, restart_seq);
        for &s in &subs {
            let got = delivered(&sim, s, &after);
            assert_eq!(got, after.len(), "restart at {restart_seq}: nothing lost");
        }
        let st = producer_stats(&mut sim);
        assert_eq!((st.resync_count, st.bad_sequence_dropped), (1, 0));
        assert_eq!(st.packet_count, 200, "restart at {restart_seq}");
        assert_eq!(st.packets_lost, 0, "a restart is not loss");
        assert_eq!(media_counters(&mut sim).rtp_resyncs, 1);
    }
}

/// A restart onto numbers received lately (≈ 3 % of random restarts): SRTP replay protection
/// refuses the first packet (a replay for all it can tell), the second confirms the restart
/// there, and the stream's own tracker confirms it on the third by the foreign timestamps.
/// The first packet (the start of the keyframe) is lost: video resumes at the next keyframe,
/// asked for at once.
#[test]
fn a_restart_onto_numbers_just_received_resyncs_on_its_third_packet() {
    let mut sim = Sim::new(50);
    let (subs, after) = restart(&mut sim, 1060);
    for &s in &subs {
        let got = delivered(&sim, s, &after);
        assert_eq!(got, after.len() - 3, "from the keyframe the PLI asked for");
    }
    let st = producer_stats(&mut sim);
    assert_eq!((st.resync_count, st.packet_count), (1, 199));
    let t = match sim.request("transport-0", RequestBody::TransportGetStats) {
        Ok(ResponseBody::TransportStats(t)) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(t.srtp_replays, 1);
}

#[test]
fn reordering_within_the_misorder_window_is_forwarded_once() {
    let mut sim = Sim::new(60);
    let (p, subs) = setup(&mut sim, 1, 0);
    let mut order: Vec<u32> = (0..200).collect();
    // Neighbours swapped, and one packet 60 places late.
    for k in (10..100).step_by(7) {
        order.swap(k, k + 1);
    }
    let late = order.remove(120);
    order.insert(180, late);
    let mut sent = Vec::new();
    for &n in &order {
        let pkt = vp8_packet(PUB_SSRC, 500 + n as u16, n * 900, n, n == 0);
        sent.push(RtpHeader::parse(&pkt).unwrap().payload(&pkt).to_vec());
        sim.peer_send_rtp(p, pkt.clone());
        if n % 50 == 0 {
            // A duplicate: dropped.
            sim.peer_send_rtp(p, pkt);
        }
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(Duration::from_millis(300));
    let rx = received(&sim, subs[0]);
    let payloads: Vec<&Vec<u8>> = rx.iter().map(|r| &r.2).collect();
    assert_eq!(payloads.len(), sent.len(), "each once");
    assert!(sent.iter().all(|s| payloads.contains(&s)));
    let st = producer_stats(&mut sim);
    assert_eq!((st.bad_sequence_dropped, st.resync_count), (0, 0));
}
