//! Graceful drain of a real supervisor process: SIGTERM (or `POST /api/drain`) makes the node
//! refuse new rooms (`/readyz` 503 `draining`, `/livez` still 200), tells every peer
//! `serverDraining {deadline}` (those joining an open room later too), keeps the open meetings
//! until their last peer leaves, then exits 0; the deadline closes what is left; a second
//! SIGTERM stops at once. Every wait is on an event (a notification, a closed socket, the
//! process exit), not on a sleep.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::protoo::ProtooClient;
use ferrosfu_tests::{SupervisorProcess, status_and_json};
use nix::sys::signal::{Signal, kill};
use serde_json::{Value, json};

/// The log lines of an exited supervisor, to the end of its output (or 10 s).
fn rest_of_log(sup: &SupervisorProcess) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut log = Vec::new();
    while let Ok(l) = sup
        .lines
        .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        log.push(l);
    }
    log
}

async fn joined(sup: &SupervisorProcess, room: &str, peer: &str) -> ProtooClient {
    ProtooClient::joined(sup.http, room, peer).await.unwrap()
}

/// The `deadline` field of `v` (Unix ms), checked against `timeout_s` from now.
fn deadline_of(v: &Value, timeout_s: i64) -> i64 {
    let deadline = v["deadline"].as_i64().unwrap();
    let expect = chrono::Utc::now().timestamp_millis() + timeout_s * 1000;
    // Generous: the notice left a moment ago on a loaded machine.
    assert!(
        (expect - 60_000..=expect + 1000).contains(&deadline),
        "{v} vs {expect}"
    );
    deadline
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_until_the_last_peer_of_the_open_rooms_leaves() {
    let mut sup =
        SupervisorProcess::start_on_loopback("26600-26649", &["--dev", "--drain-timeout-s", "600"]);
    let http = reqwest::Client::new();
    let mut alice = joined(&sup, "open", "alice").await;

    kill(sup.pid(), Signal::SIGTERM).unwrap();
    let notice = alice.wait_for("serverDraining").await.unwrap();
    let deadline = deadline_of(&notice["data"], 600);

    // Not ready for new rooms, but alive.
    let (status, body) = status_and_json(http.get(sup.url("/readyz"))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "draining", "{body}");
    assert_eq!(body["drainDeadline"], deadline, "{body}");
    let (status, body) = status_and_json(http.get(sup.url("/livez"))).await;
    assert_eq!((status, &body["status"]), (200, &json!("alive")), "{body}");

    // A new room is refused (protoo and REST); the open one admits a late peer, who is told.
    let mut bob = ProtooClient::connect(sup.http, "new", "bob", None)
        .await
        .unwrap();
    let refused = bob
        .request("getRouterRtpCapabilities", json!({}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code, 503, "{refused}");
    assert!(refused.reason.contains("draining"), "{refused}");
    bob.wait_closed(Duration::from_secs(10)).await.unwrap();
    let (status, body) = status_and_json(
        http.post(sup.url("/rooms/new-rest/broadcasters"))
            .json(&json!({"id": "x", "displayName": "x", "device": {"name": "test"}})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let mut carol = joined(&sup, "open", "carol").await;
    let late = carol.wait_for("serverDraining").await.unwrap();
    assert_eq!(late["data"]["deadline"], deadline, "{late}");

    // The meeting is still on: the process waits for it.
    assert!(sup.child.try_wait().unwrap().is_none());
    alice.close().await;
    assert!(sup.child.try_wait().unwrap().is_none(), "carol is still in");
    carol.close().await;
    let status = sup
        .wait_exit(Duration::from_secs(30))
        .expect("the supervisor exits once its last room is empty");
    assert!(status.success(), "{status:?}");
    let log = rest_of_log(&sup);
    assert!(
        log.iter().any(|l| l.contains("drained: no room is open")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_api_drain_closes_what_is_left_at_the_deadline() {
    let mut sup =
        SupervisorProcess::start_on_loopback("26650-26699", &["--dev", "--drain-timeout-s", "2"]);
    let http = reqwest::Client::new();
    let mut alice = joined(&sup, "stays", "alice").await;

    // Admin only: a token that is not an admin's is refused even in dev mode.
    let (status, body) =
        status_and_json(http.post(sup.url("/api/drain")).bearer_auth("not-a-token")).await;
    assert!(matches!(status, 401 | 403), "{status} {body}");
    let (status, _) = status_and_json(http.get(sup.url("/readyz"))).await;
    assert_eq!(status, 200, "a refused drain request drains nothing");

    let (status, body) = status_and_json(http.post(sup.url("/api/drain"))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "draining", "{body}");
    let deadline = deadline_of(&body, 2);
    let notice = alice.wait_for("serverDraining").await.unwrap();
    assert_eq!(notice["data"]["deadline"], deadline, "{notice}");
    // Asked again: the same drain.
    let (status, again) = status_and_json(http.post(sup.url("/api/drain"))).await;
    assert_eq!((status, &again["deadline"]), (202, &json!(deadline)));

    // Alice stays; at the deadline the node closes her room and exits 0.
    alice.wait_closed(Duration::from_secs(30)).await.unwrap();
    let status = sup
        .wait_exit(Duration::from_secs(30))
        .expect("the supervisor exits after the drain deadline");
    assert!(status.success(), "{status:?}");
    let log = rest_of_log(&sup);
    assert!(
        log.iter()
            .any(|l| l.contains("drain deadline: closing the rooms left")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_stops_at_once() {
    let mut sup =
        SupervisorProcess::start_on_loopback("26700-26749", &["--dev", "--drain-timeout-s", "600"]);
    let mut alice = joined(&sup, "stays", "alice").await;
    kill(sup.pid(), Signal::SIGTERM).unwrap();
    alice.wait_for("serverDraining").await.unwrap();
    kill(sup.pid(), Signal::SIGTERM).unwrap();
    alice.wait_closed(Duration::from_secs(30)).await.unwrap();
    let status = sup
        .wait_exit(Duration::from_secs(30))
        .expect("a second SIGTERM stops the supervisor");
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_drain_timeout_is_bounded_and_shown() {
    let out = std::process::Command::new(ferrosfu_tests::bin("ferrosfu"))
        .args(["--drain-timeout-s", "86401", "--print-config"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("drain_timeout_s"),
        "{stderr}"
    );
    let out = std::process::Command::new(ferrosfu_tests::bin("ferrosfu"))
        .env_remove("FERROSFU_DRAIN_TIMEOUT_S")
        .arg("--print-config")
        .output()
        .unwrap();
    let cfg: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cfg["supervisor"]["drain_timeout_s"], 1800, "{cfg}");
}
