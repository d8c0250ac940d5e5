//! Every Redis key and channel the cluster uses, in one place.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `ferrosfu:nodes` | sorted set | node ids, score = last heartbeat (unix ms); the index |
//! | `ferrosfu:node:<node>` | string, TTL | the node's [`NodeInfo`](super::NodeInfo) as JSON |
//! | `ferrosfu:node-rooms:<node>` | set | rooms the node has peers in |
//! | `ferrosfu:room-nodes:<room>` | set | nodes that have peers in the room |
//! | `ferrosfu:room-peers:<room>:<node>` | hash | peer id → the peer and its producers (JSON) |
//!
//! Channels: `ferrosfu:room:<room>` (room events), `ferrosfu:rpc:<node>` (requests to a node),
//! `ferrosfu:reply:<node>` (answers to a node's requests).

use super::NodeId;

pub(crate) const PREFIX: &str = "ferrosfu:";
pub(crate) const NODES: &str = "ferrosfu:nodes";

pub(crate) fn node(id: &NodeId) -> String {
    format!("{PREFIX}node:{id}")
}

pub(crate) fn node_rooms(id: &NodeId) -> String {
    format!("{PREFIX}node-rooms:{id}")
}

pub(crate) fn room_nodes(room: &str) -> String {
    format!("{PREFIX}room-nodes:{room}")
}

pub(crate) fn room_peers(room: &str, node: &NodeId) -> String {
    format!("{PREFIX}room-peers:{room}:{node}")
}

pub(crate) const ROOM_CHANNEL_PREFIX: &str = "ferrosfu:room:";

pub(crate) fn room_channel(room: &str) -> String {
    format!("{ROOM_CHANNEL_PREFIX}{room}")
}

pub(crate) fn rpc_channel(id: &NodeId) -> String {
    format!("{PREFIX}rpc:{id}")
}

pub(crate) fn reply_channel(id: &NodeId) -> String {
    format!("{PREFIX}reply:{id}")
}
