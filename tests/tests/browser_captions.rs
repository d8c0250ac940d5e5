//! Live captions in real browsers: the demo app (supervisor/web/src/captions.js) in headless
//! Chromium whose fake microphone plays espeak-ng speech, driven by tests/browser/captions.mjs.
//! After `POST /api/rooms/:roomId/transcription`, the other page shows the speaker's words under
//! her tile and a final caption in its transcript panel; the final text has at least half of
//! the spoken words and is stored. A screenshot goes to tests/artifacts/browser/captions/.
//!
//! Runs in a loopback-only network namespace (`unshare -n`); needs Chromium, Node, the built app
//! (`scripts/setup-browser`), espeak-ng and the pocketsphinx GStreamer element. `cargo test --
//! --skip browser_` leaves it out.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::browser;

#[test]
fn a_speakers_words_show_under_her_tile_and_in_the_transcript() {
    let (run, artifacts) =
        browser::run_against_ferrosfu("captions.mjs", "captions", &[], Duration::from_secs(180));
    let r = &run.result;
    assert!(
        run.status.success() && r["ok"] == true,
        "{r}\n--- log tail ---\n{}",
        run.stderr
    );
    assert!(r["accuracy"].as_f64().unwrap() >= 0.5, "{r}");
    assert!(!r["tileCaption"].as_str().unwrap().is_empty());
    assert!(artifacts.join("captions-bob.png").is_file());
    eprintln!(
        "browser captions: heard {} (word accuracy {:.0} %), under the tile first: {}",
        r["final"]["text"],
        r["accuracy"].as_f64().unwrap() * 100.0,
        r["tileCaption"]
    );
}
