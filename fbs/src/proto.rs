//! Typed channel messages. These are what the supervisor and the worker exchange; the FlatBuffers
//! form exists only at the edge (see `codec`).

use crate::ids::{HandlerId, RequestId, RouterId};

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
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::WorkerClose,
        Method::WorkerDump,
        Method::WorkerGetResourceUsage,
        Method::WorkerUpdateSettings,
        Method::WorkerCreateRouter,
        Method::RouterDump,
        Method::RouterClose,
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
    WorkerUpdateSettings(UpdateSettings),
    WorkerCreateRouter { router_id: RouterId },
    RouterDump,
    RouterClose,
}

impl RequestBody {
    pub fn method(&self) -> Method {
        match self {
            RequestBody::WorkerClose => Method::WorkerClose,
            RequestBody::WorkerDump => Method::WorkerDump,
            RequestBody::WorkerGetResourceUsage => Method::WorkerGetResourceUsage,
            RequestBody::WorkerUpdateSettings(_) => Method::WorkerUpdateSettings,
            RequestBody::WorkerCreateRouter { .. } => Method::WorkerCreateRouter,
            RequestBody::RouterDump => Method::RouterDump,
            RequestBody::RouterClose => Method::RouterClose,
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
    RouterDump(RouterDump),
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
