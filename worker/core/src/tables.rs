//! The worker's entities and how they are found.
//!
//! Transports, producers and consumers live in slot maps under typed keys: a [`TransportKey`]
//! cannot be used where a [`ProducerKey`] is meant, and a key kept after its entity closed (in a
//! list of another entity, say) finds nothing instead of a newer entity in the reused slot (the
//! slot's generation is checked). Lookup by key is an index, not a hash: it is on the per-packet
//! path. The channel names entities by their ids; the id maps here translate them, once per
//! request.

use std::collections::{BTreeMap, HashMap};

use ferrosfu_fbs::{
    ConsumerId, HandlerId, ProducerId, RequestFailure, RouterId, RtpObserverId, TransportId,
    WebRtcServerId,
};
use slotmap::{SlotMap, new_key_type};

use crate::consumer::Consumer;
use crate::data::DataTables;
use crate::producer::Producer;
use crate::router::Router;
use crate::rtp_observer::RtpObserver;
use crate::transport::{BoundSocket, Transport};

new_key_type! {
    /// A transport of this worker (WebRtcTransport or PlainTransport).
    pub(crate) struct TransportKey;
    /// A producer of this worker.
    pub(crate) struct ProducerKey;
    /// A consumer of this worker.
    pub(crate) struct ConsumerKey;
    /// An RtpObserver (audio level, active speaker) of this worker.
    pub(crate) struct ObserverKey;
}

/// A WebRtcServer: sockets shared by the WebRtcTransports created on it.
#[derive(Debug)]
pub(crate) struct Server {
    pub sockets: Vec<BoundSocket>,
    pub transports: Vec<TransportKey>,
}

fn invalid(e: impl Into<String>) -> RequestFailure {
    RequestFailure::invalid_argument(e)
}

/// Every entity of the worker, by key and by id.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub routers: BTreeMap<RouterId, Router>,
    pub servers: BTreeMap<WebRtcServerId, Server>,
    pub transports: SlotMap<TransportKey, Transport>,
    pub producers: SlotMap<ProducerKey, Producer>,
    pub consumers: SlotMap<ConsumerKey, Consumer>,
    pub observers: SlotMap<ObserverKey, RtpObserver>,
    /// DataProducers and DataConsumers.
    pub data: DataTables,
    transport_ids: HashMap<TransportId, TransportKey>,
    observer_ids: HashMap<RtpObserverId, ObserverKey>,
    producer_ids: HashMap<ProducerId, ProducerKey>,
    consumer_ids: HashMap<ConsumerId, ConsumerKey>,
}

impl Tables {
    pub(crate) fn router(&self, handler: &HandlerId) -> Result<&Router, RequestFailure> {
        self.routers
            .get(&RouterId::new(handler.as_str()))
            .ok_or_else(|| invalid(format!("no router with id {:?}", handler.as_str())))
    }

    /// The transport a request is addressed to.
    pub(crate) fn transport_key(
        &self,
        handler: &HandlerId,
    ) -> Result<TransportKey, RequestFailure> {
        self.transport_ids
            .get(&TransportId::new(handler.as_str()))
            .copied()
            .ok_or_else(|| invalid(format!("no transport with id {:?}", handler.as_str())))
    }

    /// The producer a request is addressed to.
    pub(crate) fn producer_key(&self, handler: &HandlerId) -> Result<ProducerKey, RequestFailure> {
        self.producer_by_id(&ProducerId::new(handler.as_str()))
    }

    pub(crate) fn producer_by_id(&self, id: &ProducerId) -> Result<ProducerKey, RequestFailure> {
        self.producer_ids
            .get(id)
            .copied()
            .ok_or_else(|| invalid(format!("no producer with id {:?}", id.as_str())))
    }

    /// The consumer a request is addressed to.
    pub(crate) fn consumer_key(&self, handler: &HandlerId) -> Result<ConsumerKey, RequestFailure> {
        self.consumer_ids
            .get(&ConsumerId::new(handler.as_str()))
            .copied()
            .ok_or_else(|| invalid(format!("no consumer with id {:?}", handler.as_str())))
    }

    /// A new transport may take this id: not empty, not in use.
    pub(crate) fn check_new_transport_id(&self, id: &TransportId) -> Result<(), RequestFailure> {
        if id.as_str().is_empty() {
            return Err(invalid("empty transport id"));
        }
        if self.transport_ids.contains_key(id) {
            return Err(invalid(format!("a transport with id {id} already exists")));
        }
        Ok(())
    }

    pub(crate) fn check_new_producer_id(&self, id: &ProducerId) -> Result<(), RequestFailure> {
        if id.as_str().is_empty() || self.producer_ids.contains_key(id) {
            return Err(invalid(format!(
                "bad or duplicate producer id {:?}",
                id.as_str()
            )));
        }
        Ok(())
    }

    pub(crate) fn check_new_consumer_id(&self, id: &ConsumerId) -> Result<(), RequestFailure> {
        if id.as_str().is_empty() || self.consumer_ids.contains_key(id) {
            return Err(invalid(format!(
                "bad or duplicate consumer id {:?}",
                id.as_str()
            )));
        }
        Ok(())
    }

    /// The RtpObserver a request is addressed to.
    pub(crate) fn observer_key(&self, handler: &HandlerId) -> Result<ObserverKey, RequestFailure> {
        self.observer_ids
            .get(&RtpObserverId::new(handler.as_str()))
            .copied()
            .ok_or_else(|| invalid(format!("no rtp observer with id {:?}", handler.as_str())))
    }

    /// Adds an observer, unless its id is taken (or empty).
    pub(crate) fn insert_observer(
        &mut self,
        o: RtpObserver,
    ) -> Result<ObserverKey, RequestFailure> {
        if o.id.as_str().is_empty() || self.observer_ids.contains_key(&o.id) {
            return Err(invalid(format!(
                "rtp observer id {:?} is empty or taken",
                o.id.as_str()
            )));
        }
        let id = o.id.clone();
        let k = self.observers.insert(o);
        self.observer_ids.insert(id, k);
        Ok(k)
    }

    pub(crate) fn remove_observer(&mut self, k: ObserverKey) -> Option<RtpObserver> {
        let o = self.observers.remove(k)?;
        self.observer_ids.remove(&o.id);
        Some(o)
    }

    /// Adds a transport whose id was checked with [`Self::check_new_transport_id`].
    pub(crate) fn insert_transport(&mut self, t: Transport) -> TransportKey {
        let id = t.id.clone();
        let k = self.transports.insert(t);
        self.transport_ids.insert(id, k);
        k
    }

    pub(crate) fn remove_transport(&mut self, k: TransportKey) -> Option<Transport> {
        let t = self.transports.remove(k)?;
        self.transport_ids.remove(&t.id);
        Some(t)
    }

    /// Adds a producer whose id was checked with [`Self::check_new_producer_id`].
    pub(crate) fn insert_producer(&mut self, p: Producer) -> ProducerKey {
        let id = p.id.clone();
        let k = self.producers.insert(p);
        self.producer_ids.insert(id, k);
        k
    }

    pub(crate) fn remove_producer(&mut self, k: ProducerKey) -> Option<Producer> {
        let p = self.producers.remove(k)?;
        self.producer_ids.remove(&p.id);
        Some(p)
    }

    /// Adds a consumer whose id was checked with [`Self::check_new_consumer_id`].
    pub(crate) fn insert_consumer(&mut self, c: Consumer) -> ConsumerKey {
        let id = c.id.clone();
        let k = self.consumers.insert(c);
        self.consumer_ids.insert(id, k);
        k
    }

    pub(crate) fn remove_consumer(&mut self, k: ConsumerKey) -> Option<Consumer> {
        let c = self.consumers.remove(k)?;
        // A pipe consumer's other streams share its id without owning it.
        if self.consumer_ids.get(&c.id) == Some(&k) {
            self.consumer_ids.remove(&c.id);
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::proto::ice::Protocol;
    use crate::transport::{Kind, Plain};

    fn plain(id: &str) -> Transport {
        let socket = BoundSocket {
            protocol: Protocol::Udp,
            local: SocketAddr::from(([127, 0, 0, 1], 40000)),
            announced: None,
        };
        Transport::new(
            TransportId::new(id),
            RouterId::new("r"),
            Kind::Plain(Box::new(Plain::new(socket.clone(), None, true, true, None))),
            vec![socket],
            1,
            crate::test_epoch(),
        )
    }

    fn handler(s: &str) -> HandlerId {
        HandlerId::new(s)
    }

    #[test]
    fn transports_are_found_by_key_and_by_id() {
        let mut t = Tables::default();
        t.check_new_transport_id(&TransportId::new("a")).unwrap();
        let a = t.insert_transport(plain("a"));
        let b = t.insert_transport(plain("b"));
        assert_ne!(a, b);
        assert_eq!(t.transport_key(&handler("a")).unwrap(), a);
        assert_eq!(t.transport_key(&handler("b")).unwrap(), b);
        assert_eq!(t.transports[a].id.as_str(), "a");
        assert!(t.transport_key(&handler("c")).is_err());
    }

    #[test]
    fn a_new_transport_id_must_be_non_empty_and_unused() {
        let mut t = Tables::default();
        t.insert_transport(plain("a"));
        assert!(t.check_new_transport_id(&TransportId::new("")).is_err());
        assert!(t.check_new_transport_id(&TransportId::new("a")).is_err());
        assert!(t.check_new_transport_id(&TransportId::new("b")).is_ok());
        assert!(t.check_new_producer_id(&ProducerId::new("")).is_err());
        assert!(t.check_new_consumer_id(&ConsumerId::new("")).is_err());
        assert!(t.check_new_consumer_id(&ConsumerId::new("c")).is_ok());
    }

    #[test]
    fn a_removed_transport_frees_its_id_and_its_stale_key_finds_nothing() {
        let mut t = Tables::default();
        let a = t.insert_transport(plain("a"));
        assert_eq!(
            t.remove_transport(a).map(|x| x.id.to_string()),
            Some("a".into())
        );
        assert!(t.transport_key(&handler("a")).is_err());
        assert!(t.check_new_transport_id(&TransportId::new("a")).is_ok());
        assert!(t.remove_transport(a).is_none(), "removed twice");
        // The slot is reused by the next transport, but the old key does not see it: a key
        // kept in another entity's list after its transport closed cannot reach a newer one.
        let b = t.insert_transport(plain("b"));
        assert!(t.transports.get(a).is_none());
        assert_eq!(t.transports[b].id.as_str(), "b");
        assert_eq!(t.transports.len(), 1);
    }

    #[test]
    fn unknown_entities_are_typed_errors_not_panics() {
        let t = Tables::default();
        assert!(t.router(&handler("r")).is_err());
        assert!(t.producer_key(&handler("p")).is_err());
        assert!(t.consumer_key(&handler("c")).is_err());
        assert!(t.producer_by_id(&ProducerId::new("p")).is_err());
    }
}
