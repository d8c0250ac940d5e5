//! Binding the media sockets a request asks for ([`sockets_needed`]): explicit ports as asked,
//! port 0 from the worker's `--rtc-ports` range (random start, linear probe), all or nothing.
//!
//! [`sockets_needed`]: ferrosfu_worker_core::sockets_needed

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ferrosfu_fbs::RequestFailure;
use ferrosfu_worker_core::{Protocol, SocketRequest};
use socket2::{Domain, Socket, Type};

/// Kernel buffer sizes asked for UDP sockets (best effort: the kernel caps them at
/// `net.core.rmem_max` / `wmem_max`). TCP keeps the kernel's autotuning, which an explicit size
/// would turn off.
pub(crate) const UDP_BUFFER_BYTES: usize = 4 << 20;

/// Backlog of a passive ICE-TCP listener.
const TCP_BACKLOG: i32 = 1024;

/// A socket bound (and, for TCP, listening), non-blocking, not yet given to the runtime.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) protocol: Protocol,
    pub(crate) socket: Socket,
    /// The address actually bound (the port the range or the OS chose).
    pub(crate) local: SocketAddr,
    pub(crate) announced: Option<String>,
}

/// Binds every requested socket, in order. On any failure the sockets already bound are closed
/// (dropped) and the failure is the reply to send.
pub(crate) fn bind_all(
    requests: &[SocketRequest],
    range: Option<(u16, u16)>,
) -> Result<Vec<Bound>, RequestFailure> {
    requests.iter().map(|r| bind_one(r, range)).collect()
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "UDP",
        Protocol::Tcp => "TCP",
    }
}

/// Binds one socket; port 0 takes a free port from `range` (or the OS's choice without a range).
pub(crate) fn bind_one(
    req: &SocketRequest,
    range: Option<(u16, u16)>,
) -> Result<Bound, RequestFailure> {
    let proto = proto_name(req.protocol);
    let ip: IpAddr = req.ip.trim().parse().map_err(|_| {
        RequestFailure::invalid_argument(format!("listen ip {:?} is not an IP address", req.ip))
    })?;
    let bound = |socket: Socket| -> Result<Bound, RequestFailure> {
        let local = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| {
                RequestFailure::failed(format!("{proto} socket has no local address"))
            })?;
        Ok(Bound {
            protocol: req.protocol,
            socket,
            local,
            announced: req.announced.clone(),
        })
    };
    let fail = |port: u16, e: io::Error| {
        RequestFailure::failed(format!(
            "cannot bind {proto} {}: {e}",
            SocketAddr::new(ip, port)
        ))
    };
    match (req.port, range) {
        (0, Some((min, max))) if min <= max => {
            let span = u32::from(max - min) + 1;
            let start = (random() % u64::from(span)) as u32;
            for i in 0..span {
                let port = min + ((start + i) % span) as u16;
                match try_bind(req.protocol, SocketAddr::new(ip, port)) {
                    Ok(s) => return bound(s),
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                    // Not a busy port (address not local, permission...): no port will do.
                    Err(e) => return Err(fail(port, e)),
                }
            }
            Err(RequestFailure::failed(format!(
                "no free {proto} port in {min}-{max} on {ip}"
            )))
        }
        (port, _) => try_bind(req.protocol, SocketAddr::new(ip, port))
            .map_err(|e| fail(port, e))
            .and_then(bound),
    }
}

/// One bind attempt: a fresh non-blocking socket on `addr`, listening if TCP. IPv6 sockets are
/// v6-only (as mediasoup binds them), so `0.0.0.0:p` and `[::]:p` are distinct sockets.
fn try_bind(protocol: Protocol, addr: SocketAddr) -> io::Result<Socket> {
    let domain = Domain::for_address(addr);
    let socket = match protocol {
        Protocol::Udp => Socket::new(domain, Type::DGRAM.cloexec(), Some(socket2::Protocol::UDP))?,
        Protocol::Tcp => Socket::new(domain, Type::STREAM.cloexec(), Some(socket2::Protocol::TCP))?,
    };
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    match protocol {
        Protocol::Udp => {
            for (what, r) in [
                ("SO_RCVBUF", socket.set_recv_buffer_size(UDP_BUFFER_BYTES)),
                ("SO_SNDBUF", socket.set_send_buffer_size(UDP_BUFFER_BYTES)),
            ] {
                if let Err(e) = r {
                    tracing::debug!(target: "net", "{what} {UDP_BUFFER_BYTES}: {e}");
                }
            }
            socket.bind(&addr.into())?;
        }
        Protocol::Tcp => {
            // Lets a restarted worker take its port back while old connections sit in
            // TIME_WAIT; two listeners still cannot share a port on Linux.
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(TCP_BACKLOG)?;
        }
    }
    Ok(socket)
}

/// Non-cryptographic randomness for the probe start (std's per-process random hash keys).
fn random() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(protocol: Protocol, port: u16) -> SocketRequest {
        SocketRequest {
            protocol,
            ip: "127.0.0.1".into(),
            port,
            announced: None,
        }
    }

    /// Finds `n` consecutive ports free for both UDP and TCP on loopback, and returns the first.
    /// Holding nothing afterwards: the caller binds them (racy only against other processes).
    fn free_run(n: u16) -> u16 {
        for attempt in 0..200u32 {
            let base = 20_000 + ((random() as u32 + attempt * 97) % 30_000) as u16;
            let ok = (0..n).all(|i| {
                let a = SocketAddr::from(([127, 0, 0, 1], base + i));
                std::net::UdpSocket::bind(a).is_ok() && std::net::TcpListener::bind(a).is_ok()
            });
            if ok {
                return base;
            }
        }
        panic!("no run of {n} free loopback ports");
    }

    #[test]
    fn port_zero_binds_inside_the_range_and_probes_past_busy_ports() {
        let base = free_run(4);
        let range = Some((base, base + 3));
        for proto in [Protocol::Udp, Protocol::Tcp] {
            let mut held = Vec::new();
            for _ in 0..4 {
                let b = bind_one(&req(proto, 0), range).expect("a free port in range");
                assert!((base..=base + 3).contains(&b.local.port()), "{:?}", b.local);
                assert_eq!(b.protocol, proto);
                assert!(held.iter().all(|h: &Bound| h.local != b.local));
                held.push(b);
            }
            // Every port taken: a clean failure, nothing bound.
            let e = bind_one(&req(proto, 0), range).unwrap_err();
            assert_eq!(e.kind, ferrosfu_fbs::ErrorKind::Failed);
            assert!(e.reason.contains("no free"), "{}", e.reason);
            // Free one: the probe finds exactly that one.
            let freed = held.remove(2).local;
            drop(held.pop());
            let b = bind_one(&req(proto, 0), Some((freed.port(), freed.port()))).unwrap();
            assert_eq!(b.local, freed);
        }
    }

    #[test]
    fn without_a_range_the_os_picks_and_explicit_ports_are_honoured() {
        let b = bind_one(&req(Protocol::Udp, 0), None).unwrap();
        assert_ne!(b.local.port(), 0);
        let port = free_run(1);
        let b = bind_one(&req(Protocol::Tcp, port), Some((1, 2))).unwrap();
        assert_eq!(b.local.port(), port, "an explicit port ignores the range");
        let e = bind_one(&req(Protocol::Tcp, port), None).unwrap_err();
        assert_eq!(e.kind, ferrosfu_fbs::ErrorKind::Failed);
    }

    #[test]
    fn a_failure_closes_the_sockets_already_bound() {
        let base = free_run(2);
        let busy = std::net::UdpSocket::bind(("127.0.0.1", base + 1)).unwrap();
        let reqs = [req(Protocol::Udp, 0), req(Protocol::Udp, base + 1)];
        let e = bind_all(&reqs, Some((base, base))).unwrap_err();
        assert!(e.reason.contains("cannot bind UDP"), "{}", e.reason);
        // The first socket (the only port of the range) was closed again.
        std::net::UdpSocket::bind(("127.0.0.1", base)).expect("first socket was released");
        drop(busy);
    }

    #[test]
    fn bad_ip_is_an_invalid_argument() {
        let mut r = req(Protocol::Udp, 0);
        r.ip = "not-an-ip".into();
        let e = bind_one(&r, None).unwrap_err();
        assert_eq!(e.kind, ferrosfu_fbs::ErrorKind::InvalidArgument);
    }

    #[test]
    fn ipv4_and_ipv6_wildcards_do_not_collide() {
        let port = free_run(1);
        let v4 = bind_one(
            &SocketRequest {
                ip: "0.0.0.0".into(),
                ..req(Protocol::Udp, port)
            },
            None,
        );
        let v6 = bind_one(
            &SocketRequest {
                ip: "::".into(),
                ..req(Protocol::Udp, port)
            },
            None,
        );
        assert!(v4.is_ok());
        // Hosts without IPv6 cannot bind `::` at all; where they can, the port is free.
        if let Err(e) = v6 {
            assert!(!e.reason.contains("in use"), "{}", e.reason);
        }
    }
}
