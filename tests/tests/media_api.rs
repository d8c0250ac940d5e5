//! The supervisor's typed media API against a real worker process: plain RTP forwarded through
//! PlainTransports over loopback sockets, closing cascades, and what a worker death closes.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::UdpSocket;
use std::time::Duration;

use ferrosfu::Router;
use ferrosfu::media::{CloseReason, Transport};
use ferrosfu_fbs::*;
use ferrosfu_tests::media::{self, plain_transport, spawn_worker};

/// A WebRtcTransport on loopback UDP and TCP with a 600 kbit/s initial outgoing estimate (no
/// media crosses those of these tests).
async fn webrtc(router: &Router, id: &str) -> Transport {
    Transport::create_webrtc(
        router,
        WebRtcTransportOptions {
            initial_available_outgoing_bitrate: 600_000,
            ..media::webrtc_options(id, media::UDP_AND_TCP)
        },
    )
    .await
    .unwrap()
}

fn produce_opus(id: &str, ssrc: u32) -> ProduceOptions {
    media::produce_opus(id, ssrc, "gst")
}

fn consume_opus(id: &str, producer: &str, ssrc: u32, paused: bool) -> ConsumeOptions {
    ConsumeOptions {
        paused,
        ..media::consume_opus(id, producer, ssrc, "rec")
    }
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    media::rtp_packet(media::PLAIN_OPUS_PT, seq, seq as u32 * 960, ssrc, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rtp_in_comedia_is_forwarded_rewritten_to_a_connected_plain_transport() {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();
    let ingest = plain_transport(&router, "ingest", true).await;
    let egress = plain_transport(&router, "egress", false).await;
    let ingest_port = ingest.plain().unwrap().tuple.local_port;
    assert_ne!(ingest_port, 0);

    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let dump = egress
        .connect_plain(
            Some("127.0.0.1".into()),
            Some(receiver.local_addr().unwrap().port()),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        dump.tuple.remote_port,
        receiver.local_addr().unwrap().port()
    );

    let producer = ingest.produce(produce_opus("p", 1234)).await.unwrap();
    let consumer = egress
        .consume(consume_opus("c", "p", 5678, false))
        .await
        .unwrap();
    let mut events = ingest.events();

    let payload = |seq: u16| format!("opus frame {seq}");
    for seq in 0..20u16 {
        sender
            .send_to(
                &rtp(seq, 1234, payload(seq).as_bytes()),
                ("127.0.0.1", ingest_port),
            )
            .unwrap();
        // A new stream is on probation (RFC 3550 A.1): its first packet is forwarded when the
        // second one follows it.
        let expected = if seq == 0 {
            0..0
        } else if seq == 1 {
            0..2
        } else {
            seq..seq + 1
        };
        for want in expected {
            let mut buf = [0u8; 1500];
            let n = tokio::task::block_in_place(|| receiver.recv(&mut buf)).unwrap();
            let got = &buf[..n];
            assert_eq!(got[1] & 0x7f, 100, "payload type rewritten");
            assert_eq!(&got[8..12], &5678u32.to_be_bytes(), "ssrc rewritten");
            assert_eq!(&got[12..], payload(want).as_bytes(), "payload byte-exact");
        }
    }
    // comedia learned the sender's tuple and said so.
    let ev = tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&ev, MediaEvent::PlainTransportTuple { tuple, .. } if tuple.remote_port == sender.local_addr().unwrap().port()),
        "{ev:?}"
    );
    let stats = producer.get_stats().await.unwrap();
    assert_eq!(stats[0].packet_count, 20);
    let stats = consumer.get_stats().await.unwrap();
    assert_eq!(stats[0].packet_count, 20);
    let t = ingest.get_stats().await.unwrap();
    assert_eq!(t.rtp_packets_received, 20);
}

#[tokio::test]
async fn closing_cascades_and_producer_close_closes_consumers() {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();
    let ingest = plain_transport(&router, "ingest", true).await;
    let out = webrtc(&router, "out").await;
    let d = out.webrtc().unwrap();
    assert_eq!(d.ice_candidates.len(), 2);
    assert!(d.ice_parameters.ice_lite);
    assert!(
        d.dtls_parameters
            .fingerprints
            .iter()
            .any(|f| f.algorithm == "sha-256")
    );
    assert!(
        d.ice_candidates
            .iter()
            .any(|c| c.protocol == TransportProtocol::Tcp
                && c.tcp_type.as_deref() == Some("passive"))
    );

    let p = ingest.produce(produce_opus("p", 1)).await.unwrap();
    let c1 = out
        .consume(consume_opus("c1", "p", 10, true))
        .await
        .unwrap();
    assert!(c1.paused());
    p.close().await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(2), c1.closed())
            .await
            .unwrap(),
        CloseReason::ProducerClosed
    );

    let p2 = ingest.produce(produce_opus("p2", 2)).await.unwrap();
    let c2 = out
        .consume(consume_opus("c2", "p2", 20, false))
        .await
        .unwrap();
    router.close().await.unwrap();
    for reason in [
        ingest.closed().await,
        out.closed().await,
        p2.closed().await,
        c2.closed().await,
    ] {
        assert_eq!(reason, CloseReason::ParentClosed);
    }
    assert!(out.get_stats().await.is_err());
}

#[tokio::test]
async fn a_worker_death_closes_everything_on_it() {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();
    let t = webrtc(&router, "t").await;
    let ingest = plain_transport(&router, "in", true).await;
    let p = ingest.produce(produce_opus("p", 1)).await.unwrap();
    let c = t.consume(consume_opus("c", "p", 2, false)).await.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(w.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for reason in [t.closed().await, p.closed().await, c.closed().await] {
        assert!(matches!(reason, CloseReason::WorkerDied(_)), "{reason:?}");
    }
}

#[tokio::test]
async fn bad_parameters_are_invalid_arguments() {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();
    let t = plain_transport(&router, "t", true).await;
    let mut bad = produce_opus("p", 1);
    bad.rtp_parameters.encodings.clear();
    assert!(t.produce(bad).await.unwrap_err().is_invalid_argument());
    let err = t
        .consume(consume_opus("c", "nope", 1, false))
        .await
        .unwrap_err();
    assert!(err.is_invalid_argument(), "{err}");
    let egress = plain_transport(&router, "egress", false).await;
    let err = egress
        .connect_plain(Some("not an ip".into()), Some(1), None, None)
        .await
        .unwrap_err();
    assert!(err.is_invalid_argument(), "{err}");
    let err = egress
        .connect_webrtc(DtlsParameters {
            role: DtlsRole::Client,
            fingerprints: vec![],
        })
        .await
        .unwrap_err();
    assert!(err.is_invalid_argument(), "{err}");
    let err = Transport::create_plain(&router, media::plain_options("t", true))
        .await
        .unwrap_err();
    assert!(err.is_invalid_argument(), "duplicate id: {err}");
}
