//! Capacity simulation (issue 15): the placement code (`ferrosfu::placement`, pure) drives one
//! 32-core node's 16 workers while 500 rooms fill up, peers joining in a seeded random order. No
//! sockets, no workers: each worker's load is modelled from what placement put on it.
//!
//! Model:
//! - Meetings: every peer publishes audio + video (2 producers) and consumes every other peer's
//!   producers: a room of n peers has 2n(n-1) consumers. Webinars: 800 viewers and 1-2
//!   publishers (who join first); viewers publish nothing.
//! - A room has one router per worker that hosts its peers (never two on one worker); every
//!   producer is piped to every other router of its room: one pipe consumer on the producer's
//!   worker and one pipe producer (a received stream) on the other, per producer per extra router.
//!   What a join adds on each worker is `placement::RoomShape::join_cost`, the code the rooms use.
//! - CPU of a worker = (consumers + pipe consumers + received streams) × `CONSUMER_CPU`, the cost
//!   of a consumer forwarding 75 packets/s (audio 50/s, video ~100/s) at the measured 167,106
//!   forwarded packets/s per core (results/loadgen-20261203T165726Z-a2f75d4, WebRTC 1 × 500,
//!   SRTP); a received stream is counted like a consumer.
//! - Limits: the defaults (`worker_max_load` 0.8, `worker_max_consumers` 2000). A refused peer
//!   does not retry; peers never leave (the end state is the peak).
//!
//! `cargo test -p ferrosfu --test capacity -- --nocapture` prints the table
//! (results/capacity-*.txt).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ferrosfu::placement::{
    self, CONSUMER_CPU, Limits, Placement, RoomShape, Work, WorkerLoad, sum_for,
};

const CORES: std::ops::RangeInclusive<u32> = 6..=21;
const SEED: u64 = 0x15_c0ffee;

/// splitmix64: a seeded, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Meeting,
    Webinar,
}

/// A room: its shape (placement's view) and how its joins went.
#[derive(Debug)]
struct Room {
    kind: Kind,
    size: usize,
    shape: RoomShape,
    admitted: usize,
    refused: usize,
}

/// One worker as the model sees it.
#[derive(Clone, Copy, Debug, Default)]
struct Model {
    consumers: usize,
    pipe_consumers: usize,
    ingest: usize,
    routers: usize,
}

impl Model {
    fn cpu(&self) -> f64 {
        (self.consumers + self.ingest) as f64 * CONSUMER_CPU
    }
}

/// 496 meetings (60 % of 2-4 peers, 25 % of 5-10, 12 % of 11-25, 3 % of 26-50) and 4 webinars of
/// 800 viewers with 1 or 2 publishers, in a seeded order; `rooms` of them.
fn rooms(rng: &mut Rng, rooms: usize) -> Vec<Room> {
    let webinars = (rooms / 125).max(1);
    (0..rooms)
        .map(|i| {
            let (kind, size) = if i < webinars {
                (Kind::Webinar, 800 + 1 + i % 2)
            } else {
                let size = match rng.range(1, 100) {
                    1..=60 => rng.range(2, 4),
                    61..=85 => rng.range(5, 10),
                    86..=97 => rng.range(11, 25),
                    _ => rng.range(26, 50),
                };
                (Kind::Meeting, size)
            };
            Room {
                kind,
                size,
                shape: RoomShape::default(),
                admitted: 0,
                refused: 0,
            }
        })
        .collect()
}

#[derive(Debug, Default)]
struct Outcome {
    offered: usize,
    admitted: usize,
    refused_new_room: usize,
    refused_in_room: usize,
    /// Joins admitted before the first refusal, and the node's mean usage then.
    first_refusal: Option<(usize, f64)>,
    pipes: usize,
    demand_consumers: usize,
    workers: BTreeMap<u32, Model>,
    rooms: Vec<Room>,
}

fn loads(workers: &BTreeMap<u32, Model>) -> Vec<WorkerLoad> {
    workers
        .iter()
        .map(|(&core, m)| WorkerLoad {
            cpu: m.cpu(),
            consumers: m.consumers,
            routers: m.routers,
            ..WorkerLoad::idle(core)
        })
        .collect()
}

fn mean_usage(workers: &BTreeMap<u32, Model>, limits: &Limits) -> f64 {
    let l = loads(workers);
    l.iter()
        .map(|w| w.usage(limits, Work::default()))
        .sum::<f64>()
        / l.len() as f64
}

fn simulate(room_count: usize, limits: &Limits) -> Outcome {
    let mut rng = Rng(SEED);
    let mut out = Outcome {
        workers: CORES.map(|c| (c, Model::default())).collect(),
        rooms: rooms(&mut rng, room_count),
        ..Outcome::default()
    };
    // Every peer joins at a random time; in each room the first to join are its publishers.
    let mut joins: Vec<(u64, usize)> = Vec::new();
    for (i, r) in out.rooms.iter().enumerate() {
        out.demand_consumers += match r.kind {
            Kind::Meeting => 2 * r.size * (r.size - 1),
            Kind::Webinar => {
                let p = r.size - 800;
                2 * p * (r.size - 1)
            }
        };
        for _ in 0..r.size {
            joins.push((rng.next(), i));
        }
    }
    joins.sort_unstable();
    out.offered = joins.len();
    let mut arrived = vec![0usize; out.rooms.len()];
    for &(_, i) in &joins {
        let room = &out.rooms[i];
        // Audio + video, or nothing (a webinar's viewers).
        let producers = match room.kind {
            Kind::Meeting => 2,
            Kind::Webinar if arrived[i] < room.size - 800 => 2,
            Kind::Webinar => 0,
        };
        arrived[i] += 1;
        let routers = room.shape.routers();
        let place = placement::place(&loads(&out.workers), limits, &routers, |h| {
            room.shape.join_cost(h, producers).0
        });
        let host = match place {
            Placement::Existing(h) | Placement::New(h) => h,
            Placement::Full => {
                if out.first_refusal.is_none() {
                    out.first_refusal = Some((out.admitted, mean_usage(&out.workers, limits)));
                }
                if routers.is_empty() {
                    out.refused_new_room += 1;
                } else {
                    out.refused_in_room += 1;
                }
                out.rooms[i].refused += 1;
                continue;
            }
        };
        assert_eq!(
            matches!(place, Placement::New(_)),
            !routers.contains(&host),
            "Existing means a worker of the room"
        );
        let (added, pipes) = room.shape.join_cost(host, producers);
        for core in CORES {
            let w = sum_for(&added, core);
            let m = out.workers.get_mut(&core).unwrap();
            m.consumers += w.consumers;
            m.ingest += w.ingest;
        }
        // Pipe consumers sit on the producers' workers; count them where they were added.
        out.pipes += pipes;
        if !routers.contains(&host) {
            out.workers.get_mut(&host).unwrap().routers += 1;
        }
        let room = &mut out.rooms[i];
        room.shape.add_peer(host, producers);
        room.admitted += 1;
        out.admitted += 1;
    }
    // Pipe consumers per worker: for each room, its producers on a worker times its other routers.
    for r in &out.rooms {
        let extra = r.shape.peers_on.len().saturating_sub(1);
        for (&core, &n) in &r.shape.producers_on {
            out.workers.get_mut(&core).unwrap().pipe_consumers += n * extra;
        }
    }
    out
}

fn check_limits(o: &Outcome, limits: &Limits) {
    for (core, m) in &o.workers {
        assert!(
            m.cpu() <= limits.max_load + 1e-9,
            "worker {core} at {:.3} CPU",
            m.cpu()
        );
        assert!(
            limits.max_consumers.is_none_or(|max| m.consumers <= max),
            "worker {core}: {} consumers",
            m.consumers
        );
    }
    // Pipes as counted per join equal the steady state (every producer on every other router).
    let steady: usize = o.workers.values().map(|m| m.pipe_consumers).sum();
    assert_eq!(o.pipes, steady);
    assert_eq!(
        o.admitted + o.refused_new_room + o.refused_in_room,
        o.offered
    );
}

fn table(o: &Outcome, limits: &Limits) -> String {
    let mut t = String::new();
    let n = o.workers.len() as f64;
    let cpus: Vec<f64> = o.workers.values().map(Model::cpu).collect();
    let cons: Vec<usize> = o.workers.values().map(|m| m.consumers).collect();
    let spanning = o
        .rooms
        .iter()
        .filter(|r| r.shape.peers_on.len() > 1)
        .count();
    let max_span = o
        .rooms
        .iter()
        .map(|r| r.shape.peers_on.len())
        .max()
        .unwrap_or(0);
    let full_rooms = o.rooms.iter().filter(|r| r.refused == 0).count();
    let _ = writeln!(
        t,
        "rooms {} ({} webinars), joins offered {}, admitted {}, refused {} ({} opening a new room, {} into an open room)",
        o.rooms.len(),
        o.rooms.iter().filter(|r| r.kind == Kind::Webinar).count(),
        o.offered,
        o.admitted,
        o.refused_new_room + o.refused_in_room,
        o.refused_new_room,
        o.refused_in_room,
    );
    let _ = writeln!(
        t,
        "consumers if every join were admitted: {}; admitted: {} ({} pipe consumers); rooms with every peer admitted: {full_rooms}",
        o.demand_consumers,
        cons.iter().sum::<usize>(),
        o.pipes,
    );
    match o.first_refusal {
        Some((k, u)) => {
            let _ = writeln!(
                t,
                "first refusal after {k} admitted joins, node at {:.1} % of its limits (mean usage)",
                u * 100.0
            );
        }
        None => {
            let _ = writeln!(t, "no refusal");
        }
    }
    let _ = writeln!(
        t,
        "CPU per worker: max {:.3}, mean {:.3} (limit {}); consumers per worker: max {}, mean {:.0} (limit {})",
        cpus.iter().copied().fold(0.0, f64::max),
        cpus.iter().sum::<f64>() / n,
        limits.max_load,
        cons.iter().max().unwrap_or(&0),
        cons.iter().sum::<usize>() as f64 / n,
        limits
            .max_consumers
            .map_or("none".into(), |m| m.to_string()),
    );
    let _ = writeln!(
        t,
        "rooms spanning > 1 worker: {spanning}; most workers of one room: {max_span}"
    );
    t
}

fn per_worker(o: &Outcome) -> String {
    let mut t = String::from(
        "| core | routers | consumers | of which pipe | streams in | CPU (of one core) |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for (core, m) in &o.workers {
        let _ = writeln!(
            t,
            "| {core} | {} | {} | {} | {} | {:.3} |",
            m.routers,
            m.consumers,
            m.pipe_consumers,
            m.ingest,
            m.cpu()
        );
    }
    t
}

#[test]
fn placement_keeps_every_worker_of_a_32_core_node_under_its_limits() {
    let limits = Limits::default();
    assert_eq!(
        (limits.max_load, limits.max_consumers, limits.grow_at),
        (0.8, Some(2000), 0.3)
    );
    let mut report = String::new();
    let _ = writeln!(
        report,
        "16 workers (cores 6-21), seed {SEED:#x}, limits: worker_max_load {}, worker_max_consumers \
         2000, rooms grow onto another worker past {} of the limits; {:.6} core per consumer or \
         received stream (75 pkt/s at 167,106 pkt/s per core)\n",
        limits.max_load, limits.grow_at, CONSUMER_CPU
    );
    let _ = writeln!(
        report,
        "## The same mix, 50 to 500 rooms (the node holds ~28,500 consumer-equivalents at its limits)\n"
    );
    for count in [50, 100, 150, 200, 300] {
        let o = simulate(count, &limits);
        check_limits(&o, &limits);
        let _ = writeln!(report, "### {count} rooms\n{}", table(&o, &limits));
        if count <= 100 {
            // Below the node's capacity nothing is refused.
            assert_eq!(o.admitted, o.offered, "{count} rooms");
        } else {
            // Past it, refusals start only once the node is nearly at its limits.
            let (_, usage) = o.first_refusal.unwrap();
            assert!(usage > 0.75, "first refusal at {usage}");
        }
    }
    let o = simulate(500, &limits);
    check_limits(&o, &limits);
    let _ = writeln!(
        report,
        "### 500 rooms\n{}\n{}",
        table(&o, &limits),
        per_worker(&o)
    );
    // Without growing early (grow_at 1): rooms fill their worker and get stuck.
    let eager = Limits {
        grow_at: 1.0,
        ..limits
    };
    let _ = writeln!(
        report,
        "## Without growing early (grow_at 1.0), for comparison\n"
    );
    for count in [100, 500] {
        let o = simulate(count, &eager);
        check_limits(&o, &eager);
        let _ = writeln!(report, "### {count} rooms\n{}", table(&o, &eager));
    }
    println!("{report}");
    // The webinars' publishers join first and are admitted; big rooms span workers.
    for r in o.rooms.iter().filter(|r| r.kind == Kind::Webinar) {
        assert!(
            r.shape.producers() >= 2,
            "a webinar's publisher was admitted"
        );
    }
    assert!(o.rooms.iter().any(|r| r.shape.peers_on.len() > 1));
}
