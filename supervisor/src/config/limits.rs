//! `[limits]`: the quotas of [`crate::limits::Quotas`]. Each key is a count (0 = no limit).

use serde::Deserialize;

use crate::limits::Quotas;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileLimits {
    peers_per_room: Option<usize>,
    rooms_per_node: Option<usize>,
    transports_per_peer: Option<usize>,
    producers_per_peer: Option<usize>,
    consumers_per_peer: Option<usize>,
    requests_per_second: Option<u32>,
    ws_connections_per_ip: Option<usize>,
    rest_requests_per_second: Option<u32>,
}

/// The file's `[limits]` over the defaults; 0 turns a limit off.
pub(super) fn quotas(f: &FileLimits) -> Quotas {
    fn pick<T: Copy + PartialEq + Default>(file: Option<T>, default: Option<T>) -> Option<T> {
        match file {
            Some(v) if v == T::default() => None,
            Some(v) => Some(v),
            None => default,
        }
    }
    let d = Quotas::default();
    Quotas {
        peers_per_room: pick(f.peers_per_room, d.peers_per_room),
        rooms_per_node: pick(f.rooms_per_node, d.rooms_per_node),
        transports_per_peer: pick(f.transports_per_peer, d.transports_per_peer),
        producers_per_peer: pick(f.producers_per_peer, d.producers_per_peer),
        consumers_per_peer: pick(f.consumers_per_peer, d.consumers_per_peer),
        requests_per_second: pick(f.requests_per_second, d.requests_per_second),
        ws_connections_per_ip: pick(f.ws_connections_per_ip, d.ws_connections_per_ip),
        rest_requests_per_second: pick(f.rest_requests_per_second, d.rest_requests_per_second),
    }
}

/// `[limits]` as `--print-config` shows it (0: no limit).
pub(super) fn to_json(q: &Quotas) -> serde_json::Value {
    fn n<T: Into<u64> + Copy>(v: Option<T>) -> u64 {
        v.map_or(0, Into::into)
    }
    let u = |v: Option<usize>| v.map_or(0, |v| v as u64);
    serde_json::json!({
        "peers_per_room": u(q.peers_per_room),
        "rooms_per_node": u(q.rooms_per_node),
        "transports_per_peer": u(q.transports_per_peer),
        "producers_per_peer": u(q.producers_per_peer),
        "consumers_per_peer": u(q.consumers_per_peer),
        "requests_per_second": n(q.requests_per_second),
        "ws_connections_per_ip": u(q.ws_connections_per_ip),
        "rest_requests_per_second": n(q.rest_requests_per_second),
    })
}
