//! Data channels end to end with real clients (issue 14): webrtc-rs peers with negotiated data
//! channels against the real supervisor and worker binaries, over protoo (mediasoup-demo's
//! `produceData` / `newDataConsumer` / `dataConsumerClosed` / `get*Stats`) and over the
//! broadcaster REST API (`…/produce/data`, `…/consume/data`); and the chat hook of the media
//! API: a `direct` data consumer on a DirectTransport receives a peer's messages.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu::media::{DataConsumeOptions, Transport};
use ferrosfu_fbs::{
    DataProducerId, DataType, MediaEvent, NumSctpStreams, ProduceDataOptions, SctpOptions,
    SctpStreamParameters, ppid,
};
use ferrosfu_tests::data_client::{Channel, DataPeer, Message};
use ferrosfu_tests::media::{spawn_worker, webrtc_options};
use ferrosfu_tests::protoo::{ProtooClient, dtls_json};
use ferrosfu_tests::room_peer::{RoomPeer as Peer, sctp_capabilities};
use ferrosfu_tests::{SupervisorProcess, post_json};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(15);
const MESSAGE: Duration = Duration::from_secs(10);

/// The messages every test sends: text, then binary of 1 B, 16 KiB and 200 KiB.
fn messages(tag: u8) -> Vec<Message> {
    let bin = |n: usize| Message {
        is_string: false,
        data: (0..n).map(|i| (i as u8) ^ tag).collect::<Vec<u8>>().into(),
    };
    vec![
        Message {
            is_string: true,
            data: format!("hello from {tag} ✓").into_bytes().into(),
        },
        bin(1),
        bin(16 * 1024),
        bin(200 * 1024),
    ]
}

async fn send_all(ch: &Channel, msgs: &[Message]) {
    for m in msgs {
        ch.send(m.is_string, &m.data).await.unwrap();
    }
}

async fn receive_all(ch: &mut Channel, msgs: &[Message]) {
    for (i, want) in msgs.iter().enumerate() {
        let got = ch.recv(MESSAGE).await.unwrap();
        assert_eq!(got.is_string, want.is_string, "message {i}: text/binary");
        assert_eq!(got.data.len(), want.data.len(), "message {i}: length");
        assert!(got.data == want.data, "message {i}: content differs");
    }
}

fn total_bytes(msgs: &[Message]) -> u64 {
    msgs.iter().map(|m| m.data.len() as u64).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_chat_over_data_channels_through_protoo() {
    let sup = SupervisorProcess::start_on_loopback("23800-23849", &["--dev"]);

    // Alice joins and produces; Bob joins later and is offered her data producer at join.
    let mut alice = Peer::join(sup.http, "dc", "alice").await;
    let (alice_ch, alice_dp) = alice.produce("notes", 0).await;
    let mut bob = Peer::join(sup.http, "dc", "bob").await;
    let (mut bob_in, offer) = bob.accept_data_consumer().await;
    assert_eq!(offer["peerId"], "alice");
    assert_eq!(offer["dataProducerId"], alice_dp.as_str());
    assert_eq!(offer["label"], "notes");
    assert_eq!(offer["protocol"], "");
    assert_eq!(offer["appData"], json!({"info": "my-chat-DataProducer"}));
    assert_eq!(offer["sctpStreamParameters"]["ordered"], true);
    let bob_dc = offer["id"].as_str().unwrap().to_owned();

    let from_alice = messages(1);
    send_all(&alice_ch, &from_alice).await;
    receive_all(&mut bob_in, &from_alice).await;

    // Bob produces too (a peer already joined is offered it at once).
    let (bob_ch, bob_dp) = bob.produce("notes", 0).await;
    let (mut alice_in, offer) = alice.accept_data_consumer().await;
    assert_eq!(offer["peerId"], "bob");
    assert_eq!(offer["dataProducerId"], bob_dp.as_str());
    let alice_dc = offer["id"].as_str().unwrap().to_owned();
    let from_bob = messages(2);
    send_all(&bob_ch, &from_bob).await;
    receive_all(&mut alice_in, &from_bob).await;

    // Stats count what went through, in mediasoup's shape.
    let s = alice
        .protoo
        .ok("getDataProducerStats", json!({"dataProducerId": alice_dp}))
        .await
        .unwrap();
    let s = &s[0];
    assert_eq!(s["type"], "data-producer", "{s}");
    assert_eq!(s["label"], "notes");
    assert_eq!(s["messagesReceived"], from_alice.len() as u64, "{s}");
    assert_eq!(s["bytesReceived"], total_bytes(&from_alice), "{s}");
    assert!(s["timestamp"].as_u64().unwrap() > 0);
    let s = bob
        .protoo
        .ok("getDataConsumerStats", json!({"dataConsumerId": bob_dc}))
        .await
        .unwrap();
    let s = &s[0];
    assert_eq!(s["type"], "data-consumer", "{s}");
    assert_eq!(s["messagesSent"], from_alice.len() as u64, "{s}");
    assert_eq!(s["bytesSent"], total_bytes(&from_alice), "{s}");
    assert!(s["bufferedAmount"].is_u64(), "{s}");
    let e = bob
        .protoo
        .request("getDataConsumerStats", json!({"dataConsumerId": "nope"}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, 404);

    // Alice closes her channel: Bob's data consumer of it goes.
    alice_ch.close().await.unwrap();
    let n = bob.protoo.wait_for("dataConsumerClosed").await.unwrap();
    assert_eq!(n["data"]["dataConsumerId"], bob_dc.as_str());

    // Bob leaves: Alice's data consumer of his producer goes.
    bob.protoo.close().await;
    let n = alice.protoo.wait_for("dataConsumerClosed").await.unwrap();
    assert_eq!(n["data"]["dataConsumerId"], alice_dc.as_str());
    let _ = bob.send.close().await;
    let _ = bob.recv.close().await;
    drop(bob_in);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_data_is_refused_with_typed_errors() {
    let sup = SupervisorProcess::start_on_loopback("23850-23869", &["--dev"]);
    let mut p = ProtooClient::connect(sup.http, "dc-bad", "p", None)
        .await
        .unwrap();
    let caps = p.client_caps().await.unwrap();
    p.join("p", &caps).await.unwrap();
    // Without sctpCapabilities: no SCTP, sctpParameters null, produceData refused (409).
    let t = p.create_transport(true).await.unwrap();
    assert!(t["sctpParameters"].is_null(), "{t}");
    let req = |tid: &Value, label: String| {
        json!({"transportId": tid, "label": label, "protocol": "",
            "sctpStreamParameters": {"streamId": 0, "ordered": true}})
    };
    let e = p
        .request("produceData", req(&t["id"], "notes".into()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, 409, "{e}");
    let t = p
        .ok(
            "createWebRtcTransport",
            json!({"producing": true, "consuming": false, "sctpCapabilities": sctp_capabilities()}),
        )
        .await
        .unwrap();
    // A label over 1024 bytes, missing stream parameters, exclusive reliability options.
    let e = p
        .request("produceData", req(&t["id"], "x".repeat(1025)))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, 400, "{e}");
    let e = p
        .request(
            "produceData",
            json!({"transportId": t["id"], "label": "notes"}),
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, 400, "{e}");
    let e = p
        .request(
            "produceData",
            json!({"transportId": t["id"], "sctpStreamParameters":
                {"streamId": 1, "maxRetransmits": 0, "maxPacketLifeTime": 100}}),
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, 400, "{e}");
    // A stream id beyond MIS is the worker's refusal of an argument: 400.
    let e = p
        .request(
            "produceData",
            json!({"transportId": t["id"], "sctpStreamParameters": {"streamId": 5000}}),
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, 400, "{e}");
    let e = p
        .request("getDataProducerStats", json!({"dataProducerId": "nope"}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, 404, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_broadcaster_produces_data_that_a_protoo_peer_receives() {
    let sup = SupervisorProcess::start_on_loopback("23870-23889", &["--dev"]);
    let http = reqwest::Client::new();
    let mut viewer = Peer::join(sup.http, "dc-rest", "viewer").await;

    let base = sup.url("/rooms/dc-rest/broadcasters");
    post_json(
        &http,
        &base,
        json!({"id": "bot", "displayName": "Bot", "device": {"name": "rust"}}),
    )
    .await;
    let t = post_json(
        &http,
        &format!("{base}/bot/transports"),
        json!({"type": "webrtc", "sctpCapabilities": sctp_capabilities()}),
    )
    .await;
    assert_eq!(t["sctpParameters"]["port"], 5000, "{t}");
    let tid = t["id"].as_str().unwrap().to_owned();
    let bot = DataPeer::new().await.unwrap();
    post_json(
        &http,
        &format!("{base}/bot/transports/{tid}/connect"),
        json!({"dtlsParameters": dtls_json(&bot.local_dtls_parameters().unwrap())}),
    )
    .await;
    bot.connect(&t).await.unwrap();
    bot.wait_ready(READY).await.unwrap();

    let bot_ch = bot.open("notes", 3).await.unwrap();
    let produced = post_json(
        &http,
        &format!("{base}/bot/transports/{tid}/produce/data"),
        json!({"label": "notes", "protocol": "bot", "appData": {},
            "sctpStreamParameters": {"streamId": 3, "ordered": true}}),
    )
    .await;
    assert_eq!(produced["streamId"], 3, "{produced}");
    let dp = produced["id"].as_str().unwrap().to_owned();

    let (mut viewer_in, offer) = viewer.accept_data_consumer().await;
    assert_eq!(offer["peerId"], "bot");
    assert_eq!(offer["dataProducerId"], dp.as_str());
    assert_eq!(offer["protocol"], "bot");
    let msgs = messages(3);
    send_all(&bot_ch, &msgs).await;
    receive_all(&mut viewer_in, &msgs).await;

    // The broadcaster consumes the viewer's data too (REST consume/data).
    let (viewer_ch, viewer_dp) = viewer.produce("notes", 0).await;
    let c = post_json(
        &http,
        &format!("{base}/bot/transports/{tid}/consume/data"),
        json!({"dataProducerId": viewer_dp}),
    )
    .await;
    let stream = c["streamId"].as_u64().unwrap() as u16;
    assert_eq!(c["sctpStreamParameters"]["streamId"], stream, "{c}");
    assert_eq!(c["label"], "notes");
    assert_ne!(stream, 3, "the broadcaster's own producer uses stream 3");
    let mut bot_in = bot.open("notes", stream).await.unwrap();
    let msgs = messages(4);
    send_all(&viewer_ch, &msgs).await;
    receive_all(&mut bot_in, &msgs).await;

    let r = http
        .post(format!("{base}/bot/transports/{tid}/consume/data"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// The chat hook of the media API: a `direct` data consumer on a DirectTransport of the same
/// router receives what a WebRTC peer sends on its `sctp` data producer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_data_consumer_receives_a_peers_messages() {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();
    let mut o = webrtc_options("peer", &[ferrosfu_fbs::TransportProtocol::Udp]);
    o.sctp = Some(SctpOptions {
        num_streams: NumSctpStreams::default(),
        ..SctpOptions::default()
    });
    let t = Transport::create_webrtc(&router, o).await.unwrap();
    assert!(t.has_sctp());
    let d = t.webrtc().unwrap();
    let peer = DataPeer::new().await.unwrap();
    t.connect_webrtc(peer.local_dtls_parameters().unwrap())
        .await
        .unwrap();
    let answer = json!({
        "iceParameters": {"usernameFragment": d.ice_parameters.username_fragment,
            "password": d.ice_parameters.password},
        "iceCandidates": d.ice_candidates.iter().map(|c| json!({
            "priority": c.priority, "address": c.address, "port": c.port,
            "protocol": "udp"})).collect::<Vec<_>>(),
        "dtlsParameters": {"fingerprints": d.dtls_parameters.fingerprints.iter().map(|f|
            json!({"algorithm": f.algorithm, "value": f.value})).collect::<Vec<_>>()},
        "sctpParameters": {"port": 5000, "maxMessageSize": 262_144},
    });
    peer.connect(&answer).await.unwrap();
    peer.wait_ready(READY).await.unwrap();
    let ch = peer.open("notes", 1).await.unwrap();
    let producer = t
        .produce_data(ProduceDataOptions {
            data_producer_id: DataProducerId::new("chat-producer"),
            data_type: DataType::Sctp,
            sctp_stream_parameters: Some(SctpStreamParameters::reliable(1)),
            label: "notes".into(),
            protocol: String::new(),
            paused: false,
        })
        .await
        .unwrap();

    let direct = router.create_direct_transport(262_144).await.unwrap();
    let consumer = direct
        .consume_data(&producer, DataConsumeOptions::default())
        .await
        .unwrap();
    assert_eq!(consumer.data_type(), DataType::Direct);
    assert_eq!(consumer.label(), "notes");
    let mut events = consumer.events();
    ch.send(true, "hi, room".as_bytes()).await.unwrap();
    ch.send(false, &[1, 2, 3]).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let e = tokio::time::timeout(MESSAGE, events.recv())
            .await
            .expect("a DataConsumerMessage within 10 s")
            .unwrap();
        if let MediaEvent::DataConsumerMessage { ppid, data } = e {
            got.push((ppid, data));
        }
    }
    assert_eq!(got[0], (ppid::STRING, b"hi, room".to_vec()));
    assert_eq!(got[1], (ppid::BINARY, vec![1, 2, 3]));

    // The data producer closing closes the direct consumer.
    producer.close().await.unwrap();
    let reason = tokio::time::timeout(MESSAGE, consumer.closed())
        .await
        .unwrap();
    assert_eq!(reason, ferrosfu::CloseReason::ProducerClosed);
    let _ = peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channels_off_means_no_sctp() {
    let sup =
        SupervisorProcess::start_on_loopback("23890-23899", &["--dev", "--data-channels", "false"]);
    let mut p = ProtooClient::connect(sup.http, "dc-off", "p", None)
        .await
        .unwrap();
    let caps = p.client_caps().await.unwrap();
    p.join("p", &caps).await.unwrap();
    let t = p
        .ok(
            "createWebRtcTransport",
            json!({"producing": true, "consuming": false, "sctpCapabilities": sctp_capabilities()}),
        )
        .await
        .unwrap();
    assert!(t["sctpParameters"].is_null(), "{t}");
    let e = p
        .request(
            "produceData",
            json!({"transportId": t["id"], "label": "notes",
                "sctpStreamParameters": {"streamId": 0}}),
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, 409, "{e}");
}
