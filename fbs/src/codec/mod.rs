//! FlatBuffers <-> typed messages. The only place that touches generated code.
//!
//! One file per part of the model, each with its encoder (`build_*`) and decoder (`*_from`):
//! `request`, `response`, `notification` (events and logs), and the parts they share
//! (`rtp_parameters`, `transport`, `stats`, `enums`). The method enum, its schema value and the
//! bodyless requests come from the `methods!` declaration in `proto`; only bodies are written
//! here. Decoding is bounded by `budget` (shared FlatBuffers offsets cannot amplify a frame);
//! `peek` reads a request id out of a payload that failed verification.

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, UnionWIPOffset, Vector, WIPOffset};

mod budget;
mod counters;
mod data;
mod enums;
mod notification;
mod peek;
mod request;
mod response;
mod rtp_parameters;
mod stats;
mod transport;

use budget::{Bounded, BoundedStrs, Own, own, own_bytes};
use counters::*;
use data::*;
use enums::*;
use notification::*;
pub use peek::peek_request_id;
use request::*;
use response::*;
use rtp_parameters::*;
use stats::*;
use transport::*;

use crate::frame::MAX_FRAME_LEN;
use crate::generated::fbs::{
    consumer as fb_cons, log as fb_log, message as fb_msg, notification as fb_notif,
    plain_transport as fb_pt, producer as fb_prod, request as fb_req, response as fb_resp,
    router as fb_router, rtp_observer as fb_obs, rtp_parameters as fb_rtp, rtp_stream as fb_rs,
    srtp_parameters as fb_srtp, transport as fb_tr, web_rtc_server as fb_wrs,
    web_rtc_transport as fb_wrt, worker as fb_worker,
};
use crate::ids::{
    ConsumerId, HandlerId, ProducerId, RequestId, RouterId, RtpObserverId, TransportId,
    WebRtcServerId,
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

// ---------------------------------------------------------------------------------------------
// Decoding

fn err(request_id: Option<RequestId>, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        request_id,
        reason: reason.into(),
    }
}

/// Decodes one frame payload (without its length prefix). Pure; never panics on any input.
///
/// The decoded value is bounded by the payload's size (see `budget`): a payload whose shared
/// vector entries would decode into more is refused with the budget's reason.
pub fn decode_message(payload: &[u8]) -> Result<Message, DecodeError> {
    let (decoded, exhausted) = budget::with_budget(budget::for_payload(payload.len()), || {
        decode_unbounded(payload)
    });
    if exhausted {
        let request_id = match &decoded {
            Ok(Message::Request(r)) => Some(r.id),
            Ok(_) => None,
            Err(e) => e.request_id,
        };
        return Err(err(request_id, budget::EXCEEDED));
    }
    decoded
}

fn decode_unbounded(payload: &[u8]) -> Result<Message, DecodeError> {
    let msg = match fb_msg::root_as_message_with_opts(
        &budget::verifier_options(payload.len()),
        payload,
    ) {
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
                target: l.target().own(),
                text: l.text().own(),
            }))
        }
        other => Err(err(None, format!("unknown message type {}", other.0))),
    }
}

/// Result of decoding a nested part; the caller turns the reason into a [`DecodeError`].
type Dr<T> = Result<T, String>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataSend, ppid};
    use crate::ids::DataConsumerId;

    /// A `worker.dump` response whose `router_ids` are `entries` offsets to one string of
    /// `string_len` bytes: a frame of about `4 × entries + string_len` bytes that, decoded
    /// without a bound, is `entries × string_len` bytes of router ids (issue 3).
    fn amplifying_payload(entries: usize, string_len: usize) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        let shared = fbb.create_string(&"r".repeat(string_len));
        let router_ids = fbb.create_vector(&vec![shared; entries]);
        let dump = fb_worker::DumpResponse::create(
            &mut fbb,
            &fb_worker::DumpResponseArgs {
                pid: 1,
                core: 0,
                router_ids: Some(router_ids),
            },
        );
        let response = fb_resp::Response::create(
            &mut fbb,
            &fb_resp::ResponseArgs {
                id: 7,
                accepted: true,
                error: fb_resp::ErrorKind::NONE,
                reason: None,
                body_type: fb_resp::Body::Worker_DumpResponse,
                body: union(dump),
            },
        );
        let root = fb_msg::Message::create(
            &mut fbb,
            &fb_msg::MessageArgs {
                data_type: fb_msg::Body::Response,
                data: union(response),
            },
        );
        fb_msg::finish_message_buffer(&mut fbb, root);
        fbb.finished_data().to_vec()
    }

    /// The regression input of `fbs/fuzz/regression/channel_frames/`: chunk-size byte, then the
    /// frame. Before the bound, `run` decoded it into ~10 MB and panicked re-encoding that (over
    /// the 4 MiB frame limit).
    const REGRESSION: &[u8] =
        include_bytes!("../../fuzz/regression/channel_frames/amplifying-shared-router-ids");

    fn regression_input() -> Vec<u8> {
        let payload = amplifying_payload(10_000, 1024);
        let mut input = vec![0xff];
        input.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
        input.extend_from_slice(&payload);
        input
    }

    #[test]
    fn shared_vector_entries_cannot_amplify_a_frame() {
        if std::env::var_os("FERROSFU_BLESS_REGRESSION").is_some() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fuzz/regression/channel_frames/amplifying-shared-router-ids"
            );
            std::fs::write(path, regression_input()).expect("write the regression input");
        }
        // 10 000 entries × 1 KiB: a 41 KB frame, 10 MB decoded. The verifier's apparent-size
        // limit (the backstop) already refuses it.
        let payload = amplifying_payload(10_000, 1024);
        assert!(payload.len() < 64 * 1024);
        let e = decode_message(&payload).expect_err("amplifying frame refused");
        assert_eq!(e.reason, "invalid flatbuffer: Apparent size too large.\n");
        assert_eq!(e.request_id, None, "a response, not a request");
        assert_eq!(
            regression_input(),
            REGRESSION,
            "regression input is this frame"
        );

        // 300 entries × 1 KiB: a 2.2 KB frame that passes the verifier's limit (4 × the budget)
        // but decodes into more than twice its budget: the decode budget refuses it.
        let payload = amplifying_payload(300, 1024);
        let budget = budget::for_payload(payload.len());
        assert!(300 * 1024 > 2 * budget);
        let e = decode_message(&payload).expect_err("amplifying frame refused");
        assert_eq!(e.reason, budget::EXCEEDED);
        assert_eq!(e.request_id, None);
    }

    #[test]
    fn the_budget_stops_a_request_and_keeps_its_id() {
        // A worker.update_settings request whose log_targets share one string: refused with its
        // id, so the receiver can answer it with an error.
        let mut fbb = FlatBufferBuilder::new();
        let shared = fbb.create_string(&"t".repeat(1024));
        let targets = fbb.create_vector(&vec![shared; 300]);
        let body = fb_worker::UpdateSettingsRequest::create(
            &mut fbb,
            &fb_worker::UpdateSettingsRequestArgs {
                log_level: None,
                log_targets: Some(targets),
            },
        );
        let handler_id = fbb.create_string("");
        let request = fb_req::Request::create(
            &mut fbb,
            &fb_req::RequestArgs {
                id: 42,
                method: fb_req::Method::WORKER_UPDATE_SETTINGS,
                handler_id: Some(handler_id),
                body_type: fb_req::Body::Worker_UpdateSettingsRequest,
                body: union(body),
            },
        );
        let root = fb_msg::Message::create(
            &mut fbb,
            &fb_msg::MessageArgs {
                data_type: fb_msg::Body::Request,
                data: union(request),
            },
        );
        fb_msg::finish_message_buffer(&mut fbb, root);
        let e = decode_message(fbb.finished_data()).expect_err("refused");
        assert_eq!(e.reason, budget::EXCEEDED);
        assert_eq!(e.request_id, Some(RequestId(42)));
    }

    /// A DirectTransport dump (issue 14) whose `data_producer_ids` and `data_consumer_ids` are
    /// `entries` offsets each to one shared string of `string_len` bytes.
    fn amplifying_direct_transport_dump(entries: usize, string_len: usize) -> Vec<u8> {
        use crate::generated::fbs::direct_transport as fb_dt;
        let mut fbb = FlatBufferBuilder::new();
        let shared = fbb.create_string(&"d".repeat(string_len));
        let ids = fbb.create_vector(&vec![shared; entries]);
        let id = fbb.create_string("t1");
        let dump = fb_dt::DumpResponse::create(
            &mut fbb,
            &fb_dt::DumpResponseArgs {
                id: Some(id),
                max_message_size: 262_144,
                data_producer_ids: Some(ids),
                data_consumer_ids: Some(ids),
            },
        );
        let response = fb_resp::Response::create(
            &mut fbb,
            &fb_resp::ResponseArgs {
                id: 8,
                accepted: true,
                error: fb_resp::ErrorKind::NONE,
                reason: None,
                body_type: fb_resp::Body::DirectTransport_DumpResponse,
                body: union(dump),
            },
        );
        let root = fb_msg::Message::create(
            &mut fbb,
            &fb_msg::MessageArgs {
                data_type: fb_msg::Body::Response,
                data: union(response),
            },
        );
        fb_msg::finish_message_buffer(&mut fbb, root);
        fbb.finished_data().to_vec()
    }

    #[test]
    fn shared_data_channel_ids_cannot_amplify_a_frame() {
        // Small and honest-looking: decodes.
        let payload = amplifying_direct_transport_dump(4, 16);
        let Ok(Message::Response(r)) = decode_message(&payload) else {
            panic!("a small dump decodes");
        };
        let Ok(ResponseBody::DirectTransportDump(d)) = r.result else {
            panic!("a direct transport dump");
        };
        assert_eq!(d.data_producer_ids.len(), 4);
        assert_eq!(
            d.data_consumer_ids,
            vec![DataConsumerId::new("d".repeat(16)); 4]
        );

        // 150 entries × 1 KiB, in both fields: a 1.7 KB frame that passes the verifier's limit
        // but decodes into 300 KB, more than twice its budget: the budget refuses it.
        let payload = amplifying_direct_transport_dump(150, 1024);
        assert!(2 * 150 * 1024 > 2 * budget::for_payload(payload.len()));
        let e = decode_message(&payload).expect_err("amplifying frame refused");
        assert_eq!(e.reason, budget::EXCEEDED);
        assert_eq!(e.request_id, None);

        // 10 000 entries: the verifier's apparent-size limit refuses it first.
        let payload = amplifying_direct_transport_dump(10_000, 1024);
        let e = decode_message(&payload).expect_err("amplifying frame refused");
        assert_eq!(e.reason, "invalid flatbuffer: Apparent size too large.\n");
    }

    #[test]
    fn honest_data_channel_frames_near_the_limit_decode() {
        // Byte vectors are charged one budget byte per payload byte, u16 vectors 32 bytes per
        // 2-byte element (exactly their share): the largest honest frames still decode.
        let data: Vec<u8> = (0..MAX_FRAME_LEN - 1024).map(|i| (i % 251) as u8).collect();
        let send = Message::Request(Request {
            id: RequestId(5),
            handler_id: HandlerId::new("dp1"),
            body: RequestBody::DataProducerSend(DataSend {
                ppid: ppid::BINARY,
                data,
                subchannels: None,
                required_subchannel: None,
            }),
        });
        let frame = Encoder::new().frame(&send).expect("encodes");
        assert_eq!(decode_message(&frame[4..]), Ok(send));

        let subchannels: Vec<u16> = (0..(MAX_FRAME_LEN - 1024) / 2)
            .map(|i| (i % 65_536) as u16)
            .collect();
        let set = Message::Response(Response {
            id: RequestId(6),
            result: Ok(ResponseBody::Subchannels(subchannels)),
        });
        let frame = Encoder::new().frame(&set).expect("encodes");
        assert_eq!(decode_message(&frame[4..]), Ok(set));
    }

    #[test]
    fn honest_frames_of_the_same_shape_decode() {
        // Distinct strings: what the encoder produces for a real dump of 3 000 long router ids
        // (a 3 MB frame, near the limit).
        let router_ids: Vec<RouterId> = (0..3_000)
            .map(|i| RouterId::new(format!("{i:0>1024}")))
            .collect();
        let msg = Message::Response(Response {
            id: RequestId(7),
            result: Ok(ResponseBody::WorkerDump(WorkerDump {
                pid: 1,
                core: 0,
                router_ids,
            })),
        });
        let frame = Encoder::new().frame(&msg).expect("encodes");
        assert_eq!(decode_message(&frame[4..]), Ok(msg));
    }
}
