//! What the plain-RTP load tools (`plain_overload`, `span_fanout`) share: a paced RTP generator
//! stamping each packet with its send time, a `recvmmsg` receiver sweeping many sockets into
//! per-socket counts and a delay histogram, and readings of /proc (process and core CPU,
//! scheduler waits, kernel UDP drops, softnet backlog drops, a supervisor's worker pids).

#![allow(clippy::unwrap_used, clippy::print_stderr)] // measurement tools: a panic is the report

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::libc;

/// The generator's SSRC and payload type.
pub const SSRC: u32 = 0x1111_2222;
pub const PT: u8 = 100;

pub fn pin(core: usize, nice: Option<i32>) {
    let mut set = nix::sched::CpuSet::new();
    set.set(core).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
    if let Some(n) = nice {
        renice(0, n);
    }
}

/// Sets the nice value of a thread or process (`0`: the calling thread).
pub fn renice(tid: u32, nice: i32) {
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
pub fn proc_ticks(pid: u32) -> u64 {
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
pub fn sched(pid: u32) -> (u64, u64, u64) {
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
pub fn cpu_ticks(core: usize) -> (u64, u64, u64) {
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
pub fn udp_drops() -> HashMap<u16, u64> {
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
pub fn softnet_drops() -> u64 {
    let s = std::fs::read_to_string("/proc/net/softnet_stat").unwrap_or_default();
    s.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|d| u64::from_str_radix(d, 16).ok())
        .sum()
}

/// The pid of `[ksoftirqd/<core>]`, which runs the softirqs deferred from that core.
pub fn ksoftirqd(core: usize) -> Option<u32> {
    let want = format!("ksoftirqd/{core}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == want).then_some(pid)
    })
}

/// The pids of the `ferrosfu-worker` children of `supervisor`, lowest first.
pub fn worker_pids(supervisor: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, rest) = stat.rsplit_once(')')?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (head.contains("ferrosfu-worke") && ppid == supervisor).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Paces `rate` packets/s to `to` until `stop`; counts what it sent. Each packet ends with its
/// send time (ns since `epoch`), for the receivers' delay histogram.
pub fn generator(
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
pub const DELAY_BUCKETS: usize = 10_000;

/// The RTP packet (not RTCP) in a datagram: the datagram itself, or the payload of a TURN
/// ChannelData frame (first two bits 01, RFC 7983) for a receiver behind a relay; None for
/// RTCP, STUN (first byte 0-3) and anything shorter than an RTP header with a timestamp.
pub fn rtp_of(d: &[u8]) -> Option<&[u8]> {
    let p = match d.first()? {
        0x40..=0x7f => {
            let len = usize::from(u16::from_be_bytes([*d.get(2)?, *d.get(3)?]));
            d.get(4..4 + len)?
        }
        0x80..=0xbf => d,
        _ => return None,
    };
    (p.len() >= 20 && !(200..=206).contains(&p[1])).then_some(p)
}

/// Sweeps the receivers with `recvmmsg` until `stop`; counts RTP (not RTCP) per socket, bare or
/// in TURN ChannelData, and histograms its delay since the generator sent it.
pub fn receiver(
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
                    let Some(p) = rtp_of(&bufs[k][..hdrs[k].msg_len as usize]) else {
                        continue;
                    };
                    rtp += 1;
                    let mut t = [0u8; 8];
                    t.copy_from_slice(&p[p.len() - 8..]);
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

/// Clock ticks per second (the unit of [`proc_ticks`]).
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// A measurement window of a 1 → `fanout` plain fan-out, from two readings of the generator's
/// sent count, the receivers' total count and the delay histogram (1 ms buckets).
#[derive(Debug)]
pub struct Window {
    pub secs: f64,
    pub in_pps: f64,
    pub fwd_pps: f64,
    /// % of the `fanout` copies of every packet sent that did not arrive.
    pub loss: f64,
    /// Delays seen in the window, per 1 ms bucket.
    pub hist: Vec<u64>,
}

impl Window {
    pub fn new(
        fanout: usize,
        at: (Instant, Instant),
        sent: (u64, u64),
        received: (u64, u64),
        hist: (&[u64], &[u64]),
    ) -> Self {
        let secs = at.1.duration_since(at.0).as_secs_f64();
        let in_pps = (sent.1 - sent.0) as f64 / secs;
        let fwd_pps = (received.1 - received.0) as f64 / secs;
        let expected = in_pps * fanout as f64;
        let loss = if expected > 0.0 {
            100.0 * (1.0 - fwd_pps / expected)
        } else {
            0.0
        };
        let hist = hist.1.iter().zip(hist.0).map(|(x, y)| x - y).collect();
        Window {
            secs,
            in_pps,
            fwd_pps,
            loss,
            hist,
        }
    }

    /// The delay (ms) under which a share `q` of the window's packets arrived.
    pub fn percentile(&self, q: f64) -> usize {
        let total: u64 = self.hist.iter().sum();
        let want = ((total as f64 * q).ceil() as u64).max(1);
        let mut acc = 0;
        self.hist
            .iter()
            .position(|&c| {
                acc += c;
                acc >= want
            })
            .unwrap_or(0)
    }

    /// The largest delay (ms) seen in the window.
    pub fn max(&self) -> usize {
        self.hist.iter().rposition(|&c| c > 0).unwrap_or(0)
    }
}
