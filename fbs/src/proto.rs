//! Typed channel messages. These are what the supervisor and the worker exchange; the FlatBuffers
//! form exists only at the edge (see `codec`).

use crate::ids::{HandlerId, RequestId, RouterId};
use crate::media::*;

/// One frame's content.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Request(Request),
    Response(Response),
    Notification(Notification),
    Log(LogRecord),
}

/// The request methods, named `<entity>.<verb>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    WorkerClose,
    WorkerDump,
    WorkerGetResourceUsage,
    WorkerUpdateSettings,
    WorkerCreateRouter,
    RouterDump,
    RouterClose,
    WorkerCreateWebRtcServer,
    WebRtcServerClose,
    WebRtcServerDump,
    RouterCreateWebRtcTransport,
    RouterCreatePlainTransport,
    TransportClose,
    TransportDump,
    TransportGetStats,
    TransportConnect,
    TransportRestartIce,
    TransportSetMaxIncomingBitrate,
    TransportProduce,
    TransportConsume,
    ProducerClose,
    ProducerDump,
    ProducerGetStats,
    ProducerPause,
    ProducerResume,
    ConsumerClose,
    ConsumerDump,
    ConsumerGetStats,
    ConsumerPause,
    ConsumerResume,
    ConsumerRequestKeyFrame,
    WorkerGetMediaCounters,
}

impl Method {
    pub const ALL: [Method; 32] = [
        Method::WorkerClose,
        Method::WorkerDump,
        Method::WorkerGetResourceUsage,
        Method::WorkerUpdateSettings,
        Method::WorkerCreateRouter,
        Method::RouterDump,
        Method::RouterClose,
        Method::WorkerCreateWebRtcServer,
        Method::WebRtcServerClose,
        Method::WebRtcServerDump,
        Method::RouterCreateWebRtcTransport,
        Method::RouterCreatePlainTransport,
        Method::TransportClose,
        Method::TransportDump,
        Method::TransportGetStats,
        Method::TransportConnect,
        Method::TransportRestartIce,
        Method::TransportSetMaxIncomingBitrate,
        Method::TransportProduce,
        Method::TransportConsume,
        Method::ProducerClose,
        Method::ProducerDump,
        Method::ProducerGetStats,
        Method::ProducerPause,
        Method::ProducerResume,
        Method::ConsumerClose,
        Method::ConsumerDump,
        Method::ConsumerGetStats,
        Method::ConsumerPause,
        Method::ConsumerResume,
        Method::ConsumerRequestKeyFrame,
        Method::WorkerGetMediaCounters,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::WorkerClose => "worker.close",
            Method::WorkerDump => "worker.dump",
            Method::WorkerGetResourceUsage => "worker.get_resource_usage",
            Method::WorkerUpdateSettings => "worker.update_settings",
            Method::WorkerCreateRouter => "worker.create_router",
            Method::RouterDump => "router.dump",
            Method::RouterClose => "router.close",
            Method::WorkerCreateWebRtcServer => "worker.create_webrtc_server",
            Method::WebRtcServerClose => "webrtc_server.close",
            Method::WebRtcServerDump => "webrtc_server.dump",
            Method::RouterCreateWebRtcTransport => "router.create_webrtc_transport",
            Method::RouterCreatePlainTransport => "router.create_plain_transport",
            Method::TransportClose => "transport.close",
            Method::TransportDump => "transport.dump",
            Method::TransportGetStats => "transport.get_stats",
            Method::TransportConnect => "transport.connect",
            Method::TransportRestartIce => "transport.restart_ice",
            Method::TransportSetMaxIncomingBitrate => "transport.set_max_incoming_bitrate",
            Method::TransportProduce => "transport.produce",
            Method::TransportConsume => "transport.consume",
            Method::ProducerClose => "producer.close",
            Method::ProducerDump => "producer.dump",
            Method::ProducerGetStats => "producer.get_stats",
            Method::ProducerPause => "producer.pause",
            Method::ProducerResume => "producer.resume",
            Method::ConsumerClose => "consumer.close",
            Method::ConsumerDump => "consumer.dump",
            Method::ConsumerGetStats => "consumer.get_stats",
            Method::ConsumerPause => "consumer.pause",
            Method::ConsumerResume => "consumer.resume",
            Method::ConsumerRequestKeyFrame => "consumer.request_key_frame",
            Method::WorkerGetMediaCounters => "worker.get_media_counters",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub id: RequestId,
    /// `""` for worker methods, the router id for router methods.
    pub handler_id: HandlerId,
    pub body: RequestBody,
}

/// The method and its arguments in one value, so a method can never travel with the wrong body.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestBody {
    WorkerClose,
    WorkerDump,
    WorkerGetResourceUsage,
    WorkerGetMediaCounters,
    WorkerUpdateSettings(UpdateSettings),
    WorkerCreateRouter { router_id: RouterId },
    RouterDump,
    RouterClose,
    WorkerCreateWebRtcServer(WebRtcServerOptions),
    WebRtcServerClose,
    WebRtcServerDump,
    RouterCreateWebRtcTransport(WebRtcTransportOptions),
    RouterCreatePlainTransport(PlainTransportOptions),
    TransportClose,
    TransportDump,
    TransportGetStats,
    TransportConnect(ConnectParams),
    TransportRestartIce,
    TransportSetMaxIncomingBitrate(u32),
    TransportProduce(ProduceOptions),
    TransportConsume(ConsumeOptions),
    ProducerClose,
    ProducerDump,
    ProducerGetStats,
    ProducerPause,
    ProducerResume,
    ConsumerClose,
    ConsumerDump,
    ConsumerGetStats,
    ConsumerPause,
    ConsumerResume,
    ConsumerRequestKeyFrame,
}

impl RequestBody {
    pub fn method(&self) -> Method {
        match self {
            RequestBody::WorkerClose => Method::WorkerClose,
            RequestBody::WorkerDump => Method::WorkerDump,
            RequestBody::WorkerGetResourceUsage => Method::WorkerGetResourceUsage,
            RequestBody::WorkerGetMediaCounters => Method::WorkerGetMediaCounters,
            RequestBody::WorkerUpdateSettings(_) => Method::WorkerUpdateSettings,
            RequestBody::WorkerCreateRouter { .. } => Method::WorkerCreateRouter,
            RequestBody::RouterDump => Method::RouterDump,
            RequestBody::RouterClose => Method::RouterClose,
            RequestBody::WorkerCreateWebRtcServer(_) => Method::WorkerCreateWebRtcServer,
            RequestBody::WebRtcServerClose => Method::WebRtcServerClose,
            RequestBody::WebRtcServerDump => Method::WebRtcServerDump,
            RequestBody::RouterCreateWebRtcTransport(_) => Method::RouterCreateWebRtcTransport,
            RequestBody::RouterCreatePlainTransport(_) => Method::RouterCreatePlainTransport,
            RequestBody::TransportClose => Method::TransportClose,
            RequestBody::TransportDump => Method::TransportDump,
            RequestBody::TransportGetStats => Method::TransportGetStats,
            RequestBody::TransportConnect(_) => Method::TransportConnect,
            RequestBody::TransportRestartIce => Method::TransportRestartIce,
            RequestBody::TransportSetMaxIncomingBitrate(_) => {
                Method::TransportSetMaxIncomingBitrate
            }
            RequestBody::TransportProduce(_) => Method::TransportProduce,
            RequestBody::TransportConsume(_) => Method::TransportConsume,
            RequestBody::ProducerClose => Method::ProducerClose,
            RequestBody::ProducerDump => Method::ProducerDump,
            RequestBody::ProducerGetStats => Method::ProducerGetStats,
            RequestBody::ProducerPause => Method::ProducerPause,
            RequestBody::ProducerResume => Method::ProducerResume,
            RequestBody::ConsumerClose => Method::ConsumerClose,
            RequestBody::ConsumerDump => Method::ConsumerDump,
            RequestBody::ConsumerGetStats => Method::ConsumerGetStats,
            RequestBody::ConsumerPause => Method::ConsumerPause,
            RequestBody::ConsumerResume => Method::ConsumerResume,
            RequestBody::ConsumerRequestKeyFrame => Method::ConsumerRequestKeyFrame,
        }
    }
}

/// `worker.update_settings`: each field left `None` is unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateSettings {
    pub log_level: Option<LogLevel>,
    /// Targets logged at `log_level`; others at `warn`. Empty = every target at `log_level`.
    pub log_targets: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub id: RequestId,
    pub result: Result<ResponseBody, RequestFailure>,
}

/// Why a request was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFailure {
    pub kind: ErrorKind,
    pub reason: String,
}

impl RequestFailure {
    pub fn invalid_argument(reason: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidArgument,
            reason: reason.into(),
        }
    }
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Failed,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.reason)
    }
}

/// Control errors are typed: the caller sent something wrong, or the operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArgument,
    Failed,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Failed => "failed",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ResponseBody {
    None,
    WorkerDump(WorkerDump),
    ResourceUsage(ResourceUsage),
    MediaCounters(MediaCounters),
    RouterDump(RouterDump),
    WebRtcServerDump(WebRtcServerDump),
    /// `router.create_webrtc_transport`, `transport.dump` of a WebRtcTransport.
    WebRtcTransportDump(WebRtcTransportDump),
    /// `router.create_plain_transport`, `transport.connect` / `transport.dump` of a PlainTransport.
    PlainTransportDump(PlainTransportDump),
    TransportStats(TransportStats),
    /// `transport.restart_ice`: the new local ICE parameters.
    IceParameters(IceParameters),
    ProducerDump(ProducerDump),
    /// `producer.get_stats` / `consumer.get_stats`: one entry per stream.
    RtpStreamStats(Vec<RtpStreamStats>),
    /// `transport.consume`.
    Consumed {
        paused: bool,
        producer_paused: bool,
        score: ConsumerScore,
    },
    ConsumerDump(ConsumerDump),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerDump {
    pub pid: u32,
    pub core: u32,
    pub router_ids: Vec<RouterId>,
}

/// getrusage(RUSAGE_SELF) of a worker; times in microseconds, `ru_maxrss` in KiB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceUsage {
    pub ru_utime: u64,
    pub ru_stime: u64,
    pub ru_maxrss: u64,
    pub ru_minflt: u64,
    pub ru_majflt: u64,
    pub ru_inblock: u64,
    pub ru_oublock: u64,
    pub ru_nvcsw: u64,
    pub ru_nivcsw: u64,
}

/// `worker.get_media_counters`: what the worker's media engine counted since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaCounters {
    /// Datagrams that reached no socket / no transport.
    pub unknown_socket: u64,
    pub unknown_tuple: u64,
    /// RTP packets not forwarded for their sequence number (RFC 3550 A.1), all producers.
    pub rtp_bad_sequence: u64,
    /// Producer streams resynchronised to a restarted sender's new sequence space.
    pub rtp_resyncs: u64,
    /// DTLS handshakes that failed (a certificate that does not match the signaled
    /// fingerprint among them).
    pub dtls_failures: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterDump {
    pub id: RouterId,
    pub transport_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub handler_id: HandlerId,
    pub event: Event,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// First message of a worker: its channel is up.
    WorkerRunning(WorkerRunning),
    /// The worker received bytes on its channel that it could not decode (no request id could
    /// be read, so there is no response to carry the error).
    WorkerChannelError { reason: String },
    /// Transport, producer and consumer events (the handler id names the entity).
    Media(MediaEvent),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerRunning {
    pub pid: u32,
    pub core: u32,
    pub protocol_version: u32,
    pub version: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            other => Err(format!(
                "unknown log level {other:?} (trace|debug|info|warn|error)"
            )),
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log line from a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub level: LogLevel,
    pub target: String,
    pub text: String,
}
