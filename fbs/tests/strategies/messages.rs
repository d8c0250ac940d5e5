//! Strategies for the message bodies: requests, responses, media events, whole messages.

use ferrosfu_fbs::*;
use proptest::prelude::*;

use super::*;

pub(crate) fn request_body() -> impl Strategy<Value = RequestBody> {
    // Every method without arguments, drawn together so each of them still comes up often.
    let bodyless = prop::sample::select(vec![
        RequestBody::WorkerClose,
        RequestBody::WorkerDump,
        RequestBody::WorkerGetResourceUsage,
        RequestBody::WorkerGetMediaCounters,
        RequestBody::RouterDump,
        RequestBody::RouterClose,
        RequestBody::WebRtcServerClose,
        RequestBody::WebRtcServerDump,
        RequestBody::TransportClose,
        RequestBody::TransportDump,
        RequestBody::TransportGetStats,
        RequestBody::TransportRestartIce,
        RequestBody::ProducerClose,
        RequestBody::ProducerDump,
        RequestBody::ProducerGetStats,
        RequestBody::ProducerPause,
        RequestBody::ProducerResume,
        RequestBody::ConsumerClose,
        RequestBody::ConsumerDump,
        RequestBody::ConsumerGetStats,
        RequestBody::ConsumerPause,
        RequestBody::ConsumerResume,
        RequestBody::ConsumerRequestKeyFrame,
        RequestBody::RtpObserverClose,
        RequestBody::RtpObserverPause,
        RequestBody::RtpObserverResume,
        RequestBody::DataProducerClose,
        RequestBody::DataProducerDump,
        RequestBody::DataProducerGetStats,
        RequestBody::DataProducerPause,
        RequestBody::DataProducerResume,
        RequestBody::DataConsumerClose,
        RequestBody::DataConsumerDump,
        RequestBody::DataConsumerGetStats,
        RequestBody::DataConsumerPause,
        RequestBody::DataConsumerResume,
        RequestBody::DataConsumerGetBufferedAmount,
    ]);
    prop_oneof![
        4 => bodyless.boxed(),
        1 => (opt(level()), opt(vec(text(), 3)))
            .prop_map(|(log_level, log_targets)| {
                RequestBody::WorkerUpdateSettings(UpdateSettings {
                    log_level,
                    log_targets,
                })
            })
            .boxed(),
        1 => text()
            .prop_map(|id| RequestBody::WorkerCreateRouter {
                router_id: RouterId::new(id)
            })
            .boxed(),
        1 => (text(), vec(listen_info(), 3))
            .prop_map(|(id, listen_infos)| {
                RequestBody::WorkerCreateWebRtcServer(WebRtcServerOptions {
                    web_rtc_server_id: WebRtcServerId::new(id),
                    listen_infos,
                })
            })
            .boxed(),
        1 => webrtc_transport_options()
            .prop_map(RequestBody::RouterCreateWebRtcTransport)
            .boxed(),
        1 => plain_transport_options()
            .prop_map(RequestBody::RouterCreatePlainTransport)
            .boxed(),
        1 => connect_params().prop_map(RequestBody::TransportConnect).boxed(),
        1 => any::<u32>()
            .prop_map(RequestBody::TransportSetMaxIncomingBitrate)
            .boxed(),
        1 => any::<u32>()
            .prop_map(RequestBody::TransportSetMaxOutgoingBitrate)
            .boxed(),
        1 => any::<u32>()
            .prop_map(RequestBody::TransportSetMinOutgoingBitrate)
            .boxed(),
        1 => vec(Just(TraceEventType::Bwe), 2)
            .prop_map(RequestBody::TransportEnableTraceEvent)
            .boxed(),
        1 => consumer_layers()
            .prop_map(RequestBody::ConsumerSetPreferredLayers)
            .boxed(),
        1 => (text(), any::<u16>())
            .prop_map(|(id, interval)| {
                RequestBody::RouterCreateActiveSpeakerObserver(ActiveSpeakerObserverOptions {
                    rtp_observer_id: RtpObserverId::new(id),
                    interval,
                })
            })
            .boxed(),
        1 => (text(), any::<u16>(), any::<i8>(), any::<u16>())
            .prop_map(|(id, max_entries, threshold, interval)| {
                RequestBody::RouterCreateAudioLevelObserver(AudioLevelObserverOptions {
                    rtp_observer_id: RtpObserverId::new(id),
                    max_entries,
                    threshold,
                    interval,
                })
            })
            .boxed(),
        1 => (text(), any::<bool>())
            .prop_map(|(id, add)| {
                let producer_id = ProducerId::new(id);
                if add {
                    RequestBody::RtpObserverAddProducer { producer_id }
                } else {
                    RequestBody::RtpObserverRemoveProducer { producer_id }
                }
            })
            .boxed(),
        1 => any::<u8>()
            .prop_map(RequestBody::ConsumerSetPriority)
            .boxed(),
        1 => produce_options().prop_map(RequestBody::TransportProduce).boxed(),
        1 => consume_options().prop_map(RequestBody::TransportConsume).boxed(),
        1 => direct_transport_options()
            .prop_map(RequestBody::RouterCreateDirectTransport)
            .boxed(),
        1 => produce_data_options()
            .prop_map(RequestBody::TransportProduceData)
            .boxed(),
        1 => consume_data_options()
            .prop_map(RequestBody::TransportConsumeData)
            .boxed(),
        1 => data_send().prop_map(RequestBody::DataProducerSend).boxed(),
        1 => data_send().prop_map(RequestBody::DataConsumerSend).boxed(),
        1 => u32_edge(0)
            .prop_map(RequestBody::DataConsumerSetBufferedAmountLowThreshold)
            .boxed(),
        1 => subchannels()
            .prop_map(RequestBody::DataConsumerSetSubchannels)
            .boxed(),
    ]
}

pub(crate) fn response_body() -> impl Strategy<Value = ResponseBody> {
    prop_oneof![
        Just(ResponseBody::None).boxed(),
        (any::<u32>(), any::<u32>(), vec(text(), 4))
            .prop_map(|(pid, core, ids)| ResponseBody::WorkerDump(WorkerDump {
                pid,
                core,
                router_ids: ids.into_iter().map(RouterId::new).collect(),
            }))
            .boxed(),
        (
            proptest::array::uniform9(any::<u64>()),
            proptest::array::uniform13(any::<u64>())
        )
            .prop_map(|(a, b)| {
                ResponseBody::ResourceUsage(ResourceUsage {
                    ru_utime: a[0],
                    ru_stime: a[1],
                    ru_maxrss: a[2],
                    ru_minflt: a[3],
                    ru_majflt: a[4],
                    ru_inblock: a[5],
                    ru_oublock: a[6],
                    ru_nvcsw: a[7],
                    ru_nivcsw: a[8],
                    sockets: SocketCounters {
                        udp_received: b[0],
                        udp_sent: b[1],
                        udp_behind_dropped: b[2],
                        udp_send_queue_full: b[3],
                        udp_send_errors: b[4],
                        udp_recv_errors: b[5],
                        no_socket: b[6],
                        tcp_unsent: b[7],
                        tcp_accepted: b[8],
                        tcp_rejected: b[9],
                        tcp_malformed: b[10],
                        tcp_overflow: b[11],
                        tcp_frames_received: b[12],
                    },
                })
            })
            .boxed(),
        (
            proptest::array::uniform5(any::<u64>()),
            proptest::array::uniform8(any::<u64>()),
            proptest::array::uniform16(any::<u64>()),
            vec(any::<u64>(), 12),
            any::<u32>(),
        )
            .prop_map(|(a, d, m, counts, sum)| {
                let rtp = |o: usize| RtpCounters {
                    packets_received: m[o],
                    bytes_received: m[o + 1],
                    packets_sent: m[o + 2],
                    bytes_sent: m[o + 3],
                    retransmissions_sent: m[o + 4],
                };
                let hist = Histogram {
                    bounds: (0..counts.len().saturating_sub(1))
                        .map(|i| i as f64 * 0.25)
                        .collect(),
                    counts,
                    sum: f64::from(sum) / 8.0,
                };
                ResponseBody::MediaCounters(Box::new(MediaCounters {
                    audio: rtp(0),
                    video: rtp(5),
                    feedback: FeedbackCounters {
                        nacks_received: m[10],
                        nacks_sent: m[11],
                        plis_received: m[12],
                        plis_sent: m[13],
                        firs_received: m[14],
                        firs_sent: m[15],
                    },
                    srtp_auth_failures: a[0] / 2,
                    srtp_replays: a[1] / 3,
                    ice_consent_lost: a[2] / 5,
                    ice_unauthorized: a[3] / 7,
                    ice_bad_requests: a[4] / 11,
                    transports: sum % 1000,
                    producers: sum % 997,
                    consumers: sum % 991,
                    loss_received: hist.clone(),
                    loss_sent: Histogram::default(),
                    jitter_received: hist.clone(),
                    jitter_sent: hist.clone(),
                    rtt: hist,
                    unknown_socket: a[0],
                    unknown_tuple: a[1],
                    rtp_bad_sequence: a[2],
                    rtp_resyncs: a[3],
                    dtls_failures: a[4],
                    data: DataCounters {
                        messages_received: d[0],
                        messages_sent: d[1],
                        malformed: d[2],
                        unknown_stream: d[3],
                        dcep: d[4],
                        unknown_ppid: d[5],
                        oversize: d[6],
                        send_buffer_full: d[7],
                    },
                }))
            })
            .boxed(),
        (text(), vec(text(), 3))
            .prop_map(|(id, transport_ids)| {
                ResponseBody::RouterDump(RouterDump {
                    id: RouterId::new(id),
                    transport_ids,
                })
            })
            .boxed(),
        (text(), vec(listen_info(), 3), ids())
            .prop_map(|(id, listen_infos, transport_ids)| {
                ResponseBody::WebRtcServerDump(WebRtcServerDump {
                    id: WebRtcServerId::new(id),
                    listen_infos,
                    transport_ids,
                })
            })
            .boxed(),
        (
            text(),
            ice_parameters(),
            vec(ice_candidate(), 3),
            ice_state(),
            opt(tuple()),
            dtls_parameters(),
            dtls_state(),
            (ids(), ids()),
            (opt(sctp_parameters()), opt(sctp_state()), ids(), ids()),
        )
            .prop_map(
                |(
                    id,
                    ice_parameters,
                    ice_candidates,
                    ice_state,
                    ice_selected_tuple,
                    dtls_parameters,
                    dtls_state,
                    (producer_ids, consumer_ids),
                    (sctp_parameters, sctp_state, data_producer_ids, data_consumer_ids),
                )| {
                    ResponseBody::WebRtcTransportDump(WebRtcTransportDump {
                        id: TransportId::new(id),
                        ice_parameters,
                        ice_candidates,
                        ice_state,
                        ice_selected_tuple,
                        dtls_parameters,
                        dtls_state,
                        producer_ids,
                        consumer_ids,
                        sctp_parameters,
                        sctp_state,
                        data_producer_ids,
                        data_consumer_ids,
                    })
                },
            )
            .boxed(),
        (
            text(),
            any::<bool>(),
            any::<bool>(),
            tuple(),
            opt(tuple()),
            opt(srtp_parameters()),
            ids(),
            ids(),
        )
            .prop_map(
                |(
                    id,
                    rtcp_mux,
                    comedia,
                    tuple,
                    rtcp_tuple,
                    srtp_parameters,
                    producer_ids,
                    consumer_ids,
                )| {
                    ResponseBody::PlainTransportDump(PlainTransportDump {
                        id: TransportId::new(id),
                        rtcp_mux,
                        comedia,
                        tuple,
                        rtcp_tuple,
                        srtp_parameters,
                        producer_ids,
                        consumer_ids,
                    })
                },
            )
            .boxed(),
        transport_stats()
            .prop_map(ResponseBody::TransportStats)
            .boxed(),
        ice_parameters()
            .prop_map(ResponseBody::IceParameters)
            .boxed(),
        (
            text(),
            media_kind(),
            rtp_parameters(),
            rtp_mapping(),
            any::<bool>()
        )
            .prop_map(|(id, kind, rtp_parameters, rtp_mapping, paused)| {
                ResponseBody::ProducerDump(ProducerDump {
                    id: ProducerId::new(id),
                    kind,
                    rtp_parameters,
                    rtp_mapping,
                    paused,
                })
            })
            .boxed(),
        vec(rtp_stream_stats(), 3)
            .prop_map(ResponseBody::RtpStreamStats)
            .boxed(),
        (any::<bool>(), any::<bool>(), consumer_score())
            .prop_map(|(paused, producer_paused, score)| ResponseBody::Consumed {
                paused,
                producer_paused,
                score,
            })
            .boxed(),
        (
            (text(), text(), media_kind(), rtp_parameters()),
            (any::<bool>(), any::<bool>()),
            (consumer_type(), any::<u8>()),
            (
                opt(consumer_layers()),
                opt(consumer_layers()),
                opt(consumer_layers())
            ),
        )
            .prop_map(
                |(
                    (id, producer_id, kind, rtp_parameters),
                    (paused, producer_paused),
                    (consumer_type, priority),
                    (preferred_layers, target_layers, current_layers),
                )| {
                    ResponseBody::ConsumerDump(ConsumerDump {
                        id: ConsumerId::new(id),
                        producer_id: ProducerId::new(producer_id),
                        kind,
                        rtp_parameters,
                        paused,
                        producer_paused,
                        consumer_type,
                        priority,
                        preferred_layers,
                        target_layers,
                        current_layers,
                    })
                },
            )
            .boxed(),
        opt(consumer_layers())
            .prop_map(ResponseBody::PreferredLayers)
            .boxed(),
        direct_transport_dump()
            .prop_map(ResponseBody::DirectTransportDump)
            .boxed(),
        data_producer_dump()
            .prop_map(ResponseBody::DataProducerDump)
            .boxed(),
        data_consumer_dump()
            .prop_map(ResponseBody::DataConsumerDump)
            .boxed(),
        data_stats().prop_map(ResponseBody::DataStats).boxed(),
        u32_edge(0).prop_map(ResponseBody::BufferedAmount).boxed(),
        subchannels().prop_map(ResponseBody::Subchannels).boxed(),
    ]
}

pub(crate) fn media_event() -> impl Strategy<Value = MediaEvent> {
    prop_oneof![
        ice_state()
            .prop_map(MediaEvent::TransportIceStateChange)
            .boxed(),
        tuple()
            .prop_map(MediaEvent::TransportIceSelectedTupleChange)
            .boxed(),
        (dtls_state(), opt(text()))
            .prop_map(|(state, reason)| MediaEvent::TransportDtlsStateChange { state, reason })
            .boxed(),
        (tuple(), any::<bool>())
            .prop_map(|(tuple, rtcp)| MediaEvent::PlainTransportTuple { tuple, rtcp })
            .boxed(),
        vec((any::<u32>(), opt(text()), any::<u8>()), 4)
            .prop_map(MediaEvent::ProducerScore)
            .boxed(),
        consumer_score().prop_map(MediaEvent::ConsumerScore).boxed(),
        Just(MediaEvent::ConsumerProducerPause).boxed(),
        Just(MediaEvent::ConsumerProducerResume).boxed(),
        Just(MediaEvent::ConsumerProducerClose).boxed(),
        Just(MediaEvent::ConsumerTransportClose).boxed(),
        Just(MediaEvent::ProducerTransportClose).boxed(),
        opt(consumer_layers())
            .prop_map(MediaEvent::ConsumerLayersChange)
            .boxed(),
        text()
            .prop_map(|id| MediaEvent::ActiveSpeakerObserverDominantSpeaker {
                producer_id: ProducerId::new(id)
            })
            .boxed(),
        vec((text().prop_map(ProducerId::new), any::<i8>()), 4)
            .prop_map(MediaEvent::AudioLevelObserverVolumes)
            .boxed(),
        Just(MediaEvent::AudioLevelObserverSilence).boxed(),
        (
            any::<u64>(),
            any::<bool>(),
            proptest::array::uniform7(any::<u32>())
        )
            .prop_map(
                |(timestamp, remb, b)| MediaEvent::TransportBweTrace(BweTrace {
                    timestamp,
                    bwe_type: if remb {
                        BweType::Remb
                    } else {
                        BweType::TransportCc
                    },
                    desired_bitrate: b[0],
                    effective_desired_bitrate: b[1],
                    min_bitrate: b[2],
                    max_bitrate: b[3],
                    start_bitrate: b[4],
                    max_padding_bitrate: b[5],
                    available_bitrate: b[6],
                })
            )
            .boxed(),
        Just(MediaEvent::ConsumerBwePause).boxed(),
        Just(MediaEvent::ConsumerBweResume).boxed(),
        vec(any::<u8>(), 3)
            .prop_map(MediaEvent::ProducerLayersNeeded)
            .boxed(),
        sctp_state()
            .prop_map(MediaEvent::TransportSctpStateChange)
            .boxed(),
        u32_edge(0)
            .prop_map(MediaEvent::DataConsumerBufferedAmountLow)
            .boxed(),
        Just(MediaEvent::DataConsumerSctpSendBufferFull).boxed(),
        Just(MediaEvent::DataConsumerDataProducerPause).boxed(),
        Just(MediaEvent::DataConsumerDataProducerResume).boxed(),
        Just(MediaEvent::DataConsumerDataProducerClose).boxed(),
        Just(MediaEvent::DataConsumerTransportClose).boxed(),
        Just(MediaEvent::DataProducerTransportClose).boxed(),
        (ppid(), data_bytes())
            .prop_map(|(ppid, data)| MediaEvent::DataConsumerMessage { ppid, data })
            .boxed(),
    ]
}

pub(crate) fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), text(), request_body()).prop_map(|(id, h, body)| Message::Request(
            Request {
                id: RequestId(id),
                handler_id: HandlerId::new(h),
                body
            }
        )),
        (any::<u32>(), response_body()).prop_map(|(id, b)| Message::Response(Response {
            id: RequestId(id),
            result: Ok(b)
        })),
        (any::<u32>(), any::<bool>(), text()).prop_map(|(id, invalid, reason)| {
            let kind = if invalid {
                ErrorKind::InvalidArgument
            } else {
                ErrorKind::Failed
            };
            Message::Response(Response {
                id: RequestId(id),
                result: Err(RequestFailure { kind, reason }),
            })
        }),
        (text(), any::<u32>(), any::<u32>(), any::<u32>(), text()).prop_map(
            |(h, pid, core, protocol_version, version)| Message::Notification(Notification {
                handler_id: HandlerId::new(h),
                event: Event::WorkerRunning(WorkerRunning {
                    pid,
                    core,
                    protocol_version,
                    version
                }),
            })
        ),
        text().prop_map(|reason| Message::Notification(Notification {
            handler_id: HandlerId::worker(),
            event: Event::WorkerChannelError { reason },
        })),
        (text(), media_event()).prop_map(|(h, e)| Message::Notification(Notification {
            handler_id: HandlerId::new(h),
            event: Event::Media(e),
        })),
        (level(), text(), text()).prop_map(|(level, target, text)| Message::Log(LogRecord {
            level,
            target,
            text
        })),
    ]
}
