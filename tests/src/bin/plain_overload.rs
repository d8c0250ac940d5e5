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
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferrosfu_tests::{
    SupervisorProcess, consume_plain, create_plain_transport, get_json, plain_opus_publisher,
    post_json,
};
use nix::libc;
use serde_json::json;

const SSRC: u32 = 0x1111_2222;
const PT: u8 = 100;

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

fn pin(core: usize, nice: Option<i32>) {
    let mut set = nix::sched::CpuSet::new();
    set.set(core).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
    if let Some(n) = nice {
        renice(0, n);
    }
}

/// Sets the nice value of a thread or process (`0`: the calling thread).
fn renice(tid: u32, nice: i32) {
    // SAFETY: setpriority has no memory preconditions.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as _, nice) };
    if r != 0 {
        eprintln!(
            "setpriority({tid}, {nice}): {}",
            std::io::Error::last_os_error()
        );
    }
}

/// utime + stime of a process, in clock ticks.
fn proc_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // After ")": state(0) ppid(1) ... utime(11) stime(12)
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// (ns on a CPU, ns runnable but waiting for one, voluntary context switches) of a process's
/// main thread: a worker that is behind yet not on its CPU is either preempted (wait) or asleep
/// (switches).
fn sched(pid: u32) -> (u64, u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let mut f = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
    let (run, wait) = (f.next().unwrap_or(0), f.next().unwrap_or(0));
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let vol = st
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (run, wait, vol)
}

/// (busy, total, steal) ticks of one CPU from /proc/stat; busy includes irq and softirq, steal
/// is the time a hypervisor ran something else.
fn cpu_ticks(core: usize) -> (u64, u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{core}");
    for l in s.lines() {
        let mut w = l.split_whitespace();
        if w.next() == Some(name.as_str()) {
            let v: Vec<u64> = w.map(|x| x.parse().unwrap_or(0)).collect();
            // user nice system idle iowait irq softirq steal
            let busy = v[0] + v[1] + v[2] + v[5] + v[6];
            let total: u64 = v.iter().take(8).sum();
            return (busy, total, v[7]);
        }
    }
    (0, 0, 0)
}

/// Kernel drop counters of the UDP sockets bound to loopback ports (/proc/net/udp).
fn udp_drops() -> HashMap<u16, u64> {
    let s = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let mut m = HashMap::new();
    for l in s.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(local), Some(drops)) = (f.get(1), f.last()) else {
            continue;
        };
        let port = local
            .split_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        if let (Some(p), Ok(d)) = (port, drops.parse::<u64>()) {
            *m.entry(p).or_default() += d;
        }
    }
    m
}

/// Packets dropped because a CPU's input backlog was full (/proc/net/softnet_stat, all CPUs):
/// loopback delivery goes through it.
fn softnet_drops() -> u64 {
    let s = std::fs::read_to_string("/proc/net/softnet_stat").unwrap_or_default();
    s.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|d| u64::from_str_radix(d, 16).ok())
        .sum()
}

/// The pid of `[ksoftirqd/<core>]`, which runs the softirqs deferred from that core.
fn ksoftirqd(core: usize) -> Option<u32> {
    let want = format!("ksoftirqd/{core}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == want).then_some(pid)
    })
}

fn worker_pid(supervisor: u32) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if head.contains("ferrosfu-worke") && ppid == Some(supervisor) {
            return Some(pid);
        }
    }
    None
}

/// Paces `rate` packets/s to `to` until `stop`; counts what it sent. Each packet ends with its
/// send time (ns since `epoch`), for the receivers' delay histogram.
fn generator(
    to: SocketAddr,
    (rate, size): (u64, usize),
    epoch: Instant,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut pkt = vec![0u8; size];
    pkt[0] = 0x80;
    pkt[1] = PT;
    pkt[8..12].copy_from_slice(&SSRC.to_be_bytes());
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = start + period * (n as u32);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        pkt[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        pkt[4..8].copy_from_slice(&((n as u32).wrapping_mul(960)).to_be_bytes());
        let t = epoch.elapsed().as_nanos() as u64;
        pkt[size - 8..].copy_from_slice(&t.to_be_bytes());
        if sock.send_to(&pkt, to).is_ok() {
            sent.fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
    }
}

/// Delay histogram: 1 ms buckets, the last one for everything later.
const DELAY_BUCKETS: usize = 10_000;

/// Sweeps the receivers with `recvmmsg` until `stop`; counts RTP (not RTCP) per socket and
/// histograms its delay since the generator sent it.
fn receiver(
    socks: Vec<UdpSocket>,
    counts: Arc<Vec<AtomicU64>>,
    (epoch, delays): (Instant, Arc<Vec<AtomicU64>>),
    stop: Arc<AtomicBool>,
) {
    const BATCH: usize = 64;
    const LEN: usize = 2048;
    let mut bufs = vec![[0u8; LEN]; BATCH];
    while !stop.load(Ordering::Relaxed) {
        let sweep = Instant::now();
        for (i, s) in socks.iter().enumerate() {
            loop {
                // SAFETY: plain C structs; all-zero is valid.
                let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
                // SAFETY: as above.
                let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
                for (k, b) in bufs.iter_mut().enumerate() {
                    iovs[k].iov_base = b.as_mut_ptr().cast();
                    iovs[k].iov_len = LEN;
                    hdrs[k].msg_hdr.msg_iov = &mut iovs[k];
                    hdrs[k].msg_hdr.msg_iovlen = 1;
                }
                // SAFETY: the headers point at live buffers of LEN bytes.
                let r = unsafe {
                    libc::recvmmsg(
                        s.as_raw_fd(),
                        hdrs.as_mut_ptr(),
                        BATCH as _,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                if r <= 0 {
                    break;
                }
                let r = r as usize;
                let now = epoch.elapsed().as_nanos() as u64;
                let mut rtp = 0;
                for k in 0..r {
                    let len = hdrs[k].msg_len as usize;
                    if len < 20 || (200..=206).contains(&bufs[k][1]) {
                        continue;
                    }
                    rtp += 1;
                    let mut t = [0u8; 8];
                    t.copy_from_slice(&bufs[k][len - 8..len]);
                    let ms = now.saturating_sub(u64::from_be_bytes(t)) / 1_000_000;
                    delays[(ms as usize).min(DELAY_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
                }
                counts[i].fetch_add(rtp as u64, Ordering::Relaxed);
                if r < BATCH {
                    break;
                }
            }
        }
        let spent = sweep.elapsed();
        if spent < Duration::from_millis(5) {
            std::thread::sleep(Duration::from_millis(5) - spent);
        }
    }
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
        pid = worker_pid(sup.child.id());
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
