//! The node directory (registration, heartbeat, departures) and the room directory's reads and
//! clean-up.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::events::{PeerEntry, RemotePeer};
use super::rpc::RpcError;
use super::{ClusterEvent, Inner, NodeId, OP_TIMEOUT, keys, lock, unix_ms};

/// What a node carries, as its load source reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLoad {
    pub peers: u64,
    pub rooms: u64,
    pub workers: u64,
    /// CPU use of the workers over the last 5 s, percent of one core each, averaged (0-100).
    pub cpu: f64,
    /// Consumers open on the workers (pipe consumers included).
    pub consumers: u64,
}

/// The UDP range a node's pipe transports listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipePorts {
    pub min: u16,
    pub max: u16,
}

/// A node's registration (`ferrosfu:node:<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub id: NodeId,
    pub public_address: String,
    pub signaling_url: String,
    pub pipe_ip: std::net::IpAddr,
    pub pipe_ports: PipePorts,
    pub load: NodeLoad,
    /// Unix time, milliseconds.
    pub started_at: u64,
    pub version: String,
    pub heartbeat_ms: u64,
}

/// A node as a directory read found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    #[serde(flatten)]
    pub info: NodeInfo,
    /// Time since its last heartbeat, by Redis' clock (the key's TTL), so clock skew between
    /// nodes does not matter.
    pub heartbeat_age_ms: u64,
}

/// Removes a node's room entries, only if its registration is gone (a node that came back
/// meanwhile keeps them). KEYS: node key, node-rooms key. ARGV: node id, key prefix.
static CLEANUP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local rooms = redis.call('SMEMBERS', KEYS[2])
for _, room in ipairs(rooms) do
  redis.call('SREM', ARGV[2] .. 'room-nodes:' .. room, ARGV[1])
  redis.call('DEL', ARGV[2] .. 'room-peers:' .. room .. ':' .. ARGV[1])
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', ARGV[2] .. 'nodes', ARGV[1])
return #rooms
",
    )
});

fn info(inner: &Inner) -> NodeInfo {
    let s = &inner.settings;
    let mut load = (lock(&inner.load))();
    let (rooms, peers) = lock(&inner.local).counts();
    (load.rooms, load.peers) = (rooms as u64, peers as u64);
    NodeInfo {
        id: s.node_id.clone(),
        public_address: s.public_address.clone(),
        signaling_url: s.signaling_url.clone(),
        pipe_ip: s.pipe_ip,
        pipe_ports: s.pipe_ports,
        load,
        started_at: inner.started_at_ms,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        heartbeat_ms: s.heartbeat.as_millis() as u64,
    }
}

/// Heartbeats and directory reads until stopped.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.settings.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        beat(&inner).await;
    }
}

/// One heartbeat: refresh (or rewrite) the registration, then read the directory.
pub(super) async fn beat(inner: &Inner) {
    let was_up = inner.stats.redis_up();
    let r = match tokio::time::timeout(OP_TIMEOUT, refresh(inner)).await {
        Ok(r) => r,
        Err(_) => Err(format!("heartbeat timed out after {OP_TIMEOUT:?}")),
    };
    match r {
        Ok(resynced) => {
            let first = !inner.stats.ever_up();
            inner.stats.set_redis_up(true);
            if !was_up && !first {
                tracing::info!(target: "cluster", "redis reachable again");
            }
            if resynced && !first {
                inner.emit(ClusterEvent::Resynced);
            }
        }
        Err(e) => {
            inner.stats.set_redis_up(false);
            inner.dirty.store(true, Ordering::Relaxed);
            if was_up {
                tracing::warn!(target: "cluster", "redis unreachable, local rooms go on: {e}");
            }
            return;
        }
    }
    match tokio::time::timeout(OP_TIMEOUT, read_nodes(inner)).await {
        Ok(Ok(nodes)) => update_nodes(inner, nodes),
        Ok(Err(e)) => tracing::debug!(target: "cluster", "reading the directory: {e}"),
        Err(_) => tracing::debug!(target: "cluster", "reading the directory timed out"),
    }
}

/// Refreshes the registration; rewrites it with the room directory when Redis lost it or a
/// write failed. Returns whether it rewrote.
async fn refresh(inner: &Inner) -> Result<bool, String> {
    let me = &inner.settings.node_id;
    let ttl_ms = inner.settings.ttl().as_millis() as u64;
    let json = serde_json::to_string(&info(inner)).expect("node info is plain JSON");
    let now = unix_ms(SystemTime::now());
    let mut conn = inner.conn();
    // Keep the key only if it exists: a missing key means Redis forgot us.
    let (kept,): (Option<String>,) = redis::pipe()
        .cmd("SET")
        .arg(keys::node(me))
        .arg(&json)
        .arg("PX")
        .arg(ttl_ms)
        .arg("XX")
        .zadd(keys::NODES, me.as_str(), now)
        .ignore()
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let dirty = inner.dirty.swap(false, Ordering::Relaxed);
    if kept.is_some() && !dirty {
        return Ok(false);
    }
    if let Err(e) = register(inner, &json, ttl_ms, now).await {
        inner.dirty.store(true, Ordering::Relaxed);
        return Err(e);
    }
    tracing::info!(
        target: "cluster",
        node = %me,
        lost = kept.is_none(),
        "registered with the room directory rewritten"
    );
    Ok(true)
}

/// Writes the registration and this node's whole share of the room directory.
async fn register(inner: &Inner, json: &str, ttl_ms: u64, now: u64) -> Result<(), String> {
    let me = &inner.settings.node_id;
    let mut conn = inner.conn();
    let stale: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::node_rooms(me))
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let rooms = lock(&inner.local).snapshot();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for room in &stale {
        pipe.srem(keys::room_nodes(room), me.as_str()).ignore();
        pipe.del(keys::room_peers(room, me)).ignore();
    }
    pipe.del(keys::node_rooms(me)).ignore();
    for (room, peers) in &rooms {
        pipe.sadd(keys::room_nodes(room), me.as_str()).ignore();
        pipe.sadd(keys::node_rooms(me), room).ignore();
        if !peers.is_empty() {
            pipe.hset_multiple(keys::room_peers(room, me), peers)
                .ignore();
        }
    }
    pipe.cmd("SET")
        .arg(keys::node(me))
        .arg(json)
        .arg("PX")
        .arg(ttl_ms)
        .ignore();
    pipe.zadd(keys::NODES, me.as_str(), now).ignore();
    pipe.query_async::<()>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

/// Every live node. Nodes in the index whose registration expired are cleaned up (their
/// room entries removed) here, by whichever node notices first.
pub(super) async fn read_nodes(inner: &Inner) -> Result<BTreeMap<NodeId, NodeStatus>, String> {
    let mut conn = inner.conn();
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys::NODES)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut pipe = redis::pipe();
    for id in &ids {
        let key = keys::node(&NodeId::new(id.as_str()));
        pipe.get(&key).pttl(&key);
    }
    let values: Vec<(Option<String>, i64)> = if ids.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?
    };
    let ttl_ms = inner.settings.ttl().as_millis() as i64;
    let mut nodes = BTreeMap::new();
    for (id, (value, pttl)) in ids.into_iter().zip(values) {
        let id = NodeId::new(id);
        let Some(json) = value else {
            cleanup(inner, &id).await;
            continue;
        };
        match serde_json::from_str::<NodeInfo>(&json) {
            Ok(info) => {
                let node_ttl =
                    (info.heartbeat_ms as i64) * i64::from(crate::config::TTL_HEARTBEATS);
                let full = if info.heartbeat_ms > 0 {
                    node_ttl
                } else {
                    ttl_ms
                };
                let age = (full - pttl.max(0)).max(0) as u64;
                nodes.insert(
                    id,
                    NodeStatus {
                        info,
                        heartbeat_age_ms: age,
                    },
                );
            }
            Err(_) => inner.stats.count_bad_message(),
        }
    }
    Ok(nodes)
}

/// Removes a gone node's room entries (idempotent; skipped if the node came back).
async fn cleanup(inner: &Inner, id: &NodeId) {
    if *id == inner.settings.node_id {
        return;
    }
    let mut conn = inner.conn();
    let r: Result<i64, _> = CLEANUP
        .key(keys::node(id))
        .key(keys::node_rooms(id))
        .arg(id.as_str())
        .arg(keys::PREFIX)
        .invoke_async(&mut conn)
        .await;
    match r {
        Ok(n) if n >= 0 => {
            tracing::info!(target: "cluster", node = %id, rooms = n, "removed a gone node's room entries")
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(target: "cluster", node = %id, "cleaning up: {e}"),
    }
}

/// Stores a directory read and tells who came and who went.
fn update_nodes(inner: &Inner, nodes: BTreeMap<NodeId, NodeStatus>) {
    let me = &inner.settings.node_id;
    let (joined, gone) = {
        let mut last = lock(&inner.nodes);
        let joined: Vec<NodeId> = nodes
            .keys()
            .filter(|id| !last.contains_key(*id) && *id != me)
            .cloned()
            .collect();
        let gone: Vec<NodeId> = last
            .keys()
            .filter(|id| !nodes.contains_key(*id) && *id != me)
            .cloned()
            .collect();
        inner.stats.set_nodes(nodes.len());
        *last = nodes;
        (joined, gone)
    };
    for node_id in joined {
        tracing::info!(target: "cluster", node = %node_id, "node joined");
        inner.emit(ClusterEvent::NodeJoined { node_id });
    }
    for node_id in gone {
        tracing::info!(target: "cluster", node = %node_id, "node gone");
        inner.emit(ClusterEvent::NodeGone { node_id });
    }
}

/// Other live nodes' peers in `room`.
pub(super) async fn room_peers(inner: &Inner, room: &str) -> Result<Vec<RemotePeer>, RpcError> {
    let redis_err = |e: redis::RedisError| RpcError::Redis(e.to_string());
    let me = &inner.settings.node_id;
    let read = async {
        let mut conn = inner.conn();
        let nodes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::room_nodes(room))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        let nodes: Vec<NodeId> = nodes
            .into_iter()
            .map(NodeId::new)
            .filter(|n| n != me)
            .collect();
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for n in &nodes {
            pipe.exists(keys::node(n))
                .hgetall(keys::room_peers(room, n));
        }
        let found: Vec<(bool, BTreeMap<String, String>)> =
            pipe.query_async(&mut conn).await.map_err(redis_err)?;
        let mut peers = Vec::new();
        for (node, (alive, entries)) in nodes.into_iter().zip(found) {
            if !alive {
                continue;
            }
            for json in entries.values() {
                match serde_json::from_str::<PeerEntry>(json) {
                    Ok(peer) => peers.push(RemotePeer {
                        node: node.clone(),
                        peer,
                    }),
                    Err(_) => inner.stats.count_bad_message(),
                }
            }
        }
        Ok(peers)
    };
    tokio::time::timeout(OP_TIMEOUT, read)
        .await
        .unwrap_or(Err(RpcError::Timeout))
}

/// Removes this node and its room entries.
pub(super) async fn deregister(inner: &Inner) -> Result<(), String> {
    let me = &inner.settings.node_id;
    let mut conn = inner.conn();
    redis::cmd("DEL")
        .arg(keys::node(me))
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    CLEANUP
        .key(keys::node(me))
        .key(keys::node_rooms(me))
        .arg(me.as_str())
        .arg(keys::PREFIX)
        .invoke_async::<i64>(&mut conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
