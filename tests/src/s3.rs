//! A real S3-compatible server for tests: moto in server mode (PyPI `moto[s3]`, installed into
//! `.cache/moto` by `scripts/setup-s3`) on a free loopback port, state in memory. It speaks the
//! S3 REST protocol over HTTP like MinIO or AWS (SigV4 headers are accepted, not checked).
//! Killed on drop. A missing moto is an error, never a skipped test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::redis::{free_port, make_temp_dir};

/// Keys the tests give the supervisor (moto takes any).
pub const ACCESS_KEY_ID: &str = "AKIAFERROSFUTEST";
pub const SECRET_ACCESS_KEY: &str = "ferrosfu-test-secret-never-logged";
/// How long starting may take (a Python process importing Flask and boto).
const DEADLINE: Duration = Duration::from_secs(60);

/// A `moto_server` child.
#[derive(Debug)]
pub struct S3Server {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// `.cache/moto/bin/moto_server` of the workspace (or `FERROSFU_MOTO_SERVER`).
fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("FERROSFU_MOTO_SERVER") {
        return p.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/moto/bin/moto_server")
}

impl S3Server {
    /// Starts on a free 127.0.0.1 port with `bucket` created; returns once it answers.
    pub fn start(bucket: &str) -> anyhow::Result<S3Server> {
        let mut s = S3Server {
            dir: make_temp_dir("s3")?,
            port: free_port()?,
            child: None,
        };
        s.spawn()?;
        s.create_bucket(bucket)?;
        Ok(s)
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (clients see refused connections; its objects are gone).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port, with `bucket` created.
    pub fn restart(&mut self, bucket: &str) -> anyhow::Result<()> {
        self.kill();
        self.spawn()?;
        self.create_bucket(bucket)
    }

    pub fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let (status, body) = self.request("PUT", &format!("/{bucket}"))?;
        if status != 200 {
            bail!(
                "create bucket {bucket}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// The keys in the bucket (ListObjectsV2, first 1000).
    pub fn keys(&self, bucket: &str) -> anyhow::Result<Vec<String>> {
        let (status, body) = self.request("GET", &format!("/{bucket}?list-type=2"))?;
        if status != 200 {
            bail!("list {bucket}: HTTP {status}");
        }
        let text = String::from_utf8_lossy(&body);
        Ok(text
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect())
    }

    /// One HTTP/1.1 request with `Connection: close`: (status, body).
    fn request(&self, method: &str, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))
            .with_context(|| format!("connect to moto on port {}", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut r = BufReader::new(s);
        let mut status_line = String::new();
        r.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let mut chunked = false;
        let mut len = None;
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim(), 16).context("chunk size")?;
                if n == 0 {
                    break;
                }
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk)?;
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = len {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        } else {
            r.read_to_end(&mut body)?;
        }
        Ok((status, body))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.join("moto.log")).context("create moto log")?;
        let bin = moto_server();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {} (scripts/setup-s3 installs it)", bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if matches!(self.request("GET", "/"), Ok((200, _))) {
                return Ok(());
            }
            if let Some(child) = &mut self.child {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!("moto_server exited ({status}); log:\n{}", self.log_tail());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                bail!(
                    "moto_server on port {} did not answer in {DEADLINE:?}; log:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("moto.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
