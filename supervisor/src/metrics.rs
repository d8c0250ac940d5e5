//! `/metrics`: Prometheus exposition (OpenMetrics text) built at scrape time from the pool.

mod media;

use std::sync::atomic::{AtomicU64, Ordering};

use ferrosfu_fbs::{MediaCounters, ResourceUsage};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::lifecycle::Phase;
use crate::placement::WorkerLoad;
use crate::pool::WorkerInfo;
use crate::store::StoreStats;
use media::register_media;

/// Supervisor-side figures beside the workers'.
#[derive(Clone, Debug, Default)]
pub(crate) struct Extras {
    /// What each running worker's media engine counted, by core.
    pub media: Vec<(u32, MediaCounters)>,
    /// Each core's load (placement's view).
    pub loads: Vec<WorkerLoad>,
    pub store: StoreStats,
    pub recordings_active: usize,
    /// Recordings finished since start: (done, failed).
    pub recordings_finished: (u64, u64),
    /// Present when clustering is on.
    pub cluster: Option<std::sync::Arc<crate::cluster::Cluster>>,
    /// Rooms, peers and pipes.
    pub rooms: crate::rooms::RoomsStats,
    /// Present when the TURN server runs.
    pub turn: Option<std::sync::Arc<crate::turn::Turn>>,
    /// How long joins took.
    pub join_times: JoinTimes,
}

/// How long peers took from their WebSocket connection to their `join` answered: a histogram
/// the signaling feeds (cheap to clone: every clone is the same histogram).
#[derive(Clone, Debug)]
pub(crate) struct JoinTimes(prometheus_client::metrics::histogram::Histogram);

impl Default for JoinTimes {
    fn default() -> Self {
        Self(prometheus_client::metrics::histogram::Histogram::new([
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]))
    }
}

impl JoinTimes {
    /// A peer that connected at `connected` has its `join` answered now.
    pub(crate) fn joined(&self, connected: std::time::Instant) {
        self.0.observe(connected.elapsed().as_secs_f64());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LocationLabel {
    location: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipeDirectionLabel {
    direction: &'static str,
}

fn register_rooms(reg: &mut Registry, r: &crate::rooms::RoomsStats) {
    reg.register("ferrosfu_rooms", "Open rooms on this node", gauge(r.rooms));
    let peers = Family::<LocationLabel, Gauge>::default();
    for (location, n) in [("local", r.local_peers), ("remote", r.remote_peers)] {
        peers
            .get_or_create(&LocationLabel { location })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    reg.register(
        "ferrosfu_peers",
        "Peers in this node's rooms: connected here (local) or to another node of the cluster (remote)",
        peers,
    );
    reg.register(
        "ferrosfu_rooms_spanning_workers",
        "Rooms with routers on more than one worker of this node",
        gauge(r.spanning),
    );
    let pipes = Family::<ScopeLabel, Gauge>::default();
    for (scope, n) in [("worker", r.worker_pipes), ("node", r.node_pipes)] {
        pipes
            .get_or_create(&ScopeLabel { scope })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    reg.register(
        "ferrosfu_pipe_transports",
        "Open PipeTransports: between this node's workers (worker) or toward other nodes (node)",
        pipes,
    );
    let rate = Family::<PipeDirectionLabel, Gauge>::default();
    for (direction, n) in [("send", r.pipe_send_bps), ("recv", r.pipe_recv_bps)] {
        rate.get_or_create(&PipeDirectionLabel { direction })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    reg.register(
        "ferrosfu_pipe_bitrate_bps",
        "What the pipe transports send and receive, bit/s over the last second",
        rate,
    );
}

pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CoreLabel {
    core: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CpuLabel {
    core: String,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    core: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    core: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

/// Renders the exposition for the given pool state; `usage` is the resource usage of each
/// running worker, by core.
pub(crate) fn render(
    phase: Phase,
    workers: &[WorkerInfo],
    usage: &[(u32, ResourceUsage)],
    extras: &Extras,
) -> String {
    let mut reg = Registry::default();
    reg.register(
        "ferrosfu_build",
        "The version and commit this supervisor was built from",
        prometheus_client::metrics::info::Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION")),
            ("commit", env!("FERROSFU_COMMIT")),
        ]),
    );
    register_extras(&mut reg, extras);

    let phase_g = Family::<PhaseLabel, Gauge>::default();
    for p in [
        Phase::Starting,
        Phase::Running,
        Phase::Draining,
        Phase::Stopped,
    ] {
        phase_g
            .get_or_create(&PhaseLabel { phase: p.as_str() })
            .set(i64::from(p == phase));
    }
    reg.register(
        "ferrosfu_lifecycle_phase",
        "1 for the supervisor's current lifecycle phase",
        phase_g,
    );

    let up = Family::<CoreLabel, Gauge>::default();
    let restarts = Family::<CoreLabel, Counter>::default();
    let pid = Family::<CoreLabel, Gauge>::default();
    let channel_errors = Family::<CoreLabel, Counter>::default();
    let timeouts = Family::<CoreLabel, Counter>::default();
    let unrouted = Family::<CoreLabel, Counter>::default();
    for w in workers {
        let l = CoreLabel {
            core: w.core.to_string(),
        };
        up.get_or_create(&l).set(i64::from(w.worker.is_some()));
        restarts.get_or_create(&l).inc_by(u64::from(w.restarts));
        if let Some(worker) = &w.worker {
            pid.get_or_create(&l).set(i64::from(worker.pid()));
            let stats = worker.channel().stats();
            channel_errors
                .get_or_create(&l)
                .inc_by(stats.errors.load(Ordering::Relaxed));
            timeouts
                .get_or_create(&l)
                .inc_by(stats.timeouts.load(Ordering::Relaxed));
            unrouted
                .get_or_create(&l)
                .inc_by(stats.unrouted.load(Ordering::Relaxed));
        }
    }
    reg.register(
        "ferrosfu_worker_up",
        "1 when the worker of this core is running",
        up,
    );
    reg.register(
        "ferrosfu_worker_restarts",
        "Times the worker of this core was restarted after dying",
        restarts,
    );
    reg.register(
        "ferrosfu_worker_pid",
        "Process id of the worker of this core",
        pid,
    );
    reg.register(
        "ferrosfu_worker_channel_errors",
        "Undecodable or rejected channel frames, either direction, since this worker started",
        channel_errors,
    );
    reg.register(
        "ferrosfu_worker_request_timeouts",
        "Channel requests that timed out since this worker started",
        timeouts,
    );
    reg.register(
        "ferrosfu_worker_unrouted_notifications",
        "Worker notifications for a handler id no live entity registered (dropped)",
        unrouted,
    );

    let cpu = Family::<CpuLabel, Counter<f64, AtomicU64>>::default();
    let rss = Family::<CoreLabel, Gauge>::default();
    for (core, u) in usage {
        let core = core.to_string();
        cpu.get_or_create(&CpuLabel {
            core: core.clone(),
            mode: "user",
        })
        .inc_by(u.ru_utime as f64 / 1e6);
        cpu.get_or_create(&CpuLabel {
            core: core.clone(),
            mode: "system",
        })
        .inc_by(u.ru_stime as f64 / 1e6);
        rss.get_or_create(&CoreLabel { core })
            .set(i64::try_from(u.ru_maxrss.saturating_mul(1024)).unwrap_or(i64::MAX));
    }
    reg.register(
        "ferrosfu_worker_cpu_seconds",
        "CPU time used by the current worker process of this core",
        cpu,
    );
    reg.register(
        "ferrosfu_worker_max_rss_bytes",
        "Peak resident set size of the worker of this core",
        rss,
    );
    register_sockets(&mut reg, usage);

    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)
        .expect("writing to a String cannot fail");
    out
}

fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

/// The worker shells' socket counters (`ResourceUsage::sockets`).
fn register_sockets(reg: &mut Registry, usage: &[(u32, ResourceUsage)]) {
    let udp = Family::<DirectionLabel, Counter>::default();
    let drops = Family::<ReasonLabel, Counter>::default();
    for (core, u) in usage {
        let s = &u.sockets;
        for (direction, n) in [("received", s.udp_received), ("sent", s.udp_sent)] {
            let core = core.to_string();
            udp.get_or_create(&DirectionLabel { core, direction })
                .inc_by(n);
        }
        for (reason, n) in [
            ("behind", s.udp_behind_dropped),
            ("send_queue_full", s.udp_send_queue_full),
            ("send_error", s.udp_send_errors),
            ("receive_error", s.udp_recv_errors),
            ("no_socket", s.no_socket + s.tcp_unsent),
            ("tcp_overflow", s.tcp_overflow),
        ] {
            let core = core.to_string();
            drops.get_or_create(&ReasonLabel { core, reason }).inc_by(n);
        }
    }
    reg.register(
        "ferrosfu_worker_udp_datagrams",
        "UDP datagrams the worker of this core received and sent on its media sockets",
        udp,
    );
    reg.register(
        "ferrosfu_worker_socket_drops",
        "Datagrams the worker of this core dropped at its sockets, by reason: behind (received \
         input shed before forwarding: the worker was behind that socket's input for over \
         100 ms), send_queue_full (the oldest queued datagram: its socket stayed unwritable), \
         send_error / receive_error (refused by the kernel), no_socket (a transmit to a socket or \
         TCP connection that is gone), tcp_overflow (a TCP connection's write buffer overflowed)",
        drops,
    );
}

fn register_loads(reg: &mut Registry, loads: &[WorkerLoad]) {
    let cpu = Family::<CoreLabel, Gauge<f64, AtomicU64>>::default();
    let consumers = Family::<CoreLabel, Gauge>::default();
    for l in loads.iter().filter(|l| l.alive) {
        let c = CoreLabel {
            core: l.core.to_string(),
        };
        cpu.get_or_create(&c).set(l.cpu);
        consumers
            .get_or_create(&c)
            .set(i64::try_from(l.consumers).unwrap_or(i64::MAX));
    }
    reg.register(
        "ferrosfu_worker_cpu_load",
        "Share of one core the worker used over the last 5 s (user + system; placement compares \
         it with rooms.worker_max_load)",
        cpu,
    );
    reg.register(
        "ferrosfu_worker_consumers",
        "Consumers open on the worker (pipe consumers included)",
        consumers,
    );
}

fn register_extras(reg: &mut Registry, e: &Extras) {
    register_media(reg, &e.media);
    register_rooms(reg, &e.rooms);
    reg.register(
        "ferrosfu_join_duration_seconds",
        "Time from a peer's signaling WebSocket connection to its join answered",
        e.join_times.0.clone(),
    );
    if let Some(c) = &e.cluster {
        crate::cluster::register_metrics(reg, c.stats());
    }
    if let Some(t) = &e.turn {
        crate::turn::register_metrics(reg, t.stats());
    }
    register_loads(reg, &e.loads);
    reg.register(
        "ferrosfu_store_queued_writes",
        "Database writes waiting in the store's queue",
        gauge(e.store.queued),
    );
    reg.register(
        "ferrosfu_store_applied_writes",
        "Database writes applied since start",
        counter(e.store.applied),
    );
    reg.register(
        "ferrosfu_store_write_retries",
        "Failed database write attempts (each is retried) since start",
        counter(e.store.retries),
    );
    reg.register(
        "ferrosfu_store_dropped_writes",
        "Database writes dropped because the queue was full, since start",
        counter(e.store.dropped),
    );
    reg.register(
        "ferrosfu_store_rejected_writes",
        "Database writes the database refused for good (a constraint), logged and dropped",
        counter(e.store.rejected),
    );
    reg.register(
        "ferrosfu_store_failing",
        "1 while the last database write attempt failed (the database is unreachable)",
        gauge(u64::from(e.store.failing)),
    );
    reg.register(
        "ferrosfu_recordings_active",
        "Recordings starting, recording or finalizing",
        gauge(e.recordings_active as u64),
    );
    let finished = Family::<StatusLabel, Counter>::default();
    finished
        .get_or_create(&StatusLabel { status: "done" })
        .inc_by(e.recordings_finished.0);
    finished
        .get_or_create(&StatusLabel { status: "failed" })
        .inc_by(e.recordings_finished.1);
    reg.register(
        "ferrosfu_recordings_finished",
        "Recordings finished since start, by final status",
        finished,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_loads_are_gauges_by_core() {
        let mut dead = WorkerLoad::idle(5);
        dead.alive = false;
        let extras = Extras {
            loads: vec![
                WorkerLoad {
                    cpu: 0.25,
                    consumers: 12,
                    ..WorkerLoad::idle(4)
                },
                dead,
            ],
            ..Default::default()
        };
        let text = render(Phase::Running, &[], &[], &extras);
        for line in [
            "# TYPE ferrosfu_worker_cpu_load gauge",
            "ferrosfu_worker_cpu_load{core=\"4\"} 0.25",
            "ferrosfu_worker_consumers{core=\"4\"} 12",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(
            !text.contains("core=\"5\""),
            "a core without a worker has no load"
        );
    }

    #[test]
    fn socket_counters_come_with_the_resource_usage() {
        let mut u = ResourceUsage::default();
        u.sockets.udp_sent = 9;
        u.sockets.udp_behind_dropped = 6;
        let text = render(Phase::Running, &[], &[(2, u)], &Extras::default());
        for line in [
            "ferrosfu_worker_udp_datagrams_total{core=\"2\",direction=\"sent\"} 9",
            "ferrosfu_worker_socket_drops_total{core=\"2\",reason=\"behind\"} 6",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
