//! Data channels through the worker core over the simulated network: real ICE, DTLS and SCTP on
//! every peer (the core's `SctpAssociation` in the peer's role), simulated time. A peer's data
//! producer (a stream it sends on) is fanned out by the worker to other peers' data consumers
//! (streams the worker sends on), and `direct` producers/consumers meet the supervisor.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::data::reliable;
use ferrosfu_sim::{DtlsSetup, Sim};
use ferrosfu_worker_core::{PPID_BINARY, PPID_STRING, SctpEvent, SrtpProfile};

/// A room of `n` peers with SCTP; peer `i` is the DTLS server when `servers[i]`.
fn peers(seed: u64, servers: &[bool]) -> Sim {
    let mut sim = Sim::new(seed);
    sim.sctp_options = Some(SctpOptions::default());
    for &s in servers {
        sim.add_peer_with(
            SrtpProfile::AeadAes128Gcm,
            DtlsSetup {
                peer_is_server: s,
                ..DtlsSetup::default()
            },
        );
    }
    let deadline = sim.now + Duration::from_secs(10);
    while !(0..servers.len()).all(|i| sim.peer_sctp_connected(i)) {
        assert!(sim.now < deadline, "associations did not connect");
        sim.step(deadline);
    }
    // The worker announced the association up on every transport.
    let up = sim
        .notifications
        .iter()
        .filter(|n| {
            n.event == Event::Media(MediaEvent::TransportSctpStateChange(SctpState::Connected))
        })
        .count();
    assert_eq!(up, servers.len());
    sim
}

/// Runs until `done` holds (at most `limit` of simulated time); the time it took.
fn run_until(sim: &mut Sim, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> Duration {
    let start = sim.now;
    let deadline = start + limit;
    while !done(sim) {
        assert!(sim.now < deadline, "not done within {limit:?}");
        sim.step(deadline);
    }
    sim.now - start
}

fn rx(sim: &Sim, i: usize) -> &[(u16, u32, bytes::Bytes)] {
    &sim.peers[i].sctp.as_ref().unwrap().rx
}

fn buffered(sim: &mut Sim, consumer: &str) -> u32 {
    match sim
        .request(consumer, RequestBody::DataConsumerGetBufferedAmount)
        .unwrap()
    {
        ResponseBody::BufferedAmount(b) => b,
        other => panic!("{other:?}"),
    }
}

fn message(n: usize, tag: u8) -> Vec<u8> {
    (0..n).map(|k| (k as u8).wrapping_mul(31) ^ tag).collect()
}

fn notified(sim: &Sim, handler: &str, e: &MediaEvent) -> usize {
    sim.notifications
        .iter()
        .filter(|n| n.handler_id.as_str() == handler && n.event == Event::Media(e.clone()))
        .count()
}

#[test]
fn messages_of_1_b_16_kib_and_200_kib_arrive_intact_and_in_order_over_a_lossy_link_in_both_roles() {
    for (seed, servers) in [(1, [false, true]), (2, [true, false])] {
        let mut sim = peers(seed, &servers);
        sim.produce_data(0, "dp-a", "chat", reliable(1)).unwrap();
        sim.consume_data(1, "dc-b", "dp-a", reliable(0)).unwrap();
        for p in &mut sim.peers {
            p.up.data_loss = 0.05;
            p.down.data_loss = 0.05;
            p.up.latency = Duration::from_millis(20);
            p.down.latency = Duration::from_millis(20);
        }
        let sent: Vec<(u32, Vec<u8>)> = [1, 16 * 1024, 200 * 1024, 1, 16 * 1024, 200 * 1024]
            .iter()
            .enumerate()
            .map(|(k, &n)| {
                let ppid = if k % 2 == 0 { PPID_BINARY } else { PPID_STRING };
                (ppid, message(n, k as u8))
            })
            .collect();
        // As fast as back-pressure allows: A's own send buffer, and (as an app sending files
        // does, with acknowledgements from its receivers) no more unacknowledged bytes end to
        // end than the worker's buffer toward B holds: a full buffer drops a message.
        let limit = SctpOptions::default().send_buffer_size as usize;
        let mut sent_bytes = 0;
        for (ppid, m) in &sent {
            let deadline = sim.now + Duration::from_secs(30);
            let received = |s: &Sim| rx(s, 1).iter().map(|x| x.2.len()).sum::<usize>();
            while sent_bytes - received(&sim) + m.len() > limit {
                assert!(sim.now < deadline, "B never got what was sent");
                sim.step(deadline);
            }
            sent_bytes += m.len();
            while let Err(e) = sim.peer_send_data(0, 1, *ppid, m) {
                assert_eq!(e, ferrosfu_worker_core::SctpSendError::SendBufferFull);
                assert!(sim.now < deadline, "A's send buffer never drained");
                sim.step(deadline);
            }
        }
        let took = run_until(&mut sim, Duration::from_secs(30), |s| {
            rx(s, 1).len() == sent.len()
        });
        for ((stream, ppid, got), (want_ppid, want)) in rx(&sim, 1).iter().zip(&sent) {
            assert_eq!(*stream, 0, "the consumer's stream");
            assert_eq!(ppid, want_ppid);
            assert_eq!(&got[..], &want[..], "intact and in order");
        }
        eprintln!("roles {servers:?}: {} messages in {took:?}", sent.len());
        assert_eq!(
            notified(&sim, "dc-b", &MediaEvent::DataConsumerSctpSendBufferFull),
            0
        );
        let stats = |sim: &mut Sim, h: &str, body| match sim.request(h, body).unwrap() {
            ResponseBody::DataStats(s) => s,
            other => panic!("{other:?}"),
        };
        let total: u64 = sent.iter().map(|(_, m)| m.len() as u64).sum();
        let p = stats(&mut sim, "dp-a", RequestBody::DataProducerGetStats);
        assert_eq!((p.messages, p.bytes), (6, total));
        let c = stats(&mut sim, "dc-b", RequestBody::DataConsumerGetStats);
        assert_eq!((c.messages, c.bytes), (6, total));
        assert_eq!(c.label, "chat");
    }
}

#[test]
fn unordered_without_retransmissions_drops_rather_than_stalls() {
    let mut sim = peers(3, &[false, false]);
    sim.produce_data(0, "dp-a", "cursor", reliable(1)).unwrap();
    let lossy = SctpStreamParameters {
        stream_id: 0,
        ordered: false,
        max_packet_life_time: None,
        max_retransmits: Some(0),
    };
    sim.consume_data(1, "dc-b", "dp-a", lossy).unwrap();
    sim.peers[1].down.data_loss = 0.2;
    sim.peers[1].down.latency = Duration::from_millis(30);
    let n = 200;
    for k in 0..n {
        sim.peer_send_data(0, 1, PPID_BINARY, &(k as u32).to_be_bytes())
            .unwrap();
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_for(Duration::from_millis(500));
    let got: Vec<u32> = rx(&sim, 1)
        .iter()
        .map(|(_, _, b)| u32::from_be_bytes(b[..4].try_into().unwrap()))
        .collect();
    let lost = n - got.len();
    assert!(
        lost > 10 && lost < 80,
        "about 20 % lost, not retransmitted: {lost}"
    );
    // Later messages were not held behind lost ones: the last ones arrived.
    assert!(got.contains(&(n as u32 - 1)), "the last message arrived");
    let mut sorted = got.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "no duplicates");
}

#[test]
fn back_pressure_stops_at_the_send_buffer_and_buffered_amount_low_is_notified() {
    let mut sim = peers(4, &[false, false]);
    sim.produce_data(0, "dp-a", "file", reliable(1)).unwrap();
    sim.consume_data(1, "dc-b", "dp-a", reliable(0)).unwrap();
    sim.request(
        "dc-b",
        RequestBody::DataConsumerSetBufferedAmountLowThreshold(64 * 1024),
    )
    .unwrap();
    // B's downlink: 1 Mbit/s. A floods 16 KiB messages at ~8 Mbit/s for 2 s.
    sim.peers[1].down = ferrosfu_sim::Link {
        latency: Duration::from_millis(20),
        ..ferrosfu_sim::Link::bottleneck(1_000_000)
    };
    let limit = SctpOptions::default().send_buffer_size;
    let mut max_buffered = 0;
    for k in 0..120u32 {
        sim.peer_send_data(0, 1, PPID_BINARY, &message(16 * 1024, k as u8))
            .ok();
        sim.run_for(Duration::from_millis(16));
        let b = buffered(&mut sim, "dc-b");
        max_buffered = max_buffered.max(b);
        let dump = match sim
            .request("transport-1", RequestBody::TransportDump)
            .unwrap()
        {
            ResponseBody::WebRtcTransportDump(d) => d,
            other => panic!("{other:?}"),
        };
        assert!(dump.sctp_parameters.unwrap().sctp_buffered_amount <= limit);
    }
    assert!(max_buffered <= limit, "{max_buffered} > {limit}");
    assert!(
        max_buffered > limit / 2,
        "the buffer filled: {max_buffered}"
    );
    let full = notified(&sim, "dc-b", &MediaEvent::DataConsumerSctpSendBufferFull);
    assert!(full > 0, "sctpsendbufferfull notified");
    // Drained: bufferedamountlow at the threshold.
    run_until(&mut sim, Duration::from_secs(10), |s| {
        s.notifications.iter().any(|n| {
            n.handler_id.as_str() == "dc-b"
                && matches!(
                    n.event,
                    Event::Media(MediaEvent::DataConsumerBufferedAmountLow(b)) if b <= 64 * 1024
                )
        })
    });
    // What B got is in order and each message whole (dropped ones are missing, not cut).
    let got = rx(&sim, 1);
    assert!(!got.is_empty());
    assert!(got.iter().all(|(_, _, m)| m.len() == 16 * 1024));
}

#[test]
fn direct_producers_and_consumers_meet_the_supervisor_and_subchannels_filter() {
    let mut sim = peers(5, &[false, false]);
    let router = sim.router.clone();
    sim.request(
        router.as_str(),
        RequestBody::RouterCreateDirectTransport(DirectTransportOptions {
            transport_id: TransportId::new("direct"),
            max_message_size: 4096,
        }),
    )
    .unwrap();
    // Server → peers: a direct producer, B's consumer subscribed to subchannel 7.
    sim.request(
        "direct",
        RequestBody::TransportProduceData(ProduceDataOptions {
            data_producer_id: DataProducerId::new("bot"),
            data_type: DataType::Direct,
            sctp_stream_parameters: None,
            label: "bot".into(),
            protocol: String::new(),
            paused: false,
        }),
    )
    .unwrap();
    sim.consume_data(1, "dc-bot-b", "bot", reliable(3)).unwrap();
    sim.request(
        "dc-bot-b",
        RequestBody::DataConsumerSetSubchannels(vec![7, 7, 2]),
    )
    .map(|r| assert_eq!(r, ResponseBody::Subchannels(vec![2, 7])))
    .unwrap();
    let send = |sim: &mut Sim, text: &str, subchannels: Option<Vec<u16>>| {
        sim.request(
            "bot",
            RequestBody::DataProducerSend(DataSend {
                ppid: PPID_STRING,
                data: text.as_bytes().to_vec(),
                subchannels,
                required_subchannel: None,
            }),
        )
    };
    send(&mut sim, "to everyone", None).unwrap();
    send(&mut sim, "to 7", Some(vec![7])).unwrap();
    send(&mut sim, "to 9", Some(vec![9])).unwrap();
    let too_big = send(&mut sim, &"x".repeat(4097), None).unwrap_err();
    assert_eq!(too_big.kind, ErrorKind::InvalidArgument, "{too_big}");
    run_until(&mut sim, Duration::from_secs(2), |s| rx(s, 1).len() == 2);
    sim.run_for(Duration::from_millis(300));
    let texts: Vec<&[u8]> = rx(&sim, 1).iter().map(|(_, _, b)| &b[..]).collect();
    assert_eq!(
        texts,
        [&b"to everyone"[..], b"to 7"],
        "subchannel 9 filtered"
    );
    // Peers → server: a direct consumer of A's producer gets A's messages as notifications.
    sim.produce_data(0, "dp-a", "chat", reliable(1)).unwrap();
    sim.request(
        "direct",
        RequestBody::TransportConsumeData(ConsumeDataOptions {
            data_consumer_id: DataConsumerId::new("chat-log"),
            data_producer_id: DataProducerId::new("dp-a"),
            data_type: DataType::Direct,
            sctp_stream_parameters: None,
            label: "chat".into(),
            protocol: String::new(),
            paused: false,
            subchannels: None,
        }),
    )
    .unwrap();
    sim.peer_send_data(0, 1, PPID_STRING, "héllo".as_bytes())
        .unwrap();
    let want = MediaEvent::DataConsumerMessage {
        ppid: PPID_STRING,
        data: "héllo".as_bytes().to_vec(),
    };
    run_until(&mut sim, Duration::from_secs(2), |s| {
        notified(s, "chat-log", &want) == 1
    });
}

#[test]
fn closing_a_producer_or_resetting_a_stream_closes_what_depends_on_it() {
    let mut sim = peers(6, &[false, true]);
    sim.produce_data(0, "dp-a", "chat", reliable(1)).unwrap();
    sim.consume_data(1, "dc-b", "dp-a", reliable(0)).unwrap();
    // (rtc-sctp reports the reset of a stream it has seen data on.)
    sim.peer_send_data(0, 1, PPID_STRING, b"first").unwrap();
    run_until(&mut sim, Duration::from_secs(2), |s| rx(s, 1).len() == 1);
    sim.request("dp-a", RequestBody::DataProducerClose).unwrap();
    assert_eq!(
        notified(&sim, "dc-b", &MediaEvent::DataConsumerDataProducerClose),
        1
    );
    assert!(sim.request("dc-b", RequestBody::DataConsumerDump).is_err());
    // B's stream 0 was reset by the worker: B's association reports it closed.
    run_until(&mut sim, Duration::from_secs(3), |s| {
        s.peers[1]
            .sctp
            .as_ref()
            .unwrap()
            .events
            .iter()
            .any(|e| *e == SctpEvent::StreamClosed { stream_id: 0 })
    });
    // The ids are free again; the peer resetting its producer's stream closes the producer.
    sim.produce_data(0, "dp-a2", "chat", reliable(1)).unwrap();
    sim.consume_data(1, "dc-b2", "dp-a2", reliable(0)).unwrap();
    sim.peer_send_data(0, 1, PPID_STRING, b"again").unwrap();
    run_until(&mut sim, Duration::from_secs(2), |s| {
        rx(s, 1).iter().any(|(_, _, b)| &b[..] == b"again")
    });
    let now = sim.now;
    sim.peers[0]
        .sctp
        .as_mut()
        .unwrap()
        .assoc
        .as_mut()
        .unwrap()
        .close_stream(1, now);
    run_until(&mut sim, Duration::from_secs(3), |s| {
        notified(s, "dp-a2", &MediaEvent::DataProducerTransportClose) == 1
    });
    assert_eq!(
        notified(&sim, "dc-b2", &MediaEvent::DataConsumerDataProducerClose),
        1
    );
}

#[test]
fn bad_requests_and_unknown_streams_are_refused_or_dropped_and_the_association_survives() {
    let mut sim = peers(7, &[false, false]);
    let os = SctpOptions::default().num_streams.os;
    let refused = [
        sim.produce_data(0, "dp-x", "chat", reliable(os)),
        sim.consume_data(1, "dc-x", "nobody", reliable(0)),
    ];
    for r in refused {
        assert_eq!(r.unwrap_err().kind, ErrorKind::InvalidArgument);
    }
    sim.produce_data(0, "dp-a", "chat", reliable(1)).unwrap();
    // Stream 1 is taken on A's transport, either way.
    assert!(sim.consume_data(0, "dc-a", "dp-a", reliable(1)).is_err());
    assert!(
        sim.produce_data(0, "dp-a", "chat", reliable(2)).is_err(),
        "duplicate id"
    );
    let both = SctpStreamParameters {
        max_packet_life_time: Some(100),
        max_retransmits: Some(1),
        ..reliable(5)
    };
    assert!(sim.produce_data(0, "dp-y", "chat", both).is_err());
    assert!(
        sim.produce_data(0, "dp-z", &"l".repeat(2000), reliable(6))
            .is_err(),
        "label too long"
    );
    // A sends on a stream the worker has no producer for: dropped; then a real message.
    sim.peer_open_stream(0, &reliable(9));
    sim.peer_send_data(0, 9, PPID_STRING, b"nobody listens")
        .unwrap();
    sim.consume_data(1, "dc-b", "dp-a", reliable(0)).unwrap();
    sim.peer_send_data(0, 1, PPID_STRING, b"ok").unwrap();
    run_until(&mut sim, Duration::from_secs(2), |s| rx(s, 1).len() == 1);
    assert_eq!(&rx(&sim, 1)[0].2[..], b"ok");
    // A transport without SCTP takes no sctp data producer.
    sim.sctp_options = None;
    sim.add_peer(SrtpProfile::AeadAes128Gcm);
    let tid = sim.peers[2].transport_id.clone();
    let r = sim.request(
        &tid,
        RequestBody::TransportProduceData(ProduceDataOptions {
            data_producer_id: DataProducerId::new("dp-c"),
            data_type: DataType::Sctp,
            sctp_stream_parameters: Some(reliable(1)),
            label: "chat".into(),
            protocol: String::new(),
            paused: false,
        }),
    );
    assert!(r.is_err());
}
