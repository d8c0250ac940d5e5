//! Behaviour checks every backend must pass, shared by the SQLite unit tests (`mod checks` in
//! `store`) and the PostgreSQL tests (`tests/tests/store_pg.rs` includes this file with
//! `#[path]`). It names the store's types through `super::`, so the including module must have
//! `Store`, `Write`, `UserRef`, `RecordingStatus` and `MAX_CHAT_BYTES` in scope.
//!
//! Each check uses its own meeting codes and ids, so checks can share one database when run
//! one after another (`MeetingsInterrupted` ends every active meeting: do not run the checks
//! concurrently on one database).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::{MAX_CHAT_BYTES, RecordingStatus, Store, UserRef, Write};

/// Long enough for any healthy database; the checks never wait this long when they pass.
const FLUSH: Duration = Duration::from_secs(30);

/// A fixed instant plus `secs`, at millisecond precision (PostgreSQL keeps microseconds).
pub(crate) fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_767_323_045_678 + secs * 1000)
        .single()
        .expect("valid timestamp")
}

pub(crate) fn user(id: &str, name: &str) -> UserRef {
    UserRef {
        id: id.to_owned(),
        display_name: name.to_owned(),
    }
}

pub(crate) fn meeting_started(id: &str, code: &str, creator: Option<UserRef>, at: i64) -> Write {
    Write::MeetingStarted {
        id: id.to_owned(),
        code: code.to_owned(),
        creator,
        settings: json!({ "maxPeers": 8 }),
        at: t(at),
    }
}

pub(crate) fn joined(id: &str, code: &str, u: UserRef, at: i64) -> Write {
    Write::ParticipantJoined {
        id: id.to_owned(),
        meeting_code: code.to_owned(),
        display_name: format!("{} (room)", u.display_name),
        user: u,
        at: t(at),
    }
}

pub(crate) async fn flushed(store: &Store) {
    assert!(
        store.flush(FLUSH).await,
        "flush timed out: {:?}",
        store.stats()
    );
}

/// Opening twice runs the migrations once; data written before survives.
pub(crate) async fn migrations_twice(url: &str) {
    let store = Store::open(url).await.expect("first open");
    store.write(meeting_started("mig-id", "mig", None, 0));
    flushed(&store).await;
    store.close(FLUSH).await;
    let store = Store::open(url).await.expect("second open");
    let m = store
        .meeting("mig")
        .await
        .expect("read")
        .expect("meeting kept");
    assert_eq!(m.id, "mig-id");
    store.close(FLUSH).await;
}

/// Every write variant, then every read.
pub(crate) async fn every_write_and_read(store: &Store) {
    let before = store.stats();
    let alice = user("all-alice", "Alice");
    let bob = user("all-bob", "Bob");
    let writes = vec![
        Write::MeetingStarted {
            id: "all-m".into(),
            code: "all".into(),
            creator: Some(alice.clone()),
            settings: json!({ "maxPeers": 8, "record": true }),
            at: t(0),
        },
        joined("all-p1", "all", alice.clone(), 1),
        joined("all-p2", "all", bob.clone(), 2),
        Write::MediaTrackCreated {
            id: "all-t1".into(),
            participant_id: "all-p1".into(),
            kind: "audio".into(),
            codec: "audio/opus".into(),
            parameters: json!({ "clockRate": 48000, "channels": 2 }),
            at: t(3),
        },
        Write::MediaTrackCreated {
            id: "all-t2".into(),
            participant_id: "all-p1".into(),
            kind: "video".into(),
            codec: "video/VP8".into(),
            parameters: json!({ "clockRate": 90000 }),
            at: t(4),
        },
        Write::RecordingCreated {
            id: "all-r1".into(),
            meeting_code: "all".into(),
            storage_path: "/rec/all-r1.webm".into(),
            status: RecordingStatus::Starting,
            metadata: json!({}),
            at: t(5),
        },
        Write::RecordingUpdated {
            id: "all-r1".into(),
            status: RecordingStatus::Recording,
            size_bytes: None,
            duration_seconds: None,
            metadata: json!({ "tracks": 2 }),
            storage_url: None,
        },
        Write::RecordingUpdated {
            id: "all-r1".into(),
            status: RecordingStatus::Uploading,
            size_bytes: Some(123_456),
            duration_seconds: Some(12.5),
            metadata: json!({ "tracks": 2, "container": "webm" }),
            storage_url: None,
        },
        Write::RecordingUpdated {
            id: "all-r1".into(),
            status: RecordingStatus::Done,
            size_bytes: None,
            duration_seconds: None,
            metadata: json!({ "tracks": 2, "container": "webm" }),
            storage_url: Some("s3://rec/all-r1.webm".into()),
        },
        // Sizes and the storage URL given once stay when a later update leaves them out.
        Write::RecordingUpdated {
            id: "all-r1".into(),
            status: RecordingStatus::Done,
            size_bytes: None,
            duration_seconds: None,
            metadata: json!({ "tracks": 2, "container": "webm", "checked": true }),
            storage_url: None,
        },
        Write::RecordingCreated {
            id: "all-r2".into(),
            meeting_code: "all".into(),
            storage_path: "/rec/all-r2.webm".into(),
            status: RecordingStatus::Recording,
            metadata: json!({ "n": 2 }),
            at: t(6),
        },
        Write::ParticipantLeft {
            id: "all-p2".into(),
            at: t(7),
            stats: json!({ "bytesSent": 1000 }),
        },
        Write::MeetingEnded {
            code: "all".into(),
            at: t(8),
        },
    ];
    let n = writes.len() as u64;
    for w in writes {
        store.write(w);
    }
    flushed(store).await;
    let stats = store.stats();
    assert_eq!(stats.queued, 0);
    assert_eq!(stats.applied, before.applied + n, "{stats:?}");
    assert_eq!(stats.rejected, before.rejected);
    assert!(!stats.failing);

    let m = store.meeting("all").await.expect("read").expect("meeting");
    assert_eq!(m.id, "all-m");
    assert_eq!(m.meeting_code, "all");
    assert_eq!(m.creator_id.as_deref(), Some("all-alice"));
    assert_eq!(m.started_at, t(0));
    assert_eq!(m.ended_at, Some(t(8)));
    assert_eq!(m.settings, json!({ "maxPeers": 8, "record": true }));
    assert_eq!(m.status, "ended");
    assert_eq!(store.meeting("no-such-code").await.expect("read"), None);

    let ps = store.participants("all").await.expect("read");
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0].id, "all-p1");
    assert_eq!(ps[0].meeting_id, "all-m");
    assert_eq!(ps[0].user_id, "all-alice");
    assert_eq!(ps[0].display_name, "Alice (room)");
    assert_eq!(ps[0].joined_at, t(1));
    assert_eq!(ps[0].left_at, None);
    assert_eq!(ps[0].stats, json!({}));
    assert_eq!(ps[1].id, "all-p2");
    assert_eq!(ps[1].user_id, "all-bob");
    assert_eq!(ps[1].left_at, Some(t(7)));
    assert_eq!(ps[1].stats, json!({ "bytesSent": 1000 }));
    assert!(
        store
            .participants("no-such-code")
            .await
            .expect("read")
            .is_empty()
    );

    let tracks = store.media_tracks("all-p1").await.expect("read");
    assert_eq!(tracks.len(), 2);
    assert_eq!(
        (tracks[0].id.as_str(), tracks[0].kind.as_str()),
        ("all-t1", "audio")
    );
    assert_eq!(tracks[0].participant_id, "all-p1");
    assert_eq!(tracks[0].codec, "audio/opus");
    assert_eq!(
        tracks[0].parameters,
        json!({ "clockRate": 48000, "channels": 2 })
    );
    assert_eq!(tracks[0].created_at, t(3));
    assert_eq!(
        (tracks[1].id.as_str(), tracks[1].kind.as_str()),
        ("all-t2", "video")
    );
    assert!(store.media_tracks("all-p2").await.expect("read").is_empty());

    let r1 = store.recording("all-r1").await.expect("read").expect("r1");
    assert_eq!(r1.meeting_id, "all-m");
    assert_eq!(r1.meeting_code, "all");
    assert_eq!(r1.storage_path, "/rec/all-r1.webm");
    assert_eq!(r1.status, RecordingStatus::Done);
    assert_eq!(r1.size_bytes, Some(123_456));
    assert_eq!(r1.duration_seconds, Some(12.5));
    assert_eq!(r1.created_at, t(5));
    assert_eq!(r1.storage_url.as_deref(), Some("s3://rec/all-r1.webm"));
    assert_eq!(
        r1.metadata,
        json!({ "tracks": 2, "container": "webm", "checked": true })
    );
    assert_eq!(store.recording("no-such-id").await.expect("read"), None);

    let ids = |rows: Vec<super::RecordingRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.recordings(Some("all")).await.expect("read")),
        ["all-r2", "all-r1"],
        "newest first"
    );
    assert!(
        store
            .recordings(Some("no-such-code"))
            .await
            .expect("read")
            .is_empty()
    );
    let all = ids(store.recordings(None).await.expect("read"));
    assert!(all.contains(&"all-r1".to_owned()) && all.contains(&"all-r2".to_owned()));
    let with = |s: &'static [RecordingStatus]| async move {
        ids(store.recordings_with_status(s).await.expect("read"))
    };
    let recording = with(&[RecordingStatus::Recording, RecordingStatus::Starting]).await;
    assert!(recording.contains(&"all-r2".to_owned()) && !recording.contains(&"all-r1".to_owned()));
    let done = with(&[
        RecordingStatus::Done,
        RecordingStatus::Done,
        RecordingStatus::Failed,
    ])
    .await;
    assert!(done.contains(&"all-r1".to_owned()) && !done.contains(&"all-r2".to_owned()));
    assert!(with(&[]).await.is_empty());
}

/// A room that reopens keeps its meeting row: same id and `started_at`, active again.
pub(crate) async fn meeting_reopen(store: &Store) {
    store.write(meeting_started("re-1", "re", Some(user("re-u", "U")), 0));
    store.write(Write::MeetingEnded {
        code: "re".into(),
        at: t(10),
    });
    flushed(store).await;
    let m = store.meeting("re").await.expect("read").expect("meeting");
    assert_eq!((m.status.as_str(), m.ended_at), ("ended", Some(t(10))));

    store.write(meeting_started("re-2", "re", Some(user("re-v", "V")), 20));
    flushed(store).await;
    let m = store.meeting("re").await.expect("read").expect("meeting");
    assert_eq!(m.id, "re-1");
    assert_eq!(m.started_at, t(0));
    assert_eq!(m.ended_at, None);
    assert_eq!(m.status, "active");
    assert_eq!(m.creator_id.as_deref(), Some("re-u"));

    // New settings (a P2P mode change) replace the stored object.
    let settings =
        json!({ "p2p": "auto", "modeHistory": [{ "mode": "p2p", "reason": "twoPeers" }] });
    store.write(Write::MeetingSettings {
        code: "re".into(),
        settings: settings.clone(),
    });
    flushed(store).await;
    let m = store.meeting("re").await.expect("read").expect("meeting");
    assert_eq!(m.settings, settings);
}

/// After a crash every active meeting ends and every present participant leaves, at `at`;
/// what had ended or left before keeps its time.
pub(crate) async fn meetings_interrupted(store: &Store) {
    store.write(meeting_started("int-a", "int-a", None, 0));
    store.write(meeting_started("int-b", "int-b", None, 0));
    store.write(joined("int-p1", "int-a", user("int-u1", "U1"), 1));
    store.write(joined("int-p2", "int-a", user("int-u2", "U2"), 1));
    store.write(Write::ParticipantLeft {
        id: "int-p2".into(),
        at: t(2),
        stats: json!({}),
    });
    store.write(Write::MeetingEnded {
        code: "int-b".into(),
        at: t(3),
    });
    store.write(Write::MeetingsInterrupted { at: t(100) });
    flushed(store).await;

    let a = store.meeting("int-a").await.expect("read").expect("a");
    assert_eq!((a.status.as_str(), a.ended_at), ("ended", Some(t(100))));
    let b = store.meeting("int-b").await.expect("read").expect("b");
    assert_eq!((b.status.as_str(), b.ended_at), ("ended", Some(t(3))));
    let ps = store.participants("int-a").await.expect("read");
    let left: Vec<_> = ps.iter().map(|p| (p.id.as_str(), p.left_at)).collect();
    assert_eq!(left, [("int-p1", Some(t(100))), ("int-p2", Some(t(2)))]);
}

/// Writes the database refuses are dropped (counted in `rejected`) without holding up the
/// writes queued behind them.
pub(crate) async fn rejected_write_does_not_stall(store: &Store) {
    let before = store.stats();
    // No meeting with this code: NOT NULL violation on meeting_id.
    store.write(joined("rej-p0", "rej-missing", user("rej-u", "U"), 0));
    store.write(meeting_started("rej-m", "rej", None, 0));
    store.write(joined("rej-p1", "rej", user("rej-u", "U"), 1));
    // CHECK violation on kind.
    store.write(Write::MediaTrackCreated {
        id: "rej-t0".into(),
        participant_id: "rej-p1".into(),
        kind: "screen".into(),
        codec: "video/VP8".into(),
        parameters: json!({}),
        at: t(2),
    });
    // Foreign key violation: no such participant.
    store.write(Write::MediaTrackCreated {
        id: "rej-t1".into(),
        participant_id: "rej-nobody".into(),
        kind: "audio".into(),
        codec: "audio/opus".into(),
        parameters: json!({}),
        at: t(2),
    });
    // Recording of an unknown meeting.
    store.write(Write::RecordingCreated {
        id: "rej-r0".into(),
        meeting_code: "rej-missing".into(),
        storage_path: "/x".into(),
        status: RecordingStatus::Starting,
        metadata: json!({}),
        at: t(3),
    });
    store.write(Write::MediaTrackCreated {
        id: "rej-t2".into(),
        participant_id: "rej-p1".into(),
        kind: "audio".into(),
        codec: "audio/opus".into(),
        parameters: json!({}),
        at: t(4),
    });
    flushed(store).await;
    let stats = store.stats();
    assert_eq!(stats.rejected, before.rejected + 4, "{stats:?}");
    assert_eq!(stats.applied, before.applied + 3, "{stats:?}");
    assert!(!stats.failing);
    assert_eq!(store.meeting("rej-missing").await.expect("read"), None);
    let ps = store.participants("rej").await.expect("read");
    assert_eq!(ps.len(), 1);
    let tracks = store.media_tracks("rej-p1").await.expect("read");
    let ids: Vec<_> = tracks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["rej-t2"]);
    assert_eq!(store.recording("rej-r0").await.expect("read"), None);
}

/// JSON columns come back equal: nesting, unicode, numbers of every kind, null, escapes.
pub(crate) async fn json_round_trip(store: &Store) {
    let value = json!({
        "nested": { "list": [1, -2, 3.5, null, true, "x"], "empty": {} , "none": [] },
        "unicode": "Zoë ☃ 日本 \u{1F600}",
        "escapes": "quote \" backslash \\ newline \n tab \t nul-ish \u{0001}",
        "big": 9_007_199_254_740_993_u64,
        "negative": i64::MIN,
        "float": -0.125,
        "null": null,
    });
    store.write(Write::MeetingStarted {
        id: "json-m".into(),
        code: "json".into(),
        creator: None,
        settings: value.clone(),
        at: t(0),
    });
    store.write(joined("json-p", "json", user("json-u", "☃ Snow"), 1));
    store.write(Write::ParticipantLeft {
        id: "json-p".into(),
        at: t(2),
        stats: value.clone(),
    });
    store.write(Write::MediaTrackCreated {
        id: "json-t".into(),
        participant_id: "json-p".into(),
        kind: "video".into(),
        codec: "video/H264".into(),
        parameters: value.clone(),
        at: t(3),
    });
    store.write(Write::RecordingCreated {
        id: "json-r".into(),
        meeting_code: "json".into(),
        storage_path: "/rec/ünïcode path.webm".into(),
        status: RecordingStatus::Starting,
        metadata: value.clone(),
        at: t(4),
    });
    flushed(store).await;
    let m = store.meeting("json").await.expect("read").expect("meeting");
    assert_eq!(m.settings, value);
    assert_eq!(m.creator_id, None);
    let ps = store.participants("json").await.expect("read");
    assert_eq!(ps[0].stats, value);
    assert_eq!(ps[0].display_name, "☃ Snow (room)");
    let tracks = store.media_tracks("json-p").await.expect("read");
    assert_eq!(tracks[0].parameters, value);
    let r = store.recording("json-r").await.expect("read").expect("r");
    assert_eq!(r.metadata, value);
    assert_eq!(r.storage_path, "/rec/ünïcode path.webm");
    assert_eq!((r.size_bytes, r.duration_seconds), (None, None));
}

pub(crate) fn chat(id: &str, participant: &str, name: &str, text: &str, at: i64) -> Write {
    Write::ChatMessageSent {
        id: id.to_owned(),
        participant_id: participant.to_owned(),
        display_name: name.to_owned(),
        text: text.to_owned(),
        at: t(at),
    }
}

/// The meeting `code` with participants `{code}-pa` (user `{code}-alice`) and `{code}-pb`
/// (user `{code}-bob`).
fn chat_meeting(store: &Store, code: &str) {
    store.write(meeting_started(&format!("{code}-m"), code, None, 0));
    let alice = user(&format!("{code}-alice"), "Alice");
    store.write(joined(&format!("{code}-pa"), code, alice, 1));
    let bob = user(&format!("{code}-bob"), "Bob");
    store.write(joined(&format!("{code}-pb"), code, bob, 2));
}

/// `(id, peer id, display name, text)` of each message, in the order read.
async fn chat_of(store: &Store, code: &str, limit: usize) -> Vec<(String, String, String, String)> {
    store
        .chat_history(code, limit)
        .await
        .expect("read chat")
        .into_iter()
        .map(|m| (m.id, m.peer_id, m.display_name, m.text))
        .collect()
}

/// More messages than a joining peer gets, written out of time order: the history is the
/// last `limit` by `sent_at` (then id), oldest first, of that meeting only.
pub(crate) async fn chat_history_last_in_order(store: &Store) {
    let before = store.stats();
    chat_meeting(store, "chat");
    chat_meeting(store, "chat-other");
    const N: usize = 150;
    // 7 is coprime with 150: every message once, in scrambled order. The last two share an
    // instant.
    for i in (0..N).map(|k| k * 7 % N) {
        let (part, name) = if i % 2 == 0 {
            ("chat-pa", "Alice")
        } else {
            ("chat-pb", "Bob")
        };
        let at = 10 + i.min(N - 2) as i64;
        store.write(chat(
            &format!("chat-{i:03}"),
            part,
            name,
            &format!("msg {i}"),
            at,
        ));
    }
    store.write(chat("chat-other-1", "chat-other-pa", "A", "elsewhere", 5));
    flushed(store).await;
    let stats = store.stats();
    assert_eq!(
        stats.applied,
        before.applied + 6 + N as u64 + 1,
        "{stats:?}"
    );
    assert_eq!(stats.rejected, before.rejected, "{stats:?}");

    let expected = |from: usize| -> Vec<(String, String, String, String)> {
        (from..N)
            .map(|i| {
                let (peer, name) = if i % 2 == 0 {
                    ("chat-alice", "Alice")
                } else {
                    ("chat-bob", "Bob")
                };
                (
                    format!("chat-{i:03}"),
                    peer.into(),
                    name.into(),
                    format!("msg {i}"),
                )
            })
            .collect()
    };
    assert_eq!(chat_of(store, "chat", 100).await, expected(N - 100));
    assert_eq!(chat_of(store, "chat", 1000).await, expected(0));
    assert_eq!(chat_of(store, "chat", 1).await, expected(N - 1));
    assert!(chat_of(store, "chat", 0).await.is_empty());
    assert!(chat_of(store, "no-such-code", 100).await.is_empty());
    let other = store.chat_history("chat-other", 100).await.expect("read");
    assert_eq!(other.len(), 1);
    let m = &other[0];
    assert_eq!(
        (m.id.as_str(), m.text.as_str()),
        ("chat-other-1", "elsewhere")
    );
    assert_eq!(
        (m.meeting_id.as_str(), m.participant_id.as_str()),
        ("chat-other-m", "chat-other-pa")
    );
    assert_eq!(
        (m.peer_id.as_str(), m.display_name.as_str()),
        ("chat-other-alice", "A")
    );
    assert_eq!(m.sent_at, t(5));
    let times: Vec<_> = store
        .chat_history("chat", 3)
        .await
        .expect("read")
        .into_iter()
        .map(|m| m.sent_at)
        .collect();
    assert_eq!(times, [t(157), t(158), t(158)]);
}

/// Text is kept byte for byte up to `MAX_CHAT_BYTES`; longer or empty text and messages of an
/// unknown participant are rejected (counted) without stalling the queue; a retried write
/// (same id) is not duplicated.
pub(crate) async fn chat_text_bounds(store: &Store) {
    chat_meeting(store, "chatb");
    flushed(store).await;
    let before = store.stats();
    let max = "é".repeat(MAX_CHAT_BYTES / 2);
    let unicode = "Zoë ☃ 日本 \u{1F600} \"quoted\" back\\slash\nline\ttab \u{0001}";
    store.write(chat("chatb-1", "chatb-pa", "Alice", &max, 10));
    store.write(chat(
        "chatb-2",
        "chatb-pa",
        "Alice",
        &"x".repeat(MAX_CHAT_BYTES + 1),
        11,
    ));
    store.write(chat("chatb-3", "chatb-pa", "Alice", "", 12));
    store.write(chat("chatb-4", "chatb-nobody", "Nobody", "hi", 13));
    store.write(chat("chatb-5", "chatb-pb", "Bob ☃", unicode, 14));
    store.write(chat("chatb-5", "chatb-pb", "Bob ☃", unicode, 14));
    flushed(store).await;
    let stats = store.stats();
    assert_eq!(stats.rejected, before.rejected + 3, "{stats:?}");
    assert_eq!(stats.applied, before.applied + 3, "{stats:?}");
    let got = chat_of(store, "chatb", 100).await;
    assert_eq!(
        got,
        [
            ("chatb-1".into(), "chatb-alice".into(), "Alice".into(), max),
            (
                "chatb-5".into(),
                "chatb-bob".into(),
                "Bob ☃".into(),
                unicode.into()
            ),
        ]
    );
}

/// Chat written before the store closes is read back after it opens again (`between` runs in
/// between: a database server restart).
pub(crate) async fn chat_survives_reopen(url: &str, between: impl FnOnce()) {
    let store = Store::open(url).await.expect("open");
    chat_meeting(&store, "chatr");
    for i in 0..120 {
        store.write(chat(
            &format!("chatr-{i:03}"),
            "chatr-pa",
            "Alice",
            &format!("r{i}"),
            10 + i,
        ));
    }
    flushed(&store).await;
    let written = store.chat_history("chatr", 100).await.expect("read");
    assert_eq!(written.len(), 100);
    store.close(FLUSH).await;
    between();
    let store = Store::open(url).await.expect("reopen");
    assert_eq!(
        store.chat_history("chatr", 100).await.expect("read"),
        written
    );
    assert_eq!(written[0].id, "chatr-020");
    assert_eq!(written[99].sent_at, t(129));
    store.close(FLUSH).await;
}

/// Captions: final ones stored per participant and read back in time order with the speaker's
/// peer id; empty or over-long text and an unknown participant are rejected, later writes go on.
pub(crate) async fn transcripts(store: &Store) {
    chat_meeting(store, "tr");
    let caption = |id: &str, part: &str, text: &str, from: i64| Write::TranscriptFinal {
        id: id.to_owned(),
        participant_id: part.to_owned(),
        producer_id: format!("{part}-mic"),
        text: text.to_owned(),
        started_at: t(from),
        ended_at: t(from + 2),
    };
    let before = store.stats();
    store.write(caption("tr-2", "tr-pb", "and hello to you", 20));
    store.write(caption("tr-1", "tr-pa", "hello world ☃", 10));
    store.write(caption("tr-bad", "tr-pa", "", 11));
    store.write(caption("tr-long", "tr-pa", &"x".repeat(4097), 12));
    store.write(caption("tr-nobody", "no-such-participant", "hi", 13));
    store.write(caption("tr-3", "tr-pa", "bye", 30));
    flushed(store).await;
    assert_eq!(store.stats().rejected - before.rejected, 3);
    let rows = store.transcript("tr", 100).await.expect("read");
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.peer_id.as_str(),
                r.display_name.as_str(),
                r.text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("tr-1", "tr-alice", "Alice (room)", "hello world ☃"),
            ("tr-2", "tr-bob", "Bob (room)", "and hello to you"),
            ("tr-3", "tr-alice", "Alice (room)", "bye"),
        ]
    );
    assert_eq!((rows[0].started_at, rows[0].ended_at), (t(10), t(12)));
    assert_eq!(rows[0].producer_id, "tr-pa-mic");
    assert_eq!(store.transcript("tr", 1).await.expect("read").len(), 1);
    assert!(
        store
            .transcript("no-such-code", 10)
            .await
            .expect("read")
            .is_empty()
    );
}

/// Every check above, one after another, on one store.
pub(crate) async fn all(store: &Store) {
    every_write_and_read(store).await;
    meeting_reopen(store).await;
    rejected_write_does_not_stall(store).await;
    json_round_trip(store).await;
    chat_history_last_in_order(store).await;
    chat_text_bounds(store).await;
    transcripts(store).await;
    meetings_interrupted(store).await;
}
