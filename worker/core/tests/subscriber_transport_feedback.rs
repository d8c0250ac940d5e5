//! Transport-wide feedback from subscribers (send-side estimation, issue 13): the core reads
//! what a subscriber's feedback says of the packets it sent, honest or not, without disturbing
//! the media it forwards. Real ICE, DTLS and SRTP, simulated time.
//!
//! What the feedback yields is not observable from outside the core yet (the estimator that
//! takes it comes next): these tests hold the path to "read, never panic, media unaffected";
//! the arithmetic is unit-tested in `bwe::feedback`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::*;
use ferrosfu_worker_core::{Rtcp, RtpHeader, TwccFeedback};
use rtc_rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk,
    SymbolSizeTypeTcc, SymbolTypeTcc, TransportLayerCc,
};

const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const TWCC_ID: u8 = 7;

/// A publisher and one subscriber whose consumer writes the transport-wide sequence number.
fn setup(sim: &mut Sim) -> (usize, usize) {
    let (p, subs) = setup_with(sim, 1, 0, |o| {
        o.rtp_parameters.header_extensions = vec![RtpHeaderExtensionParameters {
            uri: TWCC.into(),
            id: TWCC_ID,
            encrypt: false,
        }];
    });
    (p, subs[0])
}

/// The transport-wide sequence number of a packet the subscriber received.
fn twcc_seq(pkt: &[u8]) -> u16 {
    let h = RtpHeader::parse(pkt).unwrap();
    let (_, v) = h.extensions(pkt).find(|e| e.0 == TWCC_ID).unwrap();
    u16::from_be_bytes([v[0], v[1]])
}

/// 65 535 statuses claimed in a few bytes: eight runs of "not received", then one received.
fn lie(base: u16, count: u8) -> TransportLayerCc {
    let mut chunks: Vec<_> = (0..8)
        .map(|_| {
            PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: SymbolTypeTcc::PacketNotReceived,
                run_length: 8191,
            })
        })
        .collect();
    let mut list = vec![SymbolTypeTcc::PacketNotReceived; 7];
    list[6] = SymbolTypeTcc::PacketReceivedSmallDelta;
    chunks.push(PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
        type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
        symbol_size: SymbolSizeTypeTcc::TwoBit,
        symbol_list: list,
    }));
    TransportLayerCc {
        media_ssrc: 0x2000,
        base_sequence_number: base,
        packet_status_count: 65535,
        reference_time: 0xff_fff0,
        fb_pkt_count: count,
        packet_chunks: chunks,
        recv_deltas: vec![RecvDelta {
            type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
            delta: 250,
        }],
        ..Default::default()
    }
}

#[test]
fn subscriber_transport_feedback_honest_or_lying_leaves_media_alone() {
    let mut sim = Sim::new(23);
    let (p, s) = setup(&mut sim);
    sim.peers[s].down.loss = 0.05;
    sim.peers[s].down.latency = Duration::from_millis(15);
    let mut receiver = TwccFeedback::default();
    let mut seen = 0;
    let mut feedbacks = 0;
    let mut sent = Vec::new();
    for n in 0..300u32 {
        let pkt = vp8_packet(PUB_SSRC, 500 + n as u16, n * 900, n, n == 0);
        let h = RtpHeader::parse(&pkt).unwrap();
        sent.push(h.payload(&pkt).to_vec());
        sim.peer_send_rtp(p, pkt);
        sim.run_for(Duration::from_millis(10));
        // What arrived in these 10 ms, reported as a browser would (arrival at 10 ms
        // granularity, which is all the simulation tells).
        let now = sim.now;
        for pkt in &sim.peers[s].rx_rtp[seen..] {
            receiver.on_packet(twcc_seq(pkt), 0x2000, now);
        }
        seen = sim.peers[s].rx_rtp.len();
        let mut items: Vec<Rtcp> = receiver
            .poll_feedback(now, 0xDEAD)
            .into_iter()
            .map(|fb| Rtcp::TransportCc(Box::new(fb)))
            .collect();
        feedbacks += items.len();
        // Now and then a lie, a repeat and a reordered old one among the honest feedback.
        if n % 50 == 25 {
            items.push(Rtcp::TransportCc(Box::new(lie(
                n as u16,
                (feedbacks % 256) as u8,
            ))));
            if let Some(Rtcp::TransportCc(first)) = items.first().cloned() {
                items.push(Rtcp::TransportCc(first));
            }
        }
        if !items.is_empty() {
            sim.peer_send_rtcp(s, &items);
        }
    }
    sim.run_for(Duration::from_millis(500));
    assert!(feedbacks >= 25, "{feedbacks} feedback packets sent");
    // Every packet still arrives (NACK repairs the loss) and the transport still answers.
    assert_eq!(delivered(&sim, s, &sent), sent.len());
    let tid = sim.peers[s].transport_id.clone();
    match sim.request(&tid, RequestBody::TransportGetStats).unwrap() {
        ResponseBody::TransportStats(st) => {
            assert!(st.rtcp_packets_received >= feedbacks as u64, "{st:?}");
            // The feedback fed the transport's send-side estimate: ~100 packets/s of ~1 kB
            // through an unlimited link, lies and repeats ignored: it holds at or above the
            // 600 kbit/s start, and lies do not blow it up.
            let est = st.available_outgoing_bitrate;
            assert!((500_000..=5_000_000).contains(&est), "estimate {est}");
            eprintln!("availableOutgoingBitrate after 3 s: {est} bit/s");
        }
        other => panic!("{other:?}"),
    }
}
