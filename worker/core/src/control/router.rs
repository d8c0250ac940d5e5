//! `worker.createRouter`, `worker.close`, and requests to a router: dump, close, create a
//! transport on it.

use std::time::Instant;

use ferrosfu_fbs::{RequestBody, RequestFailure, ResponseBody, RouterId, WebRtcServerId};

use super::{invalid, misrouted};
use crate::WorkerCore;
use crate::router::Router;
use crate::rtp_observer::RtpObserver;
use crate::transport::BoundSocket;

impl WorkerCore {
    pub(super) fn create_router(
        &mut self,
        router_id: RouterId,
    ) -> Result<ResponseBody, RequestFailure> {
        if router_id.as_str().is_empty() {
            return Err(invalid("empty router id"));
        }
        if self.tables.routers.contains_key(&router_id) {
            return Err(invalid(format!(
                "a router with id {router_id} already exists"
            )));
        }
        tracing::debug!(target: "router", id = %router_id, "router created");
        self.tables
            .routers
            .insert(router_id.clone(), Router::new(router_id));
        Ok(ResponseBody::None)
    }

    /// `worker.close`: every router and WebRtcServer closes, then the core answers nothing more.
    pub(super) fn close_worker(&mut self, now: Instant) {
        let ids: Vec<RouterId> = self.tables.routers.keys().cloned().collect();
        for id in ids {
            self.close_router(&id, now);
        }
        let servers: Vec<WebRtcServerId> = self.tables.servers.keys().cloned().collect();
        for s in servers {
            self.close_server(&s, now);
        }
        self.closed = true;
    }

    pub(super) fn router_request(
        &mut self,
        router: RouterId,
        body: RequestBody,
        sockets: Vec<BoundSocket>,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        match body {
            RequestBody::RouterDump => {
                let r = &self.tables.routers[&router];
                Ok(ResponseBody::RouterDump(r.dump(&self.tables.transports)))
            }
            RequestBody::RouterClose => {
                self.close_router(&router, now);
                Ok(ResponseBody::None)
            }
            RequestBody::RouterCreateWebRtcTransport(o) => {
                self.create_webrtc_transport(router, o, sockets, now)
            }
            RequestBody::RouterCreateDirectTransport(o) => {
                self.create_direct_transport(router, o, now)
            }
            RequestBody::RouterCreatePlainTransport(o) => {
                self.create_plain_transport(router, o, sockets, now)
            }
            RequestBody::RouterCreateActiveSpeakerObserver(o) => {
                self.create_observer(RtpObserver::active_speaker(router, o, now))
            }
            RequestBody::RouterCreateAudioLevelObserver(o) => {
                self.create_observer(RtpObserver::audio_level(router, o, now))
            }
            other => Err(misrouted(&other)),
        }
    }

    fn close_router(&mut self, id: &RouterId, now: Instant) {
        let Some(r) = self.tables.routers.remove(id) else {
            return;
        };
        for k in r.observers.clone() {
            self.close_observer(k);
        }
        for k in r.transports.clone() {
            self.close_transport(k, now, false);
        }
        r.close();
    }
}
