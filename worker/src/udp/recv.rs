//! The receive side of [`super::UdpSock`]: `recvmmsg` with each message's source, destination
//! IP, GRO stride and kernel receive timestamp (`SO_TIMESTAMPNS`), and the clock that turns
//! those timestamps into the core's `Instant`s.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use quinn_udp::{BATCH_SIZE, UdpSocketState};
use tokio::net::UdpSocket;

use super::{RECV_BUF, RecvArena};

/// What the kernel said of one received message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecvMeta {
    pub(crate) addr: SocketAddr,
    /// Bytes in the message's buffer.
    pub(crate) len: usize,
    /// Size of each datagram in it (GRO merges several of one size; the last may be shorter).
    pub(crate) stride: usize,
    /// The destination IP (IP_PKTINFO / IPV6_PKTINFO).
    pub(crate) dst_ip: Option<IpAddr>,
    /// When it reached the host (`SO_TIMESTAMPNS`: CLOCK_REALTIME), for a GRO message when its
    /// first datagram did.
    pub(crate) rx_time: Option<Duration>,
}

impl Default for RecvMeta {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            len: 0,
            stride: 0,
            dst_ip: None,
            rx_time: None,
        }
    }
}

/// How old a kernel receive timestamp may be before it is taken for a clock step rather than
/// the age of a datagram (the worker sheds input it is more than `Limits::udp_behind` behind).
const MAX_RX_AGE: Duration = Duration::from_secs(2);

/// The two clocks at one instant: turns kernel receive timestamps (CLOCK_REALTIME) into the
/// core's monotonic `Instant`s.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RxClock {
    pub(crate) now: Instant,
    realtime: Duration,
}

impl RxClock {
    /// Reads both clocks, right after a receive.
    #[allow(clippy::disallowed_methods)] // the shell owns the clock
    pub(crate) fn read() -> Self {
        let now = Instant::now();
        Self {
            now,
            realtime: realtime(),
        }
    }

    /// The arrival of a datagram received at `rx_time` (CLOCK_REALTIME): as long before `now`
    /// as the timestamp is before the realtime clock, never after `now`, at most
    /// [`MAX_RX_AGE`] before it; `now` without a timestamp.
    pub(crate) fn arrival(&self, rx_time: Option<Duration>) -> Instant {
        let Some(rx) = rx_time else {
            return self.now;
        };
        let age = self.realtime.saturating_sub(rx).min(MAX_RX_AGE);
        self.now.checked_sub(age).unwrap_or(self.now)
    }
}

/// CLOCK_REALTIME, the clock of `SO_TIMESTAMPNS` (a vDSO call, no syscall).
fn realtime() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    timespec_duration(&ts)
}

pub(super) fn timespec_duration(ts: &libc::timespec) -> Duration {
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0).min(999_999_999),
    )
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn enable_rx_timestamps(io: &UdpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let on: libc::c_int = 1;
    // SAFETY: a valid fd and a pointer to an int of the size given.
    let r = unsafe {
        libc::setsockopt(
            io.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Room for the control messages of one received message: the destination (IPV6_PKTINFO, the
/// larger), the GRO segment size, the TOS / traffic class quinn-udp asks for, and the receive
/// timestamp; aligned for `cmsghdr`.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct RecvCmsgs([u8; 160]);

/// `recvmmsg` of up to [`BATCH_SIZE`] messages into `arena`, each with its source, destination
/// IP, GRO stride and kernel receive time.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn recvmmsg(
    io: &UdpSocket,
    _state: &UdpSocketState,
    arena: &mut RecvArena,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    let RecvArena { buf, meta } = arena;
    let mut names = [const { MaybeUninit::<libc::sockaddr_storage>::uninit() }; BATCH_SIZE];
    let mut ctrls = [const { MaybeUninit::<RecvCmsgs>::uninit() }; BATCH_SIZE];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH_SIZE];
    // SAFETY: all-zero is a valid value for this plain C struct.
    let mut hdrs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
    for (i, chunk) in buf.chunks_exact_mut(RECV_BUF).take(BATCH_SIZE).enumerate() {
        let iov = iovs[i].write(libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: chunk.len(),
        });
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = names[i].as_mut_ptr().cast();
        h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = iov;
        h.msg_iovlen = 1;
        h.msg_control = ctrls[i].as_mut_ptr().cast();
        h.msg_controllen = size_of::<RecvCmsgs>() as _;
    }
    let n = loop {
        // SAFETY: every header points into `names`, `iovs`, `ctrls` and the arena's buffers,
        // all alive and unmoved for the call, with their sizes; the kernel writes at most that.
        let r = unsafe {
            libc::recvmmsg(
                io.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH_SIZE as _,
                0,
                std::ptr::null_mut(),
            )
        };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    for i in 0..n.min(BATCH_SIZE) {
        let h = &hdrs[i].msg_hdr;
        let len = hdrs[i].msg_len as usize;
        let mut m = RecvMeta {
            // SAFETY: the kernel wrote `msg_namelen` bytes of the source address.
            addr: unsafe { sockaddr(names[i].as_ptr(), h.msg_namelen) }
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            len,
            stride: len,
            dst_ip: None,
            rx_time: None,
        };
        // SAFETY: `h` is a header the kernel filled: msg_control/msg_controllen describe the
        // control messages it wrote into `ctrls[i]`; CMSG_FIRSTHDR/NXTHDR stay inside them and
        // each payload is read unaligned with the size the (level, type) pair defines.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                        let p = data.cast::<libc::in_pktinfo>().read_unaligned();
                        m.dst_ip = Some(IpAddr::from(p.ipi_addr.s_addr.to_ne_bytes()));
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        let p = data.cast::<libc::in6_pktinfo>().read_unaligned();
                        m.dst_ip = Some(IpAddr::from(p.ipi6_addr.s6_addr));
                    }
                    (libc::SOL_UDP, libc::UDP_GRO) => {
                        m.stride = data.cast::<libc::c_int>().read_unaligned().max(1) as usize;
                    }
                    (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                        let ts = data.cast::<libc::timespec>().read_unaligned();
                        m.rx_time = Some(timespec_duration(&ts));
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        meta[i] = m;
    }
    Ok(n)
}

/// The source address the kernel wrote (IPv4 or IPv6; `None` for any other family or a
/// length too short for it).
///
/// # Safety
/// `s` points to a `sockaddr_storage` whose first `len` bytes are initialized.
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn sockaddr(s: *const libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

    let len = len as usize;
    if len < size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: the family field is within the `len` initialized bytes (checked above), and each
    // address struct is read only when `len` covers it; sockaddr_storage is large enough and
    // aligned for both.
    unsafe {
        match libc::c_int::from((*s).ss_family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                let a = s.cast::<libc::sockaddr_in>().read();
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                let a = s.cast::<libc::sockaddr_in6>().read();
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Elsewhere quinn-udp receives, without timestamps.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn recvmmsg(
    io: &UdpSocket,
    state: &UdpSocketState,
    arena: &mut RecvArena,
) -> io::Result<usize> {
    use std::io::IoSliceMut;

    let RecvArena { buf, meta } = arena;
    let mut chunks = buf.chunks_exact_mut(RECV_BUF);
    let mut bufs: [IoSliceMut<'_>; BATCH_SIZE] = std::array::from_fn(|_| {
        IoSliceMut::new(
            chunks
                .next()
                .expect("the arena is BATCH_SIZE buffers of RECV_BUF bytes"),
        )
    });
    let mut q = [quinn_udp::RecvMeta::default(); BATCH_SIZE];
    let n = state.recv(io.into(), &mut bufs, &mut q)?;
    for (m, q) in meta.iter_mut().zip(&q).take(n) {
        *m = RecvMeta {
            addr: q.addr,
            len: q.len,
            stride: q.stride,
            dst_ip: q.dst_ip,
            rx_time: None,
        };
    }
    Ok(n)
}
