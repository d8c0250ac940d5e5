//! Channel requests, one file per entity: what each request does to the tables.
//!
//! [`WorkerCore::handle_request`] only routes a request to its entity's handler; replies are
//! typed ([`ResponseBody`]) and every failure is a typed [`RequestFailure`], never a panic.

mod consumer;
mod producer;
mod router;
mod server;
mod sockets;
mod transport;

use std::time::Instant;

use ferrosfu_fbs::{
    Request, RequestBody, RequestFailure, ResponseBody, SrtpCryptoSuite, WebRtcServerId, WorkerDump,
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
    /// Routes a request to the handler of the entity it is addressed to.
    pub(crate) fn handle_request(
        &mut self,
        req: Request,
        sockets: Vec<BoundSocket>,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        let h = req.handler_id;
        use RequestBody as B;
        match req.body {
            B::WorkerDump => Ok(ResponseBody::WorkerDump(WorkerDump {
                pid: self.config.pid,
                core: self.config.core,
                router_ids: self.tables.routers.keys().cloned().collect(),
            })),
            B::WorkerCreateRouter { router_id } => self.create_router(router_id),
            B::WorkerClose => {
                self.close_worker(now);
                Ok(ResponseBody::None)
            }
            B::WorkerCreateWebRtcServer(o) => self.create_server(o, sockets),
            B::WorkerGetMediaCounters => {
                let s = &self.stats;
                Ok(ResponseBody::MediaCounters(ferrosfu_fbs::MediaCounters {
                    unknown_socket: s.unknown_socket,
                    unknown_tuple: s.unknown_tuple,
                    rtp_bad_sequence: s.rtp_bad_sequence,
                    rtp_resyncs: s.rtp_resyncs,
                    dtls_failures: s.dtls_failures,
                }))
            }
            body @ (B::WorkerGetResourceUsage | B::WorkerUpdateSettings(_)) => {
                Err(RequestFailure::failed(format!(
                    "{} is handled by the worker shell, not the core",
                    body.method()
                )))
            }
            body @ (B::WebRtcServerDump | B::WebRtcServerClose) => {
                self.server_request(WebRtcServerId::new(h.as_str()), body, now)
            }
            body @ (B::RouterDump
            | B::RouterClose
            | B::RouterCreateWebRtcTransport(_)
            | B::RouterCreatePlainTransport(_)) => {
                let router = self.tables.router(&h)?.id().clone();
                self.router_request(router, body, sockets, now)
            }
            body @ (B::TransportClose
            | B::TransportDump
            | B::TransportGetStats
            | B::TransportConnect(_)
            | B::TransportRestartIce
            | B::TransportSetMaxIncomingBitrate(_)
            | B::TransportProduce(_)
            | B::TransportConsume(_)) => {
                let k = self.tables.transport_key(&h)?;
                self.transport_request(k, body, now)
            }
            body @ (B::ProducerClose
            | B::ProducerDump
            | B::ProducerGetStats
            | B::ProducerPause
            | B::ProducerResume) => {
                let k = self.tables.producer_key(&h)?;
                self.producer_request(k, body, now)
            }
            body @ (B::ConsumerClose
            | B::ConsumerDump
            | B::ConsumerGetStats
            | B::ConsumerPause
            | B::ConsumerResume
            | B::ConsumerRequestKeyFrame) => {
                let k = self.tables.consumer_key(&h)?;
                self.consumer_request(k, body, now)
            }
        }
    }
}

/// A request body routed to a handler that does not take it: a routing bug, answered as a
/// failure rather than a panic.
pub(crate) fn misrouted(body: &RequestBody) -> RequestFailure {
    RequestFailure::failed(format!("{} was routed to the wrong handler", body.method()))
}
