//! The typed room API: what callers (signaling, the REST APIs, recording) hand a room and what
//! it gives back, plus what a room tells its peers.
//!
//! Requests are plain Rust values; signaling parses the protoo/REST JSON into them at the edge.
//! What goes back to clients (peer infos, consumer offers, notifications) keeps
//! mediasoup-demo's JSON shape and is declared once, here, as serde structs.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ferrosfu_fbs::{
    ConsumerType, DtlsParameters, PlainTransportDump, RtpStreamStats, TransportStats,
    WebRtcTransportDump,
};
use serde::Serialize;
use serde_json::Value;

use super::RoomError;
use crate::media::Producer;
use crate::ortc::{MediaKind, RtpCapabilities, RtpParameters};

/// A peer as the others see it (`join` answer, `newPeer`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PeerInfo {
    pub id: String,
    pub display_name: String,
    pub device: Value,
}

/// What `join` (and a new broadcaster) is answered: the peers already joined.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Joined {
    pub peers: Vec<PeerInfo>,
}

/// A peer joins: its name, device and what it can receive.
#[derive(Clone, Debug, Default)]
pub(crate) struct Join {
    pub display_name: Option<String>,
    /// A JSON object (validated by the caller).
    pub device: Option<Value>,
    /// Empty codecs: the peer receives nothing.
    pub rtp_capabilities: Option<RtpCapabilities>,
}

/// `createWebRtcTransport`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WebRtcTransportRequest {
    pub force_tcp: bool,
    pub producing: bool,
    pub consuming: bool,
    /// The client's `sctpCapabilities.numStreams`: SCTP (data channels) on the transport,
    /// clamped to the configured `num_streams`. None: no SCTP.
    pub sctp: Option<ferrosfu_fbs::NumSctpStreams>,
}

/// Largest `label` / `protocol` of a data producer (bytes).
pub(crate) const MAX_DATA_LABEL: usize = 1024;
/// Largest `appData` of a data producer (bytes of JSON).
pub(crate) const MAX_DATA_APP_DATA: usize = 16 * 1024;

/// A stream of the SCTP association, as mediasoup's `sctpStreamParameters` JSON: `{streamId,
/// ordered, maxPacketLifeTime?, maxRetransmits?}` (at most one of the last two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", try_from = "SctpStreamJson")]
pub(crate) struct SctpStreamParams {
    pub stream_id: u16,
    pub ordered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_packet_life_time: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retransmits: Option<u16>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SctpStreamJson {
    stream_id: u16,
    ordered: Option<bool>,
    max_packet_life_time: Option<u16>,
    max_retransmits: Option<u16>,
}

impl TryFrom<SctpStreamJson> for SctpStreamParams {
    type Error = &'static str;
    fn try_from(j: SctpStreamJson) -> Result<Self, Self::Error> {
        if j.max_packet_life_time.is_some() && j.max_retransmits.is_some() {
            return Err("sctpStreamParameters: maxPacketLifeTime and maxRetransmits are exclusive");
        }
        // mediasoup: ordered unless partially reliable.
        let partial = j.max_packet_life_time.is_some() || j.max_retransmits.is_some();
        Ok(Self {
            stream_id: j.stream_id,
            ordered: j.ordered.unwrap_or(!partial),
            max_packet_life_time: j.max_packet_life_time,
            max_retransmits: j.max_retransmits,
        })
    }
}

impl From<SctpStreamParams> for ferrosfu_fbs::SctpStreamParameters {
    fn from(p: SctpStreamParams) -> Self {
        Self {
            stream_id: p.stream_id,
            ordered: p.ordered,
            max_packet_life_time: p.max_packet_life_time,
            max_retransmits: p.max_retransmits,
        }
    }
}

impl From<ferrosfu_fbs::SctpStreamParameters> for SctpStreamParams {
    fn from(p: ferrosfu_fbs::SctpStreamParameters) -> Self {
        Self {
            stream_id: p.stream_id,
            ordered: p.ordered,
            max_packet_life_time: p.max_packet_life_time,
            max_retransmits: p.max_retransmits,
        }
    }
}

/// `produceData` (and the REST broadcaster's `…/produce/data`).
#[derive(Clone, Debug)]
pub(crate) struct ProduceData {
    pub transport_id: String,
    pub sctp_stream_parameters: SctpStreamParams,
    pub label: String,
    pub protocol: String,
    pub app_data: Value,
}

/// A data producer's new id and its stream (`produceData` answers `{id}`, REST
/// `{id, streamId}`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DataProduced {
    pub id: String,
    pub stream_id: u16,
}

/// A data consumer as its client needs it (REST `consume/data` answer).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DataConsumerInfo {
    pub id: String,
    pub data_producer_id: String,
    pub sctp_stream_parameters: SctpStreamParams,
    pub label: String,
    pub protocol: String,
}

/// The `newDataConsumer` request a room sends a peer (mediasoup-demo's shape).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewDataConsumer {
    /// The data producer's peer (None: the room's own, e.g. a bot).
    pub peer_id: Option<String>,
    #[serde(flatten)]
    pub consumer: DataConsumerInfo,
    pub app_data: Value,
}

/// A broadcaster's transport request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BroadcasterTransportRequest {
    /// `sctp`: the client's `sctpCapabilities.numStreams` (data channels), else none.
    WebRtc {
        sctp: Option<ferrosfu_fbs::NumSctpStreams>,
    },
    Plain {
        comedia: bool,
        rtcp_mux: bool,
    },
}

/// A broadcaster's new transport.
#[derive(Clone, Debug)]
pub(crate) enum BroadcasterTransport {
    /// What the worker answered (id, ICE, DTLS).
    WebRtc(WebRtcTransportDump),
    /// The plain transport and the address clients send to.
    Plain {
        dump: PlainTransportDump,
        ip: String,
    },
}

/// Connecting a transport: DTLS for WebRTC, the remote address for plain RTP.
#[derive(Clone, Debug)]
pub(crate) enum Connect {
    WebRtc(DtlsParameters),
    Plain {
        ip: Option<String>,
        port: Option<u16>,
        rtcp_port: Option<u16>,
    },
}

/// `produce`.
#[derive(Clone, Debug)]
pub(crate) struct Produce {
    pub transport_id: String,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
    pub app_data: Value,
    pub paused: bool,
}

/// What to do with a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProducerAction {
    Close,
    Pause,
    Resume,
}

/// What to do with a consumer. Layers and priority are checked by the caller; a simple
/// consumer has one layer, so a preference is accepted and changes nothing (as mediasoup).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConsumerAction {
    Pause,
    Resume,
    RequestKeyFrame,
    SetPreferredLayers(ferrosfu_fbs::ConsumerLayers),
    SetPriority(u8),
}

/// A consumer as its client needs it to receive (REST `consume` answer).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsumerInfo {
    pub id: String,
    pub producer_id: String,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
    #[serde(rename = "type", serialize_with = "consumer_type")]
    pub consumer_type: ConsumerType,
}

/// mediasoup's name of a consumer type (`simple`, `simulcast`, `svc`, `pipe`).
fn consumer_type<S: serde::Serializer>(t: &ConsumerType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

/// The `newConsumer` request a room sends a peer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewConsumer {
    pub peer_id: String,
    #[serde(flatten)]
    pub consumer: ConsumerInfo,
    pub app_data: Value,
    pub producer_paused: bool,
}

/// A producer's new id (`produce` answer).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Produced {
    pub id: String,
}

/// One encoding's score in `producerScore`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EncodingScore {
    pub encoding_idx: usize,
    pub ssrc: u32,
    pub rid: Option<String>,
    pub score: u8,
}

/// A consumer's score in `consumerScore`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsumerScore {
    pub score: u8,
    pub producer_score: u8,
    pub producer_scores: Vec<u8>,
}

impl From<ferrosfu_fbs::ConsumerScore> for ConsumerScore {
    fn from(s: ferrosfu_fbs::ConsumerScore) -> Self {
        Self {
            score: s.score,
            producer_score: s.producer_score,
            producer_scores: vec![s.producer_score],
        }
    }
}

/// What a room tells a peer: protoo notifications `{method, data}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(
    tag = "method",
    content = "data",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub(crate) enum Notification {
    NewPeer(PeerInfo),
    PeerClosed {
        peer_id: String,
    },
    PeerDisplayNameChanged {
        peer_id: String,
        display_name: String,
        old_display_name: String,
    },
    ProducerScore {
        producer_id: String,
        score: Vec<EncodingScore>,
    },
    /// `reason`: `"bwe"` when the downlink's bandwidth allocator paused it (even its lowest
    /// layer does not fit the estimate); absent when its producer paused.
    ConsumerPaused {
        consumer_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    ConsumerResumed {
        consumer_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    ConsumerClosed {
        consumer_id: String,
    },
    /// Its data producer closed (or its peer left), or its transport closed.
    DataConsumerClosed {
        data_consumer_id: String,
    },
    ConsumerScore {
        consumer_id: String,
        score: ConsumerScore,
    },
    /// The layers a simulcast/SVC consumer forwards now (both `null`: none).
    ConsumerLayersChanged {
        consumer_id: String,
        spatial_layer: Option<u8>,
        temporal_layer: Option<u8>,
    },
    ActiveSpeaker(ActiveSpeaker),
    /// The send-side estimate of the peer's receiving transport (mediasoup-demo's shape), bit/s.
    DownlinkBwe {
        desired_bitrate: u32,
        effective_desired_bitrate: u32,
        available_bitrate: u32,
    },
    /// Dynacast, to a producer's owner: the spatial layers (encoding indexes) its consumers
    /// need now; the app may stop encoding the others.
    ProducerLayersNeeded {
        producer_id: String,
        spatial_layers: Vec<u8>,
    },
    /// After join: the room's last chat messages, oldest first.
    ChatHistory(crate::chat::ChatHistory),
    /// To its sender: a chat message the room refused ({code, reason}).
    ChatMessageRejected(crate::chat::ChatRefusal),
    /// To the others: a peer is about to send a file on its `file` data channel.
    FileShared(super::chat::FileShared),
    /// The node drains (SIGTERM, `POST /api/drain`): it takes no new room and closes what is
    /// left at `deadline` (Unix ms); the app should move its users to another node before.
    ServerDraining {
        deadline: i64,
    },
    /// Two-party call (see `p2p.rs`): connect directly to `peer_id`; `polite: false` makes the
    /// offer; `iceServers` for the RTCPeerConnection (TURN credentials when the node has TURN).
    P2pStart {
        peer_id: String,
        polite: bool,
        ice_servers: Vec<crate::turn::IceServer>,
    },
    /// Back to the SFU: resume your producers, close the direct connection to `peer_id` once
    /// its media comes through the SFU. `reason`: peers, recording, peerLeft, timeout, off.
    P2pStop {
        peer_id: String,
        reason: &'static str,
    },
    /// End-to-end encryption (see `e2ee.rs`): a peer's ECDH P-256 public key (base64).
    E2eeKey {
        peer_id: String,
        public_key: String,
    },
    /// A frame key of `peerId` for the receiver, wrapped under their shared key.
    E2eeSenderKey(super::e2ee::SenderKey),
    /// Live captions (see `captions.rs`).
    Transcript(super::captions::Transcript),
}

/// `activeSpeaker`: whom the room hears, or nobody.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ActiveSpeaker {
    /// `{peerId, producerId, volume}`: the dominant speaker, with its producer's latest volume
    /// in dBov (`null` when the audio level observer did not report it last).
    Peer {
        peer_id: String,
        producer_id: String,
        volume: Option<i8>,
    },
    /// `{peerId: null}`: silence (mediasoup-demo's clients clear the highlight).
    Nobody,
}

impl Serialize for ActiveSpeaker {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        match self {
            ActiveSpeaker::Peer {
                peer_id,
                producer_id,
                volume,
            } => {
                let mut m = s.serialize_struct("ActiveSpeaker", 3)?;
                m.serialize_field("peerId", peer_id)?;
                m.serialize_field("producerId", producer_id)?;
                m.serialize_field("volume", volume)?;
                m.end()
            }
            ActiveSpeaker::Nobody => {
                let mut m = s.serialize_struct("ActiveSpeaker", 1)?;
                m.serialize_field("peerId", &None::<&str>)?;
                m.end()
            }
        }
    }
}

/// Stats of one entity, as the worker gave them.
#[derive(Clone, Debug)]
pub(crate) enum Stats {
    Transport(TransportStats),
    /// A producer's (`inbound`) or a consumer's streams.
    Streams {
        inbound: bool,
        kind: MediaKind,
        streams: Vec<RtpStreamStats>,
    },
    /// mediasoup's `data-producer` stats (messages/bytes received).
    DataProducer(ferrosfu_fbs::DataStats),
    /// mediasoup's `data-consumer` stats (messages/bytes sent, buffered amount).
    DataConsumer(ferrosfu_fbs::DataStats),
    /// A consumer's stream, then its producer's encodings (what it selects from), as
    /// mediasoup's `consumer.getStats()`.
    Consumer {
        kind: MediaKind,
        outbound: Vec<RtpStreamStats>,
        producer: Vec<RtpStreamStats>,
    },
}

/// A producer to record, with what consuming it needs.
#[derive(Clone, Debug)]
pub(crate) struct RecordSource {
    pub producer: Producer,
    pub kind: MediaKind,
    pub consumable: RtpParameters,
    pub peer_id: String,
}

/// A boxed future, for [`PeerLink`]'s one async method.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a room reaches a connected peer (signaling's protoo connection; REST broadcasters have
/// none).
pub(crate) trait PeerLink: std::fmt::Debug + Send + Sync {
    fn notify(&self, n: &Notification);
    /// Offers a data consumer (`newDataConsumer`); Ok when the peer accepted it in time.
    fn new_data_consumer(
        &self,
        offer: &NewDataConsumer,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), RoomError>> {
        offer_request(
            self,
            "newDataConsumer",
            serde_json::to_value(offer),
            timeout,
        )
    }
    /// Offers a consumer; Ok when the peer accepted it within `timeout`.
    fn new_consumer(
        &self,
        offer: &NewConsumer,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), RoomError>> {
        offer_request(self, "newConsumer", serde_json::to_value(offer), timeout)
    }
    /// A request to the peer (`newConsumer`, `p2pSignal`…); its answer's data when it
    /// accepted within `timeout`.
    fn request(
        &self,
        method: &'static str,
        data: Value,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Value, RoomError>>;
    /// Closes the connection with a WebSocket close code.
    fn close(&self, code: u16, reason: &str);
}

/// An offer (its JSON, or why it has none) as the request `method` to `link`; Ok once accepted.
fn offer_request<'a, L: PeerLink + ?Sized>(
    link: &'a L,
    method: &'static str,
    data: serde_json::Result<Value>,
    timeout: Duration,
) -> BoxFuture<'a, Result<(), RoomError>> {
    Box::pin(async move {
        let data = data.map_err(|e| RoomError::Failed(e.to_string()))?;
        link.request(method, data, timeout).await.map(drop)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn notifications_keep_the_demo_shape() {
        let n = Notification::PeerDisplayNameChanged {
            peer_id: "bob".into(),
            display_name: "Robert".into(),
            old_display_name: "Bob".into(),
        };
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"method": "peerDisplayNameChanged", "data": {
                "peerId": "bob", "displayName": "Robert", "oldDisplayName": "Bob"}})
        );
        let n = Notification::ConsumerScore {
            consumer_id: "c".into(),
            score: ferrosfu_fbs::ConsumerScore {
                score: 9,
                producer_score: 7,
            }
            .into(),
        };
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"method": "consumerScore", "data": {"consumerId": "c", "score": {
                "score": 9, "producerScore": 7, "producerScores": [7]}}})
        );
        let n = Notification::NewPeer(PeerInfo {
            id: "a".into(),
            display_name: "A".into(),
            device: json!({"name": "x"}),
        });
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"method": "newPeer", "data": {"id": "a", "displayName": "A", "device": {"name": "x"}}})
        );
        let n = Notification::DownlinkBwe {
            desired_bitrate: 1_500_000,
            effective_desired_bitrate: 500_000,
            available_bitrate: 600_000,
        };
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"method": "downlinkBwe", "data": {"desiredBitrate": 1_500_000,
                "effectiveDesiredBitrate": 500_000, "availableBitrate": 600_000}})
        );
        let n = Notification::ProducerLayersNeeded {
            producer_id: "p".into(),
            spatial_layers: vec![0, 1],
        };
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"method": "producerLayersNeeded", "data": {"producerId": "p",
                "spatialLayers": [0, 1]}})
        );
    }

    #[test]
    fn active_speaker_names_the_peer_or_nobody() {
        let n = |a| serde_json::to_value(Notification::ActiveSpeaker(a)).unwrap();
        assert_eq!(
            n(ActiveSpeaker::Peer {
                peer_id: "alice".into(),
                producer_id: "p1".into(),
                volume: Some(-42),
            }),
            json!({"method": "activeSpeaker", "data": {
                "peerId": "alice", "producerId": "p1", "volume": -42}})
        );
        // No volume reported: null, not omitted.
        assert_eq!(
            n(ActiveSpeaker::Peer {
                peer_id: "alice".into(),
                producer_id: "p1".into(),
                volume: None,
            }),
            json!({"method": "activeSpeaker", "data": {
                "peerId": "alice", "producerId": "p1", "volume": null}})
        );
        // Silence: only the null peer, as mediasoup-demo sends it.
        assert_eq!(
            n(ActiveSpeaker::Nobody),
            json!({"method": "activeSpeaker", "data": {"peerId": null}})
        );
    }

    #[test]
    fn a_data_consumer_offer_keeps_the_demo_shape() {
        let offer = NewDataConsumer {
            peer_id: Some("alice".into()),
            consumer: DataConsumerInfo {
                id: "dc".into(),
                data_producer_id: "dp".into(),
                sctp_stream_parameters: ferrosfu_fbs::SctpStreamParameters::reliable(3).into(),
                label: "chat".into(),
                protocol: "".into(),
            },
            app_data: json!({"info": "x"}),
        };
        assert_eq!(
            serde_json::to_value(&offer).unwrap(),
            json!({"peerId": "alice", "id": "dc", "dataProducerId": "dp",
                "sctpStreamParameters": {"streamId": 3, "ordered": true},
                "label": "chat", "protocol": "", "appData": {"info": "x"}})
        );
        let n = Notification::DataConsumerClosed {
            data_consumer_id: "dc".into(),
        };
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"method": "dataConsumerClosed", "data": {"dataConsumerId": "dc"}})
        );
    }

    #[test]
    fn sctp_stream_parameters_default_to_ordered_unless_partially_reliable() {
        let p: SctpStreamParams = serde_json::from_value(json!({"streamId": 2})).unwrap();
        assert!(p.ordered);
        let p: SctpStreamParams =
            serde_json::from_value(json!({"streamId": 2, "maxRetransmits": 0})).unwrap();
        assert!(!p.ordered);
        assert!(
            serde_json::from_value::<SctpStreamParams>(
                json!({"streamId": 2, "maxRetransmits": 0, "maxPacketLifeTime": 10})
            )
            .is_err()
        );
        assert!(serde_json::from_value::<SctpStreamParams>(json!({"streamId": 70000})).is_err());
    }

    #[test]
    fn a_consumer_offer_is_flat() {
        let offer = NewConsumer {
            peer_id: "alice".into(),
            consumer: ConsumerInfo {
                id: "c1".into(),
                producer_id: "p1".into(),
                kind: MediaKind::Audio,
                rtp_parameters: RtpParameters::default(),
                consumer_type: ConsumerType::Simple,
            },
            app_data: json!({"share": true}),
            producer_paused: false,
        };
        let v = serde_json::to_value(&offer).unwrap();
        for key in [
            "peerId",
            "producerId",
            "id",
            "kind",
            "rtpParameters",
            "type",
            "appData",
            "producerPaused",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
        assert_eq!(v["type"], "simple");
        assert_eq!(v["kind"], "audio");
    }
}
