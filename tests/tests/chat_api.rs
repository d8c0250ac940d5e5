//! `GET /api/rooms/:roomId/chat` on the real supervisor: chat stored in its SQLite file (written
//! beforehand through the store, as a room does) is served to an admin token, refused without
//! one, 404 for a room that never met, and still there after the supervisor restarts. A room
//! opened by a peer that joins has a meeting, hence an (empty) chat.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use chrono::{TimeZone, Utc};
use ferrosfu::store::{Store, UserRef, Write};
use ferrosfu_tests::protoo::{self, ProtooClient};
use ferrosfu_tests::{SupervisorProcess, TempDir};
use nix::sys::signal::{Signal, kill};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "a-chat-test-secret-of-32-bytes!!";
const RTC_PORTS: &str = "26300-26349";

/// Meeting `town-hall` with Alice and Bob and 130 messages, alternating.
async fn write_chat(url: &str) {
    let store = Store::open(url).await.unwrap();
    let at = |s: i64| {
        Utc.timestamp_millis_opt(1_767_323_045_678 + s * 1000)
            .single()
            .unwrap()
    };
    store.write(Write::MeetingStarted {
        id: "th-m".into(),
        code: "town-hall".into(),
        creator: None,
        settings: json!({}),
        at: at(0),
    });
    for (part, peer, name) in [("th-a", "alice", "Alice"), ("th-b", "bob", "Bob")] {
        store.write(Write::ParticipantJoined {
            id: part.into(),
            meeting_code: "town-hall".into(),
            user: UserRef {
                id: peer.into(),
                display_name: name.into(),
            },
            display_name: name.into(),
            at: at(1),
        });
    }
    for i in 0..130 {
        let (part, name) = if i % 2 == 0 {
            ("th-a", "Alice")
        } else {
            ("th-b", "Bob")
        };
        store.write(Write::ChatMessageSent {
            id: format!("th-{i:03}"),
            participant_id: part.into(),
            display_name: name.into(),
            text: format!("point {i}"),
            at: at(10 + i),
        });
    }
    assert!(store.flush(Duration::from_secs(10)).await);
    assert_eq!((store.stats().rejected, store.stats().dropped), (0, 0));
    store.close(Duration::from_secs(10)).await;
}

fn start(dir: &TempDir, url: &str) -> SupervisorProcess {
    let cfg = dir.0.join("ferrosfu.toml");
    std::fs::write(&cfg, format!("[auth]\njwt_secret = \"{SECRET}\"\n")).unwrap();
    SupervisorProcess::start_on_loopback(
        RTC_PORTS,
        &["--config", cfg.to_str().unwrap(), "--database-url", url],
    )
}

async fn chat(sup: &SupervisorProcess, room: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().get(sup.url(&format!("/api/rooms/{room}/chat")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// The ids of the messages of an answer that must be 200.
fn ids(answer: (StatusCode, Value)) -> Vec<String> {
    let (status, v) = answer;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_stored_chat_across_a_restart() {
    let dir = TempDir::new("chat-api");
    let url = format!("sqlite://{}", dir.0.join("ferrosfu.db").display());
    write_chat(&url).await;
    let admin = protoo::token(SECRET, "town-hall", "operator", "admin", 60);
    let last_100: Vec<_> = (30..130).map(|i| format!("th-{i:03}")).collect();

    let mut sup = start(&dir, &url);
    let (status, v) = chat(&sup, "town-hall", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["roomId"], "town-hall");
    assert_eq!(
        v["messages"][0],
        json!({
            "id": "th-030",
            "peerId": "alice",
            "displayName": "Alice",
            "sentAt": "2026-01-02T03:04:45.678Z",
            "text": "point 30",
        })
    );
    assert_eq!(ids((status, v)), last_100);

    let (status, v) = chat(&sup, "town-hall", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let publisher = protoo::token(SECRET, "town-hall", "alice", "publish", 60);
    let (status, v) = chat(&sup, "town-hall", Some(&publisher)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let everywhere = protoo::token(SECRET, "*", "operator", "admin", 60);
    let (status, v) = chat(&sup, "never-met", Some(&everywhere)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].as_str().unwrap().contains("never-met"), "{v}");

    // A room a peer opens has a meeting (written by the room), with no chat yet.
    let live = protoo::token(SECRET, "live", "carol", "publish", 60);
    let mut carol = ProtooClient::connect(sup.http, "live", "carol", Some(&live))
        .await
        .unwrap();
    let caps = carol.client_caps().await.unwrap();
    carol.join("Carol", &caps).await.unwrap();
    let mut answer = (StatusCode::NOT_FOUND, Value::Null);
    for _ in 0..100 {
        answer = chat(&sup, "live", Some(&everywhere)).await;
        if answer.0 != StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer.1, json!({ "roomId": "live", "messages": [] }));
    carol.close().await;

    // A restart keeps the history.
    kill(sup.pid(), Signal::SIGTERM).unwrap();
    let exited = tokio::task::block_in_place(|| sup.wait_exit(Duration::from_secs(30)));
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    drop(sup);
    let sup = start(&dir, &url);
    assert_eq!(
        ids(chat(&sup, "town-hall", Some(&everywhere)).await),
        last_100
    );
}
