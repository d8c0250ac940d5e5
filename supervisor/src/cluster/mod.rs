//! Cluster coordination on Redis: the node directory, room events between nodes, the room
//! directory and node-to-node requests. Off unless `[cluster] redis_url` is set.
//!
//! # How it runs
//! [`Cluster::connect`] opens the command connection and checks it (a wrong password or an
//! unreachable Redis fails the start); [`Connected::start`] registers the node and spawns three
//! tasks:
//! - **heartbeat** (every `heartbeat_ms`): refreshes `ferrosfu:node:<id>` (TTL = 3 heartbeats)
//!   and re-registers in full (node, room directory from [`LocalRooms`]) when the key is gone
//!   (Redis restarted empty, or this node was presumed dead) or a write was lost; then reads the
//!   directory, cleans up after nodes whose key expired and emits
//!   [`ClusterEvent::NodeJoined`] / [`ClusterEvent::NodeGone`].
//! - **pub/sub** (its own connection): subscribed to this node's RPC and reply channels and to
//!   the channel of every room it hosts; reconnects with backoff and resubscribes.
//! - **writer**: applies room-directory writes and publishes room events in the order
//!   [`Cluster::publish`] queued them, so callers never wait on Redis.
//!
//! # Using it from the rooms
//! - On a local join: [`Cluster::publish`] `PeerJoined` (the first local peer subscribes the
//!   node to the room), then [`Cluster::room_peers`] for the remote peers and producers the
//!   join response lists; on leave `PeerLeft`; likewise `ProducerAdded` (with the consumable
//!   RTP parameters), `ProducerClosed`, pause/resume, display name, active speaker.
//! - [`Cluster::subscribe`]: [`ClusterEvent::Room`] carries the other nodes' events for rooms
//!   hosted here (tell the local peers: `newPeer`, `peerClosed`, new consumers);
//!   [`ClusterEvent::NodeGone`] means every peer of that node is gone (keep the remote peers
//!   you listed by node: the directory entries are already removed);
//!   [`ClusterEvent::Resynced`] means events may have been lost: re-list the rooms.
//! - Pipes between nodes: [`Cluster::handle`] a method on the producer's node and
//!   [`Cluster::request`] it from the consumer's node with the local pipe transport's
//!   ip/port/SRTP parameters; the answer carries the far side's.
//!
//! Redis going away never stalls the node: publishing is a non-blocking queue (dropped while
//! Redis is down, the directory is rewritten when it is back), reads answer an error within a
//! bounded time, and the local rooms go on.

mod directory;
mod events;
mod keys;
mod metrics;
mod pubsub;
mod rpc;
mod setup;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

pub use directory::{NodeInfo, NodeLoad, NodeStatus, PipePorts};
pub use events::{
    DataProducerEntry, PeerEntry, ProducerEntry, PublishError, RemotePeer, RoomEvent, RoomMessage,
};
pub use metrics::ClusterStats;
pub(crate) use metrics::register as register_metrics;
pub use rpc::{RemoteError, RpcError, RpcRequest};
pub(crate) use setup::settings_from_config;

use events::{DirWrite, LocalRooms};

/// A node's id in the cluster (default `hostname:port`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    pub fn new(id: impl Into<String>) -> Self {
        NodeId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the cluster tells this node (see [`Cluster::subscribe`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    /// A node appeared in the directory.
    NodeJoined { node_id: NodeId },
    /// A node left: shut down cleanly, or stopped heartbeating for the TTL. Its room directory
    /// entries are already removed; its peers are gone.
    NodeGone { node_id: NodeId },
    /// A room event from another node, for a room this node hosts.
    Room(RoomMessage),
    /// Redis is back after an outage and this node's registration and room directory were
    /// rewritten. Events published meanwhile were lost: re-read [`Cluster::room_peers`] for the
    /// rooms you host.
    Resynced,
}

/// The node's settings, resolved (the supervisor fills the defaults from its config).
#[derive(Clone)]
pub struct ClusterSettings {
    /// Holds the password: shown only redacted.
    pub redis_url: String,
    pub node_id: NodeId,
    pub heartbeat: Duration,
    pub public_address: String,
    pub signaling_url: String,
    pub pipe_ip: IpAddr,
    pub pipe_ports: PipePorts,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("redis_url", &crate::config::redact_url(&self.redis_url))
            .field("node_id", &self.node_id)
            .field("heartbeat", &self.heartbeat)
            .field("public_address", &self.public_address)
            .field("signaling_url", &self.signaling_url)
            .field("pipe_ip", &self.pipe_ip)
            .field("pipe_ports", &self.pipe_ports)
            .finish()
    }
}

impl ClusterSettings {
    fn ttl(&self) -> Duration {
        self.heartbeat * crate::config::TTL_HEARTBEATS
    }
}

/// Why the cluster could not start. Messages name Redis and never hold the password.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("redis {url}: authentication failed: {detail}")]
    Auth { url: String, detail: String },
    #[error("redis {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("redis {url}: {detail}")]
    Config { url: String, detail: String },
}

impl ClusterError {
    /// Whether restarting cannot help (a wrong password or URL).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ClusterError::Auth { .. } | ClusterError::Config { .. }
        )
    }
}

/// How long one Redis round trip may take before it counts as failed.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Room events waiting to be published; past this they are dropped (and the directory is
/// rewritten at the next heartbeat).
const OUTBOX: usize = 4096;
/// Local cluster events a slow subscriber may lag behind before it loses some.
const EVENTS: usize = 1024;

/// A cluster connection checked at startup, not yet registered.
#[derive(Debug)]
pub struct Connected {
    settings: ClusterSettings,
    client: redis::Client,
    conn: ConnectionManager,
}

/// What the node reports as its load, read at every heartbeat.
pub type LoadSource = Box<dyn Fn() -> NodeLoad + Send + Sync>;

/// This node's membership of the cluster. Dropping it stops heartbeating without
/// deregistering (as a crash would); [`Cluster::shutdown`] deregisters.
pub struct Cluster {
    inner: Arc<Inner>,
    /// The heartbeat task: shutdown waits for it, so that no heartbeat re-registers after the
    /// deregistration.
    heartbeat: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.inner.settings.node_id)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    settings: ClusterSettings,
    client: redis::Client,
    conn: ConnectionManager,
    started_at_ms: u64,
    events: broadcast::Sender<ClusterEvent>,
    local: Mutex<LocalRooms>,
    /// The room directory in Redis may be missing writes: rewrite it at the next heartbeat.
    dirty: AtomicBool,
    /// The last directory read.
    nodes: Mutex<BTreeMap<NodeId, NodeStatus>>,
    load: Mutex<LoadSource>,
    stats: ClusterStats,
    outbox: mpsc::Sender<Outgoing>,
    pubsub: mpsc::UnboundedSender<pubsub::Command>,
    rpc: rpc::RpcState,
    stop: CancellationToken,
}

/// A [`RoomMessage`] serialized without cloning the event.
#[derive(Serialize)]
struct RoomMessageRef<'a> {
    room: &'a str,
    node: &'a NodeId,
    #[serde(flatten)]
    event: &'a RoomEvent,
}

/// One queued publication: the directory write and the message, applied together.
#[derive(Debug)]
struct Outgoing {
    room: String,
    write: DirWrite,
    message: String,
}

impl Cluster {
    /// Connects to Redis and checks the connection (PING, which fails on a wrong password).
    pub async fn connect(settings: ClusterSettings) -> Result<Connected, ClusterError> {
        let url = crate::config::redact_url(&settings.redis_url);
        let client =
            redis::Client::open(settings.redis_url.as_str()).map_err(|e| ClusterError::Config {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let classify = |e: redis::RedisError| {
            let refused = e.kind() == redis::ErrorKind::AuthenticationFailed;
            let code = e.code().unwrap_or_default();
            if refused {
                ClusterError::Auth {
                    url: url.clone(),
                    // redis-rs reports WRONGPASS (and any refusal of AUTH) this way.
                    detail: format!("the server refused the password in the URL (WRONGPASS): {e}"),
                }
            } else if ["NOAUTH", "WRONGPASS", "NOPERM"].contains(&code) {
                ClusterError::Auth {
                    url: url.clone(),
                    detail: e.to_string(),
                }
            } else {
                ClusterError::Unreachable {
                    url: url.clone(),
                    detail: e.to_string(),
                }
            }
        };
        let unreachable = |what: &str| ClusterError::Unreachable {
            url: url.clone(),
            detail: format!("{what} timed out after {OP_TIMEOUT:?}"),
        };
        let mut conn = tokio::time::timeout(
            OP_TIMEOUT * 2,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| unreachable("connecting"))?
        .map_err(classify)?;
        let pong: String =
            tokio::time::timeout(OP_TIMEOUT, redis::cmd("PING").query_async(&mut conn))
                .await
                .map_err(|_| unreachable("PING"))?
                .map_err(classify)?;
        tracing::debug!(target: "cluster", %pong, %url, "redis reachable");
        Ok(Connected {
            settings,
            client,
            conn,
        })
    }

    fn inner(&self) -> &Inner {
        &self.inner
    }

    pub fn node_id(&self) -> &NodeId {
        &self.inner.settings.node_id
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.settings
    }

    /// Local events: node departures and arrivals, other nodes' events for rooms hosted here.
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.inner.events.subscribe()
    }

    /// Rooms and peers this node hosts (as published).
    pub fn local_counts(&self) -> (usize, usize) {
        lock(&self.inner.local).counts()
    }

    /// Replaces what the node reports as its load (read at every heartbeat); `rooms` and
    /// `peers` are counted by the cluster from what this node published.
    pub fn set_load_source(&self, source: LoadSource) {
        *lock(&self.inner.load) = source;
    }

    /// Counters and gauges for `/metrics`.
    pub fn stats(&self) -> &ClusterStats {
        &self.inner.stats
    }

    /// Publishes an event of a local room to the other nodes hosting it and records it in the
    /// room directory. Never waits: the write is queued (and dropped while Redis is down; the
    /// directory is rewritten from the local state when Redis is back). The first local peer of
    /// a room subscribes the node to the room's events; the last one leaving unsubscribes.
    pub fn publish(&self, room: &str, event: RoomEvent) -> Result<(), PublishError> {
        let inner = self.inner();
        let message = serde_json::to_string(&RoomMessageRef {
            room,
            node: &inner.settings.node_id,
            event: &event,
        })
        .expect("room messages are plain JSON");
        if message.len() > pubsub::MAX_MESSAGE {
            return Err(PublishError::TooLarge(message.len()));
        }
        // Under the lock until queued: the subscription changes and the directory writes of
        // two publishers reach Redis in the order the mirror saw them.
        let mut local = lock(&inner.local);
        let write = local.apply(room, &event)?;
        match &write {
            DirWrite::Upsert { first: true, .. } => {
                let _ = inner
                    .pubsub
                    .send(pubsub::Command::Subscribe(room.to_owned()));
            }
            DirWrite::Remove { last: true, .. } => {
                let _ = inner
                    .pubsub
                    .send(pubsub::Command::Unsubscribe(room.to_owned()));
            }
            _ => {}
        }
        let out = Outgoing {
            room: room.to_owned(),
            write,
            message,
        };
        if !inner.stats.redis_up() || inner.outbox.try_send(out).is_err() {
            // The directory is rewritten from the mirror once Redis answers again.
            inner.dirty.store(true, Ordering::Relaxed);
            inner.stats.count_dropped();
        }
        drop(local);
        Ok(())
    }

    /// The peers (with their producers) that other live nodes have in `room`, from the room
    /// directory: what a join response lists besides the local peers. Waits (briefly) until
    /// this node's subscription to the room is active, so that no event falls between the
    /// listing and the subscription.
    pub async fn room_peers(&self, room: &str) -> Result<Vec<RemotePeer>, RpcError> {
        let inner = self.inner();
        pubsub::sync(&inner.pubsub, OP_TIMEOUT).await;
        directory::room_peers(inner, room).await
    }

    /// The nodes of the last directory read (at most a heartbeat old), this one included.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        lock(&self.inner.nodes).values().cloned().collect()
    }

    /// Reads the node directory now (falls back to the last read when Redis does not answer).
    pub async fn nodes_now(&self) -> Vec<NodeStatus> {
        match tokio::time::timeout(OP_TIMEOUT, directory::read_nodes(self.inner())).await {
            Ok(Ok(nodes)) => nodes.into_values().collect(),
            Ok(Err(_)) | Err(_) => self.nodes(),
        }
    }

    /// Sends `method` with `params` to `node` and waits for its answer, at most `timeout`.
    pub async fn request(
        &self,
        node: &NodeId,
        method: &str,
        params: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, RpcError> {
        rpc::request(&self.inner, node, method, params, timeout).await
    }

    /// Answers requests for `method` from other nodes with `handler` (replacing any earlier
    /// handler of that method).
    pub fn handle<F, Fut>(&self, method: &str, handler: F)
    where
        F: Fn(RpcRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, RemoteError>> + Send + 'static,
    {
        self.inner.rpc.register(method, handler);
    }

    /// Leaves the cluster cleanly: stops the tasks and removes this node and its room entries
    /// from Redis, so that the other nodes drop its peers at once.
    pub async fn shutdown(&self) {
        let inner = self.inner();
        inner.stop.cancel();
        let heartbeat = lock(&self.heartbeat).take();
        if let Some(task) = heartbeat {
            let _ = tokio::time::timeout(OP_TIMEOUT * 2, task).await;
        }
        match tokio::time::timeout(OP_TIMEOUT, directory::deregister(inner)).await {
            Ok(Ok(())) => {
                tracing::info!(target: "cluster", node = %inner.settings.node_id, "left the cluster")
            }
            Ok(Err(e)) => tracing::warn!(target: "cluster", "deregistering: {e}"),
            Err(_) => tracing::warn!(target: "cluster", "deregistering timed out"),
        }
    }
}

impl Connected {
    /// Registers the node and starts heartbeating, listening and publishing.
    pub async fn start(self, load: LoadSource) -> Arc<Cluster> {
        let (events, _) = broadcast::channel(EVENTS);
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
        let (pubsub_tx, pubsub_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            started_at_ms: unix_ms(SystemTime::now()),
            settings: self.settings,
            client: self.client,
            conn: self.conn,
            events,
            local: Mutex::default(),
            dirty: AtomicBool::new(true),
            nodes: Mutex::default(),
            load: Mutex::new(load),
            stats: ClusterStats::default(),
            outbox,
            pubsub: pubsub_tx,
            rpc: rpc::RpcState::default(),
            stop: CancellationToken::new(),
        });
        // Listening before registering, and registered before anyone gets the handle: a node
        // in the directory answers requests.
        tokio::spawn(pubsub::run(inner.clone(), pubsub_rx));
        pubsub::sync(&inner.pubsub, OP_TIMEOUT).await;
        directory::beat(&inner).await;
        let heartbeat = tokio::spawn(directory::run(inner.clone()));
        tokio::spawn(writer(inner.clone(), outbox_rx));
        tracing::info!(
            target: "cluster",
            node = %inner.settings.node_id,
            redis = %crate::config::redact_url(&inner.settings.redis_url),
            "joined the cluster"
        );
        Arc::new(Cluster {
            inner,
            heartbeat: Mutex::new(Some(heartbeat)),
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
}

impl Inner {
    fn emit(&self, event: ClusterEvent) {
        // No receiver is fine: nobody listens yet.
        let _ = self.events.send(event);
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// Applies queued directory writes and publications in order.
async fn writer(inner: Arc<Inner>, mut rx: mpsc::Receiver<Outgoing>) {
    loop {
        let out = tokio::select! {
            _ = inner.stop.cancelled() => return,
            out = rx.recv() => match out { Some(o) => o, None => return },
        };
        let me = &inner.settings.node_id;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let peers = keys::room_peers(&out.room, me);
        match &out.write {
            DirWrite::None => {}
            DirWrite::Upsert {
                peer_id,
                entry,
                first,
            } => {
                if *first {
                    pipe.sadd(keys::room_nodes(&out.room), me.as_str()).ignore();
                    pipe.sadd(keys::node_rooms(me), &out.room).ignore();
                }
                pipe.hset(&peers, peer_id, entry).ignore();
            }
            DirWrite::Remove { peer_id, last } => {
                pipe.hdel(&peers, peer_id).ignore();
                if *last {
                    pipe.srem(keys::room_nodes(&out.room), me.as_str()).ignore();
                    pipe.srem(keys::node_rooms(me), &out.room).ignore();
                    pipe.del(&peers).ignore();
                }
            }
        }
        pipe.publish(keys::room_channel(&out.room), &out.message)
            .ignore();
        let mut conn = inner.conn();
        let r = tokio::time::timeout(OP_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
        match r {
            Ok(Ok(())) => inner.stats.count_out(),
            Ok(Err(e)) => {
                inner.dirty.store(true, Ordering::Relaxed);
                inner.stats.count_dropped();
                tracing::debug!(target: "cluster", "publishing to room {}: {e}", out.room);
            }
            Err(_) => {
                inner.dirty.store(true, Ordering::Relaxed);
                inner.stats.count_dropped();
                tracing::debug!(target: "cluster", "publishing to room {}: timed out", out.room);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; go on with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_borrowed_message_is_the_message() {
        let event = RoomEvent::DisplayNameChanged {
            peer_id: "p".into(),
            display_name: "P".into(),
        };
        let node = NodeId::new("n");
        let borrowed = serde_json::to_string(&RoomMessageRef {
            room: "r",
            node: &node,
            event: &event,
        })
        .expect("serializes");
        let parsed: RoomMessage = serde_json::from_str(&borrowed).expect("parses");
        assert_eq!(
            parsed,
            RoomMessage {
                room: "r".into(),
                node,
                event
            }
        );
    }
}
