//! Live captions: a room's speech to text, as it is spoken.
//!
//! A transcription tap per room (`POST /api/rooms/:roomId/transcription`, see `api.rs`) runs one
//! transcriber per audio producer of the room (`transcriber.rs`): the producer's Opus on a
//! loopback PlainTransport into a child on the recording cores (recording.ports and
//! recording.cores, shared with the recorders) that decodes it and runs the speech-to-text
//! engine of `[captions]` (`engine.rs`; default pocketsphinx, Debian's). Partial and final
//! hypotheses become `transcript` notifications to the room; final ones are stored
//! (`transcriptions`) and served by `GET /api/rooms/:roomId/transcript`.
//!
//! The tap looks at the room's audio producers every second: new ones get a transcriber (while
//! the node runs fewer than `captions.max_transcribers`, else they wait), closed ones lose it.
//! A transcriber whose child dies restarts it. The tap keeps a two-party call on the SFU (a
//! direct call's media never reaches the server) and ends when the room closes or turns out
//! end-to-end encrypted (the server has only ciphertext; starting one is refused then).

mod api;
mod engine;
mod transcriber;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;

pub(crate) use api::{ApiState, routes};

use crate::config::{CaptionEngine, CaptionsSettings};
use crate::recording::Recordings;
use crate::recording::ports::PortPool;
use crate::rooms::{Room, Rooms};

/// How often a tap looks for new and closed audio producers.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// A producer whose transcriber ended (it could not start) gets another one after this long.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// What every transcriber of the node shares.
#[derive(Debug)]
pub(crate) struct Shared {
    settings: CaptionsSettings,
    ports: Arc<PortPool>,
    cores: Vec<u32>,
    gst_launch: PathBuf,
    /// Transcribers running on this node.
    running: AtomicUsize,
}

/// One room's transcription.
#[derive(Debug)]
struct Tap {
    started_at: DateTime<Utc>,
    stop: watch::Sender<bool>,
    transcribers: Mutex<HashMap<String, Entry>>,
    waiting: Mutex<Vec<String>>,
}

#[derive(Debug)]
struct Entry {
    peer_id: String,
    status: Arc<transcriber::Status>,
    handle: tokio::task::JoinHandle<()>,
    started: Instant,
}

/// Why a transcription request failed: an HTTP status and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaptionsError(pub u16, pub String);

/// The node's transcription taps.
#[derive(Debug)]
pub(crate) struct Captions {
    shared: Arc<Shared>,
    rooms: Arc<Rooms>,
    taps: Mutex<HashMap<String, Arc<Tap>>>,
}

impl Captions {
    pub(crate) fn new(
        settings: CaptionsSettings,
        recordings: &Recordings,
        rooms: Arc<Rooms>,
    ) -> Arc<Self> {
        let (ports, cores, gst_launch) = recordings.children();
        Arc::new(Self {
            shared: Arc::new(Shared {
                settings,
                ports,
                cores,
                gst_launch,
                running: AtomicUsize::new(0),
            }),
            rooms,
            taps: Mutex::default(),
        })
    }

    /// Transcribers running on this node.
    pub(crate) fn running(&self) -> usize {
        self.shared.running.load(Ordering::Relaxed)
    }

    fn tap(&self, room_id: &str) -> Option<Arc<Tap>> {
        self.taps
            .lock()
            .expect("never held across a panic")
            .get(room_id)
            .cloned()
    }

    /// Starts transcribing `room_id` (idempotent: a running tap is answered as it is).
    pub(crate) async fn start(self: &Arc<Self>, room_id: &str) -> Result<Value, CaptionsError> {
        let room = self
            .rooms
            .get(room_id)
            .await
            .ok_or_else(|| CaptionsError(404, format!("room \"{room_id}\" not found")))?;
        if room.is_e2ee() {
            return Err(CaptionsError(
                409,
                format!(
                    "room \"{room_id}\" is end-to-end encrypted: the server has only ciphertext \
                     and cannot transcribe it"
                ),
            ));
        }
        if let Some(tap) = self.tap(room_id) {
            return Ok(self.state_of(room_id, &tap));
        }
        if self.running() >= self.shared.settings.max_transcribers {
            return Err(CaptionsError(
                503,
                format!(
                    "this node runs {} transcribers already (captions.max_transcribers)",
                    self.running()
                ),
            ));
        }
        let tap = Arc::new(Tap {
            started_at: Utc::now(),
            stop: watch::channel(false).0,
            transcribers: Mutex::default(),
            waiting: Mutex::default(),
        });
        self.taps
            .lock()
            .expect("never held across a panic")
            .insert(room_id.to_owned(), tap.clone());
        tracing::info!(target: "captions", room = room_id, "transcription started");
        tokio::spawn(self.clone().supervise(room, tap.clone()));
        Ok(self.state_of(room_id, &tap))
    }

    /// Stops transcribing `room_id`.
    pub(crate) fn stop(&self, room_id: &str) -> Result<Value, CaptionsError> {
        let tap = self
            .taps
            .lock()
            .expect("never held across a panic")
            .remove(room_id)
            .ok_or_else(|| {
                CaptionsError(404, format!("room \"{room_id}\" is not being transcribed"))
            })?;
        tap.stop.send_replace(true);
        tracing::info!(target: "captions", room = room_id, "transcription stopped");
        let mut v = self.state_of(room_id, &tap);
        v["active"] = json!(false);
        Ok(v)
    }

    /// The tap's state, or `{active: false}`.
    pub(crate) fn state(&self, room_id: &str) -> Value {
        match self.tap(room_id) {
            Some(tap) => self.state_of(room_id, &tap),
            None => json!({ "roomId": room_id, "active": false }),
        }
    }

    fn state_of(&self, room_id: &str, tap: &Tap) -> Value {
        let ts = tap.transcribers.lock().expect("never held across a panic");
        let mut transcribers: Vec<Value> = ts
            .iter()
            .filter(|(_, e)| !e.handle.is_finished())
            .map(|(id, e)| {
                let pid = e.status.pid.load(Ordering::Relaxed);
                json!({
                    "producerId": id,
                    "peerId": e.peer_id,
                    "pid": (pid != 0).then_some(pid),
                    "restarts": e.status.restarts.load(Ordering::Relaxed),
                })
            })
            .collect();
        transcribers.sort_by(|a, b| a["producerId"].as_str().cmp(&b["producerId"].as_str()));
        let engine = match &self.shared.settings.engine {
            CaptionEngine::Pipeline(_) => "pipeline",
            CaptionEngine::Command(_) => "command",
        };
        json!({
            "roomId": room_id,
            "active": !*tap.stop.borrow(),
            "startedAt": tap.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "engine": engine,
            "transcribers": transcribers,
            "waiting": *tap.waiting.lock().expect("never held across a panic"),
        })
    }

    /// The tap's task: transcribers follow the room's audio producers until it stops.
    async fn supervise(self: Arc<Self>, room: Arc<Room>, tap: Arc<Tap>) {
        let _sfu = room.hold_sfu().await;
        let started = (Instant::now(), tap.started_at);
        let mut stop = tap.stop.subscribe();
        loop {
            if room.is_closed() {
                break;
            }
            if room.is_e2ee() {
                tracing::warn!(target: "captions", room = %room.id, "the room is end-to-end encrypted: transcription stopped");
                break;
            }
            let sources = room.audio_sources().await;
            {
                let mut ts = tap.transcribers.lock().expect("never held across a panic");
                // Transcribers whose producer closed are gone; ones that could not start get
                // another chance later.
                ts.retain(|id, e| {
                    !e.handle.is_finished()
                        || (sources.iter().any(|s| s.producer.id().as_str() == id)
                            && e.started.elapsed() < RETRY_AFTER)
                });
                let mut waiting = Vec::new();
                for s in sources {
                    let id = s.producer.id().as_str().to_owned();
                    if ts.contains_key(&id) {
                        continue;
                    }
                    if self.running() >= self.shared.settings.max_transcribers {
                        waiting.push(id);
                        continue;
                    }
                    let status = Arc::new(transcriber::Status::default());
                    let shared = self.shared.clone();
                    shared.running.fetch_add(1, Ordering::Relaxed);
                    let peer_id = s.peer_id.clone();
                    let run = transcriber::run(
                        shared.clone(),
                        room.clone(),
                        s,
                        started,
                        status.clone(),
                        tap.stop.subscribe(),
                    );
                    let handle = tokio::spawn(async move {
                        run.await;
                        shared.running.fetch_sub(1, Ordering::Relaxed);
                    });
                    ts.insert(
                        id,
                        Entry {
                            peer_id,
                            status,
                            handle,
                            started: Instant::now(),
                        },
                    );
                }
                *tap.waiting.lock().expect("never held across a panic") = waiting;
            }
            tokio::select! {
                _ = tokio::time::sleep(SCAN_INTERVAL) => {}
                _ = async { stop.wait_for(|s| *s).await.is_ok() } => break,
            }
        }
        tap.stop.send_replace(true);
        let handles: Vec<_> = tap
            .transcribers
            .lock()
            .expect("never held across a panic")
            .drain()
            .map(|(_, e)| e.handle)
            .collect();
        futures_util::future::join_all(handles).await;
        let mut taps = self.taps.lock().expect("never held across a panic");
        if taps.get(&room.id).is_some_and(|t| Arc::ptr_eq(t, &tap)) {
            taps.remove(&room.id);
        }
    }
}
