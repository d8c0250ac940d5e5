use super::*;
use ferrosfu_worker_core::{IceCredentials, IceLite, IceState, Protocol, StunOutcome, Tuple};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn remote(at: SocketAddr, ufrag: &str, pwd: &str, lite: bool, role: DtlsRole) -> RemoteTransport {
    RemoteTransport {
        addr: at,
        ice_ufrag: ufrag.into(),
        ice_pwd: pwd.into(),
        ice_lite: lite,
        fingerprint_sha256: Identity::get().expect("identity").fingerprint().to_owned(),
        our_dtls_role: role,
    }
}

/// Moves datagrams between `a` and `b` (STUN from `a` goes to `lite` when given) until both
/// are connected; time advances 10 ms per round.
fn drive(a: &mut Peer, b: &mut Peer, mut lite: Option<&mut IceLite>, a_addr: SocketAddr) {
    let mut now = Instant::now();
    for _ in 0..500 {
        if a.is_connected() && b.is_connected() {
            return;
        }
        for p in [&mut *a, &mut *b] {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                assert!(p.handle_timeout(now).is_none(), "no failure expected");
            }
        }
        while let Some(d) = a.poll_transmit() {
            match (&mut lite, d[0]) {
                (Some(l), 0..=3) => {
                    let tuple = Tuple {
                        local: b.local.addr,
                        remote: a_addr,
                        protocol: Protocol::Udp,
                    };
                    match l.handle_stun(&d, tuple, now) {
                        StunOutcome::Reply(r) => {
                            let _ = a.handle_datagram(now, &r);
                        }
                        StunOutcome::Drop(why) => panic!("ICE-lite dropped our check: {why:?}"),
                    }
                }
                _ => {
                    let _ = b.handle_datagram(now, &d);
                }
            }
        }
        while let Some(d) = b.poll_transmit() {
            let _ = a.handle_datagram(now, &d);
        }
        now += Duration::from_millis(10);
    }
    panic!("not connected: {a:?} {b:?}");
}

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xab; 100]);
    p
}

fn media_one_way(from: &mut Peer, to: &mut Peer) {
    let now = Instant::now();
    let plain = rtp(7, 1000);
    let wire = from.protect_rtp(&plain).expect("protect");
    assert_ne!(&wire[12..], &plain[12..], "payload encrypted");
    assert_eq!(to.handle_datagram(now, &wire), Some(Event::Rtp));
    assert_eq!(to.unprotect_rtp(&wire).as_deref(), Some(&plain[..]));
    assert!(to.unprotect_rtp(&wire).is_none(), "replay refused");
}

fn media_both_ways(a: &mut Peer, b: &mut Peer) {
    media_one_way(a, b);
    media_one_way(b, a);
}

#[test]
fn checks_pass_the_worker_ice_lite_and_dtls_keys_srtp_both_ways() {
    for profile in [Profile::Cm80, Profile::Gcm128] {
        let crypto = rtc_srtp::crypto::default_provider().expect("provider");
        let creds = IceCredentials {
            ufrag: "srvufrag".into(),
            pwd: "server-password-0123456789".into(),
        };
        let mut lite = IceLite::new(creds.clone(), crypto);
        let (a_addr, b_addr) = (addr("127.0.0.1:40000"), addr("127.0.0.1:50000"));
        let now = Instant::now();
        // a: the generator's client (controlling, DTLS client); b: a DTLS server standing
        // in for the worker's DTLS, ICE answered by the worker's IceLite.
        let mut a = Peer::new(
            local_transport(a_addr).expect("local"),
            remote(b_addr, &creds.ufrag, &creds.pwd, true, DtlsRole::Client),
            profile,
            IceRole::Controlling,
            now,
        )
        .expect("peer a");
        let mut b = Peer::new(
            local_transport(b_addr).expect("local"),
            remote(
                a_addr,
                "unused",
                "unused-password-0123456789",
                false,
                DtlsRole::Server,
            ),
            profile,
            IceRole::Controlled,
            now,
        )
        .expect("peer b");
        drive(&mut a, &mut b, Some(&mut lite), a_addr);
        assert_eq!(lite.state(), IceState::Completed, "USE-CANDIDATE nominated");
        media_both_ways(&mut a, &mut b);
    }
}

#[test]
fn a_controlled_full_ice_peer_answers_checks() {
    let (a_addr, b_addr) = (addr("127.0.0.1:40001"), addr("127.0.0.1:50001"));
    let now = Instant::now();
    let la = local_transport(a_addr).expect("local");
    let lb = local_transport(b_addr).expect("local");
    let mut a = Peer::new(
        la.clone(),
        remote(b_addr, &lb.ice_ufrag, &lb.ice_pwd, false, DtlsRole::Server),
        Profile::Gcm128,
        IceRole::Controlling,
        now,
    )
    .expect("peer a");
    let mut b = Peer::new(
        lb,
        remote(a_addr, &la.ice_ufrag, &la.ice_pwd, false, DtlsRole::Client),
        Profile::Gcm128,
        IceRole::Controlled,
        now,
    )
    .expect("peer b");
    drive(&mut a, &mut b, None, a_addr);
    assert!(b.stats().stun_requests_answered > 0);
    media_both_ways(&mut a, &mut b);
}

#[test]
fn garbage_and_forged_stun_are_dropped() {
    let now = Instant::now();
    let la = local_transport(addr("127.0.0.1:40002")).expect("local");
    let mut a = Peer::new(
        la,
        remote(
            addr("127.0.0.1:50002"),
            "r",
            "remote-password-0123456789",
            true,
            DtlsRole::Client,
        ),
        Profile::Cm80,
        IceRole::Controlling,
        now,
    )
    .expect("peer");
    assert!(a.handle_timeout(now).is_none());
    let check = a.poll_transmit().expect("a first check");
    // Our own check sent back: wrong ufrag for us.
    assert_eq!(a.handle_datagram(now, &check), None);
    for junk in [
        &[][..],
        &[0u8, 1, 0, 0][..],
        &[22u8; 40][..],
        &[0x80u8, 96, 0][..],
    ] {
        assert_eq!(a.handle_datagram(now, junk), None);
    }
    assert!(!a.is_connected());
    assert!(a.stats().stun_dropped >= 2);
}
