//! The write queue and the one task that applies it.
//!
//! `Queue::push` never blocks: it numbers the write and puts it on a bounded channel (a full
//! channel drops the write and counts it). One background task takes the writes in order and
//! applies each in its own transaction. A failure retrying can fix (the database is down,
//! restarting, busy) keeps that write at the head and retries it with backoff, forever: the
//! writes behind it wait, so order is kept. A failure retrying cannot fix (a constraint
//! violation, a value the database refuses) drops that write with an error log. After each
//! write is applied or dropped, its number is published on a watch channel: `flush` waits for
//! the number of the last write queued before it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::error::ErrorKind;
use sqlx::types::Json;
use tokio::sync::{mpsc, watch};

use super::db::{Pool, on_pool, sql};
use super::{Backend, StoreStats, Write};

/// Writes that may wait; more are dropped.
pub(super) const CAPACITY: usize = 65_536;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// At most one "queue full" warning per this period.
const DROP_WARNING_PERIOD: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Counters {
    applied: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    failing: AtomicBool,
}

/// The producer side, owned by the store.
#[derive(Debug)]
pub(super) struct Queue {
    tx: mpsc::Sender<(u64, Write)>,
    /// Number of the last write queued. Taken around `try_send` so that numbers follow the
    /// channel's order even with concurrent callers.
    last_queued: Mutex<u64>,
    /// Number of the last write applied or dropped by the writer.
    done: watch::Receiver<u64>,
    counters: Arc<Counters>,
    shutdown: watch::Sender<bool>,
    last_drop_warning: Mutex<Option<Instant>>,
}

impl Queue {
    /// Starts the writer task on the current tokio runtime.
    pub(super) fn start(pool: Pool, capacity: usize) -> Queue {
        let (tx, rx) = mpsc::channel(capacity);
        let (done_tx, done) = watch::channel(0);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            backend: pool.backend(),
            pool,
            rx,
            done: done_tx,
            counters: counters.clone(),
            shutdown: shutdown_rx,
            failing_since: None,
            failed_attempts: 0,
        };
        tokio::spawn(writer.run());
        Queue {
            tx,
            last_queued: Mutex::new(0),
            done,
            counters,
            shutdown,
            last_drop_warning: Mutex::new(None),
        }
    }

    pub(super) fn push(&self, w: Write) {
        let refused = {
            let mut last = self
                .last_queued
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match self.tx.try_send((*last + 1, w)) {
                Ok(()) => {
                    *last += 1;
                    None
                }
                Err(mpsc::error::TrySendError::Full((_, w))) => Some(("queue full", w)),
                Err(mpsc::error::TrySendError::Closed((_, w))) => Some(("store closed", w)),
            }
        };
        if let Some((why, w)) = refused {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let mut last = self
                .last_drop_warning
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_none_or(|t| t.elapsed() >= DROP_WARNING_PERIOD) {
                *last = Some(Instant::now());
                tracing::warn!(target: "store", reason = why, write = %Described(&w), dropped_total = dropped,
                    "write dropped (warned at most every {DROP_WARNING_PERIOD:?})");
            }
        }
    }

    pub(super) async fn flush(&self, timeout: Duration) -> bool {
        let target = *self
            .last_queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut done = self.done.clone();
        let waited = tokio::time::timeout(timeout, done.wait_for(|d| *d >= target))
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(true) => true,
            // The writer is gone (the store was closed): done is final.
            Ok(false) => *done.borrow() >= target,
            Err(_) => false,
        }
    }

    pub(super) fn stats(&self) -> StoreStats {
        let queued = *self
            .last_queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let done = *self.done.borrow();
        let c = &self.counters;
        StoreStats {
            queued: queued.saturating_sub(done),
            applied: c.applied.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            failing: c.failing.load(Ordering::Relaxed),
        }
    }

    /// Stops the writer (a write being retried is abandoned) and refuses further writes.
    pub(super) fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }
}

struct Writer {
    backend: Backend,
    pool: Pool,
    rx: mpsc::Receiver<(u64, Write)>,
    done: watch::Sender<u64>,
    counters: Arc<Counters>,
    shutdown: watch::Receiver<bool>,
    failing_since: Option<Instant>,
    failed_attempts: u64,
}

/// Resolves when shutdown is requested; never when the store is dropped without `close` (the
/// writer then drains the queue and ends with the channel).
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Writer {
    async fn run(mut self) {
        let mut shutdown = self.shutdown.clone();
        loop {
            let next = tokio::select! {
                biased;
                () = shutdown_requested(&mut shutdown) => break,
                next = self.rx.recv() => next,
            };
            let Some((seq, w)) = next else { break };
            tokio::select! {
                biased;
                () = shutdown_requested(&mut shutdown) => {
                    tracing::warn!(target: "store", write = %Described(&w), "store closed while a write was pending; not applied");
                    break;
                }
                () = self.apply_with_retry(&w) => {}
            }
            self.done.send_replace(seq);
        }
        self.rx.close();
        let left = self.rx.len();
        if left > 0 {
            tracing::warn!(target: "store", writes = left, "store closed with writes queued; not applied");
        }
    }

    async fn apply_with_retry(&mut self, w: &Write) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let result = apply(&self.pool, w).await;
            let transient = match &result {
                Ok(()) => false,
                Err(e) => is_transient(self.backend, e),
            };
            if !transient {
                // The database answered: it is reachable again, whatever it said.
                self.counters.failing.store(false, Ordering::Relaxed);
                if let Some(since) = self.failing_since.take() {
                    tracing::info!(target: "store", outage = ?since.elapsed(), failed_attempts = self.failed_attempts,
                        "database writes recovered");
                    self.failed_attempts = 0;
                }
            }
            match result {
                Ok(()) => {
                    self.counters.applied.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) if transient => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    self.counters.failing.store(true, Ordering::Relaxed);
                    self.failed_attempts += 1;
                    if self.failing_since.is_none() {
                        self.failing_since = Some(Instant::now());
                        tracing::warn!(target: "store", error = %e, write = %Described(w),
                            "database write failed; retrying with backoff, later writes wait");
                    } else {
                        tracing::debug!(target: "store", error = %e, ?backoff, "database write failed again");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(target: "store", error = %e, write = %Described(w),
                        "database rejected a write; dropped");
                    return;
                }
            }
        }
    }
}

/// Applies one write in one transaction.
async fn apply(pool: &Pool, w: &Write) -> Result<(), sqlx::Error> {
    on_pool!(pool, p => {
        let mut tx = p.begin().await?;
        match w {
            Write::MeetingStarted { id, code, creator, settings, at } => {
                if let Some(u) = creator {
                    sqlx::query(sql::UPSERT_USER)
                        .bind(&u.id)
                        .bind(&u.display_name)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(sql::START_MEETING)
                    .bind(id)
                    .bind(code)
                    .bind(creator.as_ref().map(|u| u.id.as_str()))
                    .bind(at)
                    .bind(Json(settings))
                    .execute(&mut *tx)
                    .await?;
            }
            Write::MeetingEnded { code, at } => {
                sqlx::query(sql::END_MEETING).bind(code).bind(at).execute(&mut *tx).await?;
            }
            Write::MeetingSettings { code, settings } => {
                sqlx::query(sql::MEETING_SETTINGS)
                    .bind(code)
                    .bind(Json(settings))
                    .execute(&mut *tx)
                    .await?;
            }
            Write::MeetingsInterrupted { at } => {
                sqlx::query(sql::INTERRUPT_PARTICIPANTS).bind(at).execute(&mut *tx).await?;
                sqlx::query(sql::INTERRUPT_MEETINGS).bind(at).execute(&mut *tx).await?;
            }
            Write::ParticipantJoined { id, meeting_code, user, display_name, at } => {
                sqlx::query(sql::UPSERT_USER)
                    .bind(&user.id)
                    .bind(&user.display_name)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql::INSERT_PARTICIPANT)
                    .bind(id)
                    .bind(meeting_code)
                    .bind(&user.id)
                    .bind(display_name)
                    .bind(at)
                    .bind(Json(serde_json::json!({})))
                    .execute(&mut *tx)
                    .await?;
            }
            Write::ParticipantLeft { id, at, stats } => {
                sqlx::query(sql::PARTICIPANT_LEFT)
                    .bind(id)
                    .bind(at)
                    .bind(Json(stats))
                    .execute(&mut *tx)
                    .await?;
            }
            Write::MediaTrackCreated { id, participant_id, kind, codec, parameters, at } => {
                sqlx::query(sql::INSERT_MEDIA_TRACK)
                    .bind(id)
                    .bind(participant_id)
                    .bind(kind)
                    .bind(codec)
                    .bind(Json(parameters))
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::RecordingCreated { id, meeting_code, storage_path, status, metadata, at } => {
                sqlx::query(sql::INSERT_RECORDING)
                    .bind(id)
                    .bind(meeting_code)
                    .bind(storage_path)
                    .bind(status.as_str())
                    .bind(at)
                    .bind(Json(metadata))
                    .execute(&mut *tx)
                    .await?;
            }
            Write::RecordingUpdated { id, status, size_bytes, duration_seconds, metadata, storage_url } => {
                sqlx::query(sql::UPDATE_RECORDING)
                    .bind(id)
                    .bind(status.as_str())
                    .bind(size_bytes)
                    .bind(duration_seconds)
                    .bind(Json(metadata))
                    .bind(storage_url)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::TranscriptFinal { id, participant_id, producer_id, text, started_at, ended_at } => {
                sqlx::query(sql::INSERT_TRANSCRIPT)
                    .bind(id)
                    .bind(participant_id)
                    .bind(producer_id)
                    .bind(text)
                    .bind(started_at)
                    .bind(ended_at)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::ChatMessageSent { id, participant_id, display_name, text, at } => {
                sqlx::query(sql::INSERT_CHAT_MESSAGE)
                    .bind(id)
                    .bind(participant_id)
                    .bind(display_name)
                    .bind(at)
                    .bind(text)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await
    })
}

/// Whether retrying the same write later can succeed: the database is unreachable, shutting
/// down, restarting, overloaded or busy. Everything the database refuses on the merits
/// (constraints, types, syntax) is final.
fn is_transient(backend: Backend, e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            if matches!(
                db.kind(),
                ErrorKind::UniqueViolation
                    | ErrorKind::ForeignKeyViolation
                    | ErrorKind::NotNullViolation
                    | ErrorKind::CheckViolation
                    | ErrorKind::ExclusionViolation
            ) {
                return false;
            }
            let Some(code) = db.code() else {
                return false;
            };
            match backend {
                // SQLSTATE classes: 08 connection exception, 53 insufficient resources,
                // 57P01..57P05 shutdown / crash / starting up, 40 transaction rollback
                // (serialization failure, deadlock), 58 system (I/O) error.
                Backend::Postgres => ["08", "53", "57P", "40", "58"]
                    .iter()
                    .any(|p| code.starts_with(p)),
                // Primary result codes: BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL.
                Backend::Sqlite => code
                    .parse::<i32>()
                    .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15)),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Configuration(_)
        | sqlx::Error::InvalidArgument(_)
        | sqlx::Error::RowNotFound
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Encode(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::AnyDriverError(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Migrate(_)
        | sqlx::Error::InvalidSavePointStatement
        | sqlx::Error::ConfigFile(_) => false,
        // A kind this code does not know: keep the write (a stalled queue shows in the logs
        // and in `failing`; a silently dropped write would not).
        _ => true,
    }
}

/// A write for logs: its kind and ids, without the JSON payloads.
struct Described<'a>(&'a Write);

impl std::fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Write::MeetingStarted { code, .. } => write!(f, "MeetingStarted({code})"),
            Write::MeetingEnded { code, .. } => write!(f, "MeetingEnded({code})"),
            Write::MeetingSettings { code, .. } => write!(f, "MeetingSettings({code})"),
            Write::MeetingsInterrupted { .. } => write!(f, "MeetingsInterrupted"),
            Write::ParticipantJoined {
                id, meeting_code, ..
            } => write!(f, "ParticipantJoined({id} in {meeting_code})"),
            Write::ParticipantLeft { id, .. } => write!(f, "ParticipantLeft({id})"),
            Write::MediaTrackCreated {
                id, participant_id, ..
            } => write!(f, "MediaTrackCreated({id} of {participant_id})"),
            Write::RecordingCreated {
                id, meeting_code, ..
            } => write!(f, "RecordingCreated({id} in {meeting_code})"),
            Write::RecordingUpdated { id, status, .. } => {
                write!(f, "RecordingUpdated({id} → {})", status.as_str())
            }
            // Never the text: logs are not the place for what people said.
            Write::TranscriptFinal {
                id,
                participant_id,
                text,
                ..
            } => write!(
                f,
                "TranscriptFinal({id} of {participant_id}, {} bytes)",
                text.len()
            ),
            Write::ChatMessageSent {
                id,
                participant_id,
                text,
                ..
            } => write!(
                f,
                "ChatMessageSent({id} by {participant_id}, {} bytes)",
                text.len()
            ),
        }
    }
}
