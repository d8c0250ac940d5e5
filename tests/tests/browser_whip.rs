//! WHIP ingest and WHEP playback with real clients in Chromium (tests/browser/whip.mjs): the
//! `whip-whep` package's WHIPClient publishes camera and microphone into a room from the demo
//! app's /app/whip.html; Bob, a protoo peer (the demo app with mediasoup-client), decodes and
//! hears it; WHEPClient players (/app/whep.html) play the WHIP publisher and Bob; an ICE restart
//! over PATCH keeps Bob's media flowing; DELETE makes the WHIP peer leave.
//!
//! Fails (never skips) without the browser setup: `scripts/setup-browser`, `scripts/build-web`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::browser;

#[test]
fn a_whip_publisher_reaches_protoo_and_whep_players_and_survives_an_ice_restart() {
    browser::require_setup();
    let (run, artifacts) =
        browser::run_against_ferrosfu("whip.mjs", "whip", &[], Duration::from_secs(240));
    run.assert_ok();
    let r = &run.result;
    // What whip.mjs checked, checked again from its result (so a lax script cannot pass).
    for who in ["bob", "playWhip", "playBob", "afterRestart"] {
        let (first, grown) = (&r[who]["first"], &r[who]["grown"]);
        for key in ["frames", "audio"] {
            assert!(
                grown[key].as_u64().unwrap() > first[key].as_u64().unwrap(),
                "{who}: {key} did not grow: {r}"
            );
        }
    }
    assert_ne!(r["restart"]["before"], r["restart"]["after"], "{r}");
    assert!(artifacts.join("pub.png").is_file());
    eprintln!("whip: {}", r);
}
