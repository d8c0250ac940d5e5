//! Helpers for the end-to-end tests: locating the built binaries, starting the supervisor on a
//! free port and reading what it logs, its REST API. [`media`] sets up the typed media API's
//! tests against a worker process.

pub mod browser;
pub mod data_client;
pub mod media;
pub mod media_source;
pub mod opus_sender;
pub mod pg;
pub mod plain_load;
pub mod protoo;
pub mod redis;
pub mod room_peer;
pub mod rtc_client;
pub mod s3;
pub mod turn_client;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A binary of this workspace, built next to the test executable (`cargo test --workspace`
/// builds every binary before running tests).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    for dir in exe.ancestors().skip(1).take(2) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is not built next to {}: run `cargo build --workspace` first",
        exe.display()
    );
}

/// POSTs `body` as JSON and returns the JSON answer; panics (the test fails) unless it is a
/// success.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    success_json(
        &format!("POST {url}"),
        http.post(url).json(&body).send().await,
    )
    .await
}

/// GETs `url` and returns the JSON answer; panics (the test fails) unless it is a success.
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    success_json(&format!("GET {url}"), http.get(url).send().await).await
}

/// The JSON answer to `request` (e.g. "GET <url>"); panics unless it is a success.
async fn success_json(
    request: &str,
    answer: reqwest::Result<reqwest::Response>,
) -> serde_json::Value {
    let r = answer.unwrap_or_else(|e| panic!("{request}: {e}"));
    let status = r.status();
    let v = r.json().await.unwrap_or(serde_json::Value::Null);
    assert!(status.is_success(), "{request}: {status} {v}");
    v
}

/// A plain transport (rtcp-mux) of REST broadcaster `peer`: `POST {base}/{peer}/transports`,
/// `base` being a room's `/rooms/<room>/broadcasters`. With `comedia` it sends to where the
/// first packets come from. Returns the answer (`id`, `ip`, `port`).
pub async fn create_plain_transport(
    http: &reqwest::Client,
    base: &str,
    peer: &str,
    comedia: bool,
) -> serde_json::Value {
    post_json(
        http,
        &format!("{base}/{peer}/transports"),
        serde_json::json!({"type": "plain", "comedia": comedia, "rtcpMux": true}),
    )
    .await
}

/// A REST broadcaster that receives plain RTP, as a recorder would: `join` (the body of
/// `POST {base}`, `base` being a room's `/rooms/<room>/broadcasters`) joins it, then it gets a
/// plain transport (no comedia, rtcp-mux) connected to 127.0.0.1:`port`. Returns that transport's
/// id, for [`consume_plain`].
pub async fn join_plain_receiver(
    http: &reqwest::Client,
    base: &str,
    join: serde_json::Value,
    port: u16,
) -> String {
    let id = join["id"]
        .as_str()
        .expect("the join body has an id")
        .to_owned();
    post_json(http, base, join).await;
    let t = create_plain_transport(http, base, &id, false).await;
    let tid = t["id"].as_str().expect("transport id").to_owned();
    post_json(
        http,
        &format!("{base}/{id}/transports/{tid}/connect"),
        serde_json::json!({"ip": "127.0.0.1", "port": port}),
    )
    .await;
    tid
}

/// A REST broadcaster `pub` that publishes plain RTP, as GStreamer would: it joins (`device` its
/// device name) the room of `base` (`/rooms/<room>/broadcasters`), gets a comedia plain transport
/// (rtcp-mux) and on it an Opus producer with payload type `pt` and SSRC `ssrc`. Returns where to
/// send its RTP (on 127.0.0.1) and the producer's id.
pub async fn plain_opus_publisher(
    http: &reqwest::Client,
    base: &str,
    device: &str,
    pt: u8,
    ssrc: u32,
) -> (SocketAddr, String) {
    post_json(
        http,
        base,
        serde_json::json!({"id": "pub", "displayName": "pub", "device": {"name": device}}),
    )
    .await;
    let t = create_plain_transport(http, base, "pub", true).await;
    let port = t["port"].as_u64().expect("transport port");
    let p = post_json(
        http,
        &format!(
            "{base}/pub/transports/{}/producers",
            t["id"].as_str().expect("transport id")
        ),
        serde_json::json!({"kind": "audio", "rtpParameters": {
            "codecs": [{"mimeType": "audio/opus", "payloadType": pt, "clockRate": 48000, "channels": 2}],
            "encodings": [{"ssrc": ssrc}],
            "rtcp": {"cname": "pub"},
        }}),
    )
    .await;
    let ingest = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).expect("a port")));
    (ingest, p["id"].as_str().expect("producer id").to_owned())
}

/// REST broadcaster `peer` consumes `producer` on its plain transport `transport`
/// (`consume?producerId=`); returns the consumer's parameters.
pub async fn consume_plain(
    http: &reqwest::Client,
    base: &str,
    peer: &str,
    transport: &str,
    producer: &str,
) -> serde_json::Value {
    post_json(
        http,
        &format!("{base}/{peer}/transports/{transport}/consume?producerId={producer}"),
        serde_json::json!({}),
    )
    .await
}

/// Sends `r`; its status and JSON body (`null` when the body is not JSON). Panics when the
/// request cannot be sent.
pub async fn status_and_json(r: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let r = r.send().await.expect("send the request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// A bare `ferrosfu` command (not started) in `workdir`: dev mode, any HTTP port, one worker on
/// core 0 whose WebRtcServer listens on 127.0.0.1:`webrtc_server_port`; for tests that read its
/// output themselves. More arguments may follow.
pub fn supervisor_command(workdir: &std::path::Path, webrtc_server_port: u16) -> Command {
    let mut c = Command::new(bin("ferrosfu"));
    c.current_dir(workdir)
        .env("FERROSFU_ADMIN_LISTEN", "127.0.0.1:0")
        .args([
            "--dev",
            "--http-listen",
            "127.0.0.1:0",
            "--worker-cores",
            "0",
            "--rtc-listen-ip",
            "127.0.0.1",
            "--webrtc-server-port",
        ])
        .arg(webrtc_server_port.to_string());
    c
}

/// A supervisor child process started with `--log-format json` and `--http-listen 127.0.0.1:0`,
/// in a fresh working directory under the temp dir (so the default `data/` store and
/// `recordings/` land there, not in the source tree; removed on drop).
pub struct SupervisorProcess {
    pub child: Child,
    pub workdir: PathBuf,
    pub http: SocketAddr,
    /// The admin listener (`/metrics`, `/api/workers`, … without a token); None when off.
    pub admin: Option<SocketAddr>,
    /// Every stdout line, as it arrives (JSON log lines).
    pub lines: mpsc::Receiver<String>,
}

impl std::fmt::Debug for SupervisorProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorProcess")
            .field("pid", &self.child.id())
            .field("http", &self.http)
            .field("admin", &self.admin)
            .finish()
    }
}

impl SupervisorProcess {
    pub fn start(extra_args: &[&str]) -> SupervisorProcess {
        Self::start_wrapped(&[], extra_args)
    }

    /// [`SupervisorProcess::start`] with one worker, on core 0, whose transports listen on
    /// 127.0.0.1 with ports from `rtc_ports` (`first-last`, a range of the test's own so that
    /// tests running at once do not collide, and below 32768, Linux's ephemeral range, so that
    /// no client socket of another test holds one of them): its WebRtcServer on the first port of the range
    /// (unless `extra_args` give `--webrtc-server-port`), plain transports on the others;
    /// `extra_args` follow.
    pub fn start_on_loopback(rtc_ports: &str, extra_args: &[&str]) -> SupervisorProcess {
        let first = rtc_ports.split('-').next().unwrap_or(rtc_ports);
        let mut args = vec![
            "--worker-cores",
            "0",
            "--rtc-ports",
            rtc_ports,
            "--rtc-listen-ip",
            "127.0.0.1",
        ];
        if !extra_args.contains(&"--webrtc-server-port") {
            args.extend(["--webrtc-server-port", first]);
        }
        args.extend_from_slice(extra_args);
        Self::start(&args)
    }

    /// [`SupervisorProcess::start`] through `wrapper`, a command that ends by exec-ing its
    /// arguments (the supervisor and its arguments follow it), e.g. `unshare -m sh -c '…; exec
    /// "$@"' sh`: the child is then the supervisor itself.
    pub fn start_wrapped(wrapper: &[&str], extra_args: &[&str]) -> SupervisorProcess {
        Self::start_with(&bin("ferrosfu"), wrapper, extra_args)
    }

    /// [`SupervisorProcess::start_wrapped`] of the supervisor binary `supervisor` (e.g. a
    /// release build, for a measurement).
    pub fn start_with(
        supervisor: &std::path::Path,
        wrapper: &[&str],
        extra_args: &[&str],
    ) -> SupervisorProcess {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let workdir = std::env::temp_dir().join(format!(
            "ferrosfu-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&workdir).expect("create the supervisor's work dir");
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(supervisor);
                c
            }
            None => Command::new(supervisor),
        };
        // Tests that SIGTERM a supervisor want it stopped, not drained for half an hour: the
        // drain tests (tests/tests/drain.rs) give `--drain-timeout-s`, which beats this.
        let mut child = command
            .current_dir(&workdir)
            .env("FERROSFU_DRAIN_TIMEOUT_S", "0")
            // Many supervisors at once (tests, A/B benches): each admin listener on a free port
            // (cargo sets this too, .cargo/config.toml; benches run outside cargo).
            .env("FERROSFU_ADMIN_LISTEN", "127.0.0.1:0")
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-level",
                "info",
            ])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ferrosfu");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let mut admin = None;
        let http = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => panic!(
                    "supervisor logged no 'http listening' ({e}); its output:\n{}",
                    seen.join("\n")
                ),
            };
            seen.push(line.clone());
            let v: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if v["message"] == "admin listening" {
                admin = v["addr"].as_str().and_then(|a| a.parse().ok());
            }
            if v["message"] == "http listening" {
                break v["addr"]
                    .as_str()
                    .expect("addr field")
                    .parse()
                    .expect("socket addr");
            }
        };
        SupervisorProcess {
            child,
            workdir,
            http,
            admin,
            lines,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// `path` on the admin listener, else (admin listener off) on the public one.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.unwrap_or(self.http))
    }

    /// `GET /metrics` (admin listener): the Prometheus text.
    pub async fn metrics(&self, http: &reqwest::Client) -> reqwest::Result<String> {
        http.get(self.admin_url("/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }

    /// The value of the series `series` (the metric name with its labels, as exposed, e.g.
    /// `ferrosfu_peers{location="remote"}`) in a `/metrics` text; panics when it is missing.
    pub fn metric_value(metrics: &str, series: &str) -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing in {metrics}"))
    }

    /// `GET /api/workers`: one entry a worker; panics (the test fails) unless it answers a list.
    pub async fn workers(&self, http: &reqwest::Client) -> Vec<serde_json::Value> {
        match get_json(http, &self.admin_url("/api/workers")).await {
            serde_json::Value::Array(list) => list,
            v => panic!("/api/workers is not a list: {v}"),
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SupervisorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

/// The entry of the worker on `core` in a [`SupervisorProcess::workers`] list; panics (the test
/// fails) if there is none.
pub fn worker_on(list: &[serde_json::Value], core: u64) -> &serde_json::Value {
    list.iter()
        .find(|w| w["core"] == core)
        .unwrap_or_else(|| panic!("no worker on core {core} in {list:?}"))
}

/// `Cpus_allowed_list` from /proc/<pid>/status.
pub fn cpus_allowed(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // state is the field after the ")" that closes the command name
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// A fresh directory `ferrosfu-TAG-PID` under the system temp dir (emptied first), removed on
/// drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("ferrosfu-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create the temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
