//! The worker's socket counters reach `/metrics`: datagrams received and sent on its media
//! sockets, and what it dropped by reason (issue 11: overload is shed, counted and visible).
//! The shedding itself is unit-tested in the worker (`net::tests`), where it is deterministic; here
//! too few packets are sent to ever fill a receive batch, so nothing may be counted as shed.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ferrosfu_tests::{
    SupervisorProcess, consume_plain, create_plain_transport, get_json, plain_opus_publisher,
    post_json,
};
use serde_json::json;

const PACKETS: u64 = 20;

/// The value of the one sample of `metrics` whose line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_counters_and_drops_reach_metrics() {
    let sup = SupervisorProcess::start_on_loopback("23700-23749", &["--dev"]);
    let http = reqwest::Client::new();
    let base = sup.url("/rooms/overload/broadcasters");
    let caps = get_json(&http, &sup.url("/rooms/overload")).await;
    let (ingest, producer) = plain_opus_publisher(&http, &base, "test", 100, 1111).await;
    post_json(
        &http,
        &base,
        json!({"id": "sub", "displayName": "sub", "device": {"name": "test"}, "rtpCapabilities": caps}),
    )
    .await;
    let t = create_plain_transport(&http, &base, "sub", true).await;
    let egress = SocketAddr::from(([127, 0, 0, 1], t["port"].as_u64().unwrap() as u16));
    consume_plain(&http, &base, "sub", t["id"].as_str().unwrap(), &producer).await;

    // The receiver latches the consumer's comedia transport with an empty receiver report.
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .send_to(&[0x80, 201, 0, 1, 0, 0, 0, 9], egress)
        .unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Fewer than a receive batch (32): the worker can never be "behind".
    for seq in 0..PACKETS as u16 {
        let mut pkt = vec![0u8; 200];
        pkt[0] = 0x80;
        pkt[1] = 100;
        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
        pkt[4..8].copy_from_slice(&(u32::from(seq) * 960).to_be_bytes());
        pkt[8..12].copy_from_slice(&1111u32.to_be_bytes());
        sender.send_to(&pkt, ingest).unwrap();
    }
    // A new source is validated by its first packets (RFC 3550 A.1): most, not all, arrive.
    let mut buf = [0u8; 1500];
    let mut forwarded = 0;
    while forwarded < PACKETS - 2 {
        let (n, _) = receiver.recv_from(&mut buf).expect("forwarded in time");
        if n >= 12 && !(200..=206).contains(&buf[1]) {
            forwarded += 1;
        }
    }

    // The counters come with the worker's resource usage, read at scrape time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let m = sup.metrics(&http).await.unwrap();
        let sent = sample(
            &m,
            "ferrosfu_worker_udp_datagrams_total{core=\"0\",direction=\"sent\"}",
        );
        if sent.is_some_and(|s| s >= forwarded) || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let received = sample(
        &metrics,
        "ferrosfu_worker_udp_datagrams_total{core=\"0\",direction=\"received\"}",
    );
    assert!(
        received.is_some_and(|r| r >= PACKETS),
        "the RTP packets and the receiver report:\n{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "ferrosfu_worker_udp_datagrams_total{core=\"0\",direction=\"sent\"}"
        )
        .is_some_and(|s| s >= forwarded),
        "{metrics}"
    );
    for reason in ["behind", "send_queue_full", "send_error", "receive_error"] {
        let line = format!("ferrosfu_worker_socket_drops_total{{core=\"0\",reason=\"{reason}\"}}");
        assert_eq!(sample(&metrics, &line), Some(0), "{line} in:\n{metrics}");
    }
}
