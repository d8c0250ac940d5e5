//! What an operator meets first, on a real supervisor process: the landing page at `/` lists
//! what the node really serves (every link answers), `/livez` and `/readyz`, the build in
//! `/metrics` (and cumulative values as counters), and plain-text logs (no ANSI escapes) when
//! stdout is not a terminal.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use ferrosfu_tests::SupervisorProcess;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_page_links_what_the_node_serves() {
    let sup = SupervisorProcess::start_on_loopback("26750-26799", &["--dev"]);
    let http = reqwest::Client::new();
    let r = http.get(sup.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(!page.contains("once signaling lands"), "{page}");
    let links: Vec<&str> = page
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    for expected in [
        "/app/",
        "/livez",
        "/readyz",
        "/healthz",
        "/api/workers",
        "/metrics",
    ] {
        assert!(
            links.contains(&expected),
            "{expected} not linked: {links:?}"
        );
    }
    for path in [
        "/whip/",
        "/whep/",
        "/rooms/",
        "/api/recordings",
        "/api/drain",
        "/api/log-level",
        "admin_listen",
    ] {
        assert!(page.contains(path), "{path} not described");
    }
    for link in links {
        let r = http.get(sup.url(link)).send().await.unwrap();
        // The demo app answers 503 with a hint when its bundle is not built; nothing is missing.
        assert!(
            r.status().is_success() || (link == "/app/" && r.status() == 503),
            "{link}: {}",
            r.status()
        );
    }

    let live: Value = http
        .get(sup.url("/livez"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["status"], "alive", "{live}");
    assert_eq!(live["phase"], "running", "{live}");
    let ready = http.get(sup.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // The build: this crate's version and a commit (the checkout's, or "unknown").
    let metrics = sup.metrics(&http).await.unwrap();
    let info = metrics
        .lines()
        .find(|l| l.starts_with("ferrosfu_build_info{"))
        .unwrap_or_else(|| panic!("no ferrosfu_build_info in {metrics}"));
    assert!(
        info.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    assert!(info.contains("commit=\"") && info.ends_with(" 1"), "{info}");
    assert!(metrics.contains("# TYPE ferrosfu_build info"), "{metrics}");
    // Cumulative values are counters (`_total`), not gauges.
    for name in [
        "ferrosfu_worker_cpu_seconds",
        "ferrosfu_worker_channel_errors",
        "ferrosfu_worker_request_timeouts",
        "ferrosfu_worker_unrouted_notifications",
        "ferrosfu_worker_restarts",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} counter"))
                && metrics.contains(&format!("\n{name}_total{{core=\"0\"")),
            "{name}: {metrics}"
        );
    }
}

/// Text logs through a pipe (as journald reads them) carry no ANSI escape.
#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    // Its own work dir: the default store (data/) and recordings/ land there.
    let dir = std::env::temp_dir().join(format!("ferrosfu-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = ferrosfu_tests::supervisor_command(&dir, 26800)
        .args(["--log-format", "text", "--log-level", "info"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("http listening");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        seen.last().is_some_and(|l| l.contains("http listening")),
        "{seen:#?}"
    );
    assert!(seen.len() > 2, "{seen:#?}");
    for l in &seen {
        assert!(!l.contains('\u{1b}'), "ANSI escape in {l:?}");
        assert!(l.contains("INFO") || l.contains("WARN"), "{l:?}");
    }
}
