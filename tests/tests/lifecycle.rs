//! The supervisor as a library: lifecycle phases observed on the watch channel, readiness over
//! HTTP, pool events when a worker dies, and a drain that leaves no worker behind.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu::config::CoreList;
use ferrosfu::{Config, Phase, PoolEvent, Supervisor};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn config() -> Config {
    Config {
        http_listen: "127.0.0.1:0".parse().unwrap(),
        worker_cores: CoreList::List(vec![0]),
        worker_bin: Some(ferrosfu_tests::bin("ferrosfu-worker")),
        dev: true,
        // A WebRtcServer port of this test's own.
        webrtc_server_port: 26220,
        // Out of the source tree (the defaults are relative to the working directory).
        database_url: format!(
            "sqlite://{}/ferrosfu-lifecycle-{}/ferrosfu.db",
            std::env::temp_dir().display(),
            std::process::id()
        ),
        recordings_dir: std::env::temp_dir().join(format!(
            "ferrosfu-lifecycle-{}/recordings",
            std::process::id()
        )),
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_move_forward_and_drain_closes_every_worker() {
    let sup = Supervisor::start(config()).await.unwrap();
    assert_eq!(*sup.lifecycle().subscribe().borrow(), Phase::Running);

    let health = reqwest::get(format!("http://{}/healthz", sup.http_addr()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // A worker that dies is announced, then replaced.
    let mut events = sup.pool().subscribe();
    let first = sup.pool().workers()[0].clone();
    kill(Pid::from_raw(first.pid() as i32), Signal::SIGKILL).unwrap();
    let died = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(died, PoolEvent::WorkerDied { core: 0, pid, .. } if pid == first.pid()),
        "{died:?}"
    );
    let restarted = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            restarted,
            PoolEvent::WorkerRestarted {
                core: 0,
                restarts: 1,
                ..
            }
        ),
        "{restarted:?}"
    );

    let workers = sup.pool().workers();
    let lifecycle = sup.lifecycle();
    sup.shutdown().await;
    assert_eq!(lifecycle.phase(), Phase::Stopped);
    assert_eq!(
        lifecycle.history(),
        vec![
            Phase::Starting,
            Phase::Running,
            Phase::Draining,
            Phase::Stopped
        ]
    );
    for w in workers {
        let exit = w.exit().expect("reaped during shutdown");
        assert!(exit.expected, "{exit:?}");
        assert_eq!(exit.code, Some(0), "closed cleanly: {exit:?}");
    }
}
