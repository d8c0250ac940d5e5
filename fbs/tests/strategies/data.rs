//! Strategies for the data-channel types (SCTP parameters, DirectTransport, DataProducer and
//! DataConsumer options, dumps, stats and messages). Integers are drawn with their edges (0, the
//! schema default, the type's maximum) weighted in, since the encoder leaves out a field equal to
//! its default and the decoder puts the default back.

use ferrosfu_fbs::*;
use proptest::prelude::*;

use super::*;

/// A `u16` that is often 0, `default` or `u16::MAX`.
pub(crate) fn u16_edge(default: u16) -> impl Strategy<Value = u16> {
    prop_oneof![
        1 => Just(0),
        1 => Just(default),
        1 => Just(u16::MAX),
        3 => any::<u16>(),
    ]
}

/// A `u32` that is often 0, `default` or `u32::MAX`.
pub(crate) fn u32_edge(default: u32) -> impl Strategy<Value = u32> {
    prop_oneof![
        1 => Just(0),
        1 => Just(default),
        1 => Just(u32::MAX),
        3 => any::<u32>(),
    ]
}

/// A `u64` that is often 0 or `u64::MAX`.
pub(crate) fn u64_edge() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0),
        1 => Just(u64::MAX),
        3 => any::<u64>(),
    ]
}

pub(crate) fn sctp_state() -> impl Strategy<Value = SctpState> {
    prop_oneof![
        Just(SctpState::New),
        Just(SctpState::Connecting),
        Just(SctpState::Connected),
        Just(SctpState::Failed),
        Just(SctpState::Closed),
    ]
}

pub(crate) fn data_type() -> impl Strategy<Value = DataType> {
    prop_oneof![Just(DataType::Sctp), Just(DataType::Direct)]
}

pub(crate) fn sctp_options() -> impl Strategy<Value = SctpOptions> {
    (
        u16_edge(1024),
        u16_edge(1024),
        u32_edge(SctpOptions::DEFAULT_MAX_MESSAGE_SIZE),
        u32_edge(SctpOptions::DEFAULT_SEND_BUFFER_SIZE),
    )
        .prop_map(
            |(os, mis, max_message_size, send_buffer_size)| SctpOptions {
                num_streams: NumSctpStreams { os, mis },
                max_message_size,
                send_buffer_size,
            },
        )
}

pub(crate) fn sctp_parameters() -> impl Strategy<Value = SctpParameters> {
    (
        u16_edge(5000),
        u16_edge(1024),
        u16_edge(1024),
        u32_edge(262_144),
        u32_edge(262_144),
        u32_edge(0),
        any::<bool>(),
    )
        .prop_map(
            |(port, os, mis, max_message_size, send_buffer_size, buffered, is_data_channel)| {
                SctpParameters {
                    port,
                    os,
                    mis,
                    max_message_size,
                    send_buffer_size,
                    sctp_buffered_amount: buffered,
                    is_data_channel,
                }
            },
        )
}

pub(crate) fn sctp_stream_parameters() -> impl Strategy<Value = SctpStreamParameters> {
    (
        u16_edge(0),
        any::<bool>(),
        opt(u16_edge(0)),
        opt(u16_edge(0)),
    )
        .prop_map(
            |(stream_id, ordered, max_packet_life_time, max_retransmits)| SctpStreamParameters {
                stream_id,
                ordered,
                max_packet_life_time,
                max_retransmits,
            },
        )
}

/// Subchannels: empty, a few, or many (up to 300, duplicates and edges included).
pub(crate) fn subchannels() -> impl Strategy<Value = Vec<u16>> {
    prop_oneof![
        3 => vec(u16_edge(0), 4),
        1 => vec(any::<u16>(), 300),
    ]
}

/// A message's payload identifier: the data channel ones, DCEP, or any value.
pub(crate) fn ppid() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => prop::sample::select(vec![
            ppid::DCEP,
            ppid::STRING,
            ppid::BINARY,
            ppid::STRING_EMPTY,
            ppid::BINARY_EMPTY,
        ]),
        1 => u32_edge(0),
    ]
}

/// A message's bytes: empty, a few, UTF-8 text, or binary up to 4 KiB.
pub(crate) fn data_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(any::<u8>(), 16),
        1 => text().prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 1024..=4096),
    ]
}

pub(crate) fn data_send() -> impl Strategy<Value = DataSend> {
    (ppid(), data_bytes(), opt(subchannels()), opt(u16_edge(0))).prop_map(
        |(ppid, data, subchannels, required_subchannel)| DataSend {
            ppid,
            data,
            subchannels,
            required_subchannel,
        },
    )
}

pub(crate) fn direct_transport_options() -> impl Strategy<Value = DirectTransportOptions> {
    (text(), u32_edge(262_144)).prop_map(|(id, max_message_size)| DirectTransportOptions {
        transport_id: TransportId::new(id),
        max_message_size,
    })
}

pub(crate) fn produce_data_options() -> impl Strategy<Value = ProduceDataOptions> {
    (
        text(),
        data_type(),
        opt(sctp_stream_parameters()),
        text(),
        text(),
        any::<bool>(),
    )
        .prop_map(
            |(id, data_type, sctp_stream_parameters, label, protocol, paused)| ProduceDataOptions {
                data_producer_id: DataProducerId::new(id),
                data_type,
                sctp_stream_parameters,
                label,
                protocol,
                paused,
            },
        )
}

pub(crate) fn consume_data_options() -> impl Strategy<Value = ConsumeDataOptions> {
    (
        (text(), text()),
        data_type(),
        opt(sctp_stream_parameters()),
        (text(), text()),
        any::<bool>(),
        opt(subchannels()),
    )
        .prop_map(
            |(
                (id, producer_id),
                data_type,
                sctp_stream_parameters,
                (label, protocol),
                paused,
                subchannels,
            )| ConsumeDataOptions {
                data_consumer_id: DataConsumerId::new(id),
                data_producer_id: DataProducerId::new(producer_id),
                data_type,
                sctp_stream_parameters,
                label,
                protocol,
                paused,
                subchannels,
            },
        )
}

pub(crate) fn direct_transport_dump() -> impl Strategy<Value = DirectTransportDump> {
    (text(), u32_edge(262_144), ids(), ids()).prop_map(
        |(id, max_message_size, data_producer_ids, data_consumer_ids)| DirectTransportDump {
            id: TransportId::new(id),
            max_message_size,
            data_producer_ids,
            data_consumer_ids,
        },
    )
}

pub(crate) fn data_producer_dump() -> impl Strategy<Value = DataProducerDump> {
    produce_data_options().prop_map(|o| DataProducerDump {
        id: o.data_producer_id,
        data_type: o.data_type,
        sctp_stream_parameters: o.sctp_stream_parameters,
        label: o.label,
        protocol: o.protocol,
        paused: o.paused,
    })
}

pub(crate) fn data_consumer_dump() -> impl Strategy<Value = DataConsumerDump> {
    (
        consume_data_options(),
        u32_edge(0),
        any::<bool>(),
        subchannels(),
    )
        .prop_map(
            |(o, buffered_amount_low_threshold, data_producer_paused, subchannels)| {
                DataConsumerDump {
                    id: o.data_consumer_id,
                    data_producer_id: o.data_producer_id,
                    data_type: o.data_type,
                    sctp_stream_parameters: o.sctp_stream_parameters,
                    label: o.label,
                    protocol: o.protocol,
                    buffered_amount_low_threshold,
                    paused: o.paused,
                    data_producer_paused,
                    subchannels,
                }
            },
        )
}

pub(crate) fn data_stats() -> impl Strategy<Value = DataStats> {
    (
        u64_edge(),
        text(),
        text(),
        u64_edge(),
        u64_edge(),
        u32_edge(0),
    )
        .prop_map(
            |(timestamp, label, protocol, messages, bytes, buffered_amount)| DataStats {
                timestamp,
                label,
                protocol,
                messages,
                bytes,
                buffered_amount,
            },
        )
}
