//! A TURN client (RFC 8656 over UDP) as a browser uses one to receive media: it allocates a
//! relay with REST credentials (`<expiry>:<user>`, `base64(hmac-sha1(secret, username))`, the
//! second Allocate answering the first's 401), creates a permission for its peer, binds a
//! channel to it and then sends and receives ChannelData on its UDP socket. Messages are
//! encoded and parsed with the STUN/TURN types the server's engine uses (`turn-server-proto`).
//! Blocking, for tools: set up once, then the socket is handed to a `recvmmsg` receiver.

#![allow(clippy::unwrap_used)] // measurement tools: a panic is the report

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ferrosfu::turn::credentials;
use turn_server_proto::types::attribute::{
    ChannelNumber, RequestedTransport, XorPeerAddress, XorRelayedAddress,
};
use turn_server_proto::types::channel::ChannelData;
use turn_server_proto::types::message::{ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION};
use turn_server_proto::types::stun::attribute::{ErrorCode, Nonce, Realm, Username};
use turn_server_proto::types::stun::message::{
    IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageClass, MessageType, MessageWrite,
    MessageWriteExt, MessageWriteVec, Method, TransactionId,
};

/// One client: a UDP socket talking to the TURN server's UDP listener.
#[derive(Debug)]
pub struct TurnClient {
    sock: UdpSocket,
    server: SocketAddr,
    username: String,
    password: String,
    realm: String,
    nonce: String,
}

/// An attribute of a request.
enum Attr {
    Transport(u8),
    Peer(SocketAddr),
    Channel(u16),
}

impl TurnClient {
    /// A client of `server` with the REST credential of `user` under `secret`, valid an hour.
    pub fn new(server: SocketAddr, secret: &[u8], user: &str) -> std::io::Result<TurnClient> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (username, password) = credentials::issue(secret, 3600, user, now);
        let sock = UdpSocket::bind(SocketAddr::new(server.ip(), 0))?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(TurnClient {
            sock,
            server,
            username,
            password,
            realm: String::new(),
            nonce: String::new(),
        })
    }

    /// Allocates a UDP relay (answering the 401 of the unauthenticated first try); returns the
    /// relayed address.
    pub fn allocate(&mut self) -> Result<SocketAddr, String> {
        let transport = [Attr::Transport(RequestedTransport::UDP)];
        let first = self.request(ALLOCATE, &transport)?;
        if Message::from_bytes(&first).map(|m| m.class()) != Ok(MessageClass::Error) {
            return Err("the first Allocate was not refused with 401".into());
        }
        let reply = self.request(ALLOCATE, &transport)?;
        let msg = success(&reply)?;
        msg.attribute::<XorRelayedAddress>()
            .map(|a| a.addr(msg.transaction_id()))
            .map_err(|e| format!("no XOR-RELAYED-ADDRESS: {e:?}"))
    }

    /// CreatePermission for `peer`, then ChannelBind of `channel` (0x4000-0x4FFF) to it.
    pub fn bind_channel(&mut self, channel: u16, peer: SocketAddr) -> Result<(), String> {
        success(&self.request(CREATE_PERMISSION, &[Attr::Peer(peer)])?)?;
        success(&self.request(CHANNEL_BIND, &[Attr::Channel(channel), Attr::Peer(peer)])?)?;
        Ok(())
    }

    /// Sends `data` to the channel's peer as ChannelData.
    pub fn send_channel(&self, channel: u16, data: &[u8]) -> std::io::Result<()> {
        let mut frame = vec![0u8; 4 + data.len()];
        let n = ChannelData::new(channel, data).write_into_unchecked(&mut frame);
        self.sock.send_to(&frame[..n], self.server).map(|_| ())
    }

    /// The socket, for receiving the relayed media.
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Sends one request (signed once a realm and nonce are known) and returns the answer;
    /// a 401 carrying a realm and nonce teaches them.
    fn request(&mut self, method: Method, attrs: &[Attr]) -> Result<Vec<u8>, String> {
        let tid = TransactionId::generate();
        let mut m = Message::builder(
            MessageType::from_class_method(MessageClass::Request, method),
            tid,
            MessageWriteVec::new(),
        );
        for a in attrs {
            match a {
                Attr::Transport(p) => m.add_attribute(&RequestedTransport::new(*p)),
                Attr::Peer(addr) => m.add_attribute(&XorPeerAddress::new(*addr, tid)),
                Attr::Channel(c) => m.add_attribute(&ChannelNumber::new(*c)),
            }
            .map_err(|e| format!("encode: {e:?}"))?;
        }
        if !self.nonce.is_empty() {
            m.add_attribute(&Username::new(&self.username).map_err(|e| format!("{e:?}"))?)
                .map_err(|e| format!("{e:?}"))?;
            m.add_attribute(&Realm::new(&self.realm).map_err(|e| format!("{e:?}"))?)
                .map_err(|e| format!("{e:?}"))?;
            m.add_attribute(&Nonce::new(&self.nonce).map_err(|e| format!("{e:?}"))?)
                .map_err(|e| format!("{e:?}"))?;
            let key = LongTermKeyCredentials::new(
                self.username.clone(),
                self.password.clone(),
                self.realm.clone(),
            );
            m.add_message_integrity(&key.into(), IntegrityAlgorithm::Sha1)
                .map_err(|e| format!("{e:?}"))?;
        }
        let bytes = m.finish();
        for _ in 0..3 {
            self.sock
                .send_to(&bytes, self.server)
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 2048];
            // Until the read times out: then send again.
            while let Ok(n) = self.sock.recv(&mut buf) {
                let Ok(msg) = Message::from_bytes(&buf[..n]) else {
                    continue; // ChannelData already flowing, or garbage
                };
                if msg.transaction_id() != tid {
                    continue;
                }
                if let Ok(e) = msg.attribute::<ErrorCode>() {
                    if e.code() == ErrorCode::UNAUTHORIZED {
                        if let (Ok(r), Ok(n)) = (msg.attribute::<Realm>(), msg.attribute::<Nonce>())
                        {
                            self.realm = r.realm().to_owned();
                            self.nonce = n.nonce().to_owned();
                        }
                    }
                }
                return Ok(buf[..n].to_vec());
            }
        }
        Err(format!("no answer from {} to {method:?}", self.server))
    }
}

/// The message, if it is a success response; else why not.
fn success(bytes: &[u8]) -> Result<Message<'_>, String> {
    let msg = Message::from_bytes(bytes).map_err(|e| format!("not STUN: {e:?}"))?;
    if msg.class() == MessageClass::Success {
        return Ok(msg);
    }
    let why = msg
        .attribute::<ErrorCode>()
        .map(|e| format!("{} {}", e.code(), e.reason()))
        .unwrap_or_default();
    Err(format!("{:?} {why}", msg.method()))
}
