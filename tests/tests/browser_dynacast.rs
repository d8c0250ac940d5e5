//! Dynacast in a real browser (tests/browser/dynacast.mjs): headless Debian Chromium with a fake
//! camera, the demo app twice in one room. Alice publishes VP8 simulcast (3 encodings, 15 fps);
//! Bob only watches and, once he decodes her top layer, clicks "Low" on her tile. With dynacast
//! (the app as it is) the worker finds only spatial layer 0 needed, Alice hears
//! `producerLayersNeeded [0]` and turns encodings 1 and 2 off (`setParameters`), so her upstream
//! video must fall well under what the same run with `?dynacast=0` sends (< 50 %, measured from
//! 6 s after the click to 20 s). Then "High": `producerLayersNeeded` with the top layer, Alice
//! turns her encodings back on and Bob must decode ≥ 1000 px again within 15 s of the click. The
//! timeline of both runs goes to tests/artifacts/browser/dynacast/dynacast.json.
//!
//! Runs in a loopback-only network namespace (`unshare -n`); needs root (or user namespaces),
//! Chromium, Node and the built app: `scripts/setup-browser`; anything missing fails it
//! (`cargo test -- --skip browser_` leaves it out).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::browser;

/// How long after "High" Bob must decode the top layer again (measured: see README).
const RESUME_LIMIT_MS: u64 = 15_000;

#[test]
fn dynacast_stops_unneeded_encodings_in_a_browser_and_resumes_them() {
    // Every wait in dynacast.mjs has its own deadline; this one only catches a hang.
    let (run, artifacts) =
        browser::run_against_ferrosfu("dynacast.mjs", "dynacast", &[], Duration::from_secs(420));
    let r = &run.result;
    let tail = run.stderr_tail(60);
    assert!(
        run.status.success() && r["ok"] == true,
        "{r}\n--- log tail (reversed) ---\n{tail}"
    );
    let (on, off) = (&r["runs"]["on"], &r["runs"]["off"]);
    assert_eq!(on["dynacastEnabled"], true, "{r}");
    assert_eq!(off["dynacastEnabled"], false, "{r}");

    // After "Low": the worker told Alice only layer 0 is needed, and she stopped 1 and 2.
    let told: Vec<&serde_json::Value> = on["low"]["layersNeeded"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ms"].as_i64().unwrap() >= 0)
        .map(|e| &e["spatialLayers"])
        .collect();
    assert!(
        told.contains(&&serde_json::json!([0])),
        "producerLayersNeeded [0] never reached Alice after Low: {told:?}\n{r}"
    );
    assert_eq!(
        on["low"]["dynacast"]["active"],
        serde_json::json!([true, false, false]),
        "Alice's encodings after Low: {r}"
    );

    // Her upstream video with dynacast, well under the same run without it.
    let kbps = |run: &serde_json::Value| run["low"]["steadyKbps"]["total"].as_f64().unwrap();
    let (with, without) = (kbps(on), kbps(off));
    assert!(
        with < 0.5 * without,
        "upstream after Low: {with} kbit/s with dynacast, {without} without: {r}"
    );

    // "High": the top encoding comes back and reaches Bob.
    assert_eq!(on["high"]["ok"], true, "{r}");
    let resume = on["high"]["resumeMs"].as_u64().unwrap();
    assert!(
        resume <= RESUME_LIMIT_MS,
        "Bob decoded the top layer {resume} ms after High (limit {RESUME_LIMIT_MS}): {r}"
    );
    assert!(artifacts.join("dynacast.json").is_file());
    eprintln!(
        "dynacast: upstream after Low {with} kbit/s with, {without} without (ratio {}); \
         top layer back at Bob {resume} ms after High (without dynacast {} ms)",
        r["ratio"], off["high"]["resumeMs"]
    );
}
