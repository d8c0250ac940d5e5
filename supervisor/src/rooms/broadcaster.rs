//! Broadcasters: joined peers without a connection, driven by mediasoup-demo's REST API
//! (create, transports, connect, produce, consume, delete).

use std::sync::Arc;

use serde_json::Value;

use super::api::{
    BroadcasterTransport, BroadcasterTransportRequest, Connect, Joined, Produce, Produced,
};
use super::state::Peer;
use super::transport::webrtc_dump;
use super::{Room, RoomError};
use crate::auth::Role;
use crate::ortc::{self, RtpCapabilities};

impl Room {
    /// Adds a broadcaster (a joined peer without a connection). Answers the other peers, who
    /// hear `newPeer`.
    pub(crate) async fn add_broadcaster(
        self: &Arc<Self>,
        id: &str,
        display_name: &str,
        device: Value,
        caps: Option<RtpCapabilities>,
        role: Role,
    ) -> Result<Joined, RoomError> {
        if let Some(c) = &caps {
            ortc::validate_rtp_capabilities(c)?;
        }
        self.announce_local_join(&super::api::PeerInfo {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            device: device.clone(),
        })
        .await;
        let mut st = self.state.lock().await;
        if self.is_closed() {
            return Err(RoomError::RoomClosed);
        }
        let mut peer = Peer::new(id, 0, None, role);
        peer.display_name = display_name.to_owned();
        peer.device = device;
        peer.rtp_caps = caps;
        let peers = st.add_joined(peer, self.cx.media.quotas.peers_per_room)?;
        st.peer_mut(id)?.participant = Some(self.participant_joined(id, display_name));
        tracing::info!(room = %self.id, broadcaster = id, "broadcaster joined");
        Ok(Joined { peers })
    }

    pub(crate) async fn delete_broadcaster(self: &Arc<Self>, id: &str) -> Result<(), RoomError> {
        let mut st = self.state.lock().await;
        st.broadcaster(id)?;
        if let Some(p) = st.remove(id) {
            self.gone(p);
        }
        self.close_if_empty(&st);
        Ok(())
    }

    pub(crate) async fn broadcaster_transport(
        self: &Arc<Self>,
        id: &str,
        req: BroadcasterTransportRequest,
    ) -> Result<BroadcasterTransport, RoomError> {
        {
            let st = self.state.lock().await;
            st.broadcaster(id)?;
            st.may_add_transport(id, &self.cx.media.quotas)?;
        }
        let rr = self.peer_router(id).await?;
        let (t, out) = match req {
            BroadcasterTransportRequest::WebRtc { sctp } => {
                let t = self.new_webrtc_transport(false, sctp, &rr).await?;
                let dump = webrtc_dump(&t)?;
                (t, BroadcasterTransport::WebRtc(dump))
            }
            BroadcasterTransportRequest::Plain { comedia, rtcp_mux } => {
                let (t, dump, ip) = self.new_plain_transport(comedia, rtcp_mux, &rr).await?;
                (t, BroadcasterTransport::Plain { dump, ip })
            }
        };
        self.add_transport(id, t, true).await?;
        Ok(out)
    }

    pub(crate) async fn broadcaster_connect(
        &self,
        id: &str,
        transport_id: &str,
        connect: Connect,
    ) -> Result<(), RoomError> {
        self.state.lock().await.broadcaster(id)?;
        self.connect_transport(id, transport_id, connect).await
    }

    /// A broadcaster's producer: consumed by every joined connected peer.
    pub(crate) async fn broadcaster_produce(
        self: &Arc<Self>,
        id: &str,
        req: Produce,
    ) -> Result<Produced, RoomError> {
        self.state.lock().await.broadcaster(id)?;
        self.produce(id, req).await
    }
}
