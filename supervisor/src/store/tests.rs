//! The store against SQLite: the shared behaviour checks (`checks.rs`, also run against
//! PostgreSQL by `tests/tests/store_pg.rs`) plus what is SQLite- or queue-specific.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

use super::checks::{self, flushed, meeting_started, t};
use super::db::Pool;
use super::{RecordingStatus, Store, StoreError, Write, status_slots};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "ferrosfu-store-test-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// `sqlite://DIR/sub/store.db`: the `sub` directory does not exist yet.
    fn url(&self) -> String {
        format!("sqlite://{}", self.db_path().display())
    }

    fn db_path(&self) -> PathBuf {
        self.0.join("sub").join("store.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn open(dir: &TempDir) -> Store {
    Store::open(&dir.url()).await.expect("open sqlite store")
}

/// A second connection to the store's file holding the write lock until dropped.
async fn lock_exclusively(path: &Path) -> SqliteConnection {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("second connection");
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut conn)
        .await
        .expect("exclusive lock");
    conn
}

#[tokio::test]
async fn creates_file_and_directory_and_migrations_are_idempotent() {
    let dir = TempDir::new();
    assert!(!dir.db_path().exists());
    checks::migrations_twice(&dir.url()).await;
    assert!(dir.db_path().is_file());
    // `sqlite:PATH` (no slashes) names the same file.
    let store = Store::open(&format!("sqlite:{}", dir.db_path().display()))
        .await
        .expect("open sqlite:PATH");
    assert!(store.meeting("mig").await.expect("read").is_some());
    store.close(Duration::from_secs(5)).await;
}

/// Migration 0003 rebuilds the recordings table (SQLite cannot change its status CHECK): rows
/// of a database made by 0001-0002 survive it, and `uploading` is then allowed.
#[tokio::test]
async fn recordings_survive_the_storage_migration() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.db_path().parent().unwrap()).unwrap();
    let mut conn = SqliteConnection::connect(&format!("{}?mode=rwc", dir.url()))
        .await
        .expect("connect");
    super::db::SQLITE_MIGRATIONS
        .run_to(2, &mut conn)
        .await
        .expect("0001-0002");
    for q in [
        "INSERT INTO meetings (id, meeting_code, creator_id, settings, status, started_at) \
         VALUES ('old-m', 'old', NULL, '{}', 'ended', '2026-01-01T00:00:00Z')",
        "INSERT INTO recordings (id, meeting_id, storage_path, size_bytes, duration_seconds, \
         status, created_at, metadata) VALUES ('old-r', 'old-m', '/rec/old-r.ogg', 42, 1.5, \
         'done', '2026-01-01T00:00:01Z', '{\"container\":\"ogg\"}')",
    ] {
        sqlx::query(q).execute(&mut conn).await.expect(q);
    }
    conn.close().await.expect("close");

    let store = open(&dir).await;
    let r = store.recording("old-r").await.expect("read").expect("kept");
    assert_eq!(
        (
            r.storage_path.as_str(),
            r.size_bytes,
            r.duration_seconds,
            r.status
        ),
        ("/rec/old-r.ogg", Some(42), Some(1.5), RecordingStatus::Done)
    );
    assert_eq!(r.metadata, json!({ "container": "ogg" }));
    assert_eq!(r.storage_url, None);
    store.write(Write::RecordingUpdated {
        id: "old-r".into(),
        status: RecordingStatus::Uploading,
        size_bytes: None,
        duration_seconds: None,
        metadata: json!({}),
        storage_url: None,
    });
    flushed(&store).await;
    let r = store.recording("old-r").await.expect("read").expect("kept");
    assert_eq!(r.status, RecordingStatus::Uploading);
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn sqlite_connections_use_wal_foreign_keys_and_busy_timeout() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    assert_eq!(store.backend(), super::Backend::Sqlite);
    let Pool::Sqlite(pool) = &store.inner.pool else {
        panic!("sqlite pool expected");
    };
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .expect("foreign_keys");
    assert_eq!(fk, 1);
    let (busy,): (i64,) = sqlx::query_as("PRAGMA busy_timeout")
        .fetch_one(pool)
        .await
        .expect("busy_timeout");
    assert!(busy >= 1000, "busy_timeout {busy} ms");
    // The contract's tables and columns, as other tests query them.
    for (table, columns) in [
        ("users", "id, display_name, created_at"),
        (
            "meetings",
            "id, meeting_code, creator_id, started_at, ended_at, settings, status",
        ),
        (
            "participants",
            "id, meeting_id, user_id, display_name, joined_at, left_at, stats",
        ),
        (
            "media_tracks",
            "id, participant_id, kind, codec, parameters, created_at",
        ),
        (
            "recordings",
            "id, meeting_id, storage_path, size_bytes, duration_seconds, status, created_at, metadata, storage_url",
        ),
        (
            "chat_messages",
            "id, meeting_id, participant_id, display_name, sent_at, text",
        ),
    ] {
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                .bind(table)
                .fetch_all(pool)
                .await
                .expect("table_info");
        let names: Vec<_> = names.into_iter().map(|(n,)| n).collect();
        assert_eq!(names.join(", "), columns, "{table}");
    }
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn every_write_and_read() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    checks::every_write_and_read(&store).await;
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn meeting_reopen_keeps_id_and_start() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    checks::meeting_reopen(&store).await;
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn meetings_interrupted_ends_meetings_and_participants() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    checks::meetings_interrupted(&store).await;
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn rejected_write_is_dropped_without_stalling_the_queue() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    checks::rejected_write_does_not_stall(&store).await;
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn json_round_trip() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    checks::json_round_trip(&store).await;
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn chat_history_is_the_last_messages_in_order() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    checks::chat_history_last_in_order(&store).await;
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn chat_text_is_bounded_and_kept_byte_for_byte() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    checks::chat_text_bounds(&store).await;
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn captions_are_stored_and_read_in_order() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    checks::transcripts(&store).await;
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn chat_history_survives_a_restart() {
    let dir = TempDir::new();
    checks::chat_survives_reopen(&dir.url(), || ()).await;
}

#[tokio::test]
async fn all_checks_on_one_in_memory_database() {
    let store = Store::open("sqlite::memory:")
        .await
        .expect("in-memory store");
    checks::all(&store).await;
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn flush_waits_for_a_locked_database_and_order_is_kept() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    assert!(store.flush(Duration::ZERO).await, "nothing queued");
    let lock = lock_exclusively(&dir.db_path()).await;
    store.write(meeting_started("lk-m", "lk", None, 0));
    store.write(checks::joined("lk-p", "lk", checks::user("lk-u", "U"), 1));
    store.write(Write::ParticipantLeft {
        id: "lk-p".into(),
        at: t(2),
        stats: json!({ "n": 1 }),
    });
    assert!(!store.flush(Duration::from_millis(200)).await);
    assert_eq!(store.stats().queued, 3);
    drop(lock); // rolls back and releases the lock
    flushed(&store).await;
    let ps = store.participants("lk").await.expect("read");
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].left_at, Some(t(2)));
    assert_eq!(store.stats().queued, 0);
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn full_queue_drops_and_counts_without_blocking() {
    let dir = TempDir::new();
    let store = Store::open_with_capacity(&dir.url(), 4)
        .await
        .expect("open");
    let lock = lock_exclusively(&dir.db_path()).await;
    for i in 0..10 {
        store.write(meeting_started(
            &format!("full-{i}"),
            &format!("full-{i}"),
            None,
            i,
        ));
    }
    // Four wait in the queue, one may already be in the writer's hands.
    let dropped = store.stats().dropped;
    assert!((5..=6).contains(&dropped), "dropped {dropped}");
    drop(lock);
    flushed(&store).await;
    let stats = store.stats();
    assert_eq!(stats.applied + stats.dropped, 10, "{stats:?}");
    assert_eq!(stats.queued, 0);
    assert!(store.meeting("full-0").await.expect("read").is_some());
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn writes_after_close_are_dropped() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    store.close(Duration::from_secs(5)).await;
    store.write(meeting_started("late", "late", None, 0));
    assert_eq!(store.stats().dropped, 1);
    assert!(store.flush(Duration::from_millis(10)).await);
}

#[tokio::test]
async fn unknown_status_in_the_database_reads_as_failed() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    store.write(meeting_started("st-m", "st", None, 0));
    flushed(&store).await;
    let Pool::Sqlite(pool) = &store.inner.pool else {
        panic!("sqlite pool expected");
    };
    // A status a newer version might write; the CHECK constraint is bypassed for the test.
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut *conn)
        .await
        .expect("pragma");
    sqlx::query(
        "INSERT INTO recordings (id, meeting_id, storage_path, status, created_at, metadata) \
         VALUES ('st-r', 'st-m', '/x', 'archived', $1, '{}')",
    )
    .bind(t(1))
    .execute(&mut *conn)
    .await
    .expect("insert");
    sqlx::query("PRAGMA ignore_check_constraints = OFF")
        .execute(&mut *conn)
        .await
        .expect("pragma");
    drop(conn);
    let r = store.recording("st-r").await.expect("read").expect("row");
    assert_eq!(r.status, RecordingStatus::Failed);
    store.close(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn bad_urls_are_refused_with_the_password_redacted() {
    for url in [
        "",
        "mysql://u@h/db",
        "http://example.invalid/",
        "sqlite://",
        "sqlite://x.db?mode=bogus",
        "postgres://u:secret@host:notaport/db",
    ] {
        match Store::open(url).await {
            Err(StoreError::Url(shown)) => {
                assert!(!shown.contains("secret"), "{shown}");
            }
            other => panic!("{url}: expected a url error, got {other:?}"),
        }
    }
}

#[test]
fn status_filter_slots() {
    use RecordingStatus::*;
    assert_eq!(status_slots(&[]), [None; 6]);
    assert_eq!(
        status_slots(&[
            Done, Failed, Done, Starting, Recording, Finalizing, Failed, Uploading
        ]),
        [
            Some("done"),
            Some("failed"),
            Some("starting"),
            Some("recording"),
            Some("finalizing"),
            Some("uploading")
        ]
    );
}
