//! The operator API on a real supervisor process: the admin listener (`--admin-listen`) serves
//! `/metrics`, `/api/workers` and health without a token, while the public listener wants the
//! admin token for them; changes (drain, log level) want the admin token everywhere; `PUT
//! /api/log-level` changes the supervisor's and the workers' filters at run time.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_tests::protoo::{ProtooClient, token};
use ferrosfu_tests::{SupervisorProcess, status_and_json};
use serde_json::json;

const SECRET: &str = "admin-api-test-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_the_admin_listener_or_the_admin_token() {
    let sup = SupervisorProcess::start_wrapped(
        &["env", &format!("FERROSFU_JWT_SECRET={SECRET}")],
        &[
            "--worker-cores",
            "0",
            "--rtc-listen-ip",
            "127.0.0.1",
            "--rtc-ports",
            "26810-26829",
            "--webrtc-server-port",
            "26810",
        ],
    );
    let admin = sup
        .admin
        .expect("an admin listener (cargo sets 127.0.0.1:0)");
    assert!(admin.ip().is_loopback(), "{admin}");
    assert_ne!(admin, sup.http);
    let http = reqwest::Client::new();
    let admin_token = token(SECRET, "*", "ops", "admin", 60);
    let publisher = token(SECRET, "*", "p", "publish", 60);

    for path in [
        "/metrics",
        "/api/workers",
        "/api/cluster",
        "/api/log-level",
        "/api/rooms",
    ] {
        // Public listener: no token 401, a non-admin token 403, the admin token 200.
        let r = http.get(sup.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "public {path} without a token");
        let r = http
            .get(sup.url(path))
            .bearer_auth(&publisher)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "public {path} with a publisher token");
        let r = http
            .get(sup.url(path))
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "public {path} with the admin token");
        // Admin listener: reads without a token.
        let r = http.get(sup.admin_url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "admin {path}");
    }
    let metrics = sup.metrics(&http).await.unwrap();
    assert!(metrics.contains("ferrosfu_build_info{"), "{metrics}");
    assert_eq!(sup.workers(&http).await.len(), 1);
    for path in ["/livez", "/readyz", "/healthz"] {
        let r = http.get(sup.admin_url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "admin {path}");
    }
    // The public listener keeps its own health endpoints without a token (load balancers).
    assert_eq!(
        http.get(sup.url("/readyz")).send().await.unwrap().status(),
        200
    );

    // Changes want the admin token, on the admin listener too.
    let (s, v) = status_and_json(http.post(sup.admin_url("/api/drain"))).await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = status_and_json(
        http.put(sup.admin_url("/api/log-level"))
            .json(&json!({"level": "debug"})),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = status_and_json(
        http.put(sup.admin_url("/api/log-level"))
            .bearer_auth(&publisher)
            .json(&json!({"level": "debug"})),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = status_and_json(
        http.put(sup.admin_url("/api/log-level"))
            .bearer_auth(&admin_token)
            .json(&json!({"level": "info"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["level"], "info", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener_off_leaves_the_token_protected_public_endpoints() {
    let sup = SupervisorProcess::start_on_loopback("26830-26839", &["--admin-listen", "off"]);
    assert_eq!(sup.admin, None);
    let http = reqwest::Client::new();
    // --dev is not given: without a secret nobody gets in.
    let r = http.get(sup.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// Waits for a stdout line of `sup` containing `needle`; returns every line read meanwhile.
fn lines_until(sup: &SupervisorProcess, needle: &str, timeout: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match sup.lines.recv_timeout(left) {
            Ok(l) => {
                let done = l.contains(needle);
                seen.push(l);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no line with {needle:?} ({e}); read:\n{}", seen.join("\n")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_levels_change_at_run_time() {
    let sup = SupervisorProcess::start_on_loopback("26840-26859", &["--dev"]);
    let http = reqwest::Client::new();
    let url = sup.admin_url("/api/log-level");
    let (s, v) = status_and_json(http.get(&url)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["level"], "info", "{v}");
    // Workers log at warn unless configured otherwise.
    assert_eq!(v["workerLevel"], "warn", "{v}");

    // At info, creating a room's router logs nothing at debug. The room's join answering means
    // its router exists; the marker request after it fences the worker's log lines before.
    let mut a = ProtooClient::connect(sup.http, "loglevel-a", "pa", None)
        .await
        .unwrap();
    a.client_caps().await.unwrap();

    // Bad requests change nothing.
    for bad in [
        json!({"workerLevel": "loud"}),
        json!({"level": "info,[[["}),
        json!({"workerTargets": ["bad target"]}),
        json!({"colour": "red"}),
        json!({}),
    ] {
        let (s, v) = status_and_json(http.put(&url).json(&bad)).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, v) = status_and_json(http.put(&url).body("not json")).await;
    assert!(s == 400 || s == 415, "{s} {v}");

    let (s, v) = status_and_json(http.put(&url).json(&json!({
        "level": "info,worker=debug",
        "workerLevel": "debug",
        "workerTargets": ["router"],
    })))
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["level"], "info,worker=debug", "{v}");
    assert_eq!(v["workerLevel"], "debug", "{v}");
    assert_eq!(v["workerTargets"], json!(["router"]), "{v}");

    // Now a second room's router creation is logged by the worker at debug and passes the
    // supervisor's filter; the first room's (created at info) is not among the lines before.
    let mut b = ProtooClient::connect(sup.http, "loglevel-b", "pb", None)
        .await
        .unwrap();
    b.client_caps().await.unwrap();
    let seen = lines_until(&sup, "router created", Duration::from_secs(20));
    let created: Vec<_> = seen
        .iter()
        .filter(|l| l.contains("router created"))
        .collect();
    assert_eq!(created.len(), 1, "{created:#?}");
    let line: serde_json::Value = serde_json::from_str(created[0]).unwrap();
    assert_eq!(line["level"], "DEBUG", "{line}");

    // Back to info; GET says so.
    let (s, v) = status_and_json(
        http.put(&url)
            .json(&json!({"level": "info", "workerLevel": "info", "workerTargets": []})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = status_and_json(http.get(&url)).await;
    assert_eq!(
        v,
        json!({"level": "info", "workerLevel": "info", "workerTargets": []})
    );
}
