//! Batched UDP IO on one socket: receive with `recvmmsg` (GRO, the destination address, and the
//! kernel's receive timestamp of each message), send a queue of datagrams with GSO for runs to
//! one destination and `sendmmsg` for the rest. quinn-udp sets the socket up (IP_PKTINFO,
//! UDP_GRO, don't-fragment) and sends GSO batches; its receive has no timestamps, so on Linux
//! the receive is ours.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::task::Waker;
use std::time::Instant;

use quinn_udp::{BATCH_SIZE, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::net::NetStats;

mod recv;

pub(crate) use recv::{RecvMeta, RxClock};
use recv::{enable_rx_timestamps, recvmmsg};

/// One receive buffer: the largest UDP datagram, or the largest GRO aggregate (64 KiB).
const RECV_BUF: usize = 64 * 1024;

/// Datagrams per `sendmmsg` call.
const SEND_BATCH: usize = 32;

/// Batches one discard of a socket's queue reads at most (`BATCH_SIZE` datagrams or more each).
const DISCARD_BATCHES: usize = 64;

/// Largest GSO super-datagram.
const GSO_MAX_BYTES: usize = 64_000;

/// Receive buffers shared by every UDP socket of the worker (one socket is read at a time).
#[derive(Debug)]
pub(crate) struct RecvArena {
    buf: Vec<u8>,
    meta: [RecvMeta; BATCH_SIZE],
}

impl RecvArena {
    pub(crate) fn new() -> Box<Self> {
        Box::new(Self {
            buf: vec![0; BATCH_SIZE * RECV_BUF],
            meta: [RecvMeta::default(); BATCH_SIZE],
        })
    }

    /// How many datagrams the first `n` messages of the last receive hold (GRO merges several
    /// into one message).
    pub(crate) fn count(&self, n: usize) -> u64 {
        (0..n.min(BATCH_SIZE))
            .map(|i| {
                let m = &self.meta[i];
                let len = m.len.min(RECV_BUF);
                match m.stride {
                    0 => 1,
                    s => len.div_ceil(s).max(1) as u64,
                }
            })
            .sum()
    }

    /// Message `i` of the last receive: what the kernel said of it, and its datagrams (several
    /// when GRO merged them).
    pub(crate) fn datagrams(&self, i: usize) -> (&RecvMeta, std::slice::Chunks<'_, u8>) {
        let meta = &self.meta[i];
        let len = meta.len.min(RECV_BUF);
        let data = &self.buf[i * RECV_BUF..i * RECV_BUF + len];
        // stride 0 never comes from the kernel; treat it as "one datagram".
        let stride = if meta.stride == 0 { len } else { meta.stride };
        (meta, data.chunks(stride.max(1)))
    }
}

/// One queued datagram: destination, source IP to send from (only for a socket bound to the
/// unspecified address; `None`: the kernel's choice), where its bytes are in the socket's
/// arena.
#[derive(Debug)]
pub(crate) struct Queued {
    to: SocketAddr,
    src: Option<IpAddr>,
    bytes: Range<usize>,
}

/// A socket's send queue: datagrams in order, their bytes back to back in one arena (no
/// allocation per datagram; a GSO run is one contiguous slice of it). The arena resets when the
/// queue empties.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    items: VecDeque<Queued>,
    arena: Vec<u8>,
}

impl SendQueue {
    #[cfg(test)]
    fn push(&mut self, to: SocketAddr, src: Option<IpAddr>, data: &[u8]) {
        let start = self.arena.len();
        self.arena.extend_from_slice(data);
        self.items.push_back(Queued {
            to,
            src,
            bytes: start..self.arena.len(),
        });
    }

    /// Lets `fill` append datagrams to the arena (a transmit: `size` bytes in segments of
    /// `segment_size`) and queues each to `to`; returns how many were queued.
    fn append_with(
        &mut self,
        to: SocketAddr,
        src: Option<IpAddr>,
        fill: impl FnOnce(&mut Vec<u8>) -> Option<(usize, Option<usize>)>,
    ) -> usize {
        let start = self.arena.len();
        let Some((size, segment)) = fill(&mut self.arena) else {
            self.arena.truncate(start);
            return 0;
        };
        let end = (start + size).min(self.arena.len());
        self.arena.truncate(end);
        let seg = segment.unwrap_or(size).max(1);
        let mut at = start;
        let mut n = 0;
        while at < end {
            let next = (at + seg).min(end);
            self.items.push_back(Queued {
                to,
                src,
                bytes: at..next,
            });
            at = next;
            n += 1;
        }
        n
    }

    fn data(&self, q: &Queued) -> &[u8] {
        &self.arena[q.bytes.clone()]
    }

    /// The bytes of the first `n` datagrams, contiguous in the arena.
    fn run(&self, n: usize) -> &[u8] {
        match (self.items.front(), self.items.get(n.max(1) - 1)) {
            (Some(a), Some(b)) => &self.arena[a.bytes.start..b.bytes.end],
            _ => &[],
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Forgets the first `n` datagrams; the arena is reset once nothing is left, and compacted
    /// when what was sent is most of it (a socket that stays blocked).
    fn pop(&mut self, n: usize) {
        self.items.drain(..n.min(self.items.len()));
        match self.items.front() {
            None => self.arena.clear(),
            Some(f) if f.bytes.start > 64 * 1024 && f.bytes.start > self.arena.len() / 2 => {
                let shift = f.bytes.start;
                self.arena.drain(..shift);
                for q in &mut self.items {
                    q.bytes = q.bytes.start - shift..q.bytes.end - shift;
                }
            }
            Some(_) => {}
        }
    }
}

/// A bound UDP socket with its send queue, owned by the socket tables ([`crate::net::Net`]).
#[derive(Debug)]
pub(crate) struct UdpSock {
    pub(crate) io: UdpSocket,
    state: UdpSocketState,
    queue: SendQueue,
    /// The last send hit `WouldBlock`: the socket's pump waits for writability.
    pub(crate) blocked: bool,
    /// Queued for the end-of-turn flush.
    pub(crate) dirty: bool,
    /// The socket's pump, woken when the socket is released or becomes blocked.
    pub(crate) waker: Option<Waker>,
    /// Since when every receive returned a full batch (the worker is behind this socket's input).
    pub(crate) behind_since: Option<Instant>,
}

impl UdpSock {
    /// Registers a bound socket with the runtime (must run inside it), with kernel receive
    /// timestamps on where the platform has them.
    pub(crate) fn new(socket: socket2::Socket) -> io::Result<Self> {
        let io = UdpSocket::from_std(socket.into())?;
        let state = UdpSocketState::new((&io).into())?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = enable_rx_timestamps(&io) {
            // Arrival times are then the time of the read.
            tracing::debug!(target: "net", "SO_TIMESTAMPNS: {e}");
        }
        Ok(Self {
            io,
            state,
            queue: SendQueue::default(),
            blocked: false,
            dirty: false,
            waker: None,
            behind_since: None,
        })
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn drop_oldest(&mut self) {
        self.queue.pop(1);
    }

    /// Reads and drops what is queued on the socket (at most [`DISCARD_BATCHES`] batches, so
    /// that a flood cannot hold the thread); returns how many datagrams.
    pub(crate) fn discard_queued(&self, arena: &mut RecvArena) -> u64 {
        let mut dropped = 0;
        for _ in 0..DISCARD_BATCHES {
            match self.recv(arena) {
                Ok(n) => {
                    dropped += arena.count(n);
                    if n < BATCH_SIZE {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        dropped
    }

    /// Queues the datagrams `fill` appends to the send arena (`(size, segment size)` of what it
    /// wrote, `None`: nothing) to `to`, sent from `src` when given: the core writes its transmit
    /// straight into the queue, without a staging copy. Returns how many were queued.
    pub(crate) fn enqueue_with(
        &mut self,
        to: SocketAddr,
        src: Option<IpAddr>,
        fill: impl FnOnce(&mut Vec<u8>) -> Option<(usize, Option<usize>)>,
    ) -> usize {
        self.queue.append_with(to, src, fill)
    }

    /// One `recvmmsg` into the arena: the number of messages received.
    pub(crate) fn recv(&self, arena: &mut RecvArena) -> io::Result<usize> {
        self.io.try_io(Interest::READABLE, || {
            recvmmsg(&self.io, &self.state, arena)
        })
    }

    /// Sends the queue until it is empty or the socket would block (then `blocked` is set and the
    /// rest stays queued). Datagrams the kernel refuses are dropped and counted.
    pub(crate) fn flush(&mut self, stats: &mut NetStats) {
        while !self.queue.is_empty() {
            let gso_max = self.state.max_gso_segments();
            let run = if gso_max > 1 {
                gso_run(&self.queue, 0, gso_max)
            } else {
                1
            };
            let result = if run > 1 {
                self.send_gso(run).map(|()| run)
            } else {
                // Singles up to the next run worth a GSO send.
                let mut n = 1;
                while n < SEND_BATCH
                    && n < self.queue.len()
                    && (gso_max <= 1 || gso_run(&self.queue, n, gso_max) == 1)
                {
                    n += 1;
                }
                self.send_many(n)
            };
            match result {
                Ok(0) => {
                    // Never returned for a non-empty batch; guarantees progress all the same.
                    stats.udp_send_errors += 1;
                    self.queue.pop(1);
                }
                Ok(sent) => {
                    stats.udp_sent += sent as u64;
                    self.queue.pop(sent);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    return;
                }
                Err(e) if run > 1 && self.state.max_gso_segments() <= 1 => {
                    // The kernel refused GSO (quinn-udp turned it off): resend as singles.
                    tracing::debug!(target: "net", "GSO send failed, falling back: {e}");
                }
                Err(e) => {
                    // Unreachable destination, message too long...: drop what was being sent.
                    let n = run.max(1);
                    stats.udp_send_errors += n as u64;
                    tracing::debug!(target: "net", "dropping {n} datagram(s): {e}");
                    self.queue.pop(n);
                }
            }
        }
        self.blocked = false;
    }

    /// Sends `run` equal-size datagrams (the last may be shorter) to one destination as one GSO
    /// super-datagram.
    fn send_gso(&self, run: usize) -> io::Result<()> {
        let first = &self.queue.items[0];
        let t = quinn_udp::Transmit {
            destination: first.to,
            ecn: None,
            // Queued back to back: the run is one slice of the arena, sent without a copy.
            contents: self.queue.run(run),
            segment_size: Some(first.bytes.len()),
            src_ip: first.src,
        };
        self.io.try_io(Interest::WRITABLE, || {
            self.state.try_send((&self.io).into(), &t)
        })
    }

    /// Sends the first `n` queued datagrams with as few syscalls as the platform allows; returns
    /// how many left.
    fn send_many(&self, n: usize) -> io::Result<usize> {
        self.io
            .try_io(Interest::WRITABLE, || sendmmsg(&self.io, &self.queue, n))
    }
}

/// How many datagrams from `at` can go in one GSO send: same destination and source, same
/// length, except that the last may be shorter.
fn gso_run(q: &SendQueue, at: usize, max: usize) -> usize {
    let Some(first) = q.items.get(at) else {
        return 0;
    };
    let seg = first.bytes.len();
    if seg == 0 {
        return 1;
    }
    let mut n = 1;
    let mut bytes = seg;
    for Queued { to, src, bytes: p } in q.items.iter().skip(at + 1) {
        if n >= max
            || *to != first.to
            || *src != first.src
            || p.len() > seg
            || bytes + p.len() > GSO_MAX_BYTES
        {
            break;
        }
        n += 1;
        bytes += p.len();
        if p.len() < seg {
            break;
        }
    }
    n
}

/// Room for one IP_PKTINFO or IPV6_PKTINFO control message, aligned for `cmsghdr`.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct PktInfoCmsg([u8; 64]);

/// Writes the control message that makes the kernel send from `src` into `buf`; returns its
/// length.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn write_pktinfo(buf: &mut PktInfoCmsg, src: IpAddr) -> usize {
    // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic; the sizes of both pktinfo structs fit the
    // 64-byte buffer (CMSG_SPACE(20) = 40 on 64-bit), which is aligned for `cmsghdr`, so the
    // header and data pointers stay inside it; the writes are unaligned-safe.
    unsafe {
        let (level, ty, len) = match src {
            IpAddr::V4(_) => (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                size_of::<libc::in_pktinfo>(),
            ),
            IpAddr::V6(_) => (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                size_of::<libc::in6_pktinfo>(),
            ),
        };
        let space = libc::CMSG_SPACE(len as u32) as usize;
        debug_assert!(space <= buf.0.len());
        let hdr = buf.0.as_mut_ptr().cast::<libc::cmsghdr>();
        (*hdr).cmsg_level = level;
        (*hdr).cmsg_type = ty;
        (*hdr).cmsg_len = libc::CMSG_LEN(len as u32) as _;
        let data = libc::CMSG_DATA(hdr);
        match src {
            IpAddr::V4(v4) => data
                .cast::<libc::in_pktinfo>()
                .write_unaligned(libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                }),
            IpAddr::V6(v6) => data
                .cast::<libc::in6_pktinfo>()
                .write_unaligned(libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: v6.octets(),
                    },
                    ipi6_ifindex: 0,
                }),
        }
        space
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn sendmmsg(io: &UdpSocket, q: &SendQueue, n: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    let n = n.min(SEND_BATCH).min(q.len());
    // Only the `n` entries sent are written: with a socket per transport a batch is often one
    // datagram, and zeroing every entry of the arrays (~5 KiB) per call showed in profiles.
    let mut addrs = [const { MaybeUninit::<socket2::SockAddr>::uninit() }; SEND_BATCH];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; SEND_BATCH];
    let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; SEND_BATCH];
    let mut cmsgs = [const { MaybeUninit::<PktInfoCmsg>::uninit() }; SEND_BATCH];
    for (i, qd) in q.items.iter().take(n).enumerate() {
        let data = q.data(qd);
        let addr = addrs[i].write(socket2::SockAddr::from(qd.to));
        let iov = iovs[i].write(libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        });
        // SAFETY: all-zero is a valid value for this plain C struct.
        let h = &mut hdrs[i].write(unsafe { std::mem::zeroed() }).msg_hdr;
        h.msg_name = addr.as_ptr() as *mut libc::c_void;
        h.msg_namelen = addr.len();
        h.msg_iov = iov;
        h.msg_iovlen = 1;
        if let Some(src) = qd.src {
            let c = cmsgs[i].write(PktInfoCmsg([0; 64]));
            let len = write_pktinfo(c, src);
            h.msg_control = c.0.as_mut_ptr().cast();
            h.msg_controllen = len as _;
        }
    }
    loop {
        // SAFETY: `hdrs[..n]` are written (above) and point into `addrs`, `iovs`, `cmsgs` and the
        // queued buffers, all alive and unmoved for the duration of the call; the kernel reads
        // only the first `n` (and writes their msg_len).
        let r = unsafe {
            libc::sendmmsg(
                io.as_raw_fd(),
                hdrs.as_mut_ptr().cast::<libc::mmsghdr>(),
                n as _,
                0,
            )
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn sendmmsg(io: &UdpSocket, q: &SendQueue, n: usize) -> io::Result<usize> {
    // Without sendmmsg the source IP is the kernel's choice.
    let mut sent = 0;
    for qd in q.items.iter().take(n) {
        match io.try_send_to(q.data(qd), qd.to) {
            Ok(_) => sent += 1,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a check: a load for counting the receive path's instructions per datagram with
    /// callgrind (`valgrind --tool=callgrind --toggle-collect='*UdpSock::recv*' <release test
    /// binary> --ignored --exact udp::tests::recv_cost`): 3200 datagrams of 1200 B, read in
    /// batches of up to 32.
    #[test]
    #[ignore]
    fn recv_cost() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sock = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )
            .unwrap();
            sock.set_recv_buffer_size(4 << 20).unwrap();
            sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
                .unwrap();
            let to = sock.local_addr().unwrap().as_socket().unwrap();
            let s = UdpSock::new(sock).unwrap();
            let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut arena = RecvArena::new();
            let mut got = 0u64;
            for _ in 0..100 {
                for i in 0..BATCH_SIZE {
                    client.send_to(&[i as u8; 1200], to).unwrap();
                }
                let mut batch = 0;
                while batch < BATCH_SIZE as u64 {
                    s.io.readable().await.unwrap();
                    if let Ok(n) = s.recv(&mut arena) {
                        batch += arena.count(n);
                    }
                }
                got += batch;
            }
            assert_eq!(got, 100 * BATCH_SIZE as u64);
        });
    }

    fn q(items: &[(u16, usize)]) -> SendQueue {
        let mut q = SendQueue::default();
        for &(port, len) in items {
            q.push(
                SocketAddr::from(([127, 0, 0, 1], port)),
                None,
                &vec![0; len],
            );
        }
        q
    }

    #[test]
    fn the_send_queue_keeps_datagrams_back_to_back_and_resets_when_empty() {
        let mut q = SendQueue::default();
        let to = SocketAddr::from(([127, 0, 0, 1], 1));
        q.push(to, None, &[1; 3]);
        q.push(to, None, &[2; 3]);
        q.push(to, None, &[3; 2]);
        assert_eq!(q.run(2), &[1, 1, 1, 2, 2, 2]);
        assert_eq!(q.run(3).len(), 8);
        q.pop(1);
        assert_eq!(q.data(&q.items[0]), &[2; 3]);
        assert_eq!(q.run(2), &[2, 2, 2, 3, 3]);
        q.pop(2);
        assert!(q.is_empty() && q.arena.is_empty(), "reset once drained");
        // A queue that never drains is compacted, not grown without end.
        for i in 0..200u8 {
            q.push(to, None, &[i; 1000]);
            if q.len() > 10 {
                q.pop(1);
            }
        }
        assert!(
            q.arena.len() <= 200 * 1000 / 2 + 64 * 1024,
            "compacted: {}",
            q.arena.len()
        );
        assert_eq!(q.data(&q.items[0]), &[190; 1000][..]);
    }

    #[test]
    fn a_transmit_appended_in_place_is_queued_as_its_segments() {
        let mut q = SendQueue::default();
        let to = SocketAddr::from(([127, 0, 0, 1], 1));
        q.push(to, None, &[9; 10]);
        // A GSO batch of 100 + 100 + 60 bytes written by the core.
        let n = q.append_with(to, None, |arena| {
            arena.extend_from_slice(&[1; 100]);
            arena.extend_from_slice(&[2; 100]);
            arena.extend_from_slice(&[3; 60]);
            Some((260, Some(100)))
        });
        assert_eq!(n, 3);
        let sizes: Vec<_> = q.items.iter().map(|i| q.data(i).len()).collect();
        assert_eq!(sizes, [10, 100, 100, 60]);
        assert_eq!(q.data(&q.items[3]), &[3; 60]);
        // Nothing written: nothing queued, the arena as it was.
        assert_eq!(q.append_with(to, None, |_| None), 0);
        assert_eq!((q.len(), q.arena.len()), (4, 270));
    }

    #[test]
    fn gso_runs_need_one_destination_and_equal_sizes() {
        let queue = q(&[(1, 100), (1, 100), (1, 100), (1, 60), (1, 100), (2, 100)]);
        assert_eq!(
            gso_run(&queue, 0, 64),
            4,
            "a shorter last segment ends the run"
        );
        assert_eq!(
            gso_run(&queue, 4, 64),
            1,
            "another destination ends the run"
        );
        assert_eq!(
            gso_run(&queue, 0, 2),
            2,
            "capped by the kernel's segment limit"
        );
        let queue = q(&[(1, 100), (1, 200)]);
        assert_eq!(gso_run(&queue, 0, 64), 1, "a longer datagram cannot follow");
        let mut queue = q(&[(1, 100), (1, 100), (1, 100)]);
        queue.items[2].src = Some([127, 0, 0, 2].into());
        assert_eq!(gso_run(&queue, 0, 64), 2, "another source ends the run");
        let queue = q(&[(1, 1400); 100]);
        assert_eq!(gso_run(&queue, 0, 64), GSO_MAX_BYTES / 1400);
        assert_eq!(gso_run(&queue, 100, 64), 0);
    }
}
