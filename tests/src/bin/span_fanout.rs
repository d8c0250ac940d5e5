//! `span_fanout`: a 1 → N plain-RTP fan-out larger than one worker can carry, served by one
//! worker and then by two with the room spanning both (issue 15).
//!
//! Each run starts a supervisor with `--worker-cores 1` (one worker) or `--worker-cores 0,1`
//! (two), `--worker-max-load` set, and puts every worker process in a CPU cgroup of its own capped
//! at `--quota` of a core (cgroup v1 `cpu.cfs_quota_us` over a 10 ms period, or v2 `cpu.max`):
//! on a 2-core machine that also has to run this tool's generator and receivers, the cap is what
//! makes "more than one worker can carry" reachable with both workers and the tool on the
//! machine at once. The workers' CPU is measured as usual (rusage), so placement sees a capped
//! worker fill up exactly as it would see a whole core fill up.
//!
//! The REST broadcaster API makes the room: a broadcaster "pub" with a comedia plain transport
//! and an Opus producer fed `--rate` packets/s of `--size` bytes, then broadcasters "sub-0",
//! "sub-1"… joining one at a time, `--join-gap` s apart (viewers arriving; the placement's CPU
//! window needs time to see each one), each with `--per-peer` comedia plain transports consuming
//! the producer, until N consumers exist. Each viewer is placed on the room's least-loaded router;
//! past the load limit the room gets a router on the other worker and the producer is piped to it.
//! After `--warmup` s it measures for `--window` s: forwarded packets against rate × N (loss),
//! generator → receiver delay, each worker's CPU and throttled time, and each worker's consumers
//! as `/api/workers` reports them. One line per (run, configuration) on stdout.
//!
//! ```text
//! cargo build --release -p ferrosfu-worker && cargo build -p ferrosfu -p ferrosfu-tests --bin span_fanout
//! target/debug/span_fanout --worker-bin target/release/ferrosfu-worker --n 160 --runs 3
//! ```
//!
//! Needs root (cgroups). Uses only loopback.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // a measurement tool

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferrosfu_tests::plain_load::{
    DELAY_BUCKETS, PT, SSRC, Window, clock_ticks, generator, proc_ticks, receiver, worker_pids,
};
use ferrosfu_tests::{
    SupervisorProcess, consume_plain, create_plain_transport, get_json, plain_opus_publisher,
    post_json,
};
use serde_json::json;

struct Args {
    n: usize,
    per_peer: usize,
    rate: u64,
    size: usize,
    quota: f64,
    max_load: Option<f64>,
    join_gap: Duration,
    warmup: Duration,
    window: Duration,
    runs: usize,
    worker_bin: Option<PathBuf>,
    ports: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        n: 160,
        per_peer: 10,
        rate: 1000,
        size: 1200,
        quota: 0.25,
        max_load: None,
        join_gap: Duration::from_secs(2),
        warmup: Duration::from_secs(5),
        window: Duration::from_secs(10),
        runs: 1,
        worker_bin: None,
        ports: "27000-27999".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--n" => a.n = v().parse().unwrap(),
            "--per-peer" => a.per_peer = v().parse().unwrap(),
            "--rate" => a.rate = v().parse().unwrap(),
            "--size" => a.size = v().parse().unwrap(),
            "--quota" => a.quota = v().parse().unwrap(),
            "--max-load" => a.max_load = Some(v().parse().unwrap()),
            "--join-gap" => a.join_gap = Duration::from_secs_f64(v().parse().unwrap()),
            "--warmup" => a.warmup = Duration::from_secs_f64(v().parse().unwrap()),
            "--window" => a.window = Duration::from_secs_f64(v().parse().unwrap()),
            "--runs" => a.runs = v().parse().unwrap(),
            "--worker-bin" => {
                a.worker_bin = Some(std::fs::canonicalize(v()).expect("--worker-bin exists"))
            }
            "--ports" => a.ports = v(),
            _ => panic!("unknown argument {k}"),
        }
    }
    a
}

/// A CPU cgroup holding one worker, capped at a share of a core; removed on drop.
struct Capped {
    dir: PathBuf,
}

impl Capped {
    const PERIOD_US: u64 = 10_000;

    fn new(pid: u32, share: f64) -> Capped {
        let quota = (share * Self::PERIOD_US as f64).round() as u64;
        let v1 = PathBuf::from("/sys/fs/cgroup/cpu");
        let dir = if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(format!("ferrosfu-span-{pid}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpu.cfs_period_us"), Self::PERIOD_US.to_string()).unwrap();
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()).unwrap();
            dir
        } else {
            let dir = PathBuf::from(format!("/sys/fs/cgroup/ferrosfu-span-{pid}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpu.max"), format!("{quota} {}", Self::PERIOD_US)).unwrap();
            dir
        };
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("move worker {pid} into {}: {e}", dir.display()));
        Capped { dir }
    }

    /// Time its processes were throttled (ns).
    fn throttled_ns(&self) -> u64 {
        let s = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        s.lines()
            .find_map(|l| {
                l.strip_prefix("throttled_time ")
                    .map(|v| v.trim().parse().unwrap_or(0))
                    .or_else(|| {
                        l.strip_prefix("throttled_usec ")
                            .map(|v| v.trim().parse::<u64>().unwrap_or(0) * 1000)
                    })
            })
            .unwrap_or(0)
    }
}

impl Drop for Capped {
    fn drop(&mut self) {
        // Move whatever is left back to the root, then remove the group.
        let root = self.dir.parent().unwrap().join("cgroup.procs");
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for p in procs.lines() {
                let _ = std::fs::write(&root, p);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// What one configuration measured.
struct Outcome {
    in_pps: f64,
    fwd_pps: f64,
    loss: f64,
    p50: usize,
    p99: usize,
    max: usize,
    /// Per worker: (core, consumers, CPU % of a core, throttled % of the window).
    workers: Vec<(u64, u64, f64, f64)>,
}

async fn run_one(a: &Args, cores: &str, max_load: f64) -> Outcome {
    let max_load_s = max_load.to_string();
    let mut args = vec![
        "--worker-cores",
        cores,
        "--rtc-ports",
        &a.ports,
        "--rtc-listen-ip",
        "127.0.0.1",
        "--webrtc-server-port",
        "0",
        "--worker-max-load",
        &max_load_s,
        "--dev",
    ];
    let wb;
    if let Some(w) = &a.worker_bin {
        wb = w.to_string_lossy().into_owned();
        args.extend(["--worker-bin", &wb]);
    }
    let sup = SupervisorProcess::start(&args);
    let want = cores.split(',').count();
    let mut pids = Vec::new();
    for _ in 0..200 {
        pids = worker_pids(sup.child.id());
        if pids.len() == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pids.len(), want, "the workers are running");
    let caps: Vec<Capped> = pids.iter().map(|&p| Capped::new(p, a.quota)).collect();

    let http = reqwest::Client::new();
    let room = "span";
    let base = sup.url(&format!("/rooms/{room}/broadcasters"));
    let rtp_caps = get_json(&http, &sup.url(&format!("/rooms/{room}"))).await;
    let (ingest, producer) = plain_opus_publisher(&http, &base, "span_fanout", PT, SSRC).await;

    // Every receiver socket exists from the start; each is latched when its consumer exists.
    let socks: Vec<UdpSocket> = (0..a.n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
            s
        })
        .collect();
    let latchers: Vec<UdpSocket> = socks.iter().map(|s| s.try_clone().unwrap()).collect();
    let sent = Arc::new(AtomicU64::new(0));
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..a.n).map(|_| AtomicU64::new(0)).collect());
    let delays: Arc<Vec<AtomicU64>> =
        Arc::new((0..DELAY_BUCKETS).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (rate, size) = (a.rate, a.size);
    let g = {
        let (sent, stop) = (sent.clone(), stop.clone());
        std::thread::spawn(move || generator(ingest, (rate, size), epoch, sent, stop))
    };
    let r = {
        let (counts, delays, stop) = (counts.clone(), delays.clone(), stop.clone());
        std::thread::spawn(move || receiver(socks, counts, (epoch, delays), stop))
    };

    // Viewers arrive one broadcaster at a time, media flowing.
    for (peer, chunk) in latchers.chunks(a.per_peer).enumerate() {
        let id = format!("sub-{peer}");
        post_json(
            &http,
            &base,
            json!({"id": id, "displayName": id, "device": {"name": "span_fanout"}, "rtpCapabilities": rtp_caps}),
        )
        .await;
        for (k, s) in chunk.iter().enumerate() {
            let t = create_plain_transport(&http, &base, &id, true).await;
            let port = t["port"].as_u64().unwrap() as u16;
            consume_plain(&http, &base, &id, t["id"].as_str().unwrap(), &producer).await;
            // An empty receiver report latches the comedia transport to this socket.
            let mut rr = [0x80, 201, 0, 1, 0, 0, 0, 0];
            rr[4..8]
                .copy_from_slice(&(0x5000_0000u32 + (peer * a.per_peer + k) as u32).to_be_bytes());
            s.send_to(&rr, SocketAddr::from(([127, 0, 0, 1], port)))
                .unwrap();
        }
        tokio::time::sleep(a.join_gap).await;
    }
    tokio::time::sleep(a.warmup).await;

    let hz = clock_ticks();
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
            pids.iter().map(|&p| proc_ticks(p)).collect::<Vec<_>>(),
            caps.iter().map(Capped::throttled_ns).collect::<Vec<_>>(),
        )
    };
    let s0 = snap();
    tokio::time::sleep(a.window).await;
    let s1 = snap();
    let workers = get_json(&http, &sup.admin_url("/api/workers")).await;
    stop.store(true, Ordering::Relaxed);
    g.join().unwrap();
    r.join().unwrap();
    drop(sup);
    drop(caps);

    let w = Window::new(
        a.n,
        (s0.0, s1.0),
        (s0.1, s1.1),
        (s0.2, s1.2),
        (&s0.3, &s1.3),
    );
    let secs = w.secs;
    let list = workers.as_array().cloned().unwrap_or_default();
    let per_worker = pids
        .iter()
        .enumerate()
        .map(|(i, &pid)| {
            let w = list
                .iter()
                .find(|w| w["pid"].as_u64() == Some(u64::from(pid)));
            let core = w.and_then(|w| w["core"].as_u64()).unwrap_or(u64::MAX);
            let consumers = w.and_then(|w| w["load"]["consumers"].as_u64()).unwrap_or(0);
            let cpu = 100.0 * (s1.4[i] - s0.4[i]) as f64 / hz / secs;
            let throttled = 100.0 * (s1.5[i] - s0.5[i]) as f64 / 1e9 / secs;
            (core, consumers, cpu, throttled)
        })
        .collect();
    Outcome {
        in_pps: w.in_pps,
        fwd_pps: w.fwd_pps,
        loss: w.loss,
        p50: w.percentile(0.5),
        p99: w.percentile(0.99),
        max: w.max(),
        workers: per_worker,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = parse_args();
    let max_load = a
        .max_load
        .unwrap_or((0.8 * a.quota * 1000.0).round() / 1000.0);
    println!(
        "# span_fanout: N={} per_peer={} rate={} pkt/s size={} B quota={} core per worker \
         worker_max_load={max_load:.3} join_gap={:?} warmup={:?} window={:?}",
        a.n, a.per_peer, a.rate, a.size, a.quota, a.join_gap, a.warmup, a.window
    );
    for run in 1..=a.runs {
        for (label, cores) in [("one", "1"), ("two", "0,1")] {
            let o = run_one(&a, cores, max_load).await;
            let workers: Vec<String> = o
                .workers
                .iter()
                .map(|(core, consumers, cpu, thr)| {
                    format!("core{core}:{consumers}c/{cpu:.1}%cpu/{thr:.1}%throttled")
                })
                .collect();
            println!(
                "run={run} workers={label} N={} in={:.0}/s fwd={:.0}/s loss={:.2}% delay_ms p50={} p99={} max={} [{}]",
                a.n,
                o.in_pps,
                o.fwd_pps,
                o.loss,
                o.p50,
                o.p99,
                o.max,
                workers.join(" ")
            );
        }
    }
}
