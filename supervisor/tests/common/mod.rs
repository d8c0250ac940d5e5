//! Shared by the supervisor's integration tests.

/// A fresh working directory for one supervisor under test (its default `data/` store and
/// `recordings/` land there, not in the source tree).
pub(crate) fn workdir(tag: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "ferrosfu-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("create a work dir");
    d
}

/// The `ferrosfu` binary under test, killed when dropped.
#[allow(dead_code)] // not every test binary that includes this module starts one
pub(crate) struct Server {
    pub(crate) child: std::process::Child,
    pub(crate) addr: std::net::SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(dead_code)]
impl Server {
    /// Starts `bin` in a fresh work dir (`tag`) with JSON logs on 127.0.0.1:0, one worker on
    /// core 0 with its RTC ports and WebRtcServer in `ports` (`"A-B"`, the server on A), media on
    /// 127.0.0.1, plus `args` and `env`; returns once it logs "http listening" (30 s at most).
    pub(crate) fn start(
        bin: &str,
        tag: &str,
        ports: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin)
            .args(["--http-listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--worker-cores", "0", "--rtc-ports", ports])
            .args([
                "--webrtc-server-port",
                ports.split('-').next().expect("A-B"),
            ])
            .args(["--rtc-listen-ip", "127.0.0.1"])
            .args(args)
            .envs(env.iter().copied())
            .current_dir(workdir(tag))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start ferrosfu");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("ferrosfu logs \"http listening\" within 30 s");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "http listening" {
                break v["addr"]
                    .as_str()
                    .expect("addr")
                    .parse()
                    .expect("an address");
            }
        };
        Server { child, addr }
    }
}
