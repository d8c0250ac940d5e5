//! The monitoring files in `packaging/` against a live node: every metric the Grafana dashboard
//! (`packaging/grafana/ferrosfu-node.json`) queries is one the supervisor exports, and the real
//! Debian `prometheus` (scripts/setup installs it; never run as a service here) scrapes the
//! admin listener with the example job of `packaging/prometheus/ferrosfu.yml`, answers
//! `ferrosfu_build_info` with the node's version, and evaluates every dashboard expression.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrosfu_tests::SupervisorProcess;
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Every PromQL expression of the dashboard: its panels' targets and its query variables.
fn dashboard_exprs() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(repo_file("packaging/grafana/ferrosfu-node.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    walk(&dashboard, &mut out);
    out
}

/// The `ferrosfu_…` identifiers of a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let is_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("ferrosfu_") {
        let preceded = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let len = tail.find(|c: char| !is_name(c)).unwrap_or(tail.len());
        if !preceded.is_some_and(|c| is_name(c) || c.is_ascii_uppercase()) {
            names.push(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    names
}

/// Whether the exposition `metrics` has `name`: a series of it, or its family's `# TYPE` (a
/// family without series yet), with the suffixes counters (`_total`) and histograms
/// (`_bucket`, `_sum`, `_count`) add to their family's name.
fn exported(metrics: &str, name: &str) -> bool {
    let series = metrics.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|r| r.starts_with(['{', ' ']))
    });
    let family = |family: &str, types: &[&str]| {
        types
            .iter()
            .any(|t| metrics.contains(&format!("# TYPE {family} {t}\n")))
    };
    let suffixed = [
        ("_total", &["counter"][..]),
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram"][..]),
        ("_count", &["histogram"][..]),
        ("_info", &["info"][..]),
    ]
    .iter()
    .any(|(suffix, types)| name.strip_suffix(suffix).is_some_and(|f| family(f, types)));
    series || suffixed || family(name, &["gauge", "counter", "histogram", "info"])
}

#[test]
fn metric_names_are_found_in_expressions() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.5, sum by (le) (rate(ferrosfu_rtt_seconds_bucket{a=\"x\"}[1m]))) \
             / ferrosfu_rooms + myferrosfu_x"
        ),
        ["ferrosfu_rtt_seconds_bucket", "ferrosfu_rooms"]
    );
    let text = "# TYPE ferrosfu_a counter\n# TYPE ferrosfu_h histogram\nferrosfu_g{x=\"1\"} 2\n";
    for (name, want) in [
        ("ferrosfu_a_total", true),
        ("ferrosfu_h_bucket", true),
        ("ferrosfu_h_count", true),
        ("ferrosfu_g", true),
        ("ferrosfu_a", true),
        ("ferrosfu_h_total", false),
        ("ferrosfu_gone", false),
    ] {
        assert_eq!(exported(text, name), want, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_only_metrics_ferrosfu_exports() {
    let exprs = dashboard_exprs();
    let names: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    // The node overview: CPU, rooms/peers, bit rates, loss/RTT percentiles, restarts,
    // recordings.
    for want in [
        "ferrosfu_worker_cpu_seconds_total",
        "ferrosfu_rooms",
        "ferrosfu_peers",
        "ferrosfu_rtp_bytes_total",
        "ferrosfu_rtp_loss_ratio_bucket",
        "ferrosfu_rtt_seconds_bucket",
        "ferrosfu_worker_restarts_total",
        "ferrosfu_recordings_active",
    ] {
        assert!(names.contains(want), "the dashboard does not show {want}");
    }
    assert!(
        exprs.iter().any(|e| e.contains("histogram_quantile(0.95")),
        "percentiles"
    );
    let sup = SupervisorProcess::start_on_loopback("26950-26974", &["--dev"]);
    let metrics = sup.metrics(&reqwest::Client::new()).await.unwrap();
    let missing: Vec<_> = names.iter().filter(|n| !exported(&metrics, n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, which /metrics does not export:\n{metrics}"
    );
}

/// A child process killed (and its temp dir removed) on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Prometheus {
    /// `prometheus` in a temp dir of its own, scraping `target` every second, its HTTP API on a
    /// free loopback port.
    fn start(target: std::net::SocketAddr) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: run scripts/setup (apt package prometheus)"
        );
        let dir = std::env::temp_dir().join(format!("ferrosfu-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: ferrosfu\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Prometheus {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `GET /api/v1/query?query=…`: its JSON answer, or `None` while it cannot answer.
    async fn query(&self, http: &reqwest::Client, query: &str) -> Option<Value> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            [("query", query)],
        )
        .unwrap();
        http.get(url).send().await.ok()?.json().await.ok()
    }

    /// Its log, for a failure report.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_admin_listener() {
    let started = Instant::now();
    // The example configuration is one promtool accepts.
    let example = repo_file("packaging/prometheus/ferrosfu.yml");
    let check = Command::new(PROMTOOL)
        .arg("check")
        .arg("config")
        .arg(&example)
        .output()
        .unwrap_or_else(|e| panic!("{PROMTOOL}: {e} (run scripts/setup)"));
    assert!(
        check.status.success(),
        "promtool check config {}: {}{}",
        example.display(),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let sup = SupervisorProcess::start_on_loopback("26975-26999", &["--dev"]);
    let http = reqwest::Client::new();
    let ours = sup.metrics(&http).await.unwrap();
    let version = ours
        .lines()
        .find_map(|l| l.strip_prefix("ferrosfu_build_info{version=\""))
        .and_then(|l| l.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));

    let mut prom = Prometheus::start(sup.admin.expect("the admin listener"));
    // Until its first scrape of the node is stored and queryable.
    let deadline = Instant::now() + Duration::from_secs(60);
    let series = loop {
        let answer = prom.query(&http, "ferrosfu_build_info").await;
        if let Some(a) = &answer
            && let Some(r) = a["data"]["result"].as_array()
            && !r.is_empty()
        {
            break r.clone();
        }
        if let Ok(Some(status)) = prom.child.try_wait() {
            panic!("prometheus exited ({status}):\n{}", prom.log());
        }
        assert!(
            Instant::now() < deadline,
            "no ferrosfu_build_info in prometheus within 60 s (last answer {answer:?}):\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(series.len(), 1, "{series:?}");
    let labels = &series[0]["metric"];
    assert_eq!(labels["version"], version.as_str(), "{labels}");
    assert_eq!(labels["job"], "ferrosfu", "{labels}");
    assert_eq!(
        labels["instance"],
        sup.admin.unwrap().to_string().as_str(),
        "{labels}"
    );
    assert_eq!(series[0]["value"][1], "1", "{series:?}");

    // Every dashboard expression evaluates (Grafana's variables as it would fill them).
    for expr in dashboard_exprs()
        .iter()
        .filter(|e| !e.starts_with("label_values("))
    {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        let answer = prom.query(&http, &q).await.unwrap();
        assert_eq!(answer["status"], "success", "{q}: {answer}");
    }
    eprintln!("prometheus: {:.1} s", started.elapsed().as_secs_f64());
}
