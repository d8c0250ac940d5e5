//! Rooms across nodes (`[cluster]`, see `crate::cluster`): a room exists on every node that has a
//! peer in it. Each node publishes what happens to its own peers (joined, left, renamed, a
//! producer added, paused, resumed or closed) on the room's Redis channel and keeps the other
//! nodes' peers as *remote* peers of its room (no connection; `newPeer`/`peerClosed` to the
//! local peers as they come and go). A remote producer is piped to this node when it is
//! announced (the node has local peers in the room, or it would not hear of it): this node makes
//! a PipeTransport on the room's home router and asks the producer's node (RPC
//! `pipeProducer`) to make its half — a PipeTransport on the producer's router connected to
//! ours and a consumer of type `pipe` — then produces the same id here with the pipe's
//! parameters. Local peers then consume it like any producer of the room (other local routers
//! get it through `pipe_to_router`). Inter-node pipes are SRTP-protected (AEAD_AES_256_GCM, keys
//! exchanged over the RPC).
//!
//! A node that stops heartbeating is gone within the registration TTL: its peers close here
//! (`peerClosed`) and its producers' pipes close, with the consumers of them. A node's own
//! pipe halves toward a gone node close too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferrosfu_fbs::{ProducerId, SrtpCryptoSuite, SrtpParameters};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::api::PeerInfo;
use super::state::{Peer, ProducerEntry};
use super::{Room, RoomError, Rooms};
use crate::auth::Role;
use crate::cluster::{Cluster, ClusterEvent, NodeId, RemoteError, RoomEvent, RpcRequest};
use crate::media::{
    PipeSettings, Transport, connect_pipe, create_pipe_transport, pipe_consume, pipe_produce,
};
use crate::ortc::{MediaKind, RtpParameters};

/// The RPC that asks a producer's node for its half of a pipe.
const PIPE_METHOD: &str = "pipeProducer";
/// How long a pipe request may take (the far node makes a transport and a consumer).
const PIPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Pipe transports toward each other node (both halves this node made), closed when it goes.
#[derive(Debug, Default)]
pub(super) struct NodePipes {
    by_node: std::sync::Mutex<HashMap<NodeId, Vec<Transport>>>,
}

impl NodePipes {
    fn add(&self, node: &NodeId, t: Transport) {
        let mut m = self.by_node.lock().expect("never held across a panic");
        let list = m.entry(node.clone()).or_default();
        list.retain(|t| !t.is_closed());
        list.push(t);
    }

    fn take(&self, node: &NodeId) -> Vec<Transport> {
        self.by_node
            .lock()
            .expect("never held across a panic")
            .remove(node)
            .unwrap_or_default()
    }

    /// Open pipe transports to other nodes (for metrics).
    pub(super) fn open(&self) -> Vec<Transport> {
        self.by_node
            .lock()
            .expect("never held across a panic")
            .values()
            .flatten()
            .filter(|t| !t.is_closed())
            .cloned()
            .collect()
    }
}

fn pipe_settings(c: &Cluster) -> PipeSettings {
    PipeSettings {
        listen_ip: c.settings().pipe_ip,
        announced: None,
        enable_srtp: true,
        enable_rtx: true,
    }
}

fn srtp_json(p: &Option<SrtpParameters>) -> Value {
    match p {
        Some(p) => json!({"cryptoSuite": "AEAD_AES_256_GCM", "keyBase64": p.key_base64}),
        None => Value::Null,
    }
}

fn srtp_from(v: &Value) -> Result<Option<SrtpParameters>, String> {
    if v.is_null() {
        return Ok(None);
    }
    if v["cryptoSuite"] != "AEAD_AES_256_GCM" {
        return Err("pipes use AEAD_AES_256_GCM".into());
    }
    // Checked by the worker when the transport connects.
    let key = v["keyBase64"].as_str().ok_or("keyBase64 missing")?;
    Ok(Some(SrtpParameters {
        crypto_suite: SrtpCryptoSuite::AeadAes256Gcm,
        key_base64: key.to_owned(),
    }))
}

/// Where a PipeTransport listens: ip and port of its dump.
fn address(t: &Transport) -> Result<(String, u16), RoomError> {
    let d = t
        .plain()
        .ok_or_else(|| RoomError::Failed("a pipe transport without a plain dump".into()))?;
    Ok((d.tuple.local_address, d.tuple.local_port))
}

fn kind_of(s: &str) -> Option<MediaKind> {
    match s {
        "audio" => Some(MediaKind::Audio),
        "video" => Some(MediaKind::Video),
        _ => None,
    }
}

impl Rooms {
    /// Joins the cluster: room events of other nodes reach the local rooms, gone nodes' peers
    /// close, and this node answers pipe requests for its producers.
    pub(crate) fn attach_cluster(self: &Arc<Self>, cluster: Arc<Cluster>) {
        if self.cluster.set(cluster.clone()).is_err() {
            return;
        }
        self.answer(&cluster, PIPE_METHOD, |rooms, req| async move {
            rooms.pipe_request(req).await
        });
        self.handle_data_requests(&cluster);
        let mut events = cluster.subscribe();
        let rooms = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let e = match events.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(target: "cluster", missed = n, "room events lagged: resyncing the rooms");
                        ClusterEvent::Resynced
                    }
                    Err(RecvError::Closed) => break,
                };
                let Some(rooms) = rooms.upgrade() else { break };
                rooms.cluster_event(e).await;
            }
        });
    }

    /// Answers `method` from other nodes with `f` on these rooms (refused once they are gone).
    pub(super) fn answer<F, Fut>(self: &Arc<Self>, cluster: &Cluster, method: &str, f: F)
    where
        F: Fn(Arc<Rooms>, RpcRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RemoteError>> + Send + 'static,
    {
        let rooms = Arc::downgrade(self);
        let f = Arc::new(f);
        cluster.handle(method, move |req: RpcRequest| {
            let (rooms, f) = (rooms.upgrade(), f.clone());
            async move {
                let rooms = rooms.ok_or_else(|| RemoteError::new("failed", "shutting down"))?;
                f(rooms, req).await
            }
        });
    }

    pub(super) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    /// The rooms open now (a snapshot: the map's lock is not held after).
    pub(super) async fn open_rooms(&self) -> Vec<Arc<Room>> {
        self.rooms
            .lock()
            .await
            .values()
            .filter(|r| !r.is_closed())
            .cloned()
            .collect()
    }

    async fn cluster_event(self: &Arc<Self>, e: ClusterEvent) {
        match e {
            ClusterEvent::Room(m) => {
                if let Some(room) = self.get(&m.room).await {
                    room.remote_event(m.node, m.event).await;
                }
            }
            ClusterEvent::NodeGone { node_id } => {
                tracing::warn!(target: "cluster", node = %node_id, "node gone: closing its peers and pipes");
                for room in self.open_rooms().await {
                    room.remove_remote_peers(|n| *n == node_id).await;
                }
                for t in self.node_pipes.take(&node_id) {
                    let _ = t.close().await;
                }
            }
            // A node that (re)appears may be one whose registration expired while it stalled:
            // its peers were dropped here then, and its room entries are back (written with the
            // registration, atomically). Re-reading the directory brings them back.
            ClusterEvent::Resynced | ClusterEvent::NodeJoined { .. } => {
                for room in self.open_rooms().await {
                    room.sync_remote().await;
                }
            }
        }
    }

    /// Another node's request for its half of a pipe of one of our producers.
    async fn pipe_request(&self, req: RpcRequest) -> Result<Value, RemoteError> {
        let p = &req.params;
        let bad = |m: &str| RemoteError::new("bad_request", m);
        let room_id = p["room"].as_str().ok_or_else(|| bad("room missing"))?;
        let producer_id = p["producerId"]
            .as_str()
            .ok_or_else(|| bad("producerId missing"))?;
        let ip = p["ip"]
            .as_str()
            .ok_or_else(|| bad("ip missing"))?
            .to_owned();
        let port = p["port"]
            .as_u64()
            .and_then(|v| u16::try_from(v).ok())
            .ok_or_else(|| bad("port missing"))?;
        let srtp = srtp_from(&p["srtp"]).map_err(|e| bad(&e))?;
        let cluster = self
            .cluster()
            .ok_or_else(|| RemoteError::new("failed", "not in a cluster"))?;
        let room = self
            .get(room_id)
            .await
            .ok_or_else(|| RemoteError::new("not_found", format!("no room {room_id} here")))?;
        let entry = room.local_producer(producer_id).await.ok_or_else(|| {
            RemoteError::new("not_found", format!("no producer {producer_id} here"))
        })?;
        let failed = |e: String| RemoteError::new("failed", e);
        let router = entry.p.transport().router().clone();
        let t = create_pipe_transport(&router, &pipe_settings(cluster))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let half = async {
            connect_pipe(&t, ip, port, srtp)
                .await
                .map_err(|e| e.to_string())?;
            let (consumer, params) =
                pipe_consume(&t, &entry.p, &entry.consumable, &self.caps, true)
                    .await
                    .map_err(|e| e.to_string())?;
            let (ip, port) = address(&t).map_err(|e| e.to_string())?;
            let d = t.plain().ok_or("no dump")?;
            Ok::<_, String>((consumer, params, ip, port, d.srtp_parameters))
        }
        .await;
        let (consumer, params, ip, port, srtp) = match half {
            Ok(v) => v,
            Err(e) => {
                let _ = t.close().await;
                return Err(failed(e));
            }
        };
        self.node_pipes.add(&req.from, t.clone());
        // The transport goes with its one consumer (the producer closed, or the asker closed
        // its half and ours follows when the node is gone).
        tokio::spawn(async move {
            consumer.closed().await;
            let _ = t.close().await;
        });
        tracing::info!(target: "cluster", room = room_id, producer = producer_id, to = %req.from, "producer piped to another node");
        Ok(json!({
            "ip": ip, "port": port, "srtp": srtp_json(&srtp),
            "rtpParameters": serde_json::to_value(&params).unwrap_or_default(),
            "kind": entry.kind.as_str(),
            "paused": entry.p.paused(),
        }))
    }
}

impl Room {
    fn with_cluster(&self) -> Option<Arc<Cluster>> {
        self.cx.rooms.upgrade()?.cluster().cloned()
    }

    /// Tells the other nodes hosting this room (nothing without a cluster).
    pub(super) fn publish(&self, event: RoomEvent) {
        if let Some(c) = self.with_cluster()
            && let Err(e) = c.publish(&self.id, event)
        {
            tracing::debug!(target: "cluster", room = %self.id, "not published: {e}");
        }
    }

    /// A local peer joined: the other nodes hear it; the first local peer of the room loads
    /// the other nodes' peers (so its `join` answer lists them).
    pub(super) async fn announce_local_join(self: &Arc<Self>, info: &PeerInfo) {
        if self.with_cluster().is_none() {
            return;
        }
        self.publish(RoomEvent::PeerJoined {
            peer_id: info.id.clone(),
            display_name: info.display_name.clone(),
            device: info.device.clone(),
        });
        if !self
            .remote_synced
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            self.sync_remote().await;
        }
    }

    /// Brings the remote peers in line with the room directory: adds the missing ones (and
    /// pipes their producers), removes those no longer listed.
    pub(super) async fn sync_remote(self: &Arc<Self>) {
        let Some(c) = self.with_cluster() else { return };
        let listed = match c.room_peers(&self.id).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(target: "cluster", room = %self.id, "room directory not read: {e}");
                return;
            }
        };
        let keep: Vec<String> = listed.iter().map(|r| r.peer.peer_id.clone()).collect();
        let gone: Vec<String> = {
            let st = self.state.lock().await;
            st.peers
                .values()
                .filter(|p| p.remote.is_some() && !keep.contains(&p.id))
                .map(|p| p.id.clone())
                .collect()
        };
        for id in gone {
            self.remove_remote_peer(&id).await;
        }
        for r in listed {
            let node = r.node.clone();
            let peer = r.peer;
            self.remote_event(
                node.clone(),
                RoomEvent::PeerJoined {
                    peer_id: peer.peer_id.clone(),
                    display_name: peer.display_name,
                    device: peer.device,
                },
            )
            .await;
            for d in peer.data_producers {
                self.remote_event(
                    node.clone(),
                    RoomEvent::DataProducerAdded {
                        peer_id: peer.peer_id.clone(),
                        data_producer: d,
                    },
                )
                .await;
            }
            for p in peer.producers {
                self.remote_event(
                    node.clone(),
                    RoomEvent::ProducerAdded {
                        peer_id: peer.peer_id.clone(),
                        producer_id: p.producer_id,
                        kind: p.kind,
                        rtp_parameters: p.rtp_parameters,
                        app_data: p.app_data,
                        paused: p.paused,
                    },
                )
                .await;
            }
        }
    }

    /// What another node says happened to one of its peers.
    pub(super) async fn remote_event(self: &Arc<Self>, node: NodeId, e: RoomEvent) {
        match e {
            RoomEvent::PeerJoined {
                peer_id,
                display_name,
                device,
            } => {
                let mut st = self.state.lock().await;
                if st.peers.contains_key(&peer_id) {
                    return;
                }
                let mut p = Peer::new(&peer_id, 0, None, Role::Publish);
                p.display_name = display_name;
                p.device = device;
                p.remote = Some(node);
                // Placed by its own node: no quota here (the room's count includes it).
                let _ = st.add_joined(p, None);
            }
            RoomEvent::PeerLeft { peer_id } => {
                if self.is_remote_of(&peer_id, &node).await {
                    self.remove_remote_peer(&peer_id).await;
                }
            }
            RoomEvent::ProducerAdded {
                peer_id,
                producer_id,
                kind,
                rtp_parameters: _,
                app_data,
                paused,
            } => {
                let known = {
                    let st = self.state.lock().await;
                    st.remote_peer(&peer_id, &node)
                        .is_some_and(|p| !p.producers.contains_key(&producer_id))
                };
                let (Some(kind), true) = (kind_of(&kind), known) else {
                    return;
                };
                let room = self.clone();
                tokio::spawn(async move {
                    let piped = room
                        .pipe_remote(&node, &peer_id, &producer_id, kind, app_data, paused)
                        .await;
                    if let Err(e) = piped {
                        tracing::warn!(target: "cluster", room = %room.id, producer = producer_id, from = %node, "remote producer not piped: {e}");
                    }
                });
            }
            RoomEvent::ProducerClosed {
                peer_id,
                producer_id,
            } => {
                let entry = {
                    let mut st = self.state.lock().await;
                    st.remote_peer_mut(&peer_id, &node)
                        .and_then(|p| p.producers.remove(&producer_id))
                };
                if let Some(e) = entry {
                    let _ = e.p.transport().close().await;
                }
            }
            RoomEvent::ProducerPaused {
                peer_id,
                producer_id,
            } => self.remote_pause(&node, &peer_id, &producer_id, true).await,
            RoomEvent::ProducerResumed {
                peer_id,
                producer_id,
            } => {
                self.remote_pause(&node, &peer_id, &producer_id, false)
                    .await
            }
            RoomEvent::DisplayNameChanged {
                peer_id,
                display_name,
            } => {
                if self.is_remote_of(&peer_id, &node).await {
                    let _ = self.state.lock().await.rename(&peer_id, display_name);
                }
            }
            RoomEvent::DataProducerAdded {
                peer_id,
                data_producer,
            } => self.remote_data_added(node, peer_id, data_producer).await,
            RoomEvent::DataProducerClosed {
                peer_id,
                data_producer_id,
            } => {
                self.remote_data_closed(&node, &peer_id, &data_producer_id)
                    .await;
            }
            RoomEvent::ActiveSpeaker { .. } => {}
        }
    }

    /// The remote producer's pipe follows its pause/resume (its consumers here are told).
    async fn remote_pause(&self, node: &NodeId, peer_id: &str, producer_id: &str, pause: bool) {
        let entry = {
            let st = self.state.lock().await;
            st.remote_peer(peer_id, node)
                .and_then(|p| p.producers.get(producer_id).cloned())
        };
        if let Some(e) = entry {
            let r = if pause {
                e.p.pause().await
            } else {
                e.p.resume().await
            };
            if let Err(err) = r {
                tracing::debug!(target: "cluster", room = %self.id, producer = producer_id, "pause/resume: {err}");
            }
        }
    }

    async fn is_remote_of(&self, peer_id: &str, node: &NodeId) -> bool {
        self.state.lock().await.remote_peer(peer_id, node).is_some()
    }

    /// Removes a remote peer (others hear `peerClosed`) and closes the pipes of its producers.
    async fn remove_remote_peer(&self, peer_id: &str) {
        let removed = self.state.lock().await.remove(peer_id);
        if let Some(p) = removed {
            for (_, e) in p.producers {
                let _ = e.p.transport().close().await;
            }
            for (_, d) in p.data_producers {
                let _ = d.p.close().await;
            }
        }
    }

    /// Removes every remote peer of the nodes `gone` says.
    pub(super) async fn remove_remote_peers(&self, gone: impl Fn(&NodeId) -> bool) {
        let ids: Vec<String> = {
            let st = self.state.lock().await;
            st.peers
                .values()
                .filter(|p| p.remote.as_ref().is_some_and(&gone))
                .map(|p| p.id.clone())
                .collect()
        };
        for id in ids {
            self.remove_remote_peer(&id).await;
        }
    }

    /// A producer of a local peer (what another node may ask to pipe).
    async fn local_producer(&self, id: &str) -> Option<ProducerEntry> {
        let st = self.state.lock().await;
        st.peers
            .values()
            .filter(|p| p.remote.is_none())
            .find_map(|p| p.producers.get(id))
            .cloned()
    }

    /// Pipes the remote peer's producer here (our half on the home router, theirs asked for),
    /// stores it on the remote peer and offers it to the local peers.
    async fn pipe_remote(
        self: &Arc<Self>,
        node: &NodeId,
        peer_id: &str,
        producer_id: &str,
        kind: MediaKind,
        app_data: Value,
        paused: bool,
    ) -> Result<(), RoomError> {
        let c = self
            .with_cluster()
            .ok_or_else(|| RoomError::Failed("not in a cluster".into()))?;
        let rooms = self
            .cx
            .rooms
            .upgrade()
            .ok_or_else(|| RoomError::Failed("shutting down".into()))?;
        let t = create_pipe_transport(&self.router, &pipe_settings(&c)).await?;
        rooms.node_pipes.add(node, t.clone());
        let made = async {
            let (ip, port) = address(&t)?;
            let srtp = t.plain().and_then(|d| d.srtp_parameters);
            let answer = c
                .request(
                    node,
                    PIPE_METHOD,
                    json!({
                        "room": self.id, "producerId": producer_id,
                        "ip": ip, "port": port, "srtp": srtp_json(&srtp),
                    }),
                    PIPE_TIMEOUT,
                )
                .await
                .map_err(|e| RoomError::Failed(format!("pipe request: {e}")))?;
            let far_ip = answer["ip"]
                .as_str()
                .ok_or_else(|| RoomError::Failed("pipe answer without ip".into()))?
                .to_owned();
            let far_port = answer["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| RoomError::Failed("pipe answer without port".into()))?;
            let far_srtp = srtp_from(&answer["srtp"]).map_err(RoomError::Failed)?;
            let params: RtpParameters = serde_json::from_value(answer["rtpParameters"].clone())
                .map_err(|e| RoomError::Failed(format!("pipe parameters: {e}")))?;
            connect_pipe(&t, far_ip, far_port, far_srtp).await?;
            let paused = answer["paused"].as_bool().unwrap_or(paused);
            let (far, consumable) = pipe_produce(
                &t,
                &ProducerId::new(producer_id),
                kind.into(),
                &params,
                &self.cx.caps,
                paused,
            )
            .await
            .map_err(|e| RoomError::Failed(e.to_string()))?;
            Ok::<_, RoomError>(ProducerEntry {
                p: far,
                kind,
                consumable,
                app_data,
            })
        }
        .await;
        let entry = match made {
            Ok(e) => e,
            Err(e) => {
                let _ = t.close().await;
                return Err(e);
            }
        };
        let others = {
            let mut st = self.state.lock().await;
            let Some(peer) = st.remote_peer_mut(peer_id, node) else {
                drop(st);
                let _ = t.close().await;
                return Ok(());
            };
            peer.producers.insert(producer_id.to_owned(), entry.clone());
            st.consumers_for(peer_id)
        };
        // The pipe transport goes with the producer it carries.
        let (far, tt) = (entry.p.clone(), t.clone());
        tokio::spawn(async move {
            far.closed().await;
            let _ = tt.close().await;
        });
        if kind == MediaKind::Audio {
            self.observers.add(&self.id, entry.p.id()).await;
        }
        tracing::info!(target: "cluster", room = %self.id, producer = producer_id, from = %node, "remote producer piped here");
        for other in others {
            self.create_consumer(&other, peer_id, &entry).await;
        }
        Ok(())
    }
}
