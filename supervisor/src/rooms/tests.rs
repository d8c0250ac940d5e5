//! A room on a scripted worker (no process): peers arriving, joining and leaving, a
//! broadcaster's producer offered to a joined peer, refusals, `activeSpeaker`, and the room
//! closing with its last peer. The peer rules alone are tested in `state.rs`.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ferrosfu_fbs::{MediaEvent, ProducerId, RequestBody};
use serde_json::{Value, json};

use super::api::{
    BoxFuture, BroadcasterTransport, BroadcasterTransportRequest, Join, NewConsumer,
    NewDataConsumer, Notification, PeerLink, Produce, WebRtcTransportRequest,
};
use super::room::Context;
use super::{MediaSettings, Room, RoomError};
use crate::auth::Role;
use crate::media::scripted::{ScriptedWorker, note};
use crate::ortc::{self, MediaKind, RtpParameters};
use crate::store::Store;

/// A connection that writes down what it hears and accepts every consumer offer.
#[derive(Debug, Default)]
pub(super) struct Ear {
    heard: Mutex<Vec<Value>>,
    offers: Mutex<Vec<NewConsumer>>,
    pub(super) data_offers: Mutex<Vec<NewDataConsumer>>,
    /// Answer `newDataConsumer` with an error (as a client that fails to open the channel).
    pub(super) refuse_data: std::sync::atomic::AtomicBool,
    closed: Mutex<Option<u16>>,
}

impl PeerLink for Ear {
    fn notify(&self, n: &Notification) {
        self.heard
            .lock()
            .unwrap()
            .push(serde_json::to_value(n).unwrap());
    }
    fn new_consumer(
        &self,
        offer: &NewConsumer,
        _: Duration,
    ) -> BoxFuture<'_, Result<(), RoomError>> {
        self.offers.lock().unwrap().push(offer.clone());
        Box::pin(async { Ok(()) })
    }
    fn new_data_consumer(
        &self,
        offer: &NewDataConsumer,
        _: Duration,
    ) -> BoxFuture<'_, Result<(), RoomError>> {
        self.data_offers.lock().unwrap().push(offer.clone());
        let refuse = self.refuse_data.load(std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            if refuse {
                Err(RoomError::Peer {
                    code: 500,
                    reason: "no".into(),
                })
            } else {
                Ok(())
            }
        })
    }
    fn request(
        &self,
        method: &'static str,
        data: Value,
        _: Duration,
    ) -> BoxFuture<'_, Result<Value, RoomError>> {
        self.heard
            .lock()
            .unwrap()
            .push(json!({ "request": method, "data": data }));
        Box::pin(async { Ok(json!({})) })
    }
    fn close(&self, code: u16, _: &str) {
        *self.closed.lock().unwrap() = Some(code);
    }
}

impl Ear {
    /// What it heard since the last call.
    pub(super) fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.heard.lock().unwrap())
    }

    /// Waits (up to 2 s) for a notification named `method`; what came before it is dropped.
    pub(super) async fn wait_for(&self, method: &str) -> Value {
        for _ in 0..200 {
            let found = {
                let mut heard = self.heard.lock().unwrap();
                heard
                    .iter()
                    .position(|n| n["method"] == method)
                    .map(|i| heard.drain(..=i).next_back().unwrap())
            };
            if let Some(n) = found {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {method}: {:?}", self.heard.lock().unwrap());
    }
}

pub(super) async fn room(worker: &ScriptedWorker) -> Arc<Room> {
    let router = worker.worker.create_router().await.unwrap();
    let caps = ortc::router_rtp_capabilities(&ortc::default_media_codecs()).unwrap();
    let store = Store::open("sqlite::memory:").await.unwrap();
    Room::open(
        "room",
        router,
        None,
        Context {
            caps,
            media: MediaSettings {
                listen: vec![crate::config::MediaAddr {
                    ip: [127, 0, 0, 1].into(),
                    announced: None,
                }],
                data_channels: crate::config::Config::default().data_channels,
                quotas: crate::limits::Quotas::default(),
                p2p: super::P2pSettings::default(),
            },
            store,
            rooms: Weak::new(),
        },
    )
    .await
}

pub(super) async fn connect(room: &Arc<Room>, id: &str, role: Role) -> Arc<Ear> {
    let ear = Arc::new(Ear::default());
    room.attach(id, 1, ear.clone(), role).await.unwrap();
    ear
}

fn opus() -> RtpParameters {
    serde_json::from_value(json!({
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000,
                    "channels": 2}],
        "encodings": [{"ssrc": 1111}]
    }))
    .unwrap()
}

#[tokio::test]
async fn a_broadcasters_producer_is_offered_to_joined_peers() {
    let mut worker = ScriptedWorker::start();
    let room = room(&worker).await;
    let bob = connect(&room, "bob", Role::Publish).await;
    let joined = room
        .join(
            "bob",
            Join {
                display_name: Some("Bob".into()),
                rtp_capabilities: Some(room.rtp_capabilities().clone()),
                ..Join::default()
            },
        )
        .await
        .unwrap();
    assert!(joined.peers.is_empty());
    // Bob's receive transport (plain here: the scripted worker answers those).
    let (t, _, _) = room
        .new_plain_transport(false, true, &room.home())
        .await
        .unwrap();
    room.add_transport("bob", t, true).await.unwrap();

    let joined = room
        .add_broadcaster("bc", "BC", json!({"name": "gst"}), None, Role::Publish)
        .await
        .unwrap();
    assert_eq!(joined.peers.len(), 1);
    assert_eq!(bob.wait_for("newPeer").await["data"]["id"], "bc");
    let BroadcasterTransport::Plain { dump, ip } = room
        .broadcaster_transport(
            "bc",
            BroadcasterTransportRequest::Plain {
                comedia: true,
                rtcp_mux: true,
            },
        )
        .await
        .unwrap()
    else {
        panic!("a plain transport was asked for");
    };
    assert_eq!(ip, "127.0.0.1");
    // No CNAME (as Chromium's simulcast by RID): the transport gives its producers one.
    let mut rtp_parameters = opus();
    rtp_parameters.rtcp.cname = Some(String::new());
    let produced = room
        .broadcaster_produce(
            "bc",
            Produce {
                transport_id: dump.id.as_str().to_owned(),
                kind: MediaKind::Audio,
                rtp_parameters,
                app_data: json!({"source": "mic"}),
                paused: false,
            },
        )
        .await
        .unwrap();

    // Bob is offered a consumer (mid 0 of his transport), accepts it, hears its score.
    bob.wait_for("consumerScore").await;
    let offer = bob.offers.lock().unwrap().pop().expect("an offer");
    assert_eq!(offer.peer_id, "bc");
    assert_eq!(offer.consumer.producer_id, produced.id);
    assert_eq!(offer.consumer.kind, MediaKind::Audio);
    assert_eq!(offer.consumer.rtp_parameters.mid.as_deref(), Some("0"));
    assert_eq!(offer.app_data, json!({"source": "mic"}));
    let cname = offer.consumer.rtp_parameters.rtcp.cname.as_deref();
    assert_eq!(cname.map(str::len), Some(8), "{cname:?}");
    assert_eq!(
        offer.consumer.consumer_type,
        ferrosfu_fbs::ConsumerType::Simple
    );

    // The downlink's allocator pauses and resumes it: Bob is told why; a producer pause says
    // no reason.
    worker.send(&[note(&offer.consumer.id, MediaEvent::ConsumerBwePause)]);
    let paused = bob.wait_for("consumerPaused").await;
    assert_eq!(
        paused["data"],
        json!({"consumerId": offer.consumer.id.as_str(), "reason": "bwe"})
    );
    worker.send(&[note(&offer.consumer.id, MediaEvent::ConsumerBweResume)]);
    let resumed = bob.wait_for("consumerResumed").await;
    assert_eq!(resumed["data"]["reason"], "bwe");
    worker.send(&[note(&offer.consumer.id, MediaEvent::ConsumerProducerPause)]);
    let paused = bob.wait_for("consumerPaused").await;
    assert_eq!(
        paused["data"],
        json!({"consumerId": offer.consumer.id.as_str()})
    );

    // The producer closes on the worker: Bob's consumer closes and he is told.
    worker.send(&[note(&offer.consumer.id, MediaEvent::ConsumerProducerClose)]);
    let closed = bob.wait_for("consumerClosed").await;
    assert_eq!(closed["data"]["consumerId"], offer.consumer.id.as_str());

    // The broadcaster leaves: Bob sees it go.
    room.delete_broadcaster("bc").await.unwrap();
    assert_eq!(bob.wait_for("peerClosed").await["data"]["peerId"], "bc");
    assert_eq!(
        room.delete_broadcaster("bc").await.unwrap_err().status(),
        404
    );
}

#[tokio::test]
async fn refusals_come_before_any_worker_request() {
    let worker = ScriptedWorker::start();
    let room = room(&worker).await;
    connect(&room, "sub", Role::Subscribe).await;
    let e = room
        .create_webrtc_transport(
            "sub",
            WebRtcTransportRequest {
                producing: true,
                ..WebRtcTransportRequest::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
    let produce = || Produce {
        transport_id: "t".into(),
        kind: MediaKind::Audio,
        rtp_parameters: opus(),
        app_data: json!({}),
        paused: false,
    };
    assert_eq!(
        room.produce("sub", produce()).await.unwrap_err().status(),
        409
    );
    connect(&room, "pub", Role::Publish).await;
    room.join("pub", Join::default()).await.unwrap();
    let e = room.produce("pub", produce()).await.unwrap_err();
    assert_eq!(e, RoomError::not_found("transport with id \"t\" not found"));
    let e = room.join("pub", Join::default()).await.unwrap_err();
    assert_eq!(e.status(), 409);
}

#[tokio::test]
async fn the_room_closes_with_its_last_peer() {
    let worker = ScriptedWorker::start();
    let room = room(&worker).await;
    let a = connect(&room, "a", Role::Publish).await;
    room.join("a", Join::default()).await.unwrap();
    // The same peer again: the old connection is closed with 4000.
    let a2 = connect(&room, "a", Role::Publish).await;
    assert_eq!(*a.closed.lock().unwrap(), Some(4000));
    // The old session leaving does not remove the new one.
    room.detach("a", 0).await;
    assert!(!room.is_closed());
    room.detach("a", 1).await;
    assert!(room.is_closed());
    assert!(a2.take().is_empty());
    let late = Arc::new(Ear::default());
    let e = room.attach("b", 2, late, Role::Publish).await.unwrap_err();
    assert_eq!(e, RoomError::RoomClosed);
}

/// A joined peer's audio producer is added to the room's two observers (created with the
/// room, mediasoup-demo's values); the dominant speaker is then announced to every joined
/// peer with its owner and latest volume, silence as `{peerId: null}`, and the next volumes
/// bring the speaker back.
#[tokio::test]
async fn the_dominant_speaker_is_announced_to_every_peer() {
    let mut worker = ScriptedWorker::start();
    let room = room(&worker).await;
    let alice = connect(&room, "alice", Role::Publish).await;
    let bob = connect(&room, "bob", Role::Publish).await;
    room.join("alice", Join::default()).await.unwrap();
    room.join("bob", Join::default()).await.unwrap();
    let (t, _, _) = room
        .new_plain_transport(false, true, &room.home())
        .await
        .unwrap();
    let transport_id = t.id().as_str().to_owned();
    room.add_transport("alice", t, false).await.unwrap();
    let produced = room
        .produce(
            "alice",
            Produce {
                transport_id,
                kind: MediaKind::Audio,
                rtp_parameters: opus(),
                app_data: json!({}),
                paused: false,
            },
        )
        .await
        .unwrap();

    // The observers were created on the room's router, and the producer added to each by its
    // id, before `produce` answered.
    let requests = worker.requests();
    let router = room.router().id().as_str();
    let (mut speaker, mut levels) = (None, None);
    for r in &requests {
        match &r.body {
            RequestBody::RouterCreateActiveSpeakerObserver(o) => {
                assert_eq!(r.handler_id.as_str(), router);
                assert_eq!(o.interval, 300);
                speaker = Some(o.rtp_observer_id.as_str().to_owned());
            }
            RequestBody::RouterCreateAudioLevelObserver(o) => {
                assert_eq!(r.handler_id.as_str(), router);
                assert_eq!((o.max_entries, o.threshold, o.interval), (1, -80, 800));
                levels = Some(o.rtp_observer_id.as_str().to_owned());
            }
            _ => {}
        }
    }
    let (speaker, levels) = (speaker.expect("created"), levels.expect("created"));
    let mut added: Vec<_> = requests
        .iter()
        .filter_map(|r| match &r.body {
            RequestBody::RtpObserverAddProducer { producer_id } => Some((
                r.handler_id.as_str().to_owned(),
                producer_id.as_str().to_owned(),
            )),
            _ => None,
        })
        .collect();
    added.sort();
    let mut want = vec![
        (speaker.clone(), produced.id.clone()),
        (levels.clone(), produced.id.clone()),
    ];
    want.sort();
    assert_eq!(added, want);

    let p = ProducerId::new(produced.id.clone());
    let heard = |peer_id: &str, volume: Option<i8>| {
        json!({"method": "activeSpeaker", "data": {
            "peerId": peer_id, "producerId": produced.id, "volume": volume}})
    };
    // (Each observer's events are in order; the two observers' are not ordered between them,
    // so the test waits for each answer before the next event of the other observer.)
    let dominant = || {
        note(
            &speaker,
            MediaEvent::ActiveSpeakerObserverDominantSpeaker {
                producer_id: p.clone(),
            },
        )
    };
    worker.send(&[dominant()]);
    // No volumes reported yet: null.
    assert_eq!(bob.wait_for("activeSpeaker").await, heard("alice", None));
    // Every joined peer hears it, the speaker too.
    assert_eq!(alice.wait_for("activeSpeaker").await, heard("alice", None));

    worker.send(&[note(&levels, MediaEvent::AudioLevelObserverSilence)]);
    let nobody = json!({"method": "activeSpeaker", "data": {"peerId": null}});
    assert_eq!(bob.wait_for("activeSpeaker").await, nobody);
    assert_eq!(alice.wait_for("activeSpeaker").await, nobody);

    // Volumes after the silence: the dominant speaker again, with its volume.
    worker.send(&[note(
        &levels,
        MediaEvent::AudioLevelObserverVolumes(vec![(p.clone(), -31)]),
    )]);
    assert_eq!(
        bob.wait_for("activeSpeaker").await,
        heard("alice", Some(-31))
    );
    // A dominant speaker is told with its latest volume.
    worker.send(&[dominant()]);
    assert_eq!(
        bob.wait_for("activeSpeaker").await,
        heard("alice", Some(-31))
    );
    assert_eq!(
        alice.wait_for("activeSpeaker").await,
        heard("alice", Some(-31))
    );
}
