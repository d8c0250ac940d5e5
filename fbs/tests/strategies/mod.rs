//! proptest strategies for every typed channel message (used by `frames.rs`): the parameter
//! types here and, for data channels, in [`data`]; the request/response/event bodies in
//! [`messages`].

use ferrosfu_fbs::*;
use proptest::prelude::*;

mod data;
mod messages;
pub(crate) use data::*;
pub(crate) use messages::*;

pub(crate) fn level() -> impl Strategy<Value = LogLevel> {
    prop_oneof![
        Just(LogLevel::Trace),
        Just(LogLevel::Debug),
        Just(LogLevel::Info),
        Just(LogLevel::Warn),
        Just(LogLevel::Error),
    ]
}

pub(crate) fn text() -> impl Strategy<Value = String> {
    ".{0,40}"
}

pub(crate) fn opt<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    proptest::option::of(s)
}

pub(crate) fn vec<S: Strategy>(s: S, max: usize) -> impl Strategy<Value = Vec<S::Value>> {
    proptest::collection::vec(s, 0..=max)
}

pub(crate) fn media_kind() -> impl Strategy<Value = MediaKind> {
    prop_oneof![Just(MediaKind::Audio), Just(MediaKind::Video)]
}

pub(crate) fn protocol() -> impl Strategy<Value = TransportProtocol> {
    prop_oneof![Just(TransportProtocol::Udp), Just(TransportProtocol::Tcp)]
}

pub(crate) fn ice_state() -> impl Strategy<Value = IceState> {
    prop_oneof![
        Just(IceState::New),
        Just(IceState::Connected),
        Just(IceState::Completed),
        Just(IceState::Disconnected),
        Just(IceState::Closed),
    ]
}

pub(crate) fn dtls_state() -> impl Strategy<Value = DtlsState> {
    prop_oneof![
        Just(DtlsState::New),
        Just(DtlsState::Connecting),
        Just(DtlsState::Connected),
        Just(DtlsState::Failed),
        Just(DtlsState::Closed),
    ]
}

pub(crate) fn dtls_role() -> impl Strategy<Value = DtlsRole> {
    prop_oneof![
        Just(DtlsRole::Auto),
        Just(DtlsRole::Client),
        Just(DtlsRole::Server),
    ]
}

pub(crate) fn crypto_suite() -> impl Strategy<Value = SrtpCryptoSuite> {
    prop::sample::select(SrtpCryptoSuite::ALL.to_vec())
}

pub(crate) fn listen_info() -> impl Strategy<Value = ListenInfo> {
    (protocol(), text(), opt(text()), any::<u16>()).prop_map(
        |(protocol, ip, announced_address, port)| ListenInfo {
            protocol,
            ip,
            announced_address,
            port,
        },
    )
}

pub(crate) fn tuple() -> impl Strategy<Value = TransportTuple> {
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

pub(crate) fn codec() -> impl Strategy<Value = RtpCodecParameters> {
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

pub(crate) fn encoding() -> impl Strategy<Value = RtpEncodingParameters> {
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

pub(crate) fn rtp_parameters() -> impl Strategy<Value = RtpParameters> {
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

pub(crate) fn rtp_mapping() -> impl Strategy<Value = RtpMapping> {
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

pub(crate) fn srtp_parameters() -> impl Strategy<Value = SrtpParameters> {
    (crypto_suite(), text()).prop_map(|(crypto_suite, key_base64)| SrtpParameters {
        crypto_suite,
        key_base64,
    })
}

pub(crate) fn dtls_parameters() -> impl Strategy<Value = DtlsParameters> {
    (dtls_role(), vec((text(), text()), 3)).prop_map(|(role, fps)| DtlsParameters {
        role,
        fingerprints: fps
            .into_iter()
            .map(|(algorithm, value)| DtlsFingerprint { algorithm, value })
            .collect(),
    })
}

pub(crate) fn ice_parameters() -> impl Strategy<Value = IceParameters> {
    (text(), text(), any::<bool>()).prop_map(|(username_fragment, password, ice_lite)| {
        IceParameters {
            username_fragment,
            password,
            ice_lite,
        }
    })
}

pub(crate) fn ice_candidate() -> impl Strategy<Value = IceCandidate> {
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

pub(crate) fn consumer_score() -> impl Strategy<Value = ConsumerScore> {
    (any::<u8>(), any::<u8>()).prop_map(|(score, producer_score)| ConsumerScore {
        score,
        producer_score,
    })
}

pub(crate) fn rtp_stream_stats() -> impl Strategy<Value = RtpStreamStats> {
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

pub(crate) fn transport_stats() -> impl Strategy<Value = TransportStats> {
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

pub(crate) fn ids<T: From<String> + std::fmt::Debug>() -> impl Strategy<Value = Vec<T>> {
    vec(text().prop_map(T::from), 3)
}

pub(crate) fn webrtc_transport_options() -> impl Strategy<Value = WebRtcTransportOptions> {
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
        opt(sctp_options()),
    )
        .prop_map(|(id, listen, b, ice_consent_timeout, bitrate, sctp)| {
            WebRtcTransportOptions {
                transport_id: TransportId::new(id),
                listen,
                enable_udp: b[0],
                enable_tcp: b[1],
                prefer_udp: b[2],
                prefer_tcp: b[3],
                ice_consent_timeout,
                initial_available_outgoing_bitrate: bitrate,
                sctp,
            }
        })
}

pub(crate) fn plain_transport_options() -> impl Strategy<Value = PlainTransportOptions> {
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

pub(crate) fn connect_params() -> impl Strategy<Value = ConnectParams> {
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

pub(crate) fn produce_options() -> impl Strategy<Value = ProduceOptions> {
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

pub(crate) fn consumer_type() -> impl Strategy<Value = ConsumerType> {
    prop::sample::select(vec![
        ConsumerType::Simple,
        ConsumerType::Simulcast,
        ConsumerType::Svc,
        ConsumerType::Pipe,
    ])
}

pub(crate) fn consumer_layers() -> impl Strategy<Value = ConsumerLayers> {
    (any::<u8>(), opt(any::<u8>())).prop_map(|(spatial_layer, temporal_layer)| ConsumerLayers {
        spatial_layer,
        temporal_layer,
    })
}

pub(crate) fn consume_options() -> impl Strategy<Value = ConsumeOptions> {
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
