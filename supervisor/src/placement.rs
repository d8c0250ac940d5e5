//! Where a peer's router goes: a pure decision over the workers' loads (no IO, no clock, no
//! tokio), shared by the live supervisor ([`crate::rooms`]) and the capacity simulation
//! (`supervisor/tests/capacity.rs`).
//!
//! A worker is *under its limit* when its CPU share (over the last 5 s) plus what is placed on it
//! but not yet running stays at or below [`Limits::max_load`], and its consumers (open + pending)
//! stay at or below [`Limits::max_consumers`]. Work placed but not yet measured counts at
//! [`Limits::consumer_cpu`] per consumer, so a burst of joins does not overshoot before the 5 s
//! window catches up.
//!
//! [`place`] answers, for one join:
//! - [`Placement::Existing`]: the least-loaded worker that already hosts a router of the room and
//!   stays under its limit with the join;
//! - [`Placement::New`]: none of them can take it: the least-loaded other worker that can, the
//!   room grows onto it (a room never needs more than one router per worker);
//! - [`Placement::Full`]: no worker can.
//!
//! Both are tried first with the host staying under [`Limits::grow_at`] of its limits, then up to
//! the limits: a room grows onto a quiet worker before its own are full, so they keep headroom
//! for the fan-out of its later joins (each new publisher adds a consumer per peer there).
//!
//! What a join costs is the caller's model, given as a function of the candidate host: the
//! [`Work`] it adds on *every* worker (its own consumers on the host, the other peers' consumers
//! of its producers on their workers, pipe consumers toward a new router, the streams received by
//! its producers and pipe producers...). A join is placed only where every worker it touches
//! stays under its limit.

use std::collections::BTreeMap;

/// Share of one core a consumer costs, for work placed but not yet measured.
///
/// Derived from the load generator (results/loadgen-20261203T165726Z-a2f75d4: WebRTC fan-out
/// 1 × 500 with SRTP forwarded 167,106 packets/s per core) and a consumer forwarding 75 packets/s
/// on average (an audio consumer 50/s, a video consumer ~100/s, i.e. ~1 Mbit/s of 1,200 B
/// packets): 75 / 167,106 ≈ 0.00045 core, so one core carries ~2,200 such consumers at 100 %
/// and ~1,780 at the default 80 % limit.
pub const CONSUMER_CPU: f64 = 75.0 / 167_106.0;

/// The per-worker limits (`[rooms]` in the config).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Highest CPU share of one core (0..1] a worker may reach with new work (default 0.8).
    pub max_load: f64,
    /// Most consumers on one worker (None: no limit but the CPU one).
    pub max_consumers: Option<usize>,
    /// CPU share one placed-but-unmeasured consumer is counted at ([`CONSUMER_CPU`]).
    pub consumer_cpu: f64,
    /// Share of the limits (0..=1] past which a room prefers growing onto another worker to
    /// loading its own further ([`GROW_AT`]).
    pub grow_at: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_load: 0.8,
            max_consumers: Some(DEFAULT_MAX_CONSUMERS),
            consumer_cpu: CONSUMER_CPU,
            grow_at: GROW_AT,
        }
    }
}

/// Default `worker_max_consumers`: at the measured 167,106 packets/s per core, 2,000 consumers
/// at 50 packets/s (audio) are 60 % of a core, at 75/s (audio + video mix) 90 %: the CPU limit
/// binds first for media-heavy rooms, this one for rooms of many paused or audio consumers whose
/// CPU stays low but whose memory (83 KiB RSS per consumer measured) and keyframe bursts grow.
pub const DEFAULT_MAX_CONSUMERS: usize = 2000;

/// A worker as placement sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkerLoad {
    /// The core the worker is pinned to: its identity in the pool (stable across restarts).
    pub core: u32,
    /// The running worker's pid (None while it restarts).
    pub pid: Option<u32>,
    /// Share of one core used over the last 5 s (user + system time; 0..1).
    pub cpu: f64,
    /// Consumers open on the worker (pipe consumers included).
    pub consumers: usize,
    /// Consumers placed on it that do not exist yet (joins in progress).
    pub pending: usize,
    /// Routers (rooms) it hosts: on equal load, the worker with fewer goes first.
    pub routers: usize,
    pub alive: bool,
}

impl WorkerLoad {
    /// An idle, running worker.
    pub fn idle(core: u32) -> Self {
        Self {
            core,
            pid: None,
            cpu: 0.0,
            consumers: 0,
            pending: 0,
            routers: 0,
            alive: true,
        }
    }

    /// Its CPU share counting pending work and `added` work more.
    pub fn projected_cpu(&self, limits: &Limits, added: Work) -> f64 {
        self.cpu + (self.pending + added.cpu_units()) as f64 * limits.consumer_cpu
    }

    /// Its consumers counting pending ones and `added` more.
    pub fn projected_consumers(&self, added: Work) -> usize {
        self.consumers + self.pending + added.consumers
    }

    /// Whether it stays under its limits with `added` work more.
    pub fn fits(&self, limits: &Limits, added: Work) -> bool {
        self.alive
            && self.projected_cpu(limits, added) <= limits.max_load
            && limits
                .max_consumers
                .is_none_or(|m| self.projected_consumers(added) <= m)
    }

    /// How much of its limit it uses with `added` work more (1.0 = at the limit): the larger of
    /// the CPU and consumer fractions.
    pub fn usage(&self, limits: &Limits, added: Work) -> f64 {
        let cpu = self.projected_cpu(limits, added) / limits.max_load;
        let consumers = limits
            .max_consumers
            .map_or(0.0, |m| self.projected_consumers(added) as f64 / m as f64);
        cpu.max(consumers)
    }
}

/// Default [`Limits::grow_at`]: a room whose workers are past 30 % of their limits grows onto a
/// worker that is not (while one is). Without it a room fills its worker to the limit and is
/// then stuck: every later publisher adds a consumer per peer on that full worker, and even a
/// viewer on a new router needs pipe consumers there. The capacity simulation
/// (`supervisor/tests/capacity.rs`) chose it: with 100 rooms (about 70 % of the node) 0 joins are
/// refused at 0.3, 5 at 0.4, 10 at 0.5 and 45 at 1.0 (never growing early, first refusal with the
/// node at 24 % of its limits), for 5-6 % of consumers being pipe consumers.
pub const GROW_AT: f64 = 0.3;

/// Loads in the same step of this fraction of the limit count as equal, and the worker with fewer
/// rooms goes first: idle workers measure 0.1-0.5 % CPU at random, and a burst of new rooms
/// (whose first peers consume nothing yet) must spread, not all land on the worker that happened
/// to measure lowest.
const SAME_LOAD: f64 = 0.05;

/// What a join adds on one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Consumers (pipe consumers included): count against both limits.
    pub consumers: usize,
    /// Streams received (producers, pipe producers): CPU only, each at the cost of a consumer
    /// (one SRTP/RTP receive against one rewrite and send).
    pub ingest: usize,
}

impl Work {
    pub fn consumers(n: usize) -> Self {
        Self {
            consumers: n,
            ingest: 0,
        }
    }

    fn cpu_units(&self) -> usize {
        self.consumers + self.ingest
    }
}

impl std::ops::Add for Work {
    type Output = Work;
    fn add(self, o: Work) -> Work {
        Work {
            consumers: self.consumers + o.consumers,
            ingest: self.ingest + o.ingest,
        }
    }
}

/// Where a join goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the room's router on this worker (core).
    Existing(u32),
    /// On a new router of the room on this worker (core).
    New(u32),
    /// No worker can take it under its limit.
    Full,
}

/// The work a join adds, per worker (core), when hosted on a given candidate.
pub type Added = Vec<(u32, Work)>;

/// Places one join. `room`: the cores that already host a router of the room (empty for a new
/// room). `cost(host)`: the work the join adds on each worker when its peer is hosted on `host`
/// (the host included; a core listed twice adds up).
pub fn place(
    workers: &[WorkerLoad],
    limits: &Limits,
    room: &[u32],
    cost: impl Fn(u32) -> Added,
) -> Placement {
    let best = |existing: bool, host_at: f64| {
        workers
            .iter()
            .filter(|w| w.alive && room.contains(&w.core) == existing)
            .filter_map(|w| {
                let added = cost(w.core);
                let all_fit = added
                    .iter()
                    .all(|&(core, _)| fits_with(workers, limits, &added, core));
                let usage = w.usage(limits, sum_for(&added, w.core));
                (all_fit && usage <= host_at).then_some((w, usage))
            })
            .min_by(|(a, ua), (b, ub)| {
                let bucket = |u: f64| (u / SAME_LOAD).floor();
                bucket(*ua)
                    .total_cmp(&bucket(*ub))
                    .then(a.routers.cmp(&b.routers))
                    .then(ua.total_cmp(ub))
                    .then(a.core.cmp(&b.core))
            })
            .map(|(w, _)| w.core)
    };
    // First where the host stays under grow_at (the room's busy workers keep headroom for the
    // fan-out of its later joins), then anywhere under the limits.
    for host_at in [limits.grow_at, 1.0] {
        if let Some(core) = best(true, host_at) {
            return Placement::Existing(core);
        }
        if let Some(core) = best(false, host_at) {
            return Placement::New(core);
        }
    }
    Placement::Full
}

/// A room as placement sees it: its peers and producers on each worker that hosts one of its
/// routers. With [`RoomShape::join_cost`] it states what a join costs, for [`place`], in the
/// model "every peer consumes every producer of the room, and every producer is piped to every
/// other router of its room" (mediasoup-demo's rooms; the capacity simulation's model).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomShape {
    /// Peers on each worker (core); the keys are the workers with a router of the room.
    pub peers_on: BTreeMap<u32, usize>,
    /// Producers on each worker.
    pub producers_on: BTreeMap<u32, usize>,
}

impl RoomShape {
    /// The workers with a router of the room.
    pub fn routers(&self) -> Vec<u32> {
        self.peers_on.keys().copied().collect()
    }

    pub fn producers(&self) -> usize {
        self.producers_on.values().sum()
    }

    /// What a peer that publishes `producers` producers and consumes every producer of the room
    /// adds on each worker when hosted on `host`, and the pipe consumers it creates:
    /// - on the host: a consumer per producer of the room, and its producers' received streams;
    /// - on a new router (the host has none of the room yet): every producer of the room piped
    ///   in (a pipe consumer on the producer's worker, a received stream on the host);
    /// - its producers consumed by every other peer, on that peer's worker, and piped to every
    ///   other router (a pipe consumer on the host, a received stream there).
    pub fn join_cost(&self, host: u32, producers: usize) -> (Added, usize) {
        let received = |n| Work {
            consumers: 0,
            ingest: n,
        };
        let existing = self.producers();
        let mut added = vec![(host, Work::consumers(existing))];
        let mut pipes = 0;
        if !self.peers_on.is_empty() && !self.peers_on.contains_key(&host) {
            for (&core, &n) in &self.producers_on {
                added.push((core, Work::consumers(n)));
            }
            added.push((host, received(existing)));
            pipes += existing;
        }
        if producers > 0 {
            added.push((host, received(producers)));
            for (&core, &k) in &self.peers_on {
                added.push((core, Work::consumers(producers * k)));
            }
            for &core in self.peers_on.keys().filter(|&&c| c != host) {
                added.push((host, Work::consumers(producers)));
                added.push((core, received(producers)));
                pipes += producers;
            }
        }
        (added, pipes)
    }

    /// Records a peer that joined on `host` with `producers` producers.
    pub fn add_peer(&mut self, host: u32, producers: usize) {
        *self.peers_on.entry(host).or_default() += 1;
        if producers > 0 {
            *self.producers_on.entry(host).or_default() += producers;
        }
    }

    /// Pipe consumers of the room: each producer once per other router.
    pub fn pipe_consumers(&self) -> usize {
        self.producers() * self.peers_on.len().saturating_sub(1)
    }
}

/// Shortcut for a join that adds `consumers` on its host only (a new room, or an estimate).
pub fn place_simple(
    workers: &[WorkerLoad],
    limits: &Limits,
    room: &[u32],
    consumers: usize,
) -> Placement {
    place(workers, limits, room, |host| {
        vec![(host, Work::consumers(consumers))]
    })
}

/// Whether every running worker is above its limit (or none runs): the node admits no new room.
pub fn is_full(workers: &[WorkerLoad], limits: &Limits) -> bool {
    !workers.iter().any(|w| w.fits(limits, Work::default()))
}

/// The work `added` puts on `core`.
pub fn sum_for(added: &[(u32, Work)], core: u32) -> Work {
    added
        .iter()
        .filter(|(c, _)| *c == core)
        .fold(Work::default(), |a, (_, w)| a + *w)
}

fn fits_with(workers: &[WorkerLoad], limits: &Limits, added: &[(u32, Work)], core: u32) -> bool {
    workers
        .iter()
        .find(|w| w.core == core)
        .is_some_and(|w| w.fits(limits, sum_for(added, core)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_load: 0.8,
            max_consumers: Some(100),
            consumer_cpu: 0.001,
            grow_at: 1.0,
        }
    }

    fn w(core: u32, cpu: f64, consumers: usize) -> WorkerLoad {
        WorkerLoad {
            cpu,
            consumers,
            ..WorkerLoad::idle(core)
        }
    }

    #[test]
    fn a_new_room_goes_to_the_least_loaded_worker() {
        let ws = [w(0, 0.5, 10), w(1, 0.2, 10), w(2, 0.3, 0)];
        assert_eq!(place_simple(&ws, &limits(), &[], 0), Placement::New(1));
        // Within the same 5 % step of the limit, the one with fewer rooms.
        let mut ws = [w(0, 0.001, 0), w(1, 0.004, 0)];
        ws[0].routers = 1;
        assert_eq!(place_simple(&ws, &limits(), &[], 0), Placement::New(1));
        // By consumers when they weigh more than the CPU: 0.1/0.8 < 90/100.
        let ws = [w(0, 0.1, 90), w(1, 0.4, 0)];
        assert_eq!(place_simple(&ws, &limits(), &[], 0), Placement::New(1));
    }

    #[test]
    fn on_equal_load_the_worker_with_fewer_rooms_goes_first() {
        let mut ws = [
            WorkerLoad::idle(0),
            WorkerLoad::idle(1),
            WorkerLoad::idle(2),
        ];
        ws[0].routers = 2;
        ws[1].routers = 1;
        ws[2].routers = 1;
        assert_eq!(place_simple(&ws, &limits(), &[], 0), Placement::New(1));
    }

    #[test]
    fn a_join_stays_on_the_rooms_worker_while_it_fits() {
        // Worker 0 hosts the room and is busier than worker 1: the join still goes there.
        let ws = [w(0, 0.6, 50), w(1, 0.0, 0)];
        assert_eq!(
            place_simple(&ws, &limits(), &[0], 10),
            Placement::Existing(0)
        );
        // The least loaded of the room's workers.
        let ws = [w(0, 0.6, 50), w(1, 0.0, 0), w(2, 0.5, 50)];
        assert_eq!(
            place_simple(&ws, &limits(), &[0, 2], 10),
            Placement::Existing(2)
        );
    }

    #[test]
    fn the_room_grows_onto_another_worker_past_the_limit() {
        // 0.75 + 60 × 0.001 = 0.81 > 0.8: worker 0 cannot take it, worker 2 (idle) can.
        let ws = [w(0, 0.75, 10), w(1, 0.5, 0), w(2, 0.0, 0)];
        assert_eq!(place_simple(&ws, &limits(), &[0], 60), Placement::New(2));
        // The consumer limit alone: 95 + 10 > 100.
        let ws = [w(0, 0.0, 95), w(1, 0.0, 0)];
        assert_eq!(place_simple(&ws, &limits(), &[0], 10), Placement::New(1));
        // Without a consumer limit the CPU decides.
        let no_cap = Limits {
            max_consumers: None,
            ..limits()
        };
        assert_eq!(place_simple(&ws, &no_cap, &[0], 10), Placement::Existing(0));
    }

    #[test]
    fn a_room_grows_early_onto_a_quiet_worker() {
        let l = Limits {
            grow_at: 0.5,
            ..limits()
        };
        // Worker 0 would pass half its limits (0.36 + 0.05 > 0.4): worker 2 is under it.
        let ws = [w(0, 0.36, 10), w(1, 0.6, 0), w(2, 0.1, 0)];
        assert_eq!(place_simple(&ws, &l, &[0], 50), Placement::New(2));
        // Under half its limits, the room stays.
        assert_eq!(place_simple(&ws, &l, &[0], 1), Placement::Existing(0));
        // Every other worker past half its limits too: the room stays while under the limits.
        let ws = [w(0, 0.36, 10), w(1, 0.6, 0), w(2, 0.5, 0)];
        assert_eq!(place_simple(&ws, &l, &[0], 50), Placement::Existing(0));
        // A new room goes to the least-loaded worker wherever it is.
        assert_eq!(place_simple(&ws, &l, &[], 0), Placement::New(0));
    }

    #[test]
    fn every_worker_above_its_limit_is_full() {
        let ws = [w(0, 0.81, 0), w(1, 0.0, 101)];
        assert!(is_full(&ws, &limits()));
        assert_eq!(place_simple(&ws, &limits(), &[], 0), Placement::Full);
        // At the limit is still under it.
        let ws = [w(0, 0.8, 0)];
        assert!(!is_full(&ws, &limits()));
        // A dead worker takes nothing; no worker at all is full.
        let mut dead = WorkerLoad::idle(0);
        dead.alive = false;
        assert!(is_full(&[dead], &limits()));
        assert!(is_full(&[], &limits()));
        assert_eq!(place_simple(&[dead], &limits(), &[0], 0), Placement::Full);
    }

    #[test]
    fn pending_work_counts_so_a_burst_does_not_overshoot() {
        // Measured idle, but 70 consumers are on their way: 70 + 40 > 100 and 0.11 CPU is fine.
        let mut a = WorkerLoad::idle(0);
        a.pending = 70;
        let ws = [a, w(1, 0.3, 0)];
        assert_eq!(place_simple(&ws, &limits(), &[0], 40), Placement::New(1));
        // Pending work also counts as CPU: 0.5 + 300 × 0.001 > 0.8.
        let unlimited = Limits {
            max_consumers: None,
            ..limits()
        };
        let mut b = w(0, 0.5, 0);
        b.pending = 300;
        assert!(!b.fits(&unlimited, Work::consumers(1)));
        assert!((b.projected_cpu(&unlimited, Work::default()) - 0.8).abs() < 1e-9);
        // Streams received cost CPU but are not consumers.
        let c = w(0, 0.0, 95);
        let ingest = Work {
            consumers: 0,
            ingest: 50,
        };
        assert!(c.fits(&limits(), ingest));
        assert!((c.projected_cpu(&limits(), ingest) - 0.05).abs() < 1e-9);
    }

    #[test]
    fn a_join_that_would_overload_another_worker_of_the_room_is_refused() {
        // The room spans 0 and 1; the new peer's producers are consumed by the peers on 1, whose
        // worker is nearly at its consumer limit: nowhere can host the join.
        let ws = [w(0, 0.0, 0), w(1, 0.0, 95), w(2, 0.0, 0)];
        let cost = |host: u32| vec![(host, Work::consumers(10)), (1, Work::consumers(20))];
        assert_eq!(place(&ws, &limits(), &[0, 1], cost), Placement::Full);
        // With room on worker 1 the join goes to the least-loaded worker of the room.
        let ws = [w(0, 0.0, 0), w(1, 0.0, 50), w(2, 0.0, 0)];
        assert_eq!(place(&ws, &limits(), &[0, 1], cost), Placement::Existing(0));
    }

    #[test]
    fn a_join_costs_consumers_pipes_and_received_streams_where_they_run() {
        // Two publishers (audio + video) on worker 0, one on worker 1.
        let mut room = RoomShape::default();
        room.add_peer(0, 2);
        room.add_peer(0, 2);
        room.add_peer(1, 2);
        assert_eq!((room.routers(), room.producers()), (vec![0, 1], 6));
        assert_eq!(room.pipe_consumers(), 6);
        // A publisher on worker 0: 6 consumers of its own, 2 × 2 of its producers on 0 and 2 on
        // 1, its 2 producers piped to 1 (2 pipe consumers on 0, 2 streams received on 1).
        let (added, pipes) = room.join_cost(0, 2);
        assert_eq!(
            sum_for(&added, 0),
            Work {
                consumers: 6 + 4 + 2,
                ingest: 2
            }
        );
        assert_eq!(
            sum_for(&added, 1),
            Work {
                consumers: 2,
                ingest: 2
            }
        );
        assert_eq!(pipes, 2);
        // A viewer on a new worker 2: every producer piped in (4 pipe consumers on 0, 2 on 1).
        let (added, pipes) = room.join_cost(2, 0);
        assert_eq!(
            sum_for(&added, 2),
            Work {
                consumers: 6,
                ingest: 6
            }
        );
        assert_eq!(sum_for(&added, 0), Work::consumers(4));
        assert_eq!(sum_for(&added, 1), Work::consumers(2));
        assert_eq!(pipes, 6);
        room.add_peer(2, 0);
        assert_eq!(room.pipe_consumers(), 12);
    }

    #[test]
    fn usage_is_the_larger_fraction() {
        let l = limits();
        let a = w(0, 0.4, 10);
        assert!((a.usage(&l, Work::default()) - 0.5).abs() < 1e-9);
        let b = w(0, 0.0, 90);
        assert!((b.usage(&l, Work::default()) - 0.9).abs() < 1e-9);
    }
}
