//! ICE restart end to end in the demo app (tests/browser/icerestart.mjs): Alice's Chromium runs
//! in a network namespace of its own; her UDP (and ICE-TCP to the media ports) is dropped for
//! 5 s by nftables while signaling stays up; the app sees its transports go down, restarts ICE
//! (protoo `restartIce` → mediasoup-client `restartIce`), and after the block both Alice's and
//! Bob's video and audio grow again.
//!
//! Needs root (ip netns, veth, nft): without it the test fails, it is not skipped.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::browser;

#[test]
fn the_demo_app_restarts_ice_when_its_udp_is_cut_and_media_resumes() {
    browser::require_setup();
    let (run, _) = browser::run_against_ferrosfu(
        "icerestart.mjs",
        "icerestart",
        &[],
        Duration::from_secs(240),
    );
    run.assert_ok();
    let r = &run.result;
    // What icerestart.mjs checked, checked again from its result.
    assert!(
        !r["alice"]["iceRestarts"].as_array().unwrap().is_empty(),
        "{r}"
    );
    assert!(r["dropped"].as_u64().unwrap() > 0, "{r}");
    for page in ["alice", "bob"] {
        for key in ["frames", "audio"] {
            let (at, after) = (&r[page]["atUnblock"][key], &r[page]["after"][key]);
            assert!(
                after.as_u64().unwrap() > at.as_u64().unwrap(),
                "{page}: {key}: {r}"
            );
        }
    }
    eprintln!("alice's ICE restarts: {}", r["alice"]["iceRestarts"]);
}
