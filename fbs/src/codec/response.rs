//! Responses: accepted bodies and typed failures.

use super::*;

pub(super) fn build_response(fbb: &mut Fbb, r: &Response) -> WIPOffset<UnionWIPOffset> {
    let (accepted, error, reason, body_type, body) = match &r.result {
        Err(f) => {
            let kind = match f.kind {
                ErrorKind::InvalidArgument => fb_resp::ErrorKind::INVALID_ARGUMENT,
                ErrorKind::Failed => fb_resp::ErrorKind::FAILED,
            };
            (
                false,
                kind,
                Some(fbb.create_string(&f.reason)),
                fb_resp::Body::NONE,
                None,
            )
        }
        Ok(body) => {
            let (t, b) = build_response_body(fbb, body);
            (true, fb_resp::ErrorKind::NONE, None, t, b)
        }
    };
    fb_resp::Response::create(
        fbb,
        &fb_resp::ResponseArgs {
            id: r.id.0,
            accepted,
            error,
            reason,
            body_type,
            body,
        },
    )
    .as_union_value()
}

pub(super) fn build_response_body(
    fbb: &mut Fbb,
    body: &ResponseBody,
) -> (fb_resp::Body, Option<WIPOffset<UnionWIPOffset>>) {
    use fb_resp::Body as B;
    if let Some(parts) = build_data_response_body(fbb, body) {
        return parts;
    }
    match body {
        ResponseBody::None => (B::NONE, None),
        ResponseBody::WorkerDump(d) => {
            let router_ids = Some(strings(fbb, d.router_ids.iter().map(RouterId::as_str)));
            let b = fb_worker::DumpResponse::create(
                fbb,
                &fb_worker::DumpResponseArgs {
                    pid: d.pid,
                    core: d.core,
                    router_ids,
                },
            );
            (B::Worker_DumpResponse, union(b))
        }
        ResponseBody::ResourceUsage(u) => {
            let c = &u.sockets;
            let sockets = Some(fb_worker::SocketCounters::create(
                fbb,
                &fb_worker::SocketCountersArgs {
                    udp_received: c.udp_received,
                    udp_sent: c.udp_sent,
                    udp_behind_dropped: c.udp_behind_dropped,
                    udp_send_queue_full: c.udp_send_queue_full,
                    udp_send_errors: c.udp_send_errors,
                    udp_recv_errors: c.udp_recv_errors,
                    no_socket: c.no_socket,
                    tcp_unsent: c.tcp_unsent,
                    tcp_accepted: c.tcp_accepted,
                    tcp_rejected: c.tcp_rejected,
                    tcp_malformed: c.tcp_malformed,
                    tcp_overflow: c.tcp_overflow,
                    tcp_frames_received: c.tcp_frames_received,
                },
            ));
            let b = fb_worker::ResourceUsageResponse::create(
                fbb,
                &fb_worker::ResourceUsageResponseArgs {
                    ru_utime: u.ru_utime,
                    ru_stime: u.ru_stime,
                    ru_maxrss: u.ru_maxrss,
                    ru_minflt: u.ru_minflt,
                    ru_majflt: u.ru_majflt,
                    ru_inblock: u.ru_inblock,
                    ru_oublock: u.ru_oublock,
                    ru_nvcsw: u.ru_nvcsw,
                    ru_nivcsw: u.ru_nivcsw,
                    sockets,
                },
            );
            (B::Worker_ResourceUsageResponse, union(b))
        }
        ResponseBody::MediaCounters(c) => (
            B::Worker_MediaCountersResponse,
            union(build_media_counters(fbb, c)),
        ),
        ResponseBody::RouterDump(d) => {
            let id = Some(fbb.create_string(d.id.as_str()));
            let transport_ids = Some(strings(fbb, d.transport_ids.iter().map(String::as_str)));
            let b = fb_router::DumpResponse::create(
                fbb,
                &fb_router::DumpResponseArgs { id, transport_ids },
            );
            (B::Router_DumpResponse, union(b))
        }
        ResponseBody::WebRtcServerDump(d) => {
            let id = Some(fbb.create_string(d.id.as_str()));
            let listen_infos = Some(tables(fbb, &d.listen_infos, build_listen_info));
            let transport_ids = Some(strings(
                fbb,
                d.transport_ids.iter().map(TransportId::as_str),
            ));
            let b = fb_wrs::DumpResponse::create(
                fbb,
                &fb_wrs::DumpResponseArgs {
                    id,
                    listen_infos,
                    transport_ids,
                },
            );
            (B::WebRtcServer_DumpResponse, union(b))
        }
        ResponseBody::WebRtcTransportDump(d) => {
            let id = Some(fbb.create_string(d.id.as_str()));
            let ice_parameters = Some(build_ice_parameters(fbb, &d.ice_parameters));
            let ice_candidates = Some(tables(fbb, &d.ice_candidates, build_ice_candidate));
            let ice_selected_tuple = d.ice_selected_tuple.as_ref().map(|t| build_tuple(fbb, t));
            let dtls_parameters = Some(build_dtls_parameters(fbb, &d.dtls_parameters));
            let producer_ids = Some(strings(fbb, d.producer_ids.iter().map(ProducerId::as_str)));
            let consumer_ids = Some(strings(fbb, d.consumer_ids.iter().map(ConsumerId::as_str)));
            let sctp = build_webrtc_sctp_parts(fbb, d);
            let b = fb_wrt::DumpResponse::create(
                fbb,
                &fb_wrt::DumpResponseArgs {
                    id,
                    ice_parameters,
                    ice_candidates,
                    ice_state: ice_state_to(d.ice_state),
                    ice_selected_tuple,
                    dtls_parameters,
                    dtls_state: dtls_state_to(d.dtls_state),
                    producer_ids,
                    consumer_ids,
                    sctp_parameters: sctp.sctp_parameters,
                    sctp_state: sctp.sctp_state,
                    data_producer_ids: sctp.data_producer_ids,
                    data_consumer_ids: sctp.data_consumer_ids,
                },
            );
            (B::WebRtcTransport_DumpResponse, union(b))
        }
        ResponseBody::PlainTransportDump(d) => {
            let id = Some(fbb.create_string(d.id.as_str()));
            let tuple = Some(build_tuple(fbb, &d.tuple));
            let rtcp_tuple = d.rtcp_tuple.as_ref().map(|t| build_tuple(fbb, t));
            let srtp_parameters = d
                .srtp_parameters
                .as_ref()
                .map(|s| build_srtp_parameters(fbb, s));
            let producer_ids = Some(strings(fbb, d.producer_ids.iter().map(ProducerId::as_str)));
            let consumer_ids = Some(strings(fbb, d.consumer_ids.iter().map(ConsumerId::as_str)));
            let b = fb_pt::DumpResponse::create(
                fbb,
                &fb_pt::DumpResponseArgs {
                    id,
                    rtcp_mux: d.rtcp_mux,
                    comedia: d.comedia,
                    tuple,
                    rtcp_tuple,
                    srtp_parameters,
                    producer_ids,
                    consumer_ids,
                },
            );
            (B::PlainTransport_DumpResponse, union(b))
        }
        ResponseBody::TransportStats(s) => {
            let transport_id = Some(fbb.create_string(s.transport_id.as_str()));
            let tuple = s.tuple.as_ref().map(|t| build_tuple(fbb, t));
            let b = fb_tr::GetStatsResponse::create(
                fbb,
                &fb_tr::GetStatsResponseArgs {
                    transport_id,
                    timestamp: s.timestamp,
                    bytes_received: s.bytes_received,
                    bytes_sent: s.bytes_sent,
                    rtp_packets_received: s.rtp_packets_received,
                    rtp_packets_sent: s.rtp_packets_sent,
                    rtcp_packets_received: s.rtcp_packets_received,
                    rtcp_packets_sent: s.rtcp_packets_sent,
                    rtx_packets_sent: s.rtx_packets_sent,
                    packets_dropped: s.packets_dropped,
                    srtp_auth_failures: s.srtp_auth_failures,
                    srtp_replays: s.srtp_replays,
                    recv_bitrate: s.recv_bitrate,
                    send_bitrate: s.send_bitrate,
                    available_outgoing_bitrate: s.available_outgoing_bitrate,
                    available_incoming_bitrate: s.available_incoming_bitrate,
                    max_incoming_bitrate: s.max_incoming_bitrate,
                    max_outgoing_bitrate: s.max_outgoing_bitrate,
                    min_outgoing_bitrate: s.min_outgoing_bitrate,
                    rtp_packet_loss_received: s.rtp_packet_loss_received,
                    rtp_packet_loss_sent: s.rtp_packet_loss_sent,
                    probation_bytes_sent: s.probation_bytes_sent,
                    probation_send_bitrate: s.probation_send_bitrate,
                    ice_state: s.ice_state.map(ice_state_to),
                    dtls_state: s.dtls_state.map(dtls_state_to),
                    tuple,
                },
            );
            (B::Transport_GetStatsResponse, union(b))
        }
        ResponseBody::IceParameters(p) => {
            let ice_parameters = Some(build_ice_parameters(fbb, p));
            let b = fb_wrt::RestartIceResponse::create(
                fbb,
                &fb_wrt::RestartIceResponseArgs { ice_parameters },
            );
            (B::WebRtcTransport_RestartIceResponse, union(b))
        }
        ResponseBody::ProducerDump(d) => {
            let id = Some(fbb.create_string(d.id.as_str()));
            let rtp_parameters = Some(build_rtp_parameters(fbb, &d.rtp_parameters));
            let rtp_mapping = Some(build_rtp_mapping(fbb, &d.rtp_mapping));
            let b = fb_prod::DumpResponse::create(
                fbb,
                &fb_prod::DumpResponseArgs {
                    id,
                    kind: media_kind_to(d.kind),
                    rtp_parameters,
                    rtp_mapping,
                    paused: d.paused,
                },
            );
            (B::Producer_DumpResponse, union(b))
        }
        ResponseBody::RtpStreamStats(v) => {
            let stats = Some(tables(fbb, v, build_rtp_stream_stats));
            let b = fb_rs::GetStatsResponse::create(fbb, &fb_rs::GetStatsResponseArgs { stats });
            (B::RtpStream_GetStatsResponse, union(b))
        }
        ResponseBody::Consumed {
            paused,
            producer_paused,
            score,
        } => {
            let score = Some(build_consumer_score(fbb, score));
            let b = fb_tr::ConsumeResponse::create(
                fbb,
                &fb_tr::ConsumeResponseArgs {
                    paused: *paused,
                    producer_paused: *producer_paused,
                    score,
                },
            );
            (B::Transport_ConsumeResponse, union(b))
        }
        ResponseBody::ConsumerDump(d) => {
            let id = Some(fbb.create_string(d.id.as_str()));
            let producer_id = Some(fbb.create_string(d.producer_id.as_str()));
            let rtp_parameters = Some(build_rtp_parameters(fbb, &d.rtp_parameters));
            let preferred_layers = build_consumer_layers(fbb, d.preferred_layers.as_ref());
            let target_layers = build_consumer_layers(fbb, d.target_layers.as_ref());
            let current_layers = build_consumer_layers(fbb, d.current_layers.as_ref());
            let b = fb_cons::DumpResponse::create(
                fbb,
                &fb_cons::DumpResponseArgs {
                    id,
                    producer_id,
                    kind: media_kind_to(d.kind),
                    rtp_parameters,
                    paused: d.paused,
                    producer_paused: d.producer_paused,
                    type_: consumer_type_to(d.consumer_type),
                    priority: d.priority,
                    preferred_layers,
                    target_layers,
                    current_layers,
                },
            );
            (B::Consumer_DumpResponse, union(b))
        }
        ResponseBody::PreferredLayers(l) => {
            let preferred_layers = build_consumer_layers(fbb, l.as_ref());
            let b = fb_cons::SetPreferredLayersResponse::create(
                fbb,
                &fb_cons::SetPreferredLayersResponseArgs { preferred_layers },
            );
            (B::Consumer_SetPreferredLayersResponse, union(b))
        }
        // Built by `build_data_response_body` above.
        ResponseBody::DirectTransportDump(_)
        | ResponseBody::DataProducerDump(_)
        | ResponseBody::DataConsumerDump(_)
        | ResponseBody::DataStats(_)
        | ResponseBody::BufferedAmount(_)
        | ResponseBody::Subchannels(_) => {
            debug_assert!(false, "a data answer reached build_response_body");
            (B::NONE, None)
        }
    }
}

pub(super) fn decode_response(r: fb_resp::Response<'_>) -> Result<Response, DecodeError> {
    let id = RequestId(r.id());
    if !r.accepted() {
        let kind = match r.error() {
            fb_resp::ErrorKind::INVALID_ARGUMENT => ErrorKind::InvalidArgument,
            _ => ErrorKind::Failed,
        };
        let reason = r.reason().unwrap_or_default().own();
        return Ok(Response {
            id,
            result: Err(RequestFailure { kind, reason }),
        });
    }
    let body = response_body_from(r).map_err(|reason| err(None, reason))?;
    Ok(Response {
        id,
        result: Ok(body),
    })
}

pub(super) fn response_body_from(r: fb_resp::Response<'_>) -> Dr<ResponseBody> {
    use fb_resp::Body as B;
    let missing = |what: &str| format!("{what} missing");
    Ok(match r.body_type() {
        B::NONE => ResponseBody::None,
        B::Worker_DumpResponse => {
            let d = r
                .body_as_worker_dump_response()
                .ok_or_else(|| missing("worker dump"))?;
            ResponseBody::WorkerDump(WorkerDump {
                pid: d.pid(),
                core: d.core(),
                router_ids: d.router_ids().bounded_strs().map(RouterId::new).collect(),
            })
        }
        B::Worker_ResourceUsageResponse => {
            let u = r
                .body_as_worker_resource_usage_response()
                .ok_or_else(|| missing("resource usage"))?;
            ResponseBody::ResourceUsage(ResourceUsage {
                ru_utime: u.ru_utime(),
                ru_stime: u.ru_stime(),
                ru_maxrss: u.ru_maxrss(),
                ru_minflt: u.ru_minflt(),
                ru_majflt: u.ru_majflt(),
                ru_inblock: u.ru_inblock(),
                ru_oublock: u.ru_oublock(),
                ru_nvcsw: u.ru_nvcsw(),
                ru_nivcsw: u.ru_nivcsw(),
                sockets: u
                    .sockets()
                    .map_or_else(SocketCounters::default, |c| SocketCounters {
                        udp_received: c.udp_received(),
                        udp_sent: c.udp_sent(),
                        udp_behind_dropped: c.udp_behind_dropped(),
                        udp_send_queue_full: c.udp_send_queue_full(),
                        udp_send_errors: c.udp_send_errors(),
                        udp_recv_errors: c.udp_recv_errors(),
                        no_socket: c.no_socket(),
                        tcp_unsent: c.tcp_unsent(),
                        tcp_accepted: c.tcp_accepted(),
                        tcp_rejected: c.tcp_rejected(),
                        tcp_malformed: c.tcp_malformed(),
                        tcp_overflow: c.tcp_overflow(),
                        tcp_frames_received: c.tcp_frames_received(),
                    }),
            })
        }
        B::Worker_MediaCountersResponse => {
            ResponseBody::MediaCounters(Box::new(media_counters_from(
                r.body_as_worker_media_counters_response()
                    .ok_or_else(|| missing("media counters"))?,
            )))
        }
        B::Router_DumpResponse => {
            let d = r
                .body_as_router_dump_response()
                .ok_or_else(|| missing("router dump"))?;
            ResponseBody::RouterDump(RouterDump {
                id: RouterId::new(d.id()),
                transport_ids: d.transport_ids().bounded_strs().map(own).collect(),
            })
        }
        B::WebRtcServer_DumpResponse => {
            let d = r
                .body_as_web_rtc_server_dump_response()
                .ok_or_else(|| missing("webrtc server dump"))?;
            ResponseBody::WebRtcServerDump(WebRtcServerDump {
                id: WebRtcServerId::new(d.id()),
                listen_infos: listen_infos_from(d.listen_infos())?,
                transport_ids: d
                    .transport_ids()
                    .bounded_strs()
                    .map(TransportId::new)
                    .collect(),
            })
        }
        B::WebRtcTransport_DumpResponse => {
            let d = r
                .body_as_web_rtc_transport_dump_response()
                .ok_or_else(|| missing("webrtc transport dump"))?;
            ResponseBody::WebRtcTransportDump(WebRtcTransportDump {
                id: TransportId::new(d.id()),
                ice_parameters: ice_parameters_from(d.ice_parameters()),
                ice_candidates: d
                    .ice_candidates()
                    .bounded()
                    .map(ice_candidate_from)
                    .collect::<Dr<_>>()?,
                ice_state: ice_state_from(d.ice_state())?,
                ice_selected_tuple: d.ice_selected_tuple().map(tuple_from).transpose()?,
                dtls_parameters: dtls_parameters_from(d.dtls_parameters())?,
                dtls_state: dtls_state_from(d.dtls_state())?,
                producer_ids: producer_ids_from(d.producer_ids()),
                consumer_ids: consumer_ids_from(d.consumer_ids()),
                sctp_parameters: d.sctp_parameters().map(sctp_parameters_from),
                sctp_state: d.sctp_state().map(sctp_state_from).transpose()?,
                data_producer_ids: data_producer_ids_from(d.data_producer_ids()),
                data_consumer_ids: data_consumer_ids_from(d.data_consumer_ids()),
            })
        }
        B::PlainTransport_DumpResponse => {
            let d = r
                .body_as_plain_transport_dump_response()
                .ok_or_else(|| missing("plain transport dump"))?;
            ResponseBody::PlainTransportDump(PlainTransportDump {
                id: TransportId::new(d.id()),
                rtcp_mux: d.rtcp_mux(),
                comedia: d.comedia(),
                tuple: tuple_from(d.tuple())?,
                rtcp_tuple: d.rtcp_tuple().map(tuple_from).transpose()?,
                srtp_parameters: d.srtp_parameters().map(srtp_parameters_from).transpose()?,
                producer_ids: producer_ids_from(d.producer_ids()),
                consumer_ids: consumer_ids_from(d.consumer_ids()),
            })
        }
        B::Transport_GetStatsResponse => {
            let s = r
                .body_as_transport_get_stats_response()
                .ok_or_else(|| missing("transport stats"))?;
            ResponseBody::TransportStats(TransportStats {
                transport_id: TransportId::new(s.transport_id()),
                timestamp: s.timestamp(),
                bytes_received: s.bytes_received(),
                bytes_sent: s.bytes_sent(),
                rtp_packets_received: s.rtp_packets_received(),
                rtp_packets_sent: s.rtp_packets_sent(),
                rtcp_packets_received: s.rtcp_packets_received(),
                rtcp_packets_sent: s.rtcp_packets_sent(),
                rtx_packets_sent: s.rtx_packets_sent(),
                packets_dropped: s.packets_dropped(),
                srtp_auth_failures: s.srtp_auth_failures(),
                srtp_replays: s.srtp_replays(),
                recv_bitrate: s.recv_bitrate(),
                send_bitrate: s.send_bitrate(),
                available_outgoing_bitrate: s.available_outgoing_bitrate(),
                available_incoming_bitrate: s.available_incoming_bitrate(),
                max_incoming_bitrate: s.max_incoming_bitrate(),
                max_outgoing_bitrate: s.max_outgoing_bitrate(),
                min_outgoing_bitrate: s.min_outgoing_bitrate(),
                rtp_packet_loss_received: s.rtp_packet_loss_received(),
                rtp_packet_loss_sent: s.rtp_packet_loss_sent(),
                probation_bytes_sent: s.probation_bytes_sent(),
                probation_send_bitrate: s.probation_send_bitrate(),
                ice_state: s.ice_state().map(ice_state_from).transpose()?,
                dtls_state: s.dtls_state().map(dtls_state_from).transpose()?,
                tuple: s.tuple().map(tuple_from).transpose()?,
            })
        }
        B::WebRtcTransport_RestartIceResponse => {
            let b = r
                .body_as_web_rtc_transport_restart_ice_response()
                .ok_or_else(|| missing("ICE parameters"))?;
            ResponseBody::IceParameters(ice_parameters_from(b.ice_parameters()))
        }
        B::Producer_DumpResponse => {
            let d = r
                .body_as_producer_dump_response()
                .ok_or_else(|| missing("producer dump"))?;
            ResponseBody::ProducerDump(ProducerDump {
                id: ProducerId::new(d.id()),
                kind: media_kind_from(d.kind())?,
                rtp_parameters: rtp_parameters_from(d.rtp_parameters()),
                rtp_mapping: rtp_mapping_from(d.rtp_mapping()),
                paused: d.paused(),
            })
        }
        B::RtpStream_GetStatsResponse => {
            let s = r
                .body_as_rtp_stream_get_stats_response()
                .ok_or_else(|| missing("RTP stream stats"))?;
            ResponseBody::RtpStreamStats(s.stats().bounded().map(rtp_stream_stats_from).collect())
        }
        B::Transport_ConsumeResponse => {
            let c = r
                .body_as_transport_consume_response()
                .ok_or_else(|| missing("consume response"))?;
            ResponseBody::Consumed {
                paused: c.paused(),
                producer_paused: c.producer_paused(),
                score: consumer_score_from(c.score()),
            }
        }
        B::Consumer_DumpResponse => {
            let d = r
                .body_as_consumer_dump_response()
                .ok_or_else(|| missing("consumer dump"))?;
            ResponseBody::ConsumerDump(ConsumerDump {
                id: ConsumerId::new(d.id()),
                producer_id: ProducerId::new(d.producer_id()),
                kind: media_kind_from(d.kind())?,
                rtp_parameters: rtp_parameters_from(d.rtp_parameters()),
                paused: d.paused(),
                producer_paused: d.producer_paused(),
                consumer_type: consumer_type_from(d.type_())?,
                priority: d.priority(),
                preferred_layers: d.preferred_layers().map(consumer_layers_from),
                target_layers: d.target_layers().map(consumer_layers_from),
                current_layers: d.current_layers().map(consumer_layers_from),
            })
        }
        B::Consumer_SetPreferredLayersResponse => {
            let d = r
                .body_as_consumer_set_preferred_layers_response()
                .ok_or_else(|| missing("consumer preferred layers"))?;
            ResponseBody::PreferredLayers(d.preferred_layers().map(consumer_layers_from))
        }
        other => {
            return data_response_body_from(r)
                .unwrap_or_else(|| Err(format!("unknown response body {}", other.0)));
        }
    })
}
