//! A browser behind a firewall that passes only TLS reaches ferrosfu through its built-in TURN
//! server (tests/browser/turn.mjs): ferrosfu serves HTTPS/WSS and TURN (UDP/TCP 3478, TLS 443)
//! with a certificate made by the test; Alice's Chromium runs in a network namespace of its own,
//! joined by a veth pair, whose nftables rules pass only TCP to the signaling port and to TCP
//! 443, and opens the demo app with `?iceTransportPolicy=relay`; Bob's Chromium (no firewall,
//! default policy) joins the same room. Each must decode the other's video and receive the
//! other's audio, both of Alice's peer connections must have selected a local `relay` candidate
//! whose relayProtocol is `tls`, and ferrosfu's /metrics must count relayed packets and no
//! message refused as malformed.
//!
//! Needs root (ip netns, veth, nft, port 443), nft, openssl and certutil: without them the test
//! fails, it is not skipped. `scripts/setup-browser` installs them; `cargo test -- --skip
//! browser_` leaves it out.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;
use std::time::Duration;

use ferrosfu_tests::browser;

#[test]
fn a_relay_only_browser_behind_a_tls_only_firewall_sees_and_hears_through_turns() {
    browser::require_setup();
    for (tool, arg) in [
        ("ip", "-V"),
        ("nft", "--version"),
        ("openssl", "version"),
        ("certutil", "-H"),
    ] {
        // certutil -H prints its help and exits 1: that it runs is enough.
        let ran = Command::new(tool).arg(arg).output();
        assert!(
            ran.is_ok_and(|o| o.status.success() || tool == "certutil"),
            "{tool} is missing: run scripts/setup-browser"
        );
    }
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test needs root (ip netns, veth pair, nftables, port 443)"
    );
    // Every wait in turn.mjs has its own deadline; this one only catches a hang.
    let (run, artifacts) =
        browser::run_against_ferrosfu("turn.mjs", "turn", &[], Duration::from_secs(300));
    run.assert_ok();
    let r = &run.result;
    // What turn.mjs checked, checked again from its result (so a lax script cannot pass).
    for page in ["alice", "bob"] {
        let (first, grown) = (&r[page]["first"], &r[page]["grown"]);
        for key in ["frames", "audio"] {
            assert!(
                grown[key].as_u64().unwrap() > first[key].as_u64().unwrap(),
                "{page}: {key} did not grow: {r}"
            );
        }
        assert!(artifacts.join(format!("{page}.png")).is_file());
    }
    let pairs = r["alice"]["pairs"].as_array().unwrap();
    assert!(pairs.len() >= 2, "{r}");
    for p in pairs {
        assert_eq!(p["iceTransportPolicy"], "relay", "{p}");
        assert_eq!(p["local"]["candidateType"], "relay", "{p}");
        assert_eq!(p["local"]["relayProtocol"], "tls", "{p}");
    }
    assert!(r["relayedPackets"].as_u64().unwrap() > 0, "{r}");
    assert!(r["droppedByFirewall"].as_u64().unwrap() > 0, "{r}");
    // Every message the browsers sent was TURN or STUN the server understood.
    let malformed = r["turnMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            l.as_str()?
                .strip_prefix("ferrosfu_turn_refused_total{reason=\"malformed\"} ")
        })
        .map(|v| v.parse::<f64>().unwrap())
        .sum::<f64>();
    assert_eq!(malformed, 0.0, "TURN messages refused as malformed: {r}");
    eprintln!(
        "alice's pairs: {}\nturn metrics: {}",
        r["alice"]["pairs"], r["turnMetrics"]
    );
}
