use ferrosfu_fbs::{RouterDump, RouterId};

use crate::tables::{ObserverKey, TransportKey};
use crate::transport::Transport;
use slotmap::SlotMap;

/// A router: the set of transports (and through them producers and consumers) that may exchange
/// media. Producers are consumable only by consumers of the same router.
#[derive(Debug)]
pub struct Router {
    id: RouterId,
    pub(crate) transports: Vec<TransportKey>,
    pub(crate) observers: Vec<ObserverKey>,
}

impl Router {
    pub(crate) fn new(id: RouterId) -> Self {
        Self {
            id,
            transports: Vec::new(),
            observers: Vec::new(),
        }
    }

    pub fn id(&self) -> &RouterId {
        &self.id
    }

    pub(crate) fn dump(&self, transports: &SlotMap<TransportKey, Transport>) -> RouterDump {
        RouterDump {
            id: self.id.clone(),
            transport_ids: self
                .transports
                .iter()
                .filter_map(|k| transports.get(*k).map(|t| t.id.to_string()))
                .collect(),
        }
    }

    /// Called once its transports are closed, on `router.close` and when the worker closes.
    pub(crate) fn close(self) {
        tracing::debug!(target: "router", id = %self.id, "router closed");
    }
}
