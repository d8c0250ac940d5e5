//! The socket layer end to end on loopback: a test host that echoes what arrives, real UDP and
//! TCP sockets, the pumps on a `LocalSet`.

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
    /// (arrival, read) of each datagram.
    arrivals: Vec<(Instant, Instant)>,
    turns: usize,
}

impl Host for Echo {
    fn net(&mut self) -> &mut Net {
        &mut self.net
    }

    fn on_datagram(&mut self, tuple: Tuple, data: &[u8], arrival: Instant, now: Instant) {
        self.got.push((tuple, data.to_vec()));
        self.arrivals.push((arrival, now));
        let text = String::from_utf8_lossy(data);
        if let Some(spec) = text.strip_prefix("\u{1}burst:") {
            let (n, len) = spec.split_once(':').unwrap();
            let (n, len): (usize, usize) = (n.parse().unwrap(), len.parse().unwrap());
            for i in 0..n {
                let mut d = vec![i as u8; len];
                d[0] = 1;
                self.net.transmit_one(tuple, &d);
            }
            return;
        }
        let mut d = b"echo:".to_vec();
        d.extend_from_slice(data);
        self.net.transmit_one(tuple, &d);
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
        arrivals: Vec::new(),
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
fn udp_datagrams_carry_the_kernel_receive_time_not_the_read_time() {
    run(async {
        let h = host(Limits::default());
        let server = open(&h, Protocol::Udp, 0);
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_nonblocking(true).unwrap();
        let client = tokio::net::UdpSocket::from_std(client).unwrap();
        let mut buf = [0u8; 64];
        // The kernel turns receive timestamps on lazily (deferred work, late on a busy
        // machine): until then datagrams are stamped when read. Wait for that first: a datagram
        // that waits 5 ms on the socket arrives 5 ms before it is read.
        for _ in 0..200 {
            client.send_to(b"warm-up", server.local).await.unwrap();
            std::thread::sleep(Duration::from_millis(5));
            timeout(WAIT, client.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            let (arrival, now) = *h.borrow().arrivals.last().unwrap();
            if now - arrival >= Duration::from_millis(4) {
                break;
            }
        }
        h.borrow_mut().arrivals.clear();
        let client = client.into_std().unwrap();
        client.set_nonblocking(false).unwrap();
        // The worker's thread is busy (blocked here) while three datagrams arrive 20 ms apart;
        // it reads them in one batch afterwards.
        let t0 = Instant::now();
        for i in 0..3u8 {
            client.send_to(&[b'a', i], server.local).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        client.set_nonblocking(true).unwrap();
        let client = tokio::net::UdpSocket::from_std(client).unwrap();
        for _ in 0..3 {
            timeout(WAIT, client.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
        }
        let h = h.borrow();
        let a = &h.arrivals;
        assert_eq!(a.len(), 3);
        assert!(
            a.iter()
                .all(|&(arrival, now)| t0 <= arrival && arrival <= now)
        );
        assert_eq!(a[0].1, a[2].1, "read in one turn");
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        assert!(ms(a[0].1 - a[0].0) >= 50.0, "{a:?}");
        for w in a.windows(2) {
            let gap = ms(w[1].0 - w[0].0);
            assert!((15.0..40.0).contains(&gap), "spaced as sent: {gap} ms");
        }
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
        hb.net.transmit_one(
            Tuple {
                local: udp.local,
                remote: udp.local,
                protocol: Protocol::Udp,
            },
            &[1],
        );
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
        net.transmit_one(
            Tuple {
                local: a,
                remote: a,
                protocol,
            },
            &[0; 10],
        );
    }
    net.flush();
    let s = net.stats();
    assert_eq!((s.unknown_socket, s.tcp_unsent), (1, 1));
}

#[test]
fn a_socket_the_worker_is_behind_drops_its_oldest_input_and_counts_it() {
    run(async {
        // Behind as soon as two receives in a row return full batches.
        let h = host(Limits {
            udp_behind: Duration::ZERO,
            ..Limits::default()
        });
        let server = open(&h, Protocol::Udp, 0);
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Queued before the pump runs: the first turn reads a full batch (forwarded, the worker
        // is now "behind"), the second another full batch (dropped with the rest of the queue).
        const QUEUED: u64 = 100;
        for i in 0..QUEUED {
            client.send_to(&i.to_be_bytes(), server.local).unwrap();
        }
        let client = tokio::net::UdpSocket::from_std({
            client.set_nonblocking(true).unwrap();
            client
        })
        .unwrap();
        let mut buf = vec![0u8; 1500];
        let (n, _) = timeout(WAIT, client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            &buf[..n],
            b"echo:\0\0\0\0\0\0\0\0",
            "the oldest batch was forwarded"
        );
        // Caught up: new input is forwarded again.
        client.send_to(b"fresh", server.local).await.unwrap();
        loop {
            let (n, _) = timeout(WAIT, client.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            if &buf[..n] == b"echo:fresh" {
                break;
            }
        }
        let h = h.borrow();
        let s = h.net.stats();
        let forwarded = h.got.len() as u64 - 1;
        assert!(s.udp_behind_dropped > 0, "{s:?}");
        assert_eq!(forwarded + s.udp_behind_dropped, QUEUED, "{s:?}");
        assert_eq!(s.udp_received, forwarded + 1);
    });
}

#[test]
fn a_full_send_queue_drops_its_oldest_datagram() {
    run(async {
        let h = host(Limits {
            udp_queue: 3,
            ..Limits::default()
        });
        let server = open(&h, Protocol::Udp, 0);
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tuple = Tuple {
            local: server.local,
            remote: client.local_addr().unwrap(),
            protocol: Protocol::Udp,
        };
        {
            // Five datagrams queued in one turn (as while the socket is blocked), then sent.
            let mut hb = h.borrow_mut();
            for i in 0..5u8 {
                hb.net.transmit_one(tuple, &[i]);
            }
            assert_eq!(hb.net.stats().udp_queue_full, 2);
            // Sent now, or by the socket's pump once the runtime has seen it writable.
            hb.net.flush();
        }
        let mut buf = [0u8; 16];
        for want in 2..5u8 {
            let (n, _) = timeout(WAIT, client.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&buf[..n], &[want], "the newest three are sent");
        }
        assert_eq!(h.borrow().net.stats().udp_sent, 3);
    });
}
