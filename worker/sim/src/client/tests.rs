use super::*;
use crate::dtls::{certificate, config, crypto, verify_first};
use ferrosfu_worker_core::{
    IceCredentials, IceLite, IceState, Protocol, StunOutcome, Tuple, fingerprint,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// Credentials of one side.
struct Side {
    addr: SocketAddr,
    ufrag: &'static str,
    pwd: &'static str,
}

fn side(at: &str, ufrag: &'static str, pwd: &'static str) -> Side {
    Side {
        addr: addr(at),
        ufrag,
        pwd,
    }
}

/// A transport from `local` to `remote`; DTLS client or server, each side authenticating the
/// other's certificate by its fingerprint.
fn transport(
    local: &Side,
    remote: &Side,
    role: IceRole,
    dtls_client: bool,
    profile: SrtpProfile,
    now: Instant,
) -> ClientTransport {
    let dtls_config = config(
        dtls_client,
        vec![certificate(&local.addr.to_string())],
        profile,
        Some(verify_first(|der| fingerprint("sha-256", der).is_some())),
    );
    let endpoint = Endpoint::new(
        local.addr,
        rtc_shared::TransportProtocol::UDP,
        (!dtls_client).then(|| dtls_config.clone()),
    );
    ClientTransport::new(
        ClientConfig {
            local_ufrag: local.ufrag.into(),
            local_pwd: local.pwd.into(),
            remote: remote.addr,
            remote_ufrag: remote.ufrag.into(),
            remote_pwd: remote.pwd.into(),
            role,
            priority: 2_130_706_431,
            tie_breaker: 42,
            consent: Consent::Spread(Duration::from_secs(5)),
            profile,
            dtls: ClientDtls {
                endpoint,
                connect: dtls_client.then_some(dtls_config),
            },
        },
        now,
    )
}

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xab; 100]);
    p
}

fn media_one_way(from: &mut ClientTransport, to: &mut ClientTransport, now: Instant) {
    let plain = rtp(7, 1000);
    let wire = from.protect_rtp(&plain).expect("protect");
    assert_ne!(&wire[12..], &plain[12..], "payload encrypted");
    assert_eq!(to.handle_datagram(now, &wire), Some(Event::Rtp));
    assert_eq!(to.unprotect_rtp(&wire).as_deref(), Some(&plain[..]));
    assert!(to.unprotect_rtp(&wire).is_none(), "replay refused");
}

fn media_both_ways(a: &mut ClientTransport, b: &mut ClientTransport, now: Instant) {
    media_one_way(a, b, now);
    media_one_way(b, a, now);
}

#[test]
fn checks_pass_the_worker_ice_lite_and_dtls_keys_srtp_both_ways() {
    for profile in [SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AeadAes128Gcm] {
        let creds = IceCredentials {
            ufrag: "srvufrag".into(),
            pwd: "server-password-0123456789".into(),
        };
        let mut lite = IceLite::new(creds.clone(), crypto());
        let a = side("127.0.0.1:40000", "cli1", "client-password-0123456789");
        let b = side("127.0.0.1:50000", "srvufrag", "server-password-0123456789");
        let now = crate::drive::start();
        // a: the client (controlling, DTLS client); b: a DTLS server standing in for the
        // worker's DTLS, ICE answered by the worker's IceLite.
        let mut ca = transport(&a, &b, IceRole::Controlling, true, profile, now);
        let mut cb = transport(&b, &a, IceRole::Controlled, false, profile, now);
        let tuple = Tuple {
            local: b.addr,
            remote: a.addr,
            protocol: Protocol::Udp,
        };
        assert!(connect_pair(
            &mut ca,
            &mut cb,
            Some((&mut lite, tuple)),
            now
        ));
        assert_eq!(lite.state(), IceState::Completed, "USE-CANDIDATE nominated");
        media_both_ways(&mut ca, &mut cb, now);
    }
}

#[test]
fn a_controlled_full_ice_peer_answers_checks() {
    let a = side("127.0.0.1:40001", "aaaa", "a-password-0123456789-abc");
    let b = side("127.0.0.1:50001", "bbbb", "b-password-0123456789-abc");
    let now = crate::drive::start();
    let profile = SrtpProfile::AeadAes128Gcm;
    let mut ca = transport(&a, &b, IceRole::Controlling, false, profile, now);
    let mut cb = transport(&b, &a, IceRole::Controlled, true, profile, now);
    assert!(connect_pair(&mut ca, &mut cb, None, now));
    assert!(cb.stats().stun_requests_answered > 0);
    media_both_ways(&mut ca, &mut cb, now);
}

#[test]
fn garbage_and_forged_stun_are_dropped() {
    let now = crate::drive::start();
    let a = side("127.0.0.1:40002", "aaaa", "a-password-0123456789-abc");
    let r = side("127.0.0.1:50002", "r", "remote-password-0123456789");
    let mut ca = transport(
        &a,
        &r,
        IceRole::Controlling,
        true,
        SrtpProfile::AesCm128HmacSha1_80,
        now,
    );
    assert!(ca.handle_timeout(now).is_none());
    let check = ca.poll_transmit().expect("a first check");
    // Our own check sent back: wrong ufrag for us.
    assert_eq!(ca.handle_datagram(now, &check), None);
    for junk in [
        &[][..],
        &[0u8, 1, 0, 0][..],
        &[22u8; 40][..],
        &[0x80u8, 96, 0][..],
    ] {
        assert_eq!(ca.handle_datagram(now, junk), None);
    }
    assert!(!ca.is_connected());
    assert!(ca.stats().stun_dropped >= 2);
}

#[test]
fn consent_checks_do_not_nominate_and_stop_when_told() {
    let now = crate::drive::start();
    let a = side("127.0.0.1:40003", "aaaa", "a-password-0123456789-abc");
    let r = side("127.0.0.1:50003", "srvufrag", "server-password-0123456789");
    let mut lite = IceLite::new(
        IceCredentials {
            ufrag: r.ufrag.into(),
            pwd: r.pwd.into(),
        },
        crypto(),
    );
    let mut ca = transport(
        &a,
        &r,
        IceRole::Controlling,
        true,
        SrtpProfile::AeadAes128Gcm,
        now,
    );
    let tuple = Tuple {
        local: r.addr,
        remote: a.addr,
        protocol: Protocol::Udp,
    };
    let _ = ca.handle_timeout(now);
    let first = ca.poll_transmit().expect("a first check");
    let StunOutcome::Reply(reply) = lite.handle_stun(&first, tuple, now) else {
        panic!("the first check is answered");
    };
    assert_eq!(ca.handle_datagram(now, &reply), Some(Event::IceConnected));
    assert_eq!(lite.state(), IceState::Completed);
    while ca.poll_transmit().is_some() {} // the ClientHello
    // The next check is a consent check 4–6 s later, without USE-CANDIDATE (DTLS
    // retransmissions of the unanswered ClientHello come in between).
    let (due, consent) = loop {
        let t = ca.poll_timeout().expect("a consent check is planned");
        assert!(t <= now + Duration::from_secs(6), "no check by 6 s");
        let _ = ca.handle_timeout(t);
        if let Some(stun) = std::iter::from_fn(|| ca.poll_transmit()).find(|d| d[0] <= 3) {
            break (t, stun);
        }
    };
    assert!(due >= now + Duration::from_secs(4), "{:?}", due - now);
    let mut m = Message::new();
    m.unmarshal_binary(&consent).expect("STUN");
    assert!(!m.contains(rtc_stun::attributes::ATTR_USE_CANDIDATE));
    ca.set_checks(false, due);
    let later = due + Duration::from_secs(60);
    let _ = ca.handle_timeout(later);
    assert!(
        std::iter::from_fn(|| ca.poll_transmit()).all(|d| d[0] > 3),
        "no check after set_checks(false)"
    );
}
