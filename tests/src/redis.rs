//! A real Redis server for tests: `redis-server` (Debian package `redis-server`) on a free
//! loopback port, in a temp dir, without persistence, with a password. Nothing is installed as
//! a service; the server lives as long as the value (killed on drop). A missing `redis-server`
//! is an error, never a skipped test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// The password every test server requires.
pub const PASSWORD: &str = "pw";
/// How long starting and answering the first PING may take.
const DEADLINE: Duration = Duration::from_secs(20);
/// Attempts to find a port nobody takes between choosing it and the server binding it.
const PORT_ATTEMPTS: usize = 5;

/// A `redis-server` child. Killed (SIGKILL) and its dir removed on drop.
#[derive(Debug)]
pub struct RedisServer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// A `ferrosfu` node of a cluster on `redis` (heartbeat 300 ms): id `id`, workers on `core`,
/// RTC (and pipe) ports `rtc_ports` on 127.0.0.1, no WebRtcServer; `extra` arguments follow.
pub fn cluster_node(
    redis: &RedisServer,
    id: &str,
    core: &str,
    rtc_ports: &str,
    extra: &[&str],
) -> crate::SupervisorProcess {
    let url = redis.url();
    let mut args = vec![
        "--worker-cores",
        core,
        "--rtc-ports",
        rtc_ports,
        "--rtc-listen-ip",
        "127.0.0.1",
        "--webrtc-server-port",
        "0",
        "--cluster-redis-url",
        &url,
        "--cluster-node-id",
        id,
        "--cluster-heartbeat-ms",
        "300",
    ];
    args.extend_from_slice(extra);
    crate::SupervisorProcess::start(&args)
}

impl RedisServer {
    /// Starts on a free 127.0.0.1 port; returns once it answers PING.
    pub fn start() -> anyhow::Result<RedisServer> {
        let dir = make_temp_dir("redis")?;
        let mut server = RedisServer {
            dir,
            port: 0,
            child: None,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) if attempt < PORT_ATTEMPTS && server.log_tail().contains("Address") => {
                    eprintln!("redis: port {} taken, trying another: {e:#}", server.port);
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://:pw@127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    /// The URL with another password (for refusal tests).
    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL: clients see the connection drop, no data is kept).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port; returns once it answers PING.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        // The port is free again once the old process is gone; a TIME_WAIT does not stop a
        // listener (redis sets SO_REUSEADDR).
        self.spawn()
    }

    /// Runs one command over a fresh connection (RESP, authenticated) and returns the raw reply
    /// line(s), e.g. for inspecting keys from a test.
    pub fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))
            .with_context(|| format!("connect to redis on port {}", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut req = resp(&["AUTH", PASSWORD]);
        req.extend(resp(args));
        s.write_all(&req)?;
        let mut reader = BufReader::new(s);
        let mut auth = String::new();
        reader.read_line(&mut auth)?;
        if !auth.starts_with("+OK") {
            bail!("AUTH: {auth}");
        }
        read_reply(&mut reader)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.log_path()).context("create redis log")?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--requirepass", PASSWORD])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context(
                "spawn redis-server (Debian package redis-server; scripts/setup installs it)",
            )?;
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(pong) = self.command(&["PING"]) {
                if pong.starts_with("+PONG") {
                    return Ok(());
                }
            }
            if let Some(child) = &mut self.child {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!("redis-server exited ({status}); log:\n{}", self.log_tail());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                bail!(
                    "redis-server on port {} did not answer PING in {DEADLINE:?}; log:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(2000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n{a}\r\n", a.len()).into_bytes());
    }
    out
}

/// One RESP2 reply, flattened to text (arrays: one element a line).
fn read_reply(r: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    match line.as_bytes().first() {
        Some(b'$') => {
            let n: i64 = line[1..].trim().parse()?;
            if n < 0 {
                return Ok("(nil)".into());
            }
            let mut buf = vec![0; n as usize + 2];
            r.read_exact(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
        }
        Some(b'*') => {
            let n: i64 = line[1..].trim().parse()?;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                items.push(read_reply(r)?);
            }
            Ok(items.join("\n"))
        }
        Some(_) => Ok(line.trim_end().to_owned()),
        None => bail!("redis closed the connection"),
    }
}

/// A port free on 127.0.0.1 right now.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A fresh directory `ferrosfu-WHAT-…` under the system temp dir.
pub(crate) fn make_temp_dir(what: &str) -> anyhow::Result<PathBuf> {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "ferrosfu-{what}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}
