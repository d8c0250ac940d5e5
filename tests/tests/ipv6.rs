//! Dual-stack media on loopback: a supervisor listening on 127.0.0.1 and ::1 gives host
//! candidates of both families (the first listed family ranks first), an IPv4-only publisher and
//! an IPv6-only subscriber share a room (STUN, DTLS and SRTP over ::1 end to end, media crosses
//! families), with the workers' WebRtcServer and with per-transport ports; an IPv6-only node
//! (`listen_ips = ["::1"]` in the config file) serves media too, and the config refuses
//! contradictory lists.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrosfu_fbs::MediaKind;
use ferrosfu_tests::SupervisorProcess;
use ferrosfu_tests::protoo::{self, ProtooClient};
use ferrosfu_tests::rtc_client::{ClientOptions, IpFamily, Publisher, TestMedia};
use serde_json::{Value, json};

/// A path under the temp dir unique to this process and `name`.
fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ferrosfu-ipv6-{}-{name}", std::process::id()))
}

/// (protocol, address, priority) of each ICE candidate of a `createWebRtcTransport` answer.
fn candidates(t: &Value) -> Vec<(String, IpAddr, u64)> {
    t["iceCandidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["protocol"].as_str().unwrap().to_owned(),
                c["address"].as_str().unwrap().parse().unwrap(),
                c["priority"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The selected tuple of `transport` (local and remote IP) from `getTransportStats`.
async fn selected_ips(c: &mut ProtooClient, transport: &Value) -> (IpAddr, IpAddr) {
    let s = c
        .ok("getTransportStats", json!({"transportId": transport["id"]}))
        .await
        .unwrap();
    let t = &s[0]["iceSelectedTuple"];
    (
        t["localIp"].as_str().unwrap().parse().unwrap(),
        t["remoteIp"].as_str().unwrap().parse().unwrap(),
    )
}

/// Alice publishes from `families.0`, Bob receives on `families.1` (None: any family) in `room`
/// of `sup`; `check_send` sees Alice's `createWebRtcTransport` answer. Waits for audio and video
/// at Bob and gives the selected tuples (local, remote IP) of Alice's and Bob's transports.
async fn alice_to_bob(
    sup: &SupervisorProcess,
    room: &str,
    families: (Option<IpFamily>, Option<IpFamily>),
    check_send: impl FnOnce(&Value),
) -> [(IpAddr, IpAddr); 2] {
    let mut alice = ProtooClient::connect(sup.http, room, "alice", None)
        .await
        .unwrap();
    let caps = alice.client_caps().await.unwrap();
    let publisher = Publisher::new(ClientOptions {
        only_family: families.0,
        ..ClientOptions::default()
    })
    .await
    .unwrap();
    let send = protoo::connect_publisher(&mut alice, &publisher)
        .await
        .unwrap();
    check_send(&send);
    alice.join("Alice", &caps).await.unwrap();

    let mut bob = ProtooClient::connect(sup.http, room, "bob", None)
        .await
        .unwrap();
    let recv = bob.create_transport(false).await.unwrap();
    bob.join("Bob", &caps).await.unwrap();
    protoo::produce_all(
        &mut alice,
        send["id"].as_str().unwrap(),
        publisher.producer_parameters().unwrap(),
    )
    .await
    .unwrap();
    let options = ClientOptions {
        only_family: families.1,
        ..ClientOptions::default()
    };
    let (subscriber, _) = protoo::subscribe_with(&mut bob, &recv, 2, options)
        .await
        .unwrap();
    let publisher = Arc::new(publisher);
    let media = TestMedia::start(&publisher, 1200).await.unwrap();
    for kind in [MediaKind::Audio, MediaKind::Video] {
        subscriber
            .wait_packets(kind, 20, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let tuples = [
        selected_ips(&mut alice, &send).await,
        selected_ips(&mut bob, &recv).await,
    ];
    media.stop().await.unwrap();
    alice.close().await;
    bob.close().await;
    let _ = publisher.close().await;
    let _ = subscriber.close().await;
    tuples
}

/// Alice (IPv4 only) publishes, Bob (IPv6 only) receives, on a dual-stack node.
async fn media_crosses_families(sup: &SupervisorProcess, room: &str) {
    let families = (Some(IpFamily::V4), Some(IpFamily::V6));
    let [(a_local, a_remote), (b_local, b_remote)] = alice_to_bob(sup, room, families, |send| {
        // UDP and TCP on both addresses; 127.0.0.1 is listed first, so it ranks first.
        let c = candidates(send);
        for proto in ["udp", "tcp"] {
            let of: Vec<_> = c.iter().filter(|c| c.0 == proto).collect();
            assert_eq!(of.len(), 2, "{send}");
            assert_eq!(of[0].1, IpAddr::from([127, 0, 0, 1]), "{send}");
            assert_eq!(of[1].1, std::net::Ipv6Addr::LOCALHOST, "{send}");
            assert!(of[0].2 > of[1].2, "{send}");
        }
        let udp_min = c.iter().filter(|c| c.0 == "udp").map(|c| c.2).min();
        let tcp_max = c.iter().filter(|c| c.0 == "tcp").map(|c| c.2).max();
        assert!(udp_min > tcp_max, "UDP ranks above TCP: {send}");
    })
    .await;
    // The server saw Alice over IPv4 and Bob over IPv6 (ICE, DTLS and SRTP on ::1; the
    // client's source may be any of the host's IPv6 addresses).
    let v4 = IpAddr::from([127, 0, 0, 1]);
    assert!(a_local == v4 && a_remote.is_ipv4(), "{a_local} {a_remote}");
    let v6 = IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
    assert!(b_local == v6 && b_remote.is_ipv6(), "{b_local} {b_remote}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_webrtc_server_carries_media_across_families() {
    let sup = SupervisorProcess::start(&[
        "--dev",
        "--worker-cores",
        "0",
        "--rtc-listen-ip",
        "127.0.0.1,::1",
        "--rtc-ports",
        "26400-26449",
        "--webrtc-server-port",
        "26400",
    ]);
    // /api/workers shows the server's four sockets on one port.
    let workers = sup.workers(&reqwest::Client::new()).await;
    assert_eq!(
        workers[0]["webrtc_server"],
        json!([
            {"protocol": "udp", "ip": "127.0.0.1", "port": 26400},
            {"protocol": "udp", "ip": "::1", "port": 26400},
            {"protocol": "tcp", "ip": "127.0.0.1", "port": 26400},
            {"protocol": "tcp", "ip": "::1", "port": 26400},
        ]),
        "{workers:?}"
    );
    media_crosses_families(&sup, "dual-server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_transports_with_their_own_ports_carry_media_across_families() {
    let sup = SupervisorProcess::start(&[
        "--dev",
        "--worker-cores",
        "0",
        "--rtc-listen-ip",
        "127.0.0.1,::1",
        "--rtc-ports",
        "26450-26499",
        "--webrtc-server-port",
        "0",
    ]);
    media_crosses_families(&sup, "dual-own").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_only_node_from_the_config_file_serves_media() {
    let config = temp_file("ferrosfu.toml");
    std::fs::write(
        &config,
        "[media]\nlisten_ips = [\"::1\"]\nrtc_ports = \"26500-26549\"\nwebrtc_server_port = 26500\n",
    )
    .unwrap();
    let sup = SupervisorProcess::start(&[
        "--dev",
        "--worker-cores",
        "0",
        "--config",
        config.to_str().unwrap(),
    ]);
    let v6 = IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
    let [_, (local, remote)] = alice_to_bob(&sup, "v6", (None, None), |send| {
        assert!(candidates(send).iter().all(|c| c.1 == v6), "{send}");
    })
    .await;
    assert!(local == v6 && remote.is_ipv6(), "{local} {remote}");
    // The effective configuration shows the list.
    let out = std::process::Command::new(ferrosfu_tests::bin("ferrosfu"))
        .args(["--config", config.to_str().unwrap(), "--print-config"])
        .output()
        .unwrap();
    let cfg: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cfg["media"]["listen_ips"], json!(["::1"]), "{cfg}");
}

#[test]
fn contradictory_listen_settings_stop_the_start() {
    for (toml, expect) in [
        (
            "[media]\nlisten_ip = \"0.0.0.0\"\nlisten_ips = [\"::\"]\n",
            "not both",
        ),
        ("[media]\nlisten_ips = []\n", "empty"),
        ("[media]\nlisten_ips = [\"::1\", \"::1\"]\n", "twice"),
        (
            "[media]\nlisten_ips = [\"0.0.0.0\", \"::\"]\nannounced_ip = \"2001:db8::1\"\n",
            "announced_ipv6",
        ),
    ] {
        let config = temp_file("bad.toml");
        std::fs::write(&config, toml).unwrap();
        let out = std::process::Command::new(ferrosfu_tests::bin("ferrosfu"))
            .args(["--config", config.to_str().unwrap(), "--print-config"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expect),
            "{toml}: {:?} {stderr}",
            out.status
        );
    }
}
