//! The P2P rules as a pure function of the room state and the time, then the room's P2P task
//! and the `p2pSignal` relay over a scripted worker.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::super::state::{Participant, Peer, RoomState};
use super::super::tests::{Ear, connect, room};
use super::*;
use crate::auth::Role;
use crate::media::scripted::ScriptedWorker;
use crate::rooms::Join;

const S: P2pSettings = P2pSettings {
    mode: P2pMode::Auto,
    return_after: Duration::from_secs(10),
    connect_timeout: Duration::from_secs(8),
};

/// A joined peer connected here, announcing `p2p`, that joined at `at`.
fn peer(id: &str, p2p: bool, at: Instant) -> Peer {
    let mut p = Peer::new(id, 1, Some(Arc::new(Ear::default())), Role::Publish);
    p.joined = true;
    p.device = json!({ "p2p": p2p });
    p.participant = Some(Participant {
        id: format!("part-{id}"),
        joined: at,
        producers: 0,
        p2p_since: None,
        p2p_time: Duration::ZERO,
        modes: Vec::new(),
    });
    p
}

fn add(st: &mut RoomState, p: Peer) {
    st.peers.insert(p.id.clone(), p);
}

fn pair(a: &str, b: &str) -> Pair {
    Pair {
        a: a.into(),
        b: b.into(),
    }
}

fn starts(a: &str, b: &str) -> Vec<Effect> {
    vec![
        Effect::Start {
            to: a.into(),
            other: b.into(),
            polite: false,
        },
        Effect::Start {
            to: b.into(),
            other: a.into(),
            polite: true,
        },
        Effect::Hold(pair(a, b), true),
    ]
}

fn stops(a: &str, b: &str, reason: &'static str) -> Vec<Effect> {
    vec![
        Effect::Stop {
            to: a.into(),
            other: b.into(),
            reason,
        },
        Effect::Stop {
            to: b.into(),
            other: a.into(),
            reason,
        },
        Effect::Hold(pair(a, b), false),
    ]
}

#[test]
fn two_capable_peers_are_told_to_connect_the_first_one_offers() {
    let t0 = Instant::now();
    let mut st = RoomState::default();
    add(&mut st, peer("zed", true, t0));
    assert_eq!(st.p2p_review(&S, t0), (vec![], None));
    add(&mut st, peer("amy", true, t0 + Duration::from_secs(1)));
    let (fx, wake) = st.p2p_review(&S, t0 + Duration::from_secs(1));
    // zed was first: it offers (impolite) although amy sorts before it.
    assert_eq!(fx, starts("zed", "amy"));
    assert_eq!(wake, Some(t0 + Duration::from_secs(9)));
    assert!(st.p2p.blocks("amy", "zed") && !st.p2p.blocks("amy", "amy"));
    // Nothing changed: nothing to do, same deadline.
    let (fx, wake) = st.p2p_review(&S, t0 + Duration::from_secs(2));
    assert!(fx.is_empty());
    assert_eq!(wake, Some(t0 + Duration::from_secs(9)));
}

#[test]
fn a_peer_without_p2p_or_a_room_set_off_stays_on_the_sfu() {
    let t0 = Instant::now();
    let mut st = RoomState::default();
    add(&mut st, peer("a", true, t0));
    add(&mut st, peer("b", false, t0));
    assert_eq!(st.p2p_review(&S, t0), (vec![], None));
    let mut st = RoomState::default();
    add(&mut st, peer("a", true, t0));
    add(&mut st, peer("b", true, t0));
    st.p2p.mode = Some(P2pMode::Off);
    assert_eq!(st.p2p_review(&S, t0), (vec![], None));
    // A peer of another node, or a broadcaster (no connection), never goes direct.
    let mut st = RoomState::default();
    add(&mut st, peer("a", true, t0));
    let mut b = peer("b", true, t0);
    b.link = None;
    add(&mut st, b);
    assert_eq!(st.p2p_review(&S, t0), (vec![], None));
}

#[test]
fn both_connected_make_the_call_direct_and_a_third_peer_ends_it() {
    let t0 = Instant::now();
    let mut st = RoomState::default();
    add(&mut st, peer("a", true, t0));
    add(&mut st, peer("b", true, t0 + Duration::from_millis(1)));
    st.p2p_review(&S, t0);
    assert!(st.p2p_connected("a", t0).unwrap().is_empty());
    assert!(st.p2p_connected("a", t0).unwrap().is_empty(), "said twice");
    // Held since the start: only the history changes.
    assert_eq!(st.p2p_connected("b", t0).unwrap(), vec![Effect::History]);
    assert_eq!(
        st.p2p.phase,
        Phase::Direct {
            pair: pair("a", "b")
        }
    );
    assert_eq!(st.p2p.history[0]["mode"], "p2p");
    // Past the connect deadline a direct call goes on.
    assert_eq!(
        st.p2p_review(&S, t0 + Duration::from_secs(60)),
        (vec![], None)
    );
    // A third peer joins: both go back to the SFU.
    let t1 = t0 + Duration::from_secs(61);
    add(&mut st, peer("c", true, t1));
    let (fx, _) = st.p2p_review(&S, t1);
    let mut want = stops("a", "b", "peers");
    want.push(Effect::History);
    assert_eq!(fx, want);
    assert_eq!(st.p2p.phase, Phase::Sfu);
    let a = st.peers["a"].participant.as_ref().unwrap();
    assert!(
        (a.p2p_seconds(t1) - 61.0).abs() < 0.01,
        "{}",
        a.p2p_seconds(t1)
    );
    assert_eq!(st.p2p.history[1]["reason"], "peers");
    assert_eq!(
        st.p2p_connected("a", t1),
        Err(RoomError::conflict("not in a peer-to-peer call"))
    );
}

#[test]
fn back_at_two_they_return_only_after_the_hysteresis() {
    let t0 = Instant::now();
    let mut st = RoomState::default();
    add(&mut st, peer("a", true, t0));
    add(&mut st, peer("b", true, t0 + Duration::from_millis(1)));
    add(&mut st, peer("c", true, t0 + Duration::from_millis(2)));
    assert_eq!(st.p2p_review(&S, t0), (vec![], None));
    // c leaves at t1, comes back at t1 + 3 s and leaves again at t1 + 4 s (a flap).
    let t1 = t0 + Duration::from_secs(5);
    st.peers.remove("c");
    assert_eq!(st.p2p_review(&S, t1), (vec![], Some(t1 + S.return_after)));
    add(&mut st, peer("c", true, t1 + Duration::from_secs(3)));
    assert_eq!(
        st.p2p_review(&S, t1 + Duration::from_secs(3)),
        (vec![], None)
    );
    let t2 = t1 + Duration::from_secs(4);
    st.peers.remove("c");
    assert_eq!(st.p2p_review(&S, t2), (vec![], Some(t2 + S.return_after)));
    // The old deadline passes: still waiting for the new one.
    let (fx, wake) = st.p2p_review(&S, t1 + S.return_after);
    assert!(fx.is_empty());
    assert_eq!(wake, Some(t2 + S.return_after));
    // Back from the SFU: its media goes on until both are direct.
    let (mut fx, _) = st.p2p_review(&S, t2 + S.return_after);
    let mut want = starts("a", "b");
    want.pop();
    assert_eq!(fx, want);
    st.p2p_connected("a", t2).unwrap();
    fx = st.p2p_connected("b", t2).unwrap();
    assert_eq!(
        fx,
        vec![Effect::Hold(pair("a", "b"), true), Effect::History]
    );
}

#[test]
fn a_pair_that_does_not_connect_falls_back_and_is_not_told_again() {
    let t0 = Instant::now();
    let mut st = RoomState::default();
    add(&mut st, peer("a", true, t0));
    add(&mut st, peer("b", true, t0 + Duration::from_millis(1)));
    st.p2p_review(&S, t0);
    st.p2p_connected("b", t0).unwrap();
    let (fx, wake) = st.p2p_review(&S, t0 + S.connect_timeout);
    let mut want = stops("a", "b", "timeout");
    want.push(Effect::History);
    assert_eq!(fx, want);
    assert_eq!(wake, None);
    assert_eq!(
        st.p2p_review(&S, t0 + Duration::from_secs(100)),
        (vec![], None)
    );
    // b leaves and another capable peer comes: a new pair is tried at once.
    st.peers.remove("b");
    st.p2p_review(&S, t0 + Duration::from_secs(101));
    add(&mut st, peer("d", true, t0 + Duration::from_secs(102)));
    let (fx, _) = st.p2p_review(&S, t0 + Duration::from_secs(102));
    assert_eq!(fx, starts("a", "d"));
}

#[test]
fn a_recording_holds_the_room_on_the_sfu() {
    let t0 = Instant::now();
    let mut st = RoomState::default();
    add(&mut st, peer("a", true, t0));
    add(&mut st, peer("b", true, t0 + Duration::from_millis(1)));
    st.p2p_review(&S, t0);
    st.p2p.holds = 1;
    let (fx, _) = st.p2p_review(&S, t0);
    assert_eq!(fx, stops("a", "b", "recording"));
    assert_eq!(
        st.p2p_review(&S, t0 + Duration::from_secs(60)),
        (vec![], None)
    );
    st.p2p.holds = 0;
    let t1 = t0 + Duration::from_secs(61);
    assert_eq!(st.p2p_review(&S, t1), (vec![], Some(t1 + S.return_after)));
    let mut want = starts("a", "b");
    want.pop();
    assert_eq!(st.p2p_review(&S, t1 + S.return_after).0, want);
}

#[test]
fn a_partner_that_leaves_ends_the_call_for_the_other() {
    let t0 = Instant::now();
    let mut st = RoomState::default();
    add(&mut st, peer("a", true, t0));
    add(&mut st, peer("b", true, t0 + Duration::from_millis(1)));
    st.p2p_review(&S, t0);
    st.peers.remove("a");
    let (fx, _) = st.p2p_review(&S, t0);
    assert_eq!(
        fx,
        vec![
            Effect::Stop {
                to: "b".into(),
                other: "a".into(),
                reason: "peerLeft"
            },
            Effect::Hold(pair("a", "b"), false),
        ]
    );
}

fn signal(v: Value) -> Result<(), RoomError> {
    check_signal(v.as_object().unwrap())
}

#[test]
fn signals_are_descriptions_or_candidates_of_bounded_size() {
    signal(json!({"description": {"type": "offer", "sdp": "v=0\r\n"}})).unwrap();
    signal(json!({"description": {"type": "rollback"}})).unwrap();
    signal(
        json!({"candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
        "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "u"}}),
    )
    .unwrap();
    signal(json!({"candidate": null})).unwrap();
    for bad in [
        json!({}),
        json!({"description": {"type": "offer", "sdp": "x"}, "candidate": null}),
        json!({"description": {"type": "bogus", "sdp": "x"}}),
        json!({"description": {"type": "offer"}}),
        json!({"description": {"type": "offer", "sdp": 5}}),
        json!({"description": {"type": "offer", "sdp": "x", "extra": 1}}),
        json!({"candidate": {"sdpMid": "0"}}),
        json!({"candidate": {"candidate": "c", "sdpMLineIndex": -1}}),
        json!({"candidate": "c"}),
        json!({"other": 1}),
    ] {
        assert_eq!(signal(bad.clone()).unwrap_err().status(), 400, "{bad}");
    }
    let big = "a".repeat(MAX_SIGNAL_BYTES);
    let e = signal(json!({"description": {"type": "offer", "sdp": big}})).unwrap_err();
    assert_eq!(e.status(), 413);
}

fn join_p2p(p2p: bool) -> Join {
    Join {
        device: Some(json!({ "p2p": p2p })),
        ..Join::default()
    }
}

#[tokio::test]
async fn the_room_tells_both_relays_their_signals_and_ends_it_for_a_third() {
    let worker = ScriptedWorker::start();
    let room = room(&worker).await;
    let a = connect(&room, "a", Role::Publish).await;
    room.join("a", join_p2p(true)).await.unwrap();
    let b = connect(&room, "b", Role::Publish).await;
    room.join("b", join_p2p(true)).await.unwrap();
    let sa = a.wait_for("p2pStart").await;
    assert_eq!(
        sa["data"],
        json!({"peerId": "b", "polite": false, "iceServers": []})
    );
    assert_eq!(b.wait_for("p2pStart").await["data"]["polite"], true);

    // Relayed to the partner only, checked first.
    let offer = json!({"description": {"type": "offer", "sdp": "v=0\r\n"}});
    room.p2p_signal("a", "b", offer.as_object().unwrap().clone())
        .await
        .unwrap();
    let relayed = b
        .take()
        .into_iter()
        .find(|n| n["request"] == "p2pSignal")
        .unwrap();
    assert_eq!(relayed["data"]["peerId"], "a");
    assert_eq!(relayed["data"]["description"]["type"], "offer");
    let e = room
        .p2p_signal("a", "nobody", offer.as_object().unwrap().clone())
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);

    room.p2p_connected("a").await.unwrap();
    room.p2p_connected("b").await.unwrap();
    let c = connect(&room, "c", Role::Publish).await;
    room.join("c", join_p2p(true)).await.unwrap();
    let stop = a.wait_for("p2pStop").await;
    assert_eq!(stop["data"], json!({"peerId": "b", "reason": "peers"}));
    assert_eq!(b.wait_for("p2pStop").await["data"]["peerId"], "a");
    // The third one was never part of it.
    assert!(!c.take().iter().any(|n| n["method"] == "p2pStart"));
    let e = room
        .p2p_signal("a", "b", offer.as_object().unwrap().clone())
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
}

#[tokio::test]
async fn an_e2ee_room_is_flagged_by_a_joining_peer() {
    let worker = ScriptedWorker::start();
    let room = room(&worker).await;
    connect(&room, "a", Role::Publish).await;
    assert!(!room.is_e2ee());
    room.join(
        "a",
        Join {
            device: Some(json!({"e2ee": true})),
            ..Join::default()
        },
    )
    .await
    .unwrap();
    assert!(room.is_e2ee());
}
