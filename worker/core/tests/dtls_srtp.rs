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
use ferrosfu_worker_core::{SrtpProfile, SrtpSession};
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::crypto_provider::RTCCryptoProvider;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;

fn provider() -> Arc<dyn RTCCryptoProvider> {
    rtc_dtls::crypto_provider::default_provider().unwrap()
}

fn dtls_profile(p: SrtpProfile) -> SrtpProtectionProfile {
    match p {
        SrtpProfile::AeadAes256Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
        SrtpProfile::AeadAes128Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        SrtpProfile::AesCm128HmacSha1_80 => SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        SrtpProfile::AesCm128HmacSha1_32 => SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32,
    }
}

struct Side {
    ep: Endpoint,
    addr: SocketAddr,
    done: bool,
}

/// Runs the handshake to completion (or failure) by shuttling datagrams, advancing a simulated
/// clock for retransmission timers. Returns (client, server) or the error.
fn handshake(profile: SrtpProfile, reject_server_cert: bool) -> Result<(Side, Side), String> {
    let p = provider();
    let config = |is_client: bool, reject: bool| {
        let cert =
            Certificate::generate_self_signed(vec!["ferrosfu".to_owned()], p.crypto()).unwrap();
        let mut b = ConfigBuilder::default()
            .with_crypto_provider(p.clone())
            .with_certificates(vec![cert])
            .with_srtp_protection_profiles(vec![dtls_profile(profile)])
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            // WebRTC authenticates by fingerprint from signaling, not by a CA chain.
            .with_insecure_skip_verify(true);
        if reject {
            b = b.with_verify_peer_certificate(Some(Arc::new(|_, _| {
                Err(rtc_shared::error::Error::Other(
                    "fingerprint mismatch".into(),
                ))
            })));
        }
        Arc::new(b.build(is_client, None).unwrap())
    };
    let caddr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let saddr: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    let mut client = Side {
        ep: Endpoint::new(caddr, TransportProtocol::UDP, None),
        addr: caddr,
        done: false,
    };
    let mut server = Side {
        ep: Endpoint::new(saddr, TransportProtocol::UDP, Some(config(false, false))),
        addr: saddr,
        done: false,
    };
    #[allow(clippy::disallowed_methods)] // the handshake runs in simulated time from here
    let mut now = Instant::now();
    client
        .ep
        .connect(now, saddr, config(true, reject_server_cert), None)
        .map_err(|e| e.to_string())?;

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
    let material = state
        .export_keying_material("EXTRACTOR-dtls_srtp", &[], profile.keying_material_len())
        .unwrap();
    SrtpSession::from_keying_material(
        profile,
        &material.into_bytes(),
        state.is_client(),
        &provider(),
    )
    .unwrap()
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
