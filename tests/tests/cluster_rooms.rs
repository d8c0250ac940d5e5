//! One room across two ferrosfu nodes clustered through a real `redis-server`: peers connected
//! to different nodes see and hear each other (webrtc-rs peers through protoo), the broadcaster
//! REST API on node A feeds a plain-RTP viewer on node B, node B records a peer of node A, a
//! SIGKILLed node's peers are
//! `peerClosed` on the other node within 5 s while its own media keeps flowing, and after a
//! Redis restart the surviving node re-registers and a node that joins later sees its peers.
//!
//! Deadlines only bound the waits (every wait ends on the event it waits for).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferrosfu_fbs::MediaKind;
use ferrosfu_tests::media::{PLAIN_OPUS_PT, rtp_packet, rtp_payload};
use ferrosfu_tests::media_source::GstSource;
use ferrosfu_tests::protoo::{self, ProtooClient};
use ferrosfu_tests::redis::{RedisServer, cluster_node};
use ferrosfu_tests::room_peer::RoomPeer;
use ferrosfu_tests::rtc_client::{ClientOptions, Publisher, TestMedia};
use ferrosfu_tests::{SupervisorProcess, get_json, join_plain_receiver, plain_opus_publisher};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::time::Instant;

const ROOM: &str = "cluster-room";

fn node(redis: &RedisServer, id: &str, core: &str, rtc_ports: &str) -> SupervisorProcess {
    cluster_node(redis, id, core, rtc_ports, &["--dev"])
}

/// Waits until `sup` lists `n` nodes in `/api/cluster`.
async fn wait_nodes(http: &reqwest::Client, sup: &SupervisorProcess, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = get_json(http, &sup.admin_url("/api/cluster")).await;
        if v["nodes"].as_array().is_some_and(|l| l.len() == n) {
            return;
        }
        assert!(Instant::now() < deadline, "{} nodes wanted: {v}", n);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A POST that may fail until the cluster has caught up: retried until it answers 2xx.
async fn post_until_ok(http: &reqwest::Client, url: &str, body: Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = http.post(url).json(&body).send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return v;
        }
        assert!(Instant::now() < deadline, "{url}: {status} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts `frame <n>` payloads arriving at a socket.
async fn plain_receiver() -> (u16, tokio::sync::mpsc::UnboundedReceiver<u32>) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = s.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok(n) = s.recv(&mut buf).await {
            if n < 12 || (192..=223).contains(&buf[1]) {
                continue;
            }
            let frame = std::str::from_utf8(rtp_payload(&buf[..n]))
                .ok()
                .and_then(|p| p.strip_prefix("frame "))
                .and_then(|f| f.parse().ok());
            if let Some(f) = frame
                && tx.send(f).is_err()
            {
                return;
            }
        }
    });
    (port, rx)
}

/// What a publisher peer sends: test payloads, or real Opus + VP8 from gst-launch.
enum Media {
    Test(#[allow(dead_code)] TestMedia),
    Real(#[allow(dead_code)] GstSource),
}

/// A webrtc-rs peer on `sup` that publishes Opus + VP8 in the room (real media when `real`:
/// what a recording can decode).
async fn publisher_peer(
    sup: &SupervisorProcess,
    name: &str,
    real: bool,
) -> (ProtooClient, Arc<Publisher>, Media) {
    let mut c = ProtooClient::connect(sup.http, ROOM, name, None)
        .await
        .unwrap();
    let caps = c.client_caps().await.unwrap();
    let publisher = Publisher::new(ClientOptions::default()).await.unwrap();
    let send = protoo::connect_publisher(&mut c, &publisher).await.unwrap();
    c.join(name, &caps).await.unwrap();
    protoo::produce_all(
        &mut c,
        send["id"].as_str().unwrap(),
        publisher.producer_parameters().unwrap(),
    )
    .await
    .unwrap();
    let publisher = Arc::new(publisher);
    let media = if real {
        publisher
            .wait_connected(Duration::from_secs(10))
            .await
            .unwrap();
        Media::Real(GstSource::start(vec![publisher.clone()]).await.unwrap())
    } else {
        Media::Test(TestMedia::start(&publisher, 1200).await.unwrap())
    };
    (c, publisher, media)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spans_two_nodes_and_survives_one_dying() {
    let mut redis = RedisServer::start().unwrap();
    let http = reqwest::Client::new();
    let mut a = node(&redis, "node-a", "0", "28200-28299");
    let b = node(&redis, "node-b", "1", "28300-28399");
    wait_nodes(&http, &a, 2).await;
    wait_nodes(&http, &b, 2).await;

    // REST on A feeds a plain-RTP viewer on B.
    let base_a = a.url(&format!("/rooms/{ROOM}/broadcasters"));
    let base_b = b.url(&format!("/rooms/{ROOM}/broadcasters"));
    let caps = get_json(&http, &b.url(&format!("/rooms/{ROOM}"))).await;
    let (ingest, producer) = plain_opus_publisher(&http, &base_a, "gst", PLAIN_OPUS_PT, 777).await;
    let (port, mut rx) = plain_receiver().await;
    let tid = join_plain_receiver(
        &http,
        &base_b,
        json!({"id": "viewer", "displayName": "viewer", "device": {"name": "test"}, "rtpCapabilities": caps}),
        port,
    )
    .await;
    // The producer is piped to B once B heard of it (its first local peer loaded the room).
    post_until_ok(
        &http,
        &format!("{base_b}/viewer/transports/{tid}/consume?producerId={producer}"),
        json!({}),
    )
    .await;
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for seq in 0..100u32 {
        tick.tick().await;
        let pkt = rtp_packet(
            PLAIN_OPUS_PT,
            seq as u16,
            seq * 960,
            777,
            format!("frame {seq}").as_bytes(),
        );
        sender.send_to(&pkt, ingest).await.unwrap();
    }
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 100 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(f)) => {
                got.insert(f);
            }
            _ => break,
        }
    }
    assert_eq!(got.len(), 100, "the viewer on B got every packet sent to A");

    // webrtc-rs peers: Alice on A, Carol on B publish; Bob on B receives both.
    let (mut alice, _alice_pub, _alice_media) = publisher_peer(&a, "alice", true).await;
    let (_carol, _carol_pub, _carol_media) = publisher_peer(&b, "carol", false).await;
    let mut bob = ProtooClient::connect(b.http, ROOM, "bob", None)
        .await
        .unwrap();
    let bob_caps = bob.client_caps().await.unwrap();
    let recv = bob.create_transport(false).await.unwrap();
    let joined = bob.join("bob", &bob_caps).await.unwrap();
    let peers: BTreeSet<String> = joined["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    for p in ["alice", "carol", "pub", "viewer"] {
        assert!(peers.contains(p), "bob's join lists {p}: {peers:?}");
    }
    // Alice (on A) hears of Bob (on B).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = alice.wait_for("newPeer").await.unwrap();
        if n["data"]["id"] == "bob" {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    // Alice's and Carol's audio + video and pub's audio: five consumers.
    let (subscriber, offers) = protoo::subscribe(&mut bob, &recv, 5).await.unwrap();
    let owners: BTreeSet<String> = offers
        .iter()
        .map(|o| o["peerId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        owners,
        ["alice", "carol", "pub"].map(String::from).into(),
        "{offers:?}"
    );
    subscriber
        .wait_packets(MediaKind::Video, 60, Duration::from_secs(15))
        .await
        .unwrap();
    subscriber
        .wait_packets(MediaKind::Audio, 60, Duration::from_secs(15))
        .await
        .unwrap();

    // A recording of Alice (connected to A) started through B: B records the producers piped
    // from A.
    let rec = post_until_ok(
        &http,
        &b.url(&format!("/api/rooms/{ROOM}/recordings")),
        json!({"peerId": "alice"}),
    )
    .await;
    let rec_id = rec["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = get_json(&http, &b.url(&format!("/api/recordings/{rec_id}"))).await;
        if v["status"] == "recording" {
            break;
        }
        assert_ne!(v["status"], "failed", "{v}");
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What a recording is for: some seconds of media.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let done = post_until_ok(
        &http,
        &b.url(&format!("/api/recordings/{rec_id}/stop")),
        json!({}),
    )
    .await;
    assert_eq!(done["status"], "done", "{done}");
    assert!(done["duration"].as_f64().unwrap() > 2.0, "{done}");
    let kinds: BTreeSet<&str> = done["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["audio", "video"]), "{done}");

    // B's /metrics: its peers and the other node's, and the pipes from A.
    let metrics = b.metrics(&http).await.unwrap();
    let value = |series: &str| SupervisorProcess::metric_value(&metrics, series.trim_end());
    assert_eq!(value("ferrosfu_peers{location=\"remote\"} "), 2.0);
    assert_eq!(value("ferrosfu_peers{location=\"local\"} "), 3.0);
    assert!(value("ferrosfu_pipe_transports{scope=\"node\"} ") >= 3.0);

    // A dies: Bob hears peerClosed for its peers within 5 s; Carol's media still flows.
    let killed = Instant::now();
    a.child.kill().unwrap();
    let mut closed = BTreeSet::new();
    while !(closed.contains("alice") && closed.contains("pub")) {
        let n = bob.wait_for("peerClosed").await.unwrap();
        closed.insert(n["data"]["peerId"].as_str().unwrap().to_owned());
    }
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(5), "peerClosed after {took:?}");
    let before = subscriber.received(MediaKind::Video).len();
    subscriber
        .wait_packets(MediaKind::Video, before + 30, Duration::from_secs(10))
        .await
        .unwrap();

    // Redis restarts: B re-registers; a node started afterwards sees B's peers in the room.
    redis.restart().unwrap();
    let c = node(&redis, "node-c", "0", "28400-28499");
    wait_nodes(&http, &c, 2).await;
    let mut dave = ProtooClient::connect(c.http, ROOM, "dave", None)
        .await
        .unwrap();
    let dave_caps = dave.client_caps().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let joined = loop {
        let joined = dave.join("dave", &dave_caps).await.unwrap();
        let ids: BTreeSet<String> = joined["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        if ids.contains("bob") && ids.contains("carol") {
            break ids;
        }
        assert!(Instant::now() < deadline, "dave on C sees {ids:?}");
        dave.close().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        dave = ProtooClient::connect(c.http, ROOM, "dave", None)
            .await
            .unwrap();
    };
    assert!(!joined.contains("alice"), "alice died with A: {joined:?}");
    loop {
        let n = bob.wait_for("newPeer").await.unwrap();
        if n["data"]["id"] == "dave" {
            break;
        }
    }
}

/// Data channels cross nodes: a `notes` channel of a peer on A reaches a peer on B and back, and
/// chat is checked and relayed by the sender's node before it crosses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channels_and_chat_cross_nodes() {
    const MESSAGE: Duration = Duration::from_secs(10);
    let redis = RedisServer::start().unwrap();
    let http = reqwest::Client::new();
    let a = node(&redis, "data-a", "0", "28500-28549");
    let b = node(&redis, "data-b", "1", "28550-28599");
    wait_nodes(&http, &a, 2).await;
    wait_nodes(&http, &b, 2).await;
    let room = "cluster-data";
    let mut alice = RoomPeer::join(a.http, room, "alice").await;
    let mut bob = RoomPeer::join(b.http, room, "bob").await;

    // Alice's notes reach Bob, named as hers.
    let (notes, notes_id) = alice.produce("notes", 0).await;
    let (mut bob_notes, offer) = bob.accept_data_consumer().await;
    assert_eq!(offer["peerId"], "alice", "{offer}");
    assert_eq!(offer["dataProducerId"], notes_id.as_str(), "{offer}");
    assert_eq!(offer["label"], "notes", "{offer}");
    for i in 0..20 {
        notes
            .send(true, format!("note {i}").as_bytes())
            .await
            .unwrap();
    }
    for i in 0..20 {
        let got = bob_notes.recv(MESSAGE).await.unwrap();
        assert_eq!(&got.data[..], format!("note {i}").as_bytes(), "in order");
    }

    // Bob's chat reaches Alice; a refused message is refused on Bob's node and never crosses.
    let (chat, _) = bob.produce("chat", 1).await;
    let (mut alice_chat, offer) = alice.accept_data_consumer().await;
    assert_eq!(offer["peerId"], "bob", "{offer}");
    assert_eq!(offer["label"], "chat", "{offer}");
    chat.send(true, b"hello from B").await.unwrap();
    let got = alice_chat.recv(MESSAGE).await.unwrap();
    assert_eq!(&got.data[..], b"hello from B");
    chat.send(true, "x".repeat(5000).as_bytes()).await.unwrap();
    let r = bob.protoo.wait_for("chatMessageRejected").await.unwrap();
    assert_eq!(r["data"]["code"], "too_long", "{r}");
    chat.send(true, b"after").await.unwrap();
    let got = alice_chat.recv(MESSAGE).await.unwrap();
    assert_eq!(&got.data[..], b"after", "the refused message did not cross");
}
