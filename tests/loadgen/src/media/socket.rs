//! The engine's socket: one UDP socket with big buffers and kernel receive timestamps, the
//! `recvmmsg` arena (datagram, source, `SO_TIMESTAMPNS`, `SO_RXQ_OVFL`), batched `sendmmsg`, and
//! the address-keyed demux map.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use anyhow::{Context as _, Result};
use bytes::BytesMut;

use super::{BATCH, CMSG_BUF, RX_BUF, SOCKET_BUFFER};

pub(super) fn open_socket(addr: SocketAddr) -> Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())
        .with_context(|| format!("bind {addr}"))?;
    let fd = s.as_raw_fd();
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, SOCKET_BUFFER).is_err() {
        // Not root: as much as rmem_max allows.
        let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    }
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, SOCKET_BUFFER).is_err() {
        let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    }
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1).context("SO_TIMESTAMPNS")?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1).context("SO_RXQ_OVFL")?;
    Ok(s)
}

pub(crate) fn setsockopt_int(fd: i32, level: i32, name: i32, value: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: passes a pointer to a live c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const v).cast::<libc::c_void>(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A cheap hasher for socket addresses (the demux runs per packet).
#[derive(Default, Clone, Copy)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
}

pub(crate) type AddrMap<V> = HashMap<SocketAddr, V, BuildHasherDefault<AddrHasher>>;

pub(super) struct RxArena {
    pub(super) bufs: Vec<[u8; RX_BUF]>,
    pub(super) names: Vec<libc::sockaddr_storage>,
    pub(super) ctrl: Vec<[u8; CMSG_BUF]>,
    pub(super) iovs: Vec<libc::iovec>,
    pub(super) hdrs: Vec<libc::mmsghdr>,
}

impl RxArena {
    pub(super) fn new() -> Box<RxArena> {
        Box::new(RxArena {
            bufs: vec![[0; RX_BUF]; BATCH],
            // SAFETY: all-zero is a valid sockaddr_storage.
            names: vec![unsafe { std::mem::zeroed() }; BATCH],
            ctrl: vec![[0; CMSG_BUF]; BATCH],
            // SAFETY: all-zero is a valid value for these plain C structs.
            iovs: vec![unsafe { std::mem::zeroed() }; BATCH],
            // SAFETY: as above.
            hdrs: vec![unsafe { std::mem::zeroed() }; BATCH],
        })
    }

    /// One non-blocking `recvmmsg`.
    pub(super) fn recv(&mut self, fd: i32) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iovs[i].iov_base = self.bufs[i].as_mut_ptr().cast();
            self.iovs[i].iov_len = RX_BUF;
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = CMSG_BUF;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        loop {
            // SAFETY: every header points into buffers of this arena, alive and unmoved for the
            // duration of the call, with their true sizes.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
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

    /// Message `i` of the last receive: source, data, kernel receive time (ns, CLOCK_REALTIME),
    /// the socket's cumulative drop counter if reported.
    pub(super) fn message(
        &self,
        i: usize,
    ) -> (Option<SocketAddr>, &[u8], Option<u64>, Option<u32>) {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(RX_BUF);
        let from = socket_addr(&self.names[i]);
        let (mut ts, mut drops) = (None, None);
        // SAFETY: walks the control buffer the kernel filled, with the libc CMSG macros, which
        // stay within `msg_controllen`.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
            while !c.is_null() {
                let level = (*c).cmsg_level;
                let typ = (*c).cmsg_type;
                let data = libc::CMSG_DATA(c);
                if level == libc::SOL_SOCKET && typ == libc::SCM_TIMESTAMPNS {
                    let t = std::ptr::read_unaligned(data.cast::<libc::timespec>());
                    ts = Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64);
                } else if level == libc::SOL_SOCKET && typ == libc::SO_RXQ_OVFL {
                    drops = Some(std::ptr::read_unaligned(data.cast::<u32>()));
                }
                c = libc::CMSG_NXTHDR(&h.msg_hdr, c);
            }
        }
        (from, &self.bufs[i][..len], ts, drops)
    }
}

/// The address in a `sockaddr_storage` the kernel filled (IPv4 or IPv6).
pub(super) fn socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; storage is larger and
            // suitably aligned.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::new(
                IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()),
                u16::from_be(a.sin_port),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::new(
                IpAddr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
            ))
        }
        _ => None,
    }
}

/// `sendmmsg` the queue (all of it; what the kernel refuses is dropped and counted).
pub(super) fn send_queue(fd: i32, q: &mut Vec<(SocketAddr, BytesMut)>, errors: &mut u64) {
    *errors += sendmmsg_all(fd, q, |(a, _)| (*a).into(), |(_, d)| d);
    q.clear();
}

/// Sends every item with `sendmmsg`, in batches of [`BATCH`]: `dest` and `data` of each.
/// What the kernel refuses (an unreachable port, a full buffer) is dropped; returns how many.
pub(crate) fn sendmmsg_all<T>(
    fd: i32,
    items: &[T],
    dest: impl Fn(&T) -> socket2::SockAddr,
    data: impl Fn(&T) -> &[u8],
) -> u64 {
    let mut dropped = 0;
    let mut at = 0;
    while at < items.len() {
        let n = (items.len() - at).min(BATCH);
        let addrs: Vec<socket2::SockAddr> = items[at..at + n].iter().map(&dest).collect();
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, item) in items[at..at + n].iter().enumerate() {
            let d = data(item);
            iovs[i].iov_base = d.as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = d.len();
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
            h.msg_namelen = addrs[i].len();
            h.msg_iov = &raw mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: `hdrs[..n]` point into `addrs`, `iovs` and the items' buffers, all alive and
        // unmoved during the call; the kernel only reads them (and writes msg_len).
        let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
        if r > 0 {
            at += r as usize;
        } else {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            dropped += 1;
            at += 1;
        }
    }
    dropped
}
