//! Persistence with sqlx: SQLite (`sqlite://PATH`, the file and its directory created on first
//! run) or PostgreSQL (`postgres://…`), chosen by the URL; migrations for both run at startup
//! (`supervisor/migrations/{sqlite,postgres}`, embedded).
//!
//! Writes are typed ([`Write`]) and asynchronous: [`Store::write`] queues and returns at once;
//! one background task applies the queue in order, each write in its own transaction. When
//! the database is unreachable the write at the head is retried with backoff (100 ms doubling
//! to 5 s) until it succeeds, and the writes behind it wait; a write the database refuses on
//! the merits (a constraint violation) is logged and dropped. [`Store::flush`] waits for the
//! writes queued before it; [`Store::stats`] shows the queue. Reads go straight to the pool.
//!
//! Logs use the target `store`; URLs are logged with their password redacted.

mod db;
mod types;
mod writer;

#[cfg(test)]
mod checks;
#[cfg(test)]
mod tests;
/// `checks.rs` names it through `super::` (as `tests/tests/store_pg.rs` does).
#[cfg(test)]
use crate::chat::MAX_CHAT_BYTES;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

pub use types::{
    ChatRow, MediaTrackRow, MeetingRow, ParticipantRow, RecordingRow, RecordingStatus, StoreStats,
    TranscriptRow, UserRef, Write,
};

use db::{Pool, on_pool, sql};
use writer::Queue;

/// Which database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, bundled (`sqlite://PATH`).
    Sqlite,
    /// PostgreSQL (`postgres://…`).
    Postgres,
}

/// Why the store could not open or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported backend or cannot be parsed (password redacted).
    #[error("bad database url {0:?}: expected sqlite://PATH or postgres://…")]
    Url(String),
    /// The database failed or could not be reached.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Creating the SQLite file's directory failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The store. Cheap to clone; every clone shares the pool and the write queue.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    queue: Queue,
}

impl Store {
    /// Connects and runs the migrations. Must be called within a tokio runtime (the writer
    /// task is spawned on it).
    ///
    /// - `sqlite://PATH` or `sqlite:PATH` (relative or absolute): creates the file and its
    ///   directory if missing; WAL journal, foreign keys on, busy timeout 5 s.
    ///   `sqlite::memory:` gives a private in-memory database (tests).
    /// - `postgres://…` / `postgresql://…`: waits at most 5 s for a connection.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with_capacity(url, writer::CAPACITY).await
    }

    async fn open_with_capacity(url: &str, capacity: usize) -> Result<Store, StoreError> {
        let pool = db::connect(url).await?;
        let backend = pool.backend();
        tracing::info!(target: "store", url = %db::redact_url(url), ?backend, "store open, migrations applied");
        let queue = Queue::start(pool.clone(), capacity);
        Ok(Store {
            backend,
            inner: Arc::new(Inner { pool, queue }),
        })
    }

    /// The backend the URL chose.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Queues a write; never blocks, never fails (see the module docs). When the queue is full
    /// (or the store closed) the write is dropped and counted in [`StoreStats::dropped`].
    pub fn write(&self, w: Write) {
        self.inner.queue.push(w);
    }

    /// Waits until every write queued before this call is applied (or dropped because the
    /// database refused it); false after `timeout`.
    pub async fn flush(&self, timeout: Duration) -> bool {
        self.inner.queue.flush(timeout).await
    }

    /// The write queue's counters.
    pub fn stats(&self) -> StoreStats {
        self.inner.queue.stats()
    }

    /// The recording with this id.
    pub async fn recording(&self, id: &str) -> Result<Option<RecordingRow>, StoreError> {
        let row: Option<RecordingTuple> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(sql::RECORDING).bind(id).fetch_optional(p).await
        })?;
        Ok(row.map(recording_row))
    }

    /// Newest first; only the meeting with this code when given.
    pub async fn recordings(
        &self,
        meeting_code: Option<&str>,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let rows: Vec<RecordingTuple> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(sql::RECORDINGS).bind(meeting_code).fetch_all(p).await
        })?;
        Ok(rows.into_iter().map(recording_row).collect())
    }

    /// Recordings in one of these states (startup recovery), oldest first.
    pub async fn recordings_with_status(
        &self,
        statuses: &[RecordingStatus],
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let [s1, s2, s3, s4, s5, s6] = status_slots(statuses);
        let rows: Vec<RecordingTuple> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(sql::RECORDINGS_WITH_STATUS)
                .bind(s1)
                .bind(s2)
                .bind(s3)
                .bind(s4)
                .bind(s5)
                .bind(s6)
                .fetch_all(p)
                .await
        })?;
        Ok(rows.into_iter().map(recording_row).collect())
    }

    /// The meeting with this code.
    pub async fn meeting(&self, code: &str) -> Result<Option<MeetingRow>, StoreError> {
        let row: Option<MeetingTuple> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(sql::MEETING).bind(code).fetch_optional(p).await
        })?;
        Ok(row.map(
            |(id, meeting_code, creator_id, started_at, ended_at, Json(settings), status)| {
                MeetingRow {
                    id,
                    meeting_code,
                    creator_id,
                    started_at,
                    ended_at,
                    settings,
                    status,
                }
            },
        ))
    }

    /// Participants of the meeting with this code, by join time.
    pub async fn participants(
        &self,
        meeting_code: &str,
    ) -> Result<Vec<ParticipantRow>, StoreError> {
        let rows: Vec<ParticipantTuple> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(sql::PARTICIPANTS).bind(meeting_code).fetch_all(p).await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(id, meeting_id, user_id, display_name, joined_at, left_at, Json(stats))| {
                    ParticipantRow {
                        id,
                        meeting_id,
                        user_id,
                        display_name,
                        joined_at,
                        left_at,
                        stats,
                    }
                },
            )
            .collect())
    }

    /// Media tracks of this participant, by creation time.
    pub async fn media_tracks(
        &self,
        participant_id: &str,
    ) -> Result<Vec<MediaTrackRow>, StoreError> {
        let rows: Vec<MediaTrackTuple> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(sql::MEDIA_TRACKS).bind(participant_id).fetch_all(p).await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(id, participant_id, kind, codec, Json(parameters), created_at)| MediaTrackRow {
                    id,
                    participant_id,
                    kind,
                    codec,
                    parameters,
                    created_at,
                },
            )
            .collect())
    }

    /// The last `limit` chat messages of the meeting with this code, oldest first (empty for
    /// an unknown code: ask [`meeting`](Self::meeting) to tell the two apart).
    pub async fn chat_history(
        &self,
        meeting_code: &str,
        limit: usize,
    ) -> Result<Vec<ChatRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<ChatTuple> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(sql::CHAT_HISTORY)
                .bind(meeting_code)
                .bind(limit)
                .fetch_all(p)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(id, meeting_id, participant_id, peer_id, display_name, sent_at, text)| ChatRow {
                    id,
                    meeting_id,
                    participant_id,
                    peer_id,
                    display_name,
                    sent_at,
                    text,
                },
            )
            .collect())
    }

    /// The stored captions of the meeting with this code, oldest first, at most `limit`.
    pub async fn transcript(
        &self,
        meeting_code: &str,
        limit: usize,
    ) -> Result<Vec<TranscriptRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        type Tuple = (
            String,
            String,
            String,
            String,
            String,
            String,
            DateTime<Utc>,
            DateTime<Utc>,
        );
        let rows: Vec<Tuple> = on_pool!(&self.inner.pool, p => {
            sqlx::query_as(sql::TRANSCRIPT)
                .bind(meeting_code)
                .bind(limit)
                .fetch_all(p)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    participant_id,
                    peer_id,
                    display_name,
                    producer_id,
                    text,
                    started_at,
                    ended_at,
                )| {
                    TranscriptRow {
                        id,
                        participant_id,
                        peer_id,
                        display_name,
                        producer_id,
                        text,
                        started_at,
                        ended_at,
                    }
                },
            )
            .collect())
    }

    /// Flushes (at most `timeout`) and closes the pool. Writes still queued then are not
    /// applied (logged); later writes are dropped.
    pub async fn close(&self, timeout: Duration) {
        let flushed = self.flush(timeout).await;
        self.inner.queue.shut_down();
        self.inner.pool.close().await;
        tracing::info!(target: "store", flushed, "store closed");
    }
}

type MeetingTuple = (
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Json<Value>,
    String,
);

type ParticipantTuple = (
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Json<Value>,
);

type MediaTrackTuple = (String, String, String, String, Json<Value>, DateTime<Utc>);

type ChatTuple = (
    String,
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    String,
);

type RecordingTuple = (
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<f64>,
    String,
    DateTime<Utc>,
    Json<Value>,
    Option<String>,
);

fn recording_row(
    (
        id,
        meeting_id,
        meeting_code,
        storage_path,
        size_bytes,
        duration_seconds,
        status,
        created_at,
        Json(metadata),
        storage_url,
    ): RecordingTuple,
) -> RecordingRow {
    let status = RecordingStatus::parse(&status).unwrap_or_else(|| {
        tracing::warn!(target: "store", recording = %id, %status, "unknown recording status in the database; read as failed");
        RecordingStatus::Failed
    });
    RecordingRow {
        id,
        meeting_id,
        meeting_code,
        storage_path,
        size_bytes,
        duration_seconds,
        status,
        created_at,
        metadata,
        storage_url,
    }
}

/// The statuses as stored, one slot per distinct status (there are six), the rest `None`
/// (NULL matches nothing in `IN (…)`).
fn status_slots(statuses: &[RecordingStatus]) -> [Option<&'static str>; 6] {
    let mut slots = [None; 6];
    let mut n = 0;
    for s in statuses {
        let s = Some(s.as_str());
        if n < slots.len() && !slots[..n].contains(&s) {
            slots[n] = s;
            n += 1;
        }
    }
    slots
}
