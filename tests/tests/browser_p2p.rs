//! Two-party calls peer to peer in real browsers (tests/browser/p2p.mjs): headless Debian
//! Chromium with fake devices runs the demo app (supervisor/web/src/p2p.js) against the debug
//! supervisor in a loopback-only network namespace. Two pages in an `auto` room must go direct
//! (media over their own RTCPeerConnection, candidate pair not toward the SFU) while the room's
//! forwarded RTP packets stay 0; a third page joins and all three decode each other through the
//! SFU (the longest frame gap at the first two across the switch is printed; target ≤ 1 s);
//! it leaves and after the hysteresis (3 s here) the two are direct again; a recording takes
//! them back to the SFU until it stops.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::browser;

#[test]
fn two_pages_go_peer_to_peer_switch_to_the_sfu_for_a_third_and_back() {
    let (run, artifacts) =
        browser::run_against_ferrosfu("p2p.mjs", "p2p", &[], Duration::from_secs(300));
    run.assert_ok();
    let r = &run.result;
    for page in ["alice", "bob"] {
        let g = &r["switchToSfu"]["gaps"][page];
        eprintln!(
            "{page}: longest frame gap across the switch to the SFU {} ms (target ≤ 1000 ms)",
            g["maxGapMs"]
        );
        assert!(artifacts.join(format!("{page}-direct.png")).is_file());
    }
    eprintln!(
        "third peer: all three decoding each other {} ms after its join answer (target ≤ \
         3000 ms; per page {}); back to peer to peer {} ms after it left",
        r["switchToSfu"]["allDecodingAfterJoinMs"],
        r["switchToSfu"]["firstDecodeAfterJoinMs"],
        r["back"]["afterMs"]
    );
    assert_eq!(r["recording"]["stop"]["reason"], "recording");
    assert_eq!(r["direct"]["server"]["after"], 0);
}
