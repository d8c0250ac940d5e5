//! protoo requests (mediasoup-demo's `_handleProtooRequest`): each method's `data` parsed into
//! a typed struct, the room called, its answer turned back into the demo's JSON. The
//! broadcaster REST API shares the bodies it has in common (`produce`, DTLS parameters).

use std::num::NonZeroU16;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ProtooError;
use super::json::{self as js, Dtls};
use crate::ortc::{MediaKind, RtpCapabilities, RtpParameters};
use crate::rooms::{
    Connect, ConsumerAction, Join, Produce, ProduceData, ProducerAction, Room, SctpStreamParams,
    WebRtcTransportRequest,
};

/// A non-empty string (ids, names).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct NonEmpty(pub String);

impl TryFrom<String> for NonEmpty {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() {
            Err("must not be empty")
        } else {
            Ok(Self(s))
        }
    }
}

/// A layer number (0-15).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(try_from = "u8")]
struct Layer(u8);

impl TryFrom<u8> for Layer {
    type Error = &'static str;
    fn try_from(n: u8) -> Result<Self, Self::Error> {
        if n < 16 {
            Ok(Layer(n))
        } else {
            Err("a layer is 0-15")
        }
    }
}

/// A consumer priority (1-255).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(try_from = "u8")]
struct Priority(u8);

impl TryFrom<u8> for Priority {
    type Error = &'static str;
    fn try_from(n: u8) -> Result<Self, Self::Error> {
        if n >= 1 {
            Ok(Priority(n))
        } else {
            Err("'priority' must be 1-255")
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinRequest {
    display_name: Option<String>,
    device: Option<Map<String, Value>>,
    rtp_capabilities: Option<RtpCapabilities>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateWebRtcTransportRequest {
    force_tcp: Option<bool>,
    producing: Option<bool>,
    consuming: Option<bool>,
    sctp_capabilities: Option<SctpCapabilities>,
}

/// mediasoup-client's `device.sctpCapabilities`: `{numStreams: {OS, MIS}}` (mediasoup's
/// 1024/1024 when `numStreams` is absent).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SctpCapabilities {
    #[serde(default)]
    num_streams: NumStreams,
}

#[derive(Clone, Copy, Debug, Deserialize)]
struct NumStreams {
    #[serde(rename = "OS")]
    os: u16,
    #[serde(rename = "MIS")]
    mis: u16,
}

impl Default for NumStreams {
    fn default() -> Self {
        Self {
            os: 1024,
            mis: 1024,
        }
    }
}

impl SctpCapabilities {
    pub(super) fn streams(self) -> ferrosfu_fbs::NumSctpStreams {
        ferrosfu_fbs::NumSctpStreams {
            os: self.num_streams.os,
            mis: self.num_streams.mis,
        }
    }
}

/// What a data producer is made of: protoo's `produceData` (with `transportId`) and the REST
/// broadcaster's `…/transports/:transportId/produce/data` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProduceDataBody {
    sctp_stream_parameters: SctpStreamParams,
    label: Option<String>,
    protocol: Option<String>,
    app_data: Option<Value>,
}

impl ProduceDataBody {
    pub(super) fn on(self, transport_id: String) -> ProduceData {
        ProduceData {
            transport_id,
            sctp_stream_parameters: self.sctp_stream_parameters,
            label: self.label.unwrap_or_default(),
            protocol: self.protocol.unwrap_or_default(),
            app_data: self.app_data.unwrap_or_else(|| json!({})),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProduceDataRequest {
    transport_id: NonEmpty,
    #[serde(flatten)]
    body: ProduceDataBody,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataProducerRequest {
    data_producer_id: NonEmpty,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataConsumerRequest {
    data_consumer_id: NonEmpty,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectWebRtcTransportRequest {
    transport_id: NonEmpty,
    dtls_parameters: Dtls,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransportRequest {
    transport_id: NonEmpty,
}

/// What a producer is made of: protoo's `produce` (with `transportId`) and the REST
/// broadcaster's `…/transports/:transportId/producers` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProduceBody {
    kind: MediaKind,
    rtp_parameters: RtpParameters,
    app_data: Option<Value>,
    paused: Option<bool>,
}

impl ProduceBody {
    pub(super) fn on(self, transport_id: String) -> Produce {
        Produce {
            transport_id,
            kind: self.kind,
            rtp_parameters: self.rtp_parameters,
            app_data: self.app_data.unwrap_or_else(|| json!({})),
            paused: self.paused.unwrap_or(false),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProduceRequest {
    transport_id: NonEmpty,
    #[serde(flatten)]
    body: ProduceBody,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProducerRequest {
    producer_id: NonEmpty,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsumerRequest {
    consumer_id: NonEmpty,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreferredLayersRequest {
    consumer_id: NonEmpty,
    spatial_layer: Layer,
    temporal_layer: Option<Layer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriorityRequest {
    consumer_id: NonEmpty,
    priority: Priority,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct E2eeKeyRequest {
    public_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DisplayNameRequest {
    display_name: NonEmpty,
}

/// The broadcaster REST API's plain-transport connect body fields, with `dtlsParameters` for
/// a WebRtcTransport.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConnectBody {
    dtls_parameters: Option<Dtls>,
    ip: Option<std::net::IpAddr>,
    port: Option<NonZeroU16>,
    rtcp_port: Option<NonZeroU16>,
}

impl From<ConnectBody> for Connect {
    fn from(b: ConnectBody) -> Self {
        match b.dtls_parameters {
            Some(d) => Connect::WebRtc(d.0),
            None => Connect::Plain {
                ip: b.ip.map(|ip| ip.to_string()),
                port: b.port.map(NonZeroU16::get),
                rtcp_port: b.rtcp_port.map(NonZeroU16::get),
            },
        }
    }
}

/// `data` as `T`; a missing or null `data` is an empty object.
pub(super) fn parse<T: DeserializeOwned>(data: Value) -> Result<T, String> {
    let data = if data.is_null() { json!({}) } else { data };
    serde_json::from_value(data).map_err(|e| e.to_string())
}

fn data<T: DeserializeOwned>(data: Value) -> Result<T, ProtooError> {
    parse(data).map_err(ProtooError::bad_request)
}

fn to_json<T: Serialize>(v: &T) -> Result<Value, ProtooError> {
    serde_json::to_value(v).map_err(|e| ProtooError::internal(e.to_string()))
}

/// What to do once the answer is out.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Then {
    Nothing,
    /// The peer joined: offer it every producer of the others.
    ConsumeAll,
}

/// Handles one request of `peer_id`.
pub(super) async fn handle(
    room: &Arc<Room>,
    peer_id: &str,
    method: &str,
    d: Value,
    turn: Option<&crate::turn::Turn>,
) -> (Result<Value, ProtooError>, Then) {
    let ice_servers = || match turn {
        Some(t) => json!(t.ice_servers(peer_id)),
        None => json!([]),
    };
    match method {
        "getIceServers" => return (Ok(json!({ "iceServers": ice_servers() })), Then::Nothing),
        "createWebRtcTransport" => {
            // mediasoup-client's createSend/RecvTransport takes `iceServers` beside the rest.
            let mut r = request(room, peer_id, method, d).await;
            if let Ok(Value::Object(m)) = &mut r {
                m.insert("iceServers".into(), ice_servers());
            }
            return (r, Then::Nothing);
        }
        _ => {}
    }
    if method == "join" {
        let r = join(room, peer_id, d).await;
        let then = if r.is_ok() {
            Then::ConsumeAll
        } else {
            Then::Nothing
        };
        return (r, then);
    }
    (request(room, peer_id, method, d).await, Then::Nothing)
}

async fn join(room: &Arc<Room>, peer_id: &str, d: Value) -> Result<Value, ProtooError> {
    let r: JoinRequest = data(d)?;
    // What the room acts on: a two-party call peer to peer, end-to-end encryption.
    for flag in ["p2p", "e2ee"] {
        if r.device
            .as_ref()
            .and_then(|d| d.get(flag))
            .is_some_and(|v| !v.is_boolean())
        {
            return Err(ProtooError::bad_request(format!(
                "device.{flag} must be a boolean"
            )));
        }
    }
    let joined = room
        .join(
            peer_id,
            Join {
                display_name: r.display_name,
                device: r.device.map(Value::Object),
                rtp_capabilities: r.rtp_capabilities,
            },
        )
        .await?;
    to_json(&joined)
}

async fn request(
    room: &Arc<Room>,
    peer_id: &str,
    method: &str,
    d: Value,
) -> Result<Value, ProtooError> {
    let done = || Ok(json!({}));
    match method {
        "getRouterRtpCapabilities" => to_json(room.rtp_capabilities()),
        "createWebRtcTransport" => {
            let r: CreateWebRtcTransportRequest = data(d)?;
            let req = WebRtcTransportRequest {
                force_tcp: r.force_tcp.unwrap_or(false),
                producing: r.producing.unwrap_or(false),
                consuming: r.consuming.unwrap_or(false),
                sctp: r.sctp_capabilities.map(SctpCapabilities::streams),
            };
            let dump = room.create_webrtc_transport(peer_id, req).await?;
            Ok(js::webrtc_transport(&dump))
        }
        "connectWebRtcTransport" => {
            let r: ConnectWebRtcTransportRequest = data(d)?;
            let connect = Connect::WebRtc(r.dtls_parameters.0);
            room.connect_transport(peer_id, &r.transport_id.0, connect)
                .await?;
            done()
        }
        "restartIce" => {
            let r: TransportRequest = data(d)?;
            let ice = room.restart_ice(peer_id, &r.transport_id.0).await?;
            Ok(js::ice_parameters(&ice))
        }
        "produce" => {
            let r: ProduceRequest = data(d)?;
            to_json(&room.produce(peer_id, r.body.on(r.transport_id.0)).await?)
        }
        "produceData" => {
            let r: ProduceDataRequest = data(d)?;
            let produced = room
                .produce_data(peer_id, r.body.on(r.transport_id.0))
                .await?;
            Ok(json!({ "id": produced.id }))
        }
        "shareFile" => {
            let f: crate::rooms::ShareFile = data(d)?;
            let (file_id, receivers) = room.share_file(peer_id, f).await?;
            Ok(json!({ "fileId": file_id, "receivers": receivers }))
        }
        "getDataProducerStats" => {
            let r: DataProducerRequest = data(d)?;
            Ok(js::stats(
                &room
                    .data_producer_stats(peer_id, &r.data_producer_id.0)
                    .await?,
            ))
        }
        "getDataConsumerStats" => {
            let r: DataConsumerRequest = data(d)?;
            Ok(js::stats(
                &room
                    .data_consumer_stats(peer_id, &r.data_consumer_id.0)
                    .await?,
            ))
        }
        "closeProducer" | "pauseProducer" | "resumeProducer" => {
            let r: ProducerRequest = data(d)?;
            let action = match method {
                "closeProducer" => ProducerAction::Close,
                "pauseProducer" => ProducerAction::Pause,
                _ => ProducerAction::Resume,
            };
            room.producer_action(peer_id, &r.producer_id.0, action)
                .await?;
            done()
        }
        "pauseConsumer" | "resumeConsumer" | "requestConsumerKeyFrame" => {
            let r: ConsumerRequest = data(d)?;
            let action = match method {
                "pauseConsumer" => ConsumerAction::Pause,
                "resumeConsumer" => ConsumerAction::Resume,
                _ => ConsumerAction::RequestKeyFrame,
            };
            room.consumer_action(peer_id, &r.consumer_id.0, action)
                .await?;
            done()
        }
        "setConsumerPreferredLayers" => {
            let r: PreferredLayersRequest = data(d)?;
            let layers = ferrosfu_fbs::ConsumerLayers {
                spatial_layer: r.spatial_layer.0,
                temporal_layer: r.temporal_layer.map(|t| t.0),
            };
            room.consumer_action(
                peer_id,
                &r.consumer_id.0,
                ConsumerAction::SetPreferredLayers(layers),
            )
            .await?;
            done()
        }
        "setConsumerPriority" => {
            let r: PriorityRequest = data(d)?;
            room.consumer_action(
                peer_id,
                &r.consumer_id.0,
                ConsumerAction::SetPriority(r.priority.0),
            )
            .await?;
            done()
        }
        "p2pSignal" => {
            // {peerId, description | candidate}: relayed to the partner of a direct call.
            let Value::Object(mut m) = d else {
                return Err(ProtooError::bad_request(
                    "p2pSignal: data must be an object",
                ));
            };
            let to = match m.remove("peerId") {
                Some(Value::String(to)) if !to.is_empty() => to,
                _ => {
                    return Err(ProtooError::bad_request(
                        "p2pSignal: peerId must be a string",
                    ));
                }
            };
            room.p2p_signal(peer_id, &to, m).await?;
            done()
        }
        "e2eeKey" => {
            let r: E2eeKeyRequest = data(d)?;
            room.e2ee_key(peer_id, r.public_key).await?;
            done()
        }
        "e2eeSenderKey" => {
            let key: crate::rooms::SenderKey = data(d)?;
            room.e2ee_sender_key(peer_id, key).await?;
            done()
        }
        "p2pConnected" => {
            room.p2p_connected(peer_id).await?;
            done()
        }
        "changeDisplayName" => {
            let r: DisplayNameRequest = data(d)?;
            room.change_display_name(peer_id, r.display_name.0).await?;
            done()
        }
        "getTransportStats" => {
            let r: TransportRequest = data(d)?;
            Ok(js::stats(
                &room.transport_stats(peer_id, &r.transport_id.0).await?,
            ))
        }
        "getProducerStats" => {
            let r: ProducerRequest = data(d)?;
            Ok(js::stats(
                &room.producer_stats(peer_id, &r.producer_id.0).await?,
            ))
        }
        "getConsumerStats" => {
            let r: ConsumerRequest = data(d)?;
            Ok(js::stats(
                &room.consumer_stats(peer_id, &r.consumer_id.0).await?,
            ))
        }
        other => Err(ProtooError::not_found(format!("unknown method {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails<T: DeserializeOwned + std::fmt::Debug>(v: Value) -> String {
        parse::<T>(v).expect_err("refused")
    }

    #[test]
    fn missing_data_is_an_empty_object() {
        let r: CreateWebRtcTransportRequest = parse(Value::Null).unwrap();
        assert_eq!((r.force_tcp, r.producing, r.consuming), (None, None, None));
        let r: CreateWebRtcTransportRequest =
            parse(json!({"producing": null, "consuming": true, "sctpCapabilities": {}})).unwrap();
        assert_eq!((r.producing, r.consuming), (None, Some(true)));
        assert_eq!(r.sctp_capabilities.unwrap().streams().os, 1024);
        fails::<CreateWebRtcTransportRequest>(json!({"producing": "yes"}));
    }

    #[test]
    fn ids_are_non_empty_strings() {
        fails::<TransportRequest>(json!({}));
        fails::<TransportRequest>(json!({"transportId": ""}));
        fails::<ProducerRequest>(json!({"producerId": 7}));
        let r: ConsumerRequest = parse(json!({"consumerId": "c"})).unwrap();
        assert_eq!(r.consumer_id.0, "c");
        fails::<DisplayNameRequest>(json!({"displayName": 5}));
    }

    #[test]
    fn join_takes_an_object_device_and_capabilities() {
        let r: JoinRequest = parse(json!({})).unwrap();
        assert!(r.display_name.is_none() && r.device.is_none());
        fails::<JoinRequest>(json!({"device": "phone"}));
        fails::<JoinRequest>(json!({"displayName": 1}));
        let r: JoinRequest = parse(
            json!({"displayName": "A", "device": {"name": "x"}, "rtpCapabilities": {"codecs": []}}),
        )
        .unwrap();
        assert_eq!(r.display_name.as_deref(), Some("A"));
        assert!(r.rtp_capabilities.is_some());
    }

    #[test]
    fn sctp_capabilities_and_produce_data_are_parsed() {
        let r: CreateWebRtcTransportRequest = parse(
            json!({"producing": true, "sctpCapabilities": {"numStreams": {"OS": 1024, "MIS": 512}}}),
        )
        .unwrap();
        let n = r.sctp_capabilities.unwrap().streams();
        assert_eq!((n.os, n.mis), (1024, 512));
        fails::<CreateWebRtcTransportRequest>(json!({"sctpCapabilities": {"numStreams": {}}}));
        let r: ProduceDataRequest = parse(json!({"transportId": "t",
            "sctpStreamParameters": {"streamId": 0, "ordered": true},
            "label": "chat", "protocol": "", "appData": {"info": "x"}}))
        .unwrap();
        let p = r.body.on(r.transport_id.0);
        assert_eq!(
            (p.label.as_str(), p.sctp_stream_parameters.stream_id),
            ("chat", 0)
        );
        fails::<ProduceDataRequest>(json!({"transportId": "t", "label": "chat"}));
        fails::<ProduceDataRequest>(
            json!({"transportId": "t", "sctpStreamParameters": {"streamId": -1}}),
        );
        fails::<DataConsumerRequest>(json!({"dataConsumerId": ""}));
    }

    #[test]
    fn produce_needs_kind_and_parameters() {
        fails::<ProduceRequest>(json!({"transportId": "t", "kind": "audio"}));
        fails::<ProduceRequest>(json!({"transportId": "t", "kind": "text", "rtpParameters": {}}));
        let r: ProduceRequest = parse(json!({
            "transportId": "t", "kind": "audio", "rtpParameters": {"codecs": []},
            "appData": {"source": "mic"}
        }))
        .unwrap();
        let p = r.body.on(r.transport_id.0);
        assert_eq!(p.transport_id, "t");
        assert_eq!(p.kind, MediaKind::Audio);
        assert_eq!(p.app_data, json!({"source": "mic"}));
        assert!(!p.paused);
    }

    #[test]
    fn dtls_parameters_need_fingerprints() {
        let ok = json!({"transportId": "t", "dtlsParameters": {"role": "client",
            "fingerprints": [{"algorithm": "sha-256", "value": "AB"}]}});
        let r: ConnectWebRtcTransportRequest = parse(ok).unwrap();
        assert_eq!(r.dtls_parameters.0.role, ferrosfu_fbs::DtlsRole::Client);
        fails::<ConnectWebRtcTransportRequest>(json!({"transportId": "t"}));
        for bad in [
            json!({"fingerprints": []}),
            json!({"fingerprints": [{"algorithm": "", "value": "AB"}]}),
            json!({"role": "boss", "fingerprints": [{"algorithm": "sha-256", "value": "AB"}]}),
        ] {
            fails::<ConnectWebRtcTransportRequest>(
                json!({"transportId": "t", "dtlsParameters": bad}),
            );
        }
    }

    #[test]
    fn layers_and_priorities_are_bounded() {
        parse::<PreferredLayersRequest>(json!({"consumerId": "c", "spatialLayer": 0})).unwrap();
        fails::<PreferredLayersRequest>(json!({"consumerId": "c"}));
        fails::<PreferredLayersRequest>(json!({"consumerId": "c", "spatialLayer": 16}));
        parse::<PriorityRequest>(json!({"consumerId": "c", "priority": 255})).unwrap();
        fails::<PriorityRequest>(json!({"consumerId": "c", "priority": 0}));
        fails::<PriorityRequest>(json!({"consumerId": "c", "priority": 256}));
    }

    #[test]
    fn a_rest_connect_is_webrtc_with_dtls_else_plain() {
        let b: ConnectBody = parse(json!({"ip": "127.0.0.1", "port": 5004})).unwrap();
        assert!(matches!(
            Connect::from(b),
            Connect::Plain { ip: Some(ip), port: Some(5004), rtcp_port: None } if ip == "127.0.0.1"
        ));
        fails::<ConnectBody>(json!({"ip": "nowhere"}));
        fails::<ConnectBody>(json!({"port": 0}));
        fails::<ConnectBody>(json!({"port": 70000}));
        let b: ConnectBody = parse(json!({"dtlsParameters": {
            "fingerprints": [{"algorithm": "sha-256", "value": "AB"}]}}))
        .unwrap();
        assert!(matches!(Connect::from(b), Connect::WebRtc(_)));
    }
}
