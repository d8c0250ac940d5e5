//! The connection pool of either backend, opening it from a URL, and the SQL both share.
//!
//! Every statement is written once: `$N` placeholders work on SQLite through sqlx (it maps
//! `$N` to the N-th bound argument, like `?N`), `ON CONFLICT … DO UPDATE … excluded.` and
//! scalar subqueries mean the same on both, and the bound Rust types (`String`,
//! `DateTime<Utc>`, `Json<_>`, `Option<i64>`, `Option<f64>`) encode to the column type of each
//! backend (TIMESTAMPTZ/JSONB on PostgreSQL, TEXT on SQLite). [`on_pool!`] then instantiates
//! one piece of code for each pool type.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Backend, StoreError};

/// How long a pool waits for a connection (including reconnecting to a refused server, which
/// sqlx retries internally) before an operation fails with `PoolTimedOut`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite: how long a statement waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 4;

pub(super) static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// A pool of either backend.
#[derive(Clone, Debug)]
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool (`&SqlitePool` or `&PgPool`): the body is
/// written once and type-checked for each backend.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::db::Pool::Sqlite($p) => $body,
            $crate::store::db::Pool::Postgres($p) => $body,
        }
    };
}
pub(super) use on_pool;

impl Pool {
    pub(super) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    pub(super) async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }
}

/// Connects to `url` and runs that backend's migrations.
pub(super) async fn connect(url: &str) -> Result<Pool, StoreError> {
    let pool = if let Some(rest) = url.strip_prefix("sqlite:") {
        Pool::Sqlite(connect_sqlite(url, rest).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options =
            PgConnectOptions::from_str(url).map_err(|_| StoreError::Url(redact_url(url)))?;
        Pool::Postgres(
            PgPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?,
        )
    } else {
        return Err(StoreError::Url(redact_url(url)));
    };
    let migrated = match &pool {
        Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
        Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
    };
    if let Err(e) = migrated {
        pool.close().await;
        return Err(e.into());
    }
    Ok(pool)
}

/// `rest` is the URL after `sqlite:`: `//PATH`, `PATH`, `:memory:`, optionally `?params`.
async fn connect_sqlite(url: &str, rest: &str) -> Result<SqlitePool, StoreError> {
    let bad_url = || StoreError::Url(redact_url(url));
    let (database, params) = match rest.split_once('?') {
        Some((d, p)) => (d, Some(p)),
        None => (rest, None),
    };
    let database = database.strip_prefix("//").unwrap_or(database);
    let in_memory = database == ":memory:"
        || params.is_some_and(|p| p.split('&').any(|kv| kv == "mode=memory"));
    if database.is_empty() && !in_memory {
        return Err(bad_url());
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|_| bad_url())?
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool_options = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
    if in_memory {
        // The database lives as long as one connection to it: keep exactly one, forever.
        return Ok(pool_options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?);
    }
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    if let Some(dir) = options.get_filename().parent() {
        if !dir.as_os_str().is_empty() {
            tokio::fs::create_dir_all(dir).await?;
        }
    }
    Ok(pool_options
        .max_connections(MAX_CONNECTIONS)
        .connect_with(options)
        .await?)
}

/// The URL with its password (if any) replaced by `***`, for logs and errors.
pub(super) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// The statements, shared by both backends.
pub(super) mod sql {
    pub(in crate::store) const UPSERT_USER: &str = "INSERT INTO users (id, display_name, created_at) \
         VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name";

    /// A reopened room keeps its id, creator, settings and `started_at`.
    pub(in crate::store) const START_MEETING: &str = "INSERT INTO meetings \
         (id, meeting_code, creator_id, started_at, ended_at, settings, status) \
         VALUES ($1, $2, $3, $4, NULL, $5, 'active') \
         ON CONFLICT (meeting_code) DO UPDATE SET status = 'active', ended_at = NULL";

    pub(in crate::store) const MEETING_SETTINGS: &str =
        "UPDATE meetings SET settings = $2 WHERE meeting_code = $1";

    pub(in crate::store) const END_MEETING: &str =
        "UPDATE meetings SET status = 'ended', ended_at = $2 WHERE meeting_code = $1";

    pub(in crate::store) const INTERRUPT_PARTICIPANTS: &str =
        "UPDATE participants SET left_at = $1 WHERE left_at IS NULL";

    pub(in crate::store) const INTERRUPT_MEETINGS: &str =
        "UPDATE meetings SET status = 'ended', ended_at = $1 WHERE status = 'active'";

    /// The scalar subquery yields NULL for an unknown meeting code: a NOT NULL violation, so
    /// the write is rejected rather than silently inserting nothing. Inserts ignore an
    /// existing id so that retrying a write whose commit was acknowledged too late is harmless.
    pub(in crate::store) const INSERT_PARTICIPANT: &str = "INSERT INTO participants \
         (id, meeting_id, user_id, display_name, joined_at, left_at, stats) \
         VALUES ($1, (SELECT id FROM meetings WHERE meeting_code = $2), $3, $4, $5, NULL, $6) \
         ON CONFLICT (id) DO NOTHING";

    pub(in crate::store) const PARTICIPANT_LEFT: &str =
        "UPDATE participants SET left_at = $2, stats = $3 WHERE id = $1";

    pub(in crate::store) const INSERT_MEDIA_TRACK: &str = "INSERT INTO media_tracks \
         (id, participant_id, kind, codec, parameters, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO NOTHING";

    pub(in crate::store) const INSERT_RECORDING: &str = "INSERT INTO recordings \
         (id, meeting_id, storage_path, size_bytes, duration_seconds, status, created_at, metadata) \
         VALUES ($1, (SELECT id FROM meetings WHERE meeting_code = $2), $3, NULL, NULL, $4, $5, $6) \
         ON CONFLICT (id) DO NOTHING";

    pub(in crate::store) const UPDATE_RECORDING: &str = "UPDATE recordings SET status = $2, \
         size_bytes = COALESCE($3, size_bytes), \
         duration_seconds = COALESCE($4, duration_seconds), \
         metadata = $5, \
         storage_url = COALESCE($6, storage_url) \
         WHERE id = $1";

    /// The meeting is the participant's: an unknown participant gives NULL, a NOT NULL
    /// violation (rejected, like a participant of an unknown meeting).
    pub(in crate::store) const INSERT_CHAT_MESSAGE: &str = "INSERT INTO chat_messages \
         (id, meeting_id, participant_id, display_name, sent_at, text) \
         VALUES ($1, (SELECT meeting_id FROM participants WHERE id = $2), $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING";

    /// The meeting is the participant's (an unknown participant gives a NOT NULL violation).
    pub(in crate::store) const INSERT_TRANSCRIPT: &str = "INSERT INTO transcriptions \
         (id, meeting_id, participant_id, producer_id, text, started_at, ended_at) \
         VALUES ($1, (SELECT meeting_id FROM participants WHERE id = $2), $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO NOTHING";

    /// The captions of the meeting with code `$1` (its latest run when the code was reused:
    /// one meeting row per code), oldest first, at most `$2`.
    pub(in crate::store) const TRANSCRIPT: &str = "SELECT t.id, t.participant_id, \
         p.user_id, p.display_name, t.producer_id, t.text, t.started_at, t.ended_at \
         FROM transcriptions t \
         JOIN meetings m ON m.id = t.meeting_id \
         JOIN participants p ON p.id = t.participant_id \
         WHERE m.meeting_code = $1 ORDER BY t.started_at, t.id LIMIT $2";

    pub(in crate::store) const MEETING: &str = "SELECT id, meeting_code, creator_id, started_at, \
         ended_at, settings, status FROM meetings WHERE meeting_code = $1";

    pub(in crate::store) const PARTICIPANTS: &str = "SELECT p.id, p.meeting_id, p.user_id, \
         p.display_name, p.joined_at, p.left_at, p.stats \
         FROM participants p JOIN meetings m ON m.id = p.meeting_id \
         WHERE m.meeting_code = $1 ORDER BY p.joined_at, p.id";

    pub(in crate::store) const MEDIA_TRACKS: &str = "SELECT id, participant_id, kind, codec, \
         parameters, created_at FROM media_tracks \
         WHERE participant_id = $1 ORDER BY created_at, id";

    /// The last `$2` messages of the meeting with code `$1` (the newest by the index on
    /// `(meeting_id, sent_at)`), oldest first; messages of one instant in id order.
    pub(in crate::store) const CHAT_HISTORY: &str = "SELECT id, meeting_id, participant_id, \
         peer_id, display_name, sent_at, text FROM (\
         SELECT c.id, c.meeting_id, c.participant_id, p.user_id AS peer_id, c.display_name, \
         c.sent_at, c.text \
         FROM chat_messages c \
         JOIN meetings m ON m.id = c.meeting_id \
         JOIN participants p ON p.id = c.participant_id \
         WHERE m.meeting_code = $1 ORDER BY c.sent_at DESC, c.id DESC LIMIT $2\
         ) AS recent ORDER BY sent_at, id";

    /// The columns of a [`RecordingRow`](crate::store::RecordingRow), joined with its meeting.
    macro_rules! select_recordings {
        () => {
            "SELECT r.id, r.meeting_id, m.meeting_code, r.storage_path, r.size_bytes, \
             r.duration_seconds, r.status, r.created_at, r.metadata, r.storage_url \
             FROM recordings r JOIN meetings m ON m.id = r.meeting_id"
        };
    }

    pub(in crate::store) const RECORDING: &str = concat!(select_recordings!(), " WHERE r.id = $1");

    /// `$1` NULL: every meeting.
    pub(in crate::store) const RECORDINGS: &str = concat!(
        select_recordings!(),
        " WHERE ($1 IS NULL OR m.meeting_code = $1) ORDER BY r.created_at DESC, r.id DESC"
    );

    /// One slot per status (there are five); unused slots are bound to NULL, which matches
    /// nothing.
    pub(in crate::store) const RECORDINGS_WITH_STATUS: &str = concat!(
        select_recordings!(),
        " WHERE r.status IN ($1, $2, $3, $4, $5, $6) ORDER BY r.created_at, r.id"
    );
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_password_only() {
        assert_eq!(
            redact_url("postgres://u:secret@db:5432/x?sslmode=disable"),
            "postgres://u:***@db:5432/x?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
        assert_eq!(redact_url("nonsense"), "nonsense");
        assert_eq!(
            redact_url("postgresql://u:p@ss@h/x"),
            "postgresql://u:***@h/x"
        );
    }
}
