//! Data channels (mediasoup-demo's `produceData` / `newDataConsumer`): a peer's data producer
//! on its sending transport is offered to every other joined peer that has a consuming
//! transport with SCTP (and a peer joining later gets the existing ones); each data consumer is
//! watched and `dataConsumerClosed` told when it goes. Messages flow in the worker, from the
//! producer's stream to each consumer's stream: nothing passes through here.
//!
//! The chat hook: [`Room::data_producers`] lists the room's data producers (e.g. label
//! `chat`), [`Room::subscribe_data_producers`] hears new ones, [`Room::direct_transport`] is
//! the room's DirectTransport (created on first use) and [`Room::consume_data_direct`] puts a
//! `direct` data consumer on a data producer: its messages come as
//! `MediaEvent::DataConsumerMessage` events of that consumer.

use std::sync::Arc;
use std::time::Duration;

use ferrosfu_fbs::{DataProducerId, DataType, ProduceDataOptions};
use tokio::sync::{OnceCell, broadcast};

use super::api::{
    DataConsumerInfo, DataProduced, MAX_DATA_APP_DATA, MAX_DATA_LABEL, NewDataConsumer,
    Notification, ProduceData, Stats,
};
use super::state::DataProducerEntry;
use super::{Room, RoomError};
use crate::chat::CHAT_LABEL;
use crate::media::{CloseReason, DataConsumeOptions, DataConsumer, DataProducer, Transport};
use crate::worker::new_id;

/// How long a client has to accept `newDataConsumer`.
const NEW_DATA_CONSUMER_TIMEOUT: Duration = Duration::from_secs(15);

/// A data producer of the room and whose it is.
#[allow(dead_code)] // the chat hook: its user (chat storage) is another change
#[derive(Clone, Debug)]
pub(crate) struct RoomDataProducer {
    pub peer_id: String,
    pub producer: DataProducer,
}

/// What a room keeps for data besides its peers.
#[derive(Debug)]
pub(super) struct RoomData {
    direct: OnceCell<Transport>,
    new_producers: broadcast::Sender<RoomDataProducer>,
}

impl Default for RoomData {
    fn default() -> Self {
        Self {
            direct: OnceCell::new(),
            new_producers: broadcast::channel(64).0,
        }
    }
}

fn check_sizes(req: &ProduceData) -> Result<(), RoomError> {
    if req.label.len() > MAX_DATA_LABEL || req.protocol.len() > MAX_DATA_LABEL {
        return Err(RoomError::bad_request(format!(
            "label and protocol are at most {MAX_DATA_LABEL} bytes"
        )));
    }
    if !req.app_data.is_object() && !req.app_data.is_null() {
        return Err(RoomError::bad_request("appData must be an object"));
    }
    if req.app_data.to_string().len() > MAX_DATA_APP_DATA {
        return Err(RoomError::bad_request(format!(
            "appData is at most {MAX_DATA_APP_DATA} bytes"
        )));
    }
    Ok(())
}

impl Room {
    /// A data producer of `peer_id` (joined, allowed to publish) on one of its transports with
    /// SCTP; every other joined peer with a consuming SCTP transport is offered a data consumer
    /// of it once the answer is out.
    pub(crate) async fn produce_data(
        self: &Arc<Self>,
        peer_id: &str,
        req: ProduceData,
    ) -> Result<DataProduced, RoomError> {
        check_sizes(&req)?;
        let limit = self.cx.media.data_channels.max_data_producers_per_peer as usize;
        let t = {
            let st = self.state.lock().await;
            st.may_produce(peer_id)?;
            if st.peer(peer_id)?.data_producers.len() >= limit {
                return Err(RoomError::conflict(format!(
                    "too many data producers (at most {limit} per peer)"
                )));
            }
            st.transport(peer_id, &req.transport_id)?
        };
        if !t.has_sctp() {
            return Err(RoomError::conflict(
                "transport has no SCTP (created without sctpCapabilities, or data channels are off)",
            ));
        }
        let id = new_id();
        let producer = t
            .produce_data(ProduceDataOptions {
                data_producer_id: DataProducerId::new(id.clone()),
                data_type: DataType::Sctp,
                sctp_stream_parameters: Some(req.sctp_stream_parameters.into()),
                label: req.label,
                protocol: req.protocol,
                paused: false,
            })
            .await?;
        let relay = if producer.label() == CHAT_LABEL {
            match self.start_chat_relay(peer_id, &producer).await {
                Ok(r) => Some(r),
                Err(e) => {
                    let _ = producer.close().await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let entry = DataProducerEntry {
            relay,
            p: producer.clone(),
            app_data: if req.app_data.is_null() {
                serde_json::json!({})
            } else {
                req.app_data
            },
        };
        let others = {
            let mut st = self.state.lock().await;
            let Some(peer) = st.peers.get_mut(peer_id) else {
                drop(st);
                let _ = producer.close().await;
                return Err(RoomError::peer_gone());
            };
            peer.data_producers.insert(id.clone(), entry.clone());
            st.consumers_for(peer_id)
        };
        self.watch_data_producer(peer_id.to_owned(), producer.clone());
        self.publish_data_producer(peer_id, &entry);
        let _ = self.data.new_producers.send(RoomDataProducer {
            peer_id: peer_id.to_owned(),
            producer: producer.clone(),
        });
        tracing::info!(room = %self.id, peer = peer_id, data_producer = %id, label = producer.label(), "data producer created");
        let room = self.clone();
        let owner = peer_id.to_owned();
        tokio::spawn(async move {
            for other in others {
                room.create_data_consumer(&other, &owner, &entry).await;
            }
        });
        Ok(DataProduced {
            id,
            stream_id: req.sctp_stream_parameters.stream_id,
        })
    }

    async fn data_producer(&self, peer_id: &str, id: &str) -> Result<DataProducer, RoomError> {
        self.state
            .lock()
            .await
            .peer(peer_id)?
            .data_producers
            .get(id)
            .map(|e| e.p.clone())
            .ok_or_else(|| RoomError::not_found(format!("dataProducer with id \"{id}\" not found")))
    }

    /// A joined peer is offered every data producer of the other joined peers (run from
    /// `consume_all`, after its media consumers).
    pub(super) async fn consume_all_data(self: &Arc<Self>, peer_id: &str) {
        let producers: Vec<(String, DataProducerEntry)> = {
            let st = self.state.lock().await;
            st.peers
                .values()
                .filter(|o| o.joined && o.id != peer_id)
                .flat_map(|o| o.data_producers.values().map(|p| (o.id.clone(), p.clone())))
                .collect()
        };
        for (owner, p) in producers {
            self.create_data_consumer(peer_id, &owner, &p).await;
        }
    }

    /// A data consumer of `producer` (of `owner`) on `peer_id`'s consuming transport with
    /// SCTP, offered with `newDataConsumer` (mediasoup-demo's `_createDataConsumer`); closed
    /// again when the peer refuses it. Nothing when the peer has no such transport.
    ///
    /// Created running, as the demo does: the client opens its channel before it answers, so
    /// only messages sent while the offer is on its way can reach a stream not open yet.
    /// Pausing until the answer (as media consumers are) would lose more: everything until
    /// the resume reaches the worker.
    pub(super) async fn create_data_consumer(
        self: &Arc<Self>,
        peer_id: &str,
        owner: &str,
        producer: &DataProducerEntry,
    ) {
        if let Err(e) = self
            .try_create_data_consumer(peer_id, owner, producer)
            .await
        {
            tracing::warn!(room = %self.id, peer = peer_id, data_producer = %producer.p.id().as_str(), "data consumer not created: {e}");
        }
    }

    async fn try_create_data_consumer(
        self: &Arc<Self>,
        peer_id: &str,
        owner: &str,
        producer: &DataProducerEntry,
    ) -> Result<(), RoomError> {
        if producer.p.is_closed() {
            return Ok(());
        }
        let (transport, link) = {
            let st = self.state.lock().await;
            let Some(peer) = st.peers.get(peer_id) else {
                return Ok(());
            };
            let Some(link) = peer.link.clone() else {
                return Ok(());
            };
            let t = peer
                .transports
                .values()
                .find(|t| t.consuming && t.t.has_sctp() && !t.t.is_closed());
            let Some(t) = t else { return Ok(()) };
            (t.t.clone(), link)
        };
        // A chat producer's messages come through the room's relay.
        let consumed = producer.relay.as_ref().unwrap_or(&producer.p);
        let Some((consumer, mut info)) = self
            .new_data_consumer(peer_id, &transport, consumed)
            .await?
        else {
            return Ok(());
        };
        // The offer names the sender's data producer, relayed or not.
        info.data_producer_id = producer.p.id().as_str().to_owned();
        let offer = NewDataConsumer {
            peer_id: Some(owner.to_owned()),
            consumer: info,
            app_data: producer.app_data.clone(),
        };
        if let Err(e) = link
            .new_data_consumer(&offer, NEW_DATA_CONSUMER_TIMEOUT)
            .await
        {
            let _ = consumer.close().await;
            return Err(RoomError::Peer {
                code: e.status(),
                reason: format!("newDataConsumer refused: {e}"),
            });
        }
        Ok(())
    }

    /// Creates a data consumer of `producer` on `transport`, stores it on `peer_id` and
    /// watches it. None when the peer left meanwhile (the consumer is then closed again).
    async fn new_data_consumer(
        self: &Arc<Self>,
        peer_id: &str,
        transport: &Transport,
        producer: &DataProducer,
    ) -> Result<Option<(DataConsumer, DataConsumerInfo)>, RoomError> {
        // A data producer hosted on another router of the room comes relayed to this one.
        let here = self.data_producer_on(producer, transport.router()).await?;
        let consumer = transport
            .consume_data(&here, DataConsumeOptions::default())
            .await?;
        {
            let mut st = self.state.lock().await;
            let Some(peer) = st.peers.get_mut(peer_id) else {
                drop(st);
                let _ = consumer.close().await;
                return Ok(None);
            };
            peer.data_consumers
                .insert(consumer.id().as_str().to_owned(), consumer.clone());
        }
        self.watch_data_consumer(peer_id.to_owned(), consumer.clone());
        let stream = consumer
            .sctp_stream_parameters()
            .ok_or_else(|| RoomError::Failed("an sctp data consumer without a stream".into()))?;
        let info = DataConsumerInfo {
            id: consumer.id().as_str().to_owned(),
            data_producer_id: producer.id().as_str().to_owned(),
            sctp_stream_parameters: stream.into(),
            label: consumer.label().to_owned(),
            protocol: consumer.protocol().to_owned(),
        };
        Ok(Some((consumer, info)))
    }

    /// A data consumer for a broadcaster on its transport `transport_id` (REST
    /// `…/consume/data`).
    pub(crate) async fn broadcaster_consume_data(
        self: &Arc<Self>,
        id: &str,
        transport_id: &str,
        data_producer_id: &str,
    ) -> Result<DataConsumerInfo, RoomError> {
        let (transport, producer) = {
            let st = self.state.lock().await;
            st.broadcaster(id)?;
            let t = st.transport(id, transport_id)?;
            let p = st
                .peers
                .values()
                .find_map(|p| p.data_producers.get(data_producer_id))
                .map(|e| e.p.clone())
                .ok_or_else(|| {
                    RoomError::not_found(format!(
                        "dataProducer with id \"{data_producer_id}\" not found"
                    ))
                })?;
            (t, p)
        };
        if !transport.has_sctp() {
            return Err(RoomError::conflict("transport has no SCTP"));
        }
        let (_, info) = self
            .new_data_consumer(id, &transport, &producer)
            .await?
            .ok_or_else(|| RoomError::conflict("broadcaster is gone"))?;
        Ok(info)
    }

    /// A broadcaster's data producer (REST `…/produce/data`): consumed by every joined peer.
    pub(crate) async fn broadcaster_produce_data(
        self: &Arc<Self>,
        id: &str,
        req: ProduceData,
    ) -> Result<DataProduced, RoomError> {
        self.state.lock().await.broadcaster(id)?;
        self.produce_data(id, req).await
    }

    /// `getDataProducerStats` of a data producer of `peer_id`.
    pub(crate) async fn data_producer_stats(
        &self,
        peer_id: &str,
        id: &str,
    ) -> Result<Stats, RoomError> {
        let p = self.data_producer(peer_id, id).await?;
        Ok(Stats::DataProducer(p.get_stats().await?))
    }

    /// `getDataConsumerStats` of a data consumer of `peer_id`.
    pub(crate) async fn data_consumer_stats(
        &self,
        peer_id: &str,
        id: &str,
    ) -> Result<Stats, RoomError> {
        let c = self
            .state
            .lock()
            .await
            .peer(peer_id)?
            .data_consumers
            .get(id)
            .cloned()
            .ok_or_else(|| {
                RoomError::not_found(format!("dataConsumer with id \"{id}\" not found"))
            })?;
        Ok(Stats::DataConsumer(c.get_stats().await?))
    }

    /// The room's open data producers, all or those with `label` (e.g. `chat`).
    #[allow(dead_code)] // the chat hook: its user (chat storage) is another change
    pub(crate) async fn data_producers(&self, label: Option<&str>) -> Vec<RoomDataProducer> {
        let st = self.state.lock().await;
        let mut out: Vec<RoomDataProducer> = st
            .peers
            .values()
            .flat_map(|peer| {
                peer.data_producers.values().map(|e| RoomDataProducer {
                    peer_id: peer.id.clone(),
                    producer: e.p.clone(),
                })
            })
            .filter(|d| !d.producer.is_closed())
            .filter(|d| label.is_none_or(|l| d.producer.label() == l))
            .collect();
        out.sort_by(|a, b| a.producer.id().as_str().cmp(b.producer.id().as_str()));
        out
    }

    /// Every data producer created from now on (subscribe, then list [`Room::data_producers`]
    /// to miss none).
    #[allow(dead_code)] // the chat hook: its user (chat storage) is another change
    pub(crate) fn subscribe_data_producers(&self) -> broadcast::Receiver<RoomDataProducer> {
        self.data.new_producers.subscribe()
    }

    /// The room's DirectTransport, created on the first call (closed with the room's router).
    #[allow(dead_code)] // the chat hook: its user (chat storage) is another change
    pub(crate) async fn direct_transport(&self) -> Result<Transport, RoomError> {
        let max = self.cx.media.data_channels.max_message_size;
        let t = self
            .data
            .direct
            .get_or_try_init(|| async { self.router.create_direct_transport(max).await })
            .await?;
        Ok(t.clone())
    }

    /// A `direct` data consumer of the room's data producer `data_producer_id` on the room's
    /// DirectTransport: the producer's messages arrive as its `DataConsumerMessage` events.
    #[allow(dead_code)] // the chat hook: its user (chat storage) is another change
    pub(crate) async fn consume_data_direct(
        &self,
        data_producer_id: &str,
    ) -> Result<DataConsumer, RoomError> {
        let producer = self
            .data_producers(None)
            .await
            .into_iter()
            .find(|d| d.producer.id().as_str() == data_producer_id)
            .ok_or_else(|| {
                RoomError::not_found(format!(
                    "dataProducer with id \"{data_producer_id}\" not found"
                ))
            })?
            .producer;
        let t = self.direct_transport().await?;
        Ok(t.consume_data(&producer, DataConsumeOptions::default())
            .await?)
    }

    /// Forgets a data producer once it closes (by its peer, its stream's reset, its transport
    /// or the worker).
    fn watch_data_producer(self: &Arc<Self>, peer_id: String, p: DataProducer) {
        let room = Arc::downgrade(self);
        tokio::spawn(async move {
            p.closed().await;
            if let Some(r) = room.upgrade() {
                if let Some(peer) = r.state.lock().await.peers.get_mut(&peer_id) {
                    peer.data_producers.remove(p.id().as_str());
                }
                r.publish(crate::cluster::RoomEvent::DataProducerClosed {
                    peer_id: peer_id.clone(),
                    data_producer_id: p.id().as_str().to_owned(),
                });
            }
        });
    }

    /// Forgets a data consumer once it closes and tells its peer (`dataConsumerClosed`) unless
    /// the room closed it itself.
    fn watch_data_consumer(self: &Arc<Self>, peer_id: String, c: DataConsumer) {
        let room = Arc::downgrade(self);
        tokio::spawn(async move {
            let reason = c.closed().await;
            let id = c.id().as_str().to_owned();
            if let Some(r) = room.upgrade()
                && let Some(peer) = r.state.lock().await.peers.get_mut(&peer_id)
            {
                peer.data_consumers.remove(&id);
                if reason != CloseReason::Closed {
                    peer.notify(&Notification::DataConsumerClosed {
                        data_consumer_id: id,
                    });
                }
            }
        });
    }
}
