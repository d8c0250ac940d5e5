//! Recording: a room's producers written to a file by a `gst-launch-1.0 -e` child.
//!
//! Per recording, each recorded producer gets a PlainTransport on the room's router (loopback,
//! comedia off, RTCP not muxed) connected to two loopback ports of the recorder, and a consumer
//! created paused. The recorder (pipeline chosen from the codecs, see `pipeline.rs`) is spawned
//! pinned to the recording cores; once its sockets are bound the consumers are resumed and a
//! keyframe is requested. Stopping sends SIGINT (end of stream: the muxer finalizes the file),
//! waits for the child, closes the transports and probes the file ([`probe`]) for its duration
//! and streams.
//!
//! Life of a recording: `starting` → `recording` → `finalizing` → [`uploading` →] `done` |
//! `failed` (`uploading` with `[recording.storage]`, see `upload.rs`). It
//! finalizes when asked (REST), when one of its producers (or consumers) closes, or when the
//! supervisor drains; a recorder that dies fails the recording and leaves the room alone.
//! Every state goes to the store (queued writes); recordings in progress are answered from
//! memory, finished ones from the store.

mod api;
pub(crate) mod loopback;
mod pipeline;
pub(crate) mod ports;
mod probe;
pub(crate) mod recorder;
mod storage;
mod upload;
mod view;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::{mpsc, watch};

pub use crate::container::{Container, ContainerPrefs};
pub(crate) use api::{ApiState, routes};
pub use pipeline::Codec;
pub use probe::{Probe, StreamInfo, probe};
pub use storage::{Storage, UploadError};

use crate::config::PortRange;
use crate::media::{Consumer, Transport};
use crate::ortc;
use crate::rooms::{RecordSource, Rooms};
use crate::store::{RecordingStatus, Store, Write};
use crate::worker::new_id;
use recorder::Recorder;
pub(crate) use view::{RecError, View};

/// How long a recorder may take to bind its sockets.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long probing a finished file may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a finished recording waits for its final row to be written before it is answered
/// from the store alone.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// What the recorder needs from the configuration.
#[derive(Clone, Debug)]
pub struct RecordingSettings {
    /// Absolute; created at startup.
    pub dir: PathBuf,
    /// Cores the recorder children are pinned to (empty: not pinned).
    pub cores: Vec<u32>,
    pub ports: PortRange,
    pub gst_launch: PathBuf,
    pub containers: ContainerPrefs,
    pub stop_timeout: Duration,
    /// A recording is finalized when it reaches this length (None: no limit).
    pub max_duration: Option<Duration>,
    /// Below this much free space in `dir` no recording starts and running ones are finalized
    /// (a full disk would leave every file unfinalized, and the SQLite store with it).
    pub min_free_disk: u64,
    /// Where finished recordings are uploaded (None: they stay in `dir`).
    pub storage: Option<crate::config::StorageSettings>,
}

/// How often running recordings look at the free disk space.
const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Free bytes for unprivileged writers on the file system of `dir`.
fn free_disk(dir: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.blocks_available().saturating_mul(st.fragment_size()))
}

/// What to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub peer_id: Option<String>,
    pub producer_ids: Vec<String>,
}

/// One recording in progress (or just finished, until its final row is written).
#[derive(Debug)]
struct Active {
    view: watch::Sender<View>,
    /// A stop request and its reason.
    stop: mpsc::Sender<&'static str>,
}

/// Every recording of this supervisor.
#[derive(Debug)]
pub(crate) struct Recordings {
    settings: RecordingSettings,
    store: Store,
    rooms: Arc<Rooms>,
    active: Mutex<HashMap<String, Arc<Active>>>,
    /// Shared with the transcribers (`crate::captions`).
    ports: Arc<ports::PortPool>,
    draining: AtomicBool,
    storage: Option<Arc<Storage>>,
    upload_slots: tokio::sync::Semaphore,
    done: AtomicU64,
    failed: AtomicU64,
}

/// What a running recording owns; released when it ends.
struct Setup {
    transports: Vec<Transport>,
    consumers: Vec<Consumer>,
    ports: Vec<u16>,
}

impl Recordings {
    pub(crate) fn new(
        settings: RecordingSettings,
        store: Store,
        rooms: Arc<Rooms>,
    ) -> Result<Arc<Self>, String> {
        let storage = match settings.storage.clone() {
            Some(s) => Some(Arc::new(Storage::new(s)?)),
            None => None,
        };
        Ok(Arc::new(Self {
            ports: Arc::new(ports::PortPool::new(settings.ports)),
            settings,
            storage,
            upload_slots: tokio::sync::Semaphore::new(upload::UPLOADS_AT_ONCE),
            store,
            rooms,
            active: Mutex::default(),
            draining: AtomicBool::new(false),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }))
    }

    /// What transcribers share with recorders: the ports, the cores, the launcher.
    pub(crate) fn children(&self) -> (Arc<ports::PortPool>, Vec<u32>, PathBuf) {
        (
            self.ports.clone(),
            self.settings.cores.clone(),
            self.settings.gst_launch.clone(),
        )
    }

    /// Recordings in memory whose recorder runs (uploads not counted).
    pub(crate) fn active_count(&self) -> usize {
        self.active
            .lock()
            .expect("never held across a panic")
            .values()
            .filter(|a| !a.view.borrow().status.is_settled())
            .count()
    }

    /// (done, failed) since start.
    pub(crate) fn finished_counts(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    fn active(&self, id: &str) -> Option<Arc<Active>> {
        self.active
            .lock()
            .expect("never held across a panic")
            .get(id)
            .cloned()
    }

    /// A recording by id: in memory while it runs, else from the store.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<View>, RecError> {
        if let Some(a) = self.active(id) {
            return Ok(Some(a.view.borrow().clone()));
        }
        let row = self
            .store
            .recording(id)
            .await
            .map_err(|e| RecError::new(503, format!("store: {e}")))?;
        Ok(row.map(View::from_row))
    }

    /// Every recording (of one room), newest first.
    pub(crate) async fn list(&self, room: Option<&str>) -> Result<Vec<View>, RecError> {
        let rows = self
            .store
            .recordings(room)
            .await
            .map_err(|e| RecError::new(503, format!("store: {e}")))?;
        let mut live: HashMap<String, View> = self
            .active
            .lock()
            .expect("never held across a panic")
            .values()
            .map(|a| a.view.borrow().clone())
            .filter(|v| room.is_none_or(|r| v.room_id == r))
            .map(|v| (v.id.clone(), v))
            .collect();
        let mut out: Vec<View> = rows
            .into_iter()
            .map(|r| live.remove(&r.id).unwrap_or_else(|| View::from_row(r)))
            .collect();
        out.extend(live.into_values());
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Stops a recording and waits until it is finalized (idempotent for finished ones); an
    /// upload that follows is not waited for.
    pub(crate) async fn stop(&self, id: &str) -> Result<Option<View>, RecError> {
        self.stop_for(id, "stopped").await
    }

    async fn stop_for(&self, id: &str, reason: &'static str) -> Result<Option<View>, RecError> {
        let Some(a) = self.active(id) else {
            return self.get(id).await;
        };
        let _ = a.stop.try_send(reason);
        let mut rx = a.view.subscribe();
        let v = match rx.wait_for(|v| v.status.is_settled()).await {
            Ok(v) => v.clone(),
            // The task ended (it always leaves a final view first).
            Err(_) => a.view.borrow().clone(),
        };
        Ok(Some(v))
    }

    /// Supervisor drain: no new recordings; every running one is finalized.
    pub(crate) async fn stop_all(&self) {
        self.draining.store(true, Ordering::Release);
        // Again until none is left: a start that passed the draining check just before it was
        // set registers its recording a moment later. (Bounded: a recording whose task is gone
        // cannot hold the drain.)
        for _ in 0..3 {
            let ids: Vec<String> = self
                .active
                .lock()
                .expect("never held across a panic")
                .iter()
                .filter(|(_, a)| !a.view.borrow().status.is_settled())
                .map(|(id, _)| id.clone())
                .collect();
            if ids.is_empty() {
                break;
            }
            tracing::info!(target: "recording", count = ids.len(), "finalizing recordings");
            let stops = ids.iter().map(|id| self.stop_for(id, "shutdown"));
            futures_util::future::join_all(stops).await;
        }
    }

    /// Starts recording `sel` in `room_id`: returns once the recorder listens and the
    /// consumers are resumed (status `recording`).
    pub(crate) async fn start(
        self: &Arc<Self>,
        room_id: &str,
        sel: Selection,
    ) -> Result<View, RecError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(RecError::new(503, "shutting down"));
        }
        if sel.peer_id.is_none() && sel.producer_ids.is_empty() {
            return Err(RecError::new(400, "give 'peerId' or 'producerIds'"));
        }
        let free = free_disk(&self.settings.dir)
            .map_err(|e| RecError::new(500, format!("recordings directory: {e}")))?;
        if free < self.settings.min_free_disk {
            return Err(RecError::new(
                507,
                format!(
                    "not enough free disk space for recordings: {} MiB free, {} MiB required",
                    free >> 20,
                    self.settings.min_free_disk >> 20
                ),
            ));
        }
        let room = self
            .rooms
            .get(room_id)
            .await
            .ok_or_else(|| RecError::new(404, format!("room \"{room_id}\" not found")))?;
        if room.is_e2ee() {
            return Err(RecError::new(
                409,
                format!(
                    "room \"{room_id}\" is end-to-end encrypted: the server has only ciphertext \
                     and cannot record it"
                ),
            ));
        }
        // A two-party call peer to peer comes back to the SFU first, and stays there while
        // the recording runs.
        let sfu = room.hold_sfu().await;
        let sources = room
            .recording_sources(sel.peer_id.as_deref(), &sel.producer_ids)
            .await?;
        let mut plans = Vec::new();
        for s in &sources {
            let params = loopback::consumer_params(room.rtp_capabilities(), &s.consumable)
                .map_err(|e| RecError::new(400, e))?;
            let codec = params.codecs.first().ok_or_else(|| {
                RecError::new(
                    400,
                    format!("producer {} has no codec", s.producer.id().as_str()),
                )
            })?;
            let c = Codec::from_mime(&codec.mime_type).ok_or_else(|| {
                RecError::new(400, format!("{} cannot be recorded", codec.mime_type))
            })?;
            plans.push((s.clone(), params.clone(), c));
        }
        let codecs: Vec<Codec> = plans.iter().map(|p| p.2).collect();
        let container = pipeline::choose_container(&codecs, self.settings.containers)
            .map_err(|e| RecError::new(400, e.to_string()))?;
        let id = new_id();
        let path = self
            .settings
            .dir
            .join(format!("{id}.{}", container.extension()));
        let audio_only = codecs.iter().all(|c| c.is_audio());
        let view = View {
            id: id.clone(),
            room_id: room_id.to_owned(),
            peer_id: sel.peer_id.clone(),
            producer_ids: sources
                .iter()
                .map(|s| s.producer.id().as_str().to_owned())
                .collect(),
            status: RecordingStatus::Starting,
            path: path.display().to_string(),
            size: None,
            duration: None,
            created_at: Utc::now(),
            error: None,
            recorder_pid: None,
            container: Some(container),
            mime_type: Some(container.mime(audio_only).to_owned()),
            stop_reason: None,
            storage_url: None,
            upload: None,
            tracks: plans
                .iter()
                .map(|(s, p, _)| {
                    let c = p.codecs.first();
                    json!({
                        "producerId": s.producer.id().as_str(),
                        "peerId": s.peer_id,
                        "kind": s.kind.as_str(),
                        "codec": c.map(|c| c.mime_type.clone()),
                        "payloadType": c.map(|c| c.payload_type),
                    })
                })
                .collect(),
            streams: Vec::new(),
        };
        self.store.write(Write::RecordingCreated {
            id: id.clone(),
            meeting_code: room_id.to_owned(),
            storage_path: view.path.clone(),
            status: RecordingStatus::Starting,
            metadata: view.metadata(),
            at: view.created_at,
        });
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let active = Arc::new(Active {
            view: watch::channel(view).0,
            stop: stop_tx,
        });
        self.active
            .lock()
            .expect("never held across a panic")
            .insert(id.clone(), active.clone());
        tracing::info!(target: "recording", recording = %id, room = room_id, tracks = plans.len(), ?container, "recording starting");

        let this = self.clone();
        match self.launch(&plans, container, &path).await {
            Ok((setup, recorder)) => {
                this.update(&active, |v| {
                    v.status = RecordingStatus::Recording;
                    v.recorder_pid = Some(recorder.pid());
                });
                let view = active.view.borrow().clone();
                tokio::spawn(async move {
                    this.run(active, setup, recorder, stop_rx).await;
                    drop(sfu);
                });
                Ok(view)
            }
            Err(e) => {
                tracing::warn!(target: "recording", recording = %id, "recording failed to start: {e}");
                self.finish(&active, |v| {
                    v.status = RecordingStatus::Failed;
                    v.error = Some(e.clone());
                });
                Err(RecError {
                    status: 500,
                    reason: format!("recording failed to start: {e}"),
                    id: Some(id),
                })
            }
        }
    }

    /// Transports, consumers and the recorder; on error everything made so far is released.
    async fn launch(
        &self,
        plans: &[(RecordSource, ortc::RtpParameters, Codec)],
        container: Container,
        path: &Path,
    ) -> Result<(Setup, Recorder), String> {
        let ports = self.ports.take(plans.len() * 2)?;
        let mut setup = Setup {
            transports: Vec::new(),
            consumers: Vec::new(),
            ports,
        };
        let r = self.launch_into(&mut setup, plans, container, path).await;
        match r {
            Ok(rec) => Ok((setup, rec)),
            Err(e) => {
                self.release(setup).await;
                Err(e)
            }
        }
    }

    async fn launch_into(
        &self,
        setup: &mut Setup,
        plans: &[(RecordSource, ortc::RtpParameters, Codec)],
        container: Container,
        path: &Path,
    ) -> Result<Recorder, String> {
        let mut tracks = Vec::new();
        for (i, (source, params, codec)) in plans.iter().enumerate() {
            let (rtp_port, rtcp_port) = (setup.ports[2 * i], setup.ports[2 * i + 1]);
            let (t, c) = loopback::consume(source, params, rtp_port, Some(rtcp_port)).await?;
            setup.transports.push(t);
            setup.consumers.push(c);
            let codec_params = params.codecs.first().ok_or("no codec")?;
            tracks.push(pipeline::TrackSpec {
                codec: *codec,
                payload_type: codec_params.payload_type,
                clock_rate: codec_params.clock_rate,
                rtp_port,
                rtcp_port,
            });
        }
        let args = pipeline::launch_args(&tracks, container, path).map_err(|e| e.to_string())?;
        let mut rec = Recorder::spawn(&self.settings.gst_launch, &args, &self.settings.cores)
            .map_err(|e| format!("{}: {e}", self.settings.gst_launch.display()))?;
        // Listening = every udpsrc bound.
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        loop {
            if recorder::udp_ports_bound(&setup.ports) {
                break;
            }
            tokio::select! {
                status = rec.wait() => {
                    return Err(format!(
                        "the recorder exited ({}) before listening: {}",
                        status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                        rec.tail().text()
                    ));
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if tokio::time::Instant::now() > deadline {
                let _ = rec.stop(Duration::from_secs(1)).await;
                return Err(format!(
                    "the recorder did not listen within {} s: {}",
                    LISTEN_TIMEOUT.as_secs(),
                    rec.tail().text()
                ));
            }
        }
        for c in &setup.consumers {
            c.resume().await.map_err(|e| format!("resume: {e}"))?;
            if c.kind() == ferrosfu_fbs::MediaKind::Video {
                let _ = c.request_key_frame().await;
            }
        }
        Ok(rec)
    }

    /// Closes the transports (their consumers go with them) and frees the ports.
    async fn release(&self, setup: Setup) {
        for t in &setup.transports {
            let _ = t.close().await;
        }
        self.ports.give_back(&setup.ports);
    }

    /// Changes the view and writes the new state.
    fn update(&self, a: &Active, f: impl FnOnce(&mut View)) {
        a.view.send_modify(f);
        let w = a.view.borrow().stored();
        self.store.write(w);
    }

    /// The final state: written, and the recording leaves memory once the store has it.
    fn finish(self: &Arc<Self>, a: &Arc<Active>, f: impl FnOnce(&mut View)) {
        self.update(a, |v| {
            f(v);
            v.recorder_pid = None;
        });
        let (id, status) = {
            let v = a.view.borrow();
            (v.id.clone(), v.status)
        };
        let counter = if status == RecordingStatus::Done {
            &self.done
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        tokio::spawn(async move {
            if this.store.flush(FLUSH_TIMEOUT).await {
                this.active
                    .lock()
                    .expect("never held across a panic")
                    .remove(&id);
            } else {
                // The database is away: keep answering from memory; the write is retried.
                tracing::warn!(target: "recording", recording = %id, "final state not yet stored");
                let this2 = this.clone();
                tokio::spawn(async move {
                    while !this2.store.flush(FLUSH_TIMEOUT).await {}
                    this2
                        .active
                        .lock()
                        .expect("never held across a panic")
                        .remove(&id);
                });
            }
        });
    }

    /// Runs a recording until it ends.
    async fn run(
        self: Arc<Self>,
        a: Arc<Active>,
        setup: Setup,
        mut rec: Recorder,
        mut stop: mpsc::Receiver<&'static str>,
    ) {
        let id = a.view.borrow().id.clone();
        let consumers = setup.consumers.clone();
        let source_closed = async move {
            let closes = consumers.iter().map(|c| Box::pin(c.closed()));
            futures_util::future::select_all(closes).await.0
        };
        enum End {
            Stop(&'static str),
            Exited(std::io::Result<std::process::ExitStatus>),
        }
        let max_duration = async {
            match self.settings.max_duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let dir = self.settings.dir.clone();
        let min_free = self.settings.min_free_disk;
        let low_disk = async move {
            loop {
                tokio::time::sleep(DISK_CHECK_INTERVAL).await;
                // An unreadable file system is left to the recorder's own errors.
                if free_disk(&dir).is_ok_and(|f| f < min_free) {
                    return;
                }
            }
        };
        let end = tokio::select! {
            why = stop.recv() => End::Stop(why.unwrap_or("stopped")),
            _ = max_duration => End::Stop("max duration"),
            _ = low_disk => {
                tracing::warn!(target: "recording", recording = %id, "free disk space below recording.min_free_disk_mb");
                End::Stop("low disk")
            }
            status = rec.wait() => End::Exited(status),
            reason = source_closed => {
                tracing::info!(target: "recording", recording = %id, ?reason, "a recorded stream closed");
                End::Stop("source closed")
            }
        };
        match end {
            End::Exited(status) => {
                let status = status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| e.to_string());
                let error = with_output(
                    format!("the recorder exited unexpectedly ({status})"),
                    &rec.tail().text(),
                );
                tracing::warn!(target: "recording", recording = %id, "{error}");
                self.release(setup).await;
                self.finish(&a, |v| {
                    v.status = RecordingStatus::Failed;
                    v.error = Some(error);
                });
            }
            End::Stop(why) => {
                tracing::info!(target: "recording", recording = %id, why, "finalizing");
                self.update(&a, |v| {
                    v.status = RecordingStatus::Finalizing;
                    v.stop_reason = Some(why.to_owned());
                });
                let stopped = rec.stop(self.settings.stop_timeout).await;
                self.release(setup).await;
                let path = PathBuf::from(&a.view.borrow().path);
                let outcome = match stopped {
                    Err(e) => Err(e),
                    Ok(s) if !s.success() => Err(with_output(
                        format!("the recorder exited with {s} while finalizing"),
                        &rec.tail().text(),
                    )),
                    Ok(_) => finalized(&path).await,
                };
                match outcome {
                    Ok((size, p)) => {
                        tracing::info!(target: "recording", recording = %id, size, duration = p.duration_seconds, "recording done");
                        self.file_ready(&a, |v| {
                            v.size = Some(size);
                            v.duration = Some(p.duration_seconds);
                            v.streams = p.streams;
                        });
                    }
                    Err(error) => {
                        tracing::warn!(target: "recording", recording = %id, "recording failed: {error}");
                        let size = std::fs::metadata(&path).ok().map(|m| m.len() as i64);
                        self.finish(&a, |v| {
                            v.status = RecordingStatus::Failed;
                            v.size = size;
                            v.error = Some(error);
                        });
                    }
                }
            }
        }
    }

    /// Startup: recordings an earlier run left unfinished (it was killed) are settled: a file
    /// that probes well is `done` (the recorder finalizes on its own when the supervisor
    /// dies), anything else `failed`. Only files under this recordings directory are touched.
    pub(crate) async fn recover(self: &Arc<Self>) {
        let rows = match self
            .store
            .recordings_with_status(&[
                RecordingStatus::Starting,
                RecordingStatus::Recording,
                RecordingStatus::Finalizing,
                RecordingStatus::Uploading,
            ])
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(target: "recording", "cannot look for unfinished recordings: {e}");
                return;
            }
        };
        for row in rows {
            if self.active(&row.id).is_some()
                || !Path::new(&row.storage_path).starts_with(&self.settings.dir)
            {
                continue;
            }
            let mut v = View::from_row(row);
            if v.status == RecordingStatus::Uploading {
                tracing::info!(target: "recording", recording = %v.id, "resuming the upload");
                self.resume(v);
                continue;
            }
            match finalized(Path::new(&v.path)).await {
                Ok((size, p)) => {
                    v.status = RecordingStatus::Done;
                    v.size = Some(size);
                    v.duration = Some(p.duration_seconds);
                    v.streams = p.streams;
                }
                Err(e) => {
                    v.status = RecordingStatus::Failed;
                    v.error = Some(format!(
                        "interrupted: the supervisor stopped before finalizing ({e})"
                    ));
                }
            }
            tracing::info!(target: "recording", recording = %v.id, status = v.status.as_str(), "unfinished recording settled");
            if v.status == RecordingStatus::Done && self.storage.is_some() {
                self.resume(v);
                continue;
            }
            self.store.write(v.stored());
        }
    }
}

/// An error with the recorder's last output lines, when it printed any.
fn with_output(error: String, output: &str) -> String {
    if output.is_empty() {
        error
    } else {
        format!("{error}: {output}")
    }
}

/// Size and probe of a finished file.
async fn finalized(path: &Path) -> Result<(i64, Probe), String> {
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size == 0 {
        return Err("the file is empty (no media arrived)".into());
    }
    let p = probe(path, PROBE_TIMEOUT).await?;
    Ok((i64::try_from(size).unwrap_or(i64::MAX), p))
}
