//! A worker bound to the wildcard address answers ICE checks from the address each check was sent
//! to (IP_PKTINFO / IPV6_PKTINFO), not from the kernel's choice of source address: issue 11, the
//! `listen_ip = 0.0.0.0`, `announced_ip = 127.0.0.1` setup with a client whose host candidate is
//! another local address, and multi-homed media hosts.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferrosfu::media::Transport;
use ferrosfu_fbs::*;
use ferrosfu_tests::media::{self, spawn_worker};
use webrtc::stun::agent::TransactionId;
use webrtc::stun::attributes::{
    ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_USE_CANDIDATE, ATTR_USERNAME, RawAttribute,
};
use webrtc::stun::fingerprint::FINGERPRINT;
use webrtc::stun::integrity::MessageIntegrity;
use webrtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Getter, Message, Setter};
use webrtc::stun::textattrs::TextAttribute;
use webrtc::stun::xoraddr::XorMappedAddress;

/// A signed, nominating binding request for `ice` from a controlling agent with ufrag "client".
fn binding_request(ice: &IceParameters) -> (Vec<u8>, TransactionId) {
    let tid = TransactionId::new();
    let raw = |typ, value: Vec<u8>| -> Box<dyn Setter> {
        Box::new(RawAttribute {
            typ,
            length: value.len() as u16,
            value,
        })
    };
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(tid),
        Box::new(BINDING_REQUEST),
        Box::new(TextAttribute::new(
            ATTR_USERNAME,
            format!("{}:client", ice.username_fragment),
        )),
        raw(ATTR_PRIORITY, 1_853_817_087u32.to_be_bytes().to_vec()),
        raw(ATTR_USE_CANDIDATE, vec![]),
        raw(ATTR_ICE_CONTROLLING, 42u64.to_be_bytes().to_vec()),
    ];
    let mut m = Message::new();
    m.build(&setters).unwrap();
    MessageIntegrity::new_short_term_integrity(ice.password.clone())
        .add_to(&mut m)
        .unwrap();
    FINGERPRINT.add_to(&mut m).unwrap();
    (m.raw, tid)
}

/// Creates a WebRtcTransport listening on UDP `listen` (a wildcard address) announcing
/// `announced`, sends a binding request to `to` (a local address on the transport's port) from a
/// socket bound to `from`, and returns where the success response came from.
async fn answer_source(listen: &str, announced: &str, to: IpAddr, from: SocketAddr) -> SocketAddr {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();
    let options = WebRtcTransportOptions {
        listen: WebRtcTransportListen::Individual(vec![ListenInfo {
            protocol: TransportProtocol::Udp,
            ip: listen.into(),
            announced_address: Some(announced.into()),
            port: 0,
        }]),
        ..media::webrtc_options("t", &[TransportProtocol::Udp])
    };
    let t = Transport::create_webrtc(&router, options).await.unwrap();
    let d = t.webrtc().unwrap();
    let candidate = &d.ice_candidates[0];
    assert_eq!(candidate.address, announced);
    let to = SocketAddr::new(to, candidate.port);

    let client = tokio::net::UdpSocket::bind(from).await.unwrap();
    let me = client.local_addr().unwrap();
    let (req, tid) = binding_request(&d.ice_parameters);
    client.send_to(&req, to).await.unwrap();
    let mut buf = vec![0u8; 1500];
    let (n, source) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
        .await
        .expect("a STUN response in time")
        .unwrap();

    let mut res = Message::new();
    res.raw = buf[..n].to_vec();
    res.decode().unwrap();
    assert_eq!(res.typ, BINDING_SUCCESS);
    assert_eq!(res.transaction_id, tid);
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(&res).unwrap();
    assert_eq!(SocketAddr::new(mapped.ip, mapped.port), me);
    source
}

#[tokio::test]
async fn ipv4_wildcard_replies_from_the_address_the_check_was_sent_to() {
    // All of 127/8 is local on Linux: the check goes to 127.0.0.2 from 127.0.0.3, while the
    // candidate announces 127.0.0.1. Left to itself the kernel answers from 127.0.0.1 (the
    // loopback route's preferred source), which the client does not match to its check.
    let to: IpAddr = "127.0.0.2".parse().unwrap();
    let source = answer_source("0.0.0.0", "127.0.0.1", to, "127.0.0.3:0".parse().unwrap()).await;
    assert_eq!(source.ip(), to, "answered from {source}");
}

#[tokio::test]
async fn ipv6_wildcard_replies_from_the_address_the_check_was_sent_to() {
    // Linux has one IPv6 loopback address, so this only shows that the IPV6_PKTINFO path sends
    // (and from ::1); the IPv4 test is the one that tells the two source choices apart.
    // The suite needs ::1 anyway (ipv6.rs): without it this fails rather than pass unrun.
    if let Err(e) = std::net::UdpSocket::bind("[::1]:0") {
        panic!("no IPv6 loopback on this machine (bind [::1]:0: {e})");
    }
    let to: IpAddr = "::1".parse().unwrap();
    let source = answer_source("::", "::1", to, "[::1]:0".parse().unwrap()).await;
    assert_eq!(source.ip(), to, "answered from {source}");
}
