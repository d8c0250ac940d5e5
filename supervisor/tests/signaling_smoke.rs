//! Quick checks of the protoo endpoint and the broadcaster REST API against the real binary:
//! framing, error replies that keep the socket open, peer lifecycle notifications. The full
//! method coverage with real WebRTC media lives in tests/tests/signaling.rs.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

mod common;

use common::Server;

const BIN: &str = env!("CARGO_BIN_EXE_ferrosfu");

fn start(ports: &str) -> Server {
    Server::start(BIN, "smoke", ports, &["--dev"], &[])
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Peer {
    ws: Ws,
    next: u64,
    /// Notifications and server requests seen while waiting for responses.
    seen: Vec<Value>,
}

impl Peer {
    async fn connect(addr: SocketAddr, room: &str, peer: &str) -> Peer {
        let mut req = format!("ws://{addr}/?roomId={room}&peerId={peer}")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("protoo"));
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Peer {
            ws,
            next: 1,
            seen: Vec::new(),
        }
    }

    async fn recv(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .ok()??
                .ok()?;
            if m.is_text() {
                return serde_json::from_str(m.to_text().unwrap()).ok();
            }
            if m.is_close() {
                return None;
            }
        }
    }

    async fn request(&mut self, method: &str, data: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.ws
            .send(
                json!({"request": true, "id": id, "method": method, "data": data})
                    .to_string()
                    .into(),
            )
            .await
            .unwrap();
        loop {
            let v = self.recv().await.expect("response");
            if v["response"] == true && v["id"] == id {
                return v;
            }
            self.seen.push(v);
        }
    }

    async fn wait_for(&mut self, method: &str) -> Value {
        if let Some(i) = self.seen.iter().position(|v| v["method"] == method) {
            return self.seen.remove(i);
        }
        loop {
            let v = self
                .recv()
                .await
                .unwrap_or_else(|| panic!("{method} never came"));
            if v["method"] == method {
                return v;
            }
            self.seen.push(v);
        }
    }
}

async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    let status = resp[9..12].parse().unwrap();
    let json = resp
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn protoo_errors_keep_the_socket_and_peers_see_each_other() {
    let server = start("24200-24299");
    let mut a = Peer::connect(server.addr, "smoke", "alice").await;
    let caps = a.request("getRouterRtpCapabilities", json!({})).await;
    assert_eq!(caps["ok"], true);
    let caps = caps["data"].clone();

    let r = a.request("noSuchMethod", json!({})).await;
    assert_eq!(
        (r["ok"].clone(), r["errorCode"].clone()),
        (json!(false), json!(404))
    );
    let r = a
        .request(
            "produce",
            json!({"transportId": "x", "kind": "audio", "rtpParameters": {"codecs": []}}),
        )
        .await;
    assert_eq!(r["errorCode"], 409, "{r}"); // not joined yet
    let r = a
        .request("connectWebRtcTransport", json!({"transportId": 5}))
        .await;
    assert_eq!(r["errorCode"], 400, "{r}");
    // Garbage frames are dropped, not fatal.
    a.ws.send("not json".into()).await.unwrap();

    let t = a
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": true, "consuming": false}),
        )
        .await;
    assert_eq!(t["ok"], true, "{t}");
    let cands = t["data"]["iceCandidates"].as_array().unwrap();
    assert!(
        cands
            .iter()
            .any(|c| c["protocol"] == "udp" && c["ip"] == "127.0.0.1"),
        "{t}"
    );
    assert!(
        cands
            .iter()
            .any(|c| c["protocol"] == "tcp" && c["tcpType"] == "passive"),
        "{t}"
    );
    assert_eq!(t["data"]["iceParameters"]["iceLite"], true);
    let tid = t["data"]["id"].as_str().unwrap().to_owned();
    let r = a
        .request("getTransportStats", json!({"transportId": tid}))
        .await;
    assert_eq!(r["data"][0]["type"], "webrtc-transport", "{r}");
    let r = a.request("restartIce", json!({"transportId": tid})).await;
    assert_ne!(
        r["data"]["usernameFragment"],
        t["data"]["iceParameters"]["usernameFragment"]
    );

    let j = a
        .request(
            "join",
            json!({"displayName": "Alice", "device": {"name": "test"}, "rtpCapabilities": caps}),
        )
        .await;
    assert_eq!(j["data"]["peers"], json!([]), "{j}");
    let again = a.request("join", json!({"displayName": "Alice"})).await;
    assert_eq!(again["errorCode"], 409);

    let mut b = Peer::connect(server.addr, "smoke", "bob").await;
    let j = b
        .request(
            "join",
            json!({"displayName": "Bob", "rtpCapabilities": caps}),
        )
        .await;
    assert_eq!(j["data"]["peers"][0]["id"], "alice", "{j}");
    let n = a.wait_for("newPeer").await;
    assert_eq!(n["data"]["displayName"], "Bob");

    b.request("changeDisplayName", json!({"displayName": "Robert"}))
        .await;
    let n = a.wait_for("peerDisplayNameChanged").await;
    assert_eq!(n["data"]["oldDisplayName"], "Bob");

    // A broadcaster joins through REST; alice sees it.
    let (st, body) = http(
        server.addr,
        "POST",
        "/rooms/smoke/broadcasters",
        Some(json!({
            "id": "gst", "displayName": "Broadcaster", "device": {"name": "GStreamer"}
        })),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["peers"].as_array().unwrap().len(), 2);
    a.wait_for("newPeer").await;
    let (st, body) = http(
        server.addr,
        "POST",
        "/rooms/smoke/broadcasters/gst/transports",
        Some(json!({
            "type": "plain", "comedia": true, "rtcpMux": false
        })),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(
        body["port"].as_u64().unwrap() >= 24200 && body["rtcpPort"].is_u64(),
        "{body}"
    );
    let (st, _) = http(
        server.addr,
        "POST",
        "/rooms/smoke/broadcasters/nobody/transports",
        Some(json!({"type": "plain"})),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = http(
        server.addr,
        "POST",
        "/rooms/smoke/broadcasters",
        Some(json!({"displayName": "x"})),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _) = http(server.addr, "DELETE", "/rooms/smoke/broadcasters/gst", None).await;
    assert_eq!(st, 200);
    assert_eq!(a.wait_for("peerClosed").await["data"]["peerId"], "gst");

    // Bob reconnects with the same peerId: the old one is replaced.
    let mut b2 = Peer::connect(server.addr, "smoke", "bob").await;
    assert_eq!(a.wait_for("peerClosed").await["data"]["peerId"], "bob");
    // The old socket drains what was queued for it, then closes.
    let mut left = 0;
    while b.recv().await.is_some() {
        left += 1;
        assert!(left < 20, "old socket not closed");
    }
    b2.request("join", json!({"displayName": "Bob again"}))
        .await;
    assert_eq!(
        a.wait_for("newPeer").await["data"]["displayName"],
        "Bob again"
    );
    drop(b2);
    assert_eq!(a.wait_for("peerClosed").await["data"]["peerId"], "bob");
}

#[tokio::test]
async fn worker_death_disconnects_its_peers_and_the_room_reopens() {
    let server = start("24300-24399");
    let mut a = Peer::connect(server.addr, "doomed", "alice").await;
    a.request("join", json!({"displayName": "Alice"})).await;
    let (_, workers) = http(server.addr, "GET", "/api/workers", None).await;
    let pid = workers[0]["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The socket is closed with 1012 (protoo-client reconnects on it).
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), a.ws.next()).await {
            Ok(Some(Ok(m))) if m.is_close() => {
                break match m {
                    tokio_tungstenite::tungstenite::Message::Close(Some(f)) => u16::from(f.code),
                    _ => 0,
                };
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, 1012);
    // Once the pool restarted the worker, joining the same room works again.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while http(server.addr, "GET", "/healthz", None).await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "worker not restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        let mut a = Peer::connect(server.addr, "doomed", "alice").await;
        let r = a.request("getRouterRtpCapabilities", json!({})).await;
        let j = a.request("join", json!({"displayName": "Alice"})).await;
        if r["ok"] == true && j["ok"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "room did not reopen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
