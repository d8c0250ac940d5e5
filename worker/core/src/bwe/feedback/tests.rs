#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::HashMap;

use rtc_rtcp::transport_feedbacks::transport_layer_cc::{
    RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk, SymbolSizeTypeTcc,
};
use rtc_shared::marshal::{Marshal, Unmarshal};

use super::*;
use crate::bwe::history::HISTORY_LEN;
use crate::proto::twcc::{FEEDBACK_INTERVAL, TwccFeedback};

const MS: Duration = Duration::from_millis(1);
const TICK: Duration = Duration::from_micros(250);

/// Through the wire and back, as the core receives it.
fn wire(cc: &TransportLayerCc) -> TransportLayerCc {
    let b = cc.marshal().unwrap();
    TransportLayerCc::unmarshal(&mut &b[..]).unwrap()
}

/// A subscriber link: `n` packets from wire number `first` sent 1 ms apart (sizes and probe
/// clusters told apart), arriving 20 ms later with some jitter (multiples of 250 µs, what
/// the feedback can express), `lost` never arriving.
struct Link {
    t0: Instant,
    history: SendHistory,
    receiver: TwccFeedback,
    /// Unwrapped sequence → arrival at the receiver.
    arrivals: HashMap<u64, Instant>,
    sent: Vec<u64>,
}

impl Link {
    fn new(first: u16, n: u16, lost: &[u16]) -> Self {
        let t0 = crate::test_epoch();
        let mut l = Link {
            t0,
            history: SendHistory::default(),
            receiver: TwccFeedback::default(),
            arrivals: HashMap::new(),
            sent: Vec::new(),
        };
        for i in 0..n {
            let wire_seq = first.wrapping_add(i);
            let at = t0 + MS * u32::from(i);
            let probe = (i % 5 == 0).then_some(u32::from(i));
            let seq = l
                .history
                .on_sent(wire_seq, at, 1000 + usize::from(i), probe);
            l.sent.push(seq);
            if lost.contains(&i) {
                continue;
            }
            let arrival = at + 20 * MS + TICK * u32::from(i % 3);
            l.arrivals.insert(seq, arrival);
            l.receiver.on_packet(wire_seq, 1, arrival);
        }
        l
    }

    fn poll(&mut self, at: Duration) -> Vec<TransportLayerCc> {
        self.receiver
            .poll_feedback(self.t0 + at, 9)
            .iter()
            .map(wire)
            .collect()
    }

    /// What the results must be, the arrival of packet `anchor` taken as its send time.
    fn check(&self, results: &[PacketResult], anchor: u64) {
        let a_sent = self.history.get(anchor).unwrap().sent_at;
        let a_arr = self.arrivals[&anchor];
        for r in results {
            let p = self.history.get(r.seq).unwrap();
            assert_eq!(
                (r.sent_at, r.size, r.probe_cluster),
                (p.sent_at, p.size, p.probe_cluster)
            );
            let want = self.arrivals.get(&r.seq).map(|&at| {
                if at >= a_arr {
                    a_sent + (at - a_arr)
                } else {
                    a_sent - (a_arr - at)
                }
            });
            assert_eq!(r.arrival, want, "seq {}", r.seq);
        }
    }
}

#[test]
fn arrivals_and_losses_reconstructed_exactly_across_the_wrap() {
    let mut l = Link::new(65500, 100, &[10, 11, 50]);
    let fbs = l.poll(Duration::from_millis(300));
    assert!(!fbs.is_empty());
    let mut a = FeedbackAdapter::default();
    let mut results = Vec::new();
    for fb in &fbs {
        results.extend(a.on_feedback(fb, &mut l.history));
    }
    let seqs: Vec<u64> = results.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs, l.sent,
        "every packet once, in order, unwrapped past 65535"
    );
    assert_eq!(seqs[99], 65500 + 99);
    let lost: Vec<u64> = results
        .iter()
        .filter(|r| r.arrival.is_none())
        .map(|r| r.seq)
        .collect();
    assert_eq!(lost, [65510, 65511, 65550]);
    l.check(&results, 65500);
    assert_eq!(a.stats.malformed, 0);
    assert_eq!(a.stats.unknown, 0);
    // The same feedback again says nothing new.
    for fb in &fbs {
        assert!(a.on_feedback(fb, &mut l.history).is_empty());
    }
    assert_eq!(a.stats.duplicates, fbs.len() as u64);
}

#[test]
fn reordered_and_lost_feedback() {
    let mut l = Link::new(100, 40, &[]);
    // Three feedback packets, 10 ms of packets each; the receiver only reports what arrived
    // by then, so split the arrivals into batches.
    let mut r = TwccFeedback::default();
    let mut fbs = Vec::new();
    let mut sorted: Vec<(u64, Instant)> = l.arrivals.iter().map(|(&s, &a)| (s, a)).collect();
    sorted.sort();
    for batch in sorted.chunks(13) {
        for &(s, at) in batch {
            r.on_packet(s as u16, 1, at);
        }
        let last = batch.last().unwrap().1;
        fbs.extend(
            r.poll_feedback(last + FEEDBACK_INTERVAL, 9)
                .iter()
                .map(wire),
        );
    }
    assert_eq!(fbs.len(), 4, "13 + 13 + 13 + 1 packets");
    let mut a = FeedbackAdapter::default();
    // The second arrives first, then the fourth (the third is lost), then the first.
    let second = a.on_feedback(&fbs[1], &mut l.history);
    let anchor = second[0].seq;
    let fourth = a.on_feedback(&fbs[3], &mut l.history);
    let first = a.on_feedback(&fbs[0], &mut l.history);
    assert_eq!((second.len(), fourth.len(), first.len()), (13, 1, 13));
    assert_eq!((a.stats.missing, a.stats.reordered), (1, 1));
    for res in [&second, &fourth, &first] {
        l.check(res, anchor);
        assert!(res.iter().all(|r| r.arrival.is_some()));
    }
    // The lost one's packets are reported by nobody; it arriving late still counts.
    let third = a.on_feedback(&fbs[2], &mut l.history);
    assert_eq!(third.len(), 13);
    l.check(&third, anchor);
}

#[test]
fn a_packet_reported_lost_then_received_is_reported_again_once() {
    // Packet 5 is late: the receiver reports it lost, then again with what followed it.
    let mut l = Link::new(0, 10, &[5]);
    let mut a = FeedbackAdapter::default();
    let mut all = Vec::new();
    for fb in l.poll(Duration::from_millis(200)) {
        all.extend(a.on_feedback(&fb, &mut l.history));
    }
    assert_eq!(all.len(), 10);
    assert_eq!(all[5].arrival, None);
    let late = l.t0 + Duration::from_millis(220);
    l.receiver.on_packet(5, 1, late);
    l.arrivals.insert(5, late);
    let mut again = Vec::new();
    for fb in l.poll(Duration::from_millis(350)) {
        again.extend(a.on_feedback(&fb, &mut l.history));
    }
    let seqs: Vec<u64> = again.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [5], "6..10 were reported before");
    l.check(&again, 0);
}

/// A two-bit status vector feedback: `None` lost, `Some(µs)` the receive delta.
fn cc(base: u16, count: u8, reference: u32, statuses: &[Option<i64>]) -> TransportLayerCc {
    let symbols: Vec<SymbolTypeTcc> = statuses
        .iter()
        .map(|s| match s {
            None => SymbolTypeTcc::PacketNotReceived,
            Some(d) if (0..=63_750).contains(d) => SymbolTypeTcc::PacketReceivedSmallDelta,
            Some(_) => SymbolTypeTcc::PacketReceivedLargeDelta,
        })
        .collect();
    let packet_chunks = symbols
        .chunks(7)
        .map(|c| {
            let mut list = c.to_vec();
            list.resize(7, SymbolTypeTcc::PacketNotReceived);
            PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                symbol_size: SymbolSizeTypeTcc::TwoBit,
                symbol_list: list,
            })
        })
        .collect();
    let recv_deltas = statuses
        .iter()
        .zip(&symbols)
        .filter_map(|(s, &t)| {
            s.map(|delta| RecvDelta {
                type_tcc_packet: t,
                delta,
            })
        })
        .collect();
    wire(&TransportLayerCc {
        sender_ssrc: 9,
        media_ssrc: 1,
        base_sequence_number: base,
        packet_status_count: statuses.len() as u16,
        reference_time: reference,
        fb_pkt_count: count,
        packet_chunks,
        recv_deltas,
    })
}

fn sent(n: u16) -> (Instant, SendHistory) {
    let t0 = crate::test_epoch();
    let mut h = SendHistory::default();
    for i in 0..n {
        h.on_sent(i, t0 + MS * u32::from(i), 500, None);
    }
    (t0, h)
}

#[test]
fn reference_time_wraps() {
    let (t0, mut h) = sent(10);
    let mut a = FeedbackAdapter::default();
    let r1 = a.on_feedback(&cc(0, 0, 0xff_ffff, &[Some(0)]), &mut h);
    // 64 ms later in reference time (wrapped to 0), then 1 ms and -2 ms deltas.
    let r2 = a.on_feedback(&cc(1, 1, 0, &[Some(1000), Some(-2000)]), &mut h);
    // And a reordered older one from before the wrap.
    let r3 = a.on_feedback(&cc(3, 255, 0xff_fffe, &[Some(250)]), &mut h);
    assert_eq!(r1[0].arrival, Some(t0));
    assert_eq!(r2[0].arrival, Some(t0 + 65 * MS));
    assert_eq!(r2[1].arrival, Some(t0 + 63 * MS));
    assert_eq!(r3[0].arrival, Some(t0 - 64 * MS + TICK));
    assert_eq!(a.stats.reordered, 1);
    assert_eq!(a.stats.malformed, 0);
}

#[test]
fn a_65535_status_lie_is_capped() {
    let (_, mut h) = sent(10_000);
    let mut a = FeedbackAdapter::default();
    // 65 535 "not received" in 16 bytes of run-length chunks, from the oldest sent.
    let run = |n| {
        PacketStatusChunk::RunLengthChunk(RunLengthChunk {
            type_tcc: StatusChunkTypeTcc::RunLengthChunk,
            packet_status_symbol: SymbolTypeTcc::PacketNotReceived,
            run_length: n,
        })
    };
    let mut chunks: Vec<_> = (0..7).map(|_| run(8191)).collect();
    chunks.push(run(65535 - 7 * 8191));
    let lie = TransportLayerCc {
        base_sequence_number: 0,
        packet_status_count: 65535,
        packet_chunks: chunks,
        ..Default::default()
    };
    let results = a.on_feedback(&lie, &mut h);
    assert_eq!(a.stats.capped, 1);
    // Statuses 0..4096; the history holds 1808..10000 of them.
    assert_eq!(results.len(), MAX_STATUSES - (10_000 - HISTORY_LEN));
    assert!(results.iter().all(|r| r.arrival.is_none()));
    assert_eq!(a.stats.unknown, (10_000 - HISTORY_LEN) as u64);
    assert_eq!(a.stats.malformed, 0);
}

#[test]
fn inconsistent_feedback_is_counted_not_trusted() {
    let (t0, mut h) = sent(20);
    let mut a = FeedbackAdapter::default();
    // Three received statuses, one delta.
    let mut bad = cc(0, 0, 10, &[Some(0), Some(250), Some(500)]);
    bad.recv_deltas.truncate(1);
    let r = a.on_feedback(&bad, &mut h);
    assert_eq!(r.len(), 1);
    assert_eq!(a.stats.malformed, 1);
    // More statuses claimed than chunks carry.
    let mut short = cc(1, 1, 10, &[Some(0)]);
    short.packet_status_count = 100;
    a.on_feedback(&short, &mut h);
    assert_eq!(a.stats.malformed, 2);
    // A reserved two-bit symbol.
    let mut reserved = cc(2, 2, 10, &[Some(0)]);
    if let PacketStatusChunk::StatusVectorChunk(v) = &mut reserved.packet_chunks[0] {
        v.symbol_list[0] = SymbolTypeTcc::PacketReceivedWithoutDelta;
    }
    assert!(a.on_feedback(&reserved, &mut h).is_empty());
    assert_eq!(a.stats.malformed, 3);
    // A delta the wire cannot carry: skipped, counted.
    let mut far = cc(3, 3, 10, &[Some(0)]);
    far.recv_deltas[0].delta = i64::MAX / 2;
    assert!(a.on_feedback(&far, &mut h).is_empty());
    assert_eq!(a.stats.malformed, 4);
    // Packets never sent (ahead of the last one) are unknown.
    let ahead = cc(25, 4, 10, &[Some(0)]);
    assert!(a.on_feedback(&ahead, &mut h).is_empty());
    assert_eq!(a.stats.unknown, 1);
    // Still sane afterwards.
    let ok = a.on_feedback(&cc(4, 5, 10, &[Some(1000)]), &mut h);
    assert_eq!(ok.len(), 1);
    assert!(ok[0].arrival.is_some_and(|at| at > t0));
}
