//! Real `ferrosfu` supervisors clustered through a real `redis-server`: two nodes list each
//! other in `/api/cluster` and `/metrics`, a node that shuts down leaves the list, a node with a
//! wrong Redis password (or none) or an unreachable Redis fails its start clearly, a node
//! without `redis_url` says clustering is off, and a node that stalls past its TTL gets its peers
//! back at the others when it runs again.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrosfu_tests::redis::{PASSWORD, RedisServer, cluster_node};
use ferrosfu_tests::{SupervisorProcess, bin, get_json};

fn node(redis: &RedisServer, id: &str, core: &str, rtc_ports: &str) -> SupervisorProcess {
    cluster_node(redis, id, core, rtc_ports, &[])
}

/// Node ids listed by `GET /api/cluster`.
async fn listed(http: &reqwest::Client, sup: &SupervisorProcess) -> Vec<String> {
    let v = get_json(http, &sup.admin_url("/api/cluster")).await;
    assert_eq!(v["enabled"], true, "{v}");
    v["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no node list: {v}"))
        .iter()
        .map(|n| n["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn wait_listed(http: &reqwest::Client, sup: &SupervisorProcess, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ids = listed(http, sup).await;
        if ids == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} lists {ids:?}, want {want:?}",
            sup.http
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_supervisors_see_each_other_in_api_cluster() {
    let redis = RedisServer::start().expect("redis-server");
    let http = reqwest::Client::new();
    let a = node(&redis, "node-a", "0", "27100-27149");
    let mut b = node(&redis, "node-b", "1", "27150-27199");
    wait_listed(&http, &a, &["node-a", "node-b"]).await;
    wait_listed(&http, &b, &["node-a", "node-b"]).await;
    let v = get_json(&http, &a.admin_url("/api/cluster")).await;
    assert_eq!(v["nodeId"], "node-a");
    assert_eq!(v["redisUp"], true);
    let nb = &v["nodes"][1];
    assert_eq!(
        nb["signalingUrl"],
        format!("ws://127.0.0.1:{}/", b.http.port())
    );
    assert_eq!(nb["pipeIp"], "127.0.0.1");
    assert_eq!(nb["pipePorts"]["min"], 27150);
    assert_eq!(nb["load"]["workers"], 1);
    assert!(
        nb["heartbeatAgeMs"].as_u64().is_some_and(|age| age <= 900),
        "{nb}"
    );

    // The gauge follows the heartbeat's directory read (at most a heartbeat behind the API).
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = a.metrics(&http).await.expect("metrics");
        if metrics.contains("ferrosfu_cluster_nodes 2") {
            break metrics;
        }
        let cluster_lines: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("ferrosfu_cluster"))
            .collect();
        assert!(Instant::now() < deadline, "{cluster_lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(metrics.contains("ferrosfu_cluster_redis_up 1"), "{metrics}");
    assert!(metrics.contains("ferrosfu_cluster_events_total{direction=\"out\"}"));

    // A clean stop (SIGTERM) deregisters: a drops b at its next directory read.
    nix::sys::signal::kill(b.pid(), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = b.wait_exit(Duration::from_secs(20)).expect("b exits");
    assert!(status.success(), "{status}");
    wait_listed(&http, &a, &["node-a"]).await;
    let mut logged = Vec::new();
    while let Ok(line) = b.lines.try_recv() {
        logged.push(line);
    }
    let logged = logged.join("\n");
    assert!(logged.contains("left the cluster"), "{logged}");
    assert!(!logged.contains(&format!(":{PASSWORD}@")), "{logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_keeps_serving_while_redis_is_down_and_re_registers_when_it_is_back() {
    let mut redis = RedisServer::start().expect("redis-server");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(4))
        .build()
        .expect("client");
    let a = node(&redis, "node-a", "0", "27200-27249");
    wait_listed(&http, &a, &["node-a"]).await;

    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Every answer comes within the client's timeout: nothing waits on Redis for long.
        let metrics = a.metrics(&http).await.expect("metrics while redis is down");
        if metrics.contains("ferrosfu_cluster_redis_up 0") {
            break;
        }
        assert!(Instant::now() < deadline, "redis_up never went to 0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = http.get(a.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    let v = get_json(&http, &a.admin_url("/api/cluster")).await;
    assert_eq!(v["redisUp"], false, "{v}");

    // Redis comes back empty: the node registers again by itself.
    redis.restart().expect("restart redis");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = get_json(&http, &a.admin_url("/api/cluster")).await;
        let registered = redis
            .command(&["EXISTS", "ferrosfu:node:node-a"])
            .is_ok_and(|r| r == ":1");
        if v["redisUp"] == true && registered {
            break;
        }
        assert!(Instant::now() < deadline, "not re-registered: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_listed(&http, &a, &["node-a"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustering_is_off_without_a_redis_url() {
    let http = reqwest::Client::new();
    let sup = SupervisorProcess::start(&["--worker-cores", "0", "--webrtc-server-port", "0"]);
    let v = get_json(&http, &sup.admin_url("/api/cluster")).await;
    assert_eq!(v, serde_json::json!({"enabled": false}));
}

/// Runs a supervisor that is expected to fail at startup; returns (exit code, all it printed).
fn failed_start(url: &str) -> (Option<i32>, String) {
    let workdir =
        std::env::temp_dir().join(format!("ferrosfu-cluster-fail-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).expect("workdir");
    let mut child = Command::new(bin("ferrosfu"))
        .current_dir(&workdir)
        .args(["--http-listen", "127.0.0.1:0", "--worker-cores", "0"])
        .args(["--webrtc-server-port", "0", "--cluster-redis-url", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferrosfu");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ferrosfu with {url} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut out)
        .expect("read stderr");
    let _ = std::fs::remove_dir_all(&workdir);
    (status.code(), out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_redis_password_fails_the_start_clearly() {
    let redis = RedisServer::start().expect("redis-server");
    let (code, out) = failed_start(&redis.url_with_password("not-the-password"));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("redis"), "{out}");
    assert!(
        out.contains("WRONGPASS") || out.contains("invalid"),
        "{out}"
    );
    assert!(!out.contains("not-the-password"), "{out}");
    assert!(out.contains("redis://:***@127.0.0.1"), "{out}");

    let (code, out) = failed_start(&format!("redis://127.0.0.1:{}/0", redis.port()));
    assert_eq!(code, Some(2), "no password: {out}");
    assert!(out.contains("NOAUTH"), "{out}");

    // Nothing listens there: a start failure, not a configuration error.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (code, out) = failed_start(&format!("redis://:x@127.0.0.1:{free}/0"));
    assert_eq!(code, Some(1), "unreachable: {out}");
    assert!(out.contains("redis"), "{out}");
}

/// A node that stalls past its registration's TTL (SIGSTOP) is gone for the others, which drop
/// its peers (`peerClosed`); once it runs again it re-registers with its room entries and the
/// others bring its peers back (`newPeer`), instead of losing them for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_node_that_comes_back_gets_its_peers_back_in_shared_rooms() {
    use ferrosfu_tests::protoo::ProtooClient;
    use nix::sys::signal::{Signal, kill};

    let redis = RedisServer::start().expect("redis-server");
    let http = reqwest::Client::new();
    let a = cluster_node(&redis, "node-a", "0", "27250-27274", &["--dev"]);
    let b = cluster_node(&redis, "node-b", "1", "27275-27299", &["--dev"]);
    wait_listed(&http, &a, &["node-a", "node-b"]).await;
    let mut alice = ProtooClient::connect(a.http, "stall", "alice", None)
        .await
        .expect("alice connects");
    let caps = alice.client_caps().await.expect("caps");
    alice.join("alice", &caps).await.expect("alice joins");
    let mut bob = ProtooClient::connect(b.http, "stall", "bob", None)
        .await
        .expect("bob connects");
    let caps = bob.client_caps().await.expect("caps");
    bob.join("bob", &caps).await.expect("bob joins");
    let n = alice
        .wait_for("newPeer")
        .await
        .expect("bob arrives at alice");
    assert_eq!(n["data"]["id"], "bob", "{n}");

    // Node B stops for 2 s: with 300 ms heartbeats its registration lapses after ~0.9 s.
    kill(b.pid(), Signal::SIGSTOP).expect("SIGSTOP");
    let gone = alice
        .wait_for("peerClosed")
        .await
        .expect("bob gone at alice");
    assert_eq!(gone["data"]["peerId"], "bob", "{gone}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    kill(b.pid(), Signal::SIGCONT).expect("SIGCONT");
    let back = alice.wait_for("newPeer").await.expect("bob back at alice");
    assert_eq!(back["data"]["id"], "bob", "{back}");
    bob.ok("getRouterRtpCapabilities", serde_json::json!({}))
        .await
        .expect("bob's node serves again");
}
