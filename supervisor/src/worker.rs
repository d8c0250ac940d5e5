//! Worker processes and the typed API over their channel: [`Worker`] and [`Router`] handles.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use ferrosfu_fbs::{
    Event, HandlerId, LogLevel, MediaCounters, PROTOCOL_VERSION, ResourceUsage, RouterDump,
    RouterId, TypedRequest, UpdateSettings, WorkerDump, requests,
};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tracing::Instrument;

use crate::channel::{Channel, RequestError};

/// Exit code with which a worker reports bad settings; such a worker is not restarted.
pub const EXIT_BAD_SETTINGS: i32 = 42;

/// How to start a worker.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub bin: PathBuf,
    /// Core to pin to; `None` leaves the worker unpinned.
    pub core: Option<u32>,
    pub log_level: LogLevel,
    pub log_targets: Vec<String>,
    pub rtc_ports: (u16, u16),
    /// Default timeout of channel requests.
    pub request_timeout: Duration,
    /// How long to wait for `worker.running` after spawning.
    pub startup_timeout: Duration,
}

impl WorkerSettings {
    pub fn new(bin: PathBuf) -> Self {
        Self {
            bin,
            core: None,
            log_level: LogLevel::Info,
            log_targets: Vec::new(),
            rtc_ports: (40000, 49999),
            request_timeout: Duration::from_secs(5),
            startup_timeout: Duration::from_secs(10),
        }
    }
}

/// How a worker process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerExit {
    /// Exit code, or `None` when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Whether the supervisor asked for it (`close`/`kill`); otherwise the worker died.
    pub expected: bool,
}

impl std::fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => f.write_str("unknown exit"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start worker {bin}: {source}")]
    Exec {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("worker channel setup: {0}")]
    Channel(String),
    #[error("worker exited during startup ({0})")]
    ExitedEarly(WorkerExit),
    #[error("worker did not announce itself within {0:?}")]
    StartupTimeout(Duration),
    #[error("worker speaks protocol {got}, supervisor speaks {PROTOCOL_VERSION}")]
    ProtocolMismatch { got: u32 },
    /// The worker started but its WebRtcServer could not be created (its port is taken...).
    #[error("worker's WebRtcServer: {0}")]
    WebRtcServer(String),
}

impl SpawnError {
    /// A worker that failed because of its settings will fail the same way again.
    pub fn is_bad_settings(&self) -> bool {
        matches!(self, SpawnError::ExitedEarly(e) if e.code == Some(EXIT_BAD_SETTINGS))
    }
}

/// A running worker process. Cheap to clone; every clone is the same worker.
#[derive(Clone, Debug)]
pub struct Worker {
    inner: Arc<WorkerInner>,
}

#[derive(Debug)]
struct WorkerInner {
    pid: u32,
    core: Option<u32>,
    started_at: SystemTime,
    channel: Channel,
    request_timeout: Duration,
    exit: watch::Receiver<Option<WorkerExit>>,
    /// Set before the supervisor closes or kills the worker, so its exit is not a death.
    expected_exit: Arc<AtomicBool>,
    /// Consumers open on the worker (see [`Worker::count_consumer`]).
    consumers: Arc<AtomicUsize>,
}

/// A fd number >= 10, so that dup2 onto 3 and 4 in the child never clobbers the other one.
fn high_fd(fd: OwnedFd) -> Result<OwnedFd, SpawnError> {
    let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(10))
        .map_err(|e| SpawnError::Channel(format!("fcntl: {e}")))?;
    // SAFETY: fcntl returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

impl Worker {
    /// Spawns a worker and waits until it announces `worker.running`.
    ///
    /// Must be called from a task on a runtime thread that lives as long as the worker (not from
    /// `spawn_blocking`): `PR_SET_PDEATHSIG` fires when the *thread* that forked exits.
    pub async fn spawn(settings: &WorkerSettings) -> Result<Worker, SpawnError> {
        let pipe = || {
            nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| SpawnError::Channel(format!("pipe: {e}")))
        };
        let (to_worker_r, to_worker_w) = pipe()?;
        let (from_worker_r, from_worker_w) = pipe()?;
        let (child_in, child_out) = (high_fd(to_worker_r)?, high_fd(from_worker_w)?);
        let (in_fd, out_fd) = (child_in.as_raw_fd(), child_out.as_raw_fd());

        let mut cmd = tokio::process::Command::new(&settings.bin);
        if let Some(core) = settings.core {
            cmd.arg("--core").arg(core.to_string());
        }
        cmd.arg("--log-level")
            .arg(settings.log_level.as_str())
            .arg("--log-targets")
            .arg(settings.log_targets.join(","))
            .arg("--rtc-ports")
            .arg(format!("{}-{}", settings.rtc_ports.0, settings.rtc_ports.1))
            .env("FERROSFU_PARENT_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        // SAFETY: only dup2 (async-signal-safe) runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(in_fd, 3) < 0 || libc::dup2(out_fd, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| SpawnError::Exec {
            bin: settings.bin.clone(),
            source,
        })?;
        drop((child_in, child_out));
        let pid = child.id().unwrap_or(0);
        let core_label = settings.core.map_or(-1, i64::from);
        let span = tracing::info_span!("worker", core = core_label, pid);

        // stdout/stderr lines go to tracing with the worker's span.
        for (stream, is_err) in [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                false,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                true,
            ),
        ] {
            if let Some(s) = stream {
                tokio::spawn(
                    async move {
                        let mut lines = BufReader::new(s).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if is_err {
                                tracing::warn!(target: "worker", stream = "stderr", "{line}");
                            } else {
                                tracing::info!(target: "worker", stream = "stdout", "{line}");
                            }
                        }
                    }
                    .instrument(span.clone()),
                );
            }
        }

        let reader = pipe::Receiver::from_owned_fd(from_worker_r)
            .map_err(|e| SpawnError::Channel(e.to_string()))?;
        let writer = pipe::Sender::from_owned_fd(to_worker_w)
            .map_err(|e| SpawnError::Channel(e.to_string()))?;
        let (channel, mut notes) = Channel::start(reader, writer, span.clone());

        let expected_exit = Arc::new(AtomicBool::new(false));
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn({
            let expected = expected_exit.clone();
            async move {
                use std::os::unix::process::ExitStatusExt;
                let status = child.wait().await;
                let exit = match status {
                    Ok(s) => WorkerExit {
                        code: s.code(),
                        signal: s.signal(),
                        expected: expected.load(Ordering::Acquire),
                    },
                    Err(_) => WorkerExit {
                        code: None,
                        signal: None,
                        expected: false,
                    },
                };
                exit_tx.send_replace(Some(exit));
            }
            .instrument(span.clone())
        });

        let worker = Worker {
            inner: Arc::new(WorkerInner {
                pid,
                core: settings.core,
                started_at: SystemTime::now(),
                channel,
                request_timeout: settings.request_timeout,
                exit: exit_rx,
                expected_exit,
                consumers: Arc::default(),
            }),
        };

        // Wait for worker.running, or the worker's early death.
        let running = async {
            loop {
                match notes.recv().await {
                    Ok(n) => {
                        if let Event::WorkerRunning(r) = n.event {
                            return Ok(r);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Err(()),
                }
            }
        };
        let mut exit = worker.inner.exit.clone();
        let outcome = tokio::time::timeout(settings.startup_timeout, async {
            tokio::select! {
                r = running => r.ok(),
                _ = exit.wait_for(Option::is_some) => None,
            }
        })
        .await;
        match outcome {
            Ok(Some(r)) if r.protocol_version != PROTOCOL_VERSION => {
                worker.kill();
                Err(SpawnError::ProtocolMismatch {
                    got: r.protocol_version,
                })
            }
            Ok(Some(_)) => {
                tracing::info!(parent: &span, "worker running");
                Ok(worker)
            }
            Ok(None) => {
                let exit = worker.wait_exit().await;
                Err(SpawnError::ExitedEarly(exit))
            }
            Err(_) => {
                worker.kill();
                Err(SpawnError::StartupTimeout(settings.startup_timeout))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    pub fn core(&self) -> Option<u32> {
        self.inner.core
    }

    pub fn started_at(&self) -> SystemTime {
        self.inner.started_at
    }

    pub fn channel(&self) -> &Channel {
        &self.inner.channel
    }

    /// `Some` once the process has exited.
    pub fn exit(&self) -> Option<WorkerExit> {
        self.inner.exit.borrow().clone()
    }

    pub fn is_alive(&self) -> bool {
        self.exit().is_none()
    }

    /// Consumers open on this worker, as the typed media API created and closed them (placement
    /// and `/metrics` read it; nothing asks the worker).
    pub fn consumers(&self) -> usize {
        self.inner.consumers.load(Ordering::Relaxed)
    }

    /// Counts one consumer on this worker until the returned guard is dropped (the media API
    /// drops it when the consumer closes).
    pub fn count_consumer(&self) -> ConsumerCount {
        self.inner.consumers.fetch_add(1, Ordering::Relaxed);
        ConsumerCount(self.inner.consumers.clone())
    }

    /// Resolves when the process has exited (reaped).
    pub async fn wait_exit(&self) -> WorkerExit {
        let mut rx = self.inner.exit.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().expect("wait_for returned a Some"),
            Err(_) => WorkerExit {
                code: None,
                signal: None,
                expected: false,
            },
        }
    }

    /// Resolves when the worker dies (exits without the supervisor asking); never resolves for
    /// a worker that is closed or killed on purpose.
    pub async fn died(&self) -> WorkerExit {
        let exit = self.wait_exit().await;
        if exit.expected {
            std::future::pending::<()>().await;
        }
        exit
    }

    /// A request to this worker (see [`Channel::request`]): `R`'s typed response.
    pub async fn request<R: TypedRequest>(
        &self,
        handler: HandlerId,
        request: R,
    ) -> Result<R::Response, RequestError> {
        self.inner
            .channel
            .request(handler, request, self.inner.request_timeout)
            .await
    }

    pub async fn dump(&self) -> Result<WorkerDump, RequestError> {
        self.request(HandlerId::worker(), requests::WorkerDump)
            .await
    }

    pub async fn get_resource_usage(&self) -> Result<ResourceUsage, RequestError> {
        self.request(HandlerId::worker(), requests::WorkerGetResourceUsage)
            .await
    }

    /// What the worker's media engine counted since it started (sequence validation, DTLS
    /// failures, datagrams that reached nothing).
    pub async fn get_media_counters(&self) -> Result<MediaCounters, RequestError> {
        self.request(HandlerId::worker(), requests::WorkerGetMediaCounters)
            .await
            .map(|c| *c)
    }

    /// Changes the worker's log level and targets at run time.
    pub async fn update_settings(&self, settings: UpdateSettings) -> Result<(), RequestError> {
        self.request(
            HandlerId::worker(),
            requests::WorkerUpdateSettings(settings),
        )
        .await
    }

    /// Creates a router with a fresh id.
    pub async fn create_router(&self) -> Result<Router, RequestError> {
        self.create_router_with_id(RouterId::new(new_id())).await
    }

    pub async fn create_router_with_id(&self, id: RouterId) -> Result<Router, RequestError> {
        self.request(
            HandlerId::worker(),
            requests::WorkerCreateRouter {
                router_id: id.clone(),
            },
        )
        .await?;
        Ok(Router {
            inner: Arc::new(RouterInner {
                id,
                worker: self.clone(),
                closed: watch::channel(false).0,
                pipes: Default::default(),
            }),
        })
    }

    /// Asks the worker to close, waits up to `grace` for it to exit, then kills it.
    pub async fn close(&self, grace: Duration) -> WorkerExit {
        self.inner.expected_exit.store(true, Ordering::Release);
        if self.is_alive() {
            let _ = self
                .inner
                .channel
                .request(HandlerId::worker(), requests::WorkerClose, grace)
                .await;
        }
        match tokio::time::timeout(grace, self.wait_exit()).await {
            Ok(exit) => exit,
            Err(_) => {
                tracing::warn!(
                    pid = self.pid(),
                    "worker did not exit in {grace:?}; killing it"
                );
                self.kill();
                self.wait_exit().await
            }
        }
    }

    /// A handle over a scripted channel, for tests of the typed API without a process. Its
    /// pid is 0, which `kill` never signals; the returned sender plays the process exit.
    #[cfg(test)]
    pub(crate) fn scripted(channel: Channel) -> (Worker, watch::Sender<Option<WorkerExit>>) {
        let (exit_tx, exit) = watch::channel(None);
        let inner = WorkerInner {
            pid: 0,
            core: None,
            started_at: SystemTime::now(),
            channel,
            request_timeout: Duration::from_secs(5),
            exit,
            expected_exit: Arc::new(AtomicBool::new(false)),
            consumers: Arc::default(),
        };
        (
            Worker {
                inner: Arc::new(inner),
            },
            exit_tx,
        )
    }

    /// SIGKILLs the worker (an expected exit).
    pub fn kill(&self) {
        self.inner.expected_exit.store(true, Ordering::Release);
        // pid 0 would signal our own process group.
        if self.is_alive() && self.inner.pid != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.inner.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// One consumer counted on its worker; dropping it uncounts it.
#[derive(Debug)]
pub struct ConsumerCount(Arc<AtomicUsize>);

impl Drop for ConsumerCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a router stopped existing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouterClosed {
    /// `Router::close` was called.
    Closed,
    /// Its worker died; everything on it is gone.
    WorkerDied(WorkerExit),
}

/// A router on a worker. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Router {
    pub(crate) inner: Arc<RouterInner>,
}

#[derive(Debug)]
pub(crate) struct RouterInner {
    id: RouterId,
    worker: Worker,
    closed: watch::Sender<bool>,
    /// Its PipeTransports and what was piped into it (`crate::media::pipe`).
    pub(crate) pipes: Arc<tokio::sync::Mutex<crate::media::RouterPipes>>,
}

impl Router {
    pub fn id(&self) -> &RouterId {
        &self.inner.id
    }

    pub fn worker(&self) -> &Worker {
        &self.inner.worker
    }

    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow() || !self.inner.worker.is_alive()
    }

    pub async fn dump(&self) -> Result<RouterDump, RequestError> {
        self.inner
            .worker
            .request((&self.inner.id).into(), requests::RouterDump)
            .await
    }

    /// Closes the router and everything in it. Closing twice is a no-op.
    pub async fn close(&self) -> Result<(), RequestError> {
        if self.inner.closed.send_replace(true) || !self.inner.worker.is_alive() {
            return Ok(());
        }
        self.inner
            .worker
            .request((&self.inner.id).into(), requests::RouterClose)
            .await
    }

    /// Resolves when the router closes: by `close`, or because its worker died.
    pub async fn closed(&self) -> RouterClosed {
        let mut closed = self.inner.closed.subscribe();
        tokio::select! {
            _ = closed.wait_for(|c| *c) => RouterClosed::Closed,
            exit = self.inner.worker.died() => RouterClosed::WorkerDied(exit),
        }
    }
}

/// A random 128-bit id in UUID v4 text form.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    if getrandom(&mut b).is_err() {
        // Fall back to time and a counter: ids must be unique, not secret.
        use std::sync::atomic::AtomicU64;
        static N: AtomicU64 = AtomicU64::new(0);
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        b[..8].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
        b[8..].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n as usize == buf.len() {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
