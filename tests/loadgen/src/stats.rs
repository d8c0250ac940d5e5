//! Measurement plumbing: clocks, the latency histogram, /proc readers (CPU time and RSS of a
//! process, UDP counters), ferrosfu's workers from `/api/workers`, and the machine/commit stamp
//! of a results file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow};
use serde::Deserialize;

use crate::types::Machine;

/// CLOCK_REALTIME in ns (what the payload stamp and SO_TIMESTAMPNS use).
pub(crate) fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// CPU time of the calling thread.
pub(crate) fn thread_cpu() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// How long the calling thread waited on a run queue (field 2 of /proc/thread-self/schedstat).
pub(crate) fn thread_run_delay() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// CPU time of this process (all threads).
pub(crate) fn process_cpu() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a live timespec.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Latency histogram: 1 µs buckets up to 100 ms, one overflow bucket.
#[derive(Clone, Debug)]
pub(crate) struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

const HIST_BUCKETS: usize = 100_000;

impl Histogram {
    pub(crate) fn new() -> Histogram {
        Histogram {
            buckets: vec![0; HIST_BUCKETS + 1],
            count: 0,
            max: 0,
        }
    }

    pub(crate) fn record(&mut self, us: u64) {
        let i = (us as usize).min(HIST_BUCKETS);
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(us);
    }

    pub(crate) fn clear(&mut self) {
        if self.count > 0 {
            self.buckets.iter_mut().for_each(|b| *b = 0);
        }
        self.count = 0;
        self.max = 0;
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The `q` quantile in whole µs (the overflow bucket reads as 100 ms); 0 when empty.
    pub(crate) fn percentile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= rank {
                return i as f64;
            }
        }
        HIST_BUCKETS as f64
    }
}

/// CPU time (user + system, all threads, live and exited) and resident memory of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcSample {
    pub(crate) cpu: Duration,
    pub(crate) rss_bytes: u64,
}

fn clk_tck() -> u64 {
    // SAFETY: plain libc query.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Reads /proc/PID/stat (utime + stime, fields 14 and 15) and /proc/PID/status (VmRSS).
pub(crate) fn proc_sample(pid: u32) -> Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field N is f[N - 3].
    let ticks = |n: usize| -> Result<u64> {
        f.get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("/proc/{pid}/stat field {n}"))
    };
    let tck = clk_tck();
    let total = ticks(14)? + ticks(15)?;
    let cpu = Duration::from_nanos(total * 1_000_000_000 / tck);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(ProcSample {
        cpu,
        rss_bytes: rss_kib * 1024,
    })
}

/// The `Udp:` counters of /proc/net/snmp (per network namespace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UdpCounters {
    pub(crate) in_datagrams: u64,
    pub(crate) in_errors: u64,
    pub(crate) rcvbuf_errors: u64,
    pub(crate) sndbuf_errors: u64,
}

pub(crate) fn udp_counters() -> Result<UdpCounters> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").context("/proc/net/snmp")?;
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Err(anyhow!("no Udp: lines in /proc/net/snmp"));
    };
    let get = |name: &str| -> u64 {
        names
            .split_whitespace()
            .position(|n| n == name)
            .and_then(|i| values.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(UdpCounters {
        in_datagrams: get("InDatagrams"),
        in_errors: get("InErrors"),
        rcvbuf_errors: get("RcvbufErrors"),
        sndbuf_errors: get("SndbufErrors"),
    })
}

/// One ferrosfu worker, from `GET {url}/api/workers`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct WorkerInfo {
    pub(crate) pid: Option<u32>,
    pub(crate) core: u32,
}

pub(crate) async fn ferrosfu_workers(url: &str) -> Result<Vec<WorkerInfo>> {
    let u = format!("{}/api/workers", url.trim_end_matches('/'));
    let list: Vec<WorkerInfo> = reqwest::get(&u)
        .await
        .with_context(|| format!("GET {u}"))?
        .error_for_status()?
        .json()
        .await
        .with_context(|| format!("GET {u}: body"))?;
    Ok(list)
}

/// `uname -srm`, CPU model, cores, load average.
pub(crate) fn machine() -> Machine {
    // SAFETY: all-zero is a valid utsname; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: writes into a live utsname.
    let uname = if unsafe { libc::uname(&mut u) } == 0 {
        let s = |f: &[libc::c_char]| {
            let bytes: Vec<u8> = f
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        format!("{} {} {}", s(&u.sysname), s(&u.release), s(&u.machine))
    } else {
        String::new()
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    // Online cores of the machine (not this process's affinity: the generator is pinned).
    // SAFETY: plain libc query.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let cores = u32::try_from(online).unwrap_or(0);
    let loadavg_start = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned();
    Machine {
        uname,
        cpu_model,
        cores,
        loadavg_start,
    }
}

/// `FERROSFU_COMMIT`, else `git rev-parse --short HEAD` (+ "+dirty" when the tree has changes).
pub(crate) fn commit() -> String {
    if let Ok(c) = std::env::var("FERROSFU_COMMIT")
        && !c.is_empty()
    {
        return c;
    }
    let git = |repo: &str, args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    // The working directory's repository, else the one this generator was built from.
    for repo in [".", env!("CARGO_MANIFEST_DIR")] {
        if let Some(head) = git(repo, &["rev-parse", "--short", "HEAD"]) {
            let dirty = git(repo, &["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            return if dirty { format!("{head}+dirty") } else { head };
        }
    }
    "unknown".into()
}

/// Now as RFC 3339 UTC, seconds precision.
pub(crate) fn utc_now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = Histogram::new();
        assert_eq!(h.percentile(0.5), 0.0);
        for us in 0..1000 {
            h.record(us);
        }
        h.record(1_000_000);
        assert_eq!(h.count(), 1001);
        assert!((h.percentile(0.5) - 501.0).abs() <= 1.0);
        assert!((h.percentile(0.99) - 991.0).abs() <= 1.0);
        assert_eq!(h.percentile(1.0), 100_000.0, "overflow bucket");
        assert_eq!(h.max(), 1_000_000);
        h.clear();
        assert_eq!(h.count(), 0);
    }

    #[test]
    fn own_process_is_readable() {
        let s = proc_sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
        let udp = udp_counters().expect("/proc/net/snmp");
        let _ = udp.in_datagrams;
    }

    #[test]
    fn rfc3339_shape() {
        let s = utc_now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }
}
