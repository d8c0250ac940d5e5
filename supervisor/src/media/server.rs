//! A WebRtcServer: one UDP/TCP port set of a worker that its WebRtcTransports share.

use std::sync::Arc;

use ferrosfu_fbs::{HandlerId, WebRtcServerDump, WebRtcServerId, WebRtcServerOptions, requests};

use super::{CloseReason, Life};
use crate::channel::RequestError;
use crate::worker::Worker;

/// A WebRtcServer: one UDP/TCP port set shared by many WebRtcTransports of a worker.
#[derive(Clone, Debug)]
pub struct WebRtcServer {
    id: WebRtcServerId,
    life: Arc<Life>,
    dump: Arc<WebRtcServerDump>,
}

impl WebRtcServer {
    pub async fn create(
        worker: &Worker,
        options: WebRtcServerOptions,
    ) -> Result<Self, RequestError> {
        let id = options.web_rtc_server_id.clone();
        let (life, notes) = Life::new(
            (&id).into(),
            worker.clone(),
            requests::WorkerCreateWebRtcServer::METHOD,
        )?;
        let dump = worker
            .request(
                HandlerId::worker(),
                requests::WorkerCreateWebRtcServer(options),
            )
            .await?;
        let w = worker.clone();
        life.watch(
            notes,
            async move { CloseReason::WorkerDied(w.died().await) },
            |_| None,
        );
        Ok(Self {
            id,
            life,
            dump: Arc::new(dump),
        })
    }

    pub fn id(&self) -> &WebRtcServerId {
        &self.id
    }

    /// The bound listen infos (actual ports).
    pub fn listen_infos(&self) -> &[ferrosfu_fbs::ListenInfo] {
        &self.dump.listen_infos
    }

    pub async fn dump(&self) -> Result<WebRtcServerDump, RequestError> {
        self.life.request(requests::WebRtcServerDump).await
    }

    pub async fn close(&self) -> Result<(), RequestError> {
        self.life.close_by_user(requests::WebRtcServerClose).await
    }
}
