//! Requests: the method and its body.

use super::*;

/// The schema's body type and body of a request.
type ReqParts = (fb_req::Body, Option<WIPOffset<UnionWIPOffset>>);

pub(super) fn build_request(fbb: &mut Fbb, r: &Request) -> WIPOffset<UnionWIPOffset> {
    let handler_id = Some(fbb.create_string(r.handler_id.as_str()));
    let method = r.body.method().to_fb();
    let (body_type, body) = build_request_body(fbb, &r.body);
    fb_req::Request::create(
        fbb,
        &fb_req::RequestArgs {
            id: r.id.0,
            method,
            handler_id,
            body_type,
            body,
        },
    )
    .as_union_value()
}

/// The bodies of the methods that carry one; every other method (see `methods!` in `proto`)
/// travels with none.
pub(super) fn build_request_body(fbb: &mut Fbb, body: &RequestBody) -> ReqParts {
    use fb_req::Body as B;
    if let Some(parts) = build_data_request_body(fbb, body) {
        return parts;
    }
    match body {
        RequestBody::WorkerUpdateSettings(s) => {
            let log_level = s.log_level.map(|l| fbb.create_string(l.as_str()));
            let log_targets = s
                .log_targets
                .as_ref()
                .map(|t| strings(fbb, t.iter().map(String::as_str)));
            let b = fb_worker::UpdateSettingsRequest::create(
                fbb,
                &fb_worker::UpdateSettingsRequestArgs {
                    log_level,
                    log_targets,
                },
            );
            (B::Worker_UpdateSettingsRequest, union(b))
        }
        RequestBody::WorkerCreateRouter { router_id } => {
            let router_id = Some(fbb.create_string(router_id.as_str()));
            let b = fb_worker::CreateRouterRequest::create(
                fbb,
                &fb_worker::CreateRouterRequestArgs { router_id },
            );
            (B::Worker_CreateRouterRequest, union(b))
        }
        RequestBody::WorkerCreateWebRtcServer(o) => {
            let web_rtc_server_id = Some(fbb.create_string(o.web_rtc_server_id.as_str()));
            let listen_infos = Some(tables(fbb, &o.listen_infos, build_listen_info));
            let b = fb_wrs::CreateRequest::create(
                fbb,
                &fb_wrs::CreateRequestArgs {
                    web_rtc_server_id,
                    listen_infos,
                },
            );
            (B::WebRtcServer_CreateRequest, union(b))
        }
        RequestBody::RouterCreateWebRtcTransport(o) => {
            let transport_id = Some(fbb.create_string(o.transport_id.as_str()));
            let (listen_type, listen) = match &o.listen {
                WebRtcTransportListen::Server(id) => {
                    let web_rtc_server_id = Some(fbb.create_string(id.as_str()));
                    let l = fb_wrt::ListenServer::create(
                        fbb,
                        &fb_wrt::ListenServerArgs { web_rtc_server_id },
                    );
                    (fb_wrt::Listen::ListenServer, union(l))
                }
                WebRtcTransportListen::Individual(infos) => {
                    let listen_infos = Some(tables(fbb, infos, build_listen_info));
                    let l = fb_wrt::ListenIndividual::create(
                        fbb,
                        &fb_wrt::ListenIndividualArgs { listen_infos },
                    );
                    (fb_wrt::Listen::ListenIndividual, union(l))
                }
            };
            let sctp = o.sctp.as_ref().map(|s| build_sctp_options(fbb, s));
            let b = fb_wrt::CreateRequest::create(
                fbb,
                &fb_wrt::CreateRequestArgs {
                    transport_id,
                    listen_type,
                    listen,
                    enable_udp: o.enable_udp,
                    enable_tcp: o.enable_tcp,
                    prefer_udp: o.prefer_udp,
                    prefer_tcp: o.prefer_tcp,
                    ice_consent_timeout: o.ice_consent_timeout,
                    initial_available_outgoing_bitrate: o.initial_available_outgoing_bitrate,
                    sctp,
                },
            );
            (B::WebRtcTransport_CreateRequest, union(b))
        }
        RequestBody::RouterCreatePlainTransport(o) => {
            let transport_id = Some(fbb.create_string(o.transport_id.as_str()));
            let listen_info = Some(build_listen_info(fbb, &o.listen_info));
            let rtcp_listen_info = o
                .rtcp_listen_info
                .as_ref()
                .map(|l| build_listen_info(fbb, l));
            let b = fb_pt::CreateRequest::create(
                fbb,
                &fb_pt::CreateRequestArgs {
                    transport_id,
                    listen_info,
                    rtcp_listen_info,
                    rtcp_mux: o.rtcp_mux,
                    comedia: o.comedia,
                    srtp_crypto_suite: o.srtp_crypto_suite.map(suite_to),
                },
            );
            (B::PlainTransport_CreateRequest, union(b))
        }
        RequestBody::TransportConnect(ConnectParams::WebRtc { dtls_parameters }) => {
            let dtls_parameters = Some(build_dtls_parameters(fbb, dtls_parameters));
            let b = fb_wrt::ConnectRequest::create(
                fbb,
                &fb_wrt::ConnectRequestArgs { dtls_parameters },
            );
            (B::WebRtcTransport_ConnectRequest, union(b))
        }
        RequestBody::TransportConnect(ConnectParams::Plain {
            ip,
            port,
            rtcp_port,
            srtp_parameters,
        }) => {
            let ip = opt_str(fbb, ip.as_deref());
            let srtp_parameters = srtp_parameters
                .as_ref()
                .map(|s| build_srtp_parameters(fbb, s));
            let b = fb_pt::ConnectRequest::create(
                fbb,
                &fb_pt::ConnectRequestArgs {
                    ip,
                    port: *port,
                    rtcp_port: *rtcp_port,
                    srtp_parameters,
                },
            );
            (B::PlainTransport_ConnectRequest, union(b))
        }
        RequestBody::TransportSetMaxIncomingBitrate(max_incoming_bitrate) => {
            let b = fb_tr::SetMaxIncomingBitrateRequest::create(
                fbb,
                &fb_tr::SetMaxIncomingBitrateRequestArgs {
                    max_incoming_bitrate: *max_incoming_bitrate,
                },
            );
            (B::Transport_SetMaxIncomingBitrateRequest, union(b))
        }
        RequestBody::TransportSetMaxOutgoingBitrate(max_outgoing_bitrate) => {
            let b = fb_tr::SetMaxOutgoingBitrateRequest::create(
                fbb,
                &fb_tr::SetMaxOutgoingBitrateRequestArgs {
                    max_outgoing_bitrate: *max_outgoing_bitrate,
                },
            );
            (B::Transport_SetMaxOutgoingBitrateRequest, union(b))
        }
        RequestBody::TransportSetMinOutgoingBitrate(min_outgoing_bitrate) => {
            let b = fb_tr::SetMinOutgoingBitrateRequest::create(
                fbb,
                &fb_tr::SetMinOutgoingBitrateRequestArgs {
                    min_outgoing_bitrate: *min_outgoing_bitrate,
                },
            );
            (B::Transport_SetMinOutgoingBitrateRequest, union(b))
        }
        RequestBody::TransportEnableTraceEvent(events) => {
            let events: Vec<fb_tr::TraceEventType> =
                events.iter().map(|&e| trace_event_type_to(e)).collect();
            let events = Some(fbb.create_vector(&events));
            let b = fb_tr::EnableTraceEventRequest::create(
                fbb,
                &fb_tr::EnableTraceEventRequestArgs { events },
            );
            (B::Transport_EnableTraceEventRequest, union(b))
        }
        RequestBody::TransportProduce(o) => {
            let producer_id = Some(fbb.create_string(o.producer_id.as_str()));
            let rtp_parameters = Some(build_rtp_parameters(fbb, &o.rtp_parameters));
            let rtp_mapping = Some(build_rtp_mapping(fbb, &o.rtp_mapping));
            let b = fb_tr::ProduceRequest::create(
                fbb,
                &fb_tr::ProduceRequestArgs {
                    producer_id,
                    kind: media_kind_to(o.kind),
                    rtp_parameters,
                    rtp_mapping,
                    key_frame_request_delay: o.key_frame_request_delay,
                    paused: o.paused,
                },
            );
            (B::Transport_ProduceRequest, union(b))
        }
        RequestBody::TransportConsume(o) => {
            let consumer_id = Some(fbb.create_string(o.consumer_id.as_str()));
            let producer_id = Some(fbb.create_string(o.producer_id.as_str()));
            let rtp_parameters = Some(build_rtp_parameters(fbb, &o.rtp_parameters));
            let consumable_rtp_encodings =
                Some(tables(fbb, &o.consumable_rtp_encodings, build_encoding));
            let preferred_layers = build_consumer_layers(fbb, o.preferred_layers.as_ref());
            let b = fb_tr::ConsumeRequest::create(
                fbb,
                &fb_tr::ConsumeRequestArgs {
                    consumer_id,
                    producer_id,
                    kind: media_kind_to(o.kind),
                    rtp_parameters,
                    consumable_rtp_encodings,
                    paused: o.paused,
                    ignore_dtx: o.ignore_dtx,
                    type_: consumer_type_to(o.consumer_type),
                    preferred_layers,
                },
            );
            (B::Transport_ConsumeRequest, union(b))
        }
        RequestBody::ConsumerSetPreferredLayers(l) => {
            let preferred_layers = build_consumer_layers(fbb, Some(l));
            let b = fb_cons::SetPreferredLayersRequest::create(
                fbb,
                &fb_cons::SetPreferredLayersRequestArgs { preferred_layers },
            );
            (B::Consumer_SetPreferredLayersRequest, union(b))
        }
        RequestBody::RouterCreateActiveSpeakerObserver(o) => {
            let rtp_observer_id = Some(fbb.create_string(o.rtp_observer_id.as_str()));
            let b = fb_obs::CreateActiveSpeakerObserverRequest::create(
                fbb,
                &fb_obs::CreateActiveSpeakerObserverRequestArgs {
                    rtp_observer_id,
                    interval: o.interval,
                },
            );
            (B::RtpObserver_CreateActiveSpeakerObserverRequest, union(b))
        }
        RequestBody::RouterCreateAudioLevelObserver(o) => {
            let rtp_observer_id = Some(fbb.create_string(o.rtp_observer_id.as_str()));
            let b = fb_obs::CreateAudioLevelObserverRequest::create(
                fbb,
                &fb_obs::CreateAudioLevelObserverRequestArgs {
                    rtp_observer_id,
                    max_entries: o.max_entries,
                    threshold: o.threshold,
                    interval: o.interval,
                },
            );
            (B::RtpObserver_CreateAudioLevelObserverRequest, union(b))
        }
        RequestBody::RtpObserverAddProducer { producer_id }
        | RequestBody::RtpObserverRemoveProducer { producer_id } => {
            let producer_id = Some(fbb.create_string(producer_id.as_str()));
            let b =
                fb_obs::ProducerRequest::create(fbb, &fb_obs::ProducerRequestArgs { producer_id });
            (B::RtpObserver_ProducerRequest, union(b))
        }
        RequestBody::ConsumerSetPriority(priority) => {
            let b = fb_cons::SetPriorityRequest::create(
                fbb,
                &fb_cons::SetPriorityRequestArgs {
                    priority: *priority,
                },
            );
            (B::Consumer_SetPriorityRequest, union(b))
        }
        bodyless => {
            debug_assert!(
                RequestBody::bodyless(bodyless.method()).is_some(),
                "{} has a body but no arm above",
                bodyless.method()
            );
            (B::NONE, None)
        }
    }
}

pub(super) fn producer_ids_from(v: Vector<'_, ForwardsUOffset<&str>>) -> Vec<ProducerId> {
    v.bounded_strs().map(ProducerId::new).collect()
}

pub(super) fn consumer_ids_from(v: Vector<'_, ForwardsUOffset<&str>>) -> Vec<ConsumerId> {
    v.bounded_strs().map(ConsumerId::new).collect()
}

pub(super) fn decode_request(r: fb_req::Request<'_>) -> Result<Request, DecodeError> {
    let id = RequestId(r.id());
    let body = request_body_from(r).map_err(|reason| err(Some(id), reason))?;
    Ok(Request {
        id,
        handler_id: HandlerId::new(r.handler_id()),
        body,
    })
}

pub(super) fn request_body_from(r: fb_req::Request<'_>) -> Dr<RequestBody> {
    use fb_req::Method as M;
    let missing = |method: Method| format!("{method} body missing");
    Ok(match r.method() {
        M::WORKER_UPDATE_SETTINGS => {
            let b = r
                .body_as_worker_update_settings_request()
                .ok_or_else(|| missing(Method::WorkerUpdateSettings))?;
            let log_level = b.log_level().map(str::parse::<LogLevel>).transpose()?;
            let log_targets = b.log_targets().map(|v| v.bounded_strs().map(own).collect());
            RequestBody::WorkerUpdateSettings(UpdateSettings {
                log_level,
                log_targets,
            })
        }
        M::WORKER_CREATE_ROUTER => {
            let b = r
                .body_as_worker_create_router_request()
                .ok_or_else(|| missing(Method::WorkerCreateRouter))?;
            RequestBody::WorkerCreateRouter {
                router_id: RouterId::new(b.router_id()),
            }
        }
        M::WORKER_CREATE_WEBRTC_SERVER => {
            let b = r
                .body_as_web_rtc_server_create_request()
                .ok_or_else(|| missing(Method::WorkerCreateWebRtcServer))?;
            RequestBody::WorkerCreateWebRtcServer(WebRtcServerOptions {
                web_rtc_server_id: WebRtcServerId::new(b.web_rtc_server_id()),
                listen_infos: listen_infos_from(b.listen_infos())?,
            })
        }
        M::ROUTER_CREATE_WEBRTC_TRANSPORT => {
            let b = r
                .body_as_web_rtc_transport_create_request()
                .ok_or_else(|| missing(Method::RouterCreateWebRtcTransport))?;
            let listen = if let Some(l) = b.listen_as_listen_server() {
                WebRtcTransportListen::Server(WebRtcServerId::new(l.web_rtc_server_id()))
            } else if let Some(l) = b.listen_as_listen_individual() {
                WebRtcTransportListen::Individual(listen_infos_from(l.listen_infos())?)
            } else {
                return Err(format!(
                    "{}: listen missing or unknown ({})",
                    Method::RouterCreateWebRtcTransport,
                    b.listen_type().0
                ));
            };
            RequestBody::RouterCreateWebRtcTransport(WebRtcTransportOptions {
                transport_id: TransportId::new(b.transport_id()),
                listen,
                enable_udp: b.enable_udp(),
                enable_tcp: b.enable_tcp(),
                prefer_udp: b.prefer_udp(),
                prefer_tcp: b.prefer_tcp(),
                ice_consent_timeout: b.ice_consent_timeout(),
                initial_available_outgoing_bitrate: b.initial_available_outgoing_bitrate(),
                sctp: b.sctp().map(sctp_options_from),
            })
        }
        M::ROUTER_CREATE_PLAIN_TRANSPORT => {
            let b = r
                .body_as_plain_transport_create_request()
                .ok_or_else(|| missing(Method::RouterCreatePlainTransport))?;
            RequestBody::RouterCreatePlainTransport(PlainTransportOptions {
                transport_id: TransportId::new(b.transport_id()),
                listen_info: listen_info_from(b.listen_info())?,
                rtcp_listen_info: b.rtcp_listen_info().map(listen_info_from).transpose()?,
                rtcp_mux: b.rtcp_mux(),
                comedia: b.comedia(),
                srtp_crypto_suite: b.srtp_crypto_suite().map(suite_from).transpose()?,
            })
        }
        M::TRANSPORT_CONNECT => {
            let params = if let Some(b) = r.body_as_web_rtc_transport_connect_request() {
                ConnectParams::WebRtc {
                    dtls_parameters: dtls_parameters_from(b.dtls_parameters())?,
                }
            } else if let Some(b) = r.body_as_plain_transport_connect_request() {
                ConnectParams::Plain {
                    ip: b.ip().map(own),
                    port: b.port(),
                    rtcp_port: b.rtcp_port(),
                    srtp_parameters: b.srtp_parameters().map(srtp_parameters_from).transpose()?,
                }
            } else {
                return Err(missing(Method::TransportConnect));
            };
            RequestBody::TransportConnect(params)
        }
        M::TRANSPORT_SET_MAX_INCOMING_BITRATE => {
            let b = r
                .body_as_transport_set_max_incoming_bitrate_request()
                .ok_or_else(|| missing(Method::TransportSetMaxIncomingBitrate))?;
            RequestBody::TransportSetMaxIncomingBitrate(b.max_incoming_bitrate())
        }
        M::TRANSPORT_SET_MAX_OUTGOING_BITRATE => {
            let b = r
                .body_as_transport_set_max_outgoing_bitrate_request()
                .ok_or_else(|| missing(Method::TransportSetMaxOutgoingBitrate))?;
            RequestBody::TransportSetMaxOutgoingBitrate(b.max_outgoing_bitrate())
        }
        M::TRANSPORT_SET_MIN_OUTGOING_BITRATE => {
            let b = r
                .body_as_transport_set_min_outgoing_bitrate_request()
                .ok_or_else(|| missing(Method::TransportSetMinOutgoingBitrate))?;
            RequestBody::TransportSetMinOutgoingBitrate(b.min_outgoing_bitrate())
        }
        M::TRANSPORT_ENABLE_TRACE_EVENT => {
            let b = r
                .body_as_transport_enable_trace_event_request()
                .ok_or_else(|| missing(Method::TransportEnableTraceEvent))?;
            RequestBody::TransportEnableTraceEvent(
                b.events()
                    .bounded()
                    .map(trace_event_type_from)
                    .collect::<Result<_, _>>()?,
            )
        }
        M::TRANSPORT_PRODUCE => {
            let b = r
                .body_as_transport_produce_request()
                .ok_or_else(|| missing(Method::TransportProduce))?;
            RequestBody::TransportProduce(ProduceOptions {
                producer_id: ProducerId::new(b.producer_id()),
                kind: media_kind_from(b.kind())?,
                rtp_parameters: rtp_parameters_from(b.rtp_parameters()),
                rtp_mapping: rtp_mapping_from(b.rtp_mapping()),
                key_frame_request_delay: b.key_frame_request_delay(),
                paused: b.paused(),
            })
        }
        M::TRANSPORT_CONSUME => {
            let b = r
                .body_as_transport_consume_request()
                .ok_or_else(|| missing(Method::TransportConsume))?;
            RequestBody::TransportConsume(ConsumeOptions {
                consumer_id: ConsumerId::new(b.consumer_id()),
                producer_id: ProducerId::new(b.producer_id()),
                kind: media_kind_from(b.kind())?,
                rtp_parameters: rtp_parameters_from(b.rtp_parameters()),
                consumable_rtp_encodings: b
                    .consumable_rtp_encodings()
                    .bounded()
                    .map(encoding_from)
                    .collect(),
                paused: b.paused(),
                ignore_dtx: b.ignore_dtx(),
                consumer_type: consumer_type_from(b.type_())?,
                preferred_layers: b.preferred_layers().map(consumer_layers_from),
            })
        }
        M::CONSUMER_SET_PREFERRED_LAYERS => {
            let b = r
                .body_as_consumer_set_preferred_layers_request()
                .ok_or_else(|| missing(Method::ConsumerSetPreferredLayers))?;
            RequestBody::ConsumerSetPreferredLayers(consumer_layers_from(b.preferred_layers()))
        }
        M::ROUTER_CREATE_ACTIVE_SPEAKER_OBSERVER => {
            let b = r
                .body_as_rtp_observer_create_active_speaker_observer_request()
                .ok_or_else(|| missing(Method::RouterCreateActiveSpeakerObserver))?;
            RequestBody::RouterCreateActiveSpeakerObserver(ActiveSpeakerObserverOptions {
                rtp_observer_id: RtpObserverId::new(b.rtp_observer_id()),
                interval: b.interval(),
            })
        }
        M::ROUTER_CREATE_AUDIO_LEVEL_OBSERVER => {
            let b = r
                .body_as_rtp_observer_create_audio_level_observer_request()
                .ok_or_else(|| missing(Method::RouterCreateAudioLevelObserver))?;
            RequestBody::RouterCreateAudioLevelObserver(AudioLevelObserverOptions {
                rtp_observer_id: RtpObserverId::new(b.rtp_observer_id()),
                max_entries: b.max_entries(),
                threshold: b.threshold(),
                interval: b.interval(),
            })
        }
        M::RTP_OBSERVER_ADD_PRODUCER | M::RTP_OBSERVER_REMOVE_PRODUCER => {
            let add = r.method() == M::RTP_OBSERVER_ADD_PRODUCER;
            let method = if add {
                Method::RtpObserverAddProducer
            } else {
                Method::RtpObserverRemoveProducer
            };
            let b = r
                .body_as_rtp_observer_producer_request()
                .ok_or_else(|| missing(method))?;
            let producer_id = ProducerId::new(b.producer_id());
            if add {
                RequestBody::RtpObserverAddProducer { producer_id }
            } else {
                RequestBody::RtpObserverRemoveProducer { producer_id }
            }
        }
        M::CONSUMER_SET_PRIORITY => {
            let b = r
                .body_as_consumer_set_priority_request()
                .ok_or_else(|| missing(Method::ConsumerSetPriority))?;
            RequestBody::ConsumerSetPriority(b.priority())
        }
        other => {
            if let Some(body) = data_request_body_from(r) {
                return body;
            }
            let method =
                Method::from_fb(other).ok_or_else(|| format!("unknown method {}", other.0))?;
            RequestBody::bodyless(method).ok_or_else(|| missing(method))?
        }
    })
}
