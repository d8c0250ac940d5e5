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
