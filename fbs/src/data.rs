//! Data channels on the channel: SCTP parameters of a transport, DataProducers and
//! DataConsumers (mediasoup's `DataProducer`/`DataConsumer`, types `sctp` and `direct`).

use crate::ids::{DataConsumerId, DataProducerId, TransportId};

/// mediasoup's `numSctpStreams`: outgoing streams (OS) and maximum incoming streams (MIS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NumSctpStreams {
    pub os: u16,
    pub mis: u16,
}

impl Default for NumSctpStreams {
    fn default() -> Self {
        Self {
            os: 1024,
            mis: 1024,
        }
    }
}

/// `enableSctp` and its settings, on `router.create_webrtc_transport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SctpOptions {
    pub num_streams: NumSctpStreams,
    /// Largest message in either direction (mediasoup's `maxSctpMessageSize`).
    pub max_message_size: u32,
    /// Bytes the association may hold unacknowledged toward the peer, all streams together
    /// (mediasoup's `sctpSendBufferSize`); a message that would exceed it is dropped and its
    /// DataConsumer notified (`sctpsendbufferfull`).
    pub send_buffer_size: u32,
}

impl SctpOptions {
    pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 262_144;
    pub const DEFAULT_SEND_BUFFER_SIZE: u32 = 262_144;
}

impl Default for SctpOptions {
    fn default() -> Self {
        Self {
            num_streams: NumSctpStreams::default(),
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            send_buffer_size: Self::DEFAULT_SEND_BUFFER_SIZE,
        }
    }
}

/// A transport's SCTP parameters as mediasoup reports them (`transport.sctpParameters`): what
/// the client's `sctpParameters` in `createWebRtcTransport` are made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SctpParameters {
    /// Always 5000 (RFC 8841's default; the SCTP port inside DTLS is not negotiated).
    pub port: u16,
    pub os: u16,
    pub mis: u16,
    pub max_message_size: u32,
    pub send_buffer_size: u32,
    /// Bytes held in the association's send buffer now.
    pub sctp_buffered_amount: u32,
    /// SCTP over DTLS (a WebRtcTransport): WebRTC data channels.
    pub is_data_channel: bool,
}

/// The SCTP association's state (`transport.sctpstatechange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SctpState {
    New,
    Connecting,
    Connected,
    Failed,
    Closed,
}

impl SctpState {
    pub fn as_str(self) -> &'static str {
        match self {
            SctpState::New => "new",
            SctpState::Connecting => "connecting",
            SctpState::Connected => "connected",
            SctpState::Failed => "failed",
            SctpState::Closed => "closed",
        }
    }
}

/// A stream of the association (mediasoup's `sctpStreamParameters`). At most one of
/// `max_packet_life_time` (ms) and `max_retransmits` is set: partial reliability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SctpStreamParameters {
    pub stream_id: u16,
    pub ordered: bool,
    pub max_packet_life_time: Option<u16>,
    pub max_retransmits: Option<u16>,
}

impl SctpStreamParameters {
    /// An ordered, reliable stream.
    pub fn reliable(stream_id: u16) -> Self {
        Self {
            stream_id,
            ordered: true,
            max_packet_life_time: None,
            max_retransmits: None,
        }
    }
}

/// `sctp`: a stream of the transport's SCTP association; `direct`: messages the supervisor
/// sends (`data_producer.send`) or receives (`DataConsumerMessage`) over the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    Sctp,
    Direct,
}

impl DataType {
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Sctp => "sctp",
            DataType::Direct => "direct",
        }
    }
}

/// WebRTC data channel payload protocol identifiers (RFC 8831 §8).
pub mod ppid {
    pub const DCEP: u32 = 50;
    pub const STRING: u32 = 51;
    pub const BINARY: u32 = 53;
    pub const STRING_EMPTY: u32 = 56;
    pub const BINARY_EMPTY: u32 = 57;

    /// The identifiers a data channel message may carry.
    pub fn is_message(ppid: u32) -> bool {
        matches!(ppid, STRING | BINARY | STRING_EMPTY | BINARY_EMPTY)
    }
}

/// `router.create_direct_transport`: a transport with no network, for `direct`
/// DataProducers and DataConsumers (mediasoup's DirectTransport).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectTransportOptions {
    pub transport_id: TransportId,
    /// Largest message its DataProducers accept from the supervisor.
    pub max_message_size: u32,
}

/// `transport.produce_data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProduceDataOptions {
    pub data_producer_id: DataProducerId,
    pub data_type: DataType,
    /// Required for `sctp`, absent for `direct`.
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
    pub label: String,
    pub protocol: String,
    pub paused: bool,
}

/// `transport.consume_data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumeDataOptions {
    pub data_consumer_id: DataConsumerId,
    pub data_producer_id: DataProducerId,
    pub data_type: DataType,
    /// Required for `sctp` (the stream id the supervisor picked on this transport).
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
    pub label: String,
    pub protocol: String,
    pub paused: bool,
    /// Only messages sent to one of these subchannels (or to none) reach the consumer; `None`:
    /// every message.
    pub subchannels: Option<Vec<u16>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataProducerDump {
    pub id: DataProducerId,
    pub data_type: DataType,
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
    pub label: String,
    pub protocol: String,
    pub paused: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataConsumerDump {
    pub id: DataConsumerId,
    pub data_producer_id: DataProducerId,
    pub data_type: DataType,
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
    pub label: String,
    pub protocol: String,
    pub buffered_amount_low_threshold: u32,
    pub paused: bool,
    pub data_producer_paused: bool,
    pub subchannels: Vec<u16>,
}

/// `data_producer.get_stats` / `data_consumer.get_stats` (mediasoup's `data-producer` /
/// `data-consumer` stats): messages and bytes received from the endpoint (producer) or sent
/// to it (consumer); `buffered_amount` is the consumer's SCTP stream backlog (0 otherwise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataStats {
    pub timestamp: u64,
    pub label: String,
    pub protocol: String,
    pub messages: u64,
    pub bytes: u64,
    pub buffered_amount: u32,
}

/// `data_producer.send`: a message injected by the supervisor into a `direct` DataProducer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSend {
    pub ppid: u32,
    pub data: Vec<u8>,
    /// Only DataConsumers subscribed to one of these get it (`None`: everyone).
    pub subchannels: Option<Vec<u16>>,
    /// Only DataConsumers subscribed to this one get it.
    pub required_subchannel: Option<u16>,
}

/// `transport.dump` of a DirectTransport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectTransportDump {
    pub id: TransportId,
    pub max_message_size: u32,
    pub data_producer_ids: Vec<DataProducerId>,
    pub data_consumer_ids: Vec<DataConsumerId>,
}

/// What the worker's SCTP associations counted, live and closed ones together
/// (`worker.get_media_counters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataCounters {
    pub messages_received: u64,
    pub messages_sent: u64,
    /// Packets an association could not decode or place.
    pub malformed: u64,
    /// Messages on a stream with no data producer, or at or above MIS.
    pub unknown_stream: u64,
    /// DCEP messages (PPID 50): channels are negotiated.
    pub dcep: u64,
    pub unknown_ppid: u64,
    /// Over the maximum message size (received, or refused for sending).
    pub oversize: u64,
    /// Messages not sent: the send buffer was full.
    pub send_buffer_full: u64,
}
