//! The endpoint over real HTTP on loopback, on an in-memory store and a real JWT policy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{TimeZone, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ApiState, routes};
use crate::auth::{Auth, Claims, Role};
use crate::store::{Store, UserRef, Write};

const SECRET: &str = "chat-api-test-secret-0123456789";

fn token(room: &str, role: Role) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        + 600;
    let claims = Claims {
        room: room.into(),
        peer: "operator".into(),
        role,
        exp,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode token")
}

/// A store with meeting `room1` (120 messages, alternating Alice and Bob) and the empty
/// meeting `quiet`.
async fn store_with_chat() -> Store {
    let store = Store::open("sqlite::memory:").await.expect("store");
    let at = |s: i64| {
        Utc.timestamp_millis_opt(1_767_323_045_678 + s * 1000)
            .single()
            .expect("valid time")
    };
    for code in ["room1", "quiet"] {
        store.write(Write::MeetingStarted {
            id: format!("{code}-m"),
            code: code.into(),
            creator: None,
            settings: json!({}),
            at: at(0),
        });
    }
    for (part, peer, name) in [("p-a", "alice", "Alice"), ("p-b", "bob", "Bob")] {
        store.write(Write::ParticipantJoined {
            id: part.into(),
            meeting_code: "room1".into(),
            user: UserRef {
                id: peer.into(),
                display_name: name.into(),
            },
            display_name: name.into(),
            at: at(1),
        });
    }
    for i in 0..120 {
        let (part, name) = if i % 2 == 0 {
            ("p-a", "Alice")
        } else {
            ("p-b", "Bob")
        };
        store.write(Write::ChatMessageSent {
            id: format!("c{i:03}"),
            participant_id: part.into(),
            display_name: name.into(),
            text: format!("hello {i}"),
            at: at(10 + i),
        });
    }
    assert!(store.flush(Duration::from_secs(10)).await);
    assert_eq!(store.stats().rejected, 0);
    store
}

/// Serves the chat routes on a loopback port.
async fn serve(store: Store, dev: bool) -> SocketAddr {
    let app = routes(ApiState {
        store,
        auth: Arc::new(Auth::new(Some(SECRET), dev, vec![])),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// `GET path` (HTTP/1.1, connection closed after): status and JSON body.
async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let raw = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, serde_json::from_str(body).expect("JSON body"))
}

fn ids(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

fn range(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("c{i:03}")).collect()
}

#[tokio::test]
async fn admin_reads_the_last_messages_oldest_first() {
    let addr = serve(store_with_chat().await, false).await;
    let admin = token("room1", Role::Admin);
    let (status, v) = get(addr, "/api/rooms/room1/chat", Some(&admin)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["roomId"], "room1");
    assert_eq!(ids(&v), range(20, 120), "default limit 100");
    assert_eq!(
        v["messages"][0],
        json!({
            "id": "c020",
            "peerId": "alice",
            "displayName": "Alice",
            "sentAt": "2026-01-02T03:04:35.678Z",
            "text": "hello 20",
        })
    );
    assert_eq!(v["messages"][99]["peerId"], "bob");

    let (status, v) = get(addr, "/api/rooms/room1/chat?limit=3", Some(&admin)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ids(&v), range(117, 120));
    let (status, v) = get(addr, "/api/rooms/room1/chat?limit=1000", Some(&admin)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ids(&v), range(0, 120));

    // A token for every room works too; a meeting without chat has an empty list.
    let all = token("*", Role::Admin);
    let (status, v) = get(addr, "/api/rooms/room1/chat?limit=1", Some(&all)).await;
    assert_eq!((status, ids(&v)), (200, range(119, 120)));
    let (status, v) = get(addr, "/api/rooms/quiet/chat", Some(&all)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({ "roomId": "quiet", "messages": [] }));
}

#[tokio::test]
async fn refusals_are_typed_json_errors() {
    let addr = serve(store_with_chat().await, false).await;
    let admin = token("room1", Role::Admin);
    let cases = [
        ("/api/rooms/room1/chat", None, 401),
        ("/api/rooms/room1/chat", Some("not-a-jwt".to_owned()), 401),
        (
            "/api/rooms/room1/chat",
            Some(token("room1", Role::Publish)),
            403,
        ),
        (
            "/api/rooms/room1/chat",
            Some(token("room2", Role::Admin)),
            403,
        ),
        (
            "/api/rooms/nowhere/chat",
            Some(token("*", Role::Admin)),
            404,
        ),
        ("/api/rooms/nowhere/chat", None, 401),
        ("/api/rooms/room1/chat?limit=0", Some(admin.clone()), 400),
        ("/api/rooms/room1/chat?limit=1001", Some(admin.clone()), 400),
        ("/api/rooms/room1/chat?limit=ten", Some(admin.clone()), 400),
        ("/api/rooms/room1/chat?since=1", Some(admin.clone()), 400),
    ];
    for (path, token, want) in cases {
        let (status, v) = get(addr, path, token.as_deref()).await;
        assert_eq!(status, want, "{path} {token:?}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {v}"
        );
    }
    let (_, v) = get(
        addr,
        "/api/rooms/nowhere/chat",
        Some(&token("*", Role::Admin)),
    )
    .await;
    assert_eq!(v["error"], "room \"nowhere\" has no meeting");
}

#[tokio::test]
async fn dev_mode_lets_requests_without_a_token_in() {
    let addr = serve(store_with_chat().await, true).await;
    let (status, v) = get(addr, "/api/rooms/room1/chat?limit=2", None).await;
    assert_eq!((status, ids(&v)), (200, range(118, 120)));
    // A token that is present is still checked.
    let (status, _) = get(
        addr,
        "/api/rooms/room1/chat",
        Some(&token("room1", Role::Subscribe)),
    )
    .await;
    assert_eq!(status, 403);
}
