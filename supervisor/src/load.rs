//! Worker load: each worker's CPU share over the last 5 s and its consumer count, for placement
//! ([`crate::placement`]), `/api/workers`, `/metrics` and `/readyz`.
//!
//! The pool polls every running worker's `worker.getResourceUsage` (rusage user + system time)
//! once a second ([`POLL_PERIOD`]) and records it here; the CPU share is the CPU time spent
//! between the oldest and newest sample of the last [`WINDOW`] divided by the wall time between
//! them. Consumers are counted by the typed media API as they are created and closed
//! ([`crate::Worker::consumers`]): no request, no per-packet traffic. Joins in progress reserve
//! the consumers they expect ([`LoadTracker::reserve`]) until those exist.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::placement::WorkerLoad;
use crate::pool::WorkerInfo;

/// How often the pool asks each worker for its resource usage.
pub const POLL_PERIOD: Duration = Duration::from_secs(1);
/// The span the CPU share is measured over.
pub const WINDOW: Duration = Duration::from_secs(5);

/// CPU time samples of one worker process, newest last.
#[derive(Debug, Default)]
struct CpuWindow {
    pid: u32,
    /// (when, user + system CPU time in µs)
    samples: VecDeque<(Instant, u64)>,
}

impl CpuWindow {
    /// Adds a sample; a new pid (the worker was restarted) starts over.
    fn push(&mut self, pid: u32, at: Instant, cpu_us: u64) {
        if pid != self.pid {
            self.pid = pid;
            self.samples.clear();
        }
        self.samples.push_back((at, cpu_us));
        // Keep the newest sample at or before the window's start, so the window is full.
        while self.samples.len() > 2 && at.duration_since(self.samples[1].0) >= WINDOW {
            self.samples.pop_front();
        }
    }

    /// CPU share of one core between the oldest and newest sample (0 with fewer than two).
    fn share(&self) -> f64 {
        let (Some(&(t0, c0)), Some(&(t1, c1))) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let wall = t1.duration_since(t0).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        (c1.saturating_sub(c0) as f64 / 1e6 / wall).max(0.0)
    }
}

/// The pool's load figures. Shared by the pool's poll task and whoever reads them.
#[derive(Debug)]
pub struct LoadTracker {
    windows: Mutex<HashMap<u32, CpuWindow>>,
    pending: Arc<Mutex<HashMap<u32, usize>>>,
    /// Counts poll rounds, so tests and readers can wait for fresh figures.
    rounds: watch::Sender<u64>,
}

impl Default for LoadTracker {
    fn default() -> Self {
        Self {
            windows: Mutex::default(),
            pending: Arc::default(),
            rounds: watch::channel(0).0,
        }
    }
}

impl LoadTracker {
    /// Records one poll round: (core, pid, user + system µs) of each worker that answered.
    pub fn record(&self, at: Instant, samples: &[(u32, u32, u64)]) {
        {
            let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            for &(core, pid, cpu_us) in samples {
                w.entry(core).or_default().push(pid, at, cpu_us);
            }
        }
        self.rounds.send_modify(|n| *n += 1);
    }

    /// The CPU share of the worker on `core` over the last [`WINDOW`] (0 until two samples of
    /// its current process exist).
    pub fn cpu(&self, core: u32, pid: u32) -> f64 {
        let w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        w.get(&core)
            .filter(|w| w.pid == pid)
            .map_or(0.0, CpuWindow::share)
    }

    /// Poll rounds recorded so far; `rounds().wait_for(|n| *n >= k)` waits for fresh figures.
    pub fn rounds(&self) -> watch::Receiver<u64> {
        self.rounds.subscribe()
    }

    /// Reserves `consumers` on `core` for a join in progress: placement counts them as pending
    /// until the returned guard is dropped (when the join's consumers exist or it failed).
    pub fn reserve(&self, core: u32, consumers: usize) -> Reservation {
        *self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(core)
            .or_default() += consumers;
        Reservation {
            pending: self.pending.clone(),
            core,
            consumers,
        }
    }

    fn pending(&self, core: u32) -> usize {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.get(&core).copied().unwrap_or(0)
    }

    /// The load of each core of a pool snapshot (routers left at 0: the rooms know them).
    pub fn loads(&self, snapshot: &[WorkerInfo]) -> Vec<WorkerLoad> {
        snapshot
            .iter()
            .map(|info| {
                let worker = info.worker.as_ref().filter(|w| w.is_alive());
                WorkerLoad {
                    core: info.core,
                    pid: worker.map(|w| w.pid()),
                    cpu: worker.map_or(0.0, |w| self.cpu(info.core, w.pid())),
                    consumers: worker.map_or(0, |w| w.consumers()),
                    pending: self.pending(info.core),
                    routers: 0,
                    alive: worker.is_some(),
                }
            })
            .collect()
    }
}

/// Consumers reserved on a worker; released on drop.
#[derive(Debug)]
pub struct Reservation {
    pending: Arc<Mutex<HashMap<u32, usize>>>,
    core: u32,
    consumers: usize,
}

impl Reservation {
    /// One of the reserved consumers exists now (the worker's own count has it): no longer
    /// pending. False when none is left.
    pub fn release_one(&mut self) -> bool {
        if self.consumers == 0 {
            return false;
        }
        self.consumers -= 1;
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = p.get_mut(&self.core) {
            *n = n.saturating_sub(1);
        }
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = p.get_mut(&self.core) {
            *n = n.saturating_sub(self.consumers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_share_is_measured_over_the_last_five_seconds() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut w = CpuWindow::default();
        w.push(7, s(0), 0);
        assert_eq!(w.share(), 0.0, "one sample measures nothing");
        // 0.5 s of CPU per second for 3 s.
        for i in 1..=3 {
            w.push(7, s(i), i * 500_000);
        }
        assert!((w.share() - 0.5).abs() < 1e-9);
        // Then idle for 6 s: the busy seconds leave the window.
        for i in 4..=9 {
            w.push(7, s(i), 1_500_000);
        }
        assert_eq!(w.samples.front().unwrap().0, s(4));
        assert_eq!(w.share(), 0.0);
        // Busy again at a full core: 1 s of 5.
        w.push(7, s(10), 2_500_000);
        assert!((w.share() - 0.2).abs() < 1e-9);
        // A restarted worker (new pid) starts from nothing.
        w.push(8, s(11), 10);
        assert_eq!((w.samples.len(), w.share()), (1, 0.0));
    }

    #[test]
    fn the_tracker_keeps_a_window_per_core_and_forgets_an_old_pid() {
        let t = LoadTracker::default();
        let t0 = Instant::now();
        t.record(t0, &[(0, 10, 0), (1, 11, 0)]);
        t.record(
            t0 + Duration::from_secs(2),
            &[(0, 10, 1_000_000), (1, 11, 200_000)],
        );
        assert!((t.cpu(0, 10) - 0.5).abs() < 1e-9);
        assert!((t.cpu(1, 11) - 0.1).abs() < 1e-9);
        assert_eq!(
            t.cpu(0, 12),
            0.0,
            "another process on that core has no figure yet"
        );
        assert_eq!(*t.rounds().borrow(), 2);
    }

    /// The typed media API counts consumers on their worker as they open and close (by the
    /// user, by their producer, by their transport).
    #[tokio::test]
    async fn consumers_are_counted_while_open() {
        use crate::media::scripted::{ScriptedWorker, note};
        use crate::media::{CloseReason, Transport};
        use ferrosfu_fbs::{
            ConsumeOptions, ConsumerId, ConsumerType, ListenInfo, MediaEvent, MediaKind,
            PlainTransportOptions, ProducerId, TransportId, TransportProtocol,
        };

        let mut sw = ScriptedWorker::start();
        let router = sw.worker.create_router().await.unwrap();
        let t = Transport::create_plain(
            &router,
            PlainTransportOptions {
                transport_id: TransportId::new("t"),
                listen_info: ListenInfo {
                    protocol: TransportProtocol::Udp,
                    ip: "127.0.0.1".into(),
                    announced_address: None,
                    port: 0,
                },
                rtcp_listen_info: None,
                rtcp_mux: true,
                comedia: false,
                srtp_crypto_suite: None,
            },
        )
        .await
        .unwrap();
        let mut cs = Vec::new();
        for i in 0..3 {
            let o = ConsumeOptions {
                consumer_id: ConsumerId::new(format!("c{i}")),
                producer_id: ProducerId::new("p"),
                kind: MediaKind::Audio,
                rtp_parameters: Default::default(),
                consumable_rtp_encodings: vec![],
                paused: false,
                ignore_dtx: false,
                consumer_type: ConsumerType::Simple,
                preferred_layers: None,
            };
            cs.push(t.consume(o).await.unwrap());
        }
        assert_eq!(sw.worker.consumers(), 3);
        let worker = sw.worker.clone();
        let count_is = |n: usize| {
            let w = worker.clone();
            async move {
                while w.consumers() != n {
                    tokio::task::yield_now().await;
                }
            }
        };
        let wait = Duration::from_secs(10);
        cs[0].close().await.unwrap();
        tokio::time::timeout(wait, count_is(2)).await.unwrap();
        sw.send(&[note("c1", MediaEvent::ConsumerProducerClose)]);
        assert_eq!(cs[1].closed().await, CloseReason::ProducerClosed);
        tokio::time::timeout(wait, count_is(1)).await.unwrap();
        t.close().await.unwrap();
        tokio::time::timeout(wait, count_is(0)).await.unwrap();
        assert!(cs[2].is_closed());
    }

    #[test]
    fn reservations_are_pending_until_dropped() {
        let t = LoadTracker::default();
        let a = t.reserve(3, 40);
        let b = t.reserve(3, 2);
        assert_eq!(t.pending(3), 42);
        drop(a);
        assert_eq!(t.pending(3), 2);
        drop(b);
        assert_eq!((t.pending(3), t.pending(4)), (0, 0));
    }
}
