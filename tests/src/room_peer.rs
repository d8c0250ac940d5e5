//! A protoo peer of a room with data channels, as mediasoup-demo's client sets one up: a send
//! and a receive WebRTC transport with SCTP (webrtc-rs, [`crate::data_client`]), connected,
//! then `join`; it produces data and accepts `newDataConsumer` offers.

#![allow(clippy::unwrap_used)] // test support: a panic is the failure report

use std::time::Duration;

use serde_json::{Value, json};

use crate::data_client::{Channel, DataPeer};
use crate::protoo::{ProtooClient, dtls_json};

const READY: Duration = Duration::from_secs(15);

/// mediasoup-client's `sctpCapabilities` (1024 streams each way).
pub fn sctp_capabilities() -> Value {
    json!({"numStreams": {"OS": 1024, "MIS": 1024}})
}

/// A protoo peer with a send and a receive transport (both with SCTP), connected, as
/// mediasoup-demo's client sets them up before `join`.
pub struct RoomPeer {
    pub protoo: ProtooClient,
    pub send_id: String,
    pub send: DataPeer,
    pub recv: DataPeer,
}

impl std::fmt::Debug for RoomPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomPeer")
            .field("send_id", &self.send_id)
            .finish_non_exhaustive()
    }
}

impl RoomPeer {
    async fn transport(protoo: &mut ProtooClient, producing: bool) -> (String, DataPeer) {
        let t = protoo
            .ok(
                "createWebRtcTransport",
                json!({"forceTcp": false, "producing": producing, "consuming": !producing,
                    "sctpCapabilities": sctp_capabilities()}),
            )
            .await
            .unwrap();
        let sctp = &t["sctpParameters"];
        assert_eq!(sctp["port"], 5000, "{t}");
        assert_eq!(
            (sctp["OS"].as_u64(), sctp["MIS"].as_u64()),
            (Some(1024), Some(1024))
        );
        assert_eq!(sctp["maxMessageSize"], 262_144);
        let id = t["id"].as_str().unwrap().to_owned();
        let dp = DataPeer::new().await.unwrap();
        protoo
            .ok(
                "connectWebRtcTransport",
                json!({"transportId": id, "dtlsParameters": dtls_json(&dp.local_dtls_parameters().unwrap())}),
            )
            .await
            .unwrap();
        dp.connect(&t).await.unwrap();
        dp.wait_ready(READY).await.unwrap();
        (id, dp)
    }

    /// Connects to `room` as `name`, with both transports connected, and joins.
    pub async fn join(addr: std::net::SocketAddr, room: &str, name: &str) -> RoomPeer {
        let mut protoo = ProtooClient::connect(addr, room, name, None).await.unwrap();
        let (send_id, send) = Self::transport(&mut protoo, true).await;
        let (_, recv) = Self::transport(&mut protoo, false).await;
        let caps = protoo.client_caps().await.unwrap();
        protoo
            .ok(
                "join",
                json!({"displayName": name, "device": {"name": "rust"}, "rtpCapabilities": caps,
                    "sctpCapabilities": sctp_capabilities()}),
            )
            .await
            .unwrap();
        RoomPeer {
            protoo,
            send_id,
            send,
            recv,
        }
    }

    /// A data producer labelled `label` on stream `stream_id` of the send transport: the
    /// channel opens first (as mediasoup-client does), then `produceData`. (Label `chat` is
    /// checked and relayed by the room; any other goes peer to peer through the worker.)
    pub async fn produce(&mut self, label: &str, stream_id: u16) -> (Channel, String) {
        let ch = self.send.open(label, stream_id).await.unwrap();
        let r = self
            .protoo
            .ok(
                "produceData",
                json!({"transportId": self.send_id, "label": label, "protocol": "",
                    "sctpStreamParameters": {"streamId": stream_id, "ordered": true},
                    "appData": {"info": "my-chat-DataProducer"}}),
            )
            .await
            .unwrap();
        (ch, r["id"].as_str().unwrap().to_owned())
    }

    /// Waits for `newDataConsumer`, opens its channel on the receive transport, accepts it.
    pub async fn accept_data_consumer(&mut self) -> (Channel, Value) {
        let req = self.protoo.wait_for("newDataConsumer").await.unwrap();
        assert_eq!(req["request"], true, "{req}");
        let d = req["data"].clone();
        let stream = d["sctpStreamParameters"]["streamId"].as_u64().unwrap() as u16;
        let ch = self
            .recv
            .open(d["label"].as_str().unwrap(), stream)
            .await
            .unwrap();
        self.protoo
            .send(json!({"response": true, "id": req["id"], "ok": true, "data": {}}))
            .await
            .unwrap();
        (ch, d)
    }
}
