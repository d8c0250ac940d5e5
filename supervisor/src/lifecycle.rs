//! Lifecycle phases as values on a watch channel, so tests and `/healthz` can observe them.

use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Spawning workers, binding listeners.
    Starting,
    /// Every worker runs; serving.
    Running,
    /// Shutting down: no new work, workers closing.
    Draining,
    /// Everything closed.
    Stopped,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Stopped => "stopped",
        }
    }
}

#[derive(Debug)]
pub struct Lifecycle {
    tx: watch::Sender<Phase>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            tx: watch::channel(Phase::Starting).0,
        }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }

    /// Moves forward only: a phase never goes back.
    pub(crate) fn advance(&self, to: Phase) {
        self.tx.send_if_modified(|p| {
            if to > *p {
                tracing::info!(from = p.as_str(), to = to.as_str(), "lifecycle");
                *p = to;
                true
            } else {
                false
            }
        });
    }
}
