//! The cluster layer against a real `redis-server`: in-process nodes register and see each
//! other, a node that stops heartbeating is gone within the TTL and its room entries are
//! removed, room events reach only the nodes hosting the room, requests between nodes, and a
//! Redis restart after which the nodes re-register and events flow again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrosfu::cluster::{
    Cluster, ClusterEvent, ClusterSettings, NodeId, NodeLoad, PipePorts, RemoteError, RoomEvent,
    RpcError,
};
use ferrosfu_tests::redis::RedisServer;
use serde_json::json;
use tokio::sync::broadcast;

/// Waits for the first event matching `pred`, at most `within`; panics (the test fails)
/// otherwise. Returns the event and when it came.
async fn wait_event(
    rx: &mut broadcast::Receiver<ClusterEvent>,
    within: Duration,
    what: &str,
    pred: impl Fn(&ClusterEvent) -> bool,
) -> ClusterEvent {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) if pred(&e) => return e,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("waiting for {what}: {e}"),
            Err(_) => panic!("no {what} within {within:?}"),
        }
    }
}

/// Polls `check` until it is true, at most `within`.
async fn wait_until<F, Fut>(within: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn node(redis: &RedisServer, id: &str, heartbeat_ms: u64) -> Arc<Cluster> {
    let settings = ClusterSettings {
        redis_url: redis.url(),
        node_id: NodeId::new(id),
        heartbeat: Duration::from_millis(heartbeat_ms),
        public_address: "127.0.0.1".into(),
        signaling_url: format!("ws://127.0.0.1:1/{id}"),
        pipe_ip: "127.0.0.1".parse().expect("ip"),
        pipe_ports: PipePorts {
            min: 40000,
            max: 40099,
        },
    };
    Cluster::connect(settings)
        .await
        .expect("connect to the test redis")
        .start(Box::new(|| NodeLoad {
            workers: 1,
            ..NodeLoad::default()
        }))
        .await
}

fn joined(peer: &str) -> RoomEvent {
    RoomEvent::PeerJoined {
        peer_id: peer.into(),
        display_name: format!("{peer}'s name"),
        device: json!({"flag": "test"}),
    }
}

fn produced(peer: &str, producer: &str) -> RoomEvent {
    RoomEvent::ProducerAdded {
        peer_id: peer.into(),
        producer_id: producer.into(),
        kind: "video".into(),
        rtp_parameters: json!({"codecs": [{"mimeType": "video/VP8"}], "encodings": [{"ssrc": 1}]}),
        app_data: json!({"share": false}),
        paused: false,
    }
}

fn is_room_event(e: &ClusterEvent, room: &str, from: &str) -> bool {
    matches!(e, ClusterEvent::Room(m) if m.room == room && m.node.as_str() == from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_and_see_each_other() {
    let redis = RedisServer::start().expect("redis-server");
    let a = node(&redis, "a", 200).await;
    let mut a_events = a.subscribe();
    let b = node(&redis, "b", 200).await;
    let c = node(&redis, "c", 200).await;
    wait_until(Duration::from_secs(5), "a sees 3 nodes", || async {
        a.nodes().len() == 3
    })
    .await;
    for id in ["b", "c"] {
        wait_event(&mut a_events, Duration::from_secs(5), "NodeJoined", |e| {
            *e == ClusterEvent::NodeJoined {
                node_id: NodeId::new(id),
            }
        })
        .await;
    }
    let nodes = b.nodes_now().await;
    let ids: Vec<&str> = nodes.iter().map(|n| n.info.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let c_entry = &nodes[2];
    assert_eq!(c_entry.info.signaling_url, "ws://127.0.0.1:1/c");
    assert_eq!(
        c_entry.info.pipe_ports,
        PipePorts {
            min: 40000,
            max: 40099
        }
    );
    assert_eq!(c_entry.info.load.workers, 1);
    assert_eq!(c_entry.info.heartbeat_ms, 200);
    assert!(c_entry.heartbeat_age_ms <= 600, "{c_entry:?}");
    assert!(c_entry.info.started_at > 0);
    assert_eq!(a.stats().nodes(), 3);
    assert!(a.stats().redis_up());
    // The load follows what the node published.
    c.publish("room", joined("p1")).expect("publish");
    wait_until(
        Duration::from_secs(5),
        "c's load counts its peer",
        || async {
            a.nodes_now().await.iter().any(|n| {
                n.info.id.as_str() == "c" && n.info.load.peers == 1 && n.info.load.rooms == 1
            })
        },
    )
    .await;
    // The raw registration in Redis never holds the password.
    let raw = redis.command(&["GET", "ferrosfu:node:a"]).expect("GET");
    assert!(raw.contains("\"signalingUrl\""), "{raw}");
    assert!(!raw.contains(ferrosfu_tests::redis::PASSWORD), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_heartbeating_is_gone_within_the_ttl_and_its_rooms_are_cleaned() {
    let redis = RedisServer::start().expect("redis-server");
    // The default heartbeat: the promise is "gone within 5 s" with the shipped settings.
    let a = node(&redis, "a", 1000).await;
    let b = node(&redis, "b", 1000).await;
    let c = node(&redis, "c", 1000).await;
    let mut a_events = a.subscribe();
    let mut b_events = b.subscribe();
    c.publish("r", joined("carol")).expect("publish");
    c.publish("r", produced("carol", "cam")).expect("publish");
    a.publish("r", joined("alice")).expect("publish");
    wait_until(Duration::from_secs(5), "a lists carol's camera", || async {
        a.room_peers("r").await.is_ok_and(|p| {
            p.len() == 1
                && p[0].node.as_str() == "c"
                && p[0].peer.display_name == "carol's name"
                && p[0].peer.producers.len() == 1
                && p[0].peer.producers[0].producer_id == "cam"
        })
    })
    .await;
    wait_until(Duration::from_secs(5), "a sees c", || async {
        a.nodes().len() == 3
    })
    .await;
    wait_until(Duration::from_secs(5), "b sees c", || async {
        b.nodes().len() == 3
    })
    .await;

    // c crashes: no deregistration, its heartbeat just stops.
    let died = Instant::now();
    drop(c);
    let gone = |e: &ClusterEvent| {
        *e == ClusterEvent::NodeGone {
            node_id: NodeId::new("c"),
        }
    };
    wait_event(
        &mut a_events,
        Duration::from_secs(5),
        "NodeGone(c) at a",
        gone,
    )
    .await;
    let after = died.elapsed();
    assert!(after < Duration::from_secs(5), "NodeGone after {after:?}");
    wait_event(
        &mut b_events,
        Duration::from_secs(5),
        "NodeGone(c) at b",
        gone,
    )
    .await;
    // Its room entries are gone by the time NodeGone is told.
    assert!(a.room_peers("r").await.expect("read").is_empty());
    let room_nodes = redis
        .command(&["SMEMBERS", "ferrosfu:room-nodes:r"])
        .expect("SMEMBERS");
    assert_eq!(room_nodes, "a");
    let peers = redis
        .command(&["EXISTS", "ferrosfu:room-peers:r:c"])
        .expect("EXISTS");
    assert_eq!(peers, ":0");
    assert_eq!(
        redis
            .command(&["EXISTS", "ferrosfu:node-rooms:c"])
            .expect("EXISTS"),
        ":0"
    );
    assert_eq!(a.nodes().len(), 2);

    // A clean shutdown is seen at the next directory read, well within the TTL.
    let left = Instant::now();
    b.shutdown().await;
    wait_event(&mut a_events, Duration::from_secs(3), "NodeGone(b)", |e| {
        *e == ClusterEvent::NodeGone {
            node_id: NodeId::new("b"),
        }
    })
    .await;
    assert!(
        left.elapsed() < Duration::from_millis(2500),
        "{:?}",
        left.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_events_reach_the_nodes_hosting_the_room_and_no_others() {
    let redis = RedisServer::start().expect("redis-server");
    let a = node(&redis, "a", 200).await;
    let b = node(&redis, "b", 200).await;
    let c = node(&redis, "c", 200).await;
    let (mut a_rx, mut b_rx, mut c_rx) = (a.subscribe(), b.subscribe(), c.subscribe());
    a.publish("r", joined("alice")).expect("publish");
    c.publish("s", joined("carol")).expect("publish");
    // room_peers waits until the node's subscription to the room is active.
    assert!(a.room_peers("r").await.expect("read").is_empty());
    assert!(c.room_peers("s").await.expect("read").is_empty());

    b.publish("r", joined("bob")).expect("publish");
    let got = wait_event(&mut a_rx, Duration::from_secs(5), "bob joined at a", |e| {
        is_room_event(e, "r", "b")
    })
    .await;
    let ClusterEvent::Room(m) = got else {
        unreachable!()
    };
    assert_eq!(m.event, joined("bob"));
    assert!(b.room_peers("r").await.expect("read").len() == 1);
    b.publish("r", produced("bob", "mic")).expect("publish");
    let got = wait_event(&mut a_rx, Duration::from_secs(5), "bob's producer", |e| {
        is_room_event(e, "r", "b")
    })
    .await;
    let ClusterEvent::Room(m) = got else {
        unreachable!()
    };
    assert_eq!(m.event, produced("bob", "mic"));
    let listed = a.room_peers("r").await.expect("read");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].peer.producers[0].producer_id, "mic");

    // A marker in room s, published after: c (hosting s only) must see it and nothing of r
    // before it; Redis delivers a PUBLISH to every subscriber before it answers.
    a.publish("s", joined("alice2")).expect("publish");
    let first = wait_event(
        &mut c_rx,
        Duration::from_secs(5),
        "a room event at c",
        |e| matches!(e, ClusterEvent::Room(_)),
    )
    .await;
    assert!(is_room_event(&first, "s", "a"), "c got {first:?}");
    // b never hears its own events: its first room event is from a, about r.
    b.publish(
        "r",
        RoomEvent::PeerLeft {
            peer_id: "bob".into(),
        },
    )
    .expect("publish");
    wait_event(&mut a_rx, Duration::from_secs(5), "bob left", |e| {
        matches!(e, ClusterEvent::Room(m) if m.event == RoomEvent::PeerLeft { peer_id: "bob".into() })
    })
    .await;
    assert!(a.room_peers("r").await.expect("read").is_empty());
    // b rejoins: it hears r again, and its first room event is a's (never its own).
    b.publish("r", joined("bob")).expect("publish");
    b.room_peers("r").await.expect("read");
    let speaker = RoomEvent::ActiveSpeaker {
        peer_id: Some("alice".into()),
        producer_id: None,
        volume: Some(-40),
    };
    a.publish("r", speaker.clone()).expect("publish");
    let first = wait_event(
        &mut b_rx,
        Duration::from_secs(5),
        "a room event at b",
        |e| matches!(e, ClusterEvent::Room(_)),
    )
    .await;
    let ClusterEvent::Room(m) = first else {
        unreachable!()
    };
    assert_eq!((m.node.as_str(), m.room.as_str()), ("a", "r"));
    assert_eq!(m.event, speaker);
    assert!(b.stats().events_in() >= 1 && b.stats().events_out() >= 3);
    // Unknown peers are refused locally, not published.
    assert!(a.publish("r", produced("nobody", "x")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_between_nodes_answer_time_out_and_name_unknown_nodes() {
    let redis = RedisServer::start().expect("redis-server");
    let a = node(&redis, "a", 200).await;
    let b = node(&redis, "b", 200).await;
    b.handle("pipe", |req| async move {
        Ok(json!({"from": req.from, "asked": req.params, "ip": "127.0.0.1", "port": 40001}))
    });
    b.handle("refuse", |_| async move {
        Err(RemoteError::new("not_found", "no such producer"))
    });
    b.handle("slow", |_| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok(json!(null))
    });
    let b_id = NodeId::new("b");
    let t = Duration::from_secs(3);
    let answer = a
        .request(&b_id, "pipe", json!({"producerId": "x", "port": 40000}), t)
        .await
        .expect("answered");
    assert_eq!(answer["from"], "a");
    assert_eq!(answer["asked"]["producerId"], "x");
    assert_eq!(answer["port"], 40001);
    assert_eq!(
        a.request(&b_id, "refuse", json!({}), t).await,
        Err(RpcError::Remote(RemoteError::new(
            "not_found",
            "no such producer"
        )))
    );
    match a.request(&b_id, "nope", json!({}), t).await {
        Err(RpcError::Remote(e)) => assert_eq!(e.code, "unknown_method"),
        other => panic!("{other:?}"),
    }
    let asked = Instant::now();
    assert_eq!(
        a.request(&b_id, "slow", json!({}), Duration::from_millis(300))
            .await,
        Err(RpcError::Timeout)
    );
    assert!(asked.elapsed() < Duration::from_secs(2));
    let asked = Instant::now();
    assert_eq!(
        a.request(&NodeId::new("z"), "pipe", json!({}), t).await,
        Err(RpcError::UnknownNode(NodeId::new("z")))
    );
    assert!(asked.elapsed() < Duration::from_secs(1), "failed at once");
    // Garbage on b's request channel is counted and dropped; b still answers.
    let before = b.stats().bad_messages();
    redis
        .command(&["PUBLISH", "ferrosfu:rpc:b", "{not json"])
        .expect("PUBLISH");
    wait_until(Duration::from_secs(5), "b counts a bad message", || async {
        b.stats().bad_messages() > before
    })
    .await;
    a.request(&b_id, "pipe", json!({}), t)
        .await
        .expect("still answers");
    // A node that died (registered, not listening) fails at once, not at the timeout.
    drop(b);
    wait_until(Duration::from_secs(5), "b's subscriber closed", || async {
        redis
            .command(&["PUBSUB", "NUMSUB", "ferrosfu:rpc:b"])
            .is_ok_and(|r| r.ends_with("\n:0"))
    })
    .await;
    assert_eq!(
        a.request(&b_id, "pipe", json!({}), t).await,
        Err(RpcError::NodeGone(b_id.clone()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_nodes_re_register_and_events_flow_again() {
    let mut redis = RedisServer::start().expect("redis-server");
    let a = node(&redis, "a", 200).await;
    let b = node(&redis, "b", 200).await;
    let mut a_rx = a.subscribe();
    a.publish("r", joined("alice")).expect("publish");
    b.publish("r", joined("bob")).expect("publish");
    // Publishing is queued, not awaited: wait until b's write reaches the directory.
    wait_until(Duration::from_secs(5), "a lists bob", || async {
        a.room_peers("r").await.is_ok_and(|p| p.len() == 1)
    })
    .await;

    redis.kill();
    wait_until(
        Duration::from_secs(5),
        "a notices redis is down",
        || async { !a.stats().redis_up() },
    )
    .await;
    // Local work goes on while Redis is down: publishing never blocks or fails.
    let t = Instant::now();
    a.publish("r", produced("alice", "cam"))
        .expect("publish while down");
    // Blocking would mean waiting on Redis (seconds); 1 s leaves scheduling delays out of it.
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(
        a.room_peers("r").await.is_err(),
        "reads fail, in bounded time"
    );

    redis.restart().expect("restart redis (empty)");
    wait_event(&mut a_rx, Duration::from_secs(10), "Resynced", |e| {
        *e == ClusterEvent::Resynced
    })
    .await;
    wait_until(Duration::from_secs(10), "both registered again", || async {
        redis
            .command(&["ZRANGE", "ferrosfu:nodes", "0", "-1"])
            .is_ok_and(|r| r == "a\nb")
    })
    .await;
    // The directory was rewritten from each node's own state, including what a published
    // while Redis was away.
    wait_until(Duration::from_secs(5), "b lists alice's camera", || async {
        b.room_peers("r").await.is_ok_and(|p| {
            p.len() == 1 && p[0].peer.producers.iter().any(|x| x.producer_id == "cam")
        })
    })
    .await;
    // Events flow again once the subscribers are back: publish until one arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        b.publish(
            "r",
            RoomEvent::DisplayNameChanged {
                peer_id: "bob".into(),
                display_name: format!("bob {n}"),
            },
        )
        .expect("publish");
        let got = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                match a_rx.recv().await {
                    Ok(e) if is_room_event(&e, "r", "b") => return,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .await;
        if got.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no room event after the restart");
    }
    assert!(a.stats().redis_up() && b.stats().redis_up());
    assert_eq!(a.nodes_now().await.len(), 2);
}
