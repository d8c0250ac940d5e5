//! Data channels: SCTP parameters, DataProducer/DataConsumer requests, answers and events.

use super::*;
use crate::data::*;
use crate::generated::fbs::{
    data_consumer as fb_dc, data_producer as fb_dp, direct_transport as fb_dt,
    sctp_parameters as fb_sctp,
};
use crate::ids::{DataConsumerId, DataProducerId};

type Parts<B> = (B, Option<WIPOffset<UnionWIPOffset>>);

pub(super) fn build_sctp_options(
    fbb: &mut Fbb,
    o: &SctpOptions,
) -> WIPOffset<fb_sctp::SctpOptions<'static>> {
    let num_sctp_streams = Some(fb_sctp::NumSctpStreams::create(
        fbb,
        &fb_sctp::NumSctpStreamsArgs {
            os: o.num_streams.os,
            mis: o.num_streams.mis,
        },
    ));
    fb_sctp::SctpOptions::create(
        fbb,
        &fb_sctp::SctpOptionsArgs {
            num_sctp_streams,
            max_sctp_message_size: o.max_message_size,
            sctp_send_buffer_size: o.send_buffer_size,
        },
    )
}

pub(super) fn sctp_options_from(o: fb_sctp::SctpOptions<'_>) -> SctpOptions {
    let n = o.num_sctp_streams();
    SctpOptions {
        num_streams: NumSctpStreams {
            os: n.os(),
            mis: n.mis(),
        },
        max_message_size: o.max_sctp_message_size(),
        send_buffer_size: o.sctp_send_buffer_size(),
    }
}

pub(super) fn build_sctp_parameters(
    fbb: &mut Fbb,
    p: &SctpParameters,
) -> WIPOffset<fb_sctp::SctpParameters<'static>> {
    fb_sctp::SctpParameters::create(
        fbb,
        &fb_sctp::SctpParametersArgs {
            port: p.port,
            os: p.os,
            mis: p.mis,
            max_message_size: p.max_message_size,
            send_buffer_size: p.send_buffer_size,
            sctp_buffered_amount: p.sctp_buffered_amount,
            is_data_channel: p.is_data_channel,
        },
    )
}

pub(super) fn sctp_parameters_from(p: fb_sctp::SctpParameters<'_>) -> SctpParameters {
    SctpParameters {
        port: p.port(),
        os: p.os(),
        mis: p.mis(),
        max_message_size: p.max_message_size(),
        send_buffer_size: p.send_buffer_size(),
        sctp_buffered_amount: p.sctp_buffered_amount(),
        is_data_channel: p.is_data_channel(),
    }
}

pub(super) fn sctp_state_to(s: SctpState) -> fb_sctp::SctpState {
    match s {
        SctpState::New => fb_sctp::SctpState::NEW,
        SctpState::Connecting => fb_sctp::SctpState::CONNECTING,
        SctpState::Connected => fb_sctp::SctpState::CONNECTED,
        SctpState::Failed => fb_sctp::SctpState::FAILED,
        SctpState::Closed => fb_sctp::SctpState::CLOSED,
    }
}

pub(super) fn sctp_state_from(s: fb_sctp::SctpState) -> Dr<SctpState> {
    Ok(match s {
        fb_sctp::SctpState::NEW => SctpState::New,
        fb_sctp::SctpState::CONNECTING => SctpState::Connecting,
        fb_sctp::SctpState::CONNECTED => SctpState::Connected,
        fb_sctp::SctpState::FAILED => SctpState::Failed,
        fb_sctp::SctpState::CLOSED => SctpState::Closed,
        other => return Err(format!("unknown sctp state {}", other.0)),
    })
}

fn build_stream(
    fbb: &mut Fbb,
    p: Option<&SctpStreamParameters>,
) -> Option<WIPOffset<fb_sctp::SctpStreamParameters<'static>>> {
    p.map(|p| {
        fb_sctp::SctpStreamParameters::create(
            fbb,
            &fb_sctp::SctpStreamParametersArgs {
                stream_id: p.stream_id,
                ordered: p.ordered,
                max_packet_life_time: p.max_packet_life_time,
                max_retransmits: p.max_retransmits,
            },
        )
    })
}

fn stream_from(p: fb_sctp::SctpStreamParameters<'_>) -> SctpStreamParameters {
    SctpStreamParameters {
        stream_id: p.stream_id(),
        ordered: p.ordered(),
        max_packet_life_time: p.max_packet_life_time(),
        max_retransmits: p.max_retransmits(),
    }
}

fn data_type_to(t: DataType) -> fb_dp::Type {
    match t {
        DataType::Sctp => fb_dp::Type::SCTP,
        DataType::Direct => fb_dp::Type::DIRECT,
    }
}

fn data_type_from(t: fb_dp::Type) -> Dr<DataType> {
    Ok(match t {
        fb_dp::Type::SCTP => DataType::Sctp,
        fb_dp::Type::DIRECT => DataType::Direct,
        other => return Err(format!("unknown data producer type {}", other.0)),
    })
}

fn u16s(v: Option<Vector<'_, u16>>) -> Option<Vec<u16>> {
    v.map(|v| v.bounded().collect())
}

fn build_send(fbb: &mut Fbb, s: &DataSend) -> WIPOffset<fb_dp::SendRequest<'static>> {
    let data = Some(fbb.create_vector(&s.data));
    let subchannels = s.subchannels.as_ref().map(|v| fbb.create_vector(v));
    fb_dp::SendRequest::create(
        fbb,
        &fb_dp::SendRequestArgs {
            ppid: s.ppid,
            data,
            subchannels,
            required_subchannel: s.required_subchannel,
        },
    )
}

fn send_from(s: fb_dp::SendRequest<'_>) -> DataSend {
    DataSend {
        ppid: s.ppid(),
        data: own_bytes(s.data()),
        subchannels: u16s(s.subchannels()),
        required_subchannel: s.required_subchannel(),
    }
}

/// The body of a data-channel request; `None` for any other.
pub(super) fn build_data_request_body(
    fbb: &mut Fbb,
    body: &RequestBody,
) -> Option<Parts<fb_req::Body>> {
    use fb_req::Body as B;
    Some(match body {
        RequestBody::RouterCreateDirectTransport(o) => {
            let transport_id = Some(fbb.create_string(o.transport_id.as_str()));
            let b = fb_dt::CreateRequest::create(
                fbb,
                &fb_dt::CreateRequestArgs {
                    transport_id,
                    max_message_size: o.max_message_size,
                },
            );
            (B::DirectTransport_CreateRequest, union(b))
        }
        RequestBody::TransportProduceData(o) => {
            let data_producer_id = Some(fbb.create_string(o.data_producer_id.as_str()));
            let sctp_stream_parameters = build_stream(fbb, o.sctp_stream_parameters.as_ref());
            let label = Some(fbb.create_string(&o.label));
            let protocol = Some(fbb.create_string(&o.protocol));
            let b = fb_tr::ProduceDataRequest::create(
                fbb,
                &fb_tr::ProduceDataRequestArgs {
                    data_producer_id,
                    type_: data_type_to(o.data_type),
                    sctp_stream_parameters,
                    label,
                    protocol,
                    paused: o.paused,
                },
            );
            (B::Transport_ProduceDataRequest, union(b))
        }
        RequestBody::TransportConsumeData(o) => {
            let data_consumer_id = Some(fbb.create_string(o.data_consumer_id.as_str()));
            let data_producer_id = Some(fbb.create_string(o.data_producer_id.as_str()));
            let sctp_stream_parameters = build_stream(fbb, o.sctp_stream_parameters.as_ref());
            let label = Some(fbb.create_string(&o.label));
            let protocol = Some(fbb.create_string(&o.protocol));
            let subchannels = o.subchannels.as_ref().map(|v| fbb.create_vector(v));
            let b = fb_tr::ConsumeDataRequest::create(
                fbb,
                &fb_tr::ConsumeDataRequestArgs {
                    data_consumer_id,
                    data_producer_id,
                    type_: data_type_to(o.data_type),
                    sctp_stream_parameters,
                    label,
                    protocol,
                    paused: o.paused,
                    subchannels,
                },
            );
            (B::Transport_ConsumeDataRequest, union(b))
        }
        RequestBody::DataProducerSend(s) | RequestBody::DataConsumerSend(s) => {
            let b = build_send(fbb, s);
            (B::DataProducer_SendRequest, union(b))
        }
        RequestBody::DataConsumerSetBufferedAmountLowThreshold(threshold) => {
            let b = fb_dc::SetBufferedAmountLowThresholdRequest::create(
                fbb,
                &fb_dc::SetBufferedAmountLowThresholdRequestArgs {
                    threshold: *threshold,
                },
            );
            (
                B::DataConsumer_SetBufferedAmountLowThresholdRequest,
                union(b),
            )
        }
        RequestBody::DataConsumerSetSubchannels(v) => {
            let subchannels = Some(fbb.create_vector(v));
            let b = fb_dc::SetSubchannelsRequest::create(
                fbb,
                &fb_dc::SetSubchannelsRequestArgs { subchannels },
            );
            (B::DataConsumer_SetSubchannelsRequest, union(b))
        }
        _ => return None,
    })
}

/// The body of a data-channel request method; `None` for any other method.
pub(super) fn data_request_body_from(r: fb_req::Request<'_>) -> Option<Dr<RequestBody>> {
    use fb_req::Method as M;
    let missing = |method: Method| format!("{method} body missing");
    let body = match r.method() {
        M::ROUTER_CREATE_DIRECT_TRANSPORT => r
            .body_as_direct_transport_create_request()
            .map(|b| {
                Ok(RequestBody::RouterCreateDirectTransport(
                    DirectTransportOptions {
                        transport_id: TransportId::new(b.transport_id()),
                        max_message_size: b.max_message_size(),
                    },
                ))
            })
            .ok_or_else(|| missing(Method::RouterCreateDirectTransport)),
        M::TRANSPORT_PRODUCE_DATA => r
            .body_as_transport_produce_data_request()
            .map(|b| {
                Ok(RequestBody::TransportProduceData(ProduceDataOptions {
                    data_producer_id: DataProducerId::new(b.data_producer_id()),
                    data_type: data_type_from(b.type_())?,
                    sctp_stream_parameters: b.sctp_stream_parameters().map(stream_from),
                    label: own(b.label()),
                    protocol: own(b.protocol()),
                    paused: b.paused(),
                }))
            })
            .ok_or_else(|| missing(Method::TransportProduceData)),
        M::TRANSPORT_CONSUME_DATA => r
            .body_as_transport_consume_data_request()
            .map(|b| {
                Ok(RequestBody::TransportConsumeData(ConsumeDataOptions {
                    data_consumer_id: DataConsumerId::new(b.data_consumer_id()),
                    data_producer_id: DataProducerId::new(b.data_producer_id()),
                    data_type: data_type_from(b.type_())?,
                    sctp_stream_parameters: b.sctp_stream_parameters().map(stream_from),
                    label: own(b.label()),
                    protocol: own(b.protocol()),
                    paused: b.paused(),
                    subchannels: u16s(b.subchannels()),
                }))
            })
            .ok_or_else(|| missing(Method::TransportConsumeData)),
        M::DATA_PRODUCER_SEND => r
            .body_as_data_producer_send_request()
            .map(|b| Ok(RequestBody::DataProducerSend(send_from(b))))
            .ok_or_else(|| missing(Method::DataProducerSend)),
        M::DATA_CONSUMER_SEND => r
            .body_as_data_producer_send_request()
            .map(|b| Ok(RequestBody::DataConsumerSend(send_from(b))))
            .ok_or_else(|| missing(Method::DataConsumerSend)),
        M::DATA_CONSUMER_SET_BUFFERED_AMOUNT_LOW_THRESHOLD => r
            .body_as_data_consumer_set_buffered_amount_low_threshold_request()
            .map(|b| {
                Ok(RequestBody::DataConsumerSetBufferedAmountLowThreshold(
                    b.threshold(),
                ))
            })
            .ok_or_else(|| missing(Method::DataConsumerSetBufferedAmountLowThreshold)),
        M::DATA_CONSUMER_SET_SUBCHANNELS => r
            .body_as_data_consumer_set_subchannels_request()
            .map(|b| {
                Ok(RequestBody::DataConsumerSetSubchannels(
                    b.subchannels().bounded().collect(),
                ))
            })
            .ok_or_else(|| missing(Method::DataConsumerSetSubchannels)),
        _ => return None,
    };
    Some(body.and_then(|b| b))
}

fn data_producer_ids(
    fbb: &mut Fbb,
    v: &[DataProducerId],
) -> WIPOffset<Vector<'static, ForwardsUOffset<&'static str>>> {
    strings(fbb, v.iter().map(DataProducerId::as_str))
}

fn data_consumer_ids(
    fbb: &mut Fbb,
    v: &[DataConsumerId],
) -> WIPOffset<Vector<'static, ForwardsUOffset<&'static str>>> {
    strings(fbb, v.iter().map(DataConsumerId::as_str))
}

pub(super) fn data_producer_ids_from(
    v: Option<Vector<'_, ForwardsUOffset<&str>>>,
) -> Vec<DataProducerId> {
    v.map(|v| v.bounded_strs().map(DataProducerId::new).collect())
        .unwrap_or_default()
}

pub(super) fn data_consumer_ids_from(
    v: Option<Vector<'_, ForwardsUOffset<&str>>>,
) -> Vec<DataConsumerId> {
    v.map(|v| v.bounded_strs().map(DataConsumerId::new).collect())
        .unwrap_or_default()
}

/// The WebRtcTransport dump's data-channel part.
pub(super) struct WebRtcSctpParts {
    pub sctp_parameters: Option<WIPOffset<fb_sctp::SctpParameters<'static>>>,
    pub sctp_state: Option<fb_sctp::SctpState>,
    pub data_producer_ids: Option<WIPOffset<Vector<'static, ForwardsUOffset<&'static str>>>>,
    pub data_consumer_ids: Option<WIPOffset<Vector<'static, ForwardsUOffset<&'static str>>>>,
}

pub(super) fn build_webrtc_sctp_parts(fbb: &mut Fbb, d: &WebRtcTransportDump) -> WebRtcSctpParts {
    WebRtcSctpParts {
        sctp_parameters: d
            .sctp_parameters
            .as_ref()
            .map(|p| build_sctp_parameters(fbb, p)),
        sctp_state: d.sctp_state.map(sctp_state_to),
        data_producer_ids: Some(data_producer_ids(fbb, &d.data_producer_ids)),
        data_consumer_ids: Some(data_consumer_ids(fbb, &d.data_consumer_ids)),
    }
}

/// The body of a data-channel answer; `None` for any other.
pub(super) fn build_data_response_body(
    fbb: &mut Fbb,
    body: &ResponseBody,
) -> Option<Parts<fb_resp::Body>> {
    use fb_resp::Body as B;
    Some(match body {
        ResponseBody::DirectTransportDump(d) => {
            let id = Some(fbb.create_string(d.id.as_str()));
            let data_producer_ids = Some(data_producer_ids(fbb, &d.data_producer_ids));
            let data_consumer_ids = Some(data_consumer_ids(fbb, &d.data_consumer_ids));
            let b = fb_dt::DumpResponse::create(
                fbb,
                &fb_dt::DumpResponseArgs {
                    id,
                    max_message_size: d.max_message_size,
                    data_producer_ids,
                    data_consumer_ids,
                },
            );
            (B::DirectTransport_DumpResponse, union(b))
        }
        ResponseBody::DataProducerDump(d) => {
            let id = Some(fbb.create_string(d.id.as_str()));
            let sctp_stream_parameters = build_stream(fbb, d.sctp_stream_parameters.as_ref());
            let label = Some(fbb.create_string(&d.label));
            let protocol = Some(fbb.create_string(&d.protocol));
            let b = fb_dp::DumpResponse::create(
                fbb,
                &fb_dp::DumpResponseArgs {
                    id,
                    type_: data_type_to(d.data_type),
                    sctp_stream_parameters,
                    label,
                    protocol,
                    paused: d.paused,
                },
            );
            (B::DataProducer_DumpResponse, union(b))
        }
        ResponseBody::DataConsumerDump(d) => {
            let id = Some(fbb.create_string(d.id.as_str()));
            let data_producer_id = Some(fbb.create_string(d.data_producer_id.as_str()));
            let sctp_stream_parameters = build_stream(fbb, d.sctp_stream_parameters.as_ref());
            let label = Some(fbb.create_string(&d.label));
            let protocol = Some(fbb.create_string(&d.protocol));
            let subchannels = Some(fbb.create_vector(&d.subchannels));
            let b = fb_dc::DumpResponse::create(
                fbb,
                &fb_dc::DumpResponseArgs {
                    id,
                    data_producer_id,
                    type_: data_type_to(d.data_type),
                    sctp_stream_parameters,
                    label,
                    protocol,
                    buffered_amount_low_threshold: d.buffered_amount_low_threshold,
                    paused: d.paused,
                    data_producer_paused: d.data_producer_paused,
                    subchannels,
                },
            );
            (B::DataConsumer_DumpResponse, union(b))
        }
        ResponseBody::DataStats(s) => {
            let label = Some(fbb.create_string(&s.label));
            let protocol = Some(fbb.create_string(&s.protocol));
            let b = fb_dp::GetStatsResponse::create(
                fbb,
                &fb_dp::GetStatsResponseArgs {
                    timestamp: s.timestamp,
                    label,
                    protocol,
                    messages: s.messages,
                    bytes: s.bytes,
                    buffered_amount: s.buffered_amount,
                },
            );
            (B::DataProducer_GetStatsResponse, union(b))
        }
        ResponseBody::BufferedAmount(n) => {
            let b = fb_dc::GetBufferedAmountResponse::create(
                fbb,
                &fb_dc::GetBufferedAmountResponseArgs {
                    buffered_amount: *n,
                },
            );
            (B::DataConsumer_GetBufferedAmountResponse, union(b))
        }
        ResponseBody::Subchannels(v) => {
            let subchannels = Some(fbb.create_vector(v));
            let b = fb_dc::SetSubchannelsResponse::create(
                fbb,
                &fb_dc::SetSubchannelsResponseArgs { subchannels },
            );
            (B::DataConsumer_SetSubchannelsResponse, union(b))
        }
        _ => return None,
    })
}

/// The data-channel answer in `r`; `None` when its body is of another kind.
pub(super) fn data_response_body_from(r: fb_resp::Response<'_>) -> Option<Dr<ResponseBody>> {
    use fb_resp::Body as B;
    let missing = |what: &str| format!("{what} body missing");
    let body = match r.body_type() {
        B::DirectTransport_DumpResponse => r
            .body_as_direct_transport_dump_response()
            .map(|d| {
                Ok(ResponseBody::DirectTransportDump(DirectTransportDump {
                    id: TransportId::new(d.id()),
                    max_message_size: d.max_message_size(),
                    data_producer_ids: data_producer_ids_from(Some(d.data_producer_ids())),
                    data_consumer_ids: data_consumer_ids_from(Some(d.data_consumer_ids())),
                }))
            })
            .ok_or_else(|| missing("direct transport dump")),
        B::DataProducer_DumpResponse => r
            .body_as_data_producer_dump_response()
            .map(|d| {
                Ok(ResponseBody::DataProducerDump(DataProducerDump {
                    id: DataProducerId::new(d.id()),
                    data_type: data_type_from(d.type_())?,
                    sctp_stream_parameters: d.sctp_stream_parameters().map(stream_from),
                    label: own(d.label()),
                    protocol: own(d.protocol()),
                    paused: d.paused(),
                }))
            })
            .ok_or_else(|| missing("data producer dump")),
        B::DataConsumer_DumpResponse => r
            .body_as_data_consumer_dump_response()
            .map(|d| {
                Ok(ResponseBody::DataConsumerDump(DataConsumerDump {
                    id: DataConsumerId::new(d.id()),
                    data_producer_id: DataProducerId::new(d.data_producer_id()),
                    data_type: data_type_from(d.type_())?,
                    sctp_stream_parameters: d.sctp_stream_parameters().map(stream_from),
                    label: own(d.label()),
                    protocol: own(d.protocol()),
                    buffered_amount_low_threshold: d.buffered_amount_low_threshold(),
                    paused: d.paused(),
                    data_producer_paused: d.data_producer_paused(),
                    subchannels: d.subchannels().bounded().collect(),
                }))
            })
            .ok_or_else(|| missing("data consumer dump")),
        B::DataProducer_GetStatsResponse => r
            .body_as_data_producer_get_stats_response()
            .map(|s| {
                Ok(ResponseBody::DataStats(DataStats {
                    timestamp: s.timestamp(),
                    label: own(s.label()),
                    protocol: own(s.protocol()),
                    messages: s.messages(),
                    bytes: s.bytes(),
                    buffered_amount: s.buffered_amount(),
                }))
            })
            .ok_or_else(|| missing("data stats")),
        B::DataConsumer_GetBufferedAmountResponse => r
            .body_as_data_consumer_get_buffered_amount_response()
            .map(|b| Ok(ResponseBody::BufferedAmount(b.buffered_amount())))
            .ok_or_else(|| missing("buffered amount")),
        B::DataConsumer_SetSubchannelsResponse => r
            .body_as_data_consumer_set_subchannels_response()
            .map(|b| {
                Ok(ResponseBody::Subchannels(
                    b.subchannels().bounded().collect(),
                ))
            })
            .ok_or_else(|| missing("subchannels")),
        _ => return None,
    };
    Some(body.and_then(|b| b))
}

/// A data-channel event; `None` for any other.
pub(super) fn build_data_event(
    fbb: &mut Fbb,
    e: &MediaEvent,
) -> Option<(
    fb_notif::Event,
    fb_notif::Body,
    Option<WIPOffset<UnionWIPOffset>>,
)> {
    use fb_notif::{Body as B, Event as E};
    Some(match e {
        MediaEvent::TransportSctpStateChange(s) => {
            let b = fb_sctp::SctpStateChangeNotification::create(
                fbb,
                &fb_sctp::SctpStateChangeNotificationArgs {
                    sctp_state: sctp_state_to(*s),
                },
            );
            (
                E::TRANSPORT_SCTP_STATE_CHANGE,
                B::SctpParameters_SctpStateChangeNotification,
                union(b),
            )
        }
        MediaEvent::DataConsumerBufferedAmountLow(n) => {
            let b = fb_dc::BufferedAmountLowNotification::create(
                fbb,
                &fb_dc::BufferedAmountLowNotificationArgs {
                    buffered_amount: *n,
                },
            );
            (
                E::DATACONSUMER_BUFFERED_AMOUNT_LOW,
                B::DataConsumer_BufferedAmountLowNotification,
                union(b),
            )
        }
        MediaEvent::DataConsumerMessage { ppid, data } => {
            let data = Some(fbb.create_vector(data));
            let b = fb_dc::MessageNotification::create(
                fbb,
                &fb_dc::MessageNotificationArgs { ppid: *ppid, data },
            );
            (
                E::DATACONSUMER_MESSAGE,
                B::DataConsumer_MessageNotification,
                union(b),
            )
        }
        MediaEvent::DataConsumerSctpSendBufferFull => {
            (E::DATACONSUMER_SCTP_SENDBUFFER_FULL, B::NONE, None)
        }
        MediaEvent::DataConsumerDataProducerPause => {
            (E::DATACONSUMER_DATAPRODUCER_PAUSE, B::NONE, None)
        }
        MediaEvent::DataConsumerDataProducerResume => {
            (E::DATACONSUMER_DATAPRODUCER_RESUME, B::NONE, None)
        }
        MediaEvent::DataConsumerDataProducerClose => {
            (E::DATACONSUMER_DATAPRODUCER_CLOSE, B::NONE, None)
        }
        MediaEvent::DataConsumerTransportClose => (E::DATACONSUMER_TRANSPORT_CLOSE, B::NONE, None),
        MediaEvent::DataProducerTransportClose => (E::DATAPRODUCER_TRANSPORT_CLOSE, B::NONE, None),
        _ => return None,
    })
}

/// The data-channel event in `n`; `None` for any other.
pub(super) fn data_event_from(n: fb_notif::Notification<'_>) -> Option<Dr<MediaEvent>> {
    use fb_notif::Event as E;
    let missing = |what: &str| format!("{what} body missing");
    Some(match n.event() {
        E::TRANSPORT_SCTP_STATE_CHANGE => n
            .body_as_sctp_parameters_sctp_state_change_notification()
            .ok_or_else(|| missing("sctp state change"))
            .and_then(|b| sctp_state_from(b.sctp_state()))
            .map(MediaEvent::TransportSctpStateChange),
        E::DATACONSUMER_BUFFERED_AMOUNT_LOW => n
            .body_as_data_consumer_buffered_amount_low_notification()
            .ok_or_else(|| missing("buffered amount low"))
            .map(|b| MediaEvent::DataConsumerBufferedAmountLow(b.buffered_amount())),
        E::DATACONSUMER_MESSAGE => n
            .body_as_data_consumer_message_notification()
            .ok_or_else(|| missing("data consumer message"))
            .map(|b| MediaEvent::DataConsumerMessage {
                ppid: b.ppid(),
                data: own_bytes(b.data()),
            }),
        E::DATACONSUMER_SCTP_SENDBUFFER_FULL => Ok(MediaEvent::DataConsumerSctpSendBufferFull),
        E::DATACONSUMER_DATAPRODUCER_PAUSE => Ok(MediaEvent::DataConsumerDataProducerPause),
        E::DATACONSUMER_DATAPRODUCER_RESUME => Ok(MediaEvent::DataConsumerDataProducerResume),
        E::DATACONSUMER_DATAPRODUCER_CLOSE => Ok(MediaEvent::DataConsumerDataProducerClose),
        E::DATACONSUMER_TRANSPORT_CLOSE => Ok(MediaEvent::DataConsumerTransportClose),
        E::DATAPRODUCER_TRANSPORT_CLOSE => Ok(MediaEvent::DataProducerTransportClose),
        _ => return None,
    })
}

pub(super) fn build_data_counters(
    fbb: &mut Fbb,
    c: &DataCounters,
) -> WIPOffset<fb_sctp::DataCounters<'static>> {
    fb_sctp::DataCounters::create(
        fbb,
        &fb_sctp::DataCountersArgs {
            messages_received: c.messages_received,
            messages_sent: c.messages_sent,
            malformed: c.malformed,
            unknown_stream: c.unknown_stream,
            dcep: c.dcep,
            unknown_ppid: c.unknown_ppid,
            oversize: c.oversize,
            send_buffer_full: c.send_buffer_full,
        },
    )
}

pub(super) fn data_counters_from(c: fb_sctp::DataCounters<'_>) -> DataCounters {
    DataCounters {
        messages_received: c.messages_received(),
        messages_sent: c.messages_sent(),
        malformed: c.malformed(),
        unknown_stream: c.unknown_stream(),
        dcep: c.dcep(),
        unknown_ppid: c.unknown_ppid(),
        oversize: c.oversize(),
        send_buffer_full: c.send_buffer_full(),
    }
}
