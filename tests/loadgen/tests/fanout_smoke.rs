//! A real supervisor + worker, the generator binary with 1 publisher → 20 subscribers for 3 s:
//! everything sent is forwarded, latency is plausible, and the results file parses.
//!
//! Needs the `ferrosfu` and `ferrosfu-worker` binaries next to the generator's (`cargo build
//! -p ferrosfu -p ferrosfu-worker` with the same profile and target dir, or `cargo test
//! --workspace`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferrosfu_loadgen::types::{Results, Scenario, Target};

struct Supervisor {
    child: Child,
    dir: PathBuf,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sibling(name: &str) -> PathBuf {
    let gen_bin = Path::new(env!("CARGO_BIN_EXE_ferrosfu-loadgen"));
    let p = gen_bin.with_file_name(name);
    assert!(
        p.is_file(),
        "{} is not built: run `cargo build -p ferrosfu -p ferrosfu-worker` (same profile and \
         target dir) first",
        p.display()
    );
    p
}

fn start_supervisor(dir: &Path) -> (Supervisor, SocketAddr) {
    std::fs::create_dir_all(dir).expect("temp dir");
    let mut child = Command::new(sibling("ferrosfu"))
        .current_dir(dir)
        .args([
            "--dev",
            "--worker-cores",
            "0",
            "--rtc-listen-ip",
            "127.0.0.1",
        ])
        .args(["--rtc-ports", "45000-45999", "--http-listen", "127.0.0.1:0"])
        .args(["--log-format", "json", "--log-level", "info"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("db.sqlite").display()))
        .arg("--recordings-dir")
        .arg(dir.join("recordings"))
        .arg("--worker-bin")
        .arg(sibling("ferrosfu-worker"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ferrosfu");
    let out = child.stdout.take().expect("stdout");
    let sup = Supervisor {
        child,
        dir: dir.to_owned(),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("supervisor logged 'http listening'");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["message"] == "http listening" {
            let addr = v["addr"].as_str().expect("addr").parse().expect("address");
            // Keep draining its log so it never blocks on a full pipe.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return (sup, addr);
        }
    }
}

#[test]
fn fanout_to_20_subscribers_forwards_everything() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("loadgen-smoke-{}", std::process::id()));
    let (_sup, http) = start_supervisor(&dir);
    let results = dir.join("results.json");
    // The worker is on core 0; the generator on core 1 when there is one.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let core = if cores > 1 { "1" } else { "0" };
    let out = Command::new(env!("CARGO_BIN_EXE_ferrosfu-loadgen"))
        .args(["run", "--target", "ferrosfu", "--scenario", "fanout"])
        .arg("--url")
        .arg(format!("http://{http}"))
        .args(["--subscribers", "20", "--duration", "3", "--warmup", "1"])
        .args(["--bitrate", "300000", "--core", core, "--label", "smoke"])
        .arg("--out")
        .arg(&results)
        .output()
        .expect("run the generator");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "generator failed:\n{stderr}");
    eprintln!("{stderr}");

    let r: Results =
        serde_json::from_str(&std::fs::read_to_string(&results).expect("results file"))
            .expect("results parse");
    assert_eq!(r.runs.len(), 1);
    let run = &r.runs[0];
    assert_eq!(
        (run.target, run.scenario),
        (Target::Ferrosfu, Scenario::Fanout)
    );
    assert!(run.notes.iter().any(|n| n == "smoke"));
    let s = &run.steps[0];
    assert_eq!((s.publishers, s.subscribers), (1, 20));
    assert!(s.sent_pps > 25.0, "publisher sent {} pkt/s", s.sent_pps);
    assert!(
        (s.expected_pps - 20.0 * s.sent_pps).abs() < 0.02 * s.expected_pps,
        "expected {} vs 20 × sent {}",
        s.expected_pps,
        s.sent_pps
    );
    assert!(s.loss_percent < 1.0, "loss {} %", s.loss_percent);
    assert!(
        (s.forwarded_pps - s.expected_pps).abs() < 0.02 * s.expected_pps,
        "forwarded {} vs expected {}",
        s.forwarded_pps,
        s.expected_pps
    );
    assert!(
        s.latency.p50_us > 0.0 && s.latency.p50_us < 20_000.0,
        "p50 {} us",
        s.latency.p50_us
    );
    assert!(s.sut_cpu_percent > 0.0, "worker CPU measured");
    assert!(!r.commit.is_empty() && r.machine.cores > 0);
    eprintln!("smoke test took {:?}", started.elapsed());
}
