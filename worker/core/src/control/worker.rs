//! `worker.*` requests: the core's own dump and counters, routers, WebRtcServers, closing.

use std::time::Instant;

use ferrosfu_fbs::{RequestBody, RequestFailure, ResponseBody, WorkerDump};

use super::misrouted;
use crate::WorkerCore;
use crate::transport::BoundSocket;

impl WorkerCore {
    pub(super) fn worker_request(
        &mut self,
        body: RequestBody,
        sockets: Vec<BoundSocket>,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        use RequestBody as B;
        match body {
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
                Ok(ResponseBody::MediaCounters(Box::new(self.media_counters())))
            }
            B::WorkerGetResourceUsage | B::WorkerUpdateSettings(_) => {
                Err(RequestFailure::failed(format!(
                    "{} is handled by the worker shell, not the core",
                    body.method()
                )))
            }
            body => Err(misrouted(&body)),
        }
    }
}
