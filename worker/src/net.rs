//! The worker's media sockets on its single thread.
//!
//! # How it is multiplexed
//!
//! [`Net`] owns every socket: UDP sockets, ICE-TCP listeners and their accepted connections,
//! keyed by the addresses the core uses in [`Tuple`]s. Each socket has a *pump*: a tiny task
//! (`spawn_local` on the worker's `LocalSet`) that holds only the socket's key. A pump waits for
//! readiness by borrowing the host inside `poll` (never across an `.await`), so the socket has one
//! owner and releasing it ([`Net::release`]) closes the fd at once; the pump then wakes, finds its
//! key gone and ends.
//!
//! When a socket is readable its pump runs one *turn* synchronously, with the host borrowed:
//! - UDP: one `recvmmsg` (quinn-udp, GRO-aware) into the worker-wide [`RecvArena`], every
//!   datagram to [`Host::on_datagram`];
//! - TCP listener: one `accept` (at most `tcp_conns_per_listener` connections per listener);
//! - TCP connection: one read, every complete RFC 4571 frame to [`Host::on_datagram`]; a
//!   malformed frame, EOF, or a first frame that is not STUN closes the connection;
//!
//! then calls [`Host::end_turn`], which drains the core and [`Net::flush`]es: the datagrams the
//! turn queued per socket go out in batches (GSO runs / `sendmmsg`; TCP: one write per
//! connection). A socket that would block keeps its bounded queue and its pump also waits for
//! writability. The channel and the core's timer are two more tasks on the same thread (see
//! `channel.rs`); tokio's cooperative budget keeps a flooded socket from starving them.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ferrosfu_worker_core::{BoundSocket, PacketKind, Protocol, Transmit, Tuple, classify};
use tokio::net::{TcpListener, TcpStream};

use crate::ports::Bound;
use crate::tcp::{Conn, Framer, WriteError};
use crate::udp::{RecvArena, UdpSock};

/// What the socket layer delivers to and asks of its owner (the shell; a test host in tests).
pub(crate) trait Host: 'static {
    fn net(&mut self) -> &mut Net;
    /// One UDP datagram or one TCP frame arrived on `tuple`.
    fn on_datagram(&mut self, tuple: Tuple, data: &[u8], now: Instant);
    /// A turn ended: drain what the datagrams caused and [`Net::flush`].
    fn end_turn(&mut self);
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Datagrams queued per UDP socket while it would block; more are dropped.
    pub(crate) udp_queue: usize,
    /// Unwritten bytes per TCP connection; more closes the connection.
    pub(crate) tcp_write_buffer: usize,
    pub(crate) tcp_conns_per_listener: usize,
    /// A connection must deliver its first frame (a STUN request) within this time.
    pub(crate) tcp_first_frame: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            udp_queue: 4096,
            tcp_write_buffer: 1 << 20,
            tcp_conns_per_listener: 1024,
            tcp_first_frame: Duration::from_secs(10),
        }
    }
}

/// Packet-path counters of the socket layer (drops are also traced at debug, target `net`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NetStats {
    pub(crate) udp_received: u64,
    pub(crate) udp_sent: u64,
    pub(crate) udp_recv_errors: u64,
    /// Datagrams the kernel refused (unreachable, too long...).
    pub(crate) udp_send_errors: u64,
    /// Datagrams dropped because the socket's queue was full.
    pub(crate) udp_queue_full: u64,
    pub(crate) tcp_accepted: u64,
    /// Connections refused by the per-listener limit.
    pub(crate) tcp_rejected: u64,
    pub(crate) tcp_frames_received: u64,
    /// Connections closed for a malformed stream (bad frame, not STUN first, no first frame).
    pub(crate) tcp_malformed: u64,
    /// Connections closed because their write buffer overflowed.
    pub(crate) tcp_overflow: u64,
    /// Transmits to a TCP tuple with no connection, or too long to frame.
    pub(crate) tcp_unsent: u64,
    /// Transmits on a socket this worker does not have.
    pub(crate) unknown_socket: u64,
}

type ConnKey = (SocketAddr, SocketAddr);

#[derive(Debug)]
struct Listener {
    io: TcpListener,
    conns: HashSet<SocketAddr>,
    waker: Option<Waker>,
}

/// Every media socket of the worker, their send queues and the receive arena.
#[derive(Debug)]
pub(crate) struct Net {
    limits: Limits,
    udp: HashMap<SocketAddr, UdpSock>,
    listeners: HashMap<SocketAddr, Listener>,
    conns: HashMap<ConnKey, Conn>,
    dirty_udp: Vec<SocketAddr>,
    dirty_tcp: Vec<ConnKey>,
    /// Taken by the UDP turn that uses it (so the host can be borrowed meanwhile).
    arena: Option<Box<RecvArena>>,
    gso_scratch: Vec<u8>,
    stats: NetStats,
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl Net {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            udp: HashMap::new(),
            listeners: HashMap::new(),
            conns: HashMap::new(),
            dirty_udp: Vec::new(),
            dirty_tcp: Vec::new(),
            arena: None,
            gso_scratch: Vec::new(),
            stats: NetStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> NetStats {
        self.stats
    }

    /// Hands bound sockets to the runtime and starts their pumps; returns what the core is told,
    /// in the same order. On failure nothing stays open.
    pub(crate) fn open<H: Host>(
        &mut self,
        host: &Rc<RefCell<H>>,
        bound: Vec<Bound>,
    ) -> Result<Vec<BoundSocket>, String> {
        let mut opened = Vec::with_capacity(bound.len());
        for b in bound {
            let local = b.local;
            let r = match b.protocol {
                Protocol::Udp => UdpSock::new(b.socket).map(|s| {
                    self.udp.insert(local, s);
                    tokio::task::spawn_local(udp_pump(host.clone(), local));
                }),
                Protocol::Tcp => TcpListener::from_std(b.socket.into()).map(|io| {
                    let l = Listener {
                        io,
                        conns: HashSet::new(),
                        waker: None,
                    };
                    self.listeners.insert(local, l);
                    tokio::task::spawn_local(listener_pump(host.clone(), local));
                }),
            };
            let socket = BoundSocket {
                protocol: b.protocol,
                local,
                announced: b.announced,
            };
            if let Err(e) = r {
                self.release(&opened);
                return Err(format!("cannot register socket {local}: {e}"));
            }
            tracing::debug!(target: "net", %local, protocol = ?b.protocol, "socket open");
            opened.push(socket);
        }
        Ok(opened)
    }

    /// Closes sockets (and the connections of TCP listeners) now; their pumps then end.
    pub(crate) fn release(&mut self, sockets: &[BoundSocket]) {
        for s in sockets {
            match s.protocol {
                Protocol::Udp => match self.udp.remove(&s.local) {
                    Some(mut u) => wake(u.waker.take()),
                    None => {
                        tracing::debug!(target: "net", local = %s.local, "release: no such UDP socket")
                    }
                },
                Protocol::Tcp => match self.listeners.remove(&s.local) {
                    Some(mut l) => {
                        for peer in l.conns.drain() {
                            if let Some(mut c) = self.conns.remove(&(s.local, peer)) {
                                wake(c.waker.take());
                            }
                        }
                        wake(l.waker.take());
                    }
                    None => {
                        tracing::debug!(target: "net", local = %s.local, "release: no such TCP listener")
                    }
                },
            }
            tracing::debug!(target: "net", local = %s.local, "socket released");
        }
    }

    /// Queues one datagram (or TCP frame) for the end-of-turn [`Net::flush`].
    pub(crate) fn transmit(&mut self, t: Transmit) {
        let Tuple {
            local,
            remote,
            protocol,
        } = t.tuple;
        match protocol {
            Protocol::Udp => {
                // The socket bound to `local`, else the wildcard socket on its port, which sends
                // from `local`'s IP (the address the tuple's datagrams arrived at).
                let (key, src) = if self.udp.contains_key(&local) {
                    (local, None)
                } else {
                    let any = unspecified(local);
                    (any, Some(local.ip()))
                };
                let Some(s) = self.udp.get_mut(&key) else {
                    self.stats.unknown_socket += 1;
                    tracing::trace!(target: "net", %local, "transmit: no such UDP socket");
                    return;
                };
                if s.queued() >= self.limits.udp_queue {
                    self.stats.udp_queue_full += 1;
                    tracing::trace!(target: "net", %local, "UDP send queue full, datagram dropped");
                    return;
                }
                s.enqueue(remote, src, t.data);
                if !s.dirty {
                    s.dirty = true;
                    self.dirty_udp.push(key);
                }
            }
            Protocol::Tcp => {
                let key = (local, remote);
                let Some(c) = self.conns.get_mut(&key) else {
                    self.stats.tcp_unsent += 1;
                    tracing::trace!(target: "net", %local, %remote, "transmit: no such TCP connection");
                    return;
                };
                match c.enqueue(&t.data, self.limits.tcp_write_buffer) {
                    Ok(()) => {
                        if !c.dirty {
                            c.dirty = true;
                            self.dirty_tcp.push(key);
                        }
                    }
                    Err(WriteError::Overflow) => {
                        self.stats.tcp_overflow += 1;
                        self.close_conn(key, &WriteError::Overflow);
                    }
                    Err(e) => {
                        self.stats.tcp_unsent += 1;
                        tracing::debug!(target: "net", %local, %remote, "TCP frame dropped: {e}");
                    }
                }
            }
        }
    }

    /// Sends what the turn queued, without blocking.
    pub(crate) fn flush(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty_udp);
        for local in dirty.drain(..) {
            self.flush_udp(local);
        }
        self.dirty_udp = dirty;
        let mut dirty = std::mem::take(&mut self.dirty_tcp);
        for key in dirty.drain(..) {
            self.flush_conn(key);
        }
        self.dirty_tcp = dirty;
    }

    fn flush_udp(&mut self, local: SocketAddr) {
        let Some(s) = self.udp.get_mut(&local) else {
            return;
        };
        s.dirty = false;
        if s.blocked {
            // Its pump flushes when the socket becomes writable.
            return;
        }
        s.flush(&mut self.gso_scratch, &mut self.stats);
        if s.blocked {
            wake(s.waker.take());
        }
    }

    fn flush_conn(&mut self, key: ConnKey) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.dirty = false;
        if c.blocked {
            return;
        }
        match c.flush() {
            Ok(()) if c.blocked => wake(c.waker.take()),
            Ok(()) => {}
            Err(e) => self.close_conn(key, &e),
        }
    }

    fn add_conn(&mut self, local: SocketAddr, io: TcpStream, peer: SocketAddr) -> bool {
        let Some(l) = self.listeners.get_mut(&local) else {
            return false;
        };
        if l.conns.len() >= self.limits.tcp_conns_per_listener {
            self.stats.tcp_rejected += 1;
            tracing::debug!(target: "net", %local, %peer, "TCP connection refused: listener full");
            return false;
        }
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(target: "net", %peer, "TCP_NODELAY: {e}");
        }
        l.conns.insert(peer);
        if let Some(mut old) = self.conns.insert((local, peer), Conn::new(io)) {
            wake(old.waker.take());
        }
        self.stats.tcp_accepted += 1;
        tracing::debug!(target: "net", %local, %peer, "TCP connection accepted");
        true
    }

    fn close_conn(&mut self, key: ConnKey, why: &dyn std::fmt::Display) {
        if let Some(mut c) = self.conns.remove(&key) {
            if let Some(l) = self.listeners.get_mut(&key.0) {
                l.conns.remove(&key.1);
            }
            tracing::debug!(target: "net", local = %key.0, remote = %key.1, "TCP connection closed: {why}");
            wake(c.waker.take());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pumps

#[derive(Debug)]
enum Ready {
    Gone,
    Readable,
    Writable,
    FirstFrameTimeout,
}

async fn udp_pump<H: Host>(host: Rc<RefCell<H>>, local: SocketAddr) {
    loop {
        let ev = poll_fn(|cx| {
            let mut h = host.borrow_mut();
            let Some(s) = h.net().udp.get_mut(&local) else {
                return Poll::Ready(Ready::Gone);
            };
            set_waker(&mut s.waker, cx);
            if s.blocked && s.io.poll_send_ready(cx).is_ready() {
                return Poll::Ready(Ready::Writable);
            }
            s.io.poll_recv_ready(cx).map(|_| Ready::Readable)
        })
        .await;
        match ev {
            Ready::Readable => udp_turn(&host, local),
            Ready::Writable => {
                let mut h = host.borrow_mut();
                let net = h.net();
                if let Some(s) = net.udp.get_mut(&local) {
                    s.blocked = false;
                }
                net.flush_udp(local);
            }
            Ready::Gone | Ready::FirstFrameTimeout => return,
        }
    }
}

/// One `recvmmsg` on `local`, every datagram to the host, then the end of the turn.
fn udp_turn<H: Host>(host: &Rc<RefCell<H>>, local: SocketAddr) {
    let mut h = host.borrow_mut();
    let net = h.net();
    let mut arena = net.arena.take().unwrap_or_else(RecvArena::new);
    let received = match net.udp.get(&local) {
        Some(s) => s.recv(&mut arena),
        None => Ok(0),
    };
    match received {
        Ok(0) => {}
        Ok(n) => {
            let now = Instant::now();
            for i in 0..n {
                let (remote, dst_ip, datagrams) = arena.datagrams(i);
                let tuple = Tuple {
                    local: received_at(local, dst_ip),
                    remote,
                    protocol: Protocol::Udp,
                };
                for d in datagrams {
                    h.net().stats.udp_received += 1;
                    h.on_datagram(tuple, d, now);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => {
            h.net().stats.udp_recv_errors += 1;
            tracing::debug!(target: "net", %local, "UDP receive error: {e}");
        }
    }
    h.net().arena = Some(arena);
    h.end_turn();
}

/// The local address of a datagram received on the socket bound to `bound`: for a wildcard
/// socket, the destination IP the kernel reported (IP_PKTINFO / IPV6_PKTINFO) on its port, so the
/// core sees the true 5-tuple and replies leave from the address the peer sent to.
fn received_at(bound: SocketAddr, dst_ip: Option<std::net::IpAddr>) -> SocketAddr {
    match dst_ip {
        Some(ip) if bound.ip().is_unspecified() => {
            // A dual-stack `::` socket reports an IPv4 destination for an IPv4-mapped peer.
            let ip = match (bound, ip) {
                (SocketAddr::V6(_), std::net::IpAddr::V4(v4)) => v4.to_ipv6_mapped().into(),
                _ => ip,
            };
            SocketAddr::new(ip, bound.port())
        }
        _ => bound,
    }
}

/// `local` with the unspecified address of its family: the key of a wildcard socket.
fn unspecified(local: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr = match local {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    SocketAddr::new(ip, local.port())
}

/// Back-off after a failed `accept` (EMFILE and friends), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

async fn listener_pump<H: Host>(host: Rc<RefCell<H>>, local: SocketAddr) {
    loop {
        let r = poll_fn(|cx| {
            let mut h = host.borrow_mut();
            let Some(l) = h.net().listeners.get_mut(&local) else {
                return Poll::Ready(None);
            };
            set_waker(&mut l.waker, cx);
            l.io.poll_accept(cx).map(Some)
        })
        .await;
        match r {
            None => return,
            Some(Ok((io, peer))) => {
                if host.borrow_mut().net().add_conn(local, io, peer) {
                    tokio::task::spawn_local(conn_pump(host.clone(), (local, peer)));
                }
            }
            Some(Err(e)) => {
                tracing::debug!(target: "net", %local, "accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn conn_pump<H: Host>(host: Rc<RefCell<H>>, key: ConnKey) {
    let first_frame = tokio::time::sleep(host.borrow_mut().net().limits.tcp_first_frame);
    let mut first_frame = std::pin::pin!(first_frame);
    let mut framer = Framer::new();
    let mut greeted = false;
    loop {
        let ev = poll_fn(|cx| {
            if !greeted && first_frame.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ready::FirstFrameTimeout);
            }
            let mut h = host.borrow_mut();
            let Some(c) = h.net().conns.get_mut(&key) else {
                return Poll::Ready(Ready::Gone);
            };
            set_waker(&mut c.waker, cx);
            if c.blocked && c.io.poll_write_ready(cx).is_ready() {
                return Poll::Ready(Ready::Writable);
            }
            c.io.poll_read_ready(cx).map(|_| Ready::Readable)
        })
        .await;
        match ev {
            Ready::Readable => {
                if !conn_turn(&host, key, &mut framer, &mut greeted) {
                    return;
                }
            }
            Ready::Writable => {
                let mut h = host.borrow_mut();
                let net = h.net();
                if let Some(c) = net.conns.get_mut(&key) {
                    c.blocked = false;
                }
                net.flush_conn(key);
            }
            Ready::FirstFrameTimeout => {
                let mut h = host.borrow_mut();
                let net = h.net();
                net.stats.tcp_malformed += 1;
                net.close_conn(key, &"no first frame in time");
                return;
            }
            Ready::Gone => return,
        }
    }
}

/// One read on a connection, every complete frame to the host, then the end of the turn.
/// `false` when the connection is gone.
fn conn_turn<H: Host>(
    host: &Rc<RefCell<H>>,
    key: ConnKey,
    framer: &mut Framer,
    greeted: &mut bool,
) -> bool {
    let mut h = host.borrow_mut();
    let net = h.net();
    let Some(c) = net.conns.get(&key) else {
        return false;
    };
    match c.io.try_read_buf(framer.read_buf()) {
        Ok(0) => {
            net.close_conn(key, &"closed by the peer");
            return false;
        }
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            return true;
        }
        Err(e) => {
            net.close_conn(key, &e);
            return false;
        }
    }
    let now = Instant::now();
    let tuple = Tuple {
        local: key.0,
        remote: key.1,
        protocol: Protocol::Tcp,
    };
    let mut alive = true;
    while let Some(frame) = framer.next_frame() {
        let net = h.net();
        let frame = match frame {
            Ok(f) if *greeted || classify(f) == PacketKind::Stun => f,
            Ok(_) => {
                net.stats.tcp_malformed += 1;
                net.close_conn(key, &"first frame is not STUN");
                alive = false;
                break;
            }
            Err(e) => {
                net.stats.tcp_malformed += 1;
                net.close_conn(key, &e);
                alive = false;
                break;
            }
        };
        *greeted = true;
        net.stats.tcp_frames_received += 1;
        h.on_datagram(tuple, frame, now);
        if !h.net().conns.contains_key(&key) {
            // Closed while answering (its write buffer overflowed).
            alive = false;
            break;
        }
    }
    h.end_turn();
    alive
}

// ---------------------------------------------------------------------------------------------

/// A wake-up flag for one waiting task on this thread (channel writer, timer), without atomics.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    pending: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Wake {
    pub(crate) fn wake(&self) {
        self.pending.set(true);
        wake(self.waker.borrow_mut().take());
    }

    /// Completes once [`Wake::wake`] was called since the last completion.
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.pending.replace(false) {
                Poll::Ready(())
            } else {
                set_waker(&mut self.waker.borrow_mut(), cx);
                Poll::Pending
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use ferrosfu_worker_core::SocketRequest;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::timeout;

    use super::*;
    use crate::ports;

    const WAIT: Duration = Duration::from_secs(5);

    /// Records what arrives; answers `echo:<data>` on the same tuple, or a burst of `n` equal
    /// datagrams for `burst:<n>:<len>`.
    struct Echo {
        net: Net,
        got: Vec<(Tuple, Vec<u8>)>,
        turns: usize,
    }

    impl Host for Echo {
        fn net(&mut self) -> &mut Net {
            &mut self.net
        }

        fn on_datagram(&mut self, tuple: Tuple, data: &[u8], _now: Instant) {
            self.got.push((tuple, data.to_vec()));
            let text = String::from_utf8_lossy(data);
            if let Some(spec) = text.strip_prefix("\u{1}burst:") {
                let (n, len) = spec.split_once(':').unwrap();
                let (n, len): (usize, usize) = (n.parse().unwrap(), len.parse().unwrap());
                for i in 0..n {
                    let mut d = vec![i as u8; len];
                    d[0] = 1;
                    self.net.transmit(Transmit { tuple, data: d });
                }
                return;
            }
            let mut d = b"echo:".to_vec();
            d.extend_from_slice(data);
            self.net.transmit(Transmit { tuple, data: d });
        }

        fn end_turn(&mut self) {
            self.turns += 1;
            self.net.flush();
        }
    }

    fn host(limits: Limits) -> Rc<RefCell<Echo>> {
        Rc::new(RefCell::new(Echo {
            net: Net::new(limits),
            got: Vec::new(),
            turns: 0,
        }))
    }

    fn run<F: Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    fn open(host: &Rc<RefCell<Echo>>, protocol: Protocol, port: u16) -> BoundSocket {
        let req = SocketRequest {
            protocol,
            ip: "127.0.0.1".into(),
            port,
            announced: Some("203.0.113.7".into()),
        };
        let bound = ports::bind_all(&[req], None).unwrap();
        let mut v = host.borrow_mut().net.open(host, bound).unwrap();
        assert_eq!(v[0].announced.as_deref(), Some("203.0.113.7"));
        v.remove(0)
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    async fn read_frame(s: &mut TcpStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        timeout(WAIT, s.read_exact(&mut len))
            .await
            .unwrap()
            .unwrap();
        let mut v = vec![0; usize::from(u16::from_be_bytes(len))];
        timeout(WAIT, s.read_exact(&mut v)).await.unwrap().unwrap();
        v
    }

    /// The server closed the connection: EOF or a reset.
    async fn assert_closed(s: &mut TcpStream) {
        let mut buf = [0u8; 64];
        loop {
            match timeout(WAIT, s.read(&mut buf))
                .await
                .expect("closed in time")
            {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    #[test]
    fn udp_round_trip_with_batched_receive_and_send() {
        run(async {
            let h = host(Limits::default());
            let server = open(&h, Protocol::Udp, 0);
            let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let me = client.local_addr().unwrap();

            client.send_to(b"hello", server.local).await.unwrap();
            let mut buf = vec![0u8; 65536];
            let (n, from) = timeout(WAIT, client.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!((&buf[..n], from), (&b"echo:hello"[..], server.local));
            let expected = Tuple {
                local: server.local,
                remote: me,
                protocol: Protocol::Udp,
            };
            assert_eq!(h.borrow().got, vec![(expected, b"hello".to_vec())]);

            // A burst of datagrams of different sizes: all delivered, all answered, in order.
            for i in 0..200u32 {
                client
                    .send_to(
                        format!("m{i:0>width$}", width = (i % 7) as usize).as_bytes(),
                        server.local,
                    )
                    .await
                    .unwrap();
            }
            for i in 0..200u32 {
                let (n, _) = timeout(WAIT, client.recv_from(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                let want = format!("echo:m{i:0>width$}", width = (i % 7) as usize);
                assert_eq!(&buf[..n], want.as_bytes());
            }
            let h = h.borrow();
            assert_eq!(h.got.len(), 201);
            assert!(h.turns < 201, "datagrams were received in batches");
            let s = h.net.stats();
            assert_eq!((s.udp_received, s.udp_sent), (201, 201));
        });
    }

    #[test]
    fn wildcard_udp_sockets_report_and_reply_from_the_destination_address() {
        run(async {
            let h = host(Limits::default());
            let req = SocketRequest {
                protocol: Protocol::Udp,
                ip: "0.0.0.0".into(),
                port: 0,
                announced: Some("127.0.0.1".into()),
            };
            let bound = ports::bind_all(&[req], None).unwrap();
            let server = h.borrow_mut().net.open(&h, bound).unwrap().remove(0);
            assert!(server.local.ip().is_unspecified());
            let client = tokio::net::UdpSocket::bind("127.0.0.3:0").await.unwrap();
            let to = SocketAddr::from(([127, 0, 0, 2], server.local.port()));

            client.send_to(b"hi", to).await.unwrap();
            let mut buf = vec![0u8; 1500];
            let (n, from) = timeout(WAIT, client.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!((&buf[..n], from), (&b"echo:hi"[..], to));
            // Several datagrams in one batch (one sendmmsg with a control message each).
            for i in 0..10u8 {
                client.send_to(&[b'm', i], to).await.unwrap();
            }
            for i in 0..10u8 {
                let (n, from) = timeout(WAIT, client.recv_from(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    (&buf[..n], from),
                    (&[b'e', b'c', b'h', b'o', b':', b'm', i][..], to)
                );
            }
            let h = h.borrow();
            assert!(
                h.got.iter().all(|(t, _)| t.local == to),
                "the core sees the true 5-tuple"
            );
            assert_eq!(h.net.stats().udp_sent, 11);
        });
    }

    #[test]
    fn udp_runs_to_one_destination_keep_datagram_boundaries() {
        run(async {
            let h = host(Limits::default());
            let server = open(&h, Protocol::Udp, 0);
            let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            // 40 equal datagrams (a GSO run where the kernel has GSO) then a shorter tail.
            client
                .send_to(b"\x01burst:40:1000", server.local)
                .await
                .unwrap();
            let mut buf = vec![0u8; 65536];
            for i in 0..40usize {
                let (n, _) = timeout(WAIT, client.recv_from(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(n, 1000);
                assert!(buf[1..n].iter().all(|&b| b == i as u8), "datagram {i}");
            }
            assert_eq!(h.borrow().net.stats().udp_sent, 40);
        });
    }

    #[test]
    fn release_closes_sockets_at_once() {
        run(async {
            let h = host(Limits::default());
            let udp = open(&h, Protocol::Udp, 0);
            let tcp = open(&h, Protocol::Tcp, 0);
            let mut client = TcpStream::connect(tcp.local).await.unwrap();
            client.write_all(&frame(b"\x00\x01stun")).await.unwrap();
            assert_eq!(read_frame(&mut client).await, b"echo:\x00\x01stun");

            h.borrow_mut().net.release(&[udp.clone(), tcp.clone()]);
            // The ports are free again before any task ran.
            drop(std::net::UdpSocket::bind(udp.local).expect("UDP port released"));
            drop(std::net::TcpListener::bind(tcp.local).expect("TCP port released"));
            assert_closed(&mut client).await;
            // Transmits to released sockets are counted, not sent.
            let mut hb = h.borrow_mut();
            hb.net.transmit(Transmit {
                tuple: Tuple {
                    local: udp.local,
                    remote: udp.local,
                    protocol: Protocol::Udp,
                },
                data: vec![1],
            });
            assert_eq!(hb.net.stats().unknown_socket, 1);
        });
    }

    #[test]
    fn tcp_frames_split_and_merged_reach_the_core_and_answers_are_framed() {
        run(async {
            let h = host(Limits::default());
            let server = open(&h, Protocol::Tcp, 0);
            let mut client = TcpStream::connect(server.local).await.unwrap();
            let me = client.local_addr().unwrap();

            let stun = frame(b"\x00\x01binding-request");
            client.write_all(&stun[..5]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(&stun[5..]).await.unwrap();
            assert_eq!(
                read_frame(&mut client).await,
                b"echo:\x00\x01binding-request"
            );

            let mut merged = frame(b"\x80rtp-1");
            merged.extend(frame(b"\x80rtp-2"));
            merged.extend(frame(b"\x16dtls"));
            client.write_all(&merged).await.unwrap();
            assert_eq!(read_frame(&mut client).await, b"echo:\x80rtp-1");
            assert_eq!(read_frame(&mut client).await, b"echo:\x80rtp-2");
            assert_eq!(read_frame(&mut client).await, b"echo:\x16dtls");

            let h = h.borrow();
            let tuple = Tuple {
                local: server.local,
                remote: me,
                protocol: Protocol::Tcp,
            };
            assert!(h.got.iter().all(|(t, _)| *t == tuple));
            assert_eq!(h.got.len(), 4);
            assert_eq!(h.net.stats().tcp_frames_received, 4);
        });
    }

    #[test]
    fn tcp_malformed_streams_are_dropped() {
        run(async {
            let h = host(Limits::default());
            let server = open(&h, Protocol::Tcp, 0);
            // Not STUN first.
            let mut c1 = TcpStream::connect(server.local).await.unwrap();
            c1.write_all(&frame(b"\x80rtp")).await.unwrap();
            assert_closed(&mut c1).await;
            // Garbage: an HTTP request declares an oversize frame.
            let mut c2 = TcpStream::connect(server.local).await.unwrap();
            c2.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            assert_closed(&mut c2).await;
            // A zero-length frame after a good one.
            let mut c3 = TcpStream::connect(server.local).await.unwrap();
            c3.write_all(&frame(b"\x00\x01ok")).await.unwrap();
            assert_eq!(read_frame(&mut c3).await, b"echo:\x00\x01ok");
            c3.write_all(&[0, 0]).await.unwrap();
            assert_closed(&mut c3).await;
            // Nothing is delivered from a stream once it is malformed; the listener still works.
            let mut c4 = TcpStream::connect(server.local).await.unwrap();
            c4.write_all(&frame(b"\x00\x01again")).await.unwrap();
            assert_eq!(read_frame(&mut c4).await, b"echo:\x00\x01again");
            let h = h.borrow();
            assert_eq!(h.got.len(), 2);
            assert_eq!(h.net.stats().tcp_malformed, 3);
            assert_eq!(h.net.conns.len(), 1);
        });
    }

    #[test]
    fn tcp_limits_connections_idle_peers_and_slow_readers() {
        run(async {
            let h = host(Limits {
                tcp_conns_per_listener: 2,
                tcp_write_buffer: 64 * 1024,
                tcp_first_frame: Duration::from_millis(200),
                ..Limits::default()
            });
            let server = open(&h, Protocol::Tcp, 0);
            let mut a = TcpStream::connect(server.local).await.unwrap();
            let mut b = TcpStream::connect(server.local).await.unwrap();
            a.write_all(&frame(b"\x00\x01a")).await.unwrap();
            assert_eq!(read_frame(&mut a).await, b"echo:\x00\x01a");
            // The third connection is refused while two are open.
            let mut c = TcpStream::connect(server.local).await.unwrap();
            assert_closed(&mut c).await;
            assert_eq!(h.borrow().net.stats().tcp_rejected, 1);
            // `b` never sends its first frame: closed after the deadline.
            assert_closed(&mut b).await;
            // A peer that asks for 10 MB and does not read overflows its 64 KiB buffer.
            a.write_all(&frame(b"\x01burst:1000:10000")).await.unwrap();
            assert_closed(&mut a).await;
            let s = h.borrow().net.stats();
            assert_eq!((s.tcp_overflow, s.tcp_malformed), (1, 1));
            assert!(h.borrow().net.conns.is_empty());
            // Room again.
            let mut d = TcpStream::connect(server.local).await.unwrap();
            d.write_all(&frame(b"\x00\x01d")).await.unwrap();
            assert_eq!(read_frame(&mut d).await, b"echo:\x00\x01d");
        });
    }

    #[test]
    fn transmits_without_a_socket_or_connection_are_counted() {
        let mut net = Net::new(Limits::default());
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            net.transmit(Transmit {
                tuple: Tuple {
                    local: a,
                    remote: a,
                    protocol,
                },
                data: vec![0; 10],
            });
        }
        net.flush();
        let s = net.stats();
        assert_eq!((s.unknown_socket, s.tcp_unsent), (1, 1));
    }
}
