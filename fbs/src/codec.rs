//! FlatBuffers <-> typed messages. The only place that touches generated code.

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, UnionWIPOffset, Vector, WIPOffset};

use crate::frame::MAX_FRAME_LEN;
use crate::generated::fbs::{
    consumer as fb_cons, log as fb_log, message as fb_msg, notification as fb_notif,
    plain_transport as fb_pt, producer as fb_prod, request as fb_req, response as fb_resp,
    router as fb_router, rtp_parameters as fb_rtp, rtp_stream as fb_rs, srtp_parameters as fb_srtp,
    transport as fb_tr, web_rtc_server as fb_wrs, web_rtc_transport as fb_wrt, worker as fb_worker,
};
use crate::ids::{
    ConsumerId, HandlerId, ProducerId, RequestId, RouterId, TransportId, WebRtcServerId,
};
use crate::media::*;
use crate::proto::*;

/// A payload that is not a valid message. `request_id` is set when the payload was recognisably
/// a request and its id could be read, so the receiver can answer with an error response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable message: {reason}")]
pub struct DecodeError {
    pub request_id: Option<RequestId>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {0} bytes exceeds the {MAX_FRAME_LEN} byte frame limit")]
    TooLarge(usize),
}

/// Encodes typed messages into frames, reusing one FlatBuffers builder.
pub struct Encoder {
    fbb: FlatBufferBuilder<'static>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self {
            fbb: FlatBufferBuilder::with_capacity(1024),
        }
    }

    /// Appends one frame (u32-LE length + Message) to `out`. On error `out` is unchanged.
    pub fn encode_frame(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.fbb.reset();
        let fbb = &mut self.fbb;
        let (data_type, data) = match msg {
            Message::Request(r) => (fb_msg::Body::Request, build_request(fbb, r)),
            Message::Response(r) => (fb_msg::Body::Response, build_response(fbb, r)),
            Message::Notification(n) => (fb_msg::Body::Notification, build_notification(fbb, n)),
            Message::Log(l) => (fb_msg::Body::Log, build_log(fbb, l)),
        };
        let root = fb_msg::Message::create(
            fbb,
            &fb_msg::MessageArgs {
                data_type,
                data: Some(data),
            },
        );
        // Not `finish_size_prefixed`: the verifier checks alignment relative to the payload, and
        // the payload (not the prefixed buffer) must be the aligned unit.
        fb_msg::finish_message_buffer(fbb, root);
        let bytes = fbb.finished_data();
        if bytes.len() > MAX_FRAME_LEN {
            return Err(EncodeError::TooLarge(bytes.len()));
        }
        let len = u32::try_from(bytes.len()).expect("bounded by MAX_FRAME_LEN");
        out.reserve(4 + bytes.len());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
        Ok(())
    }

    /// Convenience: one message as a fresh frame.
    pub fn frame(&mut self, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_frame(msg, &mut out)?;
        Ok(out)
    }
}

type Fbb = FlatBufferBuilder<'static>;

fn strings<'a>(
    fbb: &mut Fbb,
    items: impl Iterator<Item = &'a str>,
) -> WIPOffset<Vector<'static, ForwardsUOffset<&'static str>>> {
    let offs: Vec<_> = items.map(|s| fbb.create_string(s)).collect();
    fbb.create_vector(&offs)
}

fn opt_str(fbb: &mut Fbb, s: Option<&str>) -> Option<WIPOffset<&'static str>> {
    s.map(|s| fbb.create_string(s))
}

/// A vector of tables, each built by `f`.
fn tables<T, U>(
    fbb: &mut Fbb,
    items: &[T],
    mut f: impl FnMut(&mut Fbb, &T) -> WIPOffset<U>,
) -> WIPOffset<Vector<'static, ForwardsUOffset<U>>> {
    let offs: Vec<WIPOffset<U>> = items.iter().map(|i| f(fbb, i)).collect();
    fbb.create_vector(&offs)
}

fn union<T>(b: WIPOffset<T>) -> Option<WIPOffset<UnionWIPOffset>> {
    Some(b.as_union_value())
}

/// Typed enum <-> generated enum, both ways; an unknown generated value is a decode error.
macro_rules! enum_map {
    ($to:ident, $from:ident, $what:literal, $rust:ident, $m:ident::$fb:ident {
        $($r:ident <=> $f:ident),* $(,)?
    }) => {
        fn $to(v: $rust) -> $m::$fb {
            match v {
                $($rust::$r => $m::$fb::$f,)*
            }
        }
        fn $from(v: $m::$fb) -> Dr<$rust> {
            match v {
                $($m::$fb::$f => Ok($rust::$r),)*
                other => Err(format!(concat!("unknown ", $what, " {}"), other.0)),
            }
        }
    };
}

enum_map!(media_kind_to, media_kind_from, "media kind", MediaKind, fb_rtp::MediaKind {
    Audio <=> AUDIO,
    Video <=> VIDEO,
});
enum_map!(protocol_to, protocol_from, "transport protocol", TransportProtocol, fb_tr::Protocol {
    Udp <=> UDP,
    Tcp <=> TCP,
});
enum_map!(ice_state_to, ice_state_from, "ICE state", IceState, fb_tr::IceState {
    New <=> NEW,
    Connected <=> CONNECTED,
    Completed <=> COMPLETED,
    Disconnected <=> DISCONNECTED,
    Closed <=> CLOSED,
});
enum_map!(dtls_state_to, dtls_state_from, "DTLS state", DtlsState, fb_tr::DtlsState {
    New <=> NEW,
    Connecting <=> CONNECTING,
    Connected <=> CONNECTED,
    Failed <=> FAILED,
    Closed <=> CLOSED,
});
enum_map!(dtls_role_to, dtls_role_from, "DTLS role", DtlsRole, fb_wrt::DtlsRole {
    Auto <=> AUTO,
    Client <=> CLIENT,
    Server <=> SERVER,
});
enum_map!(suite_to, suite_from, "SRTP crypto suite", SrtpCryptoSuite, fb_srtp::SrtpCryptoSuite {
    AeadAes256Gcm <=> AEAD_AES_256_GCM,
    AeadAes128Gcm <=> AEAD_AES_128_GCM,
    AesCm128HmacSha1_80 <=> AES_CM_128_HMAC_SHA1_80,
    AesCm128HmacSha1_32 <=> AES_CM_128_HMAC_SHA1_32,
});

fn build_listen_info(fbb: &mut Fbb, l: &ListenInfo) -> WIPOffset<fb_tr::ListenInfo<'static>> {
    let ip = Some(fbb.create_string(&l.ip));
    let announced_address = opt_str(fbb, l.announced_address.as_deref());
    fb_tr::ListenInfo::create(
        fbb,
        &fb_tr::ListenInfoArgs {
            protocol: protocol_to(l.protocol),
            ip,
            announced_address,
            port: l.port,
        },
    )
}

fn build_tuple(fbb: &mut Fbb, t: &TransportTuple) -> WIPOffset<fb_tr::Tuple<'static>> {
    let local_address = Some(fbb.create_string(&t.local_address));
    let remote_ip = Some(fbb.create_string(&t.remote_ip));
    fb_tr::Tuple::create(
        fbb,
        &fb_tr::TupleArgs {
            local_address,
            local_port: t.local_port,
            remote_ip,
            remote_port: t.remote_port,
            protocol: protocol_to(t.protocol),
        },
    )
}

fn build_codec(
    fbb: &mut Fbb,
    c: &RtpCodecParameters,
) -> WIPOffset<fb_rtp::RtpCodecParameters<'static>> {
    let mime_type = Some(fbb.create_string(&c.mime_type));
    let parameters = Some(tables(fbb, &c.parameters, |fbb, (name, value)| {
        let name = Some(fbb.create_string(name));
        let value = Some(fbb.create_string(value));
        fb_rtp::Parameter::create(fbb, &fb_rtp::ParameterArgs { name, value })
    }));
    let rtcp_feedback = Some(tables(fbb, &c.rtcp_feedback, |fbb, f| {
        let type_ = Some(fbb.create_string(&f.kind));
        let parameter = Some(fbb.create_string(&f.parameter));
        fb_rtp::RtcpFeedback::create(fbb, &fb_rtp::RtcpFeedbackArgs { type_, parameter })
    }));
    fb_rtp::RtpCodecParameters::create(
        fbb,
        &fb_rtp::RtpCodecParametersArgs {
            mime_type,
            payload_type: c.payload_type,
            clock_rate: c.clock_rate,
            channels: c.channels,
            parameters,
            rtcp_feedback,
        },
    )
}

fn build_encoding(
    fbb: &mut Fbb,
    e: &RtpEncodingParameters,
) -> WIPOffset<fb_rtp::RtpEncodingParameters<'static>> {
    let rid = opt_str(fbb, e.rid.as_deref());
    let scalability_mode = opt_str(fbb, e.scalability_mode.as_deref());
    fb_rtp::RtpEncodingParameters::create(
        fbb,
        &fb_rtp::RtpEncodingParametersArgs {
            ssrc: e.ssrc,
            rid,
            codec_payload_type: e.codec_payload_type,
            rtx_ssrc: e.rtx_ssrc,
            max_bitrate: e.max_bitrate,
            scalability_mode,
            dtx: e.dtx,
        },
    )
}

fn build_rtp_parameters(
    fbb: &mut Fbb,
    p: &RtpParameters,
) -> WIPOffset<fb_rtp::RtpParameters<'static>> {
    let mid = opt_str(fbb, p.mid.as_deref());
    let codecs = Some(tables(fbb, &p.codecs, build_codec));
    let header_extensions = Some(tables(fbb, &p.header_extensions, |fbb, h| {
        let uri = Some(fbb.create_string(&h.uri));
        fb_rtp::RtpHeaderExtensionParameters::create(
            fbb,
            &fb_rtp::RtpHeaderExtensionParametersArgs {
                uri,
                id: h.id,
                encrypt: h.encrypt,
            },
        )
    }));
    let encodings = Some(tables(fbb, &p.encodings, build_encoding));
    let cname = Some(fbb.create_string(&p.rtcp.cname));
    let rtcp = Some(fb_rtp::RtcpParameters::create(
        fbb,
        &fb_rtp::RtcpParametersArgs {
            cname,
            reduced_size: p.rtcp.reduced_size,
        },
    ));
    fb_rtp::RtpParameters::create(
        fbb,
        &fb_rtp::RtpParametersArgs {
            mid,
            codecs,
            header_extensions,
            encodings,
            rtcp,
        },
    )
}

fn build_rtp_mapping(fbb: &mut Fbb, m: &RtpMapping) -> WIPOffset<fb_rtp::RtpMapping<'static>> {
    let codecs = Some(tables(fbb, &m.codecs, |fbb, c| {
        fb_rtp::CodecMapping::create(
            fbb,
            &fb_rtp::CodecMappingArgs {
                payload_type: c.payload_type,
                mapped_payload_type: c.mapped_payload_type,
            },
        )
    }));
    let encodings = Some(tables(fbb, &m.encodings, |fbb, e| {
        let rid = opt_str(fbb, e.rid.as_deref());
        let scalability_mode = opt_str(fbb, e.scalability_mode.as_deref());
        fb_rtp::EncodingMapping::create(
            fbb,
            &fb_rtp::EncodingMappingArgs {
                ssrc: e.ssrc,
                rid,
                scalability_mode,
                mapped_ssrc: e.mapped_ssrc,
            },
        )
    }));
    fb_rtp::RtpMapping::create(fbb, &fb_rtp::RtpMappingArgs { codecs, encodings })
}

fn build_srtp_parameters(
    fbb: &mut Fbb,
    s: &SrtpParameters,
) -> WIPOffset<fb_srtp::SrtpParameters<'static>> {
    let key_base64 = Some(fbb.create_string(&s.key_base64));
    fb_srtp::SrtpParameters::create(
        fbb,
        &fb_srtp::SrtpParametersArgs {
            crypto_suite: suite_to(s.crypto_suite),
            key_base64,
        },
    )
}

fn build_ice_parameters(
    fbb: &mut Fbb,
    p: &IceParameters,
) -> WIPOffset<fb_wrt::IceParameters<'static>> {
    let username_fragment = Some(fbb.create_string(&p.username_fragment));
    let password = Some(fbb.create_string(&p.password));
    fb_wrt::IceParameters::create(
        fbb,
        &fb_wrt::IceParametersArgs {
            username_fragment,
            password,
            ice_lite: p.ice_lite,
        },
    )
}

fn build_ice_candidate(
    fbb: &mut Fbb,
    c: &IceCandidate,
) -> WIPOffset<fb_wrt::IceCandidate<'static>> {
    let foundation = Some(fbb.create_string(&c.foundation));
    let address = Some(fbb.create_string(&c.address));
    let type_ = Some(fbb.create_string(&c.kind));
    let tcp_type = opt_str(fbb, c.tcp_type.as_deref());
    fb_wrt::IceCandidate::create(
        fbb,
        &fb_wrt::IceCandidateArgs {
            foundation,
            priority: c.priority,
            address,
            protocol: protocol_to(c.protocol),
            port: c.port,
            type_,
            tcp_type,
        },
    )
}

fn build_dtls_parameters(
    fbb: &mut Fbb,
    d: &DtlsParameters,
) -> WIPOffset<fb_wrt::DtlsParameters<'static>> {
    let fingerprints = Some(tables(fbb, &d.fingerprints, |fbb, f| {
        let algorithm = Some(fbb.create_string(&f.algorithm));
        let value = Some(fbb.create_string(&f.value));
        fb_wrt::Fingerprint::create(fbb, &fb_wrt::FingerprintArgs { algorithm, value })
    }));
    fb_wrt::DtlsParameters::create(
        fbb,
        &fb_wrt::DtlsParametersArgs {
            role: dtls_role_to(d.role),
            fingerprints,
        },
    )
}

fn build_consumer_score(
    fbb: &mut Fbb,
    s: &ConsumerScore,
) -> WIPOffset<fb_cons::ConsumerScore<'static>> {
    fb_cons::ConsumerScore::create(
        fbb,
        &fb_cons::ConsumerScoreArgs {
            score: s.score,
            producer_score: s.producer_score,
        },
    )
}

fn build_rtp_stream_stats(fbb: &mut Fbb, s: &RtpStreamStats) -> WIPOffset<fb_rs::Stats<'static>> {
    let rid = opt_str(fbb, s.rid.as_deref());
    let mime_type = Some(fbb.create_string(&s.mime_type));
    fb_rs::Stats::create(
        fbb,
        &fb_rs::StatsArgs {
            ssrc: s.ssrc,
            rtx_ssrc: s.rtx_ssrc,
            rid,
            mime_type,
            packet_count: s.packet_count,
            byte_count: s.byte_count,
            packets_lost: s.packets_lost,
            fraction_lost: s.fraction_lost,
            jitter: s.jitter,
            bitrate: s.bitrate,
            score: s.score,
            nack_count: s.nack_count,
            nack_packet_count: s.nack_packet_count,
            pli_count: s.pli_count,
            fir_count: s.fir_count,
            retransmitted_packet_count: s.retransmitted_packet_count,
            round_trip_time: s.round_trip_time,
            bad_sequence_dropped: s.bad_sequence_dropped,
            resync_count: s.resync_count,
        },
    )
}

type ReqParts = (
    fb_req::Method,
    fb_req::Body,
    Option<WIPOffset<UnionWIPOffset>>,
);

fn build_request(fbb: &mut Fbb, r: &Request) -> WIPOffset<UnionWIPOffset> {
    let handler_id = Some(fbb.create_string(r.handler_id.as_str()));
    let (method, body_type, body) = build_request_body(fbb, &r.body);
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

fn build_request_body(fbb: &mut Fbb, body: &RequestBody) -> ReqParts {
    use fb_req::{Body as B, Method as M};
    match body {
        RequestBody::WorkerClose => (M::WORKER_CLOSE, B::NONE, None),
        RequestBody::WorkerDump => (M::WORKER_DUMP, B::NONE, None),
        RequestBody::WorkerGetResourceUsage => (M::WORKER_GET_RESOURCE_USAGE, B::NONE, None),
        RequestBody::WorkerGetMediaCounters => (M::WORKER_GET_MEDIA_COUNTERS, B::NONE, None),
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
            (
                M::WORKER_UPDATE_SETTINGS,
                B::Worker_UpdateSettingsRequest,
                union(b),
            )
        }
        RequestBody::WorkerCreateRouter { router_id } => {
            let router_id = Some(fbb.create_string(router_id.as_str()));
            let b = fb_worker::CreateRouterRequest::create(
                fbb,
                &fb_worker::CreateRouterRequestArgs { router_id },
            );
            (
                M::WORKER_CREATE_ROUTER,
                B::Worker_CreateRouterRequest,
                union(b),
            )
        }
        RequestBody::RouterDump => (M::ROUTER_DUMP, B::NONE, None),
        RequestBody::RouterClose => (M::ROUTER_CLOSE, B::NONE, None),
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
            (
                M::WORKER_CREATE_WEBRTC_SERVER,
                B::WebRtcServer_CreateRequest,
                union(b),
            )
        }
        RequestBody::WebRtcServerClose => (M::WEBRTC_SERVER_CLOSE, B::NONE, None),
        RequestBody::WebRtcServerDump => (M::WEBRTC_SERVER_DUMP, B::NONE, None),
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
                },
            );
            (
                M::ROUTER_CREATE_WEBRTC_TRANSPORT,
                B::WebRtcTransport_CreateRequest,
                union(b),
            )
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
            (
                M::ROUTER_CREATE_PLAIN_TRANSPORT,
                B::PlainTransport_CreateRequest,
                union(b),
            )
        }
        RequestBody::TransportClose => (M::TRANSPORT_CLOSE, B::NONE, None),
        RequestBody::TransportDump => (M::TRANSPORT_DUMP, B::NONE, None),
        RequestBody::TransportGetStats => (M::TRANSPORT_GET_STATS, B::NONE, None),
        RequestBody::TransportConnect(ConnectParams::WebRtc { dtls_parameters }) => {
            let dtls_parameters = Some(build_dtls_parameters(fbb, dtls_parameters));
            let b = fb_wrt::ConnectRequest::create(
                fbb,
                &fb_wrt::ConnectRequestArgs { dtls_parameters },
            );
            (
                M::TRANSPORT_CONNECT,
                B::WebRtcTransport_ConnectRequest,
                union(b),
            )
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
            (
                M::TRANSPORT_CONNECT,
                B::PlainTransport_ConnectRequest,
                union(b),
            )
        }
        RequestBody::TransportRestartIce => (M::TRANSPORT_RESTART_ICE, B::NONE, None),
        RequestBody::TransportSetMaxIncomingBitrate(max_incoming_bitrate) => {
            let b = fb_tr::SetMaxIncomingBitrateRequest::create(
                fbb,
                &fb_tr::SetMaxIncomingBitrateRequestArgs {
                    max_incoming_bitrate: *max_incoming_bitrate,
                },
            );
            (
                M::TRANSPORT_SET_MAX_INCOMING_BITRATE,
                B::Transport_SetMaxIncomingBitrateRequest,
                union(b),
            )
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
            (M::TRANSPORT_PRODUCE, B::Transport_ProduceRequest, union(b))
        }
        RequestBody::TransportConsume(o) => {
            let consumer_id = Some(fbb.create_string(o.consumer_id.as_str()));
            let producer_id = Some(fbb.create_string(o.producer_id.as_str()));
            let rtp_parameters = Some(build_rtp_parameters(fbb, &o.rtp_parameters));
            let consumable_rtp_encodings =
                Some(tables(fbb, &o.consumable_rtp_encodings, build_encoding));
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
                },
            );
            (M::TRANSPORT_CONSUME, B::Transport_ConsumeRequest, union(b))
        }
        RequestBody::ProducerClose => (M::PRODUCER_CLOSE, B::NONE, None),
        RequestBody::ProducerDump => (M::PRODUCER_DUMP, B::NONE, None),
        RequestBody::ProducerGetStats => (M::PRODUCER_GET_STATS, B::NONE, None),
        RequestBody::ProducerPause => (M::PRODUCER_PAUSE, B::NONE, None),
        RequestBody::ProducerResume => (M::PRODUCER_RESUME, B::NONE, None),
        RequestBody::ConsumerClose => (M::CONSUMER_CLOSE, B::NONE, None),
        RequestBody::ConsumerDump => (M::CONSUMER_DUMP, B::NONE, None),
        RequestBody::ConsumerGetStats => (M::CONSUMER_GET_STATS, B::NONE, None),
        RequestBody::ConsumerPause => (M::CONSUMER_PAUSE, B::NONE, None),
        RequestBody::ConsumerResume => (M::CONSUMER_RESUME, B::NONE, None),
        RequestBody::ConsumerRequestKeyFrame => (M::CONSUMER_REQUEST_KEY_FRAME, B::NONE, None),
    }
}

fn build_response(fbb: &mut Fbb, r: &Response) -> WIPOffset<UnionWIPOffset> {
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

fn build_response_body(
    fbb: &mut Fbb,
    body: &ResponseBody,
) -> (fb_resp::Body, Option<WIPOffset<UnionWIPOffset>>) {
    use fb_resp::Body as B;
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
                },
            );
            (B::Worker_ResourceUsageResponse, union(b))
        }
        ResponseBody::MediaCounters(c) => {
            let b = fb_worker::MediaCountersResponse::create(
                fbb,
                &fb_worker::MediaCountersResponseArgs {
                    unknown_socket: c.unknown_socket,
                    unknown_tuple: c.unknown_tuple,
                    rtp_bad_sequence: c.rtp_bad_sequence,
                    rtp_resyncs: c.rtp_resyncs,
                    dtls_failures: c.dtls_failures,
                },
            );
            (B::Worker_MediaCountersResponse, union(b))
        }
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
            let b = fb_cons::DumpResponse::create(
                fbb,
                &fb_cons::DumpResponseArgs {
                    id,
                    producer_id,
                    kind: media_kind_to(d.kind),
                    rtp_parameters,
                    paused: d.paused,
                    producer_paused: d.producer_paused,
                },
            );
            (B::Consumer_DumpResponse, union(b))
        }
    }
}

fn build_notification(fbb: &mut Fbb, n: &Notification) -> WIPOffset<UnionWIPOffset> {
    use fb_notif::{Body as B, Event as E};
    let handler_id = Some(fbb.create_string(n.handler_id.as_str()));
    let (event, body_type, body) = match &n.event {
        Event::WorkerRunning(r) => {
            let version = Some(fbb.create_string(&r.version));
            let b = fb_worker::RunningNotification::create(
                fbb,
                &fb_worker::RunningNotificationArgs {
                    pid: r.pid,
                    core: r.core,
                    protocol_version: r.protocol_version,
                    version,
                },
            );
            (E::WORKER_RUNNING, B::Worker_RunningNotification, union(b))
        }
        Event::WorkerChannelError { reason } => {
            let reason = Some(fbb.create_string(reason));
            let b = fb_worker::ChannelErrorNotification::create(
                fbb,
                &fb_worker::ChannelErrorNotificationArgs { reason },
            );
            (
                E::WORKER_CHANNEL_ERROR,
                B::Worker_ChannelErrorNotification,
                union(b),
            )
        }
        Event::Media(e) => build_media_event(fbb, e),
    };
    fb_notif::Notification::create(
        fbb,
        &fb_notif::NotificationArgs {
            handler_id,
            event,
            body_type,
            body,
        },
    )
    .as_union_value()
}

fn build_media_event(
    fbb: &mut Fbb,
    e: &MediaEvent,
) -> (
    fb_notif::Event,
    fb_notif::Body,
    Option<WIPOffset<UnionWIPOffset>>,
) {
    use fb_notif::{Body as B, Event as E};
    match e {
        MediaEvent::TransportIceStateChange(s) => {
            let b = fb_wrt::IceStateChangeNotification::create(
                fbb,
                &fb_wrt::IceStateChangeNotificationArgs {
                    ice_state: ice_state_to(*s),
                },
            );
            (
                E::TRANSPORT_ICE_STATE_CHANGE,
                B::WebRtcTransport_IceStateChangeNotification,
                union(b),
            )
        }
        MediaEvent::TransportIceSelectedTupleChange(t) => {
            let tuple = Some(build_tuple(fbb, t));
            let b = fb_wrt::IceSelectedTupleChangeNotification::create(
                fbb,
                &fb_wrt::IceSelectedTupleChangeNotificationArgs { tuple },
            );
            (
                E::TRANSPORT_ICE_SELECTED_TUPLE_CHANGE,
                B::WebRtcTransport_IceSelectedTupleChangeNotification,
                union(b),
            )
        }
        MediaEvent::TransportDtlsStateChange { state, reason } => {
            let reason = opt_str(fbb, reason.as_deref());
            let b = fb_wrt::DtlsStateChangeNotification::create(
                fbb,
                &fb_wrt::DtlsStateChangeNotificationArgs {
                    dtls_state: dtls_state_to(*state),
                    reason,
                },
            );
            (
                E::TRANSPORT_DTLS_STATE_CHANGE,
                B::WebRtcTransport_DtlsStateChangeNotification,
                union(b),
            )
        }
        MediaEvent::PlainTransportTuple { tuple, rtcp } => {
            let tuple = Some(build_tuple(fbb, tuple));
            let b = fb_pt::TupleNotification::create(
                fbb,
                &fb_pt::TupleNotificationArgs { tuple, rtcp: *rtcp },
            );
            (
                E::PLAINTRANSPORT_TUPLE,
                B::PlainTransport_TupleNotification,
                union(b),
            )
        }
        MediaEvent::ProducerScore(scores) => {
            let scores = Some(tables(fbb, scores, |fbb, (ssrc, rid, score)| {
                let rid = opt_str(fbb, rid.as_deref());
                fb_prod::Score::create(
                    fbb,
                    &fb_prod::ScoreArgs {
                        ssrc: *ssrc,
                        rid,
                        score: *score,
                    },
                )
            }));
            let b =
                fb_prod::ScoreNotification::create(fbb, &fb_prod::ScoreNotificationArgs { scores });
            (E::PRODUCER_SCORE, B::Producer_ScoreNotification, union(b))
        }
        MediaEvent::ConsumerScore(s) => {
            let b = build_consumer_score(fbb, s);
            (E::CONSUMER_SCORE, B::Consumer_ScoreNotification, union(b))
        }
        MediaEvent::ConsumerProducerPause => (E::CONSUMER_PRODUCER_PAUSE, B::NONE, None),
        MediaEvent::ConsumerProducerResume => (E::CONSUMER_PRODUCER_RESUME, B::NONE, None),
        MediaEvent::ConsumerProducerClose => (E::CONSUMER_PRODUCER_CLOSE, B::NONE, None),
        MediaEvent::ConsumerTransportClose => (E::CONSUMER_TRANSPORT_CLOSE, B::NONE, None),
        MediaEvent::ProducerTransportClose => (E::PRODUCER_TRANSPORT_CLOSE, B::NONE, None),
    }
}

fn build_log(fbb: &mut Fbb, l: &LogRecord) -> WIPOffset<UnionWIPOffset> {
    let target = Some(fbb.create_string(&l.target));
    let text = Some(fbb.create_string(&l.text));
    let level = match l.level {
        LogLevel::Trace => fb_log::Level::TRACE,
        LogLevel::Debug => fb_log::Level::DEBUG,
        LogLevel::Info => fb_log::Level::INFO,
        LogLevel::Warn => fb_log::Level::WARN,
        LogLevel::Error => fb_log::Level::ERROR,
    };
    fb_log::Log::create(
        fbb,
        &fb_log::LogArgs {
            level,
            target,
            text,
        },
    )
    .as_union_value()
}

// ---------------------------------------------------------------------------------------------
// Decoding

fn err(request_id: Option<RequestId>, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        request_id,
        reason: reason.into(),
    }
}

/// Decodes one frame payload (without its length prefix). Pure; never panics on any input.
pub fn decode_message(payload: &[u8]) -> Result<Message, DecodeError> {
    let msg = match fb_msg::root_as_message(payload) {
        Ok(m) => m,
        Err(e) => {
            return Err(err(
                peek_request_id(payload).map(RequestId),
                format!("invalid flatbuffer: {e}"),
            ));
        }
    };
    match msg.data_type() {
        fb_msg::Body::Request => {
            let r = msg
                .data_as_request()
                .ok_or_else(|| err(None, "request body missing"))?;
            decode_request(r).map(Message::Request)
        }
        fb_msg::Body::Response => {
            let r = msg
                .data_as_response()
                .ok_or_else(|| err(None, "response body missing"))?;
            decode_response(r).map(Message::Response)
        }
        fb_msg::Body::Notification => {
            let n = msg
                .data_as_notification()
                .ok_or_else(|| err(None, "notification body missing"))?;
            decode_notification(n).map(Message::Notification)
        }
        fb_msg::Body::Log => {
            let l = msg
                .data_as_log()
                .ok_or_else(|| err(None, "log body missing"))?;
            let level = match l.level() {
                fb_log::Level::TRACE => LogLevel::Trace,
                fb_log::Level::DEBUG => LogLevel::Debug,
                fb_log::Level::INFO => LogLevel::Info,
                fb_log::Level::WARN => LogLevel::Warn,
                fb_log::Level::ERROR => LogLevel::Error,
                other => return Err(err(None, format!("unknown log level {}", other.0))),
            };
            Ok(Message::Log(LogRecord {
                level,
                target: l.target().to_owned(),
                text: l.text().to_owned(),
            }))
        }
        other => Err(err(None, format!("unknown message type {}", other.0))),
    }
}

/// Result of decoding a nested part; the caller turns the reason into a [`DecodeError`].
type Dr<T> = Result<T, String>;

fn listen_info_from(l: fb_tr::ListenInfo<'_>) -> Dr<ListenInfo> {
    Ok(ListenInfo {
        protocol: protocol_from(l.protocol())?,
        ip: l.ip().to_owned(),
        announced_address: l.announced_address().map(str::to_owned),
        port: l.port(),
    })
}

fn listen_infos_from(v: Vector<'_, ForwardsUOffset<fb_tr::ListenInfo<'_>>>) -> Dr<Vec<ListenInfo>> {
    v.iter().map(listen_info_from).collect()
}

fn tuple_from(t: fb_tr::Tuple<'_>) -> Dr<TransportTuple> {
    Ok(TransportTuple {
        local_address: t.local_address().to_owned(),
        local_port: t.local_port(),
        remote_ip: t.remote_ip().to_owned(),
        remote_port: t.remote_port(),
        protocol: protocol_from(t.protocol())?,
    })
}

fn encoding_from(e: fb_rtp::RtpEncodingParameters<'_>) -> RtpEncodingParameters {
    RtpEncodingParameters {
        ssrc: e.ssrc(),
        rid: e.rid().map(str::to_owned),
        codec_payload_type: e.codec_payload_type(),
        rtx_ssrc: e.rtx_ssrc(),
        max_bitrate: e.max_bitrate(),
        scalability_mode: e.scalability_mode().map(str::to_owned),
        dtx: e.dtx(),
    }
}

fn rtp_parameters_from(p: fb_rtp::RtpParameters<'_>) -> RtpParameters {
    RtpParameters {
        mid: p.mid().map(str::to_owned),
        codecs: p
            .codecs()
            .iter()
            .map(|c| RtpCodecParameters {
                mime_type: c.mime_type().to_owned(),
                payload_type: c.payload_type(),
                clock_rate: c.clock_rate(),
                channels: c.channels(),
                parameters: c
                    .parameters()
                    .iter()
                    .map(|p| (p.name().to_owned(), p.value().to_owned()))
                    .collect(),
                rtcp_feedback: c
                    .rtcp_feedback()
                    .iter()
                    .map(|f| RtcpFeedback {
                        kind: f.type_().to_owned(),
                        parameter: f.parameter().to_owned(),
                    })
                    .collect(),
            })
            .collect(),
        header_extensions: p
            .header_extensions()
            .iter()
            .map(|h| RtpHeaderExtensionParameters {
                uri: h.uri().to_owned(),
                id: h.id(),
                encrypt: h.encrypt(),
            })
            .collect(),
        encodings: p.encodings().iter().map(encoding_from).collect(),
        rtcp: RtcpParameters {
            cname: p.rtcp().cname().to_owned(),
            reduced_size: p.rtcp().reduced_size(),
        },
    }
}

fn rtp_mapping_from(m: fb_rtp::RtpMapping<'_>) -> RtpMapping {
    RtpMapping {
        codecs: m
            .codecs()
            .iter()
            .map(|c| CodecMapping {
                payload_type: c.payload_type(),
                mapped_payload_type: c.mapped_payload_type(),
            })
            .collect(),
        encodings: m
            .encodings()
            .iter()
            .map(|e| EncodingMapping {
                ssrc: e.ssrc(),
                rid: e.rid().map(str::to_owned),
                scalability_mode: e.scalability_mode().map(str::to_owned),
                mapped_ssrc: e.mapped_ssrc(),
            })
            .collect(),
    }
}

fn srtp_parameters_from(s: fb_srtp::SrtpParameters<'_>) -> Dr<SrtpParameters> {
    Ok(SrtpParameters {
        crypto_suite: suite_from(s.crypto_suite())?,
        key_base64: s.key_base64().to_owned(),
    })
}

fn ice_parameters_from(p: fb_wrt::IceParameters<'_>) -> IceParameters {
    IceParameters {
        username_fragment: p.username_fragment().to_owned(),
        password: p.password().to_owned(),
        ice_lite: p.ice_lite(),
    }
}

fn ice_candidate_from(c: fb_wrt::IceCandidate<'_>) -> Dr<IceCandidate> {
    Ok(IceCandidate {
        foundation: c.foundation().to_owned(),
        priority: c.priority(),
        address: c.address().to_owned(),
        protocol: protocol_from(c.protocol())?,
        port: c.port(),
        kind: c.type_().to_owned(),
        tcp_type: c.tcp_type().map(str::to_owned),
    })
}

fn dtls_parameters_from(d: fb_wrt::DtlsParameters<'_>) -> Dr<DtlsParameters> {
    Ok(DtlsParameters {
        role: dtls_role_from(d.role())?,
        fingerprints: d
            .fingerprints()
            .iter()
            .map(|f| DtlsFingerprint {
                algorithm: f.algorithm().to_owned(),
                value: f.value().to_owned(),
            })
            .collect(),
    })
}

fn consumer_score_from(s: fb_cons::ConsumerScore<'_>) -> ConsumerScore {
    ConsumerScore {
        score: s.score(),
        producer_score: s.producer_score(),
    }
}

fn rtp_stream_stats_from(s: fb_rs::Stats<'_>) -> RtpStreamStats {
    RtpStreamStats {
        ssrc: s.ssrc(),
        rtx_ssrc: s.rtx_ssrc(),
        rid: s.rid().map(str::to_owned),
        mime_type: s.mime_type().to_owned(),
        packet_count: s.packet_count(),
        byte_count: s.byte_count(),
        packets_lost: s.packets_lost(),
        fraction_lost: s.fraction_lost(),
        jitter: s.jitter(),
        bitrate: s.bitrate(),
        score: s.score(),
        nack_count: s.nack_count(),
        nack_packet_count: s.nack_packet_count(),
        pli_count: s.pli_count(),
        fir_count: s.fir_count(),
        retransmitted_packet_count: s.retransmitted_packet_count(),
        round_trip_time: s.round_trip_time(),
        bad_sequence_dropped: s.bad_sequence_dropped(),
        resync_count: s.resync_count(),
    }
}

fn producer_ids_from(v: Vector<'_, ForwardsUOffset<&str>>) -> Vec<ProducerId> {
    v.iter().map(ProducerId::new).collect()
}

fn consumer_ids_from(v: Vector<'_, ForwardsUOffset<&str>>) -> Vec<ConsumerId> {
    v.iter().map(ConsumerId::new).collect()
}

fn decode_request(r: fb_req::Request<'_>) -> Result<Request, DecodeError> {
    let id = RequestId(r.id());
    let body = request_body_from(r).map_err(|reason| err(Some(id), reason))?;
    Ok(Request {
        id,
        handler_id: HandlerId::new(r.handler_id()),
        body,
    })
}

fn request_body_from(r: fb_req::Request<'_>) -> Dr<RequestBody> {
    use fb_req::Method as M;
    let missing = |method: Method| format!("{method} body missing");
    Ok(match r.method() {
        M::WORKER_CLOSE => RequestBody::WorkerClose,
        M::WORKER_DUMP => RequestBody::WorkerDump,
        M::WORKER_GET_RESOURCE_USAGE => RequestBody::WorkerGetResourceUsage,
        M::WORKER_GET_MEDIA_COUNTERS => RequestBody::WorkerGetMediaCounters,
        M::WORKER_UPDATE_SETTINGS => {
            let b = r
                .body_as_worker_update_settings_request()
                .ok_or_else(|| missing(Method::WorkerUpdateSettings))?;
            let log_level = b.log_level().map(str::parse::<LogLevel>).transpose()?;
            let log_targets = b
                .log_targets()
                .map(|v| v.iter().map(str::to_owned).collect());
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
        M::ROUTER_DUMP => RequestBody::RouterDump,
        M::ROUTER_CLOSE => RequestBody::RouterClose,
        M::WORKER_CREATE_WEBRTC_SERVER => {
            let b = r
                .body_as_web_rtc_server_create_request()
                .ok_or_else(|| missing(Method::WorkerCreateWebRtcServer))?;
            RequestBody::WorkerCreateWebRtcServer(WebRtcServerOptions {
                web_rtc_server_id: WebRtcServerId::new(b.web_rtc_server_id()),
                listen_infos: listen_infos_from(b.listen_infos())?,
            })
        }
        M::WEBRTC_SERVER_CLOSE => RequestBody::WebRtcServerClose,
        M::WEBRTC_SERVER_DUMP => RequestBody::WebRtcServerDump,
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
        M::TRANSPORT_CLOSE => RequestBody::TransportClose,
        M::TRANSPORT_DUMP => RequestBody::TransportDump,
        M::TRANSPORT_GET_STATS => RequestBody::TransportGetStats,
        M::TRANSPORT_CONNECT => {
            let params = if let Some(b) = r.body_as_web_rtc_transport_connect_request() {
                ConnectParams::WebRtc {
                    dtls_parameters: dtls_parameters_from(b.dtls_parameters())?,
                }
            } else if let Some(b) = r.body_as_plain_transport_connect_request() {
                ConnectParams::Plain {
                    ip: b.ip().map(str::to_owned),
                    port: b.port(),
                    rtcp_port: b.rtcp_port(),
                    srtp_parameters: b.srtp_parameters().map(srtp_parameters_from).transpose()?,
                }
            } else {
                return Err(missing(Method::TransportConnect));
            };
            RequestBody::TransportConnect(params)
        }
        M::TRANSPORT_RESTART_ICE => RequestBody::TransportRestartIce,
        M::TRANSPORT_SET_MAX_INCOMING_BITRATE => {
            let b = r
                .body_as_transport_set_max_incoming_bitrate_request()
                .ok_or_else(|| missing(Method::TransportSetMaxIncomingBitrate))?;
            RequestBody::TransportSetMaxIncomingBitrate(b.max_incoming_bitrate())
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
                    .iter()
                    .map(encoding_from)
                    .collect(),
                paused: b.paused(),
                ignore_dtx: b.ignore_dtx(),
            })
        }
        M::PRODUCER_CLOSE => RequestBody::ProducerClose,
        M::PRODUCER_DUMP => RequestBody::ProducerDump,
        M::PRODUCER_GET_STATS => RequestBody::ProducerGetStats,
        M::PRODUCER_PAUSE => RequestBody::ProducerPause,
        M::PRODUCER_RESUME => RequestBody::ProducerResume,
        M::CONSUMER_CLOSE => RequestBody::ConsumerClose,
        M::CONSUMER_DUMP => RequestBody::ConsumerDump,
        M::CONSUMER_GET_STATS => RequestBody::ConsumerGetStats,
        M::CONSUMER_PAUSE => RequestBody::ConsumerPause,
        M::CONSUMER_RESUME => RequestBody::ConsumerResume,
        M::CONSUMER_REQUEST_KEY_FRAME => RequestBody::ConsumerRequestKeyFrame,
        other => return Err(format!("unknown method {}", other.0)),
    })
}

fn decode_response(r: fb_resp::Response<'_>) -> Result<Response, DecodeError> {
    let id = RequestId(r.id());
    if !r.accepted() {
        let kind = match r.error() {
            fb_resp::ErrorKind::INVALID_ARGUMENT => ErrorKind::InvalidArgument,
            _ => ErrorKind::Failed,
        };
        let reason = r.reason().unwrap_or_default().to_owned();
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

fn response_body_from(r: fb_resp::Response<'_>) -> Dr<ResponseBody> {
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
                router_ids: d.router_ids().iter().map(RouterId::new).collect(),
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
            })
        }
        B::Worker_MediaCountersResponse => {
            let c = r
                .body_as_worker_media_counters_response()
                .ok_or_else(|| missing("media counters"))?;
            ResponseBody::MediaCounters(MediaCounters {
                unknown_socket: c.unknown_socket(),
                unknown_tuple: c.unknown_tuple(),
                rtp_bad_sequence: c.rtp_bad_sequence(),
                rtp_resyncs: c.rtp_resyncs(),
                dtls_failures: c.dtls_failures(),
            })
        }
        B::Router_DumpResponse => {
            let d = r
                .body_as_router_dump_response()
                .ok_or_else(|| missing("router dump"))?;
            ResponseBody::RouterDump(RouterDump {
                id: RouterId::new(d.id()),
                transport_ids: d.transport_ids().iter().map(str::to_owned).collect(),
            })
        }
        B::WebRtcServer_DumpResponse => {
            let d = r
                .body_as_web_rtc_server_dump_response()
                .ok_or_else(|| missing("webrtc server dump"))?;
            ResponseBody::WebRtcServerDump(WebRtcServerDump {
                id: WebRtcServerId::new(d.id()),
                listen_infos: listen_infos_from(d.listen_infos())?,
                transport_ids: d.transport_ids().iter().map(TransportId::new).collect(),
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
                    .iter()
                    .map(ice_candidate_from)
                    .collect::<Dr<_>>()?,
                ice_state: ice_state_from(d.ice_state())?,
                ice_selected_tuple: d.ice_selected_tuple().map(tuple_from).transpose()?,
                dtls_parameters: dtls_parameters_from(d.dtls_parameters())?,
                dtls_state: dtls_state_from(d.dtls_state())?,
                producer_ids: producer_ids_from(d.producer_ids()),
                consumer_ids: consumer_ids_from(d.consumer_ids()),
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
            ResponseBody::RtpStreamStats(s.stats().iter().map(rtp_stream_stats_from).collect())
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
            })
        }
        other => return Err(format!("unknown response body {}", other.0)),
    })
}

fn decode_notification(n: fb_notif::Notification<'_>) -> Result<Notification, DecodeError> {
    let event = event_from(n).map_err(|reason| err(None, reason))?;
    Ok(Notification {
        handler_id: HandlerId::new(n.handler_id()),
        event,
    })
}

fn event_from(n: fb_notif::Notification<'_>) -> Dr<Event> {
    use fb_notif::Event as E;
    let missing = |what: &str| format!("{what} body missing");
    Ok(match n.event() {
        E::WORKER_RUNNING => {
            let b = n
                .body_as_worker_running_notification()
                .ok_or_else(|| missing("worker.running"))?;
            Event::WorkerRunning(WorkerRunning {
                pid: b.pid(),
                core: b.core(),
                protocol_version: b.protocol_version(),
                version: b.version().to_owned(),
            })
        }
        E::WORKER_CHANNEL_ERROR => {
            let b = n
                .body_as_worker_channel_error_notification()
                .ok_or_else(|| missing("worker.channel_error"))?;
            Event::WorkerChannelError {
                reason: b.reason().to_owned(),
            }
        }
        E::TRANSPORT_ICE_STATE_CHANGE => {
            let b = n
                .body_as_web_rtc_transport_ice_state_change_notification()
                .ok_or_else(|| missing("transport.ice_state_change"))?;
            Event::Media(MediaEvent::TransportIceStateChange(ice_state_from(
                b.ice_state(),
            )?))
        }
        E::TRANSPORT_ICE_SELECTED_TUPLE_CHANGE => {
            let b = n
                .body_as_web_rtc_transport_ice_selected_tuple_change_notification()
                .ok_or_else(|| missing("transport.ice_selected_tuple_change"))?;
            Event::Media(MediaEvent::TransportIceSelectedTupleChange(tuple_from(
                b.tuple(),
            )?))
        }
        E::TRANSPORT_DTLS_STATE_CHANGE => {
            let b = n
                .body_as_web_rtc_transport_dtls_state_change_notification()
                .ok_or_else(|| missing("transport.dtls_state_change"))?;
            Event::Media(MediaEvent::TransportDtlsStateChange {
                state: dtls_state_from(b.dtls_state())?,
                reason: b.reason().map(str::to_owned),
            })
        }
        E::PLAINTRANSPORT_TUPLE => {
            let b = n
                .body_as_plain_transport_tuple_notification()
                .ok_or_else(|| missing("plain_transport.tuple"))?;
            Event::Media(MediaEvent::PlainTransportTuple {
                tuple: tuple_from(b.tuple())?,
                rtcp: b.rtcp(),
            })
        }
        E::PRODUCER_SCORE => {
            let b = n
                .body_as_producer_score_notification()
                .ok_or_else(|| missing("producer.score"))?;
            Event::Media(MediaEvent::ProducerScore(
                b.scores()
                    .iter()
                    .map(|s| (s.ssrc(), s.rid().map(str::to_owned), s.score()))
                    .collect(),
            ))
        }
        E::CONSUMER_SCORE => {
            let b = n
                .body_as_consumer_score_notification()
                .ok_or_else(|| missing("consumer.score"))?;
            Event::Media(MediaEvent::ConsumerScore(consumer_score_from(b)))
        }
        E::CONSUMER_PRODUCER_PAUSE => Event::Media(MediaEvent::ConsumerProducerPause),
        E::CONSUMER_PRODUCER_RESUME => Event::Media(MediaEvent::ConsumerProducerResume),
        E::CONSUMER_PRODUCER_CLOSE => Event::Media(MediaEvent::ConsumerProducerClose),
        E::CONSUMER_TRANSPORT_CLOSE => Event::Media(MediaEvent::ConsumerTransportClose),
        E::PRODUCER_TRANSPORT_CLOSE => Event::Media(MediaEvent::ProducerTransportClose),
        other => return Err(format!("unknown event {}", other.0)),
    })
}

/// Reads the id of a Request from a payload that failed verification, with every offset bounds
/// checked, so the receiver can still answer the request with an error. `None` when the bytes do
/// not lead to a Request table with an id field.
pub fn peek_request_id(buf: &[u8]) -> Option<u32> {
    // Message { data_type: u8 (field 0), data: offset (field 1) }; Body::Request = 1.
    // Request { id: u32 (field 0), ... }.
    let root = read_u32(buf, 0)? as usize;
    let data_type_pos = field_pos(buf, root, 0)?;
    if *buf.get(data_type_pos?)? != fb_msg::Body::Request.0 {
        return None;
    }
    let data_pos = field_pos(buf, root, 1)??;
    let request = data_pos.checked_add(read_u32(buf, data_pos)? as usize)?;
    match field_pos(buf, request, 0)? {
        Some(pos) => read_u32(buf, pos),
        None => Some(0), // id absent = default 0
    }
}

fn read_u32(buf: &[u8], pos: usize) -> Option<u32> {
    let b = buf.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u16(buf: &[u8], pos: usize) -> Option<u16> {
    let b = buf.get(pos..pos.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Absolute position of field `index` of the table at `table`: `Some(None)` when the vtable says
/// the field is absent, `None` when the bytes are out of bounds.
fn field_pos(buf: &[u8], table: usize, index: usize) -> Option<Option<usize>> {
    let soffset = read_u32(buf, table)? as i32 as i64;
    let vtable = usize::try_from(table as i64 - soffset).ok()?;
    let vtable_len = read_u16(buf, vtable)? as usize;
    let entry = 4 + 2 * index;
    if entry + 2 > vtable_len {
        return Some(None);
    }
    let off = read_u16(buf, vtable + entry)? as usize;
    if off == 0 {
        return Some(None);
    }
    Some(Some(table.checked_add(off)?))
}
