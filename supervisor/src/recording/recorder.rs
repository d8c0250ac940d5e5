//! One `gst-launch-1.0 -e` child: spawned pinned to the recording cores in its own process
//! group (a terminal's Ctrl-C does not reach it), with `PR_SET_PDEATHSIG(SIGINT)` so that even
//! a supervisor killed outright leaves a finalized file behind. Stopped with SIGINT (EOS, the
//! muxer writes its index); SIGTERM or SIGKILL would leave an unfinalized file.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Lines of the child's output kept for error reports.
const TAIL_LINES: usize = 20;

/// The last lines the child printed (stdout and stderr interleaved).
#[derive(Clone, Debug, Default)]
pub(crate) struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: String) {
        let mut t = self.0.lock().expect("never held across a panic");
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }

    pub(crate) fn text(&self) -> String {
        let t = self.0.lock().expect("never held across a panic");
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

#[derive(Debug)]
pub(crate) struct Recorder {
    child: Child,
    pid: u32,
    tail: Tail,
}

impl Recorder {
    pub(crate) fn spawn(program: &Path, args: &[String], cores: &[u32]) -> std::io::Result<Self> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut set = nix::sched::CpuSet::new();
        for &c in cores {
            set.set(c as usize).map_err(std::io::Error::from)?;
        }
        let pin = !cores.is_empty();
        // SAFETY: the closure runs in the forked child before exec; it only makes two
        // async-signal-safe system calls (prctl, sched_setaffinity) on values prepared before
        // the fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if pin {
                    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
                        .map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or(0);
        let tail = Tail::default();
        if let Some(out) = child.stdout.take() {
            collect(out, tail.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, tail.clone());
        }
        Ok(Self { child, pid, tail })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn tail(&self) -> &Tail {
        &self.tail
    }

    /// Resolves when the child exits.
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// SIGINT (end of stream), then waits at most `timeout`; a child still running then is
    /// killed and `Err` says so.
    pub(crate) async fn stop(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(status);
        }
        let pid = i32::try_from(self.pid).map_err(|_| "no pid".to_owned())?;
        let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!(
                    "the recorder did not finish within {} s of SIGINT and was killed",
                    timeout.as_secs()
                ))
            }
        }
    }
}

fn collect<R: AsyncRead + Unpin + Send + 'static>(r: R, tail: Tail) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(target: "recording", "gst: {line}");
            tail.push(line);
        }
    });
}

/// Whether every one of `ports` is bound by some UDP socket on 127.0.0.1 (or the wildcard),
/// read from /proc/net/udp: the recorder listens once its udpsrc elements are bound.
pub(crate) fn udp_ports_bound(ports: &[u16]) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/udp") else {
        return false;
    };
    let bound: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let local = l.split_whitespace().nth(1)?;
            let (ip, port) = local.split_once(':')?;
            (ip == "0100007F" || ip == "00000000")
                .then(|| u16::from_str_radix(port, 16).ok())
                .flatten()
        })
        .collect();
    ports.iter().all(|p| bound.contains(p))
}

/// Whether `port` can be bound on 127.0.0.1 right now (nobody holds it).
pub(crate) fn udp_port_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_ports_are_seen() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = s.local_addr().expect("addr").port();
        assert!(udp_ports_bound(&[port]));
        assert!(!udp_port_free(port));
        drop(s);
        assert!(!udp_ports_bound(&[port]));
        assert!(udp_port_free(port));
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let t = Tail::default();
        for i in 0..30 {
            t.push(format!("line {i}"));
        }
        let text = t.text();
        assert!(text.starts_with("line 10\n"));
        assert!(text.ends_with("line 29"));
    }
}
