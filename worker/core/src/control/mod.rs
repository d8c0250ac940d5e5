//! Channel requests, one file per entity: what each request does to the tables.
//!
//! [`WorkerCore::handle_request`] only routes a request to its entity's handler (by the method's
//! entity, so adding a method touches only its entity's file here); replies are
//! typed ([`ResponseBody`]) and every failure is a typed [`RequestFailure`], never a panic.

mod consumer;
mod data;
mod producer;
mod router;
mod rtp_observer;
mod server;
mod sockets;
mod transport;
mod worker;

use std::time::Instant;

use ferrosfu_fbs::{
    Entity, Request, RequestBody, RequestFailure, ResponseBody, SrtpCryptoSuite, WebRtcServerId,
};

use crate::WorkerCore;
use crate::proto::srtp::SrtpProfile;
use crate::transport::BoundSocket;

pub use sockets::{SocketRequest, sockets_needed};

pub(crate) fn failure(e: impl std::fmt::Display) -> RequestFailure {
    RequestFailure::failed(e.to_string())
}

pub(crate) fn invalid(e: impl Into<String>) -> RequestFailure {
    RequestFailure::invalid_argument(e)
}

pub(crate) fn suite_profile(s: SrtpCryptoSuite) -> SrtpProfile {
    match s {
        SrtpCryptoSuite::AeadAes256Gcm => SrtpProfile::AeadAes256Gcm,
        SrtpCryptoSuite::AeadAes128Gcm => SrtpProfile::AeadAes128Gcm,
        SrtpCryptoSuite::AesCm128HmacSha1_80 => SrtpProfile::AesCm128HmacSha1_80,
        SrtpCryptoSuite::AesCm128HmacSha1_32 => SrtpProfile::AesCm128HmacSha1_32,
    }
}

impl WorkerCore {
    /// Routes a request to the handler of the entity it is addressed to (its method's
    /// `<entity>.` prefix, [`ferrosfu_fbs::Method::entity`]): a new method needs no routing.
    pub(crate) fn handle_request(
        &mut self,
        req: Request,
        sockets: Vec<BoundSocket>,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        let h = req.handler_id;
        let body = req.body;
        match body.method().entity() {
            Entity::Worker => self.worker_request(body, sockets, now),
            Entity::WebRtcServer => self.server_request(WebRtcServerId::new(h.as_str()), body, now),
            Entity::Router => {
                let router = self.tables.router(&h)?.id().clone();
                self.router_request(router, body, sockets, now)
            }
            Entity::Transport => {
                let k = self.tables.transport_key(&h)?;
                self.transport_request(k, body, now)
            }
            Entity::Producer => {
                let k = self.tables.producer_key(&h)?;
                self.producer_request(k, body, now)
            }
            Entity::Consumer => {
                let k = self.tables.consumer_key(&h)?;
                self.consumer_request(k, body, now)
            }
            Entity::RtpObserver => {
                let k = self.tables.observer_key(&h)?;
                self.observer_request(k, body, now)
            }
            Entity::DataProducer => {
                let k = self.tables.data.producer_key(&h)?;
                self.data_producer_request(k, body, now)
            }
            Entity::DataConsumer => {
                let k = self.tables.data.consumer_key(&h)?;
                self.data_consumer_request(k, body, now)
            }
        }
    }
}

/// A request body routed to a handler that does not take it: a routing bug, answered as a
/// failure rather than a panic.
pub(crate) fn misrouted(body: &RequestBody) -> RequestFailure {
    RequestFailure::failed(format!("{} was routed to the wrong handler", body.method()))
}
