//! `[limits]` on a real supervisor process: a full room (429, close 4429), the node's room cap
//! (503, close 1013), transports, producers and consumers per peer (429), protoo requests per
//! second (429, a flood is disconnected with 4429), REST requests per token (429 +
//! Retry-After), signaling sockets per IP (429, close 4429).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::protoo::{ProtooClient, token};
use ferrosfu_tests::{SupervisorProcess, create_plain_transport, post_json, status_and_json};
use serde_json::json;

const SECRET: &str = "limits-test-secret-0123456789abc";

/// A supervisor on `ports` with `[limits]` = `limits` (TOML lines), `extra` args after.
fn start(ports: &str, limits: &str, wrapper: &[&str], extra: &[&str]) -> SupervisorProcess {
    let dir =
        std::env::temp_dir().join(format!("ferrosfu-limits-{}-{}", std::process::id(), ports));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ferrosfu.toml");
    std::fs::write(&file, format!("[limits]\n{limits}\n")).unwrap();
    let first = ports.split('-').next().unwrap();
    let mut args = vec![
        "--config",
        file.to_str().unwrap(),
        "--worker-cores",
        "0",
        "--rtc-listen-ip",
        "127.0.0.1",
        "--rtc-ports",
        ports,
        "--webrtc-server-port",
        first,
    ];
    args.extend_from_slice(extra);
    SupervisorProcess::start_wrapped(wrapper, &args)
}

/// A refused peer: its first request gets `code`, then the socket closes with `close`.
async fn assert_refused(sup: &SupervisorProcess, room: &str, peer: &str, code: u64, close: u16) {
    let mut c = ProtooClient::connect(sup.http, room, peer, None)
        .await
        .unwrap();
    let e = c
        .request("getRouterRtpCapabilities", json!({}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, code, "{room}/{peer}: {e:?}");
    assert_eq!(
        c.close_code(Duration::from_secs(10)).await.unwrap(),
        Some(close),
        "{room}/{peer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_peers_have_quotas() {
    let sup = start(
        "26860-26874",
        "peers_per_room = 2\nrooms_per_node = 2\ntransports_per_peer = 2\nproducers_per_peer = 1\nconsumers_per_peer = 1",
        &[],
        &["--dev"],
    );
    let http = reqwest::Client::new();

    // Room r1: two peers fit, a third is refused; one of them reconnecting is not a third.
    let mut p1 = ProtooClient::connect(sup.http, "r1", "p1", None)
        .await
        .unwrap();
    let caps = p1.client_caps().await.unwrap();
    p1.join("p1", &caps).await.unwrap();
    let mut p2 = ProtooClient::connect(sup.http, "r1", "p2", None)
        .await
        .unwrap();
    p2.client_caps().await.unwrap();
    assert_refused(&sup, "r1", "p3", 429, 4429).await;
    let mut p2 = {
        let mut again = ProtooClient::connect(sup.http, "r1", "p2", None)
            .await
            .unwrap();
        again.client_caps().await.unwrap();
        assert_eq!(
            p2.close_code(Duration::from_secs(10)).await.unwrap(),
            Some(4000)
        );
        again
    };
    p2.client_caps().await.unwrap();

    // Transports per peer: the third is refused.
    p1.create_transport(true).await.unwrap();
    p1.create_transport(false).await.unwrap();
    let e = p1
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": false, "consuming": true}),
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, 429, "{e:?}");
    assert_eq!(e.reason, "too many transports: at most 2 per peer");

    // Room r2 by REST: broadcaster "pub" may have one producer, "sub" one consumer.
    let base = sup.url("/rooms/r2/broadcasters");
    post_json(
        &http,
        &base,
        json!({"id": "pub", "displayName": "pub", "device": {"name": "t"}}),
    )
    .await;
    let t = create_plain_transport(&http, &base, "pub", true).await;
    let tid = t["id"].as_str().unwrap();
    let opus = |ssrc: u32| {
        json!({"kind": "audio", "rtpParameters": {
            "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}],
            "encodings": [{"ssrc": ssrc}],
            "rtcp": {"cname": "pub"},
        }})
    };
    let produced = post_json(
        &http,
        &format!("{base}/pub/transports/{tid}/producers"),
        opus(1111),
    )
    .await;
    let producer = produced["id"].as_str().unwrap();
    let (s, v) = status_and_json(
        http.post(format!("{base}/pub/transports/{tid}/producers"))
            .json(&opus(2222)),
    )
    .await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"], "too many producers: at most 1 per peer");

    post_json(
        &http,
        &base,
        json!({"id": "sub", "displayName": "sub", "device": {"name": "t"},
               "rtpCapabilities": caps}),
    )
    .await;
    let t = create_plain_transport(&http, &base, "sub", false).await;
    let consume = format!(
        "{base}/sub/transports/{}/consume?producerId={producer}",
        t["id"].as_str().unwrap()
    );
    let (s, v) = status_and_json(http.post(&consume).json(&json!({}))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = status_and_json(http.post(&consume).json(&json!({}))).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"], "too many consumers: at most 1 per peer");

    // A third peer in r2 (two broadcasters there) is refused by REST too.
    let (s, v) = status_and_json(
        http.post(&base)
            .json(&json!({"id": "third", "displayName": "t", "device": {"name": "t"}})),
    )
    .await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"], "room full: at most 2 peers");

    // Two rooms open: a third room is refused as by a full node, and /readyz says so.
    assert_refused(&sup, "r3", "p9", 503, 1013).await;
    let (s, v) = status_and_json(http.get(sup.url("/readyz"))).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["status"], "full", "{v}");
    assert_eq!(v["reason"], "node full: at most 2 rooms", "{v}");
    let (s, v) = status_and_json(
        http.post(sup.url("/rooms/r4/broadcasters"))
            .json(&json!({"id": "b", "displayName": "b", "device": {"name": "t"}})),
    )
    .await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"], "node full: at most 2 rooms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_second_per_peer_and_per_token() {
    let sup = start(
        "26875-26884",
        "requests_per_second = 5\nrest_requests_per_second = 2",
        &["env", &format!("FERROSFU_JWT_SECRET={SECRET}")],
        &[],
    );
    let http = reqwest::Client::new();
    let tok = token(SECRET, "rate", "p1", "publish", 60);
    let mut c = ProtooClient::connect(sup.http, "rate", "p1", Some(&tok))
        .await
        .unwrap();
    // A burst of 10 (twice the rate) is answered; the requests beyond it get 429. Sent at once
    // (answers read after), so a slow machine's round trips do not refill the bucket.
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            c.send_request("getRouterRtpCapabilities", json!({}))
                .await
                .unwrap(),
        );
    }
    let mut limited = 0;
    for id in ids {
        match c.response(id).await.unwrap() {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code, 429, "{e:?}");
                assert!(
                    e.reason
                        .starts_with("too many requests: at most 5 per second"),
                    "{e:?}"
                );
                limited += 1;
            }
        }
    }
    assert!(limited >= 5, "{limited} of 20 limited");
    // A flood (far beyond 4 x the rate, without reading answers) is disconnected.
    for i in 0..200 {
        let frame = json!({"request": true, "id": 1000 + i, "method": "getRouterRtpCapabilities", "data": {}});
        if c.send(frame).await.is_err() {
            break;
        }
    }
    assert_eq!(
        c.close_code(Duration::from_secs(10)).await.unwrap(),
        Some(4429)
    );

    // REST: 4 requests (a burst of twice 2/s) pass per token, then 429 with Retry-After; another
    // token has its own budget; requests without a token are not counted (and refused: 401).
    let admin = token(SECRET, "*", "ops", "admin", 60);
    let other = token(SECRET, "rate", "ops2", "publish", 60);
    let url = sup.url("/rooms/rate");
    // Sent at once, so a slow machine does not refill the bucket between them.
    let answers =
        futures_util::future::join_all((0..8).map(|_| http.get(&url).bearer_auth(&admin).send()))
            .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for r in answers {
        let r = r.unwrap();
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").cloned();
        }
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s != 429).count() >= 4,
        "{statuses:?}"
    );
    assert!(retry_after.is_some_and(|v| v.to_str().unwrap().parse::<u64>().unwrap() >= 1));
    let r = http.get(&url).bearer_auth(&other).send().await.unwrap();
    assert_ne!(r.status(), 429);
    for _ in 0..10 {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_sockets_per_ip() {
    let sup = start("26885-26894", "ws_connections_per_ip = 2", &[], &["--dev"]);
    let mut a = ProtooClient::connect(sup.http, "ip", "a", None)
        .await
        .unwrap();
    a.client_caps().await.unwrap();
    let mut b = ProtooClient::connect(sup.http, "ip", "b", None)
        .await
        .unwrap();
    b.client_caps().await.unwrap();
    assert_refused(&sup, "ip", "c", 429, 4429).await;
    // One leaves: its place is free again.
    a.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = ProtooClient::connect(sup.http, "ip", "c", None)
            .await
            .unwrap();
        match c
            .request("getRouterRtpCapabilities", json!({}))
            .await
            .unwrap()
        {
            Ok(_) => break,
            Err(e) if e.code == 429 && tokio::time::Instant::now() < deadline => {
                // The server may not have seen a's close yet: wait for the refusal to end.
                c.close_code(Duration::from_secs(10)).await.unwrap();
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}
