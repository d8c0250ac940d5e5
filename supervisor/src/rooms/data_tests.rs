//! Data channels in a room on a scripted worker: a data producer offered to the joined peers
//! with a consuming SCTP transport (stream ids lowest-free per transport), `dataConsumerClosed`,
//! the refusals, and the chat hook (the room's DirectTransport and a `direct` data consumer).

use std::sync::Arc;
use std::time::Duration;

use ferrosfu_fbs::{DataType, MediaEvent, NumSctpStreams, RequestBody};
use serde_json::json;

use super::api::{Join, ProduceData, SctpStreamParams, WebRtcTransportRequest};
use super::tests::{Ear, connect, room};
use super::{Room, RoomError};
use crate::auth::Role;
use crate::media::scripted::{ScriptedWorker, note};

async fn joined(room: &Arc<Room>, id: &str) -> Arc<Ear> {
    let ear = connect(room, id, Role::Publish).await;
    room.join(id, Join::default()).await.unwrap();
    ear
}

/// A WebRtcTransport of `peer` with SCTP (or without); its id.
async fn transport(room: &Arc<Room>, peer: &str, consuming: bool, sctp: bool) -> String {
    let d = room
        .create_webrtc_transport(
            peer,
            WebRtcTransportRequest {
                producing: !consuming,
                consuming,
                sctp: sctp.then_some(NumSctpStreams { os: 4096, mis: 8 }),
                ..WebRtcTransportRequest::default()
            },
        )
        .await
        .unwrap();
    if sctp {
        let p = d.sctp_parameters.expect("SCTP asked");
        assert_eq!((p.os, p.mis), (1024, 8), "clamped to num_streams = 1024");
    } else {
        assert!(d.sctp_parameters.is_none());
    }
    d.id.as_str().to_owned()
}

fn chat(transport_id: &str, stream_id: u16, label: &str) -> ProduceData {
    ProduceData {
        transport_id: transport_id.to_owned(),
        sctp_stream_parameters: SctpStreamParams {
            stream_id,
            ordered: true,
            max_packet_life_time: None,
            max_retransmits: None,
        },
        label: label.to_owned(),
        protocol: String::new(),
        app_data: json!({"info": "x"}),
    }
}

/// Waits (up to 2 s) until `ear` was offered `n` data consumers.
async fn data_offers(ear: &Ear, n: usize) -> Vec<super::api::NewDataConsumer> {
    for _ in 0..200 {
        let offers = ear.data_offers.lock().unwrap().clone();
        if offers.len() >= n {
            return offers;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} data consumer offers");
}

#[tokio::test]
async fn a_data_producer_is_offered_to_peers_with_a_consuming_sctp_transport() {
    let mut worker = ScriptedWorker::start();
    let room = room(&worker).await;
    let alice = joined(&room, "alice").await;
    let bob = joined(&room, "bob").await;
    let carol = joined(&room, "carol").await;
    let send = transport(&room, "alice", false, true).await;
    transport(&room, "bob", true, true).await;
    // Carol's receiving transport has no SCTP: she is offered nothing.
    transport(&room, "carol", true, false).await;

    let p1 = room
        .produce_data("alice", chat(&send, 0, "chat"))
        .await
        .unwrap();
    assert_eq!(p1.stream_id, 0);
    let p2 = room
        .produce_data("alice", chat(&send, 1, "files"))
        .await
        .unwrap();
    let offers = data_offers(&bob, 2).await;
    assert_eq!(offers[0].peer_id.as_deref(), Some("alice"));
    assert_eq!(offers[0].consumer.data_producer_id, p1.id);
    assert_eq!(offers[0].consumer.label, "chat");
    assert_eq!(offers[0].app_data, json!({"info": "x"}));
    // Bob's transport: the lowest free stream ids, one each.
    assert_eq!(offers[0].consumer.sctp_stream_parameters.stream_id, 0);
    assert_eq!(offers[1].consumer.data_producer_id, p2.id);
    assert_eq!(offers[1].consumer.sctp_stream_parameters.stream_id, 1);
    assert!(carol.data_offers.lock().unwrap().is_empty());
    assert!(alice.data_offers.lock().unwrap().is_empty());

    // The chat hook: the room knows its `chat` data producers and can consume one directly.
    let chats = room.data_producers(Some("chat")).await;
    assert_eq!(chats.len(), 1);
    assert_eq!(
        (chats[0].peer_id.as_str(), chats[0].producer.id().as_str()),
        ("alice", p1.id.as_str())
    );
    let mut new_ones = room.subscribe_data_producers();
    let direct = room.consume_data_direct(&p1.id).await.unwrap();
    assert_eq!(direct.data_type(), DataType::Direct);
    let again = room.direct_transport().await.unwrap();
    assert_eq!(
        again.id(),
        direct.transport().id(),
        "one DirectTransport per room"
    );
    let reqs = worker.requests();
    let created = reqs
        .iter()
        .filter(|r| matches!(r.body, RequestBody::RouterCreateDirectTransport(_)))
        .count();
    assert_eq!(created, 1);
    assert!(reqs.iter().any(|r| matches!(&r.body,
        RequestBody::TransportConsumeData(o) if o.data_type == DataType::Direct
            && o.data_producer_id.as_str() == p1.id && o.sctp_stream_parameters.is_none())));
    room.produce_data("alice", chat(&send, 2, "chat"))
        .await
        .unwrap();
    let n = new_ones.recv().await.unwrap();
    assert_eq!((n.peer_id.as_str(), n.producer.label()), ("alice", "chat"));

    // Alice's first data producer closes (e.g. she reset its stream): Bob hears it.
    let bob_dc = offers[0].consumer.id.clone();
    worker.send(&[note(&bob_dc, MediaEvent::DataConsumerDataProducerClose)]);
    let n = bob.wait_for("dataConsumerClosed").await;
    assert_eq!(n["data"]["dataConsumerId"], bob_dc.as_str());
}

#[tokio::test]
async fn produce_data_refusals() {
    let worker = ScriptedWorker::start();
    let room = room(&worker).await;
    connect(&room, "early", Role::Publish).await;
    let e = room.produce_data("early", chat("t", 0, "chat")).await;
    assert_eq!(e.unwrap_err().status(), 409, "not joined");
    connect(&room, "sub", Role::Subscribe).await;
    room.join("sub", Join::default()).await.unwrap();
    let e = room.produce_data("sub", chat("t", 0, "chat")).await;
    assert_eq!(e.unwrap_err().status(), 403);

    joined(&room, "p").await;
    let e = room
        .produce_data("p", chat("t", 0, "chat"))
        .await
        .unwrap_err();
    assert_eq!(e, RoomError::not_found("transport with id \"t\" not found"));
    let plain = transport(&room, "p", false, false).await;
    let e = room
        .produce_data("p", chat(&plain, 0, "chat"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 409, "no SCTP: {e}");
    let t = transport(&room, "p", false, true).await;
    let long = "x".repeat(1025);
    assert_eq!(
        room.produce_data("p", chat(&t, 0, &long))
            .await
            .unwrap_err()
            .status(),
        400
    );
    let mut big = chat(&t, 0, "chat");
    big.app_data = json!({"blob": "y".repeat(20_000)});
    assert_eq!(room.produce_data("p", big).await.unwrap_err().status(), 400);
    let mut not_object = chat(&t, 0, "chat");
    not_object.app_data = json!([1]);
    assert_eq!(
        room.produce_data("p", not_object)
            .await
            .unwrap_err()
            .status(),
        400
    );
    // At most 32 data producers per peer (the default).
    for i in 0..32 {
        room.produce_data("p", chat(&t, i, "chat")).await.unwrap();
    }
    let e = room
        .produce_data("p", chat(&t, 40, "chat"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 409, "{e}");
    assert!(room.consume_data_direct("nope").await.unwrap_err().status() == 404);
    let e = room.data_consumer_stats("p", "nope").await.unwrap_err();
    assert_eq!(e.status(), 404);
}

#[tokio::test]
async fn a_refused_data_consumer_is_closed() {
    let worker = ScriptedWorker::start();
    let room = room(&worker).await;
    joined(&room, "alice").await;
    let bob = joined(&room, "bob").await;
    bob.refuse_data
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let send = transport(&room, "alice", false, true).await;
    transport(&room, "bob", true, true).await;
    room.produce_data("alice", chat(&send, 0, "chat"))
        .await
        .unwrap();
    let offer = data_offers(&bob, 1).await.remove(0);
    let closed = |reqs: Vec<ferrosfu_fbs::Request>| {
        reqs.iter().any(|r| {
            matches!(r.body, RequestBody::DataConsumerClose)
                && r.handler_id.as_str() == offer.consumer.id
        })
    };
    for _ in 0..200 {
        if closed(worker.requests()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the refused data consumer was not closed");
}
