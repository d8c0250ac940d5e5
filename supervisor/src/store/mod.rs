//! Persistence with sqlx: SQLite (`sqlite://PATH`, the file and its directory created on first
//! run) or PostgreSQL (`postgres://…`), chosen by the URL; migrations for both run at startup.
//!
//! SKELETON: the contract the rest of the supervisor codes against. Bodies to be written.

mod types;

use std::time::Duration;

pub use types::{
    MediaTrackRow, MeetingRow, ParticipantRow, RecordingRow, RecordingStatus, StoreStats, UserRef,
    Write,
};

/// Which database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("bad database url {0:?}: expected sqlite://PATH or postgres://…")]
    Url(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

impl Store {
    /// Connects and runs the migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let _ = url;
        Err(StoreError::Url(url.to_owned()))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Queues a write; never blocks, never fails (see the module docs).
    pub fn write(&self, w: Write) {
        let _ = w;
    }

    /// Waits until every write queued before this call is applied; false after `timeout`.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let _ = timeout;
        true
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    pub async fn recording(&self, id: &str) -> Result<Option<RecordingRow>, StoreError> {
        let _ = id;
        Ok(None)
    }

    /// Newest first; only the meeting with this code when given.
    pub async fn recordings(
        &self,
        meeting_code: Option<&str>,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let _ = meeting_code;
        Ok(Vec::new())
    }

    /// Recordings in one of these states (startup recovery).
    pub async fn recordings_with_status(
        &self,
        statuses: &[RecordingStatus],
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let _ = statuses;
        Ok(Vec::new())
    }

    pub async fn meeting(&self, code: &str) -> Result<Option<MeetingRow>, StoreError> {
        let _ = code;
        Ok(None)
    }

    /// Participants of the meeting with this code, by join time.
    pub async fn participants(
        &self,
        meeting_code: &str,
    ) -> Result<Vec<ParticipantRow>, StoreError> {
        let _ = meeting_code;
        Ok(Vec::new())
    }

    pub async fn media_tracks(
        &self,
        participant_id: &str,
    ) -> Result<Vec<MediaTrackRow>, StoreError> {
        let _ = participant_id;
        Ok(Vec::new())
    }

    /// Flushes (at most `timeout`) and closes the pool.
    pub async fn close(&self, timeout: Duration) {
        let _ = self.flush(timeout).await;
    }
}
