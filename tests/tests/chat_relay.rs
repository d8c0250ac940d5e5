//! Chat through the room with real webrtc-rs peers (no browser), against the real supervisor
//! and worker: a peer's `chat` data channel is checked, stored and relayed by the room (its
//! `newDataConsumer` names the sender and its data producer); a message over 4 KiB or binary is
//! refused with `chatMessageRejected` and reaches nobody; a peer joining later hears
//! `chatHistory` with what was said; operators read the same over REST.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::SupervisorProcess;
use ferrosfu_tests::room_peer::RoomPeer;

const MESSAGE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_is_checked_stored_relayed_and_replayed_to_a_late_joiner() {
    let sup = SupervisorProcess::start_on_loopback("28100-28149", &["--dev"]);
    let room = "chat-relay";
    let mut alice = RoomPeer::join(sup.http, room, "alice").await;
    let (alice_ch, alice_dp) = alice.produce("chat", 0).await;
    let mut bob = RoomPeer::join(sup.http, room, "bob").await;
    let h = bob.protoo.wait_for("chatHistory").await.unwrap();
    assert_eq!(h["data"]["messages"], serde_json::json!([]), "{h}");
    let (mut bob_in, offer) = bob.accept_data_consumer().await;
    assert_eq!(offer["peerId"], "alice");
    assert_eq!(offer["dataProducerId"], alice_dp.as_str());
    assert_eq!(offer["label"], "chat");

    alice_ch.send(true, "héllo bob".as_bytes()).await.unwrap();
    let got = bob_in.recv(MESSAGE).await.unwrap();
    assert!(got.is_string);
    assert_eq!(&got.data[..], "héllo bob".as_bytes());

    // Refused: too long, then binary. Alice is told each time; Bob gets neither.
    alice_ch
        .send(true, "x".repeat(5000).as_bytes())
        .await
        .unwrap();
    let r = alice.protoo.wait_for("chatMessageRejected").await.unwrap();
    assert_eq!(r["data"]["code"], "too_long", "{r}");
    alice_ch.send(false, &[1, 2, 3]).await.unwrap();
    let r = alice.protoo.wait_for("chatMessageRejected").await.unwrap();
    assert_eq!(r["data"]["code"], "binary", "{r}");
    alice_ch.send(true, b"after").await.unwrap();
    let got = bob_in.recv(MESSAGE).await.unwrap();
    assert_eq!(
        &got.data[..],
        b"after",
        "the refused messages never reached bob"
    );

    // Carol, late: the history, oldest first, with names.
    let mut carol = RoomPeer::join(sup.http, room, "carol").await;
    let h = carol.protoo.wait_for("chatHistory").await.unwrap();
    let texts: Vec<(&str, &str)> = h["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["displayName"].as_str().unwrap(),
                m["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(texts, [("alice", "héllo bob"), ("alice", "after")], "{h}");
    assert_eq!(h["data"]["messages"][0]["peerId"], "alice");

    // Operators read the same (--dev: no token needed).
    let r = reqwest::Client::new()
        .get(sup.url(&format!("/api/rooms/{room}/chat")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["messages"].as_array().unwrap().len(), 2, "{j}");
    let _ = carol.protoo.close().await;
}
