//! Property tests: every typed message survives encode -> frame -> decode unchanged, and no byte
//! sequence (truncated, oversized, garbage) makes the decoder panic.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ferrosfu_fbs::*;
use proptest::prelude::*;

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

fn request_body() -> impl Strategy<Value = RequestBody> {
    prop_oneof![
        Just(RequestBody::WorkerClose),
        Just(RequestBody::WorkerDump),
        Just(RequestBody::WorkerGetResourceUsage),
        (
            proptest::option::of(level()),
            proptest::option::of(proptest::collection::vec(text(), 0..4))
        )
            .prop_map(|(log_level, log_targets)| {
                RequestBody::WorkerUpdateSettings(UpdateSettings {
                    log_level,
                    log_targets,
                })
            }),
        text().prop_map(|id| RequestBody::WorkerCreateRouter {
            router_id: RouterId::new(id)
        }),
        Just(RequestBody::RouterDump),
        Just(RequestBody::RouterClose),
    ]
}

fn response_body() -> impl Strategy<Value = ResponseBody> {
    prop_oneof![
        Just(ResponseBody::None),
        (
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(text(), 0..5)
        )
            .prop_map(|(pid, core, ids)| ResponseBody::WorkerDump(WorkerDump {
                pid,
                core,
                router_ids: ids.into_iter().map(RouterId::new).collect(),
            })),
        proptest::array::uniform9(any::<u64>()).prop_map(|a| {
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
            })
        }),
        (text(), proptest::collection::vec(text(), 0..3)).prop_map(|(id, transport_ids)| {
            ResponseBody::RouterDump(RouterDump {
                id: RouterId::new(id),
                transport_ids,
            })
        }),
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
        (level(), text(), text()).prop_map(|(level, target, text)| Message::Log(LogRecord {
            level,
            target,
            text
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

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
        let _ = decode_message(payload);
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
