//! Property tests: every typed message survives encode -> frame -> decode unchanged, and no byte
//! sequence (truncated, oversized, garbage) makes the decoder panic.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ferrosfu_fbs::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

mod strategies;
use strategies::*;

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
        ResponseBody::DirectTransportDump(_) => 15,
        ResponseBody::DataProducerDump(_) => 16,
        ResponseBody::DataConsumerDump(_) => 17,
        ResponseBody::DataStats(_) => 18,
        ResponseBody::BufferedAmount(_) => 19,
        ResponseBody::Subchannels(_) => 20,
    }
}
const RESPONSE_VARIANTS: usize = 21;

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
        MediaEvent::TransportSctpStateChange(_) => 19,
        MediaEvent::DataConsumerBufferedAmountLow(_) => 20,
        MediaEvent::DataConsumerSctpSendBufferFull => 21,
        MediaEvent::DataConsumerDataProducerPause => 22,
        MediaEvent::DataConsumerDataProducerResume => 23,
        MediaEvent::DataConsumerDataProducerClose => 24,
        MediaEvent::DataConsumerTransportClose => 25,
        MediaEvent::DataProducerTransportClose => 26,
        MediaEvent::DataConsumerMessage { .. } => 27,
    }
}
const MEDIA_EVENT_VARIANTS: usize = 28;

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
            sctp: None,
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

// ---------------------------------------------------------------------------------------------
// Data channels (issue 14)

#[test]
fn data_strategies_cover_options_and_edges() {
    use std::collections::HashSet;
    let requests = sample(request_body(), 2000);
    let mut seen: HashSet<&str> = HashSet::new();
    for r in &requests {
        match r {
            RequestBody::TransportProduceData(o) => {
                seen.insert(match o.sctp_stream_parameters {
                    None => "produce: no stream",
                    Some(_) => "produce: stream",
                });
                seen.insert(match o.data_type {
                    DataType::Sctp => "produce: sctp",
                    DataType::Direct => "produce: direct",
                });
            }
            RequestBody::TransportConsumeData(o) => {
                seen.insert(match &o.subchannels {
                    None => "consume: no subchannels",
                    Some(v) if v.is_empty() => "consume: empty subchannels",
                    Some(_) => "consume: subchannels",
                });
                if let Some(p) = o.sctp_stream_parameters {
                    if p.max_packet_life_time == Some(u16::MAX) || p.max_retransmits.is_some() {
                        seen.insert("stream: partial reliability");
                    }
                }
            }
            RequestBody::DataProducerSend(s) | RequestBody::DataConsumerSend(s) => {
                seen.insert(match s.data.len() {
                    0 => "send: empty",
                    1..=1023 => "send: small",
                    _ => "send: KiB",
                });
                seen.insert(match s.required_subchannel {
                    None => "send: no required subchannel",
                    Some(u16::MAX) => "send: required subchannel max",
                    Some(_) => "send: required subchannel",
                });
                if s.subchannels.as_ref().is_some_and(|v| v.len() > 100) {
                    seen.insert("send: many subchannels");
                }
                if s.ppid == u32::MAX {
                    seen.insert("send: ppid max");
                }
            }
            RequestBody::RouterCreateWebRtcTransport(o) => {
                seen.insert(match o.sctp {
                    None => "webrtc: no sctp",
                    Some(_) => "webrtc: sctp",
                });
            }
            _ => {}
        }
    }
    for r in sample(response_body(), 2000) {
        match r {
            ResponseBody::WebRtcTransportDump(d) => {
                seen.insert(match (d.sctp_parameters, d.sctp_state) {
                    (None, None) => "dump: no sctp",
                    (Some(_), Some(_)) => "dump: sctp",
                    _ => "dump: half sctp",
                });
                if !d.data_producer_ids.is_empty() && !d.data_consumer_ids.is_empty() {
                    seen.insert("dump: data ids");
                }
            }
            ResponseBody::DataStats(s) if s.bytes == u64::MAX => {
                seen.insert("stats: max");
            }
            ResponseBody::DirectTransportDump(d) if d.data_producer_ids.is_empty() => {
                seen.insert("direct dump: no data producers");
            }
            _ => {}
        }
    }
    let expected = [
        "produce: no stream",
        "produce: stream",
        "produce: sctp",
        "produce: direct",
        "consume: no subchannels",
        "consume: empty subchannels",
        "consume: subchannels",
        "stream: partial reliability",
        "send: empty",
        "send: small",
        "send: KiB",
        "send: no required subchannel",
        "send: required subchannel max",
        "send: required subchannel",
        "send: many subchannels",
        "send: ppid max",
        "webrtc: no sctp",
        "webrtc: sctp",
        "dump: no sctp",
        "dump: sctp",
        "dump: half sctp",
        "dump: data ids",
        "stats: max",
        "direct dump: no data producers",
    ];
    let missing: Vec<_> = expected.iter().filter(|e| !seen.contains(*e)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}

#[test]
fn a_data_send_of_256_kib_round_trips() {
    let data: Vec<u8> = (0..262_144u32).map(|i| (i % 251) as u8).collect();
    for (i, body) in [
        RequestBody::DataProducerSend(DataSend {
            ppid: ppid::BINARY,
            data: data.clone(),
            subchannels: None,
            required_subchannel: None,
        }),
        RequestBody::DataConsumerSend(DataSend {
            ppid: ppid::BINARY,
            data: data.clone(),
            subchannels: Some(vec![0, 7, u16::MAX]),
            required_subchannel: Some(u16::MAX),
        }),
    ]
    .into_iter()
    .enumerate()
    {
        let msg = Message::Request(Request {
            id: RequestId(u32::MAX - i as u32),
            handler_id: HandlerId::new("dp1"),
            body,
        });
        let decoded = round_trip(&msg);
        let Message::Request(Request {
            body: RequestBody::DataProducerSend(s) | RequestBody::DataConsumerSend(s),
            ..
        }) = &decoded
        else {
            panic!("a data send: {decoded:?}");
        };
        assert_eq!(s.data.len(), 262_144);
        assert_eq!(decoded, msg);
    }
}

#[test]
fn a_data_consumer_message_with_utf8_text_round_trips() {
    let text = "héllo wörld ✓ — 数据通道 🚀";
    let msg = Message::Notification(Notification {
        handler_id: HandlerId::from(&DataConsumerId::new("dc1")),
        event: Event::Media(MediaEvent::DataConsumerMessage {
            ppid: ppid::STRING,
            data: text.as_bytes().to_vec(),
        }),
    });
    let decoded = round_trip(&msg);
    assert_eq!(decoded, msg);
    let Message::Notification(Notification {
        event: Event::Media(MediaEvent::DataConsumerMessage { ppid: 51, data }),
        ..
    }) = decoded
    else {
        panic!("a data consumer message with ppid 51");
    };
    assert_eq!(String::from_utf8(data).unwrap(), text);
}

#[test]
fn missing_data_request_bodies_are_errors_with_the_request_id() {
    let stream = Some(SctpStreamParameters::reliable(3));
    // Each bodied data method with its body's union tag (fbs/schemas/request.fbs, Body).
    let cases = [
        (
            RequestBody::TransportProduceData(ProduceDataOptions {
                data_producer_id: DataProducerId::new("dp1"),
                data_type: DataType::Sctp,
                sctp_stream_parameters: stream,
                label: "chat".into(),
                protocol: String::new(),
                paused: false,
            }),
            20,
        ),
        (
            RequestBody::RouterCreateDirectTransport(DirectTransportOptions {
                transport_id: TransportId::new("t1"),
                max_message_size: 1000,
            }),
            19,
        ),
        (
            RequestBody::TransportConsumeData(ConsumeDataOptions {
                data_consumer_id: DataConsumerId::new("dc1"),
                data_producer_id: DataProducerId::new("dp1"),
                data_type: DataType::Sctp,
                sctp_stream_parameters: stream,
                label: "chat".into(),
                protocol: String::new(),
                paused: false,
                subchannels: None,
            }),
            21,
        ),
        (RequestBody::DataProducerSend(data_send_of(b"hi")), 22),
        (RequestBody::DataConsumerSend(data_send_of(b"hi")), 22),
        (
            RequestBody::DataConsumerSetBufferedAmountLowThreshold(1000),
            23,
        ),
        (RequestBody::DataConsumerSetSubchannels(vec![1, 2]), 24),
    ];
    for (body, tag) in cases {
        let method = body.method();
        let msg = Message::Request(Request {
            id: RequestId(0xD47A),
            handler_id: HandlerId::new("h1"),
            body,
        });
        assert_eq!(round_trip(&msg), msg);
        let want = format!("{method} body missing");
        // NONE, and a body type this build does not know.
        for to in [0, 200] {
            let found = with_byte_replaced(&msg, tag, to).into_iter().any(|r| {
                matches!(r, Err(e) if e.request_id == Some(RequestId(0xD47A)) && e.reason == want)
            });
            assert!(
                found,
                "{method}: body type {to} must be refused with the id"
            );
        }
    }
}

fn data_send_of(data: &[u8]) -> DataSend {
    DataSend {
        ppid: ppid::BINARY,
        data: data.to_vec(),
        subchannels: None,
        required_subchannel: None,
    }
}

#[test]
fn unknown_data_enum_values_are_errors() {
    // An unknown data type in a request: refused with the id.
    let msg = Message::Request(Request {
        id: RequestId(606),
        handler_id: HandlerId::new("t1"),
        body: RequestBody::TransportProduceData(ProduceDataOptions {
            data_producer_id: DataProducerId::new("dp1"),
            data_type: DataType::Direct, // = 1 on the wire
            sctp_stream_parameters: None,
            label: String::new(),
            protocol: String::new(),
            paused: false,
        }),
    });
    let found = with_byte_replaced(&msg, 1, 66).into_iter().any(|r| {
        matches!(r, Err(e) if e.request_id == Some(RequestId(606))
            && e.reason.contains("unknown data producer type 66"))
    });
    assert!(found, "an unknown data type must be refused with the id");

    // An unknown SCTP state in an event.
    let msg = Message::Notification(Notification {
        handler_id: HandlerId::new("t1"),
        event: Event::Media(MediaEvent::TransportSctpStateChange(SctpState::Closed)), // = 4
    });
    let found = with_byte_replaced(&msg, 4, 240)
        .into_iter()
        .any(|r| matches!(r, Err(e) if e.reason.contains("unknown sctp state 240")));
    assert!(found, "an unknown SCTP state must be refused");
}

#[test]
fn a_direct_transport_dump_answers_transport_dump() {
    let dump = DirectTransportDump {
        id: TransportId::new("t1"),
        max_message_size: 262_144,
        data_producer_ids: vec![DataProducerId::new("dp1")],
        data_consumer_ids: vec![],
    };
    let msg = Message::Response(Response {
        id: RequestId(3),
        result: Ok(ResponseBody::DirectTransportDump(dump.clone())),
    });
    let Message::Response(Response {
        result: Ok(body), ..
    }) = round_trip(&msg)
    else {
        panic!("an accepted response");
    };
    assert_eq!(
        <requests::TransportDump as TypedRequest>::Response::from_response(body),
        Ok(AnyTransportDump::Direct(Box::new(dump)))
    );
}

#[test]
fn request_id_is_peeked_from_a_data_send_whose_bytes_fail_verification() {
    let msg = Message::Request(Request {
        id: RequestId(88),
        handler_id: HandlerId::new("dp1"),
        body: RequestBody::DataProducerSend(data_send_of(b"payload!")),
    });
    let frame = Encoder::new().frame(&msg).unwrap();
    let payload = &frame[4..];
    // Claim the data vector runs past the end of the payload: verification fails, the id stays.
    let at = payload.windows(8).position(|w| w == b"payload!").unwrap();
    let mut broken = payload.to_vec();
    broken[at - 4..at].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = decode_message(&broken).unwrap_err();
    assert_eq!(e.request_id, Some(RequestId(88)));
    assert!(e.reason.starts_with("invalid flatbuffer"), "{}", e.reason);
}
