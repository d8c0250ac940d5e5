use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn remote(at: &LocalTransport, role: DtlsRole) -> RemoteTransport {
    RemoteTransport {
        addr: at.addr,
        ice_ufrag: at.ice_ufrag.clone(),
        ice_pwd: at.ice_pwd.clone(),
        ice_lite: false,
        fingerprint_sha256: at.fingerprint_sha256.clone(),
        our_dtls_role: role,
    }
}

/// Two of the generator's transports (one controlling DTLS client, one controlled DTLS server
/// answering checks, as against Janus) connect with the process identity and fresh credentials,
/// and carry SRTP both ways.
#[test]
fn generator_transports_connect_and_carry_srtp() {
    for profile in [Profile::Cm80, Profile::Gcm128] {
        let la = local_transport(addr("127.0.0.1:40001")).expect("local");
        let lb = local_transport(addr("127.0.0.1:50001")).expect("local");
        let now = Instant::now();
        let mut a = connect(
            la.clone(),
            remote(&lb, DtlsRole::Client),
            profile,
            IceRole::Controlling,
            now,
        )
        .expect("peer a");
        let mut b = connect(
            lb,
            remote(&la, DtlsRole::Server),
            profile,
            IceRole::Controlled,
            now,
        )
        .expect("peer b");
        assert!(ferrosfu_sim::client::connect_pair(
            &mut a, &mut b, None, now
        ));
        assert!(b.stats().stun_requests_answered > 0);
        let plain = [0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7, 0xab, 0xcd];
        let wire = a.protect_rtp(&plain).expect("protect");
        assert_eq!(b.handle_datagram(now, &wire), Some(Event::Rtp));
        assert_eq!(b.unprotect_rtp(&wire).as_deref(), Some(&plain[..]));
    }
}

/// The raw forwarder's peers: keyed in advance, no handshake.
#[test]
fn pre_keyed_transports_share_keys() {
    let (k1, k2) = (
        SrtpKey::random(Profile::Cm80),
        SrtpKey::random(Profile::Cm80),
    );
    let mut a = pre_keyed(addr("127.0.0.1:1"), Profile::Cm80, &k1, &k2).expect("a");
    let mut b = pre_keyed(addr("127.0.0.1:2"), Profile::Cm80, &k2, &k1).expect("b");
    assert!(a.is_connected() && b.is_connected());
    let plain = [0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7, 1, 2, 3];
    let wire = b.protect_rtp(&plain).expect("protect");
    assert_eq!(a.unprotect_rtp(&wire).as_deref(), Some(&plain[..]));
    assert_eq!(a.poll_timeout(), None, "no ICE, no DTLS");
}
