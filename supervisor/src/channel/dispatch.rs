//! Routes each worker notification to the one entity its `handler_id` names.
//!
//! Every entity handle (transport, producer, consumer, WebRtcServer) registers its handler id
//! when it is created — before its creation request is sent, so nothing the worker says right
//! after creating it can be missed — and unregisters when its [`Notifications`] is dropped (the
//! entity closed). Worker-level notifications (handler `""`) go to the worker's broadcast
//! subscribers. A notification for a handler nobody registered is counted
//! ([`ChannelStats::unrouted`](super::ChannelStats)) and dropped with a debug log.
//!
//! **Queues are unbounded, on purpose.** The alternative, a bounded queue that drops when full,
//! is what lost close events before (one shared `broadcast(1024)`): a lagging receiver lost
//! whatever fell out of the ring, closes included. Bounded-with-priority (drop scores, never
//! closes) would need the channel to classify every event and still could not bound memory for
//! the events it must keep. Here each entity's queue is drained by a task that does nothing but
//! update the handle's state and forward into its fan-out, so a queue only grows while that task
//! waits for the scheduler; its length is bounded by what the worker sent in the meantime, which
//! the worker itself rate-limits (scores are periodic, lifecycle events happen once). Nothing
//! the worker says about an entity is ever dropped between the reader and that entity's task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ferrosfu_fbs::{HandlerId, Notification};
use tokio::sync::{broadcast, mpsc};

#[derive(Debug)]
pub(super) struct Dispatcher {
    routes: Mutex<Routes>,
    /// Worker-level notifications (`worker.running`, channel errors): rare, so a broadcast ring
    /// is enough, and it lets several observers (spawn, tests) watch the worker.
    worker: broadcast::Sender<Notification>,
    next_token: AtomicU64,
}

#[derive(Debug)]
struct Routes {
    /// False once the reader ended: later registrations get a closed queue at once.
    open: bool,
    entities: HashMap<HandlerId, Route>,
}

#[derive(Debug)]
struct Route {
    /// Tells this registration from a later one under the same id, so a late drop of the old
    /// registration cannot remove the new one.
    token: u64,
    tx: mpsc::UnboundedSender<Notification>,
}

/// What became of a notification.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Routed {
    Entity,
    Worker,
    /// Nobody registered this handler id.
    Unrouted(HandlerId),
}

/// The handler id is already registered on this channel (an entity with that id is alive).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("handler {0} is already registered")]
pub struct AlreadyRegistered(pub HandlerId);

impl Dispatcher {
    pub(super) fn new(worker_capacity: usize) -> (Self, broadcast::Receiver<Notification>) {
        let (worker, first) = broadcast::channel(worker_capacity);
        let d = Self {
            routes: Mutex::new(Routes {
                open: true,
                entities: HashMap::new(),
            }),
            worker,
            next_token: AtomicU64::new(1),
        };
        (d, first)
    }

    fn lock(&self) -> MutexGuard<'_, Routes> {
        // Every critical section is a single map operation: a panic cannot leave it half done.
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn subscribe_worker(&self) -> broadcast::Receiver<Notification> {
        self.worker.subscribe()
    }

    pub(super) fn register(
        self: &Arc<Self>,
        handler: HandlerId,
    ) -> Result<Notifications, AlreadyRegistered> {
        let (tx, rx) = mpsc::unbounded_channel();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut routes = self.lock();
        if routes.open {
            match routes.entities.entry(handler.clone()) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    return Err(AlreadyRegistered(handler));
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Route { token, tx });
                }
            }
        }
        // When closed, `tx` drops here and the receiver reports the end at once.
        drop(routes);
        Ok(Notifications {
            rx,
            handler,
            token,
            dispatcher: Arc::downgrade(self),
        })
    }

    fn unregister(&self, handler: &HandlerId, token: u64) {
        let mut routes = self.lock();
        if routes
            .entities
            .get(handler)
            .is_some_and(|r| r.token == token)
        {
            routes.entities.remove(handler);
        }
    }

    pub(super) fn dispatch(&self, n: Notification) -> Routed {
        if n.handler_id == HandlerId::worker() {
            let _ = self.worker.send(n);
            return Routed::Worker;
        }
        let routes = self.lock();
        match routes.entities.get(&n.handler_id) {
            Some(r) => match r.tx.send(n) {
                Ok(()) => Routed::Entity,
                // The receiver is being dropped: the entity just closed.
                Err(e) => Routed::Unrouted(e.0.handler_id),
            },
            None => Routed::Unrouted(n.handler_id),
        }
    }

    /// The reader ended: every entity queue ends after what is already in it.
    pub(super) fn close(&self) {
        let mut routes = self.lock();
        routes.open = false;
        routes.entities.clear();
    }

    #[cfg(test)]
    pub(super) fn registered(&self) -> usize {
        self.lock().entities.len()
    }
}

/// One entity's notifications, in the order the worker sent them; none is ever dropped.
/// Dropping it unregisters the handler id.
#[derive(Debug)]
pub struct Notifications {
    rx: mpsc::UnboundedReceiver<Notification>,
    handler: HandlerId,
    token: u64,
    dispatcher: std::sync::Weak<Dispatcher>,
}

impl Notifications {
    /// The next notification; `None` once the channel closed (the worker exited or died) and
    /// everything queued before that was received.
    pub async fn recv(&mut self) -> Option<Notification> {
        self.rx.recv().await
    }

    pub fn handler(&self) -> &HandlerId {
        &self.handler
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        if let Some(d) = self.dispatcher.upgrade() {
            d.unregister(&self.handler, self.token);
        }
    }
}
