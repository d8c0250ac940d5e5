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
//! - UDP: one `recvmmsg` (GRO-aware) into the worker-wide [`RecvArena`], every datagram to
//!   [`Host::on_datagram`] with its kernel receive time (`SO_TIMESTAMPNS`) as its arrival;
//! - TCP listener: one `accept` (at most `tcp_conns_per_listener` connections per listener);
//! - TCP connection: one read, every complete RFC 4571 frame to [`Host::on_datagram`]; a
//!   malformed frame, EOF, or a first frame that is not STUN closes the connection;
//!
//! then calls [`Host::end_turn`], which drains the core and [`Net::flush`]es: the datagrams the
//! turn queued per socket go out in batches (GSO runs / `sendmmsg`; TCP: one write per
//! connection). A socket that would block keeps its bounded queue and its pump also waits for
//! writability. The channel and the core's timer are two more tasks on the same thread (see
//! `channel.rs`); tokio's cooperative budget keeps a flooded socket from starving them.

mod pump;

#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ferrosfu_worker_core::{BoundSocket, Protocol, Transmit, Tuple};
use tokio::net::{TcpListener, TcpStream};

use self::pump::{listener_pump, udp_pump};
use crate::ports::Bound;
use crate::tcp::{Conn, WriteError};
use crate::udp::{RecvArena, UdpSock};

/// What the socket layer delivers to and asks of its owner (the shell; a test host in tests).
pub(crate) trait Host: 'static {
    fn net(&mut self) -> &mut Net;
    /// One UDP datagram or one TCP frame arrived on `tuple`: at `arrival` (the kernel's receive
    /// timestamp of a UDP datagram, else `now`), read at `now`.
    fn on_datagram(&mut self, tuple: Tuple, data: &[u8], arrival: Instant, now: Instant);
    /// A turn ended: drain what the datagrams caused and [`Net::flush`].
    fn end_turn(&mut self);
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Datagrams queued per UDP socket while it would block; past it the oldest is dropped.
    pub(crate) udp_queue: usize,
    /// How long a UDP socket may give full receive batches without a break (the worker is
    /// behind its input) before what is queued on it is dropped; see `pump::udp_turn`. Long
    /// enough that a burst the worker absorbs (a keyframe fanned out to hundreds of consumers
    /// keeps batches full for tens of milliseconds at well under 100 % CPU) is not shed: at
    /// 100 ms, fan-outs of 200 at 75 % CPU lost whole frames.
    pub(crate) udp_behind: Duration,
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
            udp_behind: Duration::from_millis(500),
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
    /// Queued datagrams dropped (the oldest) because the socket's send queue was full: it
    /// stayed blocked (`EAGAIN`) while the worker kept reading and forwarding.
    pub(crate) udp_queue_full: u64,
    /// Received datagrams dropped unread by the core because the worker was behind its input
    /// (overload: the excess is shed here, before the fan-out).
    pub(crate) udp_behind_dropped: u64,
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

impl NetStats {
    /// The counters as the channel reports them (`worker.get_resource_usage`).
    pub(crate) fn counters(&self) -> ferrosfu_fbs::SocketCounters {
        ferrosfu_fbs::SocketCounters {
            udp_received: self.udp_received,
            udp_sent: self.udp_sent,
            udp_behind_dropped: self.udp_behind_dropped,
            udp_send_queue_full: self.udp_queue_full,
            udp_send_errors: self.udp_send_errors,
            udp_recv_errors: self.udp_recv_errors,
            no_socket: self.unknown_socket,
            tcp_unsent: self.tcp_unsent,
            tcp_accepted: self.tcp_accepted,
            tcp_rejected: self.tcp_rejected,
            tcp_malformed: self.tcp_malformed,
            tcp_overflow: self.tcp_overflow,
            tcp_frames_received: self.tcp_frames_received,
        }
    }
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

    /// Queues what the core wrote into `contents` (one datagram or TCP frame, or a batch of
    /// datagrams to one destination) for the end-of-turn [`Net::flush`]; the bytes are copied
    /// into the socket's (or connection's) own queue.
    pub(crate) fn transmit(&mut self, t: Transmit, contents: &[u8]) {
        for data in t.datagrams(contents) {
            self.transmit_one(t.tuple, data);
        }
    }

    /// For a UDP `tuple` with a socket: lets `fill` (the core's `poll_transmit`) append its next
    /// transmit straight into that socket's send queue, without a staging copy, and returns
    /// true. False (nothing polled) for TCP or a tuple without a socket: use [`Net::transmit`].
    /// The socket is the one bound to the tuple's local address, else the wildcard socket on
    /// its port, which sends from that address's IP (where the tuple's datagrams arrived).
    /// One socket lookup in the common case. A full queue drops its oldest datagram (media:
    /// the newest is worth more).
    pub(crate) fn transmit_udp_with(
        &mut self,
        tuple: Tuple,
        fill: impl FnOnce(&mut Vec<u8>) -> Option<(usize, Option<usize>)>,
    ) -> bool {
        if tuple.protocol != Protocol::Udp {
            return false;
        }
        let (key, src) = (tuple.local, None);
        let (key, src, s) = match self.udp.get_mut(&key) {
            Some(s) => (key, src, s),
            None => {
                let any = unspecified(tuple.local);
                match self.udp.get_mut(&any) {
                    Some(s) => (any, Some(tuple.local.ip()), s),
                    None => return false,
                }
            }
        };
        if s.queued() >= self.limits.udp_queue {
            s.drop_oldest();
            self.stats.udp_queue_full += 1;
            tracing::trace!(target: "net", local = %key, "UDP send queue full, oldest datagram dropped");
        }
        if !s.dirty {
            s.dirty = true;
            self.dirty_udp.push(key);
        }
        s.enqueue_with(tuple.remote, src, fill);
        true
    }

    pub(crate) fn transmit_one(&mut self, tuple: Tuple, data: &[u8]) {
        let Tuple {
            local,
            remote,
            protocol,
        } = tuple;
        match protocol {
            Protocol::Udp => {
                let queued = self.transmit_udp_with(tuple, |queue| {
                    queue.extend_from_slice(data);
                    Some((data.len(), None))
                });
                if !queued {
                    self.stats.unknown_socket += 1;
                    tracing::trace!(target: "net", %local, "transmit: no such UDP socket");
                }
            }
            Protocol::Tcp => {
                let key = (local, remote);
                let Some(c) = self.conns.get_mut(&key) else {
                    self.stats.tcp_unsent += 1;
                    tracing::trace!(target: "net", %local, %remote, "transmit: no such TCP connection");
                    return;
                };
                match c.enqueue(data, self.limits.tcp_write_buffer) {
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
        s.flush(&mut self.stats);
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

/// `local` with the unspecified address of its family: the key of a wildcard socket.
fn unspecified(local: SocketAddr) -> SocketAddr {
    let ip: IpAddr = match local {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    SocketAddr::new(ip, local.port())
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
