//! FlatBuffers <-> typed messages. The only place that touches generated code.

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, UnionWIPOffset, Vector, WIPOffset};

use crate::frame::MAX_FRAME_LEN;
use crate::generated::fbs::{
    log as fb_log, message as fb_msg, notification as fb_notif, request as fb_req,
    response as fb_resp, router as fb_router, worker as fb_worker,
};
use crate::ids::{HandlerId, RequestId, RouterId};
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
    #[error("{0} has no FlatBuffers encoding yet")]
    NotEncodable(&'static str),
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
        if let Some(what) = not_encodable(msg) {
            return Err(EncodeError::NotEncodable(what));
        }
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

// TEMPORARY: media-plane messages whose schemas are being written.
fn not_encodable(msg: &Message) -> Option<&'static str> {
    match msg {
        Message::Request(r) if r.body.method() as usize > Method::RouterClose as usize => {
            Some(r.body.method().as_str())
        }
        Message::Response(Response { result: Ok(b), .. })
            if !matches!(
                b,
                ResponseBody::None
                    | ResponseBody::WorkerDump(_)
                    | ResponseBody::ResourceUsage(_)
                    | ResponseBody::RouterDump(_)
            ) =>
        {
            Some("media response")
        }
        Message::Notification(Notification {
            event: Event::Media(_),
            ..
        }) => Some("media event"),
        _ => None,
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

fn build_request(fbb: &mut Fbb, r: &Request) -> WIPOffset<UnionWIPOffset> {
    let handler_id = Some(fbb.create_string(r.handler_id.as_str()));
    let (method, body_type, body) = match &r.body {
        RequestBody::WorkerClose => (fb_req::Method::WORKER_CLOSE, fb_req::Body::NONE, None),
        RequestBody::WorkerDump => (fb_req::Method::WORKER_DUMP, fb_req::Body::NONE, None),
        RequestBody::WorkerGetResourceUsage => (
            fb_req::Method::WORKER_GET_RESOURCE_USAGE,
            fb_req::Body::NONE,
            None,
        ),
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
                fb_req::Method::WORKER_UPDATE_SETTINGS,
                fb_req::Body::Worker_UpdateSettingsRequest,
                Some(b.as_union_value()),
            )
        }
        RequestBody::WorkerCreateRouter { router_id } => {
            let router_id = Some(fbb.create_string(router_id.as_str()));
            let b = fb_worker::CreateRouterRequest::create(
                fbb,
                &fb_worker::CreateRouterRequestArgs { router_id },
            );
            (
                fb_req::Method::WORKER_CREATE_ROUTER,
                fb_req::Body::Worker_CreateRouterRequest,
                Some(b.as_union_value()),
            )
        }
        RequestBody::RouterDump => (fb_req::Method::ROUTER_DUMP, fb_req::Body::NONE, None),
        RequestBody::RouterClose => (fb_req::Method::ROUTER_CLOSE, fb_req::Body::NONE, None),
        // TEMPORARY (media schemas in progress): refused by `encode_frame` before reaching here.
        _ => (fb_req::Method::ROUTER_CLOSE, fb_req::Body::NONE, None),
    };
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
            let (t, b) = match body {
                ResponseBody::None => (fb_resp::Body::NONE, None),
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
                    (fb_resp::Body::Worker_DumpResponse, Some(b.as_union_value()))
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
                    (
                        fb_resp::Body::Worker_ResourceUsageResponse,
                        Some(b.as_union_value()),
                    )
                }
                ResponseBody::RouterDump(d) => {
                    let id = Some(fbb.create_string(d.id.as_str()));
                    let transport_ids =
                        Some(strings(fbb, d.transport_ids.iter().map(String::as_str)));
                    let b = fb_router::DumpResponse::create(
                        fbb,
                        &fb_router::DumpResponseArgs { id, transport_ids },
                    );
                    (fb_resp::Body::Router_DumpResponse, Some(b.as_union_value()))
                }
                _ => (fb_resp::Body::NONE, None), // TEMPORARY, see not_encodable
            };
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

fn build_notification(fbb: &mut Fbb, n: &Notification) -> WIPOffset<UnionWIPOffset> {
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
            (
                fb_notif::Event::WORKER_RUNNING,
                fb_notif::Body::Worker_RunningNotification,
                b.as_union_value(),
            )
        }
        Event::WorkerChannelError { reason } => {
            let reason = Some(fbb.create_string(reason));
            let b = fb_worker::ChannelErrorNotification::create(
                fbb,
                &fb_worker::ChannelErrorNotificationArgs { reason },
            );
            (
                fb_notif::Event::WORKER_CHANNEL_ERROR,
                fb_notif::Body::Worker_ChannelErrorNotification,
                b.as_union_value(),
            )
        }
        // TEMPORARY, see not_encodable.
        Event::Media(_) => {
            let reason = Some(fbb.create_string(""));
            let b = fb_worker::ChannelErrorNotification::create(
                fbb,
                &fb_worker::ChannelErrorNotificationArgs { reason },
            );
            (
                fb_notif::Event::WORKER_CHANNEL_ERROR,
                fb_notif::Body::Worker_ChannelErrorNotification,
                b.as_union_value(),
            )
        }
    };
    fb_notif::Notification::create(
        fbb,
        &fb_notif::NotificationArgs {
            handler_id,
            event,
            body_type,
            body: Some(body),
        },
    )
    .as_union_value()
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

fn decode_request(r: fb_req::Request<'_>) -> Result<Request, DecodeError> {
    let id = RequestId(r.id());
    let missing = |what: &str| err(Some(id), format!("{what} body missing"));
    let body = match r.method() {
        fb_req::Method::WORKER_CLOSE => RequestBody::WorkerClose,
        fb_req::Method::WORKER_DUMP => RequestBody::WorkerDump,
        fb_req::Method::WORKER_GET_RESOURCE_USAGE => RequestBody::WorkerGetResourceUsage,
        fb_req::Method::WORKER_UPDATE_SETTINGS => {
            let b = r
                .body_as_worker_update_settings_request()
                .ok_or_else(|| missing("worker.update_settings"))?;
            let log_level = match b.log_level() {
                None => None,
                Some(s) => Some(s.parse::<LogLevel>().map_err(|e| err(Some(id), e))?),
            };
            let log_targets = b
                .log_targets()
                .map(|v| v.iter().map(str::to_owned).collect());
            RequestBody::WorkerUpdateSettings(UpdateSettings {
                log_level,
                log_targets,
            })
        }
        fb_req::Method::WORKER_CREATE_ROUTER => {
            let b = r
                .body_as_worker_create_router_request()
                .ok_or_else(|| missing("worker.create_router"))?;
            RequestBody::WorkerCreateRouter {
                router_id: RouterId::new(b.router_id()),
            }
        }
        fb_req::Method::ROUTER_DUMP => RequestBody::RouterDump,
        fb_req::Method::ROUTER_CLOSE => RequestBody::RouterClose,
        other => return Err(err(Some(id), format!("unknown method {}", other.0))),
    };
    Ok(Request {
        id,
        handler_id: HandlerId::new(r.handler_id()),
        body,
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
    let body = match r.body_type() {
        fb_resp::Body::NONE => ResponseBody::None,
        fb_resp::Body::Worker_DumpResponse => {
            let d = r
                .body_as_worker_dump_response()
                .ok_or_else(|| err(None, "dump missing"))?;
            ResponseBody::WorkerDump(WorkerDump {
                pid: d.pid(),
                core: d.core(),
                router_ids: d.router_ids().iter().map(RouterId::new).collect(),
            })
        }
        fb_resp::Body::Worker_ResourceUsageResponse => {
            let u = r
                .body_as_worker_resource_usage_response()
                .ok_or_else(|| err(None, "resource usage missing"))?;
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
        fb_resp::Body::Router_DumpResponse => {
            let d = r
                .body_as_router_dump_response()
                .ok_or_else(|| err(None, "dump missing"))?;
            ResponseBody::RouterDump(RouterDump {
                id: RouterId::new(d.id()),
                transport_ids: d.transport_ids().iter().map(str::to_owned).collect(),
            })
        }
        other => return Err(err(None, format!("unknown response body {}", other.0))),
    };
    Ok(Response {
        id,
        result: Ok(body),
    })
}

fn decode_notification(n: fb_notif::Notification<'_>) -> Result<Notification, DecodeError> {
    let event = match n.event() {
        fb_notif::Event::WORKER_RUNNING => {
            let b = n
                .body_as_worker_running_notification()
                .ok_or_else(|| err(None, "worker.running body missing"))?;
            Event::WorkerRunning(WorkerRunning {
                pid: b.pid(),
                core: b.core(),
                protocol_version: b.protocol_version(),
                version: b.version().to_owned(),
            })
        }
        fb_notif::Event::WORKER_CHANNEL_ERROR => {
            let b = n
                .body_as_worker_channel_error_notification()
                .ok_or_else(|| err(None, "worker.channel_error body missing"))?;
            Event::WorkerChannelError {
                reason: b.reason().to_owned(),
            }
        }
        other => return Err(err(None, format!("unknown event {}", other.0))),
    };
    Ok(Notification {
        handler_id: HandlerId::new(n.handler_id()),
        event,
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
