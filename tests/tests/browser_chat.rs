//! Data channels in real browsers: the demo app (supervisor/web/src/chat.js, real
//! mediasoup-client) in headless Chromium, driven by tests/browser/chat.mjs. Two pages chat
//! (each sees the other's message within 1 s); the server refuses a message over 4 KiB and a
//! burst over the rate limit; a third page joining later gets the history; a 5 MB file sent
//! from one page arrives with the same SHA-256 on the two others. Screenshots go to
//! tests/artifacts/browser/chat/.
//!
//! Runs in a loopback-only network namespace (`unshare -n`); needs Chromium, Node and the built
//! app (`scripts/setup-browser`). `cargo test -- --skip browser_` leaves it out.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::browser;

#[test]
fn browsers_chat_get_the_history_and_share_a_5_mb_file() {
    let (run, artifacts) =
        browser::run_against_ferrosfu("chat.mjs", "chat", &[], Duration::from_secs(300));
    let r = &run.result;
    assert!(
        run.status.success() && r["ok"] == true,
        "{r}\n--- log tail ---\n{}",
        run.stderr
    );
    // What chat.mjs checked, checked again from its figures.
    for dir in ["aliceToBob", "bobToAlice"] {
        assert!(r["latencyMs"][dir].as_u64().unwrap() <= 1000, "{r}");
    }
    assert_eq!(r["tooLong"]["code"], "too_long", "{r}");
    assert_eq!(r["longAtBob"], false);
    assert!(r["rateLimited"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["history"][0]["text"], "hello from alice");
    assert_eq!(r["history"][1]["displayName"], "bob");
    let sha = r["file"]["sent"]["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    for page in ["bob", "carol"] {
        let got = &r["file"]["received"][page];
        assert_eq!(got["ok"], true, "{r}");
        assert_eq!(got["sha256"], sha);
        assert_eq!(got["size"], 5 * 1024 * 1024);
    }
    for page in ["alice", "bob", "carol"] {
        assert!(artifacts.join(format!("chat-{page}.png")).is_file());
    }
    eprintln!("browser chat: {r}");
}
