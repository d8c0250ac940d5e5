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

mod engine;
mod socket;
mod streams;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use tokio::sync::oneshot;

use crate::peer::Peer;
use crate::types::Latency;

use self::engine::Core;
use self::socket::open_socket;
pub(crate) use self::socket::{sendmmsg_all, setsockopt_int};
pub(crate) use self::streams::check_spec;

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
    /// The peer is gone (its server transport closed): no more timers, reports or consumers.
    RemovePeer(PeerId),
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
            Cmd::RemovePeer(_) => "RemovePeer",
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

    /// Forgets `peer`: its datagrams are ignored, its consumers no longer expected.
    pub(crate) fn remove_peer(&self, peer: PeerId) -> Result<()> {
        self.send(Cmd::RemovePeer(peer))
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
