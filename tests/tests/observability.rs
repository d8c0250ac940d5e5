//! What an operator sees of a real call: two webrtc-rs peers in a room (Alice publishes Opus and
//! VP8 over protoo, Bob consumes both) and the admin listener's `/metrics` (RTP packets and bytes
//! by kind and direction move, RTCP feedback and the RTT histogram fill once receiver reports
//! flow, the join-time histogram counts both joins, entity gauges) and `/api/rooms[/:roomId]`
//! (the room, its peers with their transports' bit rates, producers' scores, consumers' scores
//! and RTT; 404 for an unknown room).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrosfu_fbs::MediaKind;
use ferrosfu_tests::protoo::{self, ProtooClient};
use ferrosfu_tests::rtc_client::{Publisher, TestMedia};
use ferrosfu_tests::{SupervisorProcess, get_json, status_and_json};
use serde_json::Value;

/// The value of `series` in `metrics`, 0 when it is not there (yet).
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Scrapes `/metrics` until `ready` holds for it (30 s at most) and returns that scrape.
async fn metrics_when(
    sup: &SupervisorProcess,
    http: &reqwest::Client,
    what: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = sup.metrics(http).await.unwrap();
        if ready(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what} never showed in:\n{m}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn rtp(kind: &str, direction: &str, what: &str) -> String {
    format!("ferrosfu_rtp_{what}_total{{core=\"0\",kind=\"{kind}\",direction=\"{direction}\"}}")
}

fn peer<'a>(room: &'a Value, id: &str) -> &'a Value {
    room["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no peer {id} in {room}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_moves_the_media_metrics_and_shows_in_the_rooms_api() {
    let started = Instant::now();
    let sup = SupervisorProcess::start_on_loopback("26900-26949", &["--dev"]);
    let http = reqwest::Client::new();
    let before = sup.metrics(&http).await.unwrap();
    for kind in ["audio", "video"] {
        assert_eq!(value(&before, &rtp(kind, "received", "packets")), 0.0);
    }
    assert!(
        before.contains("# TYPE ferrosfu_rtt_seconds histogram"),
        "{before}"
    );

    let mut alice = ProtooClient::connect(sup.http, "ops", "alice", None)
        .await
        .unwrap();
    let caps = alice.client_caps().await.unwrap();
    let publisher = Publisher::new(Default::default()).await.unwrap();
    let send = protoo::connect_publisher(&mut alice, &publisher)
        .await
        .unwrap();
    alice.join("Alice", &caps).await.unwrap();
    let mut bob = ProtooClient::connect(sup.http, "ops", "bob", None)
        .await
        .unwrap();
    let recv = bob.create_transport(false).await.unwrap();
    bob.join("Bob", &caps).await.unwrap();
    let produced = protoo::produce_all(
        &mut alice,
        send["id"].as_str().unwrap(),
        publisher.producer_parameters().unwrap(),
    )
    .await
    .unwrap();
    let (subscriber, consumers) = protoo::subscribe(&mut bob, &recv, 2).await.unwrap();
    let publisher = Arc::new(publisher);
    let media = TestMedia::start(&publisher, 1200).await.unwrap();
    for kind in [MediaKind::Audio, MediaKind::Video] {
        subscriber
            .wait_packets(kind, 20, Duration::from_secs(10))
            .await
            .unwrap();
    }

    // Bob asks for a keyframe: the PLI goes on to Alice.
    let video = consumers.iter().find(|c| c["kind"] == "video").unwrap();
    let ssrc = video["rtpParameters"]["encodings"][0]["ssrc"]
        .as_u64()
        .unwrap();
    subscriber.request_keyframe(ssrc as u32).await.unwrap();

    // Receiver reports come about once a second: wait for Bob's (RTT) and our own about
    // Alice's streams (loss, jitter).
    let pli = |direction: &str| {
        format!("ferrosfu_rtcp_feedback_total{{core=\"0\",type=\"pli\",direction=\"{direction}\"}}")
    };
    let m = metrics_when(&sup, &http, "RTT, loss and the PLI", |m| {
        value(m, "ferrosfu_rtt_seconds_count{core=\"0\"}") > 0.0
            && value(
                m,
                "ferrosfu_rtp_loss_ratio_count{core=\"0\",direction=\"received\"}",
            ) > 0.0
            && value(m, &pli("sent")) > 0.0
    })
    .await;
    assert_eq!(value(&m, &pli("received")), 1.0, "Bob's PLI");
    for kind in ["audio", "video"] {
        for direction in ["received", "sent"] {
            for what in ["packets", "bytes"] {
                let series = rtp(kind, direction, what);
                assert!(value(&m, &series) > 0.0, "{series} did not move:\n{m}");
            }
        }
    }
    assert!(
        value(&m, &rtp("video", "sent", "bytes"))
            > value(&m, &rtp("video", "sent", "packets")) * 500.0,
        "1200-byte VP8 frames"
    );
    assert_eq!(
        value(&m, "ferrosfu_join_duration_seconds_count"),
        2.0,
        "two joins:\n{m}"
    );
    let join_sum = value(&m, "ferrosfu_join_duration_seconds_sum");
    assert!(join_sum > 0.0 && join_sum < 20.0, "{join_sum}");
    // The +Inf bucket holds every observation.
    assert_eq!(
        value(&m, "ferrosfu_rtt_seconds_bucket{le=\"+Inf\",core=\"0\"}"),
        value(&m, "ferrosfu_rtt_seconds_count{core=\"0\"}")
    );
    assert!(
        value(&m, "ferrosfu_rtt_seconds_sum{core=\"0\"}") < 1.0,
        "loopback RTT"
    );
    assert_eq!(value(&m, "ferrosfu_worker_producers{core=\"0\"}"), 2.0);
    assert!(
        value(&m, "ferrosfu_worker_transports{core=\"0\"}") >= 2.0,
        "{m}"
    );
    assert_eq!(value(&m, "ferrosfu_worker_consumers{core=\"0\"}"), 2.0);
    assert_eq!(value(&m, "ferrosfu_rooms"), 1.0);
    assert_eq!(value(&m, "ferrosfu_peers{location=\"local\"}"), 2.0);
    for line in m.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("alice") && !line.contains("bob") && !line.contains("ops\""),
            "a room or peer id as a label: {line}"
        );
    }

    // The rooms API, on the admin listener (no token).
    let list = get_json(&http, &sup.admin_url("/api/rooms")).await;
    let rooms = list["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1, "{list}");
    assert_eq!(rooms[0]["id"], "ops");
    assert_eq!(rooms[0]["peers"], 2);
    assert_eq!(rooms[0]["core"], 0);
    assert_eq!(rooms[0]["cores"], serde_json::json!([0]));
    assert!(
        rooms[0]["createdAt"].as_str().unwrap().ends_with('Z'),
        "{list}"
    );

    let room = get_json(&http, &sup.admin_url("/api/rooms/ops")).await;
    let a = peer(&room, "alice");
    assert_eq!(a["displayName"], "Alice");
    assert_eq!(a["joined"], true);
    assert!(a["joinedAt"].is_string(), "{a}");
    let t = &a["transports"][0];
    assert_eq!(t["id"], send["id"]);
    assert_eq!(
        (t["kind"].as_str(), t["consuming"].as_bool()),
        (Some("webrtc"), Some(false))
    );
    assert!(t["recvBitrate"].as_u64().unwrap() > 50_000, "{t}");
    let producers = a["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 2, "{a}");
    for (kind, id) in &produced {
        let p = producers.iter().find(|p| p["id"] == id.as_str()).unwrap();
        assert_eq!(p["kind"], protoo::kind_str(*kind));
        let streams = p["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1, "{p}");
        assert!(streams[0]["score"].as_u64().unwrap() > 0, "{p}");
        assert!(streams[0]["bitrate"].as_u64().unwrap() > 0, "{p}");
    }
    let b = peer(&room, "bob");
    assert_eq!(b["displayName"], "Bob");
    let cons = b["consumers"].as_array().unwrap();
    assert_eq!(cons.len(), 2, "{b}");
    for want in &consumers {
        let c = cons.iter().find(|c| c["id"] == want["id"]).unwrap();
        assert_eq!(c["producerId"], want["producerId"]);
        assert_eq!(c["type"], "simple");
        assert!(
            c["layers"].is_null(),
            "a simple consumer has no layers: {c}"
        );
        assert!(c["score"].as_u64().unwrap() > 0, "{c}");
        assert!(c["producerScore"].as_u64().unwrap() > 0, "{c}");
    }
    assert!(cons.iter().any(|c| c["rttMs"].as_u64().is_some()), "{b}");
    let rtt = b["rttMs"]
        .as_f64()
        .unwrap_or_else(|| panic!("no RTT for Bob: {b}"));
    assert!(rtt < 1000.0, "{rtt}");
    assert!(
        b["transports"][0]["sendBitrate"].as_u64().unwrap() > 50_000,
        "{b}"
    );
    assert!(b["packetLoss"].is_object(), "{b}");

    let (status, body) = status_and_json(http.get(sup.admin_url("/api/rooms/nope"))).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");

    media.stop().await.unwrap();
    alice.close().await;
    bob.close().await;
    let _ = publisher.close().await;
    let _ = subscriber.close().await;
    eprintln!("observability: {:.1} s", started.elapsed().as_secs_f64());
}
