//! Producers: `produce` (then a consumer for every other joined peer), what a producer's owner
//! may do with it, and the watch that reports its scores and forgets it when it closes.

use std::sync::Arc;

use ferrosfu_fbs::{MediaEvent, ProduceOptions, ProducerId};

use super::api::{EncodingScore, Notification, Produce, Produced, ProducerAction};
use super::state::ProducerEntry;
use super::{Room, RoomError};
use crate::media::Producer;
use crate::ortc::{self, MediaKind};
use crate::store::Write;
use crate::worker::new_id;

/// Producers' keyframe request delay (ms): at most one PLI/FIR upstream per this interval,
/// later requests deferred to its end.
const KEY_FRAME_REQUEST_DELAY_MS: u32 = 1000;

impl Room {
    /// A producer of `peer_id` (joined, allowed to publish) on one of its transports; every
    /// other joined, connected peer is offered a consumer of it once the answer is out. An
    /// audio producer is observed by the room's speaker observers before the answer.
    pub(crate) async fn produce(
        self: &Arc<Self>,
        peer_id: &str,
        req: Produce,
    ) -> Result<Produced, RoomError> {
        let Produce {
            transport_id,
            kind,
            rtp_parameters: mut params,
            app_data,
            paused,
        } = req;
        let t = {
            let mut st = self.state.lock().await;
            st.may_produce(peer_id)?;
            st.may_add_producer(peer_id, &self.cx.media.quotas)?;
            let given = params.rtcp.cname.as_deref().unwrap_or_default();
            params.rtcp.cname = Some(st.producer_cname(peer_id, &transport_id, given)?);
            st.transport(peer_id, &transport_id)?
        };
        let mut ssrc = ortc::random_ssrc;
        let mapping =
            ortc::get_producer_rtp_parameters_mapping(&mut params, &self.cx.caps, &mut ssrc)?;
        let consumable =
            ortc::get_consumable_rtp_parameters(kind, &params, &self.cx.caps, &mapping)?;
        if params
            .codecs
            .iter()
            .any(|c| !c.mime_type.to_ascii_lowercase().starts_with(kind.as_str()))
        {
            return Err(RoomError::bad_request("codec kinds do not match 'kind'"));
        }
        let id = new_id();
        let producer = t
            .produce(ProduceOptions {
                producer_id: ProducerId::new(id.clone()),
                kind: kind.into(),
                rtp_parameters: (&params).into(),
                rtp_mapping: (&mapping).into(),
                key_frame_request_delay: KEY_FRAME_REQUEST_DELAY_MS,
                paused,
            })
            .await?;
        let entry = ProducerEntry {
            p: producer.clone(),
            kind,
            consumable,
            app_data,
        };
        let others = {
            let mut st = self.state.lock().await;
            let Some(peer) = st.peers.get_mut(peer_id) else {
                drop(st);
                let _ = producer.close().await;
                return Err(RoomError::peer_gone());
            };
            peer.producers.insert(id.clone(), entry.clone());
            if let Some(part) = &mut peer.participant {
                part.producers += 1;
                self.cx.store.write(Write::MediaTrackCreated {
                    id: id.clone(),
                    participant_id: part.id.clone(),
                    kind: kind.as_str().to_owned(),
                    codec: params
                        .codecs
                        .first()
                        .map(|c| c.mime_type.clone())
                        .unwrap_or_default(),
                    parameters: serde_json::to_value(&params).unwrap_or_default(),
                    at: chrono::Utc::now(),
                });
            }
            st.consumers_for(peer_id)
        };
        self.watch_producer(peer_id.to_owned(), producer.clone());
        self.publish(crate::cluster::RoomEvent::ProducerAdded {
            peer_id: peer_id.to_owned(),
            producer_id: id.clone(),
            kind: kind.as_str().to_owned(),
            rtp_parameters: serde_json::to_value(&entry.consumable).unwrap_or_default(),
            app_data: entry.app_data.clone(),
            paused,
        });
        if kind == MediaKind::Audio {
            // The speaker observers are on the home router: audio hosted elsewhere is piped.
            match self.producer_on(&entry, &self.router).await {
                Ok(_) => self.observers.add(&self.id, producer.id()).await,
                Err(e) => {
                    tracing::warn!(room = %self.id, producer = %id, "not observed for activeSpeaker: {e}");
                }
            }
        }
        tracing::info!(room = %self.id, peer = peer_id, producer = %id, kind = kind.as_str(), "producer created");
        // Consumers for everyone else, in the background (the answer goes out first).
        let room = self.clone();
        let owner = peer_id.to_owned();
        tokio::spawn(async move {
            for other in others {
                room.create_consumer(&other, &owner, &entry).await;
            }
        });
        Ok(Produced { id })
    }

    /// Closes, pauses or resumes a producer of `peer_id`.
    pub(crate) async fn producer_action(
        &self,
        peer_id: &str,
        id: &str,
        action: ProducerAction,
    ) -> Result<(), RoomError> {
        let p = self.state.lock().await.producer(peer_id, id)?.p.clone();
        match action {
            ProducerAction::Close => {
                p.close().await?;
                if let Some(peer) = self.state.lock().await.peers.get_mut(peer_id) {
                    peer.producers.remove(id);
                }
            }
            ProducerAction::Pause => {
                p.pause().await?;
                self.publish(crate::cluster::RoomEvent::ProducerPaused {
                    peer_id: peer_id.to_owned(),
                    producer_id: id.to_owned(),
                });
            }
            ProducerAction::Resume => {
                p.resume().await?;
                self.publish(crate::cluster::RoomEvent::ProducerResumed {
                    peer_id: peer_id.to_owned(),
                    producer_id: id.to_owned(),
                });
            }
        }
        Ok(())
    }

    fn watch_producer(self: &Arc<Self>, peer_id: String, p: Producer) {
        let room = Arc::downgrade(self);
        let mut events = p.events();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    e = events.recv() => match e {
                        Ok(MediaEvent::ProducerScore(scores)) => {
                            let Some(r) = room.upgrade() else { return };
                            let st = r.state.lock().await;
                            if let Some(peer) = st.peers.get(&peer_id) {
                                peer.notify(&Notification::ProducerScore {
                                    producer_id: p.id().as_str().to_owned(),
                                    score: scores
                                        .iter()
                                        .enumerate()
                                        .map(|(i, (ssrc, rid, s))| EncodingScore {
                                            encoding_idx: i,
                                            ssrc: *ssrc,
                                            rid: rid.clone(),
                                            score: *s,
                                        })
                                        .collect(),
                                });
                            }
                        }
                        Ok(MediaEvent::ProducerLayersNeeded(spatial_layers)) => {
                            let Some(r) = room.upgrade() else { return };
                            let st = r.state.lock().await;
                            if let Some(peer) = st.peers.get(&peer_id) {
                                peer.notify(&Notification::ProducerLayersNeeded {
                                    producer_id: p.id().as_str().to_owned(),
                                    spatial_layers,
                                });
                            }
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break,
                    },
                    _ = p.closed() => break,
                }
            }
            // Gone (closed by the peer, its transport or the worker): forget it.
            if let Some(r) = room.upgrade() {
                if let Some(peer) = r.state.lock().await.peers.get_mut(&peer_id) {
                    peer.producers.remove(p.id().as_str());
                }
                r.publish(crate::cluster::RoomEvent::ProducerClosed {
                    peer_id: peer_id.clone(),
                    producer_id: p.id().as_str().to_owned(),
                });
            }
        });
    }
}
