//! A producer's sequence numbers that jump must not interrupt forwarding. One stray packet with
//! the producer's SSRC and payload type but a sequence number far from the stream's, sent from
//! the publisher's own (latched) address, is dropped and forwarding goes on. A publisher that
//! restarts its sequence (a restarted encoder) is followed after at most one held packet, and
//! the consumer's output numbering continues without a gap (RFC 3550 A.1: a big jump is held as
//! a possible restart; only a second, consecutive packet confirms a new sequence space).
//!
//! Typed supervisor media API against a real worker process; plain RTP through PlainTransports
//! over loopback sockets, as in `media_api.rs`. Counting is by packets sent and received, with
//! deadlines only as a bound on waiting, so the tests hold when both cores are busy.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use ferrosfu::media::Transport;
use ferrosfu::{Consumer, Producer, Router, Worker};
use ferrosfu_fbs::RtpStreamStats;
use ferrosfu_tests::media::{self, plain_transport, spawn_worker};
use ferrosfu_tests::{
    SupervisorProcess, consume_plain, get_json, join_plain_receiver, plain_opus_publisher,
};
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

const PRODUCER_SSRC: u32 = 1234;
const CONSUMER_SSRC: u32 = 5678;
const PT_IN: u8 = media::PLAIN_OPUS_PT;
const PT_OUT: u8 = media::ROUTER_OPUS_PT;
/// Opus at 20 ms: 50 packets/s, 960 ticks of the 48 kHz clock each.
const PACKET_INTERVAL: Duration = Duration::from_millis(20);
const TS_STEP: u32 = 960;
/// The measured window after a jump or restart: 2 s at 50 packets/s.
const WINDOW: u64 = 100;
/// The stray packet's payload, recognisable among the `frame <n>` payloads.
const JUMPED_PAYLOAD: &[u8] = b"JUMPED PACKET: must never be forwarded";
/// How long to wait for the receiver to drain once the last packet is sent. A bound only: the
/// wait ends as soon as the last packet arrives.
const DRAIN: Duration = Duration::from_secs(3);

fn rtp(seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    media::rtp_packet(PT_IN, seq, ts, PRODUCER_SSRC, payload)
}

/// Random values for the restart, from `SEQ_JUMP_SEED` when set (to replay a failure) or else a
/// fresh seed, which is printed.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = match std::env::var("SEQ_JUMP_SEED") {
            Ok(s) => s.parse().expect("SEQ_JUMP_SEED is a u64"),
            Err(_) => std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        };
        eprintln!("seed {seed} (set SEQ_JUMP_SEED={seed} to replay)");
        Rng(seed)
    }

    /// splitmix64
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// One packet as the receiver got it.
#[derive(Debug)]
struct Received {
    seq: u16,
    pt: u8,
    ssrc: u32,
    payload: Vec<u8>,
}

impl Received {
    /// The publisher's frame index carried in the payload (`frame <n>`), if it is one.
    fn frame(&self) -> Option<u64> {
        std::str::from_utf8(&self.payload)
            .ok()?
            .strip_prefix("frame ")?
            .parse()
            .ok()
    }
}

/// The publisher's RTP state: one SSRC, a sequence number and timestamp advancing per frame.
#[derive(Debug)]
struct Publisher {
    seq: u16,
    ts: u32,
    /// The next frame's index, carried in its payload.
    frame: u64,
}

impl Publisher {
    fn next_frame(&mut self) -> (u64, Vec<u8>) {
        let frame = self.frame;
        let pkt = rtp(self.seq, self.ts, format!("frame {frame}").as_bytes());
        self.frame += 1;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(TS_STEP);
        (frame, pkt)
    }
}

/// What keeps a path's entities alive: typed handles on a worker of ours, or a supervisor
/// (entities made through its REST API).
#[allow(dead_code)] // held, never read
enum Keep {
    Typed {
        consumer: Consumer,
        transports: (Transport, Transport),
        router: Router,
        worker: Worker,
    },
    Supervisor(SupervisorProcess),
}

impl std::fmt::Debug for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Keep::Typed { .. } => "Typed",
            Keep::Supervisor(_) => "Supervisor",
        })
    }
}

/// A producer on a comedia PlainTransport fed by a publisher socket, and a consumer on a second
/// PlainTransport sending to a receiver socket whose packets a reader task passes on.
#[derive(Debug)]
struct Path {
    /// With typed handles only.
    producer: Option<Producer>,
    publisher: Publisher,
    sender: UdpSocket,
    ingest: SocketAddr,
    tick: Interval,
    rx: mpsc::UnboundedReceiver<Received>,
    received: Vec<Received>,
    /// Held so that nothing closes while the test runs.
    keep: Keep,
}

impl Path {
    async fn new(first_seq: u16, first_ts: u32) -> Path {
        let worker = spawn_worker().await;
        let router = worker.create_router().await.unwrap();
        let ingest = plain_transport(&router, "ingest", true).await;
        let egress = plain_transport(&router, "egress", false).await;
        let ingest_addr =
            SocketAddr::from(([127, 0, 0, 1], ingest.plain().unwrap().tuple.local_port));

        let (receiver, rx) = Path::receiver().await;
        egress
            .connect_plain(Some("127.0.0.1".into()), Some(receiver.port()), None, None)
            .await
            .unwrap();
        let producer = ingest
            .produce(media::produce_opus("p", PRODUCER_SSRC, "pub"))
            .await
            .unwrap();
        let consumer = egress
            .consume(media::consume_opus("c", "p", CONSUMER_SSRC, "sub"))
            .await
            .unwrap();
        let keep = Keep::Typed {
            consumer,
            transports: (ingest, egress),
            router,
            worker,
        };
        Path::with(Some(producer), ingest_addr, rx, keep, first_seq, first_ts).await
    }

    /// The same through a real supervisor, as a GStreamer broadcaster and a plain-RTP viewer
    /// use its REST API (mediasoup-demo's broadcaster API): a comedia plain transport with an
    /// Opus producer, and another broadcaster consuming it on a plain transport.
    async fn through_supervisor(first_seq: u16, first_ts: u32) -> Path {
        let sup = SupervisorProcess::start_on_loopback("23500-23599", &["--dev"]);
        let http = reqwest::Client::new();
        let base = sup.url("/rooms/seq-jump/broadcasters");
        let caps = get_json(&http, &sup.url("/rooms/seq-jump")).await;
        let (ingest, producer) =
            plain_opus_publisher(&http, &base, "test", PT_IN, PRODUCER_SSRC).await;
        let (receiver, rx) = Path::receiver().await;
        let tid = join_plain_receiver(
            &http,
            &base,
            json!({"id": "sub", "displayName": "sub", "device": {"name": "test"}, "rtpCapabilities": caps}),
            receiver.port(),
        )
        .await;
        consume_plain(&http, &base, "sub", &tid, &producer).await;
        Path::with(None, ingest, rx, Keep::Supervisor(sup), first_seq, first_ts).await
    }

    /// A socket whose RTP packets a reader task passes on (its address, the receiving end).
    async fn receiver() -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = receiver.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok(n) = receiver.recv(&mut buf).await {
                // RTCP (the consumer's sender reports, rtcp-mux) is not counted: RFC 5761 4.
                if n < 12 || (192..=223).contains(&buf[1]) {
                    continue;
                }

                let got = Received {
                    seq: u16::from_be_bytes([buf[2], buf[3]]),
                    pt: buf[1] & 0x7f,
                    ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                    payload: media::rtp_payload(&buf[..n]).to_vec(),
                };
                if tx.send(got).is_err() {
                    return;
                }
            }
        });
        (addr, rx)
    }

    async fn with(
        producer: Option<Producer>,
        ingest: SocketAddr,
        rx: mpsc::UnboundedReceiver<Received>,
        keep: Keep,
        first_seq: u16,
        first_ts: u32,
    ) -> Path {
        let mut tick = tokio::time::interval(PACKET_INTERVAL);
        // A late tick delays the ones after it: a busy machine sends more slowly, never in bursts.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Path {
            producer,
            publisher: Publisher {
                seq: first_seq,
                ts: first_ts,
                frame: 0,
            },
            sender: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            ingest,
            tick,
            rx,
            received: vec![],
            keep,
        }
    }

    /// Sends the next frame on the next tick; returns its index.
    async fn send_frame(&mut self) -> u64 {
        self.tick.tick().await;
        let (frame, pkt) = self.publisher.next_frame();
        self.sender.send_to(&pkt, self.ingest).await.unwrap();
        self.drain();
        frame
    }

    /// Sends `n` frames at the normal pace; returns the index of the last.
    async fn send_frames(&mut self, n: u64) -> u64 {
        let mut last = 0;
        for _ in 0..n {
            last = self.send_frame().await;
        }
        last
    }

    /// Moves what the reader task has passed on into `received`.
    fn drain(&mut self) {
        while let Ok(r) = self.rx.try_recv() {
            self.received.push(r);
        }
    }

    /// Sends frames until the receiver has 10 of them (at least 25 frames are sent, so the
    /// comedia tuple is latched and the stream settled).
    async fn establish(&mut self) {
        while self.publisher.frame < 25 || self.received.len() < 10 {
            self.send_frame().await;
            assert!(
                self.publisher.frame < 1000,
                "forwarding never started: {} frames sent, {} received",
                self.publisher.frame,
                self.received.len()
            );
        }
    }

    /// Waits until frame `last` has been received, at most [`DRAIN`]; returns whether it was.
    async fn wait_for_frame(&mut self, last: u64) -> bool {
        let deadline = Instant::now() + DRAIN;
        loop {
            self.drain();
            if self.received.iter().any(|r| r.frame() == Some(last)) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(r)) => self.received.push(r),
                Ok(None) | Err(_) => return false,
            }
        }
    }

    /// How many distinct frames in `from..=to` the receiver got.
    fn received_frames(&self, from: u64, to: u64) -> u64 {
        let mut frames: Vec<u64> = self
            .received
            .iter()
            .filter_map(Received::frame)
            .filter(|f| (from..=to).contains(f))
            .collect();
        frames.sort_unstable();
        frames.dedup();
        frames.len() as u64
    }

    /// Places where the receiver's sequence numbers do not go up by one, in arrival order:
    /// (frame or payload of the packet, previous seq, its seq).
    fn seq_breaks(&self) -> Vec<(String, u16, u16)> {
        self.received
            .windows(2)
            .filter(|w| w[1].seq != w[0].seq.wrapping_add(1))
            .map(|w| {
                let what = match w[1].frame() {
                    Some(f) => format!("frame {f}"),
                    None => String::from_utf8_lossy(&w[1].payload).into_owned(),
                };
                (what, w[0].seq, w[1].seq)
            })
            .collect()
    }

    /// The stats of the producer's one stream (typed paths only).
    async fn producer_stats(&self) -> RtpStreamStats {
        let producer = self.producer.as_ref().expect("typed path");
        let mut stats = producer.get_stats().await.unwrap();
        assert_eq!(stats.len(), 1, "{stats:?}");
        stats.remove(0)
    }

    fn jumped_packet_forwarded(&self) -> bool {
        self.received.iter().any(|r| r.payload == JUMPED_PAYLOAD)
    }

    fn assert_rewritten(&self) {
        if matches!(self.keep, Keep::Supervisor(_)) {
            return; // the room chose the consumer's SSRC and payload type
        }
        for r in &self.received {
            assert_eq!(
                (r.pt, r.ssrc),
                (PT_OUT, CONSUMER_SSRC),
                "payload type and ssrc are the consumer's"
            );
        }
    }

    /// Sends the jumped packet: the producer's SSRC and payload type, `offset` from the highest
    /// sequence number so far, from the publisher's (latched) address.
    async fn send_jumped(&mut self, offset: i32) -> (u16, u16) {
        let highest = self.publisher.seq.wrapping_sub(1);
        let jumped = highest.wrapping_add(offset as u16);
        let pkt = rtp(jumped, self.publisher.ts, JUMPED_PAYLOAD);
        self.sender.send_to(&pkt, self.ingest).await.unwrap();
        (highest, jumped)
    }

    /// After [`Self::send_jumped`]: the next [`WINDOW`] frames; asserts ≥ 95 % of them arrive,
    /// the jumped one never does, and the output sequence numbers never break.
    async fn assert_forwarding_goes_on(&mut self, what: &str) {
        let first = self.publisher.frame;
        let last = self.send_frames(WINDOW).await;
        let drained = self.wait_for_frame(last).await;
        let got = self.received_frames(first, last);
        let breaks = self.seq_breaks();
        let forwarded = self.jumped_packet_forwarded();
        eprintln!(
            "{what}: in the window after it {WINDOW} frames sent, {got} received (last frame \
             received: {drained}); {} packets received in all; jumped packet forwarded: \
             {forwarded}; seq breaks: {breaks:?}",
            self.received.len()
        );
        assert!(
            got * 100 >= WINDOW * 95,
            "{what}: only {got} of the {WINDOW} frames sent in the 2 s after the jump were \
             forwarded"
        );
        assert!(!forwarded, "{what}: the jumped packet was forwarded");
        assert!(
            breaks.is_empty(),
            "{what}: the consumer's sequence numbers jump: {breaks:?}"
        );
        self.assert_rewritten();
    }
}

/// Forwarding is established, then the publisher's socket sends one packet with the producer's
/// SSRC and payload type and a sequence number `offset` away from the highest one so far, then
/// goes on with its normal stream.
async fn one_jumped_packet(offset: i32) {
    // Start just below the wrap: the jumped sequence number and the stream itself wrap around
    // 65535 in the window after the jump.
    let mut path = Path::new(65_500, 0x1234_5678).await;
    path.establish().await;
    let (highest, jumped) = path.send_jumped(offset).await;
    path.assert_forwarding_goes_on(&format!("jump {offset:+} (seq {highest} -> {jumped})"))
        .await;

    let stats = path.producer_stats().await;
    assert!(
        stats.bad_sequence_dropped >= 1,
        "jump {offset:+}: the producer counts the jumped packet: {stats:?}"
    );
    assert_eq!(
        stats.resync_count, 0,
        "jump {offset:+}: one packet does not confirm a new sequence space: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_jumped_packet_does_not_interrupt_forwarding() {
    one_jumped_packet(3000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_packet_jumped_32767_ahead_does_not_interrupt_forwarding() {
    one_jumped_packet(32_767).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_packet_3000_behind_does_not_interrupt_forwarding() {
    one_jumped_packet(-3000).await;
}

/// The publisher switches to a new random sequence start and timestamp base mid-stream, as a
/// restarted encoder does. The new start is at least 3001 away from the highest old sequence
/// number either way: beyond any "gap" or "late packet" reading (RFC 3550 A.1's MAX_DROPOUT and
/// MAX_MISORDER).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_restart_resyncs() {
    let mut rng = Rng::from_env();
    let mut path = Path::new(rng.next_u64() as u16, rng.next_u64() as u32).await;
    path.establish().await;
    let before = path.send_frames(25).await;

    let highest = path.publisher.seq.wrapping_sub(1);
    let delta = 3001 + (rng.next_u64() % (65_536 - 2 * 3001 + 1)) as u16;
    path.publisher.seq = highest.wrapping_add(delta);
    path.publisher.ts = rng.next_u64() as u32;
    eprintln!(
        "restart after frame {before}: seq {highest} -> {} (+{delta}), ts base {}",
        path.publisher.seq, path.publisher.ts
    );

    let first = path.publisher.frame;
    let last = path.send_frames(WINDOW).await;
    let drained = path.wait_for_frame(last).await;
    let resumed_at = path
        .received
        .iter()
        .filter_map(Received::frame)
        .filter(|f| *f >= first)
        .min();
    let got = path.received_frames(first, last);
    let breaks = path.seq_breaks();
    eprintln!(
        "after the restart: {WINDOW} frames sent, {got} received, the first of them is frame \
         {resumed_at:?} (restart at frame {first}); last frame received: {drained}; seq breaks: \
         {breaks:?}"
    );

    let resumed_at = resumed_at
        .unwrap_or_else(|| panic!("nothing forwarded after the restart at frame {first}"));
    assert!(
        resumed_at <= first + 1,
        "forwarding resumed at frame {resumed_at}, more than 2 packets after the restart at frame \
         {first}"
    );
    assert_eq!(
        got,
        last - resumed_at + 1,
        "every frame from the one forwarding resumed at ({resumed_at}) to the last ({last}) is \
         forwarded"
    );
    assert!(
        breaks.is_empty(),
        "the consumer's sequence numbers do not continue across the restart: {breaks:?}"
    );
    path.assert_rewritten();

    let stats = path.producer_stats().await;
    assert!(
        stats.resync_count >= 1,
        "the producer counts the resync: {stats:?}"
    );
}

/// The same through the real supervisor (REST broadcasters, as GStreamer publishes into a
/// room), and the jumped packet is counted in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_supervisor_a_jump_is_dropped_and_counted_in_metrics() {
    let mut path = Path::through_supervisor(1000, 0).await;
    path.establish().await;
    path.send_jumped(3000).await;
    path.assert_forwarding_goes_on("jump +3000 through the supervisor")
        .await;
    let Keep::Supervisor(sup) = &path.keep else {
        unreachable!("made through the supervisor")
    };
    let metrics = sup.metrics(&reqwest::Client::new()).await.unwrap();
    let line = "ferrosfu_rtp_packets_dropped_total{core=\"0\",reason=\"bad_sequence\"} 1";
    assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    assert!(
        metrics.contains("ferrosfu_rtp_stream_resyncs_total{core=\"0\"} 0"),
        "{metrics}"
    );
}
