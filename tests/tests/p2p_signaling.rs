//! Two-party calls' signaling on a real supervisor, with protoo clients over WebSocket (no
//! media): both peers that announce `device.p2p` hear `p2pStart`; `p2pSignal` is relayed to the
//! partner only (to anyone else 403, malformed 400, oversized 413); peers that never report
//! `p2pConnected` fall back to the SFU (`p2pStop` reason `timeout`) within 10 s and are not told
//! again; a third peer is never part of it; an end-to-end encrypted room refuses recordings
//! with a clear error.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use ferrosfu_tests::protoo::ProtooClient;
use ferrosfu_tests::{SupervisorProcess, status_and_json};
use serde_json::{Value, json};

async fn joined(sup: &SupervisorProcess, room: &str, peer: &str, device: Value) -> ProtooClient {
    let mut c = ProtooClient::connect(sup.http, room, peer, None)
        .await
        .unwrap();
    let caps = c.client_caps().await.unwrap();
    c.ok(
        "join",
        json!({"displayName": peer, "device": device, "rtpCapabilities": caps}),
    )
    .await
    .unwrap();
    c
}

fn code(r: Result<Value, ferrosfu_tests::protoo::ProtooError>) -> u64 {
    r.expect_err("refused").code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_go_to_the_partner_only_and_a_silent_pair_falls_back() {
    let dir = std::env::temp_dir().join(format!("ferrosfu-p2p-sig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("p2p.db").display());
    let sup =
        SupervisorProcess::start_on_loopback("27000-27019", &["--dev", "--database-url", &db]);
    let mut a = joined(&sup, "p2p-sig", "a", json!({"p2p": true})).await;
    let mut b = joined(&sup, "p2p-sig", "b", json!({"p2p": true})).await;
    let start_a = a.wait_for("p2pStart").await.unwrap();
    let started = Instant::now();
    assert_eq!(start_a["data"]["peerId"], "b");
    assert_eq!(start_a["data"]["polite"], false);
    assert!(start_a["data"]["iceServers"].is_array());
    let start_b = b.wait_for("p2pStart").await.unwrap();
    assert_eq!(
        (&start_b["data"]["peerId"], &start_b["data"]["polite"]),
        (&json!("a"), &json!(true))
    );

    // An offer is relayed to b as a request; a's request is answered once b accepted.
    let offer = json!({"peerId": "b", "description": {"type": "offer", "sdp": "v=0\r\n"}});
    let id = a.send_request("p2pSignal", offer).await.unwrap();
    let relayed = b.wait_for("p2pSignal").await.unwrap();
    assert_eq!(relayed["request"], true);
    assert_eq!(relayed["data"]["peerId"], "a");
    assert_eq!(relayed["data"]["description"]["sdp"], "v=0\r\n");
    b.send(json!({"response": true, "id": relayed["id"], "ok": true, "data": {}}))
        .await
        .unwrap();
    a.response(id).await.unwrap().unwrap();
    // The end of candidates, b to a; a refuses it (its app says why): b hears the refusal.
    let id = b
        .send_request("p2pSignal", json!({"peerId": "a", "candidate": null}))
        .await
        .unwrap();
    let relayed = a.wait_for("p2pSignal").await.unwrap();
    assert_eq!(relayed["data"], json!({"peerId": "b", "candidate": null}));
    a.send(json!({"response": true, "id": relayed["id"], "ok": false,
        "errorCode": 409, "errorReason": "no call"}))
        .await
        .unwrap();
    assert_eq!(code(b.response(id).await.unwrap()), 409);

    // Bad input: typed errors, nothing relayed, the socket stays.
    let bad = [
        (json!({"peerId": "nobody", "candidate": null}), 403),
        (json!({"peerId": "a", "candidate": null}), 403), // to itself
        (json!({"candidate": null}), 400),
        (json!({"peerId": 7, "candidate": null}), 400),
        (json!("offer"), 400),
        (
            json!({"peerId": "b", "description": {"type": "bogus", "sdp": ""}}),
            400,
        ),
        (
            json!({"peerId": "b", "description": {"type": "offer"}}),
            400,
        ),
        (json!({"peerId": "b", "candidate": {"sdpMid": "0"}}), 400),
        (json!({"peerId": "b", "candidate": null, "extra": 1}), 400),
        (
            json!({"peerId": "b", "description": {"type": "offer", "sdp": "a".repeat(100_000)}}),
            413,
        ),
    ];
    for (data, want) in bad {
        let r = a.request("p2pSignal", data.clone()).await.unwrap();
        assert_eq!(code(r), want, "{data:.200}");
    }
    let e = b
        .request("join", json!({"device": {"p2p": "yes"}}))
        .await
        .unwrap();
    assert_eq!(code(e), 400);

    // Neither says p2pConnected: both fall back to the SFU within 10 s (8 s by default).
    let stop = a.wait_for("p2pStop").await.unwrap();
    let after = started.elapsed();
    assert_eq!(stop["data"], json!({"peerId": "b", "reason": "timeout"}));
    assert_eq!(
        b.wait_for("p2pStop").await.unwrap()["data"]["reason"],
        "timeout"
    );
    assert!(after < Duration::from_secs(10), "fell back after {after:?}");
    eprintln!("fell back to the SFU {after:?} after p2pStart");
    let r = a
        .request("p2pSignal", json!({"peerId": "b", "candidate": null}))
        .await
        .unwrap();
    assert_eq!(code(r), 403);
    assert_eq!(
        code(a.request("p2pConnected", json!({})).await.unwrap()),
        409
    );

    // The server says so, and keeps the history.
    let http = reqwest::Client::new();
    let (status, room) = status_and_json(http.get(sup.admin_url("/api/rooms/p2p-sig"))).await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(room["p2p"]["phase"], "sfu");
    assert_eq!(room["p2p"]["history"][0]["reason"], "timeout");

    // A third peer joins: nobody is told to go direct; the failed pair is not told again.
    let mut c = joined(&sup, "p2p-sig", "c", json!({"p2p": true})).await;
    c.ok("getRouterRtpCapabilities", json!({})).await.unwrap();
    for p in [&mut a, &mut b, &mut c] {
        let late = p.wait_for("p2pStart");
        assert!(
            tokio::time::timeout(Duration::from_millis(500), late)
                .await
                .is_err()
        );
    }

    // The store: the meeting's settings keep the mode history; a participant that leaves has
    // its P2P time and modes in its stats.
    a.close().await;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&db)
        .await
        .unwrap();
    let mut row = (String::new(), String::new());
    for _ in 0..100 {
        let settings: Option<(String,)> = sqlx::query_as(
            "SELECT CAST(settings AS TEXT) FROM meetings WHERE meeting_code = 'p2p-sig'",
        )
        .fetch_optional(&pool)
        .await
        .unwrap();
        let stats: Option<(String,)> = sqlx::query_as(
            "SELECT CAST(stats AS TEXT) FROM participants \
             WHERE user_id = 'a' AND left_at IS NOT NULL",
        )
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let (Some(s), Some(p)) = (settings, stats) {
            row = (s.0, p.0);
            if row.0.contains("modeHistory") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settings: Value = serde_json::from_str(&row.0).unwrap();
    assert_eq!(settings["p2p"], "auto", "{settings}");
    assert_eq!(
        settings["modeHistory"][0]["reason"], "timeout",
        "{settings}"
    );
    let stats: Value = serde_json::from_str(&row.1).unwrap();
    assert_eq!(stats["p2pSeconds"], 0.0, "{stats}");
    assert!(stats["modes"].is_array(), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_to_end_encrypted_room_refuses_recordings_and_p2p_off_rooms_stay_on_the_sfu() {
    let sup = SupervisorProcess::start_on_loopback("27020-27039", &["--dev"]);
    let _a = joined(&sup, "e2ee-room", "a", json!({"e2ee": true})).await;
    let http = reqwest::Client::new();
    let (status, body) = status_and_json(
        http.post(sup.url("/api/rooms/e2ee-room/recordings"))
            .json(&json!({"peerId": "a"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("end-to-end encrypted"), "{body}");
    let (_, room) = status_and_json(http.get(sup.admin_url("/api/rooms/e2ee-room"))).await;
    assert_eq!(room["e2ee"], true);

    // The key relay: a public key goes to the others (and to later joiners), a wrapped frame
    // key to the one peer it names; bad keys get typed errors.
    let mut a = _a;
    let mut b = joined(&sup, "e2ee-room", "b", json!({"e2ee": true})).await;
    let point = format!("B{}=", "A".repeat(86)); // base64 of 0x04 and 64 zero bytes
    a.ok("e2eeKey", json!({"publicKey": point})).await.unwrap();
    let heard = b.wait_for("e2eeKey").await.unwrap();
    assert_eq!(heard["data"], json!({"peerId": "a", "publicKey": point}));
    let c = joined(&sup, "e2ee-room", "c", json!({"e2ee": true})).await;
    let mut c = c;
    assert_eq!(c.wait_for("e2eeKey").await.unwrap()["data"]["peerId"], "a");
    let key = json!({"peerId": "b", "keyId": 3, "wrapped": "A".repeat(64), "iv": "A".repeat(16)});
    a.ok("e2eeSenderKey", key).await.unwrap();
    let relayed = b.wait_for("e2eeSenderKey").await.unwrap();
    assert_eq!(relayed["data"]["peerId"], "a");
    assert_eq!(relayed["data"]["keyId"], 3);
    for (method, data, want) in [
        ("e2eeKey", json!({"publicKey": "AAAA"}), 400),
        ("e2eeKey", json!({"publicKey": "A".repeat(5000)}), 413),
        ("e2eeKey", json!({}), 400),
        (
            "e2eeSenderKey",
            json!({"peerId": "nobody", "keyId": 0, "wrapped": "A".repeat(64), "iv": "A".repeat(16)}),
            404,
        ),
        (
            "e2eeSenderKey",
            json!({"peerId": "b", "keyId": 256, "wrapped": "A".repeat(64), "iv": "A".repeat(16)}),
            400,
        ),
        (
            "e2eeSenderKey",
            json!({"peerId": "b", "keyId": 0, "wrapped": "A".repeat(64), "iv": "AAAA"}),
            400,
        ),
    ] {
        assert_eq!(
            code(a.request(method, data.clone()).await.unwrap()),
            want,
            "{method} {data:.100}"
        );
    }

    // `p2p=off` in the first peer's URL: two capable peers stay on the SFU.
    let url_room = "p2p-off-room";
    let mut a = ProtooClient::connect(sup.http, &format!("{url_room}&p2p=off"), "a", None)
        .await
        .unwrap();
    let caps = a.client_caps().await.unwrap();
    a.ok(
        "join",
        json!({"device": {"p2p": true}, "rtpCapabilities": caps}),
    )
    .await
    .unwrap();
    let _b = joined(&sup, url_room, "b", json!({"p2p": true})).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1000), a.wait_for("p2pStart"))
            .await
            .is_err()
    );
    let (_, room) =
        status_and_json(http.get(sup.admin_url(&format!("/api/rooms/{url_room}")))).await;
    assert_eq!(room["p2p"]["mode"], "off");
    // A bad mode in the URL is refused before the upgrade.
    assert!(
        ProtooClient::connect(sup.http, "x&p2p=sometimes", "a", None)
            .await
            .is_err()
    );
}
