//! Consumers: offered to connected peers (`newConsumer`, resumed once accepted) or created on
//! a broadcaster's request, what a consumer's peer may do with it, and the watch that relays
//! its events and forgets it when it closes.

use std::sync::Arc;
use std::time::Duration;

use ferrosfu_fbs::{ConsumeOptions, ConsumerId, MediaEvent};

use super::api::{ConsumerAction, ConsumerInfo, NewConsumer, Notification};
use super::state::ProducerEntry;
use super::{Room, RoomError};
use crate::media::{CloseReason, Consumer, Transport};
use crate::ortc::{self, ConsumerRtpOptions, MediaKind, RtpCapabilities, RtpParameters};

/// Rewrites a consumer's parameters before the worker gets them (a WHEP player's payload types
/// and extension ids).
pub(crate) type ParamsHook<'a> = &'a (dyn Fn(MediaKind, &mut RtpParameters) + Send + Sync);

/// How a consumer is made: its mid on the transport, paused or not, and a rewrite of its
/// parameters.
struct How<'a> {
    mid: String,
    paused: bool,
    translate: Option<ParamsHook<'a>>,
}
use crate::worker::new_id;

/// How long a client has to accept `newConsumer`.
const NEW_CONSUMER_TIMEOUT: Duration = Duration::from_secs(15);

impl Room {
    /// A peer joined: it is offered every producer and data producer of the other joined
    /// peers. Run once the `join` answer is out.
    pub(crate) async fn consume_all(self: &Arc<Self>, peer_id: &str) {
        let producers = {
            let st = self.state.lock().await;
            // Who speaks now, for a peer that joined after it was told.
            if let (Some(n), Some(p)) = (&st.speaker, st.peers.get(peer_id)) {
                p.notify(&Notification::ActiveSpeaker(n.clone()));
            }
            st.producers_for(peer_id)
        };
        self.send_chat_history(peer_id).await;
        self.send_e2ee_keys(peer_id).await;
        for (owner, p) in producers {
            self.create_consumer(peer_id, &owner, &p).await;
        }
        self.consume_all_data(peer_id).await;
    }

    /// Creates a paused consumer of `producer` (of `owner`) for `peer_id`, offers it with
    /// `newConsumer` and resumes it when the peer accepts (mediasoup-demo's `_createConsumer`).
    pub(super) async fn create_consumer(
        self: &Arc<Self>,
        peer_id: &str,
        owner: &str,
        producer: &ProducerEntry,
    ) {
        if let Err(e) = self.try_create_consumer(peer_id, owner, producer).await {
            tracing::warn!(room = %self.id, peer = peer_id, producer = %producer.p.id().as_str(), "consumer not created: {e}");
        }
    }

    async fn try_create_consumer(
        self: &Arc<Self>,
        peer_id: &str,
        owner: &str,
        producer: &ProducerEntry,
    ) -> Result<(), RoomError> {
        if producer.p.is_closed() {
            return Ok(());
        }
        let (transport, mid, caps, link) = {
            let mut st = self.state.lock().await;
            let Some(peer) = st.peers.get(peer_id) else {
                return Ok(());
            };
            let (Some(caps), Some(link)) = (peer.rtp_caps.clone(), peer.link.clone()) else {
                return Ok(());
            };
            if !ortc::can_consume(&producer.consumable, &caps) {
                return Ok(());
            }
            let Some((t, mid)) = st.take_mid(peer_id, None) else {
                return Ok(());
            };
            (t, mid, caps, link)
        };
        let Some((consumer, info)) = self
            .new_consumer(
                peer_id,
                &transport,
                producer,
                &caps,
                How {
                    mid: mid.to_string(),
                    paused: true,
                    translate: None,
                },
            )
            .await?
        else {
            return Ok(());
        };
        let offer = NewConsumer {
            peer_id: owner.to_owned(),
            consumer: info,
            app_data: producer.app_data.clone(),
            producer_paused: consumer.producer_paused(),
        };
        match link.new_consumer(&offer, NEW_CONSUMER_TIMEOUT).await {
            Ok(()) => {
                // Between the two of a direct call the consumer stays paused (resumed when
                // they return to the SFU; see `p2p.rs`). A call that went direct meanwhile
                // paused the consumers it found, maybe before this resume: checked again, and
                // paused under the lock that orders the room's switches.
                let blocked = self.state.lock().await.p2p.blocks(peer_id, owner);
                if !blocked {
                    consumer.resume().await?;
                    let st = self.state.lock().await;
                    if st.p2p.blocks(peer_id, owner) {
                        consumer.pause().await?;
                    }
                }
                link.notify(&Notification::ConsumerScore {
                    consumer_id: offer.consumer.id,
                    score: consumer.score().into(),
                });
                Ok(())
            }
            Err(e) => {
                let _ = consumer.close().await;
                Err(RoomError::Peer {
                    code: e.status(),
                    reason: format!("newConsumer refused: {e}"),
                })
            }
        }
    }

    /// A consumer of `producer` for a broadcaster, on its transport `transport_id` (created
    /// running; the broadcaster needs the broadcaster's RTP capabilities), with the transport's
    /// next mid or `mid` (a WHEP answer keeps the offer's mids).
    pub(crate) async fn broadcaster_consume(
        self: &Arc<Self>,
        id: &str,
        transport_id: &str,
        producer_id: &str,
        mid: Option<&str>,
        translate: Option<ParamsHook<'_>>,
    ) -> Result<ConsumerInfo, RoomError> {
        let (producer, caps, transport, mid) = {
            let mut st = self.state.lock().await;
            let caps = st.broadcaster(id)?.rtp_caps.clone();
            st.transport(id, transport_id)?;
            let caps = caps.ok_or_else(|| {
                RoomError::bad_request("broadcaster does not have rtpCapabilities")
            })?;
            let producer = st.any_producer(producer_id)?.clone();
            if !ortc::can_consume(&producer.consumable, &caps) {
                return Err(RoomError::bad_request("cannot consume this producer"));
            }
            let (t, next) = st
                .take_mid(id, Some(transport_id))
                .ok_or_else(|| RoomError::not_found("transport gone"))?;
            let mid = mid.map_or_else(|| next.to_string(), str::to_owned);
            (producer, caps, t, mid)
        };
        let (_, info) = self
            .new_consumer(
                id,
                &transport,
                &producer,
                &caps,
                How {
                    mid,
                    paused: false,
                    translate,
                },
            )
            .await?
            .ok_or_else(|| RoomError::conflict("broadcaster is gone"))?;
        Ok(info)
    }

    /// Computes a consumer's parameters for `caps` (mid `mid` on its transport), creates it on
    /// `transport`, stores it on `peer_id` and watches it. None when the peer left meanwhile
    /// (the consumer is then closed again).
    async fn new_consumer(
        self: &Arc<Self>,
        peer_id: &str,
        transport: &Transport,
        producer: &ProducerEntry,
        caps: &RtpCapabilities,
        how: How<'_>,
    ) -> Result<Option<(Consumer, ConsumerInfo)>, RoomError> {
        self.state
            .lock()
            .await
            .may_add_consumer(peer_id, &self.cx.media.quotas)?;
        // A producer hosted on another router of the room comes piped to this one.
        let (_, consumable) = self.producer_on(producer, transport.router()).await?;
        let mut ssrc = ortc::random_ssrc;
        let mut params = ortc::get_consumer_rtp_parameters(
            &consumable,
            caps,
            ConsumerRtpOptions::for_kind(producer.kind),
            &mut ssrc,
        )?;
        let How {
            mid,
            paused,
            translate,
        } = how;
        params.mid = Some(mid);
        if let Some(t) = translate {
            t(producer.kind, &mut params);
        }
        let consumer_type = ortc::consumer_type(&consumable);
        let consumer = transport
            .consume(ConsumeOptions {
                consumer_id: ConsumerId::new(new_id()),
                producer_id: producer.p.id().clone(),
                kind: producer.kind.into(),
                rtp_parameters: (&params).into(),
                consumable_rtp_encodings: consumable.encodings.iter().map(Into::into).collect(),
                paused,
                ignore_dtx: false,
                consumer_type,
                preferred_layers: None,
            })
            .await?;
        {
            let mut st = self.state.lock().await;
            let Some(peer) = st.peers.get_mut(peer_id) else {
                drop(st);
                let _ = consumer.close().await;
                return Ok(None);
            };
            peer.consumers
                .insert(consumer.id().as_str().to_owned(), consumer.clone());
        }
        self.consumer_placed(peer_id).await;
        self.watch_consumer(peer_id.to_owned(), consumer.clone());
        let info = ConsumerInfo {
            id: consumer.id().as_str().to_owned(),
            producer_id: producer.p.id().as_str().to_owned(),
            kind: producer.kind,
            rtp_parameters: params,
            consumer_type,
        };
        Ok(Some((consumer, info)))
    }

    /// Pauses, resumes, asks a keyframe of, or sets layers or priority of a consumer of
    /// `peer_id`.
    pub(crate) async fn consumer_action(
        &self,
        peer_id: &str,
        id: &str,
        action: ConsumerAction,
    ) -> Result<(), RoomError> {
        let c = self.state.lock().await.consumer(peer_id, id)?;
        match action {
            ConsumerAction::Pause => c.pause().await?,
            ConsumerAction::Resume => c.resume().await?,
            ConsumerAction::RequestKeyFrame => c.request_key_frame().await?,
            ConsumerAction::SetPreferredLayers(layers) => {
                c.set_preferred_layers(layers).await?;
            }
            ConsumerAction::SetPriority(priority) => c.set_priority(priority).await?,
        }
        Ok(())
    }

    fn watch_consumer(self: &Arc<Self>, peer_id: String, c: Consumer) {
        let room = Arc::downgrade(self);
        let mut events = c.events();
        tokio::spawn(async move {
            let cid = c.id().as_str().to_owned();
            let notify = |n: Notification| {
                let room = room.clone();
                let peer_id = peer_id.clone();
                async move {
                    if let Some(r) = room.upgrade()
                        && let Some(p) = r.state.lock().await.peers.get(&peer_id)
                    {
                        p.notify(&n);
                    }
                }
            };
            loop {
                let consumer_id = cid.clone();
                tokio::select! {
                    e = events.recv() => match e {
                        Ok(MediaEvent::ConsumerProducerPause) => {
                            notify(Notification::ConsumerPaused { consumer_id, reason: None })
                                .await;
                        }
                        Ok(MediaEvent::ConsumerProducerResume) => {
                            notify(Notification::ConsumerResumed { consumer_id, reason: None })
                                .await;
                        }
                        Ok(MediaEvent::ConsumerBwePause) => {
                            let reason = Some("bwe");
                            notify(Notification::ConsumerPaused { consumer_id, reason }).await;
                        }
                        Ok(MediaEvent::ConsumerBweResume) => {
                            let reason = Some("bwe");
                            notify(Notification::ConsumerResumed { consumer_id, reason }).await;
                        }
                        Ok(MediaEvent::ConsumerScore(s)) => {
                            notify(Notification::ConsumerScore { consumer_id, score: s.into() })
                                .await;
                        }
                        Ok(MediaEvent::ConsumerLayersChange(l)) => {
                            notify(Notification::ConsumerLayersChanged {
                                consumer_id,
                                spatial_layer: l.map(|l| l.spatial_layer),
                                temporal_layer: l.and_then(|l| l.temporal_layer),
                            })
                            .await;
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break,
                    },
                    _ = c.closed() => break,
                }
            }
            let reason = c.closed().await;
            if let Some(r) = room.upgrade()
                && let Some(peer) = r.state.lock().await.peers.get_mut(&peer_id)
            {
                peer.consumers.remove(&cid);
                if reason == CloseReason::ProducerClosed {
                    peer.notify(&Notification::ConsumerClosed { consumer_id: cid });
                }
            }
        });
    }
}
