//! The cluster's counters and their Prometheus names.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters and gauges of this node's cluster membership.
#[derive(Debug, Default)]
pub struct ClusterStats {
    redis_up: AtomicBool,
    ever_up: AtomicBool,
    nodes: AtomicU64,
    events_in: AtomicU64,
    events_out: AtomicU64,
    events_dropped: AtomicU64,
    bad_messages: AtomicU64,
}

impl ClusterStats {
    /// Whether the last heartbeat reached Redis.
    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    pub(super) fn ever_up(&self) -> bool {
        self.ever_up.load(Ordering::Relaxed)
    }

    pub(super) fn set_redis_up(&self, up: bool) {
        self.redis_up.store(up, Ordering::Relaxed);
        if up {
            self.ever_up.store(true, Ordering::Relaxed);
        }
    }

    /// Live nodes (this one included) at the last directory read.
    pub fn nodes(&self) -> u64 {
        self.nodes.load(Ordering::Relaxed)
    }

    pub(super) fn set_nodes(&self, n: usize) {
        self.nodes.store(n as u64, Ordering::Relaxed);
    }

    /// Room events received from other nodes.
    pub fn events_in(&self) -> u64 {
        self.events_in.load(Ordering::Relaxed)
    }

    /// Room events published.
    pub fn events_out(&self) -> u64 {
        self.events_out.load(Ordering::Relaxed)
    }

    /// Room events not published (Redis down, queue full).
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped.load(Ordering::Relaxed)
    }

    /// Undecodable or oversized messages received, dropped.
    pub fn bad_messages(&self) -> u64 {
        self.bad_messages.load(Ordering::Relaxed)
    }

    pub(super) fn count_in(&self) {
        self.events_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_out(&self) {
        self.events_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_dropped(&self) {
        self.events_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_bad_message(&self) {
        self.bad_messages.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

/// Adds the cluster's metrics to a scrape.
pub(crate) fn register(reg: &mut Registry, stats: &ClusterStats) {
    let gauge = |v: u64| {
        let g = Gauge::<i64>::default();
        g.set(v as i64);
        g
    };
    reg.register(
        "ferrosfu_cluster_nodes",
        "Live cluster nodes, this one included, at the last directory read",
        gauge(stats.nodes()),
    );
    reg.register(
        "ferrosfu_cluster_redis_up",
        "1 while the cluster's Redis answers this node's heartbeats",
        gauge(u64::from(stats.redis_up())),
    );
    let events = Family::<DirectionLabel, Counter>::default();
    for (direction, n) in [
        ("in", stats.events_in()),
        ("out", stats.events_out()),
        ("dropped", stats.events_dropped()),
    ] {
        events
            .get_or_create(&DirectionLabel { direction })
            .inc_by(n);
    }
    reg.register(
        "ferrosfu_cluster_events",
        "Room events received from other nodes (in), published (out), or not published because \
         Redis was unreachable (dropped)",
        events,
    );
    let bad = Counter::<u64>::default();
    bad.inc_by(stats.bad_messages());
    reg.register(
        "ferrosfu_cluster_bad_messages",
        "Undecodable or oversized cluster messages received and dropped",
        bad,
    );
}
