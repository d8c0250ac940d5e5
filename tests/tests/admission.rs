//! One node's admission (issue 15): a node whose every worker is above its load limit refuses
//! new rooms — the broadcaster REST API with HTTP 503, protoo with `errorCode` 503 — and says so
//! on `/readyz` (503 `full`) and `/healthz` (`ready: false, full: true`, still 200), while its
//! open rooms keep admitting peers; below the limit again, it is ready. The limit here is
//! `--worker-max-consumers 1`, which two consumers pass deterministically (the CPU limit is
//! unit-tested in `placement`). Also: the supervisor pins its own threads to
//! `--supervisor-cores`, and each worker's load reaches `/api/workers` and `/metrics`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use ferrosfu_tests::protoo::ProtooClient;
use ferrosfu_tests::{
    SupervisorProcess, consume_plain, cpus_allowed, create_plain_transport, get_json,
    plain_opus_publisher, post_json, status_and_json, worker_on,
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_refuses_new_rooms_and_reports_it() {
    let sup = SupervisorProcess::start_on_loopback(
        "27620-27669",
        &["--dev", "--worker-max-consumers", "1"],
    );
    let http = reqwest::Client::new();
    let (status, body) = status_and_json(http.get(sup.url("/readyz"))).await;
    assert_eq!((status, &body["status"]), (200, &json!("ready")), "{body}");
    assert_eq!(
        (&body["ready"], &body["full"]),
        (&json!(true), &json!(false))
    );

    // Room "a": a publisher and two subscribers, one consumer each: 2 > 1 on the only worker.
    let base = sup.url("/rooms/a/broadcasters");
    let caps = get_json(&http, &sup.url("/rooms/a")).await;
    let (_, producer) = plain_opus_publisher(&http, &base, "test", 100, 1111).await;
    for sub in ["sub1", "sub2"] {
        post_json(
            &http,
            &base,
            json!({"id": sub, "displayName": sub, "device": {"name": "test"}, "rtpCapabilities": caps}),
        )
        .await;
        let t = create_plain_transport(&http, &base, sub, true).await;
        consume_plain(&http, &base, sub, t["id"].as_str().unwrap(), &producer).await;
    }
    let workers = sup.workers(&http).await;
    assert_eq!(
        worker_on(&workers, 0)["load"]["consumers"],
        2,
        "{workers:?}"
    );

    let (status, body) = status_and_json(http.get(sup.url("/readyz"))).await;
    assert_eq!((status, &body["status"]), (503, &json!("full")), "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("node full"),
        "{body}"
    );
    let (status, body) = status_and_json(http.get(sup.url("/healthz"))).await;
    assert_eq!(status, 200, "a full node is alive: {body}");
    assert_eq!(
        (&body["ready"], &body["full"]),
        (&json!(false), &json!(true))
    );
    let metrics = sup.metrics(&http).await.unwrap();
    assert!(
        metrics.contains("ferrosfu_worker_consumers{core=\"0\"} 2"),
        "{metrics}"
    );

    // A new room, through REST: 503 with a JSON reason.
    let (status, body) = status_and_json(
        http.post(sup.url("/rooms/b/broadcasters"))
            .json(&json!({"id": "x", "displayName": "x", "device": {"name": "test"}})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["error"],
        "node full: every worker is above its load limit"
    );
    // Through protoo: the first request is answered 503 with the reason, then the socket closes.
    let mut peer = ProtooClient::connect(sup.http, "c", "p1", None)
        .await
        .unwrap();
    let refused = peer
        .request("getRouterRtpCapabilities", json!({}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code, 503, "{refused}");
    assert!(refused.reason.contains("node full"), "{refused}");
    peer.wait_closed(Duration::from_secs(10)).await.unwrap();

    // The open room still admits peers.
    post_json(
        &http,
        &base,
        json!({"id": "late", "displayName": "late", "device": {"name": "test"}}),
    )
    .await;

    // One subscriber leaves: its consumer closes with its transport, the node is ready again.
    let r = http.delete(format!("{base}/sub2")).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = status_and_json(http.get(sup.url("/readyz"))).await;
        if status == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "still not ready: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["full"], false);
    let workers = sup.workers(&http).await;
    assert_eq!(
        worker_on(&workers, 0)["load"]["consumers"],
        1,
        "{workers:?}"
    );
    post_json(
        &http,
        &sup.url("/rooms/b/broadcasters"),
        json!({"id": "x", "displayName": "x", "device": {"name": "test"}}),
    )
    .await;
}

/// `Cpus_allowed_list` of every thread of process `pid`.
fn threads_allowed(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let status = std::fs::read_to_string(t.join("status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        out.push((field("Name:"), field("Cpus_allowed_list:")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_runs_on_its_own_cores_and_reports_worker_load() {
    let sup =
        SupervisorProcess::start_on_loopback("27670-27699", &["--dev", "--supervisor-cores", "1"]);
    let http = reqwest::Client::new();
    // The HTTP answer proves the runtime's threads exist; each of them, and the main thread,
    // runs on core 1 only.
    let workers = sup.workers(&http).await;
    let threads = threads_allowed(sup.child.id());
    assert!(threads.len() > 1, "{threads:?}");
    for (name, allowed) in &threads {
        assert_eq!(allowed, "1", "supervisor thread {name}: {threads:?}");
    }
    // Its worker was forked from a pinned thread and still runs on its own core.
    let w = worker_on(&workers, 0);
    let pid = u32::try_from(w["pid"].as_u64().unwrap()).unwrap();
    assert_eq!(cpus_allowed(pid).as_deref(), Some("0"));

    // The load: a CPU share of one core and a consumer count, in /api/workers and /metrics.
    // The pool samples the worker's rusage once a second; from the second sample on, the share
    // is measured (the worker spends some CPU answering each sample, so it is above 0).
    assert_eq!(w["load"]["consumers"], 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let cpu = loop {
        let workers = sup.workers(&http).await;
        let cpu = worker_on(&workers, 0)["load"]["cpu"].as_f64().unwrap();
        if cpu > 0.0 {
            break cpu;
        }
        assert!(Instant::now() < deadline, "no CPU measured: {workers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(cpu < 0.5, "an idle worker at {cpu} of its core");
    let metrics = sup.metrics(&http).await.unwrap();
    assert!(
        metrics.contains("ferrosfu_worker_cpu_load{core=\"0\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferrosfu_worker_consumers{core=\"0\"} 0"),
        "{metrics}"
    );
    let config: Value = {
        let out = std::process::Command::new(ferrosfu_tests::bin("ferrosfu"))
            .args(["--supervisor-cores", "1", "--print-config"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(config["supervisor"]["cores"], json!([1]));
}
