//! The worker pool: one pinned worker per configured core, restarted when it dies. With a
//! [`WebRtcServerSpec`], every worker gets its WebRtcServer (one UDP and one TCP port) before it
//! is handed out, and a restarted worker gets it again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

use ferrosfu_fbs::{
    LogLevel, TransportProtocol, UpdateSettings, WebRtcServerId, WebRtcServerOptions,
};

use crate::load::{self, LoadTracker};
use crate::media::WebRtcServer;
use crate::placement::WorkerLoad;
use crate::worker::{SpawnError, Worker, WorkerExit, WorkerSettings, new_id};

/// One WebRtcServer per worker: the worker at index `i` of the pool (cores in ascending order)
/// listens on UDP and TCP port `base_port + i` of every address of `listen` (UDP of all of them
/// first: UDP candidates get the higher ICE priority).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebRtcServerSpec {
    pub listen: Vec<crate::config::MediaAddr>,
    pub base_port: u16,
}

impl WebRtcServerSpec {
    /// The port of the worker at `index`; None when it would pass 65535.
    pub fn port(&self, index: usize) -> Option<u16> {
        u16::try_from(index)
            .ok()
            .and_then(|i| self.base_port.checked_add(i))
    }

    fn options(&self, index: usize) -> Result<WebRtcServerOptions, SpawnError> {
        let port = self.port(index).ok_or_else(|| {
            SpawnError::WebRtcServer(format!(
                "port {} + worker index {index} is past 65535",
                self.base_port
            ))
        })?;
        let listen_infos = [TransportProtocol::Udp, TransportProtocol::Tcp]
            .into_iter()
            .flat_map(|protocol| {
                self.listen
                    .iter()
                    .map(move |a| a.listen_info(protocol, port))
            })
            .collect();
        Ok(WebRtcServerOptions {
            web_rtc_server_id: WebRtcServerId::new(new_id()),
            listen_infos,
        })
    }
}

/// Spawns a worker and, with a spec, its WebRtcServer (a worker whose server fails is killed).
async fn spawn(
    settings: &WorkerSettings,
    server: Option<(&WebRtcServerSpec, usize)>,
) -> Result<(Worker, Option<WebRtcServer>), SpawnError> {
    let worker = Worker::spawn(settings).await?;
    let Some((spec, index)) = server else {
        return Ok((worker, None));
    };
    let created = match spec.options(index) {
        Ok(o) => WebRtcServer::create(&worker, o)
            .await
            .map_err(|e| SpawnError::WebRtcServer(e.to_string())),
        Err(e) => Err(e),
    };
    match created {
        Ok(s) => Ok((worker, Some(s))),
        Err(e) => {
            worker.kill();
            Err(e)
        }
    }
}

/// When and how often a dead worker is restarted.
#[derive(Clone, Debug)]
pub struct RestartPolicy {
    /// At most this many restarts per core in any 60 s window; past it the core waits until the
    /// oldest restart leaves the window.
    pub max_per_minute: u32,
    /// Delay before the 2nd restart within the window; doubles for each further one. The first
    /// restart is immediate.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long `close` waits for a worker to exit before killing it.
    pub close_grace: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_per_minute: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            close_grace: Duration::from_secs(3),
        }
    }
}

impl RestartPolicy {
    /// Delay before a restart, given how many restarts already happened in the window.
    pub fn backoff(&self, restarts_in_window: u32) -> Duration {
        if restarts_in_window == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (restarts_in_window - 1).min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Something that happened to the pool's workers.
#[derive(Clone, Debug)]
pub enum PoolEvent {
    /// A worker exited without being asked to. Everything on it (routers...) is gone.
    WorkerDied {
        core: u32,
        pid: u32,
        exit: WorkerExit,
    },
    /// A replacement worker runs on `core`.
    WorkerRestarted { core: u32, pid: u32, restarts: u32 },
    /// `core` gave up: its worker cannot start (bad settings).
    CoreFailed { core: u32, reason: String },
}

/// What `/api/workers` shows for one core.
#[derive(Clone, Debug)]
pub struct WorkerInfo {
    pub core: u32,
    /// `None` while the core has no running worker (between a death and its restart).
    pub worker: Option<Worker>,
    /// The worker's WebRtcServer, when the pool has a [`WebRtcServerSpec`].
    pub webrtc_server: Option<WebRtcServer>,
    pub restarts: u32,
    pub started_at: Option<SystemTime>,
}

#[derive(Debug)]
struct Slot {
    core: u32,
    /// Position in the pool (cores in ascending order): picks the WebRtcServer port.
    index: usize,
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    worker: Option<Worker>,
    server: Option<WebRtcServer>,
    restarts: u32,
    recent: VecDeque<Instant>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The pool. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WorkerPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    slots: Vec<Arc<Slot>>,
    events: broadcast::Sender<PoolEvent>,
    stopping: watch::Sender<bool>,
    supervisors: Mutex<Option<JoinSet<()>>>,
    policy: RestartPolicy,
    server: Option<WebRtcServerSpec>,
    load: LoadTracker,
    /// The workers' log level and targets now (`PUT /api/log-level`); restarted workers start
    /// with them.
    worker_log: Mutex<(LogLevel, Vec<String>)>,
}

impl PoolInner {
    fn worker_log(&self) -> (LogLevel, Vec<String>) {
        self.worker_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl WorkerPool {
    /// Spawns one worker per core (in parallel), each with its WebRtcServer when `server` is
    /// given, and returns once all run. `base` gives every setting but the core.
    pub async fn start(
        base: WorkerSettings,
        cores: &[u32],
        policy: RestartPolicy,
        server: Option<WebRtcServerSpec>,
    ) -> Result<WorkerPool, (u32, SpawnError)> {
        let mut sorted = cores.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut spawns = JoinSet::new();
        for (index, &core) in sorted.iter().enumerate() {
            let mut s = base.clone();
            s.core = Some(core);
            let spec = server.clone();
            spawns.spawn(async move {
                let r = spawn(&s, spec.as_ref().map(|spec| (spec, index))).await;
                (core, r)
            });
        }
        let mut started = Vec::new();
        let mut failure = None;
        while let Some(res) = spawns.join_next().await {
            let (core, r) = res.expect("spawn task does not panic");
            match r {
                Ok(w) => started.push((core, w)),
                Err(e) => failure = failure.or(Some((core, e))),
            }
        }
        if let Some(f) = failure {
            for (_, (w, _)) in started {
                w.kill();
            }
            return Err(f);
        }
        started.sort_by_key(|(c, _)| *c);

        let (events, _) = broadcast::channel(256);
        let inner = Arc::new(PoolInner {
            slots: started
                .iter()
                .enumerate()
                .map(|(index, (core, (w, server)))| {
                    Arc::new(Slot {
                        core: *core,
                        index,
                        state: Mutex::new(SlotState {
                            worker: Some(w.clone()),
                            server: server.clone(),
                            ..Default::default()
                        }),
                    })
                })
                .collect(),
            events,
            stopping: watch::channel(false).0,
            supervisors: Mutex::new(None),
            policy,
            server,
            load: LoadTracker::default(),
            worker_log: Mutex::new((base.log_level, base.log_targets.clone())),
        });
        let mut set = JoinSet::new();
        set.spawn(track_load(inner.clone()));
        for slot in &inner.slots {
            let mut s = base.clone();
            s.core = Some(slot.core);
            set.spawn(supervise(inner.clone(), slot.clone(), s));
        }
        *inner.supervisors.lock().unwrap_or_else(|e| e.into_inner()) = Some(set);
        Ok(WorkerPool { inner })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<PoolEvent> {
        self.inner.events.subscribe()
    }

    /// One entry per core, in core order.
    pub fn snapshot(&self) -> Vec<WorkerInfo> {
        self.inner
            .slots
            .iter()
            .map(|slot| {
                let st = slot.lock();
                let worker = st.worker.clone().filter(Worker::is_alive);
                WorkerInfo {
                    core: slot.core,
                    started_at: worker.as_ref().map(Worker::started_at),
                    webrtc_server: worker.as_ref().and(st.server.clone()),
                    worker,
                    restarts: st.restarts,
                }
            })
            .collect()
    }

    /// Workers currently running.
    pub fn workers(&self) -> Vec<Worker> {
        self.snapshot()
            .into_iter()
            .filter_map(|i| i.worker)
            .collect()
    }

    /// Each core's load (CPU over the last 5 s, consumers, pending reservations), in core order.
    pub fn loads(&self) -> Vec<WorkerLoad> {
        self.inner.load.loads(&self.snapshot())
    }

    /// The workers' log level and targets now.
    pub fn worker_log(&self) -> (LogLevel, Vec<String>) {
        self.inner.worker_log()
    }

    /// Changes every running worker's log level and targets (`worker.update_settings`) and
    /// keeps them for workers started later. Answers how many workers took them; the first
    /// error of a worker that refused (bad targets are refused by every worker alike).
    pub async fn set_worker_log(
        &self,
        level: LogLevel,
        targets: Vec<String>,
    ) -> Result<usize, crate::RequestError> {
        let workers = self.workers();
        let mut done = 0;
        for w in &workers {
            w.update_settings(UpdateSettings {
                log_level: Some(level),
                log_targets: Some(targets.clone()),
            })
            .await?;
            done += 1;
        }
        *self
            .inner
            .worker_log
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (level, targets);
        Ok(done)
    }

    /// The load figures behind [`WorkerPool::loads`] (reservations, poll rounds).
    pub fn load_tracker(&self) -> &LoadTracker {
        &self.inner.load
    }

    pub fn size(&self) -> usize {
        self.inner.slots.len()
    }

    /// Stops restarting, closes every worker (kills those that do not exit within the grace
    /// period) and waits for all of them to be reaped.
    pub async fn close(&self) {
        self.inner.stopping.send_replace(true);
        let set = self
            .inner
            .supervisors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut set) = set {
            while set.join_next().await.is_some() {}
        }
        let grace = self.inner.policy.close_grace;
        let mut closing = JoinSet::new();
        for slot in &self.inner.slots {
            if let Some(w) = slot.lock().worker.clone() {
                closing.spawn(async move { w.close(grace).await });
            }
        }
        while closing.join_next().await.is_some() {}
    }
}

/// Asks every running worker for its resource usage once per [`load::POLL_PERIOD`], in
/// parallel, and records the answers, until the pool stops. A worker that does not answer
/// within the period is skipped that round.
async fn track_load(pool: Arc<PoolInner>) {
    let mut stopping = pool.stopping.subscribe();
    let mut tick = tokio::time::interval(load::POLL_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let mut asks = JoinSet::new();
        for slot in &pool.slots {
            let Some(w) = slot.lock().worker.clone().filter(Worker::is_alive) else {
                continue;
            };
            let core = slot.core;
            asks.spawn(async move {
                let u = tokio::time::timeout(load::POLL_PERIOD, w.get_resource_usage()).await;
                let u = u.ok()?.ok()?;
                Some((core, w.pid(), u.ru_utime + u.ru_stime))
            });
        }
        let mut samples = Vec::with_capacity(pool.slots.len());
        while let Some(r) = asks.join_next().await {
            if let Ok(Some(s)) = r {
                samples.push(s);
            }
        }
        pool.load.record(Instant::now(), &samples);
    }
}

/// Watches one core's worker and replaces it when it dies, until the pool stops.
async fn supervise(pool: Arc<PoolInner>, slot: Arc<Slot>, settings: WorkerSettings) {
    let mut stopping = pool.stopping.subscribe();
    let core = slot.core;
    loop {
        let Some(worker) = slot.lock().worker.clone() else {
            return;
        };
        let exit = tokio::select! {
            e = worker.died() => e,
            _ = stopping.wait_for(|s| *s) => return,
        };
        tracing::error!(
            core,
            pid = worker.pid(),
            "worker died ({exit}); restarting it"
        );
        let _ = pool.events.send(PoolEvent::WorkerDied {
            core,
            pid: worker.pid(),
            exit,
        });

        // Restart until one runs, or the pool stops, or the settings are hopeless.
        loop {
            let wait = {
                let mut st = slot.lock();
                let now = Instant::now();
                while st
                    .recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
                {
                    st.recent.pop_front();
                }
                let in_window = st.recent.len() as u32;
                if in_window >= pool.policy.max_per_minute {
                    let oldest = *st.recent.front().expect("window is not empty");
                    (oldest + Duration::from_secs(60)).saturating_duration_since(now)
                } else {
                    pool.policy.backoff(in_window)
                }
            };
            if !wait.is_zero() {
                tracing::warn!(core, "restarting worker in {wait:?}");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
            if *stopping.borrow() {
                return;
            }
            let settings = {
                let (level, targets) = pool.worker_log();
                WorkerSettings {
                    log_level: level,
                    log_targets: targets,
                    ..settings.clone()
                }
            };
            let spawned = spawn(&settings, pool.server.as_ref().map(|s| (s, slot.index))).await;
            let mut st = slot.lock();
            st.recent.push_back(Instant::now());
            match spawned {
                Ok((w, server)) => {
                    st.restarts += 1;
                    tracing::info!(
                        core,
                        pid = w.pid(),
                        restarts = st.restarts,
                        "worker restarted"
                    );
                    let _ = pool.events.send(PoolEvent::WorkerRestarted {
                        core,
                        pid: w.pid(),
                        restarts: st.restarts,
                    });
                    st.worker = Some(w);
                    st.server = server;
                    if *stopping.borrow() {
                        // close() may have snapshotted the slot before this worker existed.
                        if let Some(w) = st.worker.clone() {
                            w.kill();
                        }
                        return;
                    }
                    break;
                }
                Err(e) if e.is_bad_settings() => {
                    tracing::error!(core, "worker cannot start: {e}; giving up on this core");
                    let _ = pool.events.send(PoolEvent::CoreFailed {
                        core,
                        reason: e.to_string(),
                    });
                    st.worker = None;
                    st.server = None;
                    return;
                }
                Err(e) => tracing::error!(core, "worker restart failed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_immediate_then_doubles_to_a_cap() {
        let p = RestartPolicy::default();
        assert_eq!(p.backoff(0), Duration::ZERO);
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(9), Duration::from_secs(5));
        assert_eq!(p.backoff(100), Duration::from_secs(5));
    }

    #[test]
    fn each_worker_has_the_next_server_port() {
        let addr = |ip: std::net::IpAddr| crate::config::MediaAddr {
            ip,
            announced: None,
        };
        let spec = WebRtcServerSpec {
            listen: vec![
                addr(std::net::IpAddr::from([127, 0, 0, 1])),
                addr(std::net::Ipv6Addr::LOCALHOST.into()),
            ],
            base_port: 44444,
        };
        assert_eq!(spec.port(0), Some(44444));
        assert_eq!(spec.port(3), Some(44447));
        let o = spec.options(1).unwrap();
        let infos: Vec<_> = o
            .listen_infos
            .iter()
            .map(|l| (l.protocol, l.ip.as_str(), l.port))
            .collect();
        assert_eq!(
            infos,
            [
                (TransportProtocol::Udp, "127.0.0.1", 44445),
                (TransportProtocol::Udp, "::1", 44445),
                (TransportProtocol::Tcp, "127.0.0.1", 44445),
                (TransportProtocol::Tcp, "::1", 44445),
            ]
        );
        let top = WebRtcServerSpec {
            base_port: 65535,
            ..spec
        };
        assert_eq!(top.port(1), None);
        assert!(matches!(top.options(1), Err(SpawnError::WebRtcServer(_))));
    }
}
