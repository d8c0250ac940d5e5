//! The pumps: one task per socket that waits for readiness and runs *turns* with the host
//! borrowed (see the module docs of [`crate::net`]).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use ferrosfu_worker_core::{PacketKind, Protocol, Tuple, classify};

use super::{ConnKey, Host, set_waker};
use crate::tcp::Framer;
use quinn_udp::BATCH_SIZE;

use crate::udp::{RecvArena, RxClock};

#[derive(Debug)]
enum Ready {
    Gone,
    Readable,
    Writable,
    FirstFrameTimeout,
}

pub(super) async fn udp_pump<H: Host>(host: Rc<RefCell<H>>, local: SocketAddr) {
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
///
/// Overload: a full batch means more is queued behind it. A socket that has given full batches
/// for [`Limits::udp_behind`](super::Limits) without a break is behind its input: this turn
/// discards the batch and what is queued behind it (the oldest input, `udp_behind_dropped`)
/// instead of forwarding it seconds late, and the next turn starts on fresh input. Discarding
/// costs a `recvmmsg` per batch and no fan-out, so the worker keeps forwarding at its full rate
/// with a bounded delay; without this the kernel buffer (`SO_RCVBUF`, seconds of input) fills,
/// everything forwarded is that late, and the newest input is dropped uncounted.
fn udp_turn<H: Host>(host: &Rc<RefCell<H>>, local: SocketAddr) {
    let mut h = host.borrow_mut();
    let net = h.net();
    let mut arena = net.arena.take().unwrap_or_else(RecvArena::new);
    let behind_limit = net.limits.udp_behind;
    let Some(s) = net.udp.get_mut(&local) else {
        net.arena = Some(arena);
        return;
    };
    let received = s.recv(&mut arena);
    let clock = RxClock::read();
    let now = clock.now;
    match received {
        Ok(0) => s.behind_since = None,
        Ok(n) if n < BATCH_SIZE => s.behind_since = None,
        Ok(_) => match s.behind_since {
            None => s.behind_since = Some(now),
            Some(since) if now.saturating_duration_since(since) >= behind_limit => {
                let dropped = arena.count(BATCH_SIZE) + s.discard_queued(&mut arena);
                s.behind_since = None;
                net.stats.udp_behind_dropped += dropped;
                tracing::trace!(target: "net", %local, dropped, "behind the input: oldest datagrams dropped");
                net.arena = Some(arena);
                h.end_turn();
                return;
            }
            Some(_) => {}
        },
        Err(_) => {}
    }
    match received {
        Ok(n) => {
            for i in 0..n {
                let (meta, datagrams) = arena.datagrams(i);
                let tuple = Tuple {
                    local: received_at(local, meta.dst_ip),
                    remote: meta.addr,
                    protocol: Protocol::Udp,
                };
                let arrival = clock.arrival(meta.rx_time);
                for d in datagrams {
                    h.net().stats.udp_received += 1;
                    h.on_datagram(tuple, d, arrival, now);
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

/// Back-off after a failed `accept` (EMFILE and friends), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub(super) async fn listener_pump<H: Host>(host: Rc<RefCell<H>>, local: SocketAddr) {
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
        // A stream has no per-datagram receive time: the read's.
        h.on_datagram(tuple, frame, now, now);
        if !h.net().conns.contains_key(&key) {
            // Closed while answering (its write buffer overflowed).
            alive = false;
            break;
        }
    }
    h.end_turn();
    alive
}
