//! One port per worker: rooms put their WebRtcTransports on the worker's WebRtcServer. Two
//! peers of a room get ICE candidates on the same port (the server's) and media still flows
//! between them; worker i of the pool listens on the base port + i (UDP and TCP: `forceTcp`
//! gets the server's TCP port); a worker restarted by the pool gets its server back;
//! `--webrtc-server-port 0` gives each transport its own ports; a taken server port stops the
//! start (exit 1) with a message naming it.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrosfu_fbs::MediaKind;
use ferrosfu_tests::protoo::{self, ProtooClient};
use ferrosfu_tests::rtc_client::{ClientOptions, Publisher, TestMedia};
use ferrosfu_tests::{SupervisorProcess, worker_on};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Every port of a `createWebRtcTransport` answer's ICE candidates (UDP and TCP).
fn candidate_ports(t: &Value) -> Vec<u64> {
    let c = t["iceCandidates"].as_array().unwrap();
    assert!(!c.is_empty(), "{t}");
    c.iter().map(|c| c["port"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_share_the_worker_server_port_and_media_flows() {
    let sup = SupervisorProcess::start_on_loopback(
        "26000-26099",
        &["--dev", "--webrtc-server-port", "26010"],
    );
    let room = "one-port";

    // Alice publishes through a transport on the server's port.
    let mut alice = ProtooClient::connect(sup.http, room, "alice", None)
        .await
        .unwrap();
    let caps = alice.client_caps().await.unwrap();
    let publisher = Publisher::new(ClientOptions::default()).await.unwrap();
    let send = protoo::connect_publisher(&mut alice, &publisher)
        .await
        .unwrap();
    assert!(candidate_ports(&send).iter().all(|p| *p == 26010), "{send}");
    alice.join("Alice", &caps).await.unwrap();

    // Bob receives through another transport on the same port.
    let mut bob = ProtooClient::connect(sup.http, room, "bob", None)
        .await
        .unwrap();
    let recv = bob.create_transport(false).await.unwrap();
    assert_eq!(candidate_ports(&recv), candidate_ports(&send), "{recv}");
    assert_ne!(
        recv["iceParameters"]["usernameFragment"],
        send["iceParameters"]["usernameFragment"]
    );
    bob.join("Bob", &caps).await.unwrap();

    protoo::produce_all(
        &mut alice,
        send["id"].as_str().unwrap(),
        publisher.producer_parameters().unwrap(),
    )
    .await
    .unwrap();
    let (subscriber, _) = protoo::subscribe(&mut bob, &recv, 2).await.unwrap();

    let publisher = Arc::new(publisher);
    let media = TestMedia::start(&publisher, 1200).await.unwrap();
    for kind in [MediaKind::Audio, MediaKind::Video] {
        subscriber
            .wait_packets(kind, 20, Duration::from_secs(10))
            .await
            .unwrap();
    }
    // Both peers' selected tuples end on the one server port.
    for (c, t) in [(&mut alice, &send), (&mut bob, &recv)] {
        let s = c
            .ok("getTransportStats", json!({"transportId": t["id"]}))
            .await
            .unwrap();
        assert_eq!(s[0]["iceSelectedTuple"]["localPort"], 26010, "{s}");
    }
    media.stop().await.unwrap();
    alice.close().await;
    bob.close().await;
    let _ = publisher.close().await;
    let _ = subscriber.close().await;
}

/// The `createWebRtcTransport` candidate ports of a new peer in `room`.
async fn ports_in(sup: &SupervisorProcess, room: &str) -> (ProtooClient, Vec<u64>) {
    let mut c = ProtooClient::connect(sup.http, room, "p", None)
        .await
        .unwrap();
    let t = c.create_transport(true).await.unwrap();
    let mut ports = candidate_ports(&t);
    ports.dedup();
    (c, ports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_has_its_port_and_a_restarted_worker_gets_it_back() {
    let sup = SupervisorProcess::start(&[
        "--dev",
        "--worker-cores",
        "0,1",
        "--rtc-listen-ip",
        "127.0.0.1",
        "--rtc-ports",
        "26100-26119",
        "--webrtc-server-port",
        "26100",
    ]);
    // Two rooms go to the two workers: one on each server port.
    let (a, pa) = ports_in(&sup, "room-a").await;
    let (b, pb) = ports_in(&sup, "room-b").await;
    let mut both = [pa.clone(), pb].concat();
    both.sort_unstable();
    assert_eq!(both, [26100, 26101]);
    // forceTcp: only the server's TCP candidate.
    let mut a = a;
    let t = a
        .ok(
            "createWebRtcTransport",
            json!({"forceTcp": true, "producing": false, "consuming": true}),
        )
        .await
        .unwrap();
    let c = t["iceCandidates"].as_array().unwrap();
    assert!(
        c.len() == 1 && c[0]["protocol"] == "tcp" && c[0]["port"] == json!(pa[0]),
        "{t}"
    );
    a.close().await;
    b.close().await;

    // Kill the worker of the first core; the pool restarts it with its server.
    let http = reqwest::Client::new();
    let workers = sup.workers(&http).await;
    // /api/workers shows where each server listens.
    for (core, port) in [(0, 26100), (1, 26101)] {
        let w = worker_on(&workers, core);
        assert_eq!(
            w["webrtc_server"],
            json!([
                {"protocol": "udp", "ip": "127.0.0.1", "port": port},
                {"protocol": "tcp", "ip": "127.0.0.1", "port": port},
            ]),
            "{w}"
        );
    }
    let first = worker_on(&workers, 0);
    let pid = first["pid"].as_u64().unwrap() as i32;
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let t0 = Instant::now();
    loop {
        let w = sup.workers(&http).await;
        let restarted = w.iter().any(|w| {
            w["core"] == 0
                && w["up"] == true
                && w["restarts"] == 1
                && w["webrtc_server"][0]["port"] == 26100
        });
        if restarted {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no restart: {w:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Rooms on both workers again: both ports answer.
    let (a, pa) = ports_in(&sup, "room-c").await;
    let (b, pb) = ports_in(&sup, "room-d").await;
    let mut both = [pa, pb].concat();
    both.sort_unstable();
    assert_eq!(both, [26100, 26101]);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_gives_each_transport_its_own_ports() {
    let sup = SupervisorProcess::start_on_loopback(
        "26120-26199",
        &["--dev", "--webrtc-server-port", "0"],
    );
    let mut c = ProtooClient::connect(sup.http, "own-ports", "p", None)
        .await
        .unwrap();
    let t1 = candidate_ports(&c.create_transport(true).await.unwrap());
    let t2 = candidate_ports(&c.create_transport(false).await.unwrap());
    for p in t1.iter().chain(&t2) {
        assert!((26120..=26199).contains(p), "{t1:?} {t2:?}");
    }
    assert!(t1.iter().all(|p| !t2.contains(p)), "{t1:?} {t2:?}");
    c.close().await;
}

#[test]
fn a_taken_server_port_fails_the_start() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:26230").unwrap();
    let dir = std::env::temp_dir().join(format!("ferrosfu-webrtc-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = ferrosfu_tests::supervisor_command(&dir, 26230)
        .output()
        .unwrap();
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("WebRtcServer") && log.contains("26230"),
        "{log}"
    );
}
