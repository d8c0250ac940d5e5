//! The store against a real PostgreSQL server (`ferrosfu_tests::pg::PgServer`): migrations,
//! every write and read (the same checks the SQLite unit tests run), an outage during which
//! writes wait and are applied in order once the server is back, and clean failures to open.

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use ferrosfu::chat::MAX_CHAT_BYTES;
use ferrosfu::store::{RecordingRow, RecordingStatus, Store, StoreError, UserRef, Write};
use ferrosfu_tests::pg::PgServer;
use serde_json::json;
use sqlx::postgres::PgPool;

/// The behaviour checks shared with the SQLite unit tests; they name the store's types through
/// `super::` (the imports above).
#[path = "../../supervisor/src/store/checks.rs"]
mod checks;

use checks::{flushed, joined, meeting_started, t, user};

/// Polls `cond` until it holds; panics with `what` after `timeout`.
async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_and_every_write_and_read() {
    let pg = PgServer::start().expect("start postgres");
    checks::migrations_twice(&pg.url()).await;
    let store = Store::open(&pg.url()).await.expect("open");
    assert_eq!(store.backend(), ferrosfu::store::Backend::Postgres);
    checks::all(&store).await;

    // A user seen again under a new name is updated, not duplicated.
    store.write(joined("pg-p", "re", user("all-alice", "Alice Renamed"), 50));
    flushed(&store).await;

    // Idiomatic column types, and the names other tests query.
    let pool = PgPool::connect(&pg.url()).await.expect("direct connection");
    let (name,): (String,) = sqlx::query_as("SELECT display_name FROM users WHERE id = $1")
        .bind("all-alice")
        .fetch_one(&pool)
        .await
        .expect("user");
    assert_eq!(name, "Alice Renamed");
    let types: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text \
         FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name IN ('users', 'meetings', 'participants', 'media_tracks', 'recordings', \
         'chat_messages')",
    )
    .fetch_all(&pool)
    .await
    .expect("columns");
    let type_of = |table: &str, column: &str| {
        types
            .iter()
            .find(|(t, c, _)| t == table && c == column)
            .map(|(_, _, ty)| ty.as_str())
            .unwrap_or_else(|| panic!("no column {table}.{column}"))
    };
    for (table, column) in [
        ("users", "created_at"),
        ("meetings", "started_at"),
        ("meetings", "ended_at"),
        ("participants", "joined_at"),
        ("participants", "left_at"),
        ("media_tracks", "created_at"),
        ("recordings", "created_at"),
        ("chat_messages", "sent_at"),
    ] {
        assert_eq!(type_of(table, column), "timestamp with time zone");
    }
    for (table, column) in [
        ("meetings", "settings"),
        ("participants", "stats"),
        ("media_tracks", "parameters"),
        ("recordings", "metadata"),
    ] {
        assert_eq!(type_of(table, column), "jsonb");
    }
    assert_eq!(type_of("recordings", "size_bytes"), "bigint");
    assert_eq!(
        type_of("recordings", "duration_seconds"),
        "double precision"
    );
    assert_eq!(type_of("meetings", "meeting_code"), "text");
    pool.close().await;
    store.close(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_writes_wait_and_are_applied_in_order_after_restart() {
    let mut pg = PgServer::start().expect("start postgres");
    let store = Store::open(&pg.url()).await.expect("open");
    store.write(meeting_started("out-m", "out", None, 0));
    flushed(&store).await;

    pg.stop().expect("stop postgres");
    let mut writes = Vec::new();
    for i in 0..20 {
        writes.push(joined(
            &format!("out-p{i:02}"),
            "out",
            user(&format!("out-u{i}"), "U"),
            1 + i,
        ));
        // Chat said during the outage is kept too.
        writes.push(checks::chat(
            &format!("out-c{i:02}"),
            &format!("out-p{i:02}"),
            "U",
            &format!("said {i}"),
            50 + i,
        ));
        if i % 2 == 0 {
            writes.push(Write::ParticipantLeft {
                id: format!("out-p{i:02}"),
                at: t(100 + i),
                stats: json!({ "i": i }),
            });
        }
    }
    writes.push(Write::RecordingCreated {
        id: "out-r".into(),
        meeting_code: "out".into(),
        storage_path: "/rec/out.webm".into(),
        status: RecordingStatus::Starting,
        metadata: json!({}),
        at: t(200),
    });
    for (status, size) in [
        (RecordingStatus::Recording, None),
        (RecordingStatus::Finalizing, Some(10)),
        (RecordingStatus::Done, Some(4096)),
    ] {
        writes.push(Write::RecordingUpdated {
            id: "out-r".into(),
            status,
            size_bytes: size,
            duration_seconds: size.map(|s| s as f64 / 100.0),
            metadata: json!({ "last": status.as_str() }),
            storage_url: None,
        });
    }
    writes.push(Write::MeetingEnded {
        code: "out".into(),
        at: t(300),
    });
    let n = writes.len() as u64;
    let applied_before = store.stats().applied;

    let queued_at = Instant::now();
    for w in writes {
        store.write(w);
    }
    assert!(
        // A blocked write() would wait for the database (seconds); 1 s leaves a loaded
        // machine's scheduling out of it.
        queued_at.elapsed() < Duration::from_secs(1),
        "write() blocked: {:?}",
        queued_at.elapsed()
    );
    assert!(!store.flush(Duration::from_millis(300)).await);
    wait_until(
        "the store to report failing",
        Duration::from_secs(30),
        || store.stats().failing,
    )
    .await;
    let stats = store.stats();
    assert_eq!(stats.queued, n, "{stats:?}");
    assert!(stats.retries > 0, "{stats:?}");

    pg.restart().expect("restart postgres");
    assert!(
        store.flush(Duration::from_secs(30)).await,
        "not flushed after restart: {:?}",
        store.stats()
    );
    let stats = store.stats();
    assert!(!stats.failing, "{stats:?}");
    assert_eq!(stats.queued, 0);
    assert_eq!(stats.applied, applied_before + n, "{stats:?}");
    assert_eq!((stats.rejected, stats.dropped), (0, 0));

    let ps = store.participants("out").await.expect("read");
    let ids: Vec<_> = ps.iter().map(|p| p.id.clone()).collect();
    let expected: Vec<_> = (0..20).map(|i| format!("out-p{i:02}")).collect();
    assert_eq!(ids, expected);
    for (i, p) in (0_i64..).zip(&ps) {
        if i % 2 == 0 {
            assert_eq!(p.left_at, Some(t(100 + i)), "{}", p.id);
            assert_eq!(p.stats, json!({ "i": i }));
        } else {
            assert_eq!(p.left_at, None, "{}", p.id);
        }
    }
    let r = store
        .recording("out-r")
        .await
        .expect("read")
        .expect("recording");
    assert_eq!(r.status, RecordingStatus::Done);
    assert_eq!(
        (r.size_bytes, r.duration_seconds),
        (Some(4096), Some(40.96))
    );
    assert_eq!(r.metadata, json!({ "last": "done" }));
    let m = store.meeting("out").await.expect("read").expect("meeting");
    assert_eq!((m.status.as_str(), m.ended_at), ("ended", Some(t(300))));
    let said: Vec<_> = store
        .chat_history("out", 100)
        .await
        .expect("read chat")
        .into_iter()
        .map(|c| (c.peer_id, c.text))
        .collect();
    let expected: Vec<_> = (0..20)
        .map(|i| (format!("out-u{i}"), format!("said {i}")))
        .collect();
    assert_eq!(said, expected);
    store.close(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_survives_a_server_restart() {
    let mut pg = PgServer::start().expect("start postgres");
    let url = pg.url();
    checks::chat_survives_reopen(&url, || {
        pg.stop().expect("stop postgres");
        pg.restart().expect("restart postgres");
    })
    .await;
}

#[tokio::test]
async fn open_fails_cleanly_on_unreachable_server_and_bad_url() {
    // A loopback port with nobody listening.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("postgres://postgres:secret@127.0.0.1:{port}/ferrosfu");
    let opened = tokio::time::timeout(Duration::from_secs(30), Store::open(&url))
        .await
        .expect("open gives up by itself");
    match opened {
        Err(StoreError::Db(e)) => assert!(!e.to_string().contains("secret"), "{e}"),
        other => panic!("expected a database error, got {other:?}"),
    }
    for url in [
        "postgres://postgres:secret@127.0.0.1:notaport/ferrosfu",
        "mysql://root@127.0.0.1/ferrosfu",
        "127.0.0.1:5432",
    ] {
        match Store::open(url).await {
            Err(StoreError::Url(shown)) => assert!(!shown.contains("secret"), "{shown}"),
            other => panic!("{url}: expected a url error, got {other:?}"),
        }
    }
}
