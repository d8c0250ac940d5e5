//! The supervisor's typed API over a real worker process: routers, settings, resource usage,
//! garbage on the channel, and what a worker's death does to what lives on it.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu::{RequestError, Router, RouterClosed, Worker};
use ferrosfu_fbs::{ErrorKind, Event, LogLevel, RouterId, UpdateSettings};
use ferrosfu_tests::media::{spawn_worker, worker_settings};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[tokio::test]
async fn create_router_dump_shows_it_close_removes_it() {
    let w = spawn_worker().await;
    let router: Router = w.create_router().await.unwrap();
    let dump = w.dump().await.unwrap();
    assert_eq!(dump.pid, w.pid());
    assert_eq!(dump.core, 0);
    assert_eq!(dump.router_ids, vec![router.id().clone()]);
    assert_eq!(router.dump().await.unwrap().id, *router.id());

    router.close().await.unwrap();
    assert!(router.is_closed());
    assert_eq!(router.closed().await, RouterClosed::Closed);
    assert!(w.dump().await.unwrap().router_ids.is_empty());
    // Closing twice is a no-op; the worker already forgot the router.
    router.close().await.unwrap();

    let exit = w.close(Duration::from_secs(3)).await;
    assert_eq!(exit.code, Some(0));
    assert!(exit.expected);
}

#[tokio::test]
async fn duplicate_ids_and_unknown_handlers_are_invalid_arguments() {
    let w = spawn_worker().await;
    let id = RouterId::new("same");
    w.create_router_with_id(id.clone()).await.unwrap();
    let err = w.create_router_with_id(id).await.unwrap_err();
    assert!(err.is_invalid_argument(), "{err}");
    let err = w
        .request("ghost".into(), ferrosfu_fbs::RequestBody::RouterDump)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Rejected { failure, .. } if failure.kind == ErrorKind::InvalidArgument),
        "{err}"
    );
}

#[tokio::test]
async fn settings_and_resource_usage() {
    let w = spawn_worker().await;
    w.update_settings(UpdateSettings {
        log_level: Some(LogLevel::Debug),
        log_targets: Some(vec!["router".into(), "channel".into()]),
    })
    .await
    .unwrap();
    let err = w
        .update_settings(UpdateSettings {
            log_level: None,
            log_targets: Some(vec!["bad target!".into()]),
        })
        .await
        .unwrap_err();
    assert!(err.is_invalid_argument());
    let u = w.get_resource_usage().await.unwrap();
    assert!(u.ru_maxrss > 0);
}

#[tokio::test]
async fn garbage_on_the_channel_is_reported_and_requests_keep_working() {
    let w = spawn_worker().await;
    let mut notes = w.channel().subscribe();
    assert!(w.channel().send_raw(vec![
        12, 0, 0, 0, b'g', b'a', b'r', b'b', b'a', b'g', b'e', 0, 1, 2, 3, 4
    ]));
    let n = tokio::time::timeout(Duration::from_secs(5), notes.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(n.event, Event::WorkerChannelError { .. }), "{n:?}");
    // The supervisor counts the error the worker reported.
    assert_eq!(
        w.channel()
            .stats()
            .errors
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let r = w.create_router().await.unwrap();
    assert_eq!(w.dump().await.unwrap().router_ids, vec![r.id().clone()]);
}

#[tokio::test]
async fn a_dead_worker_closes_its_routers_and_its_channel() {
    let w = spawn_worker().await;
    let router = w.create_router().await.unwrap();
    let died = tokio::spawn({
        let router = router.clone();
        async move { router.closed().await }
    });
    kill(Pid::from_raw(w.pid() as i32), Signal::SIGKILL).unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), died)
        .await
        .unwrap()
        .unwrap();
    match reason {
        RouterClosed::WorkerDied(exit) => {
            assert_eq!(exit.signal, Some(9));
            assert!(!exit.expected);
        }
        other => panic!("{other:?}"),
    }
    assert!(router.is_closed());
    let err = w.dump().await.unwrap_err();
    assert!(matches!(err, RequestError::ChannelClosed { .. }), "{err}");
}

#[tokio::test]
async fn a_worker_with_bad_settings_is_reported_as_such() {
    let mut s = worker_settings();
    s.core = Some(100_000);
    let err = Worker::spawn(&s).await.unwrap_err();
    assert!(err.is_bad_settings(), "{err}");
}
