//! The TURN server's IO: one task owns the protocol engines (turn-server-proto, one per
//! listener: UDP, TCP, TLS) and the [`Gate`]; socket readers feed it through one bounded queue
//! (full: the datagram is dropped and counted, never waited for), it writes UDP with
//! non-blocking sends and TCP/TLS through each connection's bounded queue.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use turn_server_proto::api::{
    SocketAllocateError, TcpConnectError, Transmit, TurnServerApi, TurnServerPollRet,
};
use turn_server_proto::server::TurnServer;
use turn_server_proto::types::{AddressFamily, Instant, TransportType};

use super::TurnStats;
use super::gate::{Gate, Verdict};
use crate::config::PortRange;

/// Inputs queued for the engine task.
pub(super) const QUEUE: usize = 8192;
/// Bytes queued toward one TCP/TLS client.
const TCP_OUT_QUEUE: usize = 512;
/// A TCP/TLS connection silent this long is closed (allocations refresh every few minutes).
const TCP_IDLE: Duration = Duration::from_secs(600);
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
/// Largest STUN message or ChannelData frame on a stream.
const MAX_FRAME: usize = 20 + 65535;

#[derive(Debug)]
pub(super) enum Input {
    /// A datagram on the UDP listener or on a relay socket (`local`).
    Datagram {
        local: SocketAddr,
        from: SocketAddr,
        data: Vec<u8>,
    },
    TcpOpen {
        local: SocketAddr,
        from: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    /// One whole STUN message or ChannelData frame from a TCP/TLS client.
    TcpFrame {
        local: SocketAddr,
        from: SocketAddr,
        data: Vec<u8>,
    },
    TcpClosed {
        local: SocketAddr,
        from: SocketAddr,
    },
}

struct Relay {
    socket: Arc<UdpSocket>,
    /// The engine that made it.
    engine: usize,
    user: Option<String>,
    /// (listen address, client address) of the allocation's client.
    client: (SocketAddr, SocketAddr),
    reader: tokio::task::JoinHandle<()>,
}

pub(super) struct Shell {
    base: std::time::Instant,
    /// (transport, listen address) of each engine.
    engines: Vec<(TransportType, SocketAddr, TurnServer)>,
    udp: Arc<UdpSocket>,
    udp_addr: SocketAddr,
    relays: HashMap<SocketAddr, Relay>,
    tcp: HashMap<(SocketAddr, SocketAddr), mpsc::Sender<Vec<u8>>>,
    gate: Gate,
    tx: mpsc::Sender<Input>,
    relay_ip: IpAddr,
    relay_ports: PortRange,
    next_port: u16,
    max_allocations: usize,
    stats: Arc<TurnStats>,
}

pub(super) struct Listeners {
    pub udp: Arc<UdpSocket>,
    pub tcp: SocketAddr,
    pub tls: Option<SocketAddr>,
}

impl Shell {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        listeners: Listeners,
        realm: &str,
        gate: Gate,
        tx: mpsc::Sender<Input>,
        relay_ip: IpAddr,
        relay_ports: PortRange,
        max_allocations: usize,
        stats: Arc<TurnStats>,
    ) -> std::io::Result<Self> {
        let udp_addr = listeners.udp.local_addr()?;
        let mut engines = vec![
            (
                TransportType::Udp,
                udp_addr,
                TurnServer::new(TransportType::Udp, udp_addr, realm.to_owned()),
            ),
            (
                TransportType::Tcp,
                listeners.tcp,
                TurnServer::new(TransportType::Tcp, listeners.tcp, realm.to_owned()),
            ),
        ];
        if let Some(tls) = listeners.tls {
            engines.push((
                TransportType::Tcp,
                tls,
                TurnServer::new(TransportType::Tcp, tls, realm.to_owned()),
            ));
        }
        Ok(Self {
            base: std::time::Instant::now(),
            engines,
            udp: listeners.udp,
            udp_addr,
            relays: HashMap::new(),
            tcp: HashMap::new(),
            gate,
            tx,
            relay_ip,
            relay_ports,
            next_port: relay_ports.min,
            max_allocations,
            stats,
        })
    }

    fn now(&self) -> Instant {
        Instant::from_std(self.base)
    }

    /// Runs until `stop` turns true or every input sender is gone.
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Input>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut due = tokio::time::Instant::now();
        let mut timer: Pin<Box<tokio::time::Sleep>> = Box::pin(tokio::time::sleep_until(due));
        loop {
            let mut work = false;
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                input = rx.recv() => {
                    let Some(input) = input else { break };
                    work |= self.handle(input);
                    // Drain what else is queued before polling the engines.
                    for _ in 0..64 {
                        match rx.try_recv() {
                            Ok(input) => work |= self.handle(input),
                            Err(_) => break,
                        }
                    }
                }
                () = &mut timer => {}
            }
            // Polling walks every client, allocation and permission of every engine: do it when
            // an input may have given the engines something to do or one of their deadlines is
            // due, not after every relayed packet.
            if work || tokio::time::Instant::now() >= due {
                let wait = self.drive();
                due = tokio::time::Instant::now() + wait.min(Duration::from_secs(1));
                timer.as_mut().reset(due);
            }
        }
        for (_, relay) in self.relays.drain() {
            relay.reader.abort();
        }
    }

    fn engine_for(&self, transport: TransportType, local: SocketAddr) -> Option<usize> {
        self.engines
            .iter()
            .position(|(t, a, _)| *t == transport && *a == local)
    }

    /// Acts on one input; true when the engines may have work for [`Shell::drive`] (anything
    /// but relayed data: ChannelData from a UDP client, a datagram from a peer to a relay).
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Datagram { local, from, data } if local == self.udp_addr => {
                self.on_client(0, TransportType::Udp, local, from, &data);
                return data.first().is_none_or(|b| b & 0xC0 != 0x40);
            }
            Input::Datagram { local, from, data } => {
                self.on_peer(local, from, &data);
                return false;
            }
            Input::TcpOpen {
                local,
                from,
                writer,
            } => {
                self.tcp.insert((local, from), writer);
            }
            Input::TcpFrame { local, from, data } => {
                if let Some(i) = self.engine_for(TransportType::Tcp, local) {
                    self.on_client(i, TransportType::Tcp, local, from, &data);
                }
            }
            Input::TcpClosed { local, from } => {
                self.tcp.remove(&(local, from));
                // A stream client's allocations end with its connection (RFC 8656 §3.1); the
                // engine would keep them until they expire.
                let gone: Vec<SocketAddr> = self
                    .relays
                    .iter()
                    .filter(|(_, r)| r.engine != 0 && r.client == (local, from))
                    .map(|(a, _)| *a)
                    .collect();
                for relay in gone {
                    self.release(relay);
                }
                if let Some(i) = self.engine_for(TransportType::Tcp, local) {
                    let now = self.now();
                    let empty: &[u8] = &[];
                    let out = self.engines[i]
                        .2
                        .recv(Transmit::new(empty, TransportType::Tcp, from, local), now);
                    if let Some(out) = out {
                        self.send(out.build());
                    }
                }
            }
        }
        true
    }

    fn on_client(
        &mut self,
        engine: usize,
        transport: TransportType,
        local: SocketAddr,
        from: SocketAddr,
        data: &[u8],
    ) {
        self.stats.client_packets.fetch_add(1, Relaxed);
        match self.gate.inspect(data, local, from, unix_now()) {
            Verdict::Drop(why) => {
                tracing::debug!(target: "turn", ?transport, %from, reason = why.label(),
                    msg = %super::gate::describe(data), "turn: dropped");
                self.stats.refuse(why.label());
            }
            Verdict::Reply(bytes, why) => {
                self.stats.refuse(why.label());
                self.send(Transmit::new(bytes, transport, local, from));
            }
            Verdict::Answer(bytes) => self.send(Transmit::new(bytes, transport, local, from)),
            Verdict::Pass { new_user } => {
                let now = self.now();
                let engine = &mut self.engines[engine].2;
                if let Some((user, password)) = new_user {
                    engine.add_user(user, password);
                }
                if let Some(out) = engine.recv(Transmit::new(data, transport, from, local), now) {
                    let out = out.build();
                    self.send(out);
                }
            }
        }
    }

    /// A datagram a peer sent to a relay: only this node's media may talk to relays.
    fn on_peer(&mut self, relay: SocketAddr, from: SocketAddr, data: &[u8]) {
        let Some(engine) = self.relays.get(&relay).map(|r| r.engine) else {
            return;
        };
        if !self.gate.allowed().allows(from) {
            self.stats.refuse("forbidden_peer");
            return;
        }
        self.stats.relayed_in_packets.fetch_add(1, Relaxed);
        self.stats
            .relayed_in_bytes
            .fetch_add(data.len() as u64, Relaxed);
        let now = self.now();
        let out = self.engines[engine]
            .2
            .recv(Transmit::new(data, TransportType::Udp, from, relay), now);
        if let Some(out) = out {
            self.send(out.build());
        }
    }

    fn send(&mut self, t: Transmit<Vec<u8>>) {
        match t.transport {
            TransportType::Udp if t.from == self.udp_addr => {
                if t.to == self.udp_addr {
                    // Never to itself: it would come back as a client message.
                    self.stats.dropped("self_addressed");
                    return;
                }
                if self.udp.try_send_to(&t.data, t.to).is_err() {
                    self.stats.dropped("send");
                }
            }
            TransportType::Udp => {
                let Some(relay) = self.relays.get(&t.from) else {
                    return;
                };
                if !self.gate.allowed().allows(t.to) {
                    self.stats.refuse("forbidden_peer");
                    return;
                }
                self.stats.relayed_out_packets.fetch_add(1, Relaxed);
                self.stats
                    .relayed_out_bytes
                    .fetch_add(t.data.len() as u64, Relaxed);
                if relay.socket.try_send_to(&t.data, t.to).is_err() {
                    self.stats.dropped("send");
                }
            }
            TransportType::Tcp => {
                if let Some(w) = self.tcp.get(&(t.from, t.to)) {
                    let mut data = t.data;
                    if data.first().is_some_and(|b| b >> 6 == 1) {
                        // ChannelData on a stream is padded to four bytes (RFC 8656 §12.5).
                        data.resize(data.len().div_ceil(4) * 4, 0);
                    }
                    if w.try_send(data).is_err() {
                        self.stats.dropped("tcp_queue");
                    }
                }
            }
        }
    }

    /// Lets every engine act on time and on what it decided; returns how long it may sleep.
    fn drive(&mut self) -> Duration {
        let now = self.now();
        let mut wait = Duration::from_secs(1);
        for i in 0..self.engines.len() {
            loop {
                match self.engines[i].2.poll(now) {
                    TurnServerPollRet::WaitUntil(t) => {
                        wait = wait.min(t.saturating_duration_since(now));
                        break;
                    }
                    TurnServerPollRet::AllocateSocket {
                        transport,
                        listen_addr,
                        client_addr,
                        allocation_transport,
                        family,
                    } => {
                        let result = self.allocate(i, listen_addr, client_addr, family);
                        self.engines[i].2.allocated_socket(
                            transport,
                            listen_addr,
                            client_addr,
                            allocation_transport,
                            family,
                            result,
                            now,
                        );
                    }
                    TurnServerPollRet::TcpConnect {
                        relayed_addr,
                        peer_addr,
                        listen_addr,
                        client_addr,
                    } => self.engines[i].2.tcp_connected(
                        relayed_addr,
                        peer_addr,
                        listen_addr,
                        client_addr,
                        Err(TcpConnectError::Forbidden),
                        now,
                    ),
                    TurnServerPollRet::TcpClose {
                        local_addr,
                        remote_addr,
                    } => {
                        self.tcp.remove(&(local_addr, remote_addr));
                    }
                    TurnServerPollRet::SocketClose { listen_addr, .. } => {
                        self.release(listen_addr);
                    }
                }
            }
            while let Some(t) = self.engines[i].2.poll_transmit(now) {
                self.send(t);
            }
        }
        wait
    }

    fn allocate(
        &mut self,
        engine: usize,
        listen: SocketAddr,
        client: SocketAddr,
        family: AddressFamily,
    ) -> Result<SocketAddr, SocketAllocateError> {
        let user = self.gate.take_pending(listen, client);
        let same_family = match family {
            AddressFamily::IPV4 => self.relay_ip.is_ipv4(),
            AddressFamily::IPV6 => self.relay_ip.is_ipv6(),
        };
        if !same_family {
            return Err(SocketAllocateError::AddressFamilyNotSupported);
        }
        if self.relays.len() >= self.max_allocations {
            self.stats.refuse("node_quota");
            return Err(SocketAllocateError::InsufficientCapacity);
        }
        let Some(socket) = self.bind_relay() else {
            self.stats.refuse("no_port");
            return Err(SocketAllocateError::InsufficientCapacity);
        };
        let socket = Arc::new(socket);
        let addr = socket
            .local_addr()
            .map_err(|_| SocketAllocateError::InsufficientCapacity)?;
        let reader = tokio::spawn(read_datagrams(
            socket.clone(),
            self.tx.clone(),
            self.stats.clone(),
        ));
        if let Some(user) = &user {
            self.gate.allocated(user);
        }
        self.relays.insert(
            addr,
            Relay {
                socket,
                engine,
                user,
                client: (listen, client),
                reader,
            },
        );
        self.stats
            .allocations
            .store(self.relays.len() as u64, Relaxed);
        self.stats.allocations_total.fetch_add(1, Relaxed);
        tracing::debug!(%client, relay = %addr, "turn allocation");
        Ok(addr)
    }

    fn release(&mut self, addr: SocketAddr) {
        if let Some(relay) = self.relays.remove(&addr) {
            relay.reader.abort();
            if let Some(user) = &relay.user {
                self.gate.released(user);
            }
            self.stats
                .allocations
                .store(self.relays.len() as u64, Relaxed);
            tracing::debug!(relay = %addr, "turn allocation closed");
        }
    }

    fn bind_relay(&mut self) -> Option<UdpSocket> {
        let span = u32::from(self.relay_ports.max - self.relay_ports.min) + 1;
        for _ in 0..span.min(256) {
            let port = self.next_port;
            self.next_port = if port >= self.relay_ports.max {
                self.relay_ports.min
            } else {
                port + 1
            };
            if let Ok(s) = std::net::UdpSocket::bind(SocketAddr::new(self.relay_ip, port)) {
                if s.set_nonblocking(true).is_ok() {
                    if let Ok(s) = UdpSocket::from_std(s) {
                        return Some(s);
                    }
                }
            }
        }
        None
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads one UDP socket (the listener or a relay) into the engine queue.
pub(super) async fn read_datagrams(
    socket: Arc<UdpSocket>,
    tx: mpsc::Sender<Input>,
    stats: Arc<TurnStats>,
) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let mut buf = vec![0u8; 65536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let input = Input::Datagram {
                    local,
                    from,
                    data: buf[..n].to_vec(),
                };
                match tx.try_send(input) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => stats.dropped("overload"),
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            // ICMP errors surface as ECONNREFUSED on the next receive: not fatal.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                tracing::warn!(%local, "turn udp receive: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Accepts TURN-over-TCP (or, with `tls`, TURN-over-TLS) clients.
pub(super) async fn accept_streams(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::Sender<Input>,
    stats: Arc<TurnStats>,
    max_connections: usize,
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    loop {
        let (tcp, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%local, "turn accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if stats.tcp_connections.load(Relaxed) as usize >= max_connections {
            stats.refuse("connections");
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let (tx, stats, tls) = (tx.clone(), stats.clone(), tls.clone());
        tokio::spawn(async move {
            stats.tcp_connections.fetch_add(1, Relaxed);
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_stream(stream, local, from, tx, &stats).await,
                        _ => stats.refuse("tls_handshake"),
                    }
                }
                None => serve_stream(tcp, local, from, tx, &stats).await,
            }
            stats.tcp_connections.fetch_sub(1, Relaxed);
        });
    }
}

async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    local: SocketAddr,
    from: SocketAddr,
    tx: mpsc::Sender<Input>,
    stats: &TurnStats,
) {
    let (writer, mut outgoing) = mpsc::channel::<Vec<u8>>(TCP_OUT_QUEUE);
    if tx
        .send(Input::TcpOpen {
            local,
            from,
            writer,
        })
        .await
        .is_err()
    {
        return;
    }
    let (mut r, mut w) = tokio::io::split(stream);
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 16 * 1024];
    'conn: loop {
        tokio::select! {
            read = tokio::time::timeout(TCP_IDLE, r.read(&mut buf)) => {
                let n = match read {
                    Ok(Ok(n)) if n > 0 => n,
                    _ => break,
                };
                framer.push(&buf[..n]);
                loop {
                    match framer.next_frame() {
                        Ok(Some(data)) => {
                            if tx.send(Input::TcpFrame { local, from, data }).await.is_err() {
                                break 'conn;
                            }
                        }
                        Ok(None) => break,
                        Err(NotTurn) => {
                            tracing::debug!(target: "turn", %local, %from,
                                head = %framer.head(), "turn: stream is not TURN, closed");
                            stats.refuse("malformed");
                            break 'conn;
                        }
                    }
                }
            }
            out = outgoing.recv() => match out {
                Some(bytes) => {
                    if w.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = w.shutdown().await;
    let _ = tx.send(Input::TcpClosed { local, from }).await;
}

/// A stream that is neither STUN nor ChannelData (or a frame over the size limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotTurn;

/// Splits a TURN stream into STUN messages and ChannelData frames (RFC 8656 §12.5: over TCP,
/// ChannelData is padded to a multiple of four bytes).
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The first bytes waiting (hex), for a log.
    pub fn head(&self) -> String {
        self.buf
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The next whole frame, None until one is complete, Err when the stream is not TURN.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, NotTurn> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
        let total = match self.buf[0] >> 6 {
            0 => 20 + len,
            1 => 4 + len.div_ceil(4) * 4,
            _ => return Err(NotTurn),
        };
        if total > MAX_FRAME {
            return Err(NotTurn);
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let mut frame = std::mem::replace(&mut self.buf, rest);
        if frame[0] >> 6 == 1 {
            // The engine takes ChannelData unpadded.
            frame.truncate(4 + len);
        }
        Ok(Some(frame))
    }
}
