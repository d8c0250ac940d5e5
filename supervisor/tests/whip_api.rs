//! The WHIP/WHEP HTTP API against the real binary (with a JWT secret, no `--dev`): every error
//! a client can cause gets its status and a JSON reason, a valid offer gets a 201 answer with
//! the headers RFC 9725 asks for, PATCH trickles (204) and restarts ICE (200 with new
//! credentials), DELETE ends the session. Media in browsers: tests/tests/browser_whip.rs.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::SocketAddr;

use ferrosfu::auth::{Claims, Role};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::Server;

const BIN: &str = env!("CARGO_BIN_EXE_ferrosfu");
const SECRET: &str = "whip-test-secret-0123456789";
const WHIP_OFFER: &str = include_str!("../src/whip/testdata/chrome-whip.sdp");
const WHEP_OFFER: &str = include_str!("../src/whip/testdata/chrome-whep.sdp");

fn start(ports: &str) -> Server {
    Server::start(BIN, "whip", ports, &[], &[("FERROSFU_JWT_SECRET", SECRET)])
}

fn token(room: &str, peer: &str, role: Role) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let c = Claims {
        room: room.into(),
        peer: peer.into(),
        role,
        exp,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &c,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn error(&self) -> String {
        let v: Value = serde_json::from_str(&self.body).unwrap_or_default();
        v["error"].as_str().unwrap_or("").to_owned()
    }
}

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn whip_and_whep_answer_every_client_error_with_its_status_and_serve_valid_offers() {
    let server = start("24400-24499");
    let a = server.addr;
    let publish = token("r1", "obs", Role::Publish);
    let bearer = format!("Bearer {publish}");
    let sdp = ("Content-Type", "application/sdp");
    let auth = ("Authorization", bearer.as_str());

    // Auth: none, another room's, a subscriber's.
    let r = http(a, "POST", "/whip/r1", &[sdp], WHIP_OFFER).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let other = format!("Bearer {}", token("r2", "obs", Role::Publish));
    let r = http(
        a,
        "POST",
        "/whip/r1",
        &[sdp, ("Authorization", &other)],
        WHIP_OFFER,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let sub = format!("Bearer {}", token("r1", "viewer", Role::Subscribe));
    let r = http(
        a,
        "POST",
        "/whip/r1",
        &[sdp, ("Authorization", &sub)],
        WHIP_OFFER,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.error().contains("may not publish"), "{}", r.body);

    // Content type, size, malformed and unusable offers.
    let r = http(
        a,
        "POST",
        "/whip/r1",
        &[("Content-Type", "text/plain"), auth],
        WHIP_OFFER,
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    let r = http(a, "POST", "/whip/r1", &[sdp, auth], "hello").await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("malformed SDP"), "{}", r.body);
    let big = format!("{WHIP_OFFER}{}", "a=x-pad:0123456789\r\n".repeat(4000));
    let r = http(a, "POST", "/whip/r1", &[sdp, auth], &big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    let no_codec = WHIP_OFFER
        .replace("VP8/90000", "XYZ/90000")
        .replace("H264/90000", "XYZ/90000")
        .replace("AV1/90000", "XYZ/90000");
    let r = http(a, "POST", "/whip/r1", &[sdp, auth], &no_codec).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("no codec ferrosfu routes"), "{}", r.body);
    let no_ice = WHIP_OFFER.replace("a=ice-ufrag:EsAw\r\n", "");
    let r = http(a, "POST", "/whip/r1", &[sdp, auth], &no_ice).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("ice-ufrag"), "{}", r.body);

    // A valid offer: 201, answer, Location, ETag.
    let r = http(a, "POST", "/whip/r1", &[sdp, auth], WHIP_OFFER).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    let location = r.header("location").unwrap().to_owned();
    assert!(
        location.starts_with("/whip/r1/") && location.len() == "/whip/r1/".len() + 32,
        "{location}"
    );
    let etag = r.header("etag").unwrap().to_owned();
    for line in [
        "a=ice-lite",
        "a=setup:passive",
        "a=recvonly",
        "a=group:BUNDLE 0 1",
        "typ host",
    ] {
        assert!(r.body.contains(line), "missing {line}: {}", r.body);
    }
    // The same peer id again.
    let r = http(a, "POST", "/whip/r1", &[sdp, auth], WHIP_OFFER).await;
    assert_eq!(r.status, 409, "{}", r.body);

    // PATCH: content type, If-Match, trickle, ICE restart.
    let frag = "application/trickle-ice-sdpfrag";
    let trickle = "a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n";
    let r = http(
        a,
        "PATCH",
        &location,
        &[("Content-Type", "text/plain"), auth],
        trickle,
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    let r = http(
        a,
        "PATCH",
        &location,
        &[("Content-Type", frag), ("If-Match", "\"nope\""), auth],
        trickle,
    )
    .await;
    assert_eq!(r.status, 412, "{}", r.body);
    let r = http(
        a,
        "PATCH",
        &location,
        &[("Content-Type", frag), ("If-Match", &etag), auth],
        trickle,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let restart = "a=ice-ufrag:NeWu\r\na=ice-pwd:new-password-0123456789ab\r\n";
    let r = http(
        a,
        "PATCH",
        &location,
        &[("Content-Type", frag), ("If-Match", "*"), auth],
        restart,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some(frag));
    assert!(
        r.body.contains("a=ice-ufrag:") && r.body.contains("a=candidate:"),
        "{}",
        r.body
    );
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    let r = http(
        a,
        "PATCH",
        "/whip/r1/00000000000000000000000000000000",
        &[("Content-Type", frag), auth],
        trickle,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // WHEP: an unknown room, an unknown peer, then the WHIP publisher.
    let viewer = format!("Bearer {}", token("r1", "viewer", Role::Subscribe));
    let vauth = ("Authorization", viewer.as_str());
    let nowhere = format!("Bearer {}", token("nowhere", "viewer", Role::Subscribe));
    let r = http(
        a,
        "POST",
        "/whep/nowhere",
        &[sdp, ("Authorization", &nowhere)],
        WHEP_OFFER,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http(a, "POST", "/whep/r1?peer=nobody", &[sdp, vauth], WHEP_OFFER).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http(a, "POST", "/whep/r1?peer=obs", &[sdp, vauth], WHEP_OFFER).await;
    assert_eq!(r.status, 201, "{}", r.body);
    for line in [
        "a=sendonly",
        "a=ssrc-group:FID",
        "a=msid:obs ",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    ] {
        assert!(r.body.contains(line), "missing {line}: {}", r.body);
    }
    let whep = r.header("location").unwrap().to_owned();
    assert!(whep.starts_with("/whep/r1/"), "{whep}");

    // DELETE ends the sessions; a second DELETE finds nothing.
    for loc in [&whep, &location] {
        let r = http(a, "DELETE", loc, &[auth], "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = http(a, "DELETE", loc, &[auth], "").await;
        assert_eq!(r.status, 404, "{}", r.body);
    }
}
