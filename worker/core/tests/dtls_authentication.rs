//! DTLS authenticates the remote by the fingerprint it signaled (RFC 5763 §5), in both roles,
//! over the simulated network: a peer that presents another certificate, or none, fails the
//! handshake, its transport reports `failed`, and nothing is forwarded to or from it; an honest
//! peer connects in either role.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::*;
use ferrosfu_worker_core::SrtpProfile;

/// The DTLS states transport `tid` reported, in order.
fn dtls_states(sim: &Sim, tid: &str) -> Vec<DtlsState> {
    sim.notifications
        .iter()
        .filter(|n| n.handler_id.as_str() == tid)
        .filter_map(|n| match &n.event {
            Event::Media(MediaEvent::TransportDtlsStateChange { state, .. }) => Some(*state),
            _ => None,
        })
        .collect()
}

/// Runs until transport `tid` reports DTLS `connected` or `failed` (45 s of simulated time at
/// most: a stalled handshake fails after 30 s).
fn dtls_outcome(sim: &mut Sim, tid: &str) -> DtlsState {
    let deadline = sim.now + Duration::from_secs(45);
    while sim.now < deadline {
        if let Some(s) = dtls_states(sim, tid)
            .into_iter()
            .find(|s| matches!(s, DtlsState::Connected | DtlsState::Failed))
        {
            return s;
        }
        sim.step(deadline);
    }
    panic!("{tid}: no DTLS outcome: {:?}", dtls_states(sim, tid));
}

/// A publisher, and a subscriber that connects as `setup` says, consuming it.
fn publisher_and_subscriber(sim: &mut Sim, setup: DtlsSetup) -> (usize, usize) {
    let p = sim.add_peer(SrtpProfile::AeadAes128Gcm);
    sim.request(
        "transport-0",
        RequestBody::TransportProduce(vp8_producer("prod", PUB_SSRC, 0)),
    )
    .unwrap();
    let s = sim.add_peer_with(SrtpProfile::AesCm128HmacSha1_80, setup);
    let tid = sim.peers[s].transport_id.clone();
    sim.request(
        &tid,
        RequestBody::TransportConsume(vp8_consumer("cons", "prod", 0x2000, 0x3000, false)),
    )
    .unwrap();
    sim.peers[s].rtx_of.insert(0x3000, 0x2000);
    (p, s)
}

fn transport_stats(sim: &mut Sim, tid: &str) -> TransportStats {
    match sim.request(tid, RequestBody::TransportGetStats).unwrap() {
        ResponseBody::TransportStats(t) => t,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_certificate_other_than_the_signaled_one_fails_dtls_in_both_roles() {
    for peer_is_server in [false, true] {
        let mut sim = Sim::new(70);
        let setup = DtlsSetup {
            peer_is_server,
            wrong_fingerprint: true,
            ..Default::default()
        };
        let (p, s) = publisher_and_subscriber(&mut sim, setup);
        let tid = sim.peers[s].transport_id.clone();
        assert_eq!(
            dtls_outcome(&mut sim, &tid),
            DtlsState::Failed,
            "peer is DTLS {}",
            if peer_is_server { "server" } else { "client" }
        );
        // The publisher goes on; nothing reaches the unauthenticated subscriber.
        publish(&mut sim, p, 50, 100);
        sim.run_for(Duration::from_millis(200));
        assert!(!sim.peers[s].client.is_connected());
        assert!(sim.peers[s].rx_raw.is_empty());
        let t = transport_stats(&mut sim, &tid);
        assert_eq!(t.dtls_state, Some(DtlsState::Failed));
        assert_eq!(t.rtp_packets_sent, 0);
        let c = match sim
            .request("", RequestBody::WorkerGetMediaCounters)
            .unwrap()
        {
            ResponseBody::MediaCounters(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.dtls_failures, 1);
    }
}

#[test]
fn a_client_without_a_certificate_fails_dtls() {
    let mut sim = Sim::new(71);
    let setup = DtlsSetup {
        no_certificate: true,
        ..Default::default()
    };
    let (_, s) = publisher_and_subscriber(&mut sim, setup);
    let tid = sim.peers[s].transport_id.clone();
    let t0 = sim.now;
    assert_eq!(dtls_outcome(&mut sim, &tid), DtlsState::Failed);
    // At once (the fatal alert the handshake ends with), not at the 30 s handshake deadline.
    assert!(sim.now - t0 < Duration::from_secs(5), "{:?}", sim.now - t0);
    assert!(!sim.peers[s].client.is_connected());
}

#[test]
fn an_honest_peer_connects_in_both_roles_and_gets_media() {
    for peer_is_server in [false, true] {
        let mut sim = Sim::new(72);
        let setup = DtlsSetup {
            peer_is_server,
            ..Default::default()
        };
        let (p, s) = publisher_and_subscriber(&mut sim, setup);
        let tid = sim.peers[s].transport_id.clone();
        assert_eq!(dtls_outcome(&mut sim, &tid), DtlsState::Connected);
        let sent = publish(&mut sim, p, 50, 100);
        sim.run_for(Duration::from_millis(200));
        assert_eq!(delivered(&sim, s, &sent), sent.len());
    }
}

#[test]
fn the_fingerprint_cannot_change_after_connect() {
    let mut sim = Sim::new(73);
    let (_, s) = publisher_and_subscriber(&mut sim, DtlsSetup::default());
    let tid = sim.peers[s].transport_id.clone();
    let again = RequestBody::TransportConnect(ConnectParams::WebRtc {
        dtls_parameters: DtlsParameters {
            role: DtlsRole::Client,
            fingerprints: vec![DtlsFingerprint {
                algorithm: "sha-256".into(),
                value: ["AB"; 32].join(":"),
            }],
        },
    });
    assert!(
        sim.request(&tid, again).is_err(),
        "refused before the handshake"
    );
    assert_eq!(dtls_outcome(&mut sim, &tid), DtlsState::Connected);
    let again = RequestBody::TransportConnect(ConnectParams::WebRtc {
        dtls_parameters: DtlsParameters {
            role: DtlsRole::Client,
            fingerprints: vec![DtlsFingerprint {
                algorithm: "sha-256".into(),
                value: ["CD"; 32].join(":"),
            }],
        },
    });
    assert!(sim.request(&tid, again).is_err(), "and after it");
}

fn fp(algorithm: &str, value: String) -> DtlsFingerprint {
    DtlsFingerprint {
        algorithm: algorithm.into(),
        value,
    }
}

fn hex(n: usize, byte: &str) -> String {
    vec![byte; n].join(":")
}

#[test]
fn weak_or_malformed_fingerprints_are_refused_at_connect() {
    let refused: [fn(String) -> Vec<DtlsFingerprint>; 4] = [
        |_| vec![fp("sha-1", hex(20, "AB"))],
        |_| vec![fp("md5", hex(16, "AB"))],
        |_| vec![fp("sha-256", hex(20, "AB"))],
        |_| vec![fp("sha-256", "not a fingerprint".into())],
    ];
    let mut sim = Sim::new(74);
    for signal in refused {
        let setup = DtlsSetup {
            signal: Some(signal),
            ..Default::default()
        };
        let (_, r) = sim.try_add_peer_with(SrtpProfile::AeadAes128Gcm, setup);
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{}", e.reason);
    }
}

#[test]
fn the_strongest_algorithm_signaled_is_the_one_checked() {
    // A weak entry beside the right SHA-256 one is ignored: connects.
    let mut sim = Sim::new(75);
    let setup = DtlsSetup {
        signal: Some(|right| vec![fp("sha-1", hex(20, "AB")), fp("sha-256", right)]),
        ..Default::default()
    };
    let (_, s) = publisher_and_subscriber(&mut sim, setup);
    let tid = sim.peers[s].transport_id.clone();
    assert_eq!(dtls_outcome(&mut sim, &tid), DtlsState::Connected);
    // A wrong SHA-512 beside the right SHA-256: SHA-512 is what counts, and it does not match.
    let mut sim = Sim::new(76);
    let setup = DtlsSetup {
        signal: Some(|right| vec![fp("sha-256", right), fp("sha-512", hex(64, "CD"))]),
        ..Default::default()
    };
    let (_, s) = publisher_and_subscriber(&mut sim, setup);
    let tid = sim.peers[s].transport_id.clone();
    assert_eq!(dtls_outcome(&mut sim, &tid), DtlsState::Failed);
}
