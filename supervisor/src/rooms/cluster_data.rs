//! Data producers across nodes. A node announces each data producer of its own peers
//! (`dataProducerAdded`: id, label, protocol, appData, its SCTP stream parameters). A node with
//! peers in the room asks the producer's node (request `pipeDataProducer`) to relay it: that
//! node taps the data producer with a `direct` data consumer — for `chat`, the room's checked
//! relay of it, so only accepted messages travel — and sends each message on in order (request
//! `dataMessage`: PPID and base64 data) to the asking node, which sends it from a `direct` data
//! producer of the same id on its home router that its own peers consume (`newDataConsumer`
//! naming the sender). Every message crosses Redis once: right for chat, reactions, presence
//! and file chunks, not for bulk streaming. A relay stops when either side closes, the tap with
//! the source and the local producer with `dataProducerClosed` or the node's departure.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ferrosfu_fbs::{
    DataProducerId, DataSend, DataType, MediaEvent, ProduceDataOptions, SctpStreamParameters,
};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::state::DataProducerEntry;
use super::{Room, RoomError, Rooms};
use crate::cluster::{self, Cluster, NodeId, RemoteError, RoomEvent, RpcRequest};
use crate::media::{DataConsumeOptions, DataProducer};

const PIPE_DATA_METHOD: &str = "pipeDataProducer";
const DATA_METHOD: &str = "dataMessage";
const PIPE_TIMEOUT: Duration = Duration::from_secs(5);
/// A message not acknowledged by the receiving node in this long stops its relay.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

fn stream_json(p: Option<SctpStreamParameters>) -> Value {
    match p {
        Some(p) => json!({
            "ordered": p.ordered,
            "maxPacketLifeTime": p.max_packet_life_time,
            "maxRetransmits": p.max_retransmits,
        }),
        None => Value::Null,
    }
}

fn stream_from(v: &Value) -> Option<SctpStreamParameters> {
    let u16_of = |k: &str| v[k].as_u64().and_then(|x| u16::try_from(x).ok());
    Some(SctpStreamParameters {
        stream_id: 0,
        ordered: v["ordered"].as_bool()?,
        max_packet_life_time: u16_of("maxPacketLifeTime"),
        max_retransmits: u16_of("maxRetransmits"),
    })
}

impl Rooms {
    /// The requests of data relays between nodes.
    pub(super) fn handle_data_requests(self: &Arc<Self>, cluster: &Arc<Cluster>) {
        self.answer(cluster, PIPE_DATA_METHOD, |rooms, req| async move {
            rooms.pipe_data_request(req).await
        });
        self.answer(cluster, DATA_METHOD, |rooms, req| async move {
            rooms.data_message(req).await
        });
    }

    /// Another node asks for the messages of one of our peers' data producers.
    async fn pipe_data_request(&self, req: RpcRequest) -> Result<Value, RemoteError> {
        let bad = |m: &str| RemoteError::new("bad_request", m);
        let room_id = req.params["room"]
            .as_str()
            .ok_or_else(|| bad("room missing"))?;
        let id = req.params["dataProducerId"]
            .as_str()
            .ok_or_else(|| bad("dataProducerId missing"))?;
        let cluster = self
            .cluster()
            .ok_or_else(|| RemoteError::new("failed", "not in a cluster"))?
            .clone();
        let room = self
            .get(room_id)
            .await
            .ok_or_else(|| RemoteError::new("not_found", format!("no room {room_id} here")))?;
        let entry = room
            .local_data_producer(id)
            .await
            .ok_or_else(|| RemoteError::new("not_found", format!("no data producer {id} here")))?;
        // Chat: the room's checked relay is what others get.
        let source = entry.relay.clone().unwrap_or(entry.p.clone());
        let direct = room
            .direct_transport()
            .await
            .map_err(|e| RemoteError::new("failed", e.to_string()))?;
        let here = room
            .data_producer_on(&source, direct.router())
            .await
            .map_err(|e| RemoteError::new("failed", e.to_string()))?;
        let tap = direct
            .consume_data(&here, DataConsumeOptions::default())
            .await
            .map_err(|e| RemoteError::new("failed", e.to_string()))?;
        let (to, room_id, id) = (req.from.clone(), room_id.to_owned(), id.to_owned());
        tokio::spawn(async move {
            let mut events = tap.events();
            loop {
                let (ppid, data) = tokio::select! {
                    e = events.recv() => match e {
                        Ok(MediaEvent::DataConsumerMessage { ppid, data }) => (ppid, data),
                        Ok(_) => continue,
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(target: "cluster", data_producer = id, lost = n, "data relay lagged");
                            continue;
                        }
                        Err(RecvError::Closed) => break,
                    },
                    _ = tap.closed() => break,
                };
                let sent = cluster
                    .request(
                        &to,
                        DATA_METHOD,
                        json!({
                            "room": room_id, "dataProducerId": id, "ppid": ppid,
                            "data": base64::engine::general_purpose::STANDARD.encode(&data),
                        }),
                        MESSAGE_TIMEOUT,
                    )
                    .await;
                if let Err(e) = sent {
                    tracing::info!(target: "cluster", data_producer = id, to = %to, "data relay stopped: {e}");
                    break;
                }
            }
            let _ = tap.close().await;
        });
        Ok(json!({}))
    }

    /// A message of a remote data producer relayed to us: sent on from its local relay.
    async fn data_message(&self, req: RpcRequest) -> Result<Value, RemoteError> {
        let p = &req.params;
        let bad = |m: &str| RemoteError::new("bad_request", m);
        let room_id = p["room"].as_str().ok_or_else(|| bad("room missing"))?;
        let id = p["dataProducerId"]
            .as_str()
            .ok_or_else(|| bad("dataProducerId missing"))?;
        let ppid = p["ppid"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| bad("ppid missing"))?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(p["data"].as_str().ok_or_else(|| bad("data missing"))?)
            .map_err(|_| bad("data is not base64"))?;
        let gone = || RemoteError::new("not_found", "no such relay here");
        let room = self.get(room_id).await.ok_or_else(gone)?;
        let relay = room
            .remote_data_producer(&req.from, id)
            .await
            .ok_or_else(gone)?;
        relay
            .send(DataSend {
                ppid,
                data,
                subchannels: None,
                required_subchannel: None,
            })
            .await
            .map_err(|e| RemoteError::new("failed", e.to_string()))?;
        Ok(json!({}))
    }
}

impl Room {
    /// Announces a data producer of a local peer to the other nodes.
    pub(super) fn publish_data_producer(&self, peer_id: &str, e: &DataProducerEntry) {
        self.publish(RoomEvent::DataProducerAdded {
            peer_id: peer_id.to_owned(),
            data_producer: cluster::DataProducerEntry {
                data_producer_id: e.p.id().as_str().to_owned(),
                label: e.p.label().to_owned(),
                protocol: e.p.protocol().to_owned(),
                app_data: e.app_data.clone(),
                stream: stream_json(e.p.consumer_stream_parameters()),
            },
        });
    }

    async fn local_data_producer(&self, id: &str) -> Option<DataProducerEntry> {
        let st = self.state.lock().await;
        st.peers
            .values()
            .filter(|p| p.remote.is_none())
            .find_map(|p| p.data_producers.get(id))
            .cloned()
    }

    /// The local relay of `node`'s data producer `id`.
    async fn remote_data_producer(&self, node: &NodeId, id: &str) -> Option<DataProducer> {
        let st = self.state.lock().await;
        st.peers
            .values()
            .filter(|p| p.remote.as_ref() == Some(node))
            .find_map(|p| p.data_producers.get(id))
            .map(|e| e.p.clone())
    }

    /// A remote peer's data producer: a local relay of it (asked of its node) that the local
    /// peers are offered.
    pub(super) async fn remote_data_added(
        self: &Arc<Self>,
        node: NodeId,
        peer_id: String,
        d: cluster::DataProducerEntry,
    ) {
        let known = {
            let st = self.state.lock().await;
            st.remote_peer(&peer_id, &node)
                .is_some_and(|p| !p.data_producers.contains_key(&d.data_producer_id))
        };
        if !known {
            return;
        }
        let room = self.clone();
        tokio::spawn(async move {
            if let Err(e) = room.relay_remote_data(&node, &peer_id, d).await {
                tracing::warn!(target: "cluster", room = %room.id, from = %node, "remote data producer not relayed: {e}");
            }
        });
    }

    async fn relay_remote_data(
        self: &Arc<Self>,
        node: &NodeId,
        peer_id: &str,
        d: cluster::DataProducerEntry,
    ) -> Result<(), RoomError> {
        let c = self
            .cx
            .rooms
            .upgrade()
            .and_then(|r| r.cluster().cloned())
            .ok_or_else(|| RoomError::Failed("not in a cluster".into()))?;
        let direct = self.direct_transport().await?;
        let relay = direct
            .produce_data(ProduceDataOptions {
                data_producer_id: DataProducerId::new(d.data_producer_id.clone()),
                data_type: DataType::Direct,
                sctp_stream_parameters: None,
                label: d.label.clone(),
                protocol: d.protocol.clone(),
                paused: false,
            })
            .await?;
        if let Some(s) = stream_from(&d.stream) {
            relay.set_relayed_stream(s);
        }
        let entry = DataProducerEntry {
            p: relay.clone(),
            app_data: d.app_data.clone(),
            relay: None,
        };
        let others = {
            let mut st = self.state.lock().await;
            let Some(peer) = st.remote_peer_mut(peer_id, node) else {
                drop(st);
                let _ = relay.close().await;
                return Ok(());
            };
            peer.data_producers
                .insert(d.data_producer_id.clone(), entry.clone());
            st.consumers_for(peer_id)
        };
        let asked = c
            .request(
                node,
                PIPE_DATA_METHOD,
                json!({"room": self.id, "dataProducerId": d.data_producer_id}),
                PIPE_TIMEOUT,
            )
            .await;
        if let Err(e) = asked {
            self.remote_data_closed(node, peer_id, &d.data_producer_id)
                .await;
            return Err(RoomError::Failed(format!("pipe data request: {e}")));
        }
        tracing::info!(target: "cluster", room = %self.id, data_producer = d.data_producer_id, from = %node, "remote data producer relayed here");
        for other in others {
            self.create_data_consumer(&other, peer_id, &entry).await;
        }
        Ok(())
    }

    /// A remote data producer closed (or its node is gone): its local relay closes, and the
    /// data consumers of it with it.
    pub(super) async fn remote_data_closed(&self, node: &NodeId, peer_id: &str, id: &str) {
        let entry = {
            let mut st = self.state.lock().await;
            st.remote_peer_mut(peer_id, node)
                .and_then(|p| p.data_producers.remove(id))
        };
        if let Some(e) = entry {
            let _ = e.p.close().await;
        }
    }
}
