//! The typed handles against a scripted worker on an in-memory pipe: notification bursts
//! (issue 11) and close cascades, without a process.

use std::time::Duration;

use ferrosfu_fbs::{
    ConsumeOptions, ConsumerId, ConsumerScore, ListenInfo, MediaEvent, MediaKind,
    PlainTransportOptions, ProduceOptions, ProducerId, TransportId, TransportProtocol,
};
use tokio::sync::broadcast;

use super::scripted::{ScriptedWorker, note};
use super::*;

async fn plain_transport(w: &Worker) -> Transport {
    let router = w.create_router().await.unwrap();
    let options = PlainTransportOptions {
        transport_id: TransportId::new("t"),
        listen_info: ListenInfo {
            protocol: TransportProtocol::Udp,
            ip: "127.0.0.1".into(),
            announced_address: None,
            port: 0,
        },
        rtcp_listen_info: None,
        rtcp_mux: true,
        comedia: false,
        srtp_crypto_suite: None,
    };
    Transport::create_plain(&router, options).await.unwrap()
}

/// A video consumer `id` of producer `p`, default parameters.
fn consume_options(id: &str) -> ConsumeOptions {
    ConsumeOptions {
        consumer_id: ConsumerId::new(id),
        producer_id: ProducerId::new("p"),
        kind: MediaKind::Video,
        rtp_parameters: Default::default(),
        consumable_rtp_encodings: vec![],
        paused: false,
        ignore_dtx: false,
        consumer_type: ferrosfu_fbs::ConsumerType::Simple,
        preferred_layers: None,
    }
}

async fn consumer(t: &Transport, id: &str) -> Consumer {
    t.consume(consume_options(id)).await.unwrap()
}

const WAIT: Duration = Duration::from_secs(10);

/// Issue 11: a producer closes in the middle of a burst of 10,000 notifications (scores for
/// the producer and its 20 consumers, each consumer's `producerclose` interleaved with the
/// others' scores). Every consumer closes with `ProducerClosed`, its last score is the last
/// one sent, and the close reaches an `events()` subscriber that never reads until the end
/// (it lags by hundreds of scores) as well as one that reads slowly.
#[tokio::test]
async fn a_producer_close_inside_a_burst_closes_every_consumer() {
    const CONSUMERS: usize = 20;
    const TOTAL: usize = 10_000;
    let mut sw = ScriptedWorker::start();
    let t = plain_transport(&sw.worker).await;
    let producer = t
        .produce(ProduceOptions {
            producer_id: ProducerId::new("p"),
            kind: MediaKind::Video,
            rtp_parameters: Default::default(),
            rtp_mapping: Default::default(),
            key_frame_request_delay: 0,
            paused: false,
        })
        .await
        .unwrap();
    let mut consumers = Vec::new();
    for i in 0..CONSUMERS {
        consumers.push(consumer(&t, &format!("c{i}")).await);
    }
    let idle: Vec<broadcast::Receiver<MediaEvent>> =
        consumers.iter().map(Consumer::events).collect();
    let slow: Vec<_> = consumers
        .iter()
        .map(|c| {
            let mut ev = c.events();
            tokio::spawn(async move {
                loop {
                    match ev.recv().await {
                        Ok(MediaEvent::ConsumerProducerClose) => return true,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(broadcast::error::RecvError::Closed) => return false,
                    }
                }
            })
        })
        .collect();

    // Consumer i's close sits at 6000 + 200 i (after ~285 of its scores, more than its
    // fan-out holds); after it, the worker says nothing more of it.
    let close_at = |i: usize| 6_000 + i * 200;
    let mut msgs = Vec::with_capacity(TOTAL);
    let mut last_score = [None; CONSUMERS];
    for k in 0..TOTAL {
        let i = k % (CONSUMERS + 1);
        if let Some(c) = (0..CONSUMERS).find(|&c| close_at(c) == k) {
            msgs.push(note(&format!("c{c}"), MediaEvent::ConsumerProducerClose));
        } else if i == CONSUMERS || k > close_at(i) {
            msgs.push(note("p", MediaEvent::ProducerScore(vec![(1, None, 7)])));
        } else {
            let s = ConsumerScore {
                score: (k % 11) as u8,
                producer_score: (k % 7) as u8,
            };
            last_score[i] = Some(s);
            msgs.push(note(&format!("c{i}"), MediaEvent::ConsumerScore(s)));
        }
    }
    sw.send(&msgs);

    for (i, c) in consumers.iter().enumerate() {
        let reason = tokio::time::timeout(WAIT, c.closed()).await.unwrap();
        assert_eq!(reason, CloseReason::ProducerClosed, "c{i}");
        assert_eq!(Some(c.score()), last_score[i], "c{i}");
    }
    for (i, s) in slow.into_iter().enumerate() {
        let saw_close = tokio::time::timeout(WAIT, s).await.unwrap().unwrap();
        assert!(saw_close, "slow subscriber of c{i}");
    }
    for (i, mut ev) in idle.into_iter().enumerate() {
        // It lagged: the oldest scores are gone, the close (the last event) is not.
        let mut lagged = false;
        let close = loop {
            match ev.try_recv() {
                Ok(MediaEvent::ConsumerProducerClose) => break true,
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                Err(_) => break false,
            }
        };
        assert!(close, "idle subscriber of c{i}");
        assert!(lagged, "the burst overflows the fan-out of c{i}");
    }
    assert!(!producer.is_closed());
    let stats = sw.worker.channel().stats();
    assert_eq!(stats.unrouted.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A notification the worker sends right after answering a creation request (here in the same
/// write) reaches the new entity: its handler id was registered before the request went out.
#[tokio::test]
async fn an_event_right_after_creation_is_not_missed() {
    let mut sw = ScriptedWorker::start();
    let t = plain_transport(&sw.worker).await;
    let c = consumer(&t, "c").await;
    let c2 = c.clone();
    tokio::time::timeout(WAIT, async move {
        while !c2.producer_paused() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap();
    // A second handle with the same id is refused, as the worker would.
    let err = t.consume(consume_options("c")).await.unwrap_err();
    assert!(err.is_invalid_argument(), "{err}");
    // Closing unregisters: a later notification for it is counted as unrouted.
    c.close().await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            sw.send(&[note("c", MediaEvent::ConsumerProducerResume)]);
            let stats = sw.worker.channel().stats();
            if stats.unrouted.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
}

/// The next event of `rx`, within [`WAIT`].
async fn next_event(rx: &mut broadcast::Receiver<MediaEvent>) -> MediaEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap()
}

/// RTP observers: created on their router with the options given, fed producers, paused and
/// resumed by requests to their own id; their events reach `events()`; `close` tells the worker
/// once; the router closing closes them (the worker says nothing of it).
#[tokio::test]
async fn rtp_observers_hear_their_events_and_close_with_their_router() {
    use ferrosfu_fbs::{
        ActiveSpeakerObserverOptions, AudioLevelObserverOptions, Request, RequestBody,
    };
    let mut sw = ScriptedWorker::start();
    let router = sw.worker.create_router().await.unwrap();
    let speaker = router.create_active_speaker_observer(300).await.unwrap();
    let levels = router
        .create_audio_level_observer(1, -80, 800)
        .await
        .unwrap();
    assert_eq!(speaker.kind(), RtpObserverKind::ActiveSpeaker);
    assert_eq!(levels.kind(), RtpObserverKind::AudioLevel);
    assert_ne!(speaker.id(), levels.id());
    let p = ProducerId::new("p");
    speaker.add_producer(&p).await.unwrap();
    levels.add_producer(&p).await.unwrap();
    levels.pause().await.unwrap();
    assert!(levels.paused());
    levels.resume().await.unwrap();
    assert!(!levels.paused());
    levels.remove_producer(&p).await.unwrap();

    let sent: Vec<(String, RequestBody)> = sw
        .requests()
        .into_iter()
        .map(
            |Request {
                 handler_id, body, ..
             }| (handler_id.as_str().to_owned(), body),
        )
        .skip(1) // worker.create_router
        .collect();
    let (r, s, l) = (
        router.id().as_str().to_owned(),
        speaker.id().as_str().to_owned(),
        levels.id().as_str().to_owned(),
    );
    let add = || RequestBody::RtpObserverAddProducer {
        producer_id: p.clone(),
    };
    assert_eq!(
        sent,
        [
            (
                r.clone(),
                RequestBody::RouterCreateActiveSpeakerObserver(ActiveSpeakerObserverOptions {
                    rtp_observer_id: speaker.id().clone(),
                    interval: 300,
                })
            ),
            (
                r,
                RequestBody::RouterCreateAudioLevelObserver(AudioLevelObserverOptions {
                    rtp_observer_id: levels.id().clone(),
                    max_entries: 1,
                    threshold: -80,
                    interval: 800,
                })
            ),
            (s.clone(), add()),
            (l.clone(), add()),
            (l.clone(), RequestBody::RtpObserverPause),
            (l.clone(), RequestBody::RtpObserverResume),
            (
                l.clone(),
                RequestBody::RtpObserverRemoveProducer {
                    producer_id: p.clone()
                }
            ),
        ]
    );

    let (mut se, mut le) = (speaker.events(), levels.events());
    let dominant = MediaEvent::ActiveSpeakerObserverDominantSpeaker {
        producer_id: p.clone(),
    };
    let volumes = MediaEvent::AudioLevelObserverVolumes(vec![(p.clone(), -30)]);
    sw.send(&[
        note(&s, dominant.clone()),
        note(&l, volumes.clone()),
        note(&l, MediaEvent::AudioLevelObserverSilence),
    ]);
    assert_eq!(next_event(&mut se).await, dominant);
    assert_eq!(next_event(&mut le).await, volumes);
    assert_eq!(
        next_event(&mut le).await,
        MediaEvent::AudioLevelObserverSilence
    );

    // `close` tells the worker once; later requests are refused without asking it.
    speaker.close().await.unwrap();
    speaker.close().await.unwrap();
    assert_eq!(speaker.closed().await, CloseReason::Closed);
    let closes = sw
        .requests()
        .iter()
        .filter(|q| q.body == RequestBody::RtpObserverClose)
        .count();
    assert_eq!(closes, 1);
    let err = speaker.add_producer(&p).await.unwrap_err();
    assert!(matches!(err, RequestError::ChannelClosed { .. }), "{err}");

    // The router closes: the other observer goes with it.
    router.close().await.unwrap();
    let reason = tokio::time::timeout(WAIT, levels.closed()).await.unwrap();
    assert_eq!(reason, CloseReason::ParentClosed);
    assert!(levels.is_closed());
}
