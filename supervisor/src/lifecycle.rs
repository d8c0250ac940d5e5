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

/// The current phase (a watch: subscribers see the latest) and every phase entered so far (a
/// watch may coalesce two quick transitions; the history never does).
#[derive(Debug)]
pub struct Lifecycle {
    tx: watch::Sender<Phase>,
    history: std::sync::Mutex<Vec<Phase>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            tx: watch::channel(Phase::Starting).0,
            history: std::sync::Mutex::new(vec![Phase::Starting]),
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

    /// Every phase entered, in order.
    pub fn history(&self) -> Vec<Phase> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Moves forward only: a phase never goes back.
    pub(crate) fn advance(&self, to: Phase) {
        self.tx.send_if_modified(|p| {
            if to > *p {
                tracing::info!(from = p.as_str(), to = to.as_str(), "lifecycle");
                *p = to;
                self.history
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(to);
                true
            } else {
                false
            }
        });
    }
}
