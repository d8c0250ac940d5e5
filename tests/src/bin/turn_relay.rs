//! `turn_relay`: what relaying media through ferrosfu's built-in TURN server costs, against the
//! same subscribers receiving directly.
//!
//! One supervisor per (run, variant), its TURN server on (`--turn-listen`, a fixed secret), the
//! supervisor on core 0 and one worker on core 1. The REST broadcaster API makes the room: a
//! publisher "pub" with a comedia plain transport and an Opus producer fed `--rate` packets/s of
//! `--size` bytes, then `--n` subscribers, each a comedia plain transport consuming it
//! (broadcasters of `--per-peer` transports each).
//!
//! - **direct**: each subscriber's UDP socket sends an empty receiver report to its plain
//!   transport, which latches to it (comedia) and sends it the RTP.
//! - **relayed**: each subscriber is a TURN client as a browser is one
//!   ([`ferrosfu_tests::turn_client`]): it allocates a UDP relay on the TURN listener with a REST
//!   credential of its own (`<expiry>:sub-<i>`, HMAC-SHA1 of the secret), creates a permission
//!   for its plain transport's address, binds channel 0x4000 to it and sends the receiver report
//!   as ChannelData. The relay sends it on from the relay port, the transport latches to the
//!   relay, and every RTP packet then takes worker → relay socket → TURN engine → ChannelData
//!   → subscriber.
//!
//! After `--warmup` s it measures for `--window` s: packets the subscribers received (RTP, bare
//! or in ChannelData) against rate × N (loss), generator → subscriber delay, and the CPU time
//! (utime + stime from /proc) of the supervisor (where the TURN server runs) and of the worker.
//! Reported: delivered packets/s per core = delivered packets/s ÷ (supervisor + worker CPU, in
//! cores). The variants alternate within each run (direct first in odd runs, relayed first in
//! even ones). With `--before-bin` a third variant, relayed through that supervisor binary
//! (e.g. a build before a change of the TURN server). One line per (run, variant) on stdout,
//! then a Markdown table of the medians per variant.
//!
//! ```text
//! cargo build --release -p ferrosfu -p ferrosfu-worker
//! cargo build -p ferrosfu-tests --bin turn_relay
//! target/debug/turn_relay --supervisor-bin target/release/ferrosfu \
//!     --worker-bin target/release/ferrosfu-worker --n 100 --rate 300 --runs 3
//! ```
//!
//! Uses only loopback; no root needed.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // a measurement tool

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferrosfu_tests::plain_load::{
    DELAY_BUCKETS, PT, SSRC, Window, clock_ticks, generator, proc_ticks, receiver, worker_pids,
};
use ferrosfu_tests::turn_client::TurnClient;
use ferrosfu_tests::{
    SupervisorProcess, consume_plain, create_plain_transport, get_json, plain_opus_publisher,
    post_json,
};
use serde_json::json;

const SECRET: &str = "turn-relay-bench";
const CHANNEL: u16 = 0x4000;

struct Args {
    n: usize,
    per_peer: usize,
    rate: u64,
    size: usize,
    warmup: Duration,
    window: Duration,
    runs: usize,
    supervisor_bin: PathBuf,
    before_bin: Option<PathBuf>,
    worker_bin: Option<PathBuf>,
    ports: String,
    turn_port: u16,
}

fn parse_args() -> Args {
    let mut a = Args {
        n: 100,
        per_peer: 10,
        rate: 300,
        size: 1200,
        warmup: Duration::from_secs(3),
        window: Duration::from_secs(10),
        runs: 3,
        supervisor_bin: ferrosfu_tests::bin("ferrosfu"),
        before_bin: None,
        worker_bin: None,
        ports: "28000-28999".into(),
        turn_port: 28478,
    };
    let path = |v: String| std::fs::canonicalize(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--n" => a.n = v().parse().unwrap(),
            "--per-peer" => a.per_peer = v().parse().unwrap(),
            "--rate" => a.rate = v().parse().unwrap(),
            "--size" => a.size = v().parse().unwrap(),
            "--warmup" => a.warmup = Duration::from_secs_f64(v().parse().unwrap()),
            "--window" => a.window = Duration::from_secs_f64(v().parse().unwrap()),
            "--runs" => a.runs = v().parse().unwrap(),
            "--supervisor-bin" => a.supervisor_bin = path(v()),
            "--before-bin" => a.before_bin = Some(path(v())),
            "--worker-bin" => a.worker_bin = Some(path(v())),
            "--ports" => a.ports = v(),
            "--turn-port" => a.turn_port = v().parse().unwrap(),
            _ => panic!("unknown argument {k}"),
        }
    }
    a
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Direct,
    Relayed,
}

/// What one variant measured.
struct Outcome {
    in_pps: f64,
    fwd_pps: f64,
    loss: f64,
    p50: usize,
    p99: usize,
    /// CPU of the supervisor and of the worker, % of a core.
    sup_cpu: f64,
    worker_cpu: f64,
    /// TURN packets relayed toward the subscribers, per second, and refusals/drops by reason.
    turn_pps: f64,
    turn_refused: String,
}

async fn run_one(a: &Args, path: Path, supervisor: &std::path::Path) -> Outcome {
    let turn_listen = format!("127.0.0.1:{}", a.turn_port);
    let mut args = vec![
        "--supervisor-cores",
        "0",
        "--worker-cores",
        "1",
        "--rtc-ports",
        &a.ports,
        "--rtc-listen-ip",
        "127.0.0.1",
        "--webrtc-server-port",
        "0",
        "--turn-listen",
        &turn_listen,
        "--turn-secret",
        SECRET,
        "--dev",
    ];
    let wb;
    if let Some(w) = &a.worker_bin {
        wb = w.to_string_lossy().into_owned();
        args.extend(["--worker-bin", &wb]);
    }
    let sup = SupervisorProcess::start_with(supervisor, &[], &args);
    let sup_pid = sup.child.id();
    let mut pids = Vec::new();
    for _ in 0..200 {
        pids = worker_pids(sup_pid);
        if !pids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pids.len(), 1, "one worker is running");
    let worker = pids[0];

    let http = reqwest::Client::new();
    let room = "turn-relay";
    let base = sup.url(&format!("/rooms/{room}/broadcasters"));
    let rtp_caps = get_json(&http, &sup.url(&format!("/rooms/{room}"))).await;
    let (ingest, producer) = plain_opus_publisher(&http, &base, "turn_relay", PT, SSRC).await;
    let turn: SocketAddr = turn_listen.parse().unwrap();

    let sent = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (rate, size) = (a.rate, a.size);
    let g = {
        let (sent, stop) = (sent.clone(), stop.clone());
        std::thread::spawn(move || generator(ingest, (rate, size), epoch, sent, stop))
    };

    // The subscribers: a socket each, latched (directly or through its relay) to its transport.
    let mut socks: Vec<UdpSocket> = Vec::with_capacity(a.n);
    let mut clients: Vec<TurnClient> = Vec::new();
    for i in 0..a.n {
        let peer = format!("sub-{}", i / a.per_peer);
        if i % a.per_peer == 0 {
            post_json(
                &http,
                &base,
                json!({"id": peer, "displayName": peer, "device": {"name": "turn_relay"}, "rtpCapabilities": rtp_caps}),
            )
            .await;
        }
        let t = create_plain_transport(&http, &base, &peer, true).await;
        let media = SocketAddr::from(([127, 0, 0, 1], t["port"].as_u64().unwrap() as u16));
        consume_plain(&http, &base, &peer, t["id"].as_str().unwrap(), &producer).await;
        // An empty receiver report latches the comedia transport to its sender.
        let mut rr = [0x80, 201, 0, 1, 0, 0, 0, 0];
        rr[4..8].copy_from_slice(&(0x5000_0000u32 + i as u32).to_be_bytes());
        let sock = match path {
            Path::Direct => {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.send_to(&rr, media).unwrap();
                s
            }
            Path::Relayed => {
                let mut c = TurnClient::new(turn, SECRET.as_bytes(), &format!("sub-{i}")).unwrap();
                c.allocate()
                    .unwrap_or_else(|e| panic!("sub-{i}: allocate: {e}"));
                c.bind_channel(CHANNEL, media)
                    .unwrap_or_else(|e| panic!("sub-{i}: permission/channel: {e}"));
                c.send_channel(CHANNEL, &rr).unwrap();
                let s = c.socket().try_clone().unwrap();
                clients.push(c);
                s
            }
        };
        s_setup(&sock);
        socks.push(sock);
    }
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..a.n).map(|_| AtomicU64::new(0)).collect());
    let delays: Arc<Vec<AtomicU64>> =
        Arc::new((0..DELAY_BUCKETS).map(|_| AtomicU64::new(0)).collect());
    let r = {
        let (counts, delays, stop) = (counts.clone(), delays.clone(), stop.clone());
        std::thread::spawn(move || receiver(socks, counts, (epoch, delays), stop))
    };
    tokio::time::sleep(a.warmup).await;

    let snap = || {
        (
            Instant::now(),
            sent.load(Ordering::Relaxed),
            counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<u64>(),
            delays
                .iter()
                .map(|d| d.load(Ordering::Relaxed))
                .collect::<Vec<_>>(),
            proc_ticks(sup_pid),
            proc_ticks(worker),
        )
    };
    let m0 = sup.metrics(&http).await.unwrap_or_default();
    let s0 = snap();
    tokio::time::sleep(a.window).await;
    let s1 = snap();
    let m1 = sup.metrics(&http).await.unwrap_or_default();
    stop.store(true, Ordering::Relaxed);
    g.join().unwrap();
    r.join().unwrap();
    drop(clients);
    drop(sup);

    let w = Window::new(
        a.n,
        (s0.0, s1.0),
        (s0.1, s1.1),
        (s0.2, s1.2),
        (&s0.3, &s1.3),
    );
    let secs = w.secs;
    let hz = clock_ticks();
    let relayed = |m: &str| {
        SupervisorProcess::metric_value(
            m,
            "ferrosfu_turn_relayed_packets_total{direction=\"from_peer\"}",
        )
    };
    let refused: Vec<String> = m1
        .lines()
        .filter(|l| l.starts_with("ferrosfu_turn_refused_total{"))
        .map(|l| {
            l.trim_start_matches("ferrosfu_turn_refused_total{reason=\"")
                .replace("\"} ", "=")
        })
        .collect();
    Outcome {
        in_pps: w.in_pps,
        fwd_pps: w.fwd_pps,
        loss: w.loss,
        p50: w.percentile(0.5),
        p99: w.percentile(0.99),
        sup_cpu: 100.0 * (s1.4 - s0.4) as f64 / hz / secs,
        worker_cpu: 100.0 * (s1.5 - s0.5) as f64 / hz / secs,
        turn_pps: (relayed(&m1) - relayed(&m0)) / secs,
        turn_refused: refused.join(","),
    }
}

fn s_setup(s: &UdpSocket) {
    s.set_nonblocking(true).unwrap();
    let _ = nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = parse_args();
    println!(
        "# turn_relay: N={} per_peer={} rate={} pkt/s size={} B warmup={:?} window={:?} \
         supervisor={} before={}",
        a.n,
        a.per_peer,
        a.rate,
        a.size,
        a.warmup,
        a.window,
        a.supervisor_bin.display(),
        a.before_bin
            .as_ref()
            .map_or("-".into(), |p| p.display().to_string()),
    );
    let mut variants = vec![
        ("direct", Path::Direct, a.supervisor_bin.clone()),
        ("relayed", Path::Relayed, a.supervisor_bin.clone()),
    ];
    if let Some(b) = &a.before_bin {
        variants.push(("relayed-before", Path::Relayed, b.clone()));
    }
    let mut all: Vec<(&str, Outcome)> = Vec::new();
    for run in 1..=a.runs {
        let mut order = variants.clone();
        if run % 2 == 0 {
            order.reverse();
        }
        for (label, path, bin) in &order {
            let o = run_one(&a, *path, bin).await;
            let per_core = o.per_core();
            println!(
                "run={run} variant={label} N={} in={:.0}/s fwd={:.0}/s loss={:.2}% \
                 delay_ms p50={} p99={} cpu supervisor={:.1}% worker={:.1}% \
                 per_core={per_core:.0}/s turn_relayed={:.0}/s refused=[{}]",
                a.n,
                o.in_pps,
                o.fwd_pps,
                o.loss,
                o.p50,
                o.p99,
                o.sup_cpu,
                o.worker_cpu,
                o.turn_pps,
                o.turn_refused,
            );
            all.push((label, o));
        }
    }
    // Medians per variant, as a Markdown table.
    println!();
    println!(
        "| variant | delivered pkt/s | loss | delay p50 / p99 ms | supervisor CPU | worker CPU | \
         pkt/s per core |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (label, _, _) in &variants {
        let runs: Vec<&Outcome> = all
            .iter()
            .filter(|(l, _)| l == label)
            .map(|(_, o)| o)
            .collect();
        let med = |f: &dyn Fn(&Outcome) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(|o| f(o)).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {label} | {:.0} | {:.2} % | {:.0} / {:.0} | {:.1} % | {:.1} % | {:.0} |",
            med(&|o| o.fwd_pps),
            med(&|o| o.loss),
            med(&|o| o.p50 as f64),
            med(&|o| o.p99 as f64),
            med(&|o| o.sup_cpu),
            med(&|o| o.worker_cpu),
            med(&|o| o.per_core()),
        );
    }
}

impl Outcome {
    /// Delivered packets per second per core of supervisor + worker CPU.
    fn per_core(&self) -> f64 {
        let cores = (self.sup_cpu + self.worker_cpu) / 100.0;
        if cores > 0.0 {
            self.fwd_pps / cores
        } else {
            0.0
        }
    }
}
