//! TURN input as the built-in server meets it: UDP datagrams and TCP byte streams from clients
//! go through the stream framer (`Framer`), the gate (REST credentials, relay policy, quotas)
//! and, when the gate passes them, the protocol engine (turn-server-proto), which is then
//! polled as the shell polls it (allocations granted on a fixed relay address).
//!
//! Input: records `[kind][len u16 BE][len bytes]`; kind & 1 = 0: a datagram from a UDP client,
//! 1: a chunk of a TCP client's stream. Checks: nothing panics; frames stay within the STUN
//! size limit; every reply the gate makes is a STUN error response to the request.

use std::net::SocketAddr;

use ferrosfu::turn::gate::{AllowedPeers, Gate, Verdict};
use ferrosfu::turn::{Framer, credentials};
use turn_server_proto::api::{Transmit, TurnServerApi, TurnServerPollRet};
use turn_server_proto::server::TurnServer;
use turn_server_proto::types::stun::message::{Message, MessageClass};
use turn_server_proto::types::{Instant, TransportType};

/// Secret and realm of the fuzzed server (seeds are made with them).
pub const SECRET: &[u8] = b"fuzz-secret";
pub const REALM: &str = "fuzz";
/// "Now" for the credential expiry check.
pub const NOW_UNIX: u64 = 1_800_000_000;

pub fn run(data: &[u8]) {
    let listen: SocketAddr = "127.0.0.1:3478".parse().expect("addr");
    let client: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let allowed = AllowedPeers {
        ips: vec!["127.0.0.1".parse().expect("ip")],
        ports: vec![20000..=20999],
    };
    let mut gate = Gate::new(SECRET, REALM, allowed, 3);
    let mut udp = TurnServer::new(TransportType::Udp, listen, REALM.into());
    let mut tcp = TurnServer::new(TransportType::Tcp, listen, REALM.into());
    let mut framer = Framer::default();
    let mut now = Instant::ZERO;
    let mut relays = 0u16;
    let mut rest = data;
    while rest.len() >= 3 {
        let kind = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let body = &rest[3..3 + len];
        rest = &rest[3 + len..];
        now += std::time::Duration::from_millis(20);
        if kind & 1 == 0 {
            feed(
                &mut gate,
                &mut udp,
                TransportType::Udp,
                listen,
                client,
                body,
                now,
            );
            drive(&mut udp, now, &mut relays);
        } else {
            framer.push(body);
            loop {
                match framer.next_frame() {
                    Ok(Some(frame)) => {
                        assert!(frame.len() <= 20 + 65535);
                        feed(
                            &mut gate,
                            &mut tcp,
                            TransportType::Tcp,
                            listen,
                            client,
                            &frame,
                            now,
                        );
                    }
                    Ok(None) => break,
                    // The shell closes such a connection; start a new one.
                    Err(_) => {
                        framer = Framer::default();
                        break;
                    }
                }
            }
            drive(&mut tcp, now, &mut relays);
        }
    }
    // A credential issued now is accepted by the same rules the gate applies.
    let (user, _) = credentials::issue(SECRET, 60, "fuzz", NOW_UNIX);
    assert!(credentials::check_username(&user, NOW_UNIX).is_ok());
}

fn feed(
    gate: &mut Gate,
    engine: &mut TurnServer,
    transport: TransportType,
    listen: SocketAddr,
    client: SocketAddr,
    data: &[u8],
    now: Instant,
) {
    match gate.inspect(data, listen, client, NOW_UNIX) {
        Verdict::Drop(_) => {}
        Verdict::Reply(bytes, _) => {
            let reply = Message::from_bytes(&bytes).expect("the gate's reply is STUN");
            let request = Message::from_bytes(data).expect("only requests get replies");
            assert!(reply.has_class(MessageClass::Error));
            assert_eq!(reply.transaction_id(), request.transaction_id());
        }
        Verdict::Answer(bytes) => {
            let reply = Message::from_bytes(&bytes).expect("the gate's answer is STUN");
            let request = Message::from_bytes(data).expect("only requests get answers");
            assert!(reply.is_response());
            assert_eq!(reply.transaction_id(), request.transaction_id());
        }
        Verdict::Pass { new_user } => {
            if let Some((u, p)) = new_user {
                engine.add_user(u, p);
            }
            if let Some(out) = engine.recv(Transmit::new(data, transport, client, listen), now) {
                let _ = out.build();
            }
        }
    }
}

fn drive(engine: &mut TurnServer, now: Instant, relays: &mut u16) {
    for _ in 0..64 {
        match engine.poll(now) {
            TurnServerPollRet::WaitUntil(_) => break,
            TurnServerPollRet::AllocateSocket {
                transport,
                listen_addr,
                client_addr,
                allocation_transport,
                family,
            } => {
                *relays = relays.wrapping_add(1);
                let relay = SocketAddr::from(([127, 0, 0, 1], 30000 + *relays % 1000));
                engine.allocated_socket(
                    transport,
                    listen_addr,
                    client_addr,
                    allocation_transport,
                    family,
                    Ok(relay),
                    now,
                );
            }
            TurnServerPollRet::TcpConnect {
                relayed_addr,
                peer_addr,
                listen_addr,
                client_addr,
            } => engine.tcp_connected(
                relayed_addr,
                peer_addr,
                listen_addr,
                client_addr,
                Err(turn_server_proto::api::TcpConnectError::Forbidden),
                now,
            ),
            TurnServerPollRet::TcpClose { .. } | TurnServerPollRet::SocketClose { .. } => {}
        }
    }
    for _ in 0..64 {
        if engine.poll_transmit(now).is_none() {
            break;
        }
    }
}
