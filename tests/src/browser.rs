//! Running a browser test script (tests/browser/*.mjs: Node + playwright-core + Debian
//! Chromium) inside a loopback-only network namespace (`unshare -n`: Chromium then gathers
//! 127.0.0.1 candidates only), and reading the one JSON result line it prints.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The checkout's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the checkout")
        .to_path_buf()
}

/// Panics (the test fails) naming what `scripts/setup-browser` installs when Chromium, the demo
/// app bundle or playwright-core is missing.
pub fn require_setup() {
    let root = root();
    for (what, path) in [
        ("Chromium", PathBuf::from("/usr/bin/chromium")),
        (
            "the demo app bundle",
            root.join("supervisor/web/dist/app.js"),
        ),
        (
            "playwright-core",
            root.join("tests/browser/node_modules/playwright-core"),
        ),
    ] {
        assert!(
            path.exists(),
            "{what} is missing ({}): run scripts/setup-browser",
            path.display()
        );
    }
}

/// What a script run gave: its exit status, its last JSON line, its stderr.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub result: serde_json::Value,
    pub stderr: String,
}

impl Run {
    /// Fails the test unless the script exited 0 with `"ok": true`, with its failures, its
    /// result and the tail of its stderr as the report.
    pub fn assert_ok(&self) {
        let r = &self.result;
        assert!(
            self.status.success() && r["ok"] == true,
            "{}\n{r}\n--- log tail (reversed) ---\n{}",
            r["failures"],
            self.stderr_tail(60)
        );
    }

    /// The last `n` lines of the script's stderr, newest first (for a failure report).
    pub fn stderr_tail(&self, n: usize) -> String {
        self.stderr
            .lines()
            .rev()
            .take(n)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs `node tests/browser/<script> <args>` in a fresh network namespace with only `lo` up;
/// fails the test if it hangs past `limit` or prints no JSON line.
pub fn run_script(script: &str, args: &[String], limit: Duration) -> Run {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let sh = format!(
        "ip link set lo up && exec node tests/browser/{script} {}",
        quoted.join(" ")
    );
    let mut child = Command::new("unshare")
        .args(["-n", "sh", "-c", &sh])
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) runs");
    // Every wait in the scripts has its own deadline; this one only catches a hang.
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{script} timed out after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let result = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{script}: no result line\nstdout: {stdout}\nstderr: {stderr}"));
    Run {
        status,
        result,
        stderr,
    }
}

/// Runs `script` (a demo-app or test-page script taking `--supervisor` and `--artifacts`)
/// against the debug supervisor, with its artifacts in `tests/artifacts/browser/<dir>` (made
/// here), plus `extra` arguments: the run and that directory. Panics when the setup is
/// missing (a browser test never passes without running: `cargo test -- --skip browser_`
/// leaves them out).
pub fn run_against_ferrosfu(
    script: &str,
    dir: &str,
    extra: &[&str],
    limit: Duration,
) -> (Run, PathBuf) {
    require_setup();
    let artifacts = root().join("tests/artifacts/browser").join(dir);
    std::fs::create_dir_all(&artifacts).expect("artifacts directory");
    let mut args = vec![
        "--supervisor".to_owned(),
        crate::bin("ferrosfu").display().to_string(),
        "--artifacts".to_owned(),
        artifacts.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    (run_script(script, &args, limit), artifacts)
}
