//! A real supervisor + worker, the generator binary with 1 publisher → 20 subscribers for 3 s:
//! everything sent is forwarded, latency is plausible, and the results file parses.
//!
//! Needs the `ferrosfu` and `ferrosfu-worker` binaries built in the same target dir (`cargo
//! test --workspace` builds them; see `ferrosfu_tests::bin`).

use std::process::Command;
use std::time::Instant;

use ferrosfu_loadgen::types::{Results, Scenario, Target};
use ferrosfu_tests::SupervisorProcess;

#[test]
fn fanout_to_20_subscribers_forwards_everything() {
    let started = Instant::now();
    let sup = SupervisorProcess::start(&[
        "--dev",
        "--worker-cores",
        "0",
        "--rtc-listen-ip",
        "127.0.0.1",
        "--rtc-ports",
        "25000-25999",
        // Own ports per transport: the generator tells its peers apart by the server's address.
        "--webrtc-server-port",
        "0",
    ]);
    let http = sup.http;
    let results = sup.workdir.join("results.json");
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
