//! The built-in TURN server against coturn's own test clients (Debian `coturn`):
//! `turnutils_uclient` allocates, creates permissions, binds channels, refreshes and relays
//! through ferrosfu's TURN over UDP, TCP and TLS to a `turnutils_peer` echo peer standing in for
//! this node's media port; the same client aimed at an address that is not this node's media is
//! refused (no open relay); wrong, expired and over-quota credentials are refused.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ferrosfu::config::{PortRange, TurnConfig};
use ferrosfu::turn::{AllowedPeers, Turn, TurnSettings, credentials};

const SECRET: &str = "turn-test-secret";
const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A free UDP port on 127.0.0.1 (released at once; the echo peer takes it).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `turnutils_peer`, echoing on 127.0.0.1:`port`.
struct Peer {
    _child: tokio::process::Child,
}

impl Peer {
    async fn start(port: u16) -> Peer {
        let child = tokio::process::Command::new("turnutils_peer")
            .args(["-L", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("turnutils_peer (Debian package coturn; scripts/setup installs it)");
        // Ready when its port is taken.
        for _ in 0..200 {
            if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                return Peer { _child: child };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("turnutils_peer never bound 127.0.0.1:{port}");
    }
}

fn tls_config() -> Arc<tokio_rustls::rustls::ServerConfig> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    Arc::new(cfg)
}

async fn turn(media_port: u16, relay_ports: (u16, u16), per_user: usize, node: usize) -> Arc<Turn> {
    let config = TurnConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        tls_listen: Some("127.0.0.1:0".parse().unwrap()),
        secret: Some(SECRET.into()),
        realm: "ferrosfu.test".into(),
        credential_ttl: Duration::from_secs(3600),
        public_host: None,
        relay_ip: None,
        relay_ports: PortRange {
            min: relay_ports.0,
            max: relay_ports.1,
        },
        max_allocations: node,
        max_allocations_per_user: per_user,
    };
    Turn::start(TurnSettings {
        config,
        tls: Some(tls_config()),
        allowed: AllowedPeers {
            ips: vec![LOCALHOST],
            // turnutils_uclient binds a channel to the peer's port + 1 too (its RTCP).
            ports: vec![media_port..=media_port + 1],
        },
        relay_ip: LOCALHOST,
        public_host: "127.0.0.1".into(),
    })
    .await
    .unwrap()
}

struct Run {
    ok: bool,
    sent: u64,
    received: u64,
    output: String,
}

/// Runs `turnutils_uclient` with `args` against `server`, bounded in time.
async fn uclient(server: SocketAddr, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new("turnutils_uclient");
    cmd.args(args)
        .args(["-p", &server.port().to_string(), "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("turnutils_uclient finished within 60 s")
        .expect("turnutils_uclient runs");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let figure = |name: &str| -> u64 {
        output
            .lines()
            .filter_map(|l| l.split_once(name))
            .filter_map(|(_, rest)| {
                rest.split_whitespace()
                    .next()?
                    .trim_matches(',')
                    .parse()
                    .ok()
            })
            .next_back()
            .unwrap_or(0)
    };
    Run {
        ok: out.status.success(),
        sent: figure("tot_send_msgs="),
        received: figure("tot_recv_msgs="),
        output,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_clients_relay_through_udp_tcp_and_tls() {
    let media = free_udp_port();
    let _peer = Peer::start(media).await;
    let t = turn(media, (29300, 29399), 10, 100).await;
    let media_s = media.to_string();
    let base = [
        "-W",
        SECRET,
        "-u",
        "alice",
        "-e",
        "127.0.0.1",
        "-r",
        &media_s,
        "-n",
        "30",
        "-c",
    ];
    for (name, extra, port) in [
        ("udp", vec![], t.udp_addr()),
        ("tcp", vec!["-t"], t.tcp_addr()),
        ("tls", vec!["-t", "-S"], t.tls_addr().unwrap()),
    ] {
        let before = t
            .stats()
            .relayed_out_packets
            .load(std::sync::atomic::Ordering::Relaxed);
        let live_before = t
            .stats()
            .allocations
            .load(std::sync::atomic::Ordering::Relaxed);
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let r = uclient(port, &args).await;
        eprintln!("{name}: sent {} received {}", r.sent, r.received);
        assert!(r.ok, "{name}: uclient failed:\n{}", r.output);
        assert!(r.sent >= 30, "{name}: sent {}:\n{}", r.sent, r.output);
        assert_eq!(r.received, r.sent, "{name}: echoes lost:\n{}", r.output);
        let relayed = t
            .stats()
            .relayed_out_packets
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            relayed >= before + 30,
            "{name}: relayed {}",
            relayed - before
        );
        if name != "udp" {
            // A TCP/TLS client's allocations end with its control connection.
            let t0 = std::time::Instant::now();
            while t
                .stats()
                .allocations
                .load(std::sync::atomic::Ordering::Relaxed)
                > live_before
            {
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "{name}: allocation kept"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // Channels (the default) and Send indications (-s) both go through.
    let args: Vec<&str> = base.iter().copied().chain(["-s"]).collect();
    let r = uclient(t.udp_addr(), &args).await;
    assert!(
        r.ok && r.received == r.sent && r.sent >= 30,
        "send indications:\n{}",
        r.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_open_relay_and_bad_credentials_are_refused() {
    let media = free_udp_port();
    let elsewhere = loop {
        let p = free_udp_port();
        if p > media + 1 || p < media {
            break p;
        }
    };
    let _peer = Peer::start(media).await;
    let _other = Peer::start(elsewhere).await;
    let t = turn(media, (29400, 29499), 10, 100).await;
    let refused = |reason: &str| {
        t.stats()
            .refusals()
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    };
    // Another port of this host, and another address: not this node's media.
    for (ip, port) in [("127.0.0.1", elsewhere), ("127.0.0.2", media)] {
        let port = port.to_string();
        let r = uclient(
            t.udp_addr(),
            &[
                "-W", SECRET, "-u", "mallory", "-e", ip, "-r", &port, "-n", "5",
            ],
        )
        .await;
        assert_eq!(r.received, 0, "{ip}:{port} relayed:\n{}", r.output);
    }
    assert!(refused("forbidden_peer") >= 2, "{:?}", t.stats().refusals());

    // A wrong secret: 401 from the engine, nothing allocated.
    let media_s = media.to_string();
    let before = t
        .stats()
        .allocations_total
        .load(std::sync::atomic::Ordering::Relaxed);
    let r = uclient(
        t.udp_addr(),
        &[
            "-W",
            "not-the-secret",
            "-u",
            "eve",
            "-e",
            "127.0.0.1",
            "-r",
            &media_s,
            "-n",
            "5",
        ],
    )
    .await;
    assert!(
        !r.ok && r.received == 0,
        "wrong secret accepted:\n{}",
        r.output
    );
    // An expired credential (its own HMAC is right): refused as expired.
    let (user, pass) = credentials::issue(SECRET.as_bytes(), 0, "old", 1_000);
    let r = uclient(
        t.udp_addr(),
        &[
            "-u",
            &user,
            "-w",
            &pass,
            "-e",
            "127.0.0.1",
            "-r",
            &media_s,
            "-n",
            "5",
        ],
    )
    .await;
    assert!(
        !r.ok && r.received == 0,
        "expired credential accepted:\n{}",
        r.output
    );
    assert!(refused("expired") >= 1, "{:?}", t.stats().refusals());
    assert_eq!(
        t.stats()
            .allocations_total
            .load(std::sync::atomic::Ordering::Relaxed),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_floods_stop_at_the_user_and_node_quotas() {
    let media = free_udp_port();
    let _peer = Peer::start(media).await;
    let media_s = media.to_string();
    // Per user: 2 allocations; 4 clients of one user (-m 4, no RTCP) get 2.
    let t = turn(media, (29500, 29549), 2, 100).await;
    let r = uclient(
        t.udp_addr(),
        &[
            "-W",
            SECRET,
            "-u",
            "flood",
            "-e",
            "127.0.0.1",
            "-r",
            &media_s,
            "-n",
            "5",
            "-m",
            "4",
            "-c",
        ],
    )
    .await;
    let refused = t.stats().refusals();
    assert!(
        refused.iter().any(|(r, n)| *r == "user_quota" && *n >= 1),
        "{refused:?}\n{}",
        r.output
    );
    assert!(
        t.stats()
            .allocations_total
            .load(std::sync::atomic::Ordering::Relaxed)
            <= 2
    );
    // Per node: 3 allocations; two users of 2 each get 3 in all.
    let t = turn(media, (29550, 29599), 10, 3).await;
    // Both at once: allocations live while their client runs.
    let args = |user: &'static str| {
        vec![
            "-W",
            SECRET,
            "-u",
            user,
            "-e",
            "127.0.0.1",
            "-r",
            &media_s,
            "-n",
            "50",
            "-m",
            "2",
            "-c",
        ]
    };
    let (a, b) = (args("a"), args("b"));
    tokio::join!(uclient(t.udp_addr(), &a), uclient(t.udp_addr(), &b));
    let refused = t.stats().refusals();
    assert!(
        refused.iter().any(|(r, _)| *r == "node_quota"),
        "{refused:?}"
    );
    assert!(
        t.stats()
            .allocations_total
            .load(std::sync::atomic::Ordering::Relaxed)
            <= 3
    );
}

/// A hand-rolled TURN client speaking to the UDP listener, for exact codes.
mod wire {
    use std::net::SocketAddr;
    use std::time::Duration;

    use ferrosfu::turn::credentials;
    use turn_server_proto::types::attribute::{
        ChannelNumber, Lifetime, RequestedTransport, XorPeerAddress, XorRelayedAddress,
    };
    use turn_server_proto::types::message::{ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, REFRESH};
    use turn_server_proto::types::stun::attribute::{ErrorCode, Nonce, Realm, Username};
    use turn_server_proto::types::stun::message::{
        IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageClass, MessageWrite,
        MessageWriteExt, MessageWriteVec, Method, TransactionId,
    };

    pub(super) struct Client {
        pub(super) sock: tokio::net::UdpSocket,
        pub(super) server: SocketAddr,
        pub(super) user: String,
        pub(super) pass: String,
        pub(super) realm: String,
        pub(super) nonce: String,
    }

    /// What came back: the class, the error code if any, the raw bytes.
    pub(super) struct Reply {
        pub(super) class: MessageClass,
        pub(super) code: Option<u16>,
        pub(super) reason: String,
        pub(super) bytes: Vec<u8>,
    }

    pub(super) enum Attr {
        Transport(u8),
        Peer(SocketAddr),
        Channel(u16),
        Lifetime(u32),
    }

    impl Client {
        pub(super) async fn new(
            server: SocketAddr,
            user: &str,
            secret: &str,
            expiry_from_now: i64,
        ) -> Self {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let user = format!("{}:{user}", now + expiry_from_now);
            let pass = credentials::password(secret.as_bytes(), &user);
            Client {
                sock: tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
                server,
                user,
                pass,
                realm: String::new(),
                nonce: String::new(),
            }
        }

        pub(super) async fn send_raw(&self, bytes: &[u8]) -> Option<Vec<u8>> {
            self.sock.send_to(bytes, self.server).await.unwrap();
            let mut buf = vec![0u8; 2048];
            match tokio::time::timeout(Duration::from_millis(500), self.sock.recv(&mut buf)).await {
                Ok(Ok(n)) => Some(buf[..n].to_vec()),
                _ => None,
            }
        }

        /// Sends `method` with `attrs`, authenticated once a nonce is known; learns the realm
        /// and nonce from a 401.
        pub(super) async fn request(&mut self, method: Method, attrs: &[Attr]) -> Reply {
            let tid = TransactionId::generate();
            let mut m = Message::builder(
                turn_server_proto::types::stun::message::MessageType::from_class_method(
                    MessageClass::Request,
                    method,
                ),
                tid,
                MessageWriteVec::new(),
            );
            for a in attrs {
                match a {
                    Attr::Transport(p) => m.add_attribute(&RequestedTransport::new(*p)),
                    Attr::Peer(addr) => m.add_attribute(&XorPeerAddress::new(*addr, tid)),
                    Attr::Channel(c) => m.add_attribute(&ChannelNumber::new(*c)),
                    Attr::Lifetime(s) => m.add_attribute(&Lifetime::new(*s)),
                }
                .unwrap();
            }
            if !self.nonce.is_empty() {
                m.add_attribute(&Username::new(&self.user).unwrap())
                    .unwrap();
                m.add_attribute(&Realm::new(&self.realm).unwrap()).unwrap();
                m.add_attribute(&Nonce::new(&self.nonce).unwrap()).unwrap();
                m.add_message_integrity(&self.key().into(), IntegrityAlgorithm::Sha1)
                    .unwrap();
            }
            let bytes = self.send_raw(&m.finish()).await.expect("an answer");
            let msg = Message::from_bytes(&bytes).expect("STUN");
            assert_eq!(msg.transaction_id(), tid);
            let (code, reason) = match msg.attribute::<ErrorCode>() {
                Ok(e) => (Some(e.code()), e.reason().to_owned()),
                Err(_) => (None, String::new()),
            };
            if code == Some(401) {
                if let (Ok(r), Ok(n)) = (msg.attribute::<Realm>(), msg.attribute::<Nonce>()) {
                    self.realm = r.realm().to_owned();
                    self.nonce = n.nonce().to_owned();
                }
            }
            Reply {
                class: msg.class(),
                code,
                reason,
                bytes,
            }
        }

        pub(super) fn key(&self) -> LongTermKeyCredentials {
            LongTermKeyCredentials::new(self.user.clone(), self.pass.clone(), self.realm.clone())
        }

        /// The answer carries a MESSAGE-INTEGRITY made with our credential.
        pub(super) fn signed(&self, r: &Reply) -> bool {
            Message::from_bytes(&r.bytes)
                .unwrap()
                .validate_integrity(&self.key().into())
                .is_ok()
        }

        pub(super) fn relayed(r: &Reply) -> SocketAddr {
            let msg = Message::from_bytes(&r.bytes).unwrap();
            msg.attribute::<XorRelayedAddress>()
                .unwrap()
                .addr(msg.transaction_id())
        }
    }

    pub(super) use turn_server_proto::types::attribute::RequestedTransport as Rt;
    pub(super) const METHODS: (Method, Method, Method, Method) =
        (ALLOCATE, CREATE_PERMISSION, CHANNEL_BIND, REFRESH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_answers_with_the_rfc_codes() {
    use std::sync::atomic::Ordering::Relaxed;
    use turn_server_proto::types::stun::message::MessageClass::{Error, Success};
    use wire::{Attr, Client, METHODS, Rt};
    let (allocate, permission, channel, refresh) = METHODS;
    let media = free_udp_port();
    let t = turn(media, (29600, 29649), 1, 100).await;
    let server = t.udp_addr();

    let mut c = Client::new(server, "bob", SECRET, 3600).await;
    // Garbage and truncated STUN get no answer (counted), and the server goes on.
    assert!(c.send_raw(b"\x00\x01\x00\x08garbage").await.is_none());
    assert!(c.send_raw(&[0xff; 64]).await.is_none());
    let r = c.request(allocate, &[Attr::Transport(Rt::UDP)]).await;
    assert_eq!(
        (r.class, r.code),
        (Error, Some(401)),
        "unauthenticated first Allocate"
    );
    // A TCP relay is not offered (442), signed with the user's key.
    let r = c.request(allocate, &[Attr::Transport(Rt::TCP)]).await;
    assert_eq!((r.class, r.code), (Error, Some(442)), "{}", r.reason);
    assert!(c.signed(&r));
    let r = c.request(allocate, &[Attr::Transport(Rt::UDP)]).await;
    assert_eq!(r.class, Success, "{:?} {}", r.code, r.reason);
    let relayed = Client::relayed(&r);
    assert_eq!(relayed.ip(), LOCALHOST);
    assert!((29600..=29649).contains(&relayed.port()));
    assert_eq!(t.stats().allocations.load(Relaxed), 1);

    // Permissions and channels toward anything but this node's media: 403, signed.
    let not_media: SocketAddr = "127.0.0.2:9".parse().unwrap();
    let r = c.request(permission, &[Attr::Peer(not_media)]).await;
    assert_eq!((r.class, r.code), (Error, Some(403)), "{}", r.reason);
    assert!(c.signed(&r));
    let other_port = SocketAddr::new(LOCALHOST, media.wrapping_add(7));
    let r = c
        .request(channel, &[Attr::Channel(0x4000), Attr::Peer(other_port)])
        .await;
    assert_eq!((r.class, r.code), (Error, Some(403)));
    let media_addr = SocketAddr::new(LOCALHOST, media);
    let r = c.request(permission, &[Attr::Peer(media_addr)]).await;
    assert_eq!(r.class, Success, "{:?} {}", r.code, r.reason);
    let r = c
        .request(channel, &[Attr::Channel(0x4000), Attr::Peer(media_addr)])
        .await;
    assert_eq!(r.class, Success, "{:?} {}", r.code, r.reason);

    // Quota of one allocation per user: a second client of the same user gets 486.
    let mut c2 = Client::new(server, "bob", SECRET, 3600).await;
    c2.request(allocate, &[Attr::Transport(Rt::UDP)]).await;
    let r = c2.request(allocate, &[Attr::Transport(Rt::UDP)]).await;
    assert_eq!((r.class, r.code), (Error, Some(486)), "{}", r.reason);

    // Refresh keeps the allocation, lifetime 0 deletes it (the relay port is released).
    let r = c.request(refresh, &[Attr::Lifetime(600)]).await;
    assert_eq!(r.class, Success, "{:?} {}", r.code, r.reason);
    let r = c.request(refresh, &[Attr::Lifetime(0)]).await;
    assert_eq!(r.class, Success, "{:?} {}", r.code, r.reason);
    let t0 = std::time::Instant::now();
    while t.stats().allocations.load(Relaxed) != 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "refresh 0 kept the allocation"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ... which frees the user's quota.
    let r = c2.request(allocate, &[Attr::Transport(Rt::UDP)]).await;
    assert_eq!(r.class, Success, "{:?} {}", r.code, r.reason);

    // Wrong credential: 401 from the engine; expired: 401 "credential expired".
    let mut bad = Client::new(server, "eve", "wrong-secret", 3600).await;
    bad.request(allocate, &[Attr::Transport(Rt::UDP)]).await;
    let r = bad.request(allocate, &[Attr::Transport(Rt::UDP)]).await;
    assert_eq!((r.class, r.code), (Error, Some(401)));
    let mut old = Client::new(server, "old", SECRET, -10).await;
    old.request(allocate, &[Attr::Transport(Rt::UDP)]).await;
    let r = old.request(allocate, &[Attr::Transport(Rt::UDP)]).await;
    assert_eq!((r.class, r.code), (Error, Some(401)));
    assert!(r.reason.contains("expired"), "{}", r.reason);
    let refusals = t.stats().refusals();
    for reason in [
        "malformed",
        "forbidden_peer",
        "user_quota",
        "expired",
        "unsupported_transport",
    ] {
        assert!(
            refusals.iter().any(|(r, _)| *r == reason),
            "{reason}: {refusals:?}"
        );
    }
}

/// Browsers use a TURN server as a STUN server too: Chromium sends attribute-less Binding
/// requests to the TURN port (over UDP, and over TCP/TLS on a stream of its own). Each gets a
/// Binding success carrying the sender's address, on the transport it came by, and nothing is
/// counted as malformed (turn-server-proto 0.7.3 answered them to its own listen address: the
/// answer came back to the UDP listener as a "malformed" client message, 6-8 per browser run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_requests_on_the_turn_port_are_answered_to_their_sender() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use turn_server_proto::types::stun::attribute::XorMappedAddress;
    use turn_server_proto::types::stun::message::{BINDING, Message, MessageClass};

    let media = free_udp_port();
    let t = turn(media, (29650, 29659), 10, 100).await;
    // Chromium's request as browser_turn captured it: 20 bytes, no attributes.
    let request: [u8; 20] = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0x35, 0x57, 0x6b, 0x33, 0x32, 0x4f, 0x45,
        0x51, 0x62, 0x5a, 0x48, 0x70,
    ];
    let check = |bytes: &[u8], me: SocketAddr| {
        let msg = Message::from_bytes(bytes).unwrap();
        assert_eq!(
            (msg.class(), msg.method()),
            (MessageClass::Success, BINDING)
        );
        let mapped = msg.attribute::<XorMappedAddress>().unwrap();
        assert_eq!(mapped.addr(msg.transaction_id()), me);
    };

    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..3 {
        udp.send_to(&request, t.udp_addr()).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(2), udp.recv(&mut buf))
            .await
            .expect("a Binding answer over UDP")
            .unwrap();
        check(&buf[..n], udp.local_addr().unwrap());
    }

    let mut tcp = tokio::net::TcpStream::connect(t.tcp_addr()).await.unwrap();
    tcp.write_all(&request).await.unwrap();
    let mut head = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(2), tcp.read_exact(&mut head))
        .await
        .expect("a Binding answer over TCP")
        .unwrap();
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let mut answer = head.to_vec();
    answer.resize(20 + len, 0);
    tcp.read_exact(&mut answer[20..]).await.unwrap();
    check(&answer, tcp.local_addr().unwrap());

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(t.stats().refusals(), vec![], "nothing refused");
}
