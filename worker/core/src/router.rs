use ferrosfu_fbs::{RouterDump, RouterId};

/// A router: the set of transports, producers and consumers that may exchange media. It holds no
/// transports yet (they arrive with the media plane).
#[derive(Debug)]
pub struct Router {
    id: RouterId,
}

impl Router {
    pub(crate) fn new(id: RouterId) -> Self {
        Self { id }
    }

    pub fn id(&self) -> &RouterId {
        &self.id
    }

    pub(crate) fn dump(&self) -> RouterDump {
        RouterDump {
            id: self.id.clone(),
            transport_ids: Vec::new(),
        }
    }

    /// Closes everything the router holds. Called on `router.close` and when the worker closes.
    pub(crate) fn close(self) {
        tracing::debug!(target: "router", id = %self.id, "router closed");
    }
}
