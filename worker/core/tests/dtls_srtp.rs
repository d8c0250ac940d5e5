//! DTLS-SRTP end to end, in memory and simulated time: two `rtc-dtls` endpoints (the sans-IO DTLS
//! the core will drive) handshake with self-signed certificates and `use_srtp`, each side exports
//! "EXTRACTOR-dtls_srtp" keying material, and `SrtpSession`s built from it on both sides
//! interoperate for every profile. Also: a pinned remote fingerprint that does not match fails
//! the handshake.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferrosfu_sim::dtls::{certificate, config, dtls_profile, endpoint, srtp_session};
use ferrosfu_worker_core::{SrtpProfile, SrtpSession};
use rtc_dtls::config::VerifyPeerCertificateFn;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};

struct Side {
    ep: Endpoint,
    addr: SocketAddr,
    done: bool,
}

/// Runs the handshake to completion (or failure) by shuttling datagrams, advancing a simulated
/// clock for retransmission timers. Returns (client, server) or the error.
fn handshake(profile: SrtpProfile, reject_server_cert: bool) -> Result<(Side, Side), String> {
    let side_config = |is_client: bool, reject: bool| {
        // WebRTC authenticates by fingerprint from signaling, not by a CA chain.
        let verify = reject.then(|| -> VerifyPeerCertificateFn {
            Arc::new(|_, _| {
                Err(rtc_shared::error::Error::Other(
                    "fingerprint mismatch".into(),
                ))
            })
        });
        config(is_client, vec![certificate("ferrosfu")], profile, verify)
    };
    let caddr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let saddr: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    #[allow(clippy::disallowed_methods)] // the handshake runs in simulated time from here
    let mut now = Instant::now();
    let mut server = Side {
        ep: endpoint(true, saddr, caddr, side_config(false, false), now),
        addr: saddr,
        done: false,
    };
    let mut client = Side {
        ep: endpoint(
            false,
            caddr,
            saddr,
            side_config(true, reject_server_cert),
            now,
        ),
        addr: caddr,
        done: false,
    };

    for _ in 0..200 {
        let moved = pump(&mut client, &mut server, now)? | pump(&mut server, &mut client, now)?;
        if client.done && server.done {
            return Ok((client, server));
        }
        if !moved {
            now += Duration::from_millis(100);
            client
                .ep
                .handle_timeout(saddr, now)
                .map_err(|e| e.to_string())?;
        }
    }
    Err("handshake did not complete".into())
}

/// Delivers everything `from` wants to send to `to`; whether anything moved.
fn pump(from: &mut Side, to: &mut Side, now: Instant) -> Result<bool, String> {
    let mut moved = false;
    while let Some(t) = from.ep.poll_transmit() {
        moved = true;
        let events = to
            .ep
            .read(now, from.addr, None, BytesMut::from(&t.message[..]))
            .map_err(|e| e.to_string())?;
        to.done |= events
            .iter()
            .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
    }
    Ok(moved)
}

fn session(side: &Side, remote: SocketAddr, profile: SrtpProfile) -> SrtpSession {
    let state = side.ep.get_connection_state(remote).unwrap();
    assert_eq!(state.srtp_protection_profile(), dtls_profile(profile));
    srtp_session(&side.ep, remote, profile)
}

#[test]
fn keying_material_from_a_real_handshake_keys_interoperable_srtp_sessions() {
    for profile in SrtpProfile::PREFERENCE {
        let (client, server) = handshake(profile, false).unwrap();
        let mut c = session(&client, server.addr, profile);
        let mut s = session(&server, client.addr, profile);
        let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd];
        rtp.extend_from_slice(b"vp8 payload");
        let wire = c.protect_rtp(&rtp).unwrap();
        assert_eq!(
            &s.unprotect_rtp(&wire).unwrap()[..],
            &rtp[..],
            "{profile:?}"
        );
        let wire = s.protect_rtp(&rtp).unwrap();
        assert_eq!(
            &c.unprotect_rtp(&wire).unwrap()[..],
            &rtp[..],
            "{profile:?}"
        );
    }
}

#[test]
fn a_rejected_peer_certificate_fails_the_handshake() {
    let err = handshake(SrtpProfile::AeadAes128Gcm, true)
        .err()
        .expect("handshake must fail");
    assert!(err.contains("fingerprint mismatch"), "{err}");
}
