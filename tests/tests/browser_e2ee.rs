//! End-to-end encrypted meetings in real browsers (tests/browser/e2ee.mjs): headless Debian
//! Chromium runs the demo app with `?e2ee=1` (frames encrypted in an RTCRtpScriptTransform,
//! keys by ECDH P-256 over signaling) against the debug supervisor, in a loopback-only network
//! namespace. Two E2EE pages decode each other's video and hear audio; the server flags the
//! room and refuses to record it; simulcast layers still switch on encrypted video; a third
//! page without E2EE gets the forwarded ciphertext but no valid picture; after it leaves the two
//! rotate their keys and go on; a fourth page encrypting on the main thread
//! (encodedInsertableStreams, the fallback) decodes them and they it.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::browser;

#[test]
fn e2ee_pages_see_each_other_and_a_page_without_the_keys_does_not() {
    let (run, artifacts) =
        browser::run_against_ferrosfu("e2ee.mjs", "e2ee", &[], Duration::from_secs(300));
    run.assert_ok();
    let r = &run.result;
    eprintln!(
        "picture difference to the sender's preview (0-255): E2EE receiver {}, receiver without \
         the keys {} ({} frames decoded)",
        r["bob"]["pictureDiff"], r["carol"]["pictureDiff"], r["carol"]["receiving"]["framesTotal"]
    );
    assert_eq!(r["recording"]["status"], 409);
    assert_eq!(r["layers"]["type"], "simulcast");
    assert_eq!(r["alice"]["e2ee"]["api"], "RTCRtpScriptTransform");
    assert_eq!(r["dave"]["e2ee"]["api"], "encodedInsertableStreams");
    assert!(artifacts.join("carol-no-e2ee.png").is_file());
}
