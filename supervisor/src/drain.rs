//! Graceful drain: the first SIGTERM/SIGINT (or `POST /api/drain`) makes the node refuse new
//! rooms (readiness 503 `draining`), tells every peer `serverDraining {deadline}` and lets the
//! open meetings go on until they are empty or `[supervisor] drain_timeout_s` passes; then the
//! supervisor shuts down (recordings finalized, rooms closed, workers closed) and exits 0. A
//! second signal ends the wait at once (see `main.rs`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::lifecycle::{Lifecycle, Phase};
use crate::rooms::Rooms;

#[derive(Debug)]
pub(crate) struct Drain {
    timeout: Duration,
    rooms: Arc<Rooms>,
    lifecycle: Arc<Lifecycle>,
    /// The deadline, once a drain started.
    deadline: watch::Sender<Option<DateTime<Utc>>>,
}

impl Drain {
    pub(crate) fn new(
        timeout: Duration,
        rooms: Arc<Rooms>,
        lifecycle: Arc<Lifecycle>,
    ) -> Arc<Self> {
        Arc::new(Self {
            timeout,
            rooms,
            lifecycle,
            deadline: watch::Sender::new(None),
        })
    }

    /// Starts the drain (`why`: what asked for it); a drain already under way is kept.
    /// Answers its deadline.
    pub(crate) async fn start(&self, why: &str) -> DateTime<Utc> {
        let timeout = chrono::Duration::from_std(self.timeout).unwrap_or(chrono::Duration::MAX);
        let mut fresh = None;
        self.deadline.send_if_modified(|d| {
            if d.is_some() {
                return false;
            }
            let at = Utc::now()
                .checked_add_signed(timeout)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            *d = Some(at);
            fresh = Some(at);
            true
        });
        let Some(deadline) = fresh else {
            return self.deadline.borrow().unwrap_or_else(Utc::now);
        };
        tracing::info!(why, %deadline, timeout_s = self.timeout.as_secs(), "draining: no new rooms; open ones go on until empty or the deadline");
        self.lifecycle.advance(Phase::Draining);
        crate::notify_systemd(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status(&format!("draining until {deadline}")),
        ]);
        self.rooms.drain(deadline).await;
        deadline
    }

    /// The deadline of the drain under way.
    pub(crate) fn deadline(&self) -> Option<DateTime<Utc>> {
        *self.deadline.borrow()
    }

    /// Resolves once a drain has started (by a signal or the API).
    pub(crate) async fn started(&self) {
        let mut rx = self.deadline.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Resolves once the drain under way is over: no room is open, or its deadline passed.
    pub(crate) async fn finished(&self) {
        self.started().await;
        let left = self
            .deadline()
            .and_then(|d| (d - Utc::now()).to_std().ok())
            .unwrap_or_default();
        tokio::select! {
            () = self.rooms.wait_empty() => tracing::info!("drained: no room is open"),
            () = tokio::time::sleep(left) => tracing::info!("drain deadline: closing the rooms left"),
        }
    }
}
