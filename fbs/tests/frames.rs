//! Property tests: every typed message survives encode -> frame -> decode unchanged, and no byte
//! sequence (truncated, oversized, garbage) makes the decoder panic.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ferrosfu_fbs::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn level() -> impl Strategy<Value = LogLevel> {
    prop_oneof![
        Just(LogLevel::Trace),
        Just(LogLevel::Debug),
        Just(LogLevel::Info),
        Just(LogLevel::Warn),
        Just(LogLevel::Error),
    ]
}

fn text() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn opt<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    proptest::option::of(s)
}

fn vec<S: Strategy>(s: S, max: usize) -> impl Strategy<Value = Vec<S::Value>> {
    proptest::collection::vec(s, 0..=max)
}

fn media_kind() -> impl Strategy<Value = MediaKind> {
    prop_oneof![Just(MediaKind::Audio), Just(MediaKind::Video)]
}

fn protocol() -> impl Strategy<Value = TransportProtocol> {
    prop_oneof![Just(TransportProtocol::Udp), Just(TransportProtocol::Tcp)]
}

fn ice_state() -> impl Strategy<Value = IceState> {
    prop_oneof![
        Just(IceState::New),
        Just(IceState::Connected),
        Just(IceState::Completed),
        Just(IceState::Disconnected),
        Just(IceState::Closed),
    ]
}

fn dtls_state() -> impl Strategy<Value = DtlsState> {
    prop_oneof![
        Just(DtlsState::New),
        Just(DtlsState::Connecting),
        Just(DtlsState::Connected),
        Just(DtlsState::Failed),
        Just(DtlsState::Closed),
    ]
}

fn dtls_role() -> impl Strategy<Value = DtlsRole> {
    prop_oneof![
        Just(DtlsRole::Auto),
        Just(DtlsRole::Client),
        Just(DtlsRole::Server),
    ]
}

fn crypto_suite() -> impl Strategy<Value = SrtpCryptoSuite> {
    prop::sample::select(SrtpCryptoSuite::ALL.to_vec())
}

fn listen_info() -> impl Strategy<Value = ListenInfo> {
    (protocol(), text(), opt(text()), any::<u16>()).prop_map(
        |(protocol, ip, announced_address, port)| ListenInfo {
            protocol,
            ip,
            announced_address,
            port,
        },
    )
}

fn tuple() -> impl Strategy<Value = TransportTuple> {
    (text(), any::<u16>(), text(), any::<u16>(), protocol()).prop_map(
        |(local_address, local_port, remote_ip, remote_port, protocol)| TransportTuple {
            local_address,
            local_port,
            remote_ip,
            remote_port,
            protocol,
        },
    )
}

fn codec() -> impl Strategy<Value = RtpCodecParameters> {
    (
        text(),
        any::<u8>(),
        any::<u32>(),
        opt(any::<u8>()),
        vec((text(), text()), 3),
        vec((text(), text()), 3),
    )
        .prop_map(
            |(mime_type, payload_type, clock_rate, channels, parameters, fb)| RtpCodecParameters {
                mime_type,
                payload_type,
                clock_rate,
                channels,
                parameters,
                rtcp_feedback: fb
                    .into_iter()
                    .map(|(kind, parameter)| RtcpFeedback { kind, parameter })
                    .collect(),
            },
        )
}

fn encoding() -> impl Strategy<Value = RtpEncodingParameters> {
    (
        opt(any::<u32>()),
        opt(text()),
        opt(any::<u8>()),
        opt(any::<u32>()),
        opt(any::<u32>()),
        opt(text()),
        any::<bool>(),
    )
        .prop_map(
            |(ssrc, rid, codec_payload_type, rtx_ssrc, max_bitrate, scalability_mode, dtx)| {
                RtpEncodingParameters {
                    ssrc,
                    rid,
                    codec_payload_type,
                    rtx_ssrc,
                    max_bitrate,
                    scalability_mode,
                    dtx,
                }
            },
        )
}

fn rtp_parameters() -> impl Strategy<Value = RtpParameters> {
    (
        opt(text()),
        vec(codec(), 3),
        vec((text(), any::<u8>(), any::<bool>()), 3),
        vec(encoding(), 3),
        text(),
        any::<bool>(),
    )
        .prop_map(
            |(mid, codecs, exts, encodings, cname, reduced_size)| RtpParameters {
                mid,
                codecs,
                header_extensions: exts
                    .into_iter()
                    .map(|(uri, id, encrypt)| RtpHeaderExtensionParameters { uri, id, encrypt })
                    .collect(),
                encodings,
                rtcp: RtcpParameters {
                    cname,
                    reduced_size,
                },
            },
        )
}

fn rtp_mapping() -> impl Strategy<Value = RtpMapping> {
    (
        vec((any::<u8>(), any::<u8>()), 3),
        vec(
            (opt(any::<u32>()), opt(text()), opt(text()), any::<u32>()),
            3,
        ),
    )
        .prop_map(|(codecs, encodings)| RtpMapping {
            codecs: codecs
                .into_iter()
                .map(|(payload_type, mapped_payload_type)| CodecMapping {
                    payload_type,
                    mapped_payload_type,
                })
                .collect(),
            encodings: encodings
                .into_iter()
                .map(
                    |(ssrc, rid, scalability_mode, mapped_ssrc)| EncodingMapping {
                        ssrc,
                        rid,
                        scalability_mode,
                        mapped_ssrc,
                    },
                )
                .collect(),
        })
}

fn srtp_parameters() -> impl Strategy<Value = SrtpParameters> {
    (crypto_suite(), text()).prop_map(|(crypto_suite, key_base64)| SrtpParameters {
        crypto_suite,
        key_base64,
    })
}

fn dtls_parameters() -> impl Strategy<Value = DtlsParameters> {
    (dtls_role(), vec((text(), text()), 3)).prop_map(|(role, fps)| DtlsParameters {
        role,
        fingerprints: fps
            .into_iter()
            .map(|(algorithm, value)| DtlsFingerprint { algorithm, value })
            .collect(),
    })
}

fn ice_parameters() -> impl Strategy<Value = IceParameters> {
    (text(), text(), any::<bool>()).prop_map(|(username_fragment, password, ice_lite)| {
        IceParameters {
            username_fragment,
            password,
            ice_lite,
        }
    })
}

fn ice_candidate() -> impl Strategy<Value = IceCandidate> {
    (
        text(),
        any::<u32>(),
        text(),
        protocol(),
        any::<u16>(),
        text(),
        opt(text()),
    )
        .prop_map(
            |(foundation, priority, address, protocol, port, kind, tcp_type)| IceCandidate {
                foundation,
                priority,
                address,
                protocol,
                port,
                kind,
                tcp_type,
            },
        )
}

fn consumer_score() -> impl Strategy<Value = ConsumerScore> {
    (any::<u8>(), any::<u8>()).prop_map(|(score, producer_score)| ConsumerScore {
        score,
        producer_score,
    })
}

fn rtp_stream_stats() -> impl Strategy<Value = RtpStreamStats> {
    (
        (any::<u32>(), opt(any::<u32>()), opt(text()), text()),
        proptest::array::uniform10(any::<u64>()),
        (
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |(
                (ssrc, rtx_ssrc, rid, mime_type),
                c,
                (fraction_lost, jitter, bitrate, score, rtt),
            )| {
                RtpStreamStats {
                    ssrc,
                    rtx_ssrc,
                    rid,
                    mime_type,
                    packet_count: c[0],
                    byte_count: c[1],
                    packets_lost: c[2],
                    fraction_lost,
                    jitter,
                    bitrate,
                    score,
                    nack_count: c[3],
                    nack_packet_count: c[4],
                    pli_count: c[5],
                    fir_count: c[6],
                    retransmitted_packet_count: c[7],
                    round_trip_time: rtt,
                    bad_sequence_dropped: c[8],
                    resync_count: c[9],
                }
            },
        )
}

fn transport_stats() -> impl Strategy<Value = TransportStats> {
    (
        text(),
        proptest::array::uniform12(any::<u64>()),
        any::<u32>(),
        any::<u32>(),
        opt(ice_state()),
        opt(dtls_state()),
        (opt(tuple()), any::<u32>()),
        (
            proptest::array::uniform5(any::<u32>()),
            opt(0.0f64..=1.0),
            opt(0.0f64..=1.0),
        ),
    )
        .prop_map(
            |(
                id,
                c,
                recv_bitrate,
                send_bitrate,
                ice_state,
                dtls_state,
                (tuple, available_outgoing_bitrate),
                (b, rtp_packet_loss_received, rtp_packet_loss_sent),
            )| TransportStats {
                transport_id: TransportId::new(id),
                timestamp: c[0],
                bytes_received: c[1],
                bytes_sent: c[2],
                rtp_packets_received: c[3],
                rtp_packets_sent: c[4],
                rtcp_packets_received: c[5],
                rtcp_packets_sent: c[6],
                rtx_packets_sent: c[7],
                packets_dropped: c[8],
                srtp_auth_failures: c[9],
                srtp_replays: c[10],
                recv_bitrate,
                send_bitrate,
                ice_state,
                dtls_state,
                tuple,
                available_outgoing_bitrate,
                available_incoming_bitrate: b[0],
                max_incoming_bitrate: b[1],
                max_outgoing_bitrate: b[2],
                min_outgoing_bitrate: b[3],
                rtp_packet_loss_received,
                rtp_packet_loss_sent,
                probation_bytes_sent: c[11],
                probation_send_bitrate: b[4],
            },
        )
}

fn ids<T: From<String> + std::fmt::Debug>() -> impl Strategy<Value = Vec<T>> {
    vec(text().prop_map(T::from), 3)
}

fn webrtc_transport_options() -> impl Strategy<Value = WebRtcTransportOptions> {
    let listen = prop_oneof![
        text().prop_map(|id| WebRtcTransportListen::Server(WebRtcServerId::new(id))),
        vec(listen_info(), 3).prop_map(WebRtcTransportListen::Individual),
    ];
    (
        text(),
        listen,
        proptest::array::uniform4(any::<bool>()),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(
            |(id, listen, b, ice_consent_timeout, bitrate)| WebRtcTransportOptions {
                transport_id: TransportId::new(id),
                listen,
                enable_udp: b[0],
                enable_tcp: b[1],
                prefer_udp: b[2],
                prefer_tcp: b[3],
                ice_consent_timeout,
                initial_available_outgoing_bitrate: bitrate,
            },
        )
}

fn plain_transport_options() -> impl Strategy<Value = PlainTransportOptions> {
    (
        text(),
        listen_info(),
        opt(listen_info()),
        any::<bool>(),
        any::<bool>(),
        opt(crypto_suite()),
    )
        .prop_map(
            |(id, listen_info, rtcp_listen_info, rtcp_mux, comedia, srtp_crypto_suite)| {
                PlainTransportOptions {
                    transport_id: TransportId::new(id),
                    listen_info,
                    rtcp_listen_info,
                    rtcp_mux,
                    comedia,
                    srtp_crypto_suite,
                }
            },
        )
}

fn connect_params() -> impl Strategy<Value = ConnectParams> {
    prop_oneof![
        dtls_parameters().prop_map(|dtls_parameters| ConnectParams::WebRtc { dtls_parameters }),
        (
            opt(text()),
            opt(any::<u16>()),
            opt(any::<u16>()),
            opt(srtp_parameters())
        )
            .prop_map(
                |(ip, port, rtcp_port, srtp_parameters)| ConnectParams::Plain {
                    ip,
                    port,
                    rtcp_port,
                    srtp_parameters,
                }
            ),
    ]
}

fn produce_options() -> impl Strategy<Value = ProduceOptions> {
    (
        text(),
        media_kind(),
        rtp_parameters(),
        rtp_mapping(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |(id, kind, rtp_parameters, rtp_mapping, key_frame_request_delay, paused)| {
                ProduceOptions {
                    producer_id: ProducerId::new(id),
                    kind,
                    rtp_parameters,
                    rtp_mapping,
                    key_frame_request_delay,
                    paused,
                }
            },
        )
}

fn consumer_type() -> impl Strategy<Value = ConsumerType> {
    prop::sample::select(vec![
        ConsumerType::Simple,
        ConsumerType::Simulcast,
        ConsumerType::Svc,
        ConsumerType::Pipe,
    ])
}

fn consumer_layers() -> impl Strategy<Value = ConsumerLayers> {
    (any::<u8>(), opt(any::<u8>())).prop_map(|(spatial_layer, temporal_layer)| ConsumerLayers {
        spatial_layer,
        temporal_layer,
    })
}

fn consume_options() -> impl Strategy<Value = ConsumeOptions> {
    (
        (text(), text(), media_kind(), rtp_parameters()),
        vec(encoding(), 3),
        (any::<bool>(), any::<bool>()),
        consumer_type(),
        opt(consumer_layers()),
    )
        .prop_map(
            |(
                (cid, pid, kind, rtp_parameters),
                consumable_rtp_encodings,
                (paused, ignore_dtx),
                consumer_type,
                preferred_layers,
            )| {
                ConsumeOptions {
                    consumer_id: ConsumerId::new(cid),
                    producer_id: ProducerId::new(pid),
                    kind,
                    rtp_parameters,
                    consumable_rtp_encodings,
                    paused,
                    ignore_dtx,
                    consumer_type,
                    preferred_layers,
                }
            },
        )
}

fn request_body() -> impl Strategy<Value = RequestBody> {
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
    ]
}

fn response_body() -> impl Strategy<Value = ResponseBody> {
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
        proptest::array::uniform5(any::<u64>())
            .prop_map(|a| {
                ResponseBody::MediaCounters(MediaCounters {
                    unknown_socket: a[0],
                    unknown_tuple: a[1],
                    rtp_bad_sequence: a[2],
                    rtp_resyncs: a[3],
                    dtls_failures: a[4],
                })
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
            ids(),
            ids(),
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
                    producer_ids,
                    consumer_ids,
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
    ]
}

fn media_event() -> impl Strategy<Value = MediaEvent> {
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
    ]
}

fn message() -> impl Strategy<Value = Message> {
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

fn round_trip(msg: &Message) -> Message {
    let frame = Encoder::new().frame(msg).unwrap();
    let Split::Frame { payload, consumed } = split_frame(&frame) else {
        panic!("a whole frame must split");
    };
    assert_eq!(consumed, frame.len());
    decode_message(payload).unwrap()
}

/// Index of a response body variant; the match is exhaustive, so a new variant must be added
/// here (and to `response_body()`), and `RESPONSE_VARIANTS` bumped.
fn response_variant(b: &ResponseBody) -> usize {
    match b {
        ResponseBody::None => 0,
        ResponseBody::WorkerDump(_) => 1,
        ResponseBody::ResourceUsage(_) => 2,
        ResponseBody::RouterDump(_) => 3,
        ResponseBody::WebRtcServerDump(_) => 4,
        ResponseBody::WebRtcTransportDump(_) => 5,
        ResponseBody::PlainTransportDump(_) => 6,
        ResponseBody::TransportStats(_) => 7,
        ResponseBody::IceParameters(_) => 8,
        ResponseBody::ProducerDump(_) => 9,
        ResponseBody::RtpStreamStats(_) => 10,
        ResponseBody::Consumed { .. } => 11,
        ResponseBody::ConsumerDump(_) => 12,
        ResponseBody::MediaCounters(_) => 13,
        ResponseBody::PreferredLayers(_) => 14,
    }
}
const RESPONSE_VARIANTS: usize = 15;

/// As `response_variant`, for media events.
fn media_event_variant(e: &MediaEvent) -> usize {
    match e {
        MediaEvent::TransportIceStateChange(_) => 0,
        MediaEvent::TransportIceSelectedTupleChange(_) => 1,
        MediaEvent::TransportDtlsStateChange { .. } => 2,
        MediaEvent::PlainTransportTuple { .. } => 3,
        MediaEvent::ProducerScore(_) => 4,
        MediaEvent::ConsumerScore(_) => 5,
        MediaEvent::ConsumerProducerPause => 6,
        MediaEvent::ConsumerProducerResume => 7,
        MediaEvent::ConsumerProducerClose => 8,
        MediaEvent::ConsumerTransportClose => 9,
        MediaEvent::ProducerTransportClose => 10,
        MediaEvent::ConsumerLayersChange(_) => 11,
        MediaEvent::ActiveSpeakerObserverDominantSpeaker { .. } => 12,
        MediaEvent::AudioLevelObserverVolumes(_) => 13,
        MediaEvent::AudioLevelObserverSilence => 14,
        MediaEvent::TransportBweTrace(_) => 15,
        MediaEvent::ConsumerBwePause => 16,
        MediaEvent::ConsumerBweResume => 17,
        MediaEvent::ProducerLayersNeeded(_) => 18,
    }
}
const MEDIA_EVENT_VARIANTS: usize = 19;

fn sample<S: Strategy>(s: S, n: usize) -> Vec<S::Value> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..n)
        .map(|_| s.new_tree(&mut runner).unwrap().current())
        .collect()
}

#[test]
fn strategies_cover_every_variant() {
    use std::collections::HashSet;
    let requests = sample(request_body(), 2000);
    let methods: HashSet<Method> = requests.iter().map(RequestBody::method).collect();
    assert_eq!(
        methods.len(),
        Method::ALL.len(),
        "methods generated: {methods:?}"
    );
    let connects: HashSet<bool> = requests
        .iter()
        .filter_map(|r| match r {
            RequestBody::TransportConnect(c) => Some(matches!(c, ConnectParams::WebRtc { .. })),
            _ => None,
        })
        .collect();
    assert_eq!(connects.len(), 2, "both connect kinds");
    let listens: HashSet<bool> = requests
        .iter()
        .filter_map(|r| match r {
            RequestBody::RouterCreateWebRtcTransport(o) => {
                Some(matches!(o.listen, WebRtcTransportListen::Server(_)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(listens.len(), 2, "both listen modes");
    let responses: HashSet<usize> = sample(response_body(), 1000)
        .iter()
        .map(response_variant)
        .collect();
    assert_eq!(responses.len(), RESPONSE_VARIANTS);
    let events: HashSet<usize> = sample(media_event(), 1000)
        .iter()
        .map(media_event_variant)
        .collect();
    assert_eq!(events.len(), MEDIA_EVENT_VARIANTS);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_request_round_trips(id in any::<u32>(), h in text(), body in request_body()) {
        let msg = Message::Request(Request { id: RequestId(id), handler_id: HandlerId::new(h), body });
        prop_assert_eq!(round_trip(&msg), msg);
    }

    #[test]
    fn every_response_round_trips(id in any::<u32>(), body in response_body()) {
        let msg = Message::Response(Response { id: RequestId(id), result: Ok(body) });
        prop_assert_eq!(round_trip(&msg), msg);
    }

    #[test]
    fn every_media_event_round_trips(h in text(), e in media_event()) {
        let msg = Message::Notification(Notification { handler_id: HandlerId::new(h), event: Event::Media(e) });
        prop_assert_eq!(round_trip(&msg), msg);
    }

    #[test]
    fn round_trip_through_a_frame(msg in message()) {
        let frame = Encoder::new().frame(&msg).unwrap();
        let Split::Frame { payload, consumed } = split_frame(&frame) else {
            panic!("a whole frame must split");
        };
        prop_assert_eq!(consumed, frame.len());
        prop_assert_eq!(decode_message(payload).unwrap(), msg);
    }

    #[test]
    fn many_frames_split_back_in_order(msgs in proptest::collection::vec(message(), 1..20), chunk in 1usize..64) {
        let mut enc = Encoder::new();
        let mut stream = Vec::new();
        for m in &msgs {
            enc.encode_frame(m, &mut stream).unwrap();
        }
        // Feed the stream in arbitrary small chunks, as a pipe may deliver it.
        let mut fb = FrameBuffer::new();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            fb.extend_from_slice(piece);
            while let Some(ev) = fb.next_event() {
                match ev {
                    FrameEvent::Frame(p) => out.push(decode_message(&p).unwrap()),
                    FrameEvent::Oversized { .. } => panic!("no oversized frame was written"),
                }
            }
        }
        prop_assert_eq!(fb.pending(), 0);
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn every_truncation_is_incomplete(msg in message(), cut in any::<prop::sample::Index>()) {
        let frame = Encoder::new().frame(&msg).unwrap();
        let at = cut.index(frame.len()); // strictly shorter than the frame
        let want = if at < 4 { 4 - at } else { frame.len() - at };
        let is_incomplete = matches!(split_frame(&frame[..at]), Split::Incomplete { needed } if needed == want);
        prop_assert!(is_incomplete);
    }

    #[test]
    fn truncated_payload_never_panics(msg in message(), cut in any::<prop::sample::Index>()) {
        let frame = Encoder::new().frame(&msg).unwrap();
        let payload = &frame[4..];
        let at = cut.index(payload.len());
        // A shorter payload decodes to an error or (rarely) to some message; never a panic.
        let _ = decode_message(&payload[..at]);
    }

    #[test]
    fn oversized_header_is_refused(declared in (MAX_FRAME_LEN as u32 + 1)..=u32::MAX, tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut buf = declared.to_le_bytes().to_vec();
        buf.extend_from_slice(&tail);
        prop_assert_eq!(split_frame(&buf), Split::Oversized { declared });
        let mut fb = FrameBuffer::new();
        fb.extend_from_slice(&buf);
        prop_assert_eq!(fb.next_event(), Some(FrameEvent::Oversized { declared, discarded: buf.len() }));
        prop_assert_eq!(fb.pending(), 0);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_message(&bytes);
        let _ = peek_request_id(&bytes);
        let _ = split_frame(&bytes);
    }

    #[test]
    fn corrupted_message_never_panics(msg in message(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut frame = Encoder::new().frame(&msg).unwrap();
        let payload = &mut frame[4..];
        for (i, b) in flips {
            let at = i.index(payload.len());
            payload[at] ^= b | 1;
        }
        // Whatever still decodes is a valid typed message: it re-encodes to itself.
        if let Ok(m) = decode_message(payload) {
            prop_assert_eq!(round_trip(&m), m);
        }
        let _ = peek_request_id(payload);
    }
}

#[test]
fn request_id_is_recovered_from_a_request_with_an_unknown_method() {
    // A request whose body tag does not match its method: valid flatbuffer, invalid message.
    let msg = Message::Request(Request {
        id: RequestId(4242),
        handler_id: HandlerId::worker(),
        body: RequestBody::WorkerDump,
    });
    let mut frame = Encoder::new().frame(&msg).unwrap();
    // Find the method byte (WORKER_DUMP = 1) and set it to an unknown value: the id must still be read.
    let payload = &mut frame[4..];
    let positions: Vec<usize> = (0..payload.len()).filter(|&i| payload[i] == 1).collect();
    let mut found = false;
    for p in positions {
        let mut copy = payload.to_vec();
        copy[p] = 200;
        if let Err(e) = decode_message(&copy) {
            if e.request_id == Some(RequestId(4242)) && e.reason.contains("unknown method") {
                found = true;
                break;
            }
        }
    }
    assert!(
        found,
        "changing the method byte must give an error that carries the request id"
    );
}

#[test]
fn request_id_is_peeked_from_a_request_whose_body_fails_verification() {
    let msg = Message::Request(Request {
        id: RequestId(77),
        handler_id: HandlerId::worker(),
        body: RequestBody::WorkerCreateRouter {
            router_id: RouterId::new("r1"),
        },
    });
    let frame = Encoder::new().frame(&msg).unwrap();
    let payload = &frame[4..];
    assert_eq!(peek_request_id(payload), Some(77));
    // Break the router id string's length so verification fails; the id stays readable.
    let needle = b"r1";
    let at = payload.windows(2).position(|w| w == needle).unwrap();
    let mut broken = payload.to_vec();
    broken[at - 4..at].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = decode_message(&broken).unwrap_err();
    assert_eq!(e.request_id, Some(RequestId(77)));
}

#[test]
fn non_request_garbage_has_no_id() {
    assert_eq!(peek_request_id(&[]), None);
    assert_eq!(decode_message(b"garbage!").unwrap_err().request_id, None);
}

/// Every single-byte replacement of `from` by `to` in the payload of `msg`; the decode results.
fn with_byte_replaced(msg: &Message, from: u8, to: u8) -> Vec<Result<Message, DecodeError>> {
    let frame = Encoder::new().frame(msg).unwrap();
    let payload = &frame[4..];
    (0..payload.len())
        .filter(|&i| payload[i] == from)
        .map(|i| {
            let mut copy = payload.to_vec();
            copy[i] = to;
            decode_message(&copy)
        })
        .collect()
}

fn minimal_rtp_parameters() -> RtpParameters {
    RtpParameters {
        mid: None,
        codecs: vec![],
        header_extensions: vec![],
        encodings: vec![],
        rtcp: RtcpParameters::default(),
    }
}

#[test]
fn unknown_enum_value_in_a_request_is_an_error_with_the_request_id() {
    let msg = Message::Request(Request {
        id: RequestId(31337),
        handler_id: HandlerId::new("t1"),
        body: RequestBody::TransportProduce(ProduceOptions {
            producer_id: ProducerId::new("p1"),
            kind: MediaKind::Video, // = 1 on the wire
            rtp_parameters: minimal_rtp_parameters(),
            rtp_mapping: RtpMapping::default(),
            key_frame_request_delay: 0,
            paused: false,
        }),
    });
    let found = with_byte_replaced(&msg, 1, 77).into_iter().any(|r| {
        matches!(r, Err(e) if e.request_id == Some(RequestId(31337))
            && e.reason.contains("unknown media kind 77"))
    });
    assert!(
        found,
        "an unknown media kind must be refused with the request id"
    );
}

#[test]
fn missing_webrtc_listen_mode_is_an_error_with_the_request_id() {
    let msg = Message::Request(Request {
        id: RequestId(9),
        handler_id: HandlerId::new("r1"),
        body: RequestBody::RouterCreateWebRtcTransport(WebRtcTransportOptions {
            transport_id: TransportId::new("t1"),
            listen: WebRtcTransportListen::Individual(vec![]), // union tag 2
            enable_udp: false,
            enable_tcp: false,
            prefer_udp: false,
            prefer_tcp: false,
            ice_consent_timeout: 0,
            initial_available_outgoing_bitrate: 0,
        }),
    });
    for to in [0, 99] {
        let found = with_byte_replaced(&msg, 2, to).into_iter().any(|r| {
            matches!(r, Err(e) if e.request_id == Some(RequestId(9)) && e.reason.contains("listen"))
        });
        assert!(
            found,
            "listen type {to} must be refused with the request id"
        );
    }
}

#[test]
fn unknown_enum_value_in_an_event_is_an_error() {
    let msg = Message::Notification(Notification {
        handler_id: HandlerId::new("t1"),
        event: Event::Media(MediaEvent::TransportDtlsStateChange {
            state: DtlsState::Failed, // = 3 on the wire
            reason: None,
        }),
    });
    let found = with_byte_replaced(&msg, 3, 250)
        .into_iter()
        .any(|r| matches!(r, Err(e) if e.reason.contains("unknown DTLS state 250")));
    assert!(found, "an unknown DTLS state must be refused");
}
