//! A room that outgrows a worker spans two: a supervisor with two workers whose consumer limit
//! (`[rooms] worker_max_consumers`) one room's 1 → N plain-RTP fan-out passes. The REST
//! broadcaster API makes one Opus producer and N plain receivers; placement hosts the first
//! receivers on the room's worker and the rest on a router of the room on the other worker,
//! where the producer arrives through a pipe. Every receiver gets every packet.
//!
//! Counting is by packets sent and received, with deadlines only as a bound on waiting.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::time::Duration;

use ferrosfu_tests::media::{PLAIN_OPUS_PT, rtp_packet, rtp_payload};
use ferrosfu_tests::{
    SupervisorProcess, consume_plain, get_json, join_plain_receiver, plain_opus_publisher,
};
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Receivers: more than one worker may host at the limit below.
const N: usize = 12;
/// Consumers per worker (the test's limit; the default is 2000).
const LIMIT: &str = "6";
const PACKETS: u32 = 200;
const SSRC: u32 = 4321;

/// A socket counting the `frame <n>` payloads it receives.
async fn receiver(i: usize, done: mpsc::UnboundedSender<(usize, u32)>) -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = s.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok(n) = s.recv(&mut buf).await {
            if n < 12 || (192..=223).contains(&buf[1]) {
                continue; // RTCP
            }
            let Some(frame) = std::str::from_utf8(rtp_payload(&buf[..n]))
                .ok()
                .and_then(|p| p.strip_prefix("frame "))
                .and_then(|f| f.parse().ok())
            else {
                continue;
            };
            if done.send((i, frame)).is_err() {
                return;
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_past_one_workers_limit_spans_two_workers_losslessly() {
    let sup = SupervisorProcess::start(&[
        "--worker-cores",
        "0,1",
        "--rtc-ports",
        "28000-28099",
        "--rtc-listen-ip",
        "127.0.0.1",
        "--webrtc-server-port",
        "0",
        "--worker-max-consumers",
        LIMIT,
        "--dev",
    ]);
    let http = reqwest::Client::new();
    // Both workers running.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sup
        .workers(&http)
        .await
        .iter()
        .filter(|w| w["up"] == true)
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "two workers up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = sup.url("/rooms/span/broadcasters");
    let caps = get_json(&http, &sup.url("/rooms/span")).await;
    let (ingest, producer) = plain_opus_publisher(&http, &base, "span", PLAIN_OPUS_PT, SSRC).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..N {
        let port = receiver(i, tx.clone()).await;
        let id = format!("sub{i}");
        let tid = join_plain_receiver(
            &http,
            &base,
            json!({"id": id, "displayName": id, "device": {"name": "test"}, "rtpCapabilities": caps}),
            port,
        )
        .await;
        consume_plain(&http, &base, &id, &tid, &producer).await;
    }
    drop(tx);
    // The room spans both workers: each hosts consumers.
    let workers = sup.workers(&http).await;
    let consumers: Vec<u64> = workers
        .iter()
        .map(|w| w["load"]["consumers"].as_u64().unwrap())
        .collect();
    assert!(
        consumers.iter().all(|&c| c > 0),
        "consumers per worker: {consumers:?}"
    );
    assert!(
        consumers.iter().sum::<u64>() > N as u64,
        "N receivers and the pipe: {consumers:?}"
    );

    // 200 packets at 50/s (the publisher's pace; a bound, not a measurement).
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for seq in 0..PACKETS {
        tick.tick().await;
        let pkt = rtp_packet(
            PLAIN_OPUS_PT,
            seq as u16,
            seq * 960,
            SSRC,
            format!("frame {seq}").as_bytes(),
        );
        sender.send_to(&pkt, ingest).await.unwrap();
    }
    // /metrics: the room spans two workers through one pipe pair that carries the stream.
    let metrics = sup.metrics(&http).await.unwrap();
    let value = |series: &str| SupervisorProcess::metric_value(&metrics, series.trim_end());
    assert_eq!(value("ferrosfu_rooms_spanning_workers "), 1.0);
    assert_eq!(value("ferrosfu_pipe_transports{scope=\"worker\"} "), 2.0);
    assert!(value("ferrosfu_pipe_bitrate_bps{direction=\"send\"} ") > 0.0);
    // Every receiver gets every packet.
    let mut got = vec![BTreeSet::new(); N];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.iter().any(|g| g.len() < PACKETS as usize) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((i, frame))) => {
                got[i].insert(frame);
            }
            _ => break,
        }
    }
    let counts: Vec<usize> = got.iter().map(BTreeSet::len).collect();
    assert!(
        counts.iter().all(|&c| c == PACKETS as usize),
        "packets received per receiver (of {PACKETS}): {counts:?}"
    );
}
