//! Typed media-plane messages: transports, producers, consumers, their parameters, stats and
//! events. The supervisor resolves everything (ORTC) before it reaches the worker: what travels
//! here is final — payload types, SSRCs, header-extension ids are the ones to put on the wire.

use crate::data::{SctpOptions, SctpParameters, SctpState};
use crate::ids::{
    ConsumerId, DataConsumerId, DataProducerId, ProducerId, RtpObserverId, TransportId,
    WebRtcServerId,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportProtocol {
    Udp,
    Tcp,
}

/// Where a transport (or WebRTC server) listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenInfo {
    pub protocol: TransportProtocol,
    /// IP to bind ("0.0.0.0", "127.0.0.1", "::1" …).
    pub ip: String,
    /// Address put in ICE candidates / tuples instead of `ip` (NAT, 0.0.0.0 binds). Empty = `ip`.
    pub announced_address: Option<String>,
    /// 0 = take one from the worker's RTC port range.
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtcpFeedback {
    /// "nack", "ccm", "goog-remb", "transport-cc".
    pub kind: String,
    /// "" or "pli" / "fir".
    pub parameter: String,
}

/// One codec of an RTP stream with its final payload type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpCodecParameters {
    /// "audio/opus", "video/VP8", "video/rtx" …
    pub mime_type: String,
    pub payload_type: u8,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    /// fmtp parameters, e.g. ("apt", "101"), ("profile-id", "2"), in a stable order.
    pub parameters: Vec<(String, String)>,
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpHeaderExtensionParameters {
    pub uri: String,
    pub id: u8,
    pub encrypt: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RtpEncodingParameters {
    pub ssrc: Option<u32>,
    pub rid: Option<String>,
    pub codec_payload_type: Option<u8>,
    pub rtx_ssrc: Option<u32>,
    pub max_bitrate: Option<u32>,
    pub scalability_mode: Option<String>,
    pub dtx: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RtcpParameters {
    pub cname: String,
    pub reduced_size: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RtpParameters {
    pub mid: Option<String>,
    pub codecs: Vec<RtpCodecParameters>,
    pub header_extensions: Vec<RtpHeaderExtensionParameters>,
    pub encodings: Vec<RtpEncodingParameters>,
    pub rtcp: RtcpParameters,
}

/// Producer payload type → the router's payload type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecMapping {
    pub payload_type: u8,
    pub mapped_payload_type: u8,
}

/// A producer encoding (identified by SSRC or RID) → the router's SSRC for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodingMapping {
    pub ssrc: Option<u32>,
    pub rid: Option<String>,
    pub scalability_mode: Option<String>,
    pub mapped_ssrc: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RtpMapping {
    pub codecs: Vec<CodecMapping>,
    pub encodings: Vec<EncodingMapping>,
}

// ---------------------------------------------------------------------------------------------
// Requests

/// `worker.create_webrtc_server`: one UDP and/or TCP port shared by many WebRtcTransports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebRtcServerOptions {
    pub web_rtc_server_id: WebRtcServerId,
    pub listen_infos: Vec<ListenInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebRtcTransportListen {
    /// Share the ports of an existing WebRtcServer of this worker.
    Server(WebRtcServerId),
    /// Bind ports for this transport alone (port 0 = from the worker's RTC port range).
    Individual(Vec<ListenInfo>),
}

/// `router.create_webrtc_transport`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebRtcTransportOptions {
    pub transport_id: TransportId,
    pub listen: WebRtcTransportListen,
    pub enable_udp: bool,
    pub enable_tcp: bool,
    pub prefer_udp: bool,
    pub prefer_tcp: bool,
    /// Consent freshness timeout (RFC 7675) in seconds; 0 = the default 30 s.
    pub ice_consent_timeout: u8,
    pub initial_available_outgoing_bitrate: u32,
    /// `enableSctp`: data channels over the DTLS association.
    pub sctp: Option<SctpOptions>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpCryptoSuite {
    AeadAes256Gcm,
    AeadAes128Gcm,
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl SrtpCryptoSuite {
    pub const ALL: [SrtpCryptoSuite; 4] = [
        SrtpCryptoSuite::AeadAes256Gcm,
        SrtpCryptoSuite::AeadAes128Gcm,
        SrtpCryptoSuite::AesCm128HmacSha1_80,
        SrtpCryptoSuite::AesCm128HmacSha1_32,
    ];

    /// The name used by mediasoup (and SDES): "AEAD_AES_256_GCM" …
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpCryptoSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
            SrtpCryptoSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpCryptoSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpCryptoSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }
}

impl std::str::FromStr for SrtpCryptoSuite {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown SRTP crypto suite {s:?}"))
    }
}

/// SDES-style SRTP keying for a PlainTransport: master key followed by master salt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrtpParameters {
    pub crypto_suite: SrtpCryptoSuite,
    /// Base64 of key‖salt, as mediasoup's `keyBase64`.
    pub key_base64: String,
}

/// `router.create_plain_transport`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainTransportOptions {
    pub transport_id: TransportId,
    pub listen_info: ListenInfo,
    /// RTCP port when `rtcp_mux` is false (port 0 = from the range).
    pub rtcp_listen_info: Option<ListenInfo>,
    pub rtcp_mux: bool,
    /// Learn the remote tuple from the first packet received.
    pub comedia: bool,
    /// Generate local SRTP keys with this suite (returned in the dump).
    pub srtp_crypto_suite: Option<SrtpCryptoSuite>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DtlsRole {
    Auto,
    Client,
    Server,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtlsFingerprint {
    /// "sha-256", "sha-384", "sha-512", "sha-1".
    pub algorithm: String,
    /// Upper-case hex bytes separated by ':'.
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtlsParameters {
    pub role: DtlsRole,
    pub fingerprints: Vec<DtlsFingerprint>,
}

/// `transport.connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectParams {
    WebRtc {
        dtls_parameters: DtlsParameters,
    },
    Plain {
        ip: Option<String>,
        port: Option<u16>,
        rtcp_port: Option<u16>,
        srtp_parameters: Option<SrtpParameters>,
    },
}

/// `transport.produce`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProduceOptions {
    pub producer_id: ProducerId,
    pub kind: MediaKind,
    /// As the endpoint sends it (its own PTs, SSRCs, extension ids).
    pub rtp_parameters: RtpParameters,
    pub rtp_mapping: RtpMapping,
    /// Minimum time between two keyframe requests sent to the publisher, in ms (0 = no limit).
    pub key_frame_request_delay: u32,
    pub paused: bool,
}

/// `transport.consume`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumeOptions {
    pub consumer_id: ConsumerId,
    pub producer_id: ProducerId,
    pub kind: MediaKind,
    /// As the endpoint receives it (PTs, SSRCs, extension ids to put on the wire).
    pub rtp_parameters: RtpParameters,
    /// The producer's encodings in router space (mapped SSRCs), as mediasoup's
    /// `consumableRtpEncodings`.
    pub consumable_rtp_encodings: Vec<RtpEncodingParameters>,
    pub paused: bool,
    pub ignore_dtx: bool,
    /// What the consumer forwards (the supervisor decides it from the producer's encodings).
    pub consumer_type: ConsumerType,
    /// Simulcast/SVC: the layers to start with (`None`: the highest).
    pub preferred_layers: Option<ConsumerLayers>,
}

/// `router.create_active_speaker_observer` (mediasoup's ActiveSpeakerObserver options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveSpeakerObserverOptions {
    pub rtp_observer_id: RtpObserverId,
    /// Milliseconds between decisions (mediasoup default 300).
    pub interval: u16,
}

/// `router.create_audio_level_observer` (mediasoup's AudioLevelObserver options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioLevelObserverOptions {
    pub rtp_observer_id: RtpObserverId,
    /// Most producers in one `volumes` event (mediasoup default 1).
    pub max_entries: u16,
    /// dBov (−127..0) a producer's average must reach (mediasoup default −80).
    pub threshold: i8,
    /// Milliseconds between reports (mediasoup default 1000).
    pub interval: u16,
}

/// What a consumer forwards (mediasoup's `RtpParameters.Type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConsumerType {
    /// The producer's one stream as it is.
    #[default]
    Simple,
    /// One of the producer's encodings at a time, by spatial layer, and its temporal layers.
    Simulcast,
    /// Some spatial/temporal layers of the producer's one scalable stream.
    Svc,
    /// Every encoding unchanged (toward another router).
    Pipe,
}

impl ConsumerType {
    /// mediasoup's name (`newConsumer.type`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerType::Simple => "simple",
            ConsumerType::Simulcast => "simulcast",
            ConsumerType::Svc => "svc",
            ConsumerType::Pipe => "pipe",
        }
    }
}

/// `(spatial, temporal)` layers of a scalability mode ("L1T3", "S3T3", "L3T3_KEY" …); (1, 1)
/// when absent or not recognised (mediasoup's `scalabilityModes.parse`).
pub fn parse_scalability_mode(mode: Option<&str>) -> (u8, u8) {
    fn layers(s: &[u8]) -> Option<(u8, &[u8])> {
        let first = *s.first()?;
        if !(b'1'..=b'9').contains(&first) {
            return None;
        }
        let mut n = first - b'0';
        let mut rest = &s[1..];
        if let Some(&d) = rest.first().filter(|d| d.is_ascii_digit()) {
            n = n * 10 + (d - b'0');
            rest = &rest[1..];
        }
        Some((n, rest))
    }
    let parse = |m: &str| {
        let b = m.as_bytes();
        if !matches!(b.first(), Some(b'L' | b'S')) {
            return None;
        }
        let (spatial, rest) = layers(&b[1..])?;
        let rest = rest.strip_prefix(b"T")?;
        let (temporal, _) = layers(rest)?;
        Some((spatial, temporal))
    };
    mode.and_then(parse).unwrap_or((1, 1))
}

/// Spatial and temporal layers of a simulcast/SVC consumer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConsumerLayers {
    pub spatial_layer: u8,
    /// `None`: the highest (in a preference).
    pub temporal_layer: Option<u8>,
}

// ---------------------------------------------------------------------------------------------
// Responses (dumps and stats)

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceParameters {
    pub username_fragment: String,
    pub password: String,
    pub ice_lite: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceCandidate {
    pub foundation: String,
    pub priority: u32,
    pub address: String,
    pub protocol: TransportProtocol,
    pub port: u16,
    /// Always "host" for ICE-lite.
    pub kind: String,
    /// "passive" for TCP candidates.
    pub tcp_type: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IceState {
    New,
    Connected,
    Completed,
    Disconnected,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DtlsState {
    New,
    Connecting,
    Connected,
    Failed,
    Closed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportTuple {
    pub local_address: String,
    pub local_port: u16,
    pub remote_ip: String,
    pub remote_port: u16,
    pub protocol: TransportProtocol,
}

/// Reply of `router.create_webrtc_transport` and `transport.dump` on a WebRtcTransport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebRtcTransportDump {
    pub id: TransportId,
    pub ice_parameters: IceParameters,
    pub ice_candidates: Vec<IceCandidate>,
    pub ice_state: IceState,
    pub ice_selected_tuple: Option<TransportTuple>,
    pub dtls_parameters: DtlsParameters,
    pub dtls_state: DtlsState,
    pub producer_ids: Vec<ProducerId>,
    pub consumer_ids: Vec<ConsumerId>,
    /// With `enableSctp`: the association's parameters and state.
    pub sctp_parameters: Option<SctpParameters>,
    pub sctp_state: Option<SctpState>,
    pub data_producer_ids: Vec<DataProducerId>,
    pub data_consumer_ids: Vec<DataConsumerId>,
}

/// Reply of `router.create_plain_transport`, `transport.connect` and `transport.dump` on a
/// PlainTransport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainTransportDump {
    pub id: TransportId,
    pub rtcp_mux: bool,
    pub comedia: bool,
    /// Local side always set; remote side empty/0 until known.
    pub tuple: TransportTuple,
    pub rtcp_tuple: Option<TransportTuple>,
    pub srtp_parameters: Option<SrtpParameters>,
    pub producer_ids: Vec<ProducerId>,
    pub consumer_ids: Vec<ConsumerId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebRtcServerDump {
    pub id: WebRtcServerId,
    /// Bound (protocol, ip, port), after port-range allocation.
    pub listen_infos: Vec<ListenInfo>,
    pub transport_ids: Vec<TransportId>,
}

/// `transport.get_stats`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TransportStats {
    pub transport_id: TransportId,
    /// Milliseconds since the worker started.
    pub timestamp: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub rtp_packets_received: u64,
    pub rtp_packets_sent: u64,
    pub rtcp_packets_received: u64,
    pub rtcp_packets_sent: u64,
    pub rtx_packets_sent: u64,
    /// Packets dropped before reaching a producer: SRTP auth failures, replays, malformed, unknown
    /// SSRC, STUN errors…
    pub packets_dropped: u64,
    pub srtp_auth_failures: u64,
    pub srtp_replays: u64,
    pub recv_bitrate: u32,
    pub send_bitrate: u32,
    /// "new" … as in the dump; None for PlainTransport.
    pub ice_state: Option<IceState>,
    pub dtls_state: Option<DtlsState>,
    pub tuple: Option<TransportTuple>,
    /// The send-side estimate toward the remote (bit/s), from its transport-wide feedback;
    /// 0 until the first feedback (and for PlainTransport).
    pub available_outgoing_bitrate: u32,
    /// What the REMB sent to the publisher allows (bit/s); 0: none sent.
    pub available_incoming_bitrate: u32,
    /// The limits set on the transport (bit/s; 0: not set).
    pub max_incoming_bitrate: u32,
    pub max_outgoing_bitrate: u32,
    pub min_outgoing_bitrate: u32,
    /// Fraction (0..=1) lost of the RTP received (from our receiver reports) / sent (from the
    /// remote's feedback); `None` when nothing says yet.
    pub rtp_packet_loss_received: Option<f64>,
    pub rtp_packet_loss_sent: Option<f64>,
    /// Padding/RTX the prober sent to measure headroom.
    pub probation_bytes_sent: u64,
    pub probation_send_bitrate: u32,
}

/// A trace event type `transport.enable_trace_event` turns on (mediasoup's
/// `TransportTraceEventType`; ferrosfu emits `bwe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceEventType {
    Bwe,
}

impl TraceEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceEventType::Bwe => "bwe",
        }
    }

    pub fn parse(s: &str) -> Option<TraceEventType> {
        match s {
            "bwe" => Some(TraceEventType::Bwe),
            _ => None,
        }
    }
}

/// Which feedback the send-side estimate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BweType {
    TransportCc,
    Remb,
}

impl BweType {
    pub fn as_str(self) -> &'static str {
        match self {
            BweType::TransportCc => "transport-cc",
            BweType::Remb => "remb",
        }
    }
}

/// A `bwe` trace (mediasoup's `info` of a `bwe` trace event), bit/s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BweTrace {
    /// Milliseconds since the worker started.
    pub timestamp: u64,
    pub bwe_type: BweType,
    /// What every consumer would take at its preferred layers.
    pub desired_bitrate: u32,
    /// What the allocation granted.
    pub effective_desired_bitrate: u32,
    pub min_bitrate: u32,
    pub max_bitrate: u32,
    pub start_bitrate: u32,
    pub max_padding_bitrate: u32,
    /// The estimate.
    pub available_bitrate: u32,
}

/// One stream's stats, used for producers (received) and consumers (sent).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RtpStreamStats {
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
    pub rid: Option<String>,
    pub mime_type: String,
    pub packet_count: u64,
    pub byte_count: u64,
    pub packets_lost: u64,
    /// 0–255, as RTCP.
    pub fraction_lost: u8,
    /// In RTP timestamp units.
    pub jitter: u32,
    pub bitrate: u32,
    /// 0–10.
    pub score: u8,
    pub nack_count: u64,
    pub nack_packet_count: u64,
    pub pli_count: u64,
    pub fir_count: u64,
    pub retransmitted_packet_count: u64,
    /// Milliseconds, from RR (consumers) or 0.
    pub round_trip_time: u32,
    /// Received packets not forwarded for their sequence number (RFC 3550 A.1); producers.
    pub bad_sequence_dropped: u64,
    /// Resynchronisations to a restarted sender's new sequence space; producers.
    pub resync_count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerDump {
    pub id: ProducerId,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
    pub rtp_mapping: RtpMapping,
    pub paused: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerDump {
    pub id: ConsumerId,
    pub producer_id: ProducerId,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
    pub paused: bool,
    pub producer_paused: bool,
    pub consumer_type: ConsumerType,
    pub priority: u8,
    pub preferred_layers: Option<ConsumerLayers>,
    pub target_layers: Option<ConsumerLayers>,
    pub current_layers: Option<ConsumerLayers>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConsumerScore {
    /// 0–10: what the consumer's remote receives.
    pub score: u8,
    /// 0–10: what the producer delivers.
    pub producer_score: u8,
}

// ---------------------------------------------------------------------------------------------
// Notifications (media events)

#[derive(Clone, Debug, PartialEq)]
pub enum MediaEvent {
    /// handler = transport id.
    TransportIceStateChange(IceState),
    TransportIceSelectedTupleChange(TransportTuple),
    TransportDtlsStateChange {
        state: DtlsState,
        /// Set on `Failed`.
        reason: Option<String>,
    },
    /// PlainTransport with comedia learned its remote tuple (rtcp = false) or RTCP tuple.
    PlainTransportTuple {
        tuple: TransportTuple,
        rtcp: bool,
    },
    /// handler = producer id: score of each encoding (ssrc, rid, score 0-10).
    ProducerScore(Vec<(u32, Option<String>, u8)>),
    /// handler = consumer id.
    ConsumerScore(ConsumerScore),
    /// The layers a simulcast/SVC consumer forwards now; `None`: nothing.
    ConsumerLayersChange(Option<ConsumerLayers>),
    /// handler = rtp observer id: the dominant speaker changed.
    ActiveSpeakerObserverDominantSpeaker {
        producer_id: ProducerId,
    },
    /// The loudest producers of the last interval, loudest first (producer, dBov).
    AudioLevelObserverVolumes(Vec<(ProducerId, i8)>),
    /// No producer reached the threshold in the last interval.
    AudioLevelObserverSilence,
    ConsumerProducerPause,
    ConsumerProducerResume,
    /// The consumer's producer closed: the consumer is gone.
    ConsumerProducerClose,
    /// The transport of the consumer closed under it (router/transport close).
    ConsumerTransportClose,
    ProducerTransportClose,
    /// handler = transport id: a `bwe` trace (when enabled with `transport.enable_trace_event`).
    TransportBweTrace(BweTrace),
    /// handler = consumer id: the send-side allocator paused it (even its lowest layer does not
    /// fit the estimate) / resumed it.
    ConsumerBwePause,
    ConsumerBweResume,
    /// handler = producer id (dynacast): the spatial layers its consumers need now.
    ProducerLayersNeeded(Vec<u8>),
    /// handler = transport id: its SCTP association's state changed.
    TransportSctpStateChange(SctpState),
    /// handler = data consumer id: its SCTP stream's backlog fell to its threshold (bytes now).
    DataConsumerBufferedAmountLow(u32),
    /// A message to it was dropped: the association's send buffer was full.
    DataConsumerSctpSendBufferFull,
    DataConsumerDataProducerPause,
    DataConsumerDataProducerResume,
    /// Its DataProducer closed: the data consumer is gone.
    DataConsumerDataProducerClose,
    /// Its transport closed under it (router/transport close), or the peer reset its stream.
    DataConsumerTransportClose,
    /// handler = data producer id: its transport closed, or the peer reset its stream.
    DataProducerTransportClose,
    /// handler = data consumer id (a `direct` one): a message for the supervisor.
    DataConsumerMessage {
        ppid: u32,
        data: Vec<u8>,
    },
}
