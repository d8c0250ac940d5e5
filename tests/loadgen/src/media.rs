//! The media engine: ONE thread, ONE UDP socket for every client transport of the generator.
//!
//! Each turn of the loop: apply commands from signaling, send what the publishers' pacers have
//! due (flushed at once so the send timestamp is close to the wire), receive batches with
//! `recvmmsg` (kernel receive timestamps, `SO_TIMESTAMPNS`), demux by the server's address,
//! drive the peers' timers, flush the send queue with `sendmmsg`, then sleep in `ppoll` until the
//! socket is readable, a command arrives (eventfd) or the next pacer/timer is due.
//!
//! Subscribers count every packet from its plaintext RTP header (per-SSRC extended sequence)
//! and decrypt every packet while the engine thread's CPU stays under 75 %; above that they
//! decrypt every k-th packet per stream (k doubles, and halves again under 40 %), which the
//! window reports as `decrypt_every_max`. Latency = kernel receive time − the send time the
//! publisher wrote in the payload (both `CLOCK_REALTIME`, same host).
//!
//! A measurement window counts what the publishers send between its open and close, and what
//! the subscribers receive of exactly those packets (by send stamp), so bursts in flight at
//! the edges do not count as loss or gain.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::BytesMut;
use tokio::sync::oneshot;

use crate::peer::{Event, Peer};
use crate::stats::{Histogram, thread_cpu, thread_run_delay, wall_ns};
use crate::types::Latency;

/// Magic that starts the generator's part of every payload.
pub(crate) const MAGIC: &[u8; 4] = b"LGEN";
/// Datagrams per `recvmmsg` / `sendmmsg`.
const BATCH: usize = 64;
/// `recvmmsg` calls per loop turn before pacers and timers get their turn.
const RX_BATCHES_PER_TURN: usize = 16;
const RX_BUF: usize = 2048;
const CMSG_BUF: usize = 128;
/// Socket buffers asked with SO_RCVBUFFORCE / SO_SNDBUFFORCE (the kernel doubles them): the
/// receive side absorbs ~0.4 s of 300k pkt/s when the engine is preempted (latency is stamped
/// by the kernel on arrival, so waiting there does not inflate it).
const SOCKET_BUFFER: usize = 128 << 20;
const VIDEO_FPS: u32 = 30;
const KEYFRAME_INTERVAL: Duration = Duration::from_secs(1);
/// Video packets of a frame leave at this multiple of the bitrate (libwebrtc's pacing factor).
const PACING_FACTOR: f64 = 2.5;
const AUDIO_PTIME: Duration = Duration::from_millis(20);
/// RTP packet size of audio (Opus-sized: 12 B header + 88 B payload).
const AUDIO_PACKET: usize = 100;
/// Engine CPU (share of one core) above which decryption is sampled, and under which sampling
/// is relaxed again.
const DECRYPT_CPU_HIGH: f64 = 0.75;
const DECRYPT_CPU_LOW: f64 = 0.40;
const DECRYPT_EVERY_MAX: u32 = 256;
const CPU_CONTROL_PERIOD: Duration = Duration::from_millis(500);
/// After a window closes, packets sent inside it are still counted for this long; later ones
/// count as lost (useless for real-time media anyway).
const WINDOW_GRACE: Duration = Duration::from_millis(500);

pub(crate) type PeerId = u32;
pub(crate) type StreamId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// One outgoing RTP stream of a publisher transport.
#[derive(Clone, Debug)]
pub(crate) struct SendSpec {
    pub(crate) kind: MediaKind,
    pub(crate) ssrc: u32,
    pub(crate) pt: u8,
    /// Video: RTP bits/s (header + payload, before SRTP). Audio: ignored (50 × 100 B/s).
    pub(crate) bitrate: u64,
    /// Video: RTP packet size (header + payload, before SRTP).
    pub(crate) packet_size: usize,
}

impl SendSpec {
    /// Packets per second this stream sends.
    #[cfg(test)]
    pub(crate) fn pps(&self) -> f64 {
        match self.kind {
            MediaKind::Audio => 1.0 / AUDIO_PTIME.as_secs_f64(),
            MediaKind::Video => {
                let per_frame = self.bitrate as f64 / 8.0 / f64::from(VIDEO_FPS);
                (per_frame / self.packet_size as f64).max(1.0) * f64::from(VIDEO_FPS)
            }
        }
    }
}

/// Where the engine stands (to wait until every subscriber gets media).
#[derive(Clone, Debug, Default)]
pub(crate) struct Status {
    pub(crate) peers: u32,
    pub(crate) connected: u32,
    /// (peer name, reason)
    pub(crate) failed: Vec<(String, String)>,
    pub(crate) consumers: u32,
    /// Consumers that received at least one packet.
    pub(crate) flowing: u32,
    /// Peers with a consumer that got nothing yet (names, at most 20).
    pub(crate) waiting: Vec<String>,
    /// Datagrams the peers dropped (bad STUN, DTLS errors, media before keys).
    pub(crate) dropped: u64,
}

/// What one measurement window saw.
#[derive(Clone, Debug, Default)]
pub(crate) struct Window {
    pub(crate) wall: Duration,
    /// Packets the publishers sent.
    pub(crate) sent: u64,
    /// Σ over consumers of what their producer's stream sent in the window.
    pub(crate) expected: u64,
    /// Packets sent inside the window that the subscribers received: by send stamp (counted
    /// until `WINDOW_GRACE` after the close) when every packet was decrypted, else by arrival
    /// time while the window was open.
    pub(crate) received: u64,
    /// Per-SSRC sequence gaps (cross-check of `expected − received`).
    pub(crate) seq_gap_lost: u64,
    pub(crate) latency: Latency,
    pub(crate) latency_samples: u64,
    pub(crate) latency_max_us: u64,
    /// CPU of the engine thread.
    pub(crate) engine_cpu: Duration,
    /// Time the engine thread was runnable but waited for the CPU (other processes on its
    /// core): large values make the point suspect.
    pub(crate) engine_run_delay: Duration,
    /// Datagrams the kernel dropped at our socket (SO_RXQ_OVFL): the generator fell behind.
    pub(crate) rx_drops: u64,
    /// Largest decryption sampling interval in the window (1 = every packet).
    pub(crate) decrypt_every_max: u32,
    pub(crate) srtp_failures: u64,
    pub(crate) unknown_ssrc: u64,
    pub(crate) send_errors: u64,
    /// Consumers whose producer the engine does not know (not counted in `expected`).
    pub(crate) unmapped_consumers: u32,
}

enum Cmd {
    AddPeer {
        name: String,
        peer: Box<Peer>,
        reply: oneshot::Sender<PeerId>,
    },
    AddSendStream {
        peer: PeerId,
        spec: SendSpec,
        reply: oneshot::Sender<Result<StreamId>>,
    },
    BindProducer {
        stream: StreamId,
        producer_id: String,
    },
    AddConsumer {
        peer: PeerId,
        ssrc: u32,
        producer_id: String,
    },
    Status(oneshot::Sender<Status>),
    StartWindow(oneshot::Sender<()>),
    EndWindow(oneshot::Sender<Window>),
    Stop,
}

/// A cloneable handle to the engine thread.
#[derive(Clone, Debug)]
pub(crate) struct EngineHandle {
    tx: mpsc::Sender<Cmd>,
    wake: Arc<OwnedFd>,
    local: SocketAddr,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::AddPeer { .. } => "AddPeer",
            Cmd::AddSendStream { .. } => "AddSendStream",
            Cmd::BindProducer { .. } => "BindProducer",
            Cmd::AddConsumer { .. } => "AddConsumer",
            Cmd::Status(_) => "Status",
            Cmd::StartWindow(_) => "StartWindow",
            Cmd::EndWindow(_) => "EndWindow",
            Cmd::Stop => "Stop",
        })
    }
}

impl EngineHandle {
    /// The shared socket's address (every local candidate).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn send(&self, cmd: Cmd) -> Result<()> {
        self.tx
            .send(cmd)
            .map_err(|_| anyhow!("the media engine stopped"))?;
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
        unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                (&raw const one).cast::<libc::c_void>(),
                8,
            )
        };
        Ok(())
    }

    pub(crate) async fn add_peer(&self, name: String, peer: Peer) -> Result<PeerId> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::AddPeer {
            name,
            peer: Box::new(peer),
            reply,
        })?;
        rx.await.context("the media engine stopped")
    }

    /// Starts an outgoing stream on `peer` (it sends once the peer's SRTP is keyed).
    pub(crate) async fn add_send_stream(&self, peer: PeerId, spec: SendSpec) -> Result<StreamId> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::AddSendStream { peer, spec, reply })?;
        rx.await.context("the media engine stopped")?
    }

    /// Names the producer a stream feeds (consumers refer to it).
    pub(crate) fn bind_producer(&self, stream: StreamId, producer_id: String) -> Result<()> {
        self.send(Cmd::BindProducer {
            stream,
            producer_id,
        })
    }

    /// `peer` receives `ssrc`, a consumer of `producer_id`.
    pub(crate) fn add_consumer(&self, peer: PeerId, ssrc: u32, producer_id: String) -> Result<()> {
        self.send(Cmd::AddConsumer {
            peer,
            ssrc,
            producer_id,
        })
    }

    pub(crate) async fn status(&self) -> Result<Status> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Status(reply))?;
        rx.await.context("the media engine stopped")
    }

    pub(crate) async fn start_window(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::StartWindow(reply))?;
        rx.await.context("the media engine stopped")
    }

    pub(crate) async fn end_window(&self) -> Result<Window> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::EndWindow(reply))?;
        rx.await.context("the media engine stopped")
    }
}

/// The engine thread; stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct Engine {
    handle: EngineHandle,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Binds the socket on `bind`:0 and starts the thread (it inherits the caller's CPU
    /// affinity). Subscribers decrypt at least every `decrypt_every_min`-th packet per stream.
    pub(crate) fn start(
        bind: IpAddr,
        decrypt_every_min: u32,
        rtcp_interval: Option<Duration>,
    ) -> Result<Engine> {
        let decrypt_every_min = decrypt_every_min.clamp(1, DECRYPT_EVERY_MAX);
        let socket = open_socket(SocketAddr::new(bind, 0))?;
        let local = socket
            .local_addr()?
            .as_socket()
            .context("bound address is not IP")?;
        // SAFETY: plain syscall; the fd is checked below.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error()).context("eventfd");
        }
        // SAFETY: `efd` is a fresh fd that nothing else owns.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(efd) });
        let (tx, rx) = mpsc::channel();
        let thread_wake = wake.clone();
        let thread = std::thread::Builder::new()
            .name("media".into())
            .spawn(move || {
                let mut core = Core::new(socket, local, thread_wake, rx, decrypt_every_min);
                core.rtcp_interval = rtcp_interval;
                core.run();
            })
            .context("spawn the media thread")?;
        Ok(Engine {
            handle: EngineHandle { tx, wake, local },
            thread: Some(thread),
        })
    }

    pub(crate) fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.handle.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open_socket(addr: SocketAddr) -> Result<socket2::Socket> {
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

/// A received RTP stream (one consumer).
struct RecvStream {
    ssrc: u32,
    producer_id: String,
    /// Highest extended sequence number, once a packet arrived.
    highest: Option<u64>,
    received: u64,
    /// Packets that arrived while the window was open.
    window_arrived: u64,
    /// Decrypted packets whose send stamp falls in the window (counted through the grace).
    window_stamped: u64,
    /// `highest` when the window opened, and when it closed.
    window_base: Option<u64>,
    window_end: Option<u64>,
}

impl RecvStream {
    fn on_seq(&mut self, seq: u16) {
        match self.highest {
            None => self.highest = Some(u64::from(seq)),
            Some(h) => {
                let diff = seq.wrapping_sub(h as u16) as i16;
                if diff > 0 {
                    self.highest = Some(h + diff as u64);
                }
            }
        }
        self.received += 1;
    }
}

/// A publisher's outgoing stream and its pacer.
struct OutStream {
    peer: PeerId,
    spec: SendSpec,
    seq: u16,
    rtp_ts: u32,
    /// The generator's own per-stream counter, written in the payload.
    counter: u32,
    /// Next packet due (None until the peer is connected).
    next_due: Option<Instant>,
    /// Video: start of the current frame, packets left in it, gap between them.
    frame_start: Instant,
    frame_left: u32,
    frame_packets: u32,
    pace_gap: Duration,
    budget: f64,
    keyframe_due: bool,
    last_keyframe: Option<Instant>,
    frame_is_key: bool,
    sent: u64,
    window_sent: u64,
}

impl OutStream {
    fn new(peer: PeerId, spec: SendSpec, now: Instant) -> OutStream {
        let seed = crate::peer::random_bytes(6);
        let packet_bits = (spec.packet_size.max(64) * 8) as f64;
        let pace_gap =
            Duration::from_secs_f64(packet_bits / (PACING_FACTOR * spec.bitrate.max(1) as f64));
        OutStream {
            peer,
            seq: u16::from_be_bytes([seed[0], seed[1]]),
            rtp_ts: u32::from_be_bytes([seed[2], seed[3], seed[4], seed[5]]),
            counter: 0,
            next_due: None,
            frame_start: now,
            frame_left: 0,
            frame_packets: 0,
            pace_gap,
            budget: 0.0,
            keyframe_due: true,
            last_keyframe: None,
            frame_is_key: false,
            sent: 0,
            window_sent: 0,
            spec,
        }
    }

    /// Builds the next packet (plaintext RTP) into `buf` and advances the pacer.
    fn next_packet(&mut self, now: Instant, buf: &mut Vec<u8>) {
        buf.clear();
        self.counter = self.counter.wrapping_add(1);
        self.seq = self.seq.wrapping_add(1);
        let due = self.next_due.unwrap_or(now);
        match self.spec.kind {
            MediaKind::Audio => {
                self.rtp_ts = self.rtp_ts.wrapping_add(960);
                rtp_header(
                    buf,
                    false,
                    self.spec.pt,
                    self.seq,
                    self.rtp_ts,
                    self.spec.ssrc,
                );
                // Opus TOC: config 31 (CELT FB 20 ms), mono, one frame.
                buf.push(0xf8);
                stamp(buf, self.counter);
                buf.resize(AUDIO_PACKET.max(buf.len()), 0x5a);
                self.next_due = Some(next_slot(due, AUDIO_PTIME, now));
            }
            MediaKind::Video => {
                let first = self.frame_left == 0;
                if first {
                    self.start_frame(due, now);
                }
                self.frame_left -= 1;
                let last = self.frame_left == 0;
                rtp_header(
                    buf,
                    last,
                    self.spec.pt,
                    self.seq,
                    self.rtp_ts,
                    self.spec.ssrc,
                );
                if first {
                    // VP8 payload descriptor: S=1, PID=0, then the 3-byte frame tag (RFC 6386
                    // §9.1): P (bit 0) = 0 for a keyframe, show_frame (bit 4), first partition
                    // size (bits 5..24).
                    buf.push(0x10);
                    let part = (self.spec.packet_size.saturating_sub(40) as u32) & 0x7_ffff;
                    let tag = u32::from(!self.frame_is_key) | (1 << 4) | (part << 5);
                    buf.extend_from_slice(&tag.to_le_bytes()[..3]);
                    if self.frame_is_key {
                        // Start code + 640x480.
                        buf.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
                    }
                } else {
                    buf.push(0x00);
                }
                stamp(buf, self.counter);
                buf.resize(self.spec.packet_size.max(buf.len()), 0x5a);
                self.next_due = Some(if last {
                    self.frame_start + frame_interval()
                } else {
                    due + self.pace_gap
                });
            }
        }
        self.sent += 1;
    }

    fn start_frame(&mut self, due: Instant, now: Instant) {
        // A pacer far behind (the thread was starved) restarts from now rather than bursting.
        self.frame_start = if now.saturating_duration_since(due) > frame_interval() {
            now
        } else {
            due
        };
        self.budget += self.spec.bitrate as f64 / 8.0 / f64::from(VIDEO_FPS);
        let n = (self.budget / self.spec.packet_size.max(1) as f64)
            .floor()
            .max(1.0);
        self.budget -= n * self.spec.packet_size as f64;
        self.frame_packets = n as u32;
        self.frame_left = self.frame_packets;
        let fit = frame_interval() / self.frame_packets.max(1);
        self.pace_gap = self.pace_gap.min(fit);
        self.rtp_ts = self.rtp_ts.wrapping_add(90_000 / VIDEO_FPS);
        self.frame_is_key = self.keyframe_due
            || self
                .last_keyframe
                .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_INTERVAL);
        if self.frame_is_key {
            self.keyframe_due = false;
            self.last_keyframe = Some(now);
        }
    }
}

fn frame_interval() -> Duration {
    Duration::from_secs(1) / VIDEO_FPS
}

/// The next slot of a periodic stream; one far behind restarts from now.
fn next_slot(due: Instant, period: Duration, now: Instant) -> Instant {
    let next = due + period;
    if next + period < now {
        now + period
    } else {
        next
    }
}

fn rtp_header(buf: &mut Vec<u8>, marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    buf.push(0x80);
    buf.push((u8::from(marker) << 7) | (pt & 0x7f));
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&ts.to_be_bytes());
    buf.extend_from_slice(&ssrc.to_be_bytes());
}

/// `MAGIC`, the stream's counter, the send time (CLOCK_REALTIME ns).
fn stamp(buf: &mut Vec<u8>, counter: u32) {
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&counter.to_be_bytes());
    buf.extend_from_slice(&wall_ns().to_be_bytes());
}

/// The send time in a decrypted packet (plaintext RTP), if it carries our stamp.
pub(crate) fn sent_at_ns(plain: &[u8]) -> Option<u64> {
    let payload = &plain[rtp_header_len(plain)?..];
    // The stamp follows the VP8 descriptor (+ frame tag) or the Opus TOC: within 20 bytes.
    let window = &payload[..payload.len().min(32)];
    let at = window.windows(4).position(|w| w == MAGIC)?;
    let ts = payload.get(at + 8..at + 16)?;
    Some(u64::from_be_bytes(ts.try_into().ok()?))
}

/// Length of an RTP header (CSRCs and extension included).
pub(crate) fn rtp_header_len(p: &[u8]) -> Option<usize> {
    let b0 = *p.first()?;
    let mut len = 12 + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        let ext = p.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= p.len()).then_some(len)
}

/// Media SSRCs asked for a keyframe (PLI, FIR) in a plaintext RTCP compound packet.
pub(crate) fn keyframe_requests(rtcp: &[u8], out: &mut Vec<u32>) {
    let mut off = 0;
    while off + 4 <= rtcp.len() {
        let b0 = rtcp[off];
        if b0 >> 6 != 2 {
            return;
        }
        let fmt = b0 & 0x1f;
        let pt = rtcp[off + 1];
        let len = (usize::from(u16::from_be_bytes([rtcp[off + 2], rtcp[off + 3]])) + 1) * 4;
        let Some(pkt) = rtcp.get(off..off + len) else {
            return;
        };
        if pt == 206 && fmt == 1 && pkt.len() >= 12 {
            out.push(u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]));
        } else if pt == 206 && fmt == 4 {
            for fci in pkt.get(12..).unwrap_or_default().chunks_exact(8) {
                out.push(u32::from_be_bytes([fci[0], fci[1], fci[2], fci[3]]));
            }
        }
        off += len;
    }
}

struct Slot {
    name: String,
    peer: Peer,
    /// The deadline this slot has in the timer heap.
    timer: Option<Instant>,
    failed: Option<String>,
    out: Vec<StreamId>,
    recv: Vec<RecvStream>,
}

struct RxArena {
    bufs: Vec<[u8; RX_BUF]>,
    names: Vec<libc::sockaddr_storage>,
    ctrl: Vec<[u8; CMSG_BUF]>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl RxArena {
    fn new() -> Box<RxArena> {
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
    fn recv(&mut self, fd: i32) -> io::Result<usize> {
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
    fn message(&self, i: usize) -> (Option<SocketAddr>, &[u8], Option<u64>, Option<u32>) {
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
fn socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
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
fn send_queue(fd: i32, q: &mut Vec<(SocketAddr, BytesMut)>, errors: &mut u64) {
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

struct WindowState {
    started: Instant,
    /// Send stamps in [t0, t1) belong to the window.
    t0_ns: u64,
    t1_ns: Option<u64>,
    /// Wall time of the window (set at close).
    wall: Duration,
    /// Close requested: the reply goes out at `grace_until`.
    reply: Option<oneshot::Sender<Window>>,
    grace_until: Option<Instant>,
    /// Counters frozen at close.
    closed: Option<Window>,
    cpu: Duration,
    run_delay: Duration,
    drops: u64,
    srtp_failures: u64,
    unknown_ssrc: u64,
    send_errors: u64,
    decrypt_every_max: u32,
}

struct Core {
    socket: socket2::Socket,
    local: SocketAddr,
    wake: Arc<OwnedFd>,
    rx: mpsc::Receiver<Cmd>,
    slots: Vec<Slot>,
    demux: AddrMap<PeerId>,
    streams: Vec<OutStream>,
    producers: HashMap<String, StreamId>,
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    queue: Vec<(SocketAddr, BytesMut)>,
    hist: Histogram,
    window: Option<WindowState>,
    decrypt_every: u32,
    /// `--decrypt-every`: the sampling interval never goes below this.
    decrypt_every_min: u32,
    cpu_mark: (Instant, Duration),
    /// Cumulative SO_RXQ_OVFL counter, and its value at the last CPU control.
    drops: u64,
    drops_mark: u64,
    srtp_failures: u64,
    unknown_ssrc: u64,
    unknown_source: u64,
    send_errors: u64,
    scratch: Vec<u8>,
    keyframe_ssrcs: Vec<u32>,
    /// `--rtcp-interval`: every subscriber sends a receiver report this often.
    rtcp_interval: Option<Duration>,
    rtcp_due: BinaryHeap<Reverse<(Instant, PeerId)>>,
    rtcp_sent: u64,
}

impl Core {
    fn new(
        socket: socket2::Socket,
        local: SocketAddr,
        wake: Arc<OwnedFd>,
        rx: mpsc::Receiver<Cmd>,
        decrypt_every_min: u32,
    ) -> Core {
        Core {
            socket,
            local,
            wake,
            rx,
            slots: Vec::new(),
            demux: AddrMap::default(),
            streams: Vec::new(),
            producers: HashMap::new(),
            timers: BinaryHeap::new(),
            queue: Vec::with_capacity(4 * BATCH),
            hist: Histogram::new(),
            window: None,
            decrypt_every: decrypt_every_min,
            decrypt_every_min,
            cpu_mark: (Instant::now(), thread_cpu()),
            drops: 0,
            drops_mark: 0,
            srtp_failures: 0,
            unknown_ssrc: 0,
            unknown_source: 0,
            send_errors: 0,
            scratch: Vec::with_capacity(RX_BUF),
            keyframe_ssrcs: Vec::new(),
            rtcp_interval: None,
            rtcp_due: BinaryHeap::new(),
            rtcp_sent: 0,
        }
    }

    fn run(&mut self) {
        let mut arena = RxArena::new();
        let fd = self.socket.as_raw_fd();
        loop {
            if !self.commands() {
                tracing::debug!(target: "media", local = %self.local, "media engine stopped");
                return;
            }
            let now = Instant::now();
            self.pace(now);
            self.flush();
            for _ in 0..RX_BATCHES_PER_TURN {
                match arena.recv(fd) {
                    Ok(0) => break,
                    Ok(n) => {
                        let now = Instant::now();
                        for i in 0..n {
                            let (from, data, ts, drops) = arena.message(i);
                            if let Some(d) = drops {
                                self.drops = u64::from(d);
                            }
                            if let Some(from) = from {
                                self.on_datagram(now, from, data, ts);
                            }
                        }
                        if n < BATCH {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // ICMP errors (a server port closed) surface here: keep going.
                        tracing::debug!(target: "media", "recvmmsg: {e}");
                        break;
                    }
                }
            }
            let now = Instant::now();
            self.timers(now);
            self.reports(now);
            self.flush();
            self.cpu_control(now);
            self.finish_window(now);
            self.sleep(fd, now);
        }
    }

    /// Applies pending commands; false on Stop.
    fn commands(&mut self) -> bool {
        let mut buf = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd.
        unsafe {
            libc::read(
                self.wake.as_raw_fd(),
                (&raw mut buf).cast::<libc::c_void>(),
                8,
            )
        };
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            };
            match cmd {
                Cmd::Stop => return false,
                Cmd::AddPeer { name, peer, reply } => {
                    let id = self.slots.len() as PeerId;
                    self.demux.insert(peer.remote_addr(), id);
                    self.slots.push(Slot {
                        name,
                        peer: *peer,
                        timer: None,
                        failed: None,
                        out: Vec::new(),
                        recv: Vec::new(),
                    });
                    self.after_io(id, Instant::now());
                    let _ = reply.send(id);
                }
                Cmd::AddSendStream { peer, spec, reply } => {
                    let r = match self.slots.get_mut(peer as usize) {
                        Some(slot) => {
                            let id = self.streams.len() as StreamId;
                            let mut s = OutStream::new(peer, spec, Instant::now());
                            if slot.peer.is_connected() {
                                s.next_due = Some(Instant::now());
                            }
                            self.streams.push(s);
                            slot.out.push(id);
                            Ok(id)
                        }
                        None => Err(anyhow!("no peer {peer}")),
                    };
                    let _ = reply.send(r);
                }
                Cmd::BindProducer {
                    stream,
                    producer_id,
                } => {
                    self.producers.insert(producer_id, stream);
                }
                Cmd::AddConsumer {
                    peer,
                    ssrc,
                    producer_id,
                } => {
                    if let Some(slot) = self.slots.get_mut(peer as usize)
                        && !slot.recv.iter().any(|r| r.ssrc == ssrc)
                    {
                        if slot.recv.is_empty()
                            && let Some(every) = self.rtcp_interval
                        {
                            // Spread the subscribers' reports over the interval.
                            let offset = every.mul_f64(f64::from(peer % 997) / 997.0);
                            self.rtcp_due.push(Reverse((Instant::now() + offset, peer)));
                        }
                        slot.recv.push(RecvStream {
                            ssrc,
                            producer_id,
                            highest: None,
                            received: 0,
                            window_arrived: 0,
                            window_stamped: 0,
                            window_base: None,
                            window_end: None,
                        });
                    }
                }
                Cmd::Status(reply) => {
                    let _ = reply.send(self.status());
                }
                Cmd::StartWindow(reply) => {
                    self.start_window();
                    let _ = reply.send(());
                }
                Cmd::EndWindow(reply) => self.close_window(reply),
            }
        }
    }

    fn status(&self) -> Status {
        let mut s = Status {
            peers: self.slots.len() as u32,
            ..Status::default()
        };
        for slot in &self.slots {
            if slot.peer.is_connected() {
                s.connected += 1;
            }
            let st = slot.peer.stats();
            s.dropped += st.stun_dropped + st.dtls_errors + st.other_dropped;
            if let Some(why) = &slot.failed {
                s.failed.push((slot.name.clone(), why.clone()));
            }
            s.consumers += slot.recv.len() as u32;
            let flowing = slot.recv.iter().filter(|r| r.received > 0).count() as u32;
            s.flowing += flowing;
            if (flowing as usize) < slot.recv.len() && s.waiting.len() < 20 {
                s.waiting.push(slot.name.clone());
            }
        }
        s
    }

    fn start_window(&mut self) {
        for slot in &mut self.slots {
            for r in &mut slot.recv {
                r.window_arrived = 0;
                r.window_stamped = 0;
                r.window_base = r.highest;
                r.window_end = None;
            }
        }
        for s in &mut self.streams {
            s.window_sent = 0;
        }
        self.hist.clear();
        self.window = Some(WindowState {
            started: Instant::now(),
            t0_ns: wall_ns(),
            t1_ns: None,
            wall: Duration::ZERO,
            reply: None,
            grace_until: None,
            closed: None,
            cpu: thread_cpu(),
            run_delay: thread_run_delay(),
            drops: self.drops,
            srtp_failures: self.srtp_failures,
            unknown_ssrc: self.unknown_ssrc,
            send_errors: self.send_errors,
            decrypt_every_max: self.decrypt_every,
        });
    }

    /// Closes the window: publishers stop counting, CPU and drop counters are read now; the
    /// reply waits `WINDOW_GRACE` for packets sent inside the window still in flight.
    fn close_window(&mut self, reply: oneshot::Sender<Window>) {
        let Some(w) = self.window.as_mut() else {
            let _ = reply.send(Window::default());
            return;
        };
        w.t1_ns = Some(wall_ns());
        w.wall = w.started.elapsed();
        w.grace_until = Some(Instant::now() + WINDOW_GRACE);
        w.reply = Some(reply);
        w.closed = Some(Window {
            wall: w.wall,
            engine_cpu: thread_cpu().saturating_sub(w.cpu),
            engine_run_delay: thread_run_delay().saturating_sub(w.run_delay),
            rx_drops: self.drops.saturating_sub(w.drops),
            srtp_failures: self.srtp_failures - w.srtp_failures,
            unknown_ssrc: self.unknown_ssrc - w.unknown_ssrc,
            send_errors: self.send_errors - w.send_errors,
            decrypt_every_max: w.decrypt_every_max,
            ..Window::default()
        });
        for slot in &mut self.slots {
            for r in &mut slot.recv {
                r.window_end = r.highest;
            }
        }
    }

    /// After the grace: counts and replies.
    fn finish_window(&mut self, now: Instant) {
        let due = self.window.as_ref().and_then(|w| w.grace_until);
        if due.is_none_or(|t| now < t) {
            return;
        }
        let Some(mut w) = self.window.take() else {
            return;
        };
        let mut out = w.closed.take().unwrap_or_default();
        out.sent = self.streams.iter().map(|s| s.window_sent).sum();
        let (mut arrived, mut stamped) = (0, 0);
        for slot in &self.slots {
            for r in &slot.recv {
                arrived += r.window_arrived;
                stamped += r.window_stamped;
                match self.producers.get(&r.producer_id) {
                    Some(&s) => out.expected += self.streams[s as usize].window_sent,
                    None => out.unmapped_consumers += 1,
                }
                if let (Some(b), Some(e)) = (r.window_base, r.window_end) {
                    out.seq_gap_lost += (e - b).saturating_sub(r.window_arrived);
                }
            }
        }
        // Every packet decrypted: membership by send stamp, exact at the window's edges.
        // Sampled: by arrival time (edges cost up to one fan-out burst).
        out.received = if out.decrypt_every_max == 1 {
            stamped
        } else {
            arrived
        };
        out.latency = Latency {
            p50_us: self.hist.percentile(0.50),
            p99_us: self.hist.percentile(0.99),
            p999_us: self.hist.percentile(0.999),
        };
        out.latency_samples = self.hist.count();
        out.latency_max_us = self.hist.max();
        if let Some(reply) = w.reply.take() {
            let _ = reply.send(out);
        }
    }

    /// Re-arms a slot's timer and queues what it wants to send.
    fn after_io(&mut self, id: PeerId, now: Instant) {
        let slot = &mut self.slots[id as usize];
        while let Some(d) = slot.peer.poll_transmit() {
            self.queue
                .push((slot.peer.remote_addr(), BytesMut::from(&d[..])));
        }
        let t = slot.peer.poll_timeout();
        if t != slot.timer {
            slot.timer = t;
            if let Some(t) = t {
                self.timers.push(Reverse((t.max(now), id)));
            }
        }
    }

    fn on_event(&mut self, id: PeerId, ev: Event, now: Instant) {
        let slot = &mut self.slots[id as usize];
        match ev {
            Event::Connected => {
                tracing::debug!(target: "media", peer = %slot.name, "connected");
                for &s in &slot.out {
                    let st = &mut self.streams[s as usize];
                    if st.next_due.is_none() {
                        st.next_due = Some(now);
                    }
                }
            }
            Event::Failed(why) => {
                tracing::warn!(target: "media", peer = %slot.name, "transport failed: {why}");
                slot.failed = Some(why);
            }
            Event::IceConnected | Event::Rtp | Event::Rtcp => {}
        }
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8], rx_ns: Option<u64>) {
        let Some(&id) = self.demux.get(&from) else {
            self.unknown_source += 1;
            return;
        };
        let ev = self.slots[id as usize].peer.handle_datagram(now, data);
        match ev {
            Some(Event::Rtp) => self.on_rtp(id, data, rx_ns),
            Some(Event::Rtcp) => self.on_rtcp(id, data),
            Some(ev) => {
                self.on_event(id, ev, now);
                self.after_io(id, now);
            }
            None => self.after_io(id, now),
        }
    }

    fn on_rtp(&mut self, id: PeerId, data: &[u8], rx_ns: Option<u64>) {
        if data.len() < 12 {
            return;
        }
        let seq = u16::from_be_bytes([data[2], data[3]]);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let slot = &mut self.slots[id as usize];
        let Some(r) = slot.recv.iter_mut().find(|r| r.ssrc == ssrc) else {
            self.unknown_ssrc += 1;
            return;
        };
        r.on_seq(seq);
        let Some(w) = self.window.as_ref() else {
            if r.received % u64::from(self.decrypt_every) == 0
                && slot.peer.unprotect_rtp(data).is_none()
            {
                self.srtp_failures += 1;
            }
            return;
        };
        if w.t1_ns.is_none() {
            r.window_arrived += 1;
        }
        if r.received % u64::from(self.decrypt_every) != 0 {
            return;
        }
        let Some(plain) = slot.peer.unprotect_rtp(data) else {
            self.srtp_failures += 1;
            return;
        };
        if let Some(tx) = sent_at_ns(&plain)
            && tx >= w.t0_ns
            && w.t1_ns.is_none_or(|t1| tx < t1)
        {
            r.window_stamped += 1;
            if let Some(rx) = rx_ns {
                self.hist.record(rx.saturating_sub(tx) / 1000);
            }
        }
    }

    fn on_rtcp(&mut self, id: PeerId, data: &[u8]) {
        let slot = &mut self.slots[id as usize];
        let Some(plain) = slot.peer.unprotect_rtcp(data) else {
            self.srtp_failures += 1;
            return;
        };
        self.keyframe_ssrcs.clear();
        keyframe_requests(&plain, &mut self.keyframe_ssrcs);
        for &s in &slot.out {
            let st = &mut self.streams[s as usize];
            if self.keyframe_ssrcs.contains(&st.spec.ssrc) {
                st.keyframe_due = true;
            }
        }
    }

    fn pace(&mut self, now: Instant) {
        let counting = self.window.as_ref().is_some_and(|w| w.t1_ns.is_none());
        let mut buf = std::mem::take(&mut self.scratch);
        for s in &mut self.streams {
            while s.next_due.is_some_and(|t| t <= now) {
                s.next_packet(now, &mut buf);
                if counting {
                    s.window_sent += 1;
                }
                let slot = &mut self.slots[s.peer as usize];
                match slot.peer.protect_rtp(&buf) {
                    Ok(p) => self.queue.push((slot.peer.remote_addr(), p)),
                    Err(_) => self.send_errors += 1,
                }
            }
        }
        self.scratch = buf;
    }

    fn timers(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let slot = &mut self.slots[id as usize];
            if slot.timer.is_none_or(|want| want > now) {
                // Stale entry (re-armed later, or already served).
                continue;
            }
            slot.timer = None;
            if let Some(ev) = slot.peer.handle_timeout(now) {
                self.on_event(id, ev, now);
            }
            self.after_io(id, now);
        }
    }

    /// Receiver reports of the subscribers that are due (`--rtcp-interval`), as a browser sends
    /// them: one report block per received stream.
    fn reports(&mut self, now: Instant) {
        let Some(every) = self.rtcp_interval else {
            return;
        };
        while let Some(Reverse((t, id))) = self.rtcp_due.peek().copied() {
            if t > now {
                break;
            }
            self.rtcp_due.pop();
            self.rtcp_due.push(Reverse((t + every, id)));
            let slot = &mut self.slots[id as usize];
            if slot.failed.is_some() || !slot.peer.is_connected() {
                continue;
            }
            let blocks: Vec<(u32, u32)> = slot
                .recv
                .iter()
                .filter_map(|r| Some((r.ssrc, r.highest? as u32)))
                .take(31)
                .collect();
            let rr = receiver_report(0x1000_0000 | id, &blocks);
            match slot.peer.protect_rtcp(&rr) {
                Ok(p) => {
                    self.queue.push((slot.peer.remote_addr(), p));
                    self.rtcp_sent += 1;
                }
                Err(_) => self.send_errors += 1,
            }
        }
    }

    fn flush(&mut self) {
        if !self.queue.is_empty() {
            send_queue(
                self.socket.as_raw_fd(),
                &mut self.queue,
                &mut self.send_errors,
            );
        }
    }

    fn cpu_control(&mut self, now: Instant) {
        let (t0, c0) = self.cpu_mark;
        let wall = now.saturating_duration_since(t0);
        if wall < CPU_CONTROL_PERIOD {
            return;
        }
        let cpu = thread_cpu();
        let share = cpu.saturating_sub(c0).as_secs_f64() / wall.as_secs_f64();
        self.cpu_mark = (now, cpu);
        // Drops mean we fell behind even if our CPU share looks low (other processes on the
        // core take the rest).
        let dropping = self.drops > self.drops_mark;
        self.drops_mark = self.drops;
        if (share > DECRYPT_CPU_HIGH || dropping) && self.decrypt_every < DECRYPT_EVERY_MAX {
            self.decrypt_every *= 2;
        } else if share < DECRYPT_CPU_LOW && self.decrypt_every > self.decrypt_every_min {
            self.decrypt_every /= 2;
        }
        if let Some(w) = self.window.as_mut() {
            w.decrypt_every_max = w.decrypt_every_max.max(self.decrypt_every);
        }
    }

    fn sleep(&mut self, fd: i32, now: Instant) {
        let mut next = now + Duration::from_millis(100);
        for s in &self.streams {
            if let Some(t) = s.next_due {
                next = next.min(t);
            }
        }
        if let Some(Reverse((t, _))) = self.timers.peek() {
            next = next.min(*t);
        }
        if let Some(Reverse((t, _))) = self.rtcp_due.peek() {
            next = next.min(*t);
        }
        if let Some(t) = self.window.as_ref().and_then(|w| w.grace_until) {
            next = next.min(t);
        }
        let wait = next.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return;
        }
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two live pollfds and a live timespec; no signal mask change.
        unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
    }
}

/// An RTCP receiver report (RFC 3550 §6.4.2) from `ssrc` with a block per (source SSRC,
/// extended highest sequence number): no loss, no jitter, no SR seen.
pub(crate) fn receiver_report(ssrc: u32, blocks: &[(u32, u32)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + 24 * blocks.len());
    b.push(0x80 | blocks.len() as u8);
    b.push(201);
    b.extend_from_slice(&((1 + 6 * blocks.len()) as u16).to_be_bytes());
    b.extend_from_slice(&ssrc.to_be_bytes());
    for &(source, highest) in blocks {
        b.extend_from_slice(&source.to_be_bytes());
        b.extend_from_slice(&[0; 4]); // fraction lost, cumulative lost
        b.extend_from_slice(&highest.to_be_bytes());
        b.extend_from_slice(&[0; 12]); // jitter, LSR, DLSR
    }
    b
}

/// Fails when `spec` cannot be sent as configured.
pub(crate) fn check_spec(spec: &SendSpec) -> Result<()> {
    if spec.kind == MediaKind::Video {
        if spec.packet_size < 60 || spec.packet_size > 1400 {
            bail!("packet size {} outside 60..=1400", spec.packet_size);
        }
        if spec.bitrate < 10_000 {
            bail!("bitrate {} below 10 kbit/s", spec.bitrate);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_packets_carry_a_vp8_keyframe_and_the_stamp() {
        let now = Instant::now();
        let spec = SendSpec {
            kind: MediaKind::Video,
            ssrc: 7,
            pt: 96,
            bitrate: 2_000_000,
            packet_size: 1200,
        };
        let mut s = OutStream::new(0, spec, now);
        s.next_due = Some(now);
        let mut buf = Vec::new();
        s.next_packet(now, &mut buf);
        assert_eq!(buf.len(), 1200);
        assert_eq!(buf[12], 0x10, "S=1, PID=0");
        assert_eq!(buf[13] & 1, 0, "P=0: keyframe");
        assert_eq!(&buf[16..19], &[0x9d, 0x01, 0x2a]);
        assert!(sent_at_ns(&buf).is_some_and(|t| t > 0));
        // 2 Mbit/s in 1200 B packets at 30 fps: 6 or 7 packets per frame, marker on the last.
        let mut markers = 0;
        let mut n = 1;
        let mut t = now;
        while markers == 0 {
            t = s.next_due.expect("due");
            s.next_packet(t, &mut buf);
            n += 1;
            markers += usize::from(buf[1] & 0x80 != 0);
            assert_eq!(buf[12], 0x00, "continuation");
        }
        assert!((6..=7).contains(&n), "{n} packets in the first frame");
        assert!(t - now < frame_interval());
        assert!((s.spec.pps() - 208.3).abs() < 1.0);
    }

    #[test]
    fn receiver_reports_parse() {
        use rtc_rtcp::receiver_report::ReceiverReport;
        let rr = receiver_report(7, &[(0x1111, 70_000), (0x2222, 5)]);
        let mut b = bytes::Bytes::from(rr);
        let packets = rtc_rtcp::packet::unmarshal(&mut b).unwrap();
        let r = packets[0]
            .as_any()
            .downcast_ref::<ReceiverReport>()
            .unwrap();
        assert_eq!(r.ssrc, 7);
        let got: Vec<(u32, u32)> = r
            .reports
            .iter()
            .map(|b| (b.ssrc, b.last_sequence_number))
            .collect();
        assert_eq!(got, vec![(0x1111, 70_000), (0x2222, 5)]);
    }

    #[test]
    fn pli_and_fir_are_found_in_a_compound_packet() {
        // RR (empty) + PLI(media 0x0a0b0c0d) + FIR(entry 0x01020304).
        let mut p = vec![0x80, 201, 0, 1, 0, 0, 0, 9];
        p.extend_from_slice(&[0x81, 206, 0, 2, 0, 0, 0, 9, 0x0a, 0x0b, 0x0c, 0x0d]);
        p.extend_from_slice(&[0x84, 206, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0]);
        p.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        let mut out = Vec::new();
        keyframe_requests(&p, &mut out);
        assert_eq!(out, vec![0x0a0b_0c0d, 0x0102_0304]);
        keyframe_requests(&p[..10], &mut out);
        assert_eq!(out.len(), 2, "a truncated packet adds nothing");
    }

    #[test]
    fn extended_sequence_survives_wrap_and_reordering() {
        let mut r = RecvStream {
            ssrc: 1,
            producer_id: String::new(),
            highest: None,
            received: 0,
            window_arrived: 0,
            window_stamped: 0,
            window_base: None,
            window_end: None,
        };
        for s in [65534u16, 65535, 1, 0, 2] {
            r.on_seq(s);
        }
        assert_eq!(r.highest, Some(65538));
        assert_eq!(r.received, 5);
    }
}
