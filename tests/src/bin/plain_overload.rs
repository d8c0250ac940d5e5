//! `plain_overload`: how one worker behaves past saturation (issue 11).
//!
//! For each fan-out size N: a supervisor with one worker pinned to `--worker-core`, a REST
//! broadcaster "pub" with a comedia plain transport and an Opus producer, a broadcaster "sub" with
//! N comedia plain transports (rtcp-mux) each consuming the producer, N loopback receiver sockets
//! (each latches its transport with one RTCP receiver report), a paced generator of `--rate`
//! packets/s of `--size` bytes pinned to `--gen-core`, and one receiver thread (same core) that
//! sweeps the N sockets with `recvmmsg`. After `--warmup` s, it measures for `--window` s:
//!
//! - forwarded pkt/s (RTP received by all receivers) and loss against rate × N;
//! - the worker process's CPU (utime + stime from /proc/<pid>/stat) and the whole worker core's
//!   busy share (/proc/stat: user + system + irq + softirq; loopback delivery runs in softirq);
//! - kernel drops (/proc/net/udp `drops`) on the worker's ingest socket and on the receivers;
//! - the worker's own socket counters from `/metrics` (`ferrosfu_udp_*`), when it exposes them.
//!
//! ```text
//! cargo build --release -p ferrosfu-worker && cargo build -p ferrosfu -p ferrosfu-tests --bin plain_overload
//! target/debug/plain_overload --worker new=target/release/ferrosfu-worker \
//!     --worker old=/path/to/old/ferrosfu-worker --ns 200,300,350,400,500
//! ```
//!
//! The supervisor is the `ferrosfu` next to this binary (`--supervisor` to override); its speed
//! does not matter (REST setup only). Use only loopback. One line per (N, worker) on stdout.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // a measurement tool

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferrosfu_tests::plain_load::{
    DELAY_BUCKETS, PT, SSRC, cpu_ticks, generator, ksoftirqd, pin, proc_ticks, receiver, renice,
    sched, softnet_drops, udp_drops, worker_pids,
};
use ferrosfu_tests::{
    SupervisorProcess, consume_plain, create_plain_transport, get_json, plain_opus_publisher,
    post_json,
};
use nix::libc;
use serde_json::json;

struct Args {
    ns: Vec<usize>,
    rate: u64,
    size: usize,
    warmup: Duration,
    window: Duration,
    worker_core: usize,
    gen_core: usize,
    workers: Vec<(String, Option<PathBuf>)>,
    ports: String,
    /// Nice value for the worker and this tool's generator/receiver threads (root: < 0), so that
    /// a shared machine's other work does not set the figures.
    nice: Option<i32>,
}

fn parse_args() -> Args {
    let mut a = Args {
        ns: vec![200, 300, 350, 400, 500],
        rate: 1000,
        size: 1200,
        warmup: Duration::from_secs(3),
        window: Duration::from_secs(10),
        worker_core: 1,
        gen_core: 0,
        workers: Vec::new(),
        ports: "47000-47999".into(),
        nice: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--ns" => a.ns = v().split(',').map(|n| n.parse().unwrap()).collect(),
            "--rate" => a.rate = v().parse().unwrap(),
            "--size" => a.size = v().parse().unwrap(),
            "--warmup" => a.warmup = Duration::from_secs_f64(v().parse().unwrap()),
            "--window" => a.window = Duration::from_secs_f64(v().parse().unwrap()),
            "--worker-core" => a.worker_core = v().parse().unwrap(),
            "--gen-core" => a.gen_core = v().parse().unwrap(),
            "--ports" => a.ports = v(),
            "--nice" => a.nice = Some(v().parse().unwrap()),
            "--worker" => {
                let s = v();
                let (label, path) = s.split_once('=').expect("--worker LABEL=PATH");
                a.workers
                    .push((label.to_owned(), Some(PathBuf::from(path))));
            }
            _ => panic!("unknown argument {k}"),
        }
    }
    if a.workers.is_empty() {
        a.workers.push(("default".into(), None));
    }
    a
}

struct Snap {
    sent: u64,
    got: u64,
    worker: u64,
    core: (u64, u64, u64),
    drops: HashMap<u16, u64>,
    softnet: u64,
    ksoftirqd: u64,
    sched: (u64, u64, u64),
    delays: Vec<u64>,
    at: Instant,
}

fn snap(
    sent: &AtomicU64,
    (counts, delays): (&[AtomicU64], &[AtomicU64]),
    pid: u32,
    core: usize,
) -> Snap {
    Snap {
        delays: delays.iter().map(|d| d.load(Ordering::Relaxed)).collect(),
        softnet: softnet_drops(),
        ksoftirqd: ksoftirqd(core).map_or(0, proc_ticks),
        sched: sched(pid),
        sent: sent.load(Ordering::Relaxed),
        got: counts.iter().map(|c| c.load(Ordering::Relaxed)).sum(),
        worker: proc_ticks(pid),
        core: cpu_ticks(core),
        drops: udp_drops(),
        at: Instant::now(),
    }
}

async fn run_one(a: &Args, n: usize, label: &str, worker: Option<&PathBuf>) {
    let core = a.worker_core.to_string();
    let mut args = vec![
        "--worker-cores",
        &core,
        "--rtc-ports",
        &a.ports,
        "--rtc-listen-ip",
        "127.0.0.1",
        "--dev",
    ];
    let wb;
    if let Some(w) = worker {
        wb = w.to_string_lossy().into_owned();
        args.extend(["--worker-bin", &wb]);
    }
    let sup = SupervisorProcess::start(&args);
    let http = reqwest::Client::new();
    let mut pid = None;
    for _ in 0..100 {
        pid = worker_pids(sup.child.id()).first().copied();
        if pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = pid.expect("the worker is running");
    if let Some(n) = a.nice {
        renice(pid, n);
    }
    let room = "overload";
    let base = sup.url(&format!("/rooms/{room}/broadcasters"));
    let caps = get_json(&http, &sup.url(&format!("/rooms/{room}"))).await;
    let (ingest, producer) = plain_opus_publisher(&http, &base, "plain_overload", PT, SSRC).await;
    let ingest_port = ingest.port();
    post_json(
        &http,
        &base,
        json!({"id": "sub", "displayName": "sub", "device": {"name": "plain_overload"}, "rtpCapabilities": caps}),
    )
    .await;
    let mut socks = Vec::with_capacity(n);
    let mut rx_ports = Vec::with_capacity(n);
    for _ in 0..n {
        let t = create_plain_transport(&http, &base, "sub", true).await;
        let port = t["port"].as_u64().unwrap() as u16;
        consume_plain(&http, &base, "sub", t["id"].as_str().unwrap(), &producer).await;
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
        // An empty receiver report latches the comedia transport to this socket.
        let mut rr = [0x80, 201, 0, 1, 0, 0, 0, 0];
        rr[4..8].copy_from_slice(&(0x5000_0000u32 + socks.len() as u32).to_be_bytes());
        s.send_to(&rr, SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap();
        rx_ports.push(s.local_addr().unwrap().port());
        socks.push(s);
    }

    let sent = Arc::new(AtomicU64::new(0));
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let delays: Arc<Vec<AtomicU64>> =
        Arc::new((0..DELAY_BUCKETS).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (gen_core, nice) = (a.gen_core, a.nice);
    let (rate, size) = (a.rate, a.size);
    let g = {
        let (sent, stop) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            pin(gen_core, nice);
            generator(ingest, (rate, size), epoch, sent, stop)
        })
    };
    let r = {
        let (counts, delays, stop) = (counts.clone(), delays.clone(), stop.clone());
        std::thread::spawn(move || {
            pin(gen_core, nice);
            receiver(socks, counts, (epoch, delays), stop)
        })
    };
    tokio::time::sleep(a.warmup).await;
    let s0 = snap(&sent, (&counts, &delays), pid, a.worker_core);
    tokio::time::sleep(a.window).await;
    let s1 = snap(&sent, (&counts, &delays), pid, a.worker_core);
    let metrics = sup.metrics(&http).await.unwrap_or_default();
    stop.store(true, Ordering::Relaxed);
    g.join().unwrap();
    r.join().unwrap();

    let secs = s1.at.duration_since(s0.at).as_secs_f64();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let in_pps = (s1.sent - s0.sent) as f64 / secs;
    let fwd_pps = (s1.got - s0.got) as f64 / secs;
    let expected = in_pps * n as f64;
    let loss = if expected > 0.0 {
        100.0 * (1.0 - fwd_pps / expected)
    } else {
        0.0
    };
    let wcpu = 100.0 * (s1.worker - s0.worker) as f64 / hz / secs;
    let wait = 100.0 * (s1.sched.1 - s0.sched.1) as f64 / 1e9 / secs;
    let sleeps = (s1.sched.2 - s0.sched.2) as f64 / secs;
    let steal = 100.0 * (s1.core.2 - s0.core.2) as f64 / (s1.core.1 - s0.core.1).max(1) as f64;
    let ksirq = 100.0 * (s1.ksoftirqd - s0.ksoftirqd) as f64 / hz / secs;
    let core_busy = 100.0 * (s1.core.0 - s0.core.0) as f64 / (s1.core.1 - s0.core.1).max(1) as f64;
    let d = |m: &HashMap<u16, u64>, p: u16| m.get(&p).copied().unwrap_or(0);
    let ingest_drops = d(&s1.drops, ingest_port).saturating_sub(d(&s0.drops, ingest_port));
    let rx_drops: u64 = rx_ports
        .iter()
        .map(|&p| d(&s1.drops, p).saturating_sub(d(&s0.drops, p)))
        .sum();
    let hist: Vec<u64> = s1
        .delays
        .iter()
        .zip(&s0.delays)
        .map(|(a, b)| a - b)
        .collect();
    let total: u64 = hist.iter().sum();
    let pct = |q: f64| {
        let want = (total as f64 * q).ceil() as u64;
        let mut acc = 0;
        hist.iter()
            .position(|&c| {
                acc += c;
                acc >= want.max(1)
            })
            .unwrap_or(0)
    };
    let (p50, p99, max) = (
        pct(0.5),
        pct(0.99),
        hist.iter().rposition(|&c| c > 0).unwrap_or(0),
    );
    println!(
        "{label:>8} N={n:<4} in={in_pps:>7.0}/s fwd={fwd_pps:>8.0}/s loss={loss:>5.1}% delay_ms p50={p50} p99={p99} max={max} \
         worker_cpu={wcpu:>5.1}% runq_wait={wait:>5.1}% sleeps={sleeps:>5.0}/s ksoftirqd={ksirq:>5.1}% core_busy={core_busy:>5.1}% steal={steal:>4.1}% \
         ingest_drops={:>6.0}/s rx_drops={:>6.0}/s backlog_drops={:>6.0}/s",
        ingest_drops as f64 / secs,
        rx_drops as f64 / secs,
        (s1.softnet - s0.softnet) as f64 / secs,
    );
    for l in metrics.lines() {
        if l.starts_with("ferrosfu_worker_socket_drops_total")
            || l.starts_with("ferrosfu_worker_udp_datagrams_total")
        {
            println!("{label:>8} N={n:<4}   {l}");
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = parse_args();
    if let Some(n) = a.nice {
        // Nice values only weigh within an autogroup (a session): give this tool, the supervisor
        // and its worker a session of their own and weigh it against the machine's other work.
        let _ = nix::unistd::setsid();
        if let Err(e) = std::fs::write("/proc/self/autogroup", n.to_string()) {
            eprintln!("/proc/self/autogroup: {e}");
        }
    }
    println!(
        "# plain_overload: rate={} pkt/s size={} B warmup={:?} window={:?} worker_core={} gen_core={} nice={:?}",
        a.rate, a.size, a.warmup, a.window, a.worker_core, a.gen_core, a.nice
    );
    for &n in &a.ns {
        for (label, path) in &a.workers {
            run_one(&a, n, label, path.as_ref()).await;
        }
    }
}
