use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;

fn refused(payload: &[u8], text: bool) -> ChatRefusal {
    validate_chat(payload, text).expect_err("refused")
}

#[test]
fn valid_text_is_returned_as_is() {
    assert_eq!(validate_chat(b"hello", true), Ok("hello"));
    assert_eq!(
        validate_chat("  Zoë ☃ 日本 \n".as_bytes(), true),
        Ok("  Zoë ☃ 日本 \n")
    );
    // Exactly the limit, in multi-byte characters.
    let max = "é".repeat(MAX_CHAT_BYTES / 2);
    assert_eq!(max.len(), MAX_CHAT_BYTES);
    assert_eq!(validate_chat(max.as_bytes(), true), Ok(max.as_str()));
}

#[test]
fn too_long_is_refused_with_the_length() {
    let long = vec![b'a'; MAX_CHAT_BYTES + 1];
    let r = refused(&long, true);
    assert_eq!(
        r,
        ChatRefusal::TooLong {
            len: 4097,
            max: 4096
        }
    );
    assert_eq!(r.code(), "too_long");
    assert_eq!(r.to_string(), "message too long: 4097 bytes, at most 4096");
    // Length is checked before anything else (a huge binary or invalid payload is too long).
    assert_eq!(refused(&long, false).code(), "too_long");
    assert_eq!(refused(&vec![0xff; 100_000], true).code(), "too_long");
}

#[test]
fn binary_invalid_nul_and_empty_are_refused() {
    assert_eq!(refused(b"hello", false), ChatRefusal::Binary);
    assert_eq!(refused(b"", false), ChatRefusal::Binary);
    assert_eq!(refused(b"caf\xc3", true), ChatRefusal::NotUtf8);
    assert_eq!(refused(b"\xff\xfe", true), ChatRefusal::NotUtf8);
    assert_eq!(refused(b"a\0b", true), ChatRefusal::ContainsNul);
    assert_eq!(refused(b"", true), ChatRefusal::Empty);
    assert_eq!(refused(b" \t\r\n ", true), ChatRefusal::Empty);
}

#[test]
fn codes_are_stable_and_reasons_readable() {
    let all = [
        (
            ChatRefusal::TooLong {
                len: 5000,
                max: 4096,
            },
            "too_long",
            "message too long: 5000 bytes, at most 4096",
        ),
        (
            ChatRefusal::NotUtf8,
            "not_utf8",
            "message is not valid UTF-8 text",
        ),
        (
            ChatRefusal::ContainsNul,
            "contains_nul",
            "message contains a NUL character",
        ),
        (ChatRefusal::Empty, "empty", "message is empty"),
        (
            ChatRefusal::Binary,
            "binary",
            "chat messages must be sent as text, not binary",
        ),
        (
            ChatRefusal::RateLimited {
                per_second: 10,
                retry_after: Duration::from_micros(99_001),
            },
            "rate_limited",
            "too many messages: at most 10 per second; retry in 100 ms",
        ),
    ];
    for (r, code, reason) in all {
        assert_eq!(r.code(), code);
        assert_eq!(r.to_string(), reason);
        assert_eq!(
            serde_json::to_value(&r).expect("serializes"),
            json!({ "code": code, "reason": reason })
        );
    }
}

#[test]
fn rate_limiter_allows_a_burst_then_ten_per_second() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut l = ChatRateLimiter::default();
    for i in 0..10 {
        assert_eq!(l.check(t0), Ok(()), "message {i} of the burst");
    }
    assert_eq!(
        l.check(t0),
        Err(ChatRefusal::RateLimited {
            per_second: 10,
            retry_after: Duration::from_millis(100)
        })
    );
    // A refused message takes nothing: 40 ms later, 60 ms remain.
    assert_eq!(
        l.check(ms(40)),
        Err(ChatRefusal::RateLimited {
            per_second: 10,
            retry_after: Duration::from_millis(60)
        })
    );
    assert_eq!(l.check(ms(100)), Ok(()));
    assert!(l.check(ms(100)).is_err());
    // Sustained: one every 100 ms passes, a second one within the same 100 ms does not.
    for k in 2..50 {
        assert_eq!(l.check(ms(100 * k)), Ok(()), "at {} ms", 100 * k);
        assert!(l.check(ms(100 * k + 50)).is_err(), "at {} ms", 100 * k + 50);
    }
    // Quiet for a second and more: a full burst again, never more.
    let later = ms(10_000);
    for _ in 0..10 {
        assert_eq!(l.check(later), Ok(()));
    }
    assert!(l.check(later).is_err());
}

#[test]
fn rate_limiter_counts_a_second_window() {
    // Over a closed stretch of 3 s, burst + rate × 3 messages pass.
    let t0 = Instant::now();
    let mut l = ChatRateLimiter::default();
    let passed = (0..=3000)
        .filter(|i| l.check(t0 + Duration::from_millis(*i)).is_ok())
        .count();
    assert_eq!(passed, 10 + 30);
}

#[test]
fn rate_limiter_ignores_time_going_backwards_and_custom_rates() {
    let t0 = Instant::now() + Duration::from_secs(10);
    let mut l = ChatRateLimiter::new(2, 1);
    assert_eq!(l.check(t0), Ok(()));
    let back = t0 - Duration::from_secs(5);
    assert_eq!(
        l.check(back),
        Err(ChatRefusal::RateLimited {
            per_second: 2,
            retry_after: Duration::from_millis(5500)
        })
    );
    assert_eq!(l.check(t0 + Duration::from_millis(500)), Ok(()));
    // Zeroes are taken as one.
    let mut one = ChatRateLimiter::new(0, 0);
    assert_eq!(one.check(t0), Ok(()));
    assert!(one.check(t0 + Duration::from_millis(999)).is_err());
    assert_eq!(one.check(t0 + Duration::from_secs(1)), Ok(()));
}

fn message() -> ChatMessage {
    ChatMessage {
        id: "m1".into(),
        peer_id: "alice".into(),
        display_name: "Alice".into(),
        sent_at: Utc
            .timestamp_micros(1_767_323_045_678_901)
            .single()
            .expect("valid time"),
        text: "hi ☃".into(),
    }
}

#[test]
fn message_json_is_camel_case_with_millisecond_times() {
    let m = message();
    let v = serde_json::to_value(&m).expect("serializes");
    assert_eq!(
        v,
        json!({
            "id": "m1",
            "peerId": "alice",
            "displayName": "Alice",
            "sentAt": "2026-01-02T03:04:05.678Z",
            "text": "hi ☃",
        })
    );
    let back: ChatMessage = serde_json::from_value(v).expect("deserializes");
    assert_eq!(
        back.sent_at.timestamp_millis(),
        m.sent_at.timestamp_millis()
    );
    let history = ChatHistory {
        messages: vec![m.clone()],
    };
    assert_eq!(
        serde_json::to_value(&history).expect("serializes")["messages"][0]["peerId"],
        "alice"
    );
    assert_eq!(
        serde_json::to_value(ChatHistory::default()).expect("serializes"),
        json!({ "messages": [] })
    );
}

#[test]
fn message_to_store_write_and_back() {
    let m = message();
    assert_eq!(
        m.stored("part-1"),
        Write::ChatMessageSent {
            id: "m1".into(),
            participant_id: "part-1".into(),
            display_name: "Alice".into(),
            text: "hi ☃".into(),
            at: m.sent_at,
        }
    );
    let row = ChatRow {
        id: "m1".into(),
        meeting_id: "meet".into(),
        participant_id: "part-1".into(),
        peer_id: "alice".into(),
        display_name: "Alice".into(),
        sent_at: m.sent_at,
        text: "hi ☃".into(),
    };
    assert_eq!(ChatMessage::from(row.clone()), m);
    assert_eq!(ChatHistory::from(vec![row]).messages, [m]);
}
