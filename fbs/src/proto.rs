//! Typed channel messages. These are what the supervisor and the worker exchange; the FlatBuffers
//! form exists only at the edge (see `codec`).

use crate::counters::MediaCounters;
use crate::data::*;
use crate::ids::{HandlerId, ProducerId, RequestId, RouterId};
use crate::media::*;

/// One frame's content.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Request(Request),
    Response(Response),
    Notification(Notification),
    Log(LogRecord),
}

/// Declares the channel's request methods once. Each line is
///
/// ```text
/// Variant [(Body) | { field: Type, .. }] = "entity.verb", FLATBUFFERS_METHOD => Response;
/// ```
///
/// and derives [`Method`] (with `ALL` in declaration order, `as_str`, `Display`), [`RequestBody`]
/// (the method and its arguments in one value), `RequestBody::method`, the body of every method
/// that carries none (`RequestBody::bodyless`), the mapping to the schema's `request.Method`
/// (the codec then only writes the conversion of the bodies that exist), and one type per method
/// in [`requests`] implementing [`TypedRequest`] with `Response` the type an accepted request
/// answers: `()` for an empty answer, else a [`FromResponse`] type (one per [`ResponseBody`]
/// variant, derived by `responses!`, or a hand-written one where several shapes are possible,
/// such as [`AnyTransportDump`]).
///
/// Adding a method: the schema (`request.fbs`, and a body table if it has arguments), one line
/// here, its body's arms in `codec/request.rs` if it has one, the worker's handler and the
/// supervisor's call (see `notes-fbs.md`, "Where to add a channel method").
macro_rules! methods {
    ($(
        $(#[$doc:meta])*
        $variant:ident $( ( $body:ty ) )? $( { $($field:ident : $fty:ty),* $(,)? } )?
            = $name:literal, $fb:ident => $resp:ty;
    )*) => {
        /// The request methods, named `<entity>.<verb>`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Method {
            $($variant,)*
        }

        impl Method {
            pub const ALL: [Method; [$(Method::$variant),*].len()] = [$(Method::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Method::$variant => $name,)*
                }
            }

            /// The schema's value for this method.
            pub(crate) fn to_fb(self) -> crate::generated::fbs::request::Method {
                match self {
                    $(Method::$variant => crate::generated::fbs::request::Method::$fb,)*
                }
            }

            /// The method of a schema value; `None` for a value this build does not know.
            pub(crate) fn from_fb(m: crate::generated::fbs::request::Method) -> Option<Method> {
                match m {
                    $(crate::generated::fbs::request::Method::$fb => Some(Method::$variant),)*
                    _ => None,
                }
            }
        }

        /// The method and its arguments in one value, so a method can never travel with the
        /// wrong body.
        #[derive(Clone, Debug, PartialEq)]
        pub enum RequestBody {
            $(
                $(#[$doc])*
                $variant $( ( $body ) )? $( { $($field : $fty),* } )?,
            )*
        }

        impl RequestBody {
            pub fn method(&self) -> Method {
                match self {
                    $(RequestBody::$variant { .. } => Method::$variant,)*
                }
            }

            /// The body of `method` when it carries no arguments; `None` when it does.
            pub(crate) fn bodyless(method: Method) -> Option<RequestBody> {
                match method {
                    $(Method::$variant => methods!(@bodyless $variant $( ( $body ) )? $( { $($field)* } )?),)*
                }
            }
        }

        /// One type per method, for typed calls: `requests::WorkerDump` is `worker.dump`, and its
        /// [`TypedRequest::Response`] is what an accepted `worker.dump` answers.
        pub mod requests {
            #[allow(unused_imports)]
            use super::*;
            $(
                methods!(@struct $variant $( ( $body ) )? $( { $($field : $fty),* } )?);

                impl $variant {
                    pub const METHOD: Method = Method::$variant;
                }
            )*
        }

        $(
            impl From<requests::$variant> for RequestBody {
                fn from(r: requests::$variant) -> RequestBody {
                    methods!(@into r $variant $( ( $body ) )? $( { $($field)* } )?)
                }
            }

            impl TypedRequest for requests::$variant {
                type Response = $resp;
            }
        )*
    };
    (@struct $variant:ident) => {
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $variant;
    };
    (@struct $variant:ident ( $body:ty )) => {
        #[derive(Clone, Debug, PartialEq)]
        pub struct $variant(pub $body);
    };
    (@struct $variant:ident { $($field:ident : $fty:ty),* }) => {
        #[derive(Clone, Debug, PartialEq)]
        pub struct $variant { $(pub $field: $fty),* }
    };
    (@into $r:ident $variant:ident) => { { let _ = $r; RequestBody::$variant } };
    (@into $r:ident $variant:ident ( $body:ty )) => { RequestBody::$variant($r.0) };
    (@into $r:ident $variant:ident { $($field:ident)* }) => {
        RequestBody::$variant { $($field: $r.$field),* }
    };
    (@bodyless $variant:ident) => { Some(RequestBody::$variant) };
    (@bodyless $variant:ident ( $body:ty )) => { None };
    (@bodyless $variant:ident { $($field:ident)* }) => { None };
}

methods! {
    WorkerClose = "worker.close", WORKER_CLOSE => ();
    WorkerDump = "worker.dump", WORKER_DUMP => WorkerDump;
    WorkerGetResourceUsage = "worker.get_resource_usage", WORKER_GET_RESOURCE_USAGE
        => ResourceUsage;
    WorkerUpdateSettings(UpdateSettings) = "worker.update_settings", WORKER_UPDATE_SETTINGS
        => ();
    WorkerCreateRouter { router_id: RouterId } = "worker.create_router", WORKER_CREATE_ROUTER
        => ();
    RouterDump = "router.dump", ROUTER_DUMP => RouterDump;
    RouterClose = "router.close", ROUTER_CLOSE => ();
    WorkerCreateWebRtcServer(WebRtcServerOptions)
        = "worker.create_webrtc_server", WORKER_CREATE_WEBRTC_SERVER
        => WebRtcServerDump;
    WebRtcServerClose = "webrtc_server.close", WEBRTC_SERVER_CLOSE => ();
    WebRtcServerDump = "webrtc_server.dump", WEBRTC_SERVER_DUMP
        => WebRtcServerDump;
    RouterCreateWebRtcTransport(WebRtcTransportOptions)
        = "router.create_webrtc_transport", ROUTER_CREATE_WEBRTC_TRANSPORT
        => WebRtcTransportDump;
    RouterCreatePlainTransport(PlainTransportOptions)
        = "router.create_plain_transport", ROUTER_CREATE_PLAIN_TRANSPORT
        => PlainTransportDump;
    TransportClose = "transport.close", TRANSPORT_CLOSE => ();
    TransportDump = "transport.dump", TRANSPORT_DUMP => AnyTransportDump;
    TransportGetStats = "transport.get_stats", TRANSPORT_GET_STATS
        => TransportStats;
    TransportConnect(ConnectParams) = "transport.connect", TRANSPORT_CONNECT
        => AnyTransportDump;
    TransportRestartIce = "transport.restart_ice", TRANSPORT_RESTART_ICE
        => IceParameters;
    TransportSetMaxIncomingBitrate(u32)
        = "transport.set_max_incoming_bitrate", TRANSPORT_SET_MAX_INCOMING_BITRATE
        => ();
    TransportProduce(ProduceOptions) = "transport.produce", TRANSPORT_PRODUCE => ();
    TransportConsume(ConsumeOptions) = "transport.consume", TRANSPORT_CONSUME => Consumed;
    ProducerClose = "producer.close", PRODUCER_CLOSE => ();
    ProducerDump = "producer.dump", PRODUCER_DUMP => ProducerDump;
    ProducerGetStats = "producer.get_stats", PRODUCER_GET_STATS
        => Vec<RtpStreamStats>;
    ProducerPause = "producer.pause", PRODUCER_PAUSE => ();
    ProducerResume = "producer.resume", PRODUCER_RESUME => ();
    ConsumerClose = "consumer.close", CONSUMER_CLOSE => ();
    ConsumerDump = "consumer.dump", CONSUMER_DUMP => ConsumerDump;
    ConsumerGetStats = "consumer.get_stats", CONSUMER_GET_STATS
        => Vec<RtpStreamStats>;
    ConsumerPause = "consumer.pause", CONSUMER_PAUSE => ();
    ConsumerResume = "consumer.resume", CONSUMER_RESUME => ();
    ConsumerRequestKeyFrame = "consumer.request_key_frame", CONSUMER_REQUEST_KEY_FRAME
        => ();
    WorkerGetMediaCounters = "worker.get_media_counters", WORKER_GET_MEDIA_COUNTERS
        => Box<MediaCounters>;
    ConsumerSetPreferredLayers(ConsumerLayers)
        = "consumer.set_preferred_layers", CONSUMER_SET_PREFERRED_LAYERS
        => Option<ConsumerLayers>;
    ConsumerSetPriority(u8) = "consumer.set_priority", CONSUMER_SET_PRIORITY => ();
    RouterCreateActiveSpeakerObserver(ActiveSpeakerObserverOptions)
        = "router.create_active_speaker_observer", ROUTER_CREATE_ACTIVE_SPEAKER_OBSERVER
        => ();
    RouterCreateAudioLevelObserver(AudioLevelObserverOptions)
        = "router.create_audio_level_observer", ROUTER_CREATE_AUDIO_LEVEL_OBSERVER
        => ();
    RtpObserverClose = "rtp_observer.close", RTP_OBSERVER_CLOSE => ();
    RtpObserverPause = "rtp_observer.pause", RTP_OBSERVER_PAUSE => ();
    RtpObserverResume = "rtp_observer.resume", RTP_OBSERVER_RESUME => ();
    RtpObserverAddProducer { producer_id: ProducerId }
        = "rtp_observer.add_producer", RTP_OBSERVER_ADD_PRODUCER => ();
    RtpObserverRemoveProducer { producer_id: ProducerId }
        = "rtp_observer.remove_producer", RTP_OBSERVER_REMOVE_PRODUCER => ();
    TransportSetMaxOutgoingBitrate(u32)
        = "transport.set_max_outgoing_bitrate", TRANSPORT_SET_MAX_OUTGOING_BITRATE
        => ();
    TransportSetMinOutgoingBitrate(u32)
        = "transport.set_min_outgoing_bitrate", TRANSPORT_SET_MIN_OUTGOING_BITRATE
        => ();
    TransportEnableTraceEvent(Vec<TraceEventType>)
        = "transport.enable_trace_event", TRANSPORT_ENABLE_TRACE_EVENT
        => ();
    RouterCreateDirectTransport(DirectTransportOptions)
        = "router.create_direct_transport", ROUTER_CREATE_DIRECT_TRANSPORT
        => ();
    TransportProduceData(ProduceDataOptions)
        = "transport.produce_data", TRANSPORT_PRODUCE_DATA => DataProducerDump;
    TransportConsumeData(ConsumeDataOptions)
        = "transport.consume_data", TRANSPORT_CONSUME_DATA => DataConsumerDump;
    DataProducerClose = "data_producer.close", DATA_PRODUCER_CLOSE => ();
    DataProducerDump = "data_producer.dump", DATA_PRODUCER_DUMP => DataProducerDump;
    DataProducerGetStats = "data_producer.get_stats", DATA_PRODUCER_GET_STATS => DataStats;
    DataProducerPause = "data_producer.pause", DATA_PRODUCER_PAUSE => ();
    DataProducerResume = "data_producer.resume", DATA_PRODUCER_RESUME => ();
    /// A message from the supervisor into a `direct` DataProducer, fanned out to its
    /// DataConsumers as if an endpoint had sent it.
    DataProducerSend(DataSend) = "data_producer.send", DATA_PRODUCER_SEND => ();
    DataConsumerClose = "data_consumer.close", DATA_CONSUMER_CLOSE => ();
    DataConsumerDump = "data_consumer.dump", DATA_CONSUMER_DUMP => DataConsumerDump;
    DataConsumerGetStats = "data_consumer.get_stats", DATA_CONSUMER_GET_STATS => DataStats;
    DataConsumerPause = "data_consumer.pause", DATA_CONSUMER_PAUSE => ();
    DataConsumerResume = "data_consumer.resume", DATA_CONSUMER_RESUME => ();
    DataConsumerGetBufferedAmount
        = "data_consumer.get_buffered_amount", DATA_CONSUMER_GET_BUFFERED_AMOUNT => u32;
    DataConsumerSetBufferedAmountLowThreshold(u32)
        = "data_consumer.set_buffered_amount_low_threshold",
        DATA_CONSUMER_SET_BUFFERED_AMOUNT_LOW_THRESHOLD => ();
    /// A message from the supervisor to this DataConsumer's endpoint only (`sctp` consumers).
    DataConsumerSend(DataSend) = "data_consumer.send", DATA_CONSUMER_SEND => ();
    /// Replaces the subchannels; answers them as applied (sorted, deduplicated).
    DataConsumerSetSubchannels(Vec<u16>)
        = "data_consumer.set_subchannels", DATA_CONSUMER_SET_SUBCHANNELS => Vec<u16>;
}

/// What a request's handler id names: the part of its method's name before the dot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entity {
    Worker,
    WebRtcServer,
    Router,
    Transport,
    Producer,
    Consumer,
    RtpObserver,
    DataProducer,
    DataConsumer,
}

impl Entity {
    /// The entity named `prefix` in method names.
    pub fn from_prefix(prefix: &str) -> Option<Entity> {
        Some(match prefix {
            "worker" => Entity::Worker,
            "webrtc_server" => Entity::WebRtcServer,
            "router" => Entity::Router,
            "transport" => Entity::Transport,
            "producer" => Entity::Producer,
            "consumer" => Entity::Consumer,
            "rtp_observer" => Entity::RtpObserver,
            "data_producer" => Entity::DataProducer,
            "data_consumer" => Entity::DataConsumer,
            _ => return None,
        })
    }
}

impl Method {
    /// The entity this method is addressed to, from its `<entity>.<verb>` name (a worker
    /// routes a request by it, so a new method needs no routing of its own).
    pub fn entity(self) -> Entity {
        let prefix = self.as_str().split('.').next().unwrap_or_default();
        // Every declared name has a known prefix (tested): the fallback is never taken.
        Entity::from_prefix(prefix).unwrap_or(Entity::Worker)
    }
}

/// A request whose accepted response is known from its type: one per method in [`requests`],
/// derived from the `methods!` declaration. [`RequestBody`] itself is the untyped request (any
/// method, any body; its response is the whole [`ResponseBody`]).
pub trait TypedRequest: Into<RequestBody> {
    /// What an accepted request answers.
    type Response: FromResponse;
}

impl TypedRequest for RequestBody {
    type Response = ResponseBody;
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

/// Declares the accepted response bodies once, one line a [`ResponseBody`] variant:
///
/// ```text
/// Variant [(Type) | { field: Type, .. }],
/// ```
///
/// and derives the enum, `ResponseBody::kind` (the variant's name), and [`FromResponse`] for the
/// type a variant carries: `()` for the unit variant, `Type` for `Variant(Type)`, and for
/// `Variant { .. }` a struct of that name with those fields. Each type stands for one variant
/// only (a second would not compile), so a method's declared response type names its variant.
macro_rules! responses {
    ($(
        $(#[$doc:meta])*
        $variant:ident $( ( $ty:ty ) )? $( { $($field:ident : $fty:ty),* $(,)? } )?,
    )*) => {
        /// An accepted response's body.
        #[derive(Clone, Debug, PartialEq)]
        pub enum ResponseBody {
            $( $(#[$doc])* $variant $( ( $ty ) )? $( { $($field : $fty),* } )?, )*
        }

        impl ResponseBody {
            /// The variant's name (for errors and logs).
            pub fn kind(&self) -> &'static str {
                match self {
                    $(ResponseBody::$variant { .. } => stringify!($variant),)*
                }
            }
        }

        $( responses!(@from $(#[$doc])* $variant $( ( $ty ) )? $( { $($field : $fty),* } )?); )*
    };
    (@from $(#[$doc:meta])* $variant:ident) => {
        impl FromResponse for () {
            fn from_response(body: ResponseBody) -> Result<(), UnexpectedResponse> {
                match body {
                    ResponseBody::$variant => Ok(()),
                    other => Err(UnexpectedResponse(other.kind())),
                }
            }
        }
    };
    (@from $(#[$doc:meta])* $variant:ident ( $ty:ty )) => {
        impl FromResponse for $ty {
            fn from_response(body: ResponseBody) -> Result<$ty, UnexpectedResponse> {
                match body {
                    ResponseBody::$variant(r) => Ok(r),
                    other => Err(UnexpectedResponse(other.kind())),
                }
            }
        }
    };
    (@from $(#[$doc:meta])* $variant:ident { $($field:ident : $fty:ty),* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $variant {
            $(pub $field: $fty),*
        }

        impl FromResponse for $variant {
            fn from_response(body: ResponseBody) -> Result<$variant, UnexpectedResponse> {
                match body {
                    ResponseBody::$variant { $($field),* } => Ok($variant { $($field),* }),
                    other => Err(UnexpectedResponse(other.kind())),
                }
            }
        }
    };
}

responses! {
    None,
    WorkerDump(WorkerDump),
    ResourceUsage(ResourceUsage),
    /// Boxed: five histograms make it the largest body by far.
    MediaCounters(Box<MediaCounters>),
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
    /// `transport.consume`: the new consumer's state.
    Consumed {
        paused: bool,
        producer_paused: bool,
        score: ConsumerScore,
    },
    ConsumerDump(ConsumerDump),
    /// `consumer.set_preferred_layers`: the preference as applied; `None` for a simple consumer.
    PreferredLayers(Option<ConsumerLayers>),
    /// `transport.dump` of a DirectTransport.
    DirectTransportDump(DirectTransportDump),
    DataProducerDump(DataProducerDump),
    DataConsumerDump(DataConsumerDump),
    /// `data_producer.get_stats` / `data_consumer.get_stats`.
    DataStats(DataStats),
    /// `data_consumer.get_buffered_amount`: bytes.
    BufferedAmount(u32),
    /// `data_consumer.set_subchannels`: the subchannels as applied.
    Subchannels(Vec<u16>),
}

/// The typed form of an accepted response; derived by `responses!` for each [`ResponseBody`]
/// variant, written by hand only where one method answers several shapes.
pub trait FromResponse: Sized {
    /// The typed response; an error naming the body's kind when it is not this type's.
    fn from_response(body: ResponseBody) -> Result<Self, UnexpectedResponse>;
}

impl FromResponse for ResponseBody {
    fn from_response(body: ResponseBody) -> Result<ResponseBody, UnexpectedResponse> {
        Ok(body)
    }
}

/// An accepted response whose body is not the one the request's method answers; it holds the
/// body's kind ([`ResponseBody::kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unexpected response body {0}")]
pub struct UnexpectedResponse(pub &'static str);

/// `transport.dump` and `transport.connect`: the dump of whichever kind the transport is.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyTransportDump {
    WebRtc(Box<WebRtcTransportDump>),
    Plain(Box<PlainTransportDump>),
    Direct(Box<DirectTransportDump>),
}

impl FromResponse for AnyTransportDump {
    fn from_response(body: ResponseBody) -> Result<Self, UnexpectedResponse> {
        match body {
            ResponseBody::WebRtcTransportDump(d) => Ok(AnyTransportDump::WebRtc(Box::new(d))),
            ResponseBody::PlainTransportDump(d) => Ok(AnyTransportDump::Plain(Box::new(d))),
            ResponseBody::DirectTransportDump(d) => Ok(AnyTransportDump::Direct(Box::new(d))),
            other => Err(UnexpectedResponse(other.kind())),
        }
    }
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
    pub sockets: SocketCounters,
}

/// The worker shell's socket counters since it started (see `FBS.Worker.SocketCounters`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketCounters {
    pub udp_received: u64,
    pub udp_sent: u64,
    pub udp_behind_dropped: u64,
    pub udp_send_queue_full: u64,
    pub udp_send_errors: u64,
    pub udp_recv_errors: u64,
    pub no_socket: u64,
    pub tcp_unsent: u64,
    pub tcp_accepted: u64,
    pub tcp_rejected: u64,
    pub tcp_malformed: u64,
    pub tcp_overflow: u64,
    pub tcp_frames_received: u64,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::fbs::request::Method as FbMethod;

    #[test]
    fn every_schema_method_is_declared_once() {
        assert_eq!(Method::ALL.len(), FbMethod::ENUM_VALUES.len());
        for &fb in FbMethod::ENUM_VALUES {
            let m = Method::from_fb(fb).expect("declared in methods!");
            assert_eq!(m.to_fb(), fb);
        }
        let names: std::collections::BTreeSet<_> = Method::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(names.len(), Method::ALL.len(), "names are unique");
        assert_eq!(Method::from_fb(FbMethod(u8::MAX)), None);
    }

    #[test]
    fn every_method_names_a_known_entity() {
        for m in Method::ALL {
            let (prefix, verb) = m.as_str().split_once('.').expect("<entity>.<verb>");
            assert!(!verb.is_empty(), "{m}");
            assert_eq!(Entity::from_prefix(prefix), Some(m.entity()), "{m}");
        }
        assert_eq!(Method::TransportConnect.entity(), Entity::Transport);
        assert_eq!(Method::WorkerCreateRouter.entity(), Entity::Worker);
        assert_eq!(Method::WebRtcServerDump.entity(), Entity::WebRtcServer);
        assert_eq!(Method::DataProducerSend.entity(), Entity::DataProducer);
        assert_eq!(Method::DataConsumerSend.entity(), Entity::DataConsumer);
        use Entity as E;
        let all = [
            E::Worker,
            E::WebRtcServer,
            E::Router,
            E::Transport,
            E::Producer,
            E::Consumer,
            E::RtpObserver,
            E::DataProducer,
            E::DataConsumer,
        ];
        for e in all {
            // Every entity is addressed by some method.
            assert!(Method::ALL.iter().any(|m| m.entity() == e), "{e:?}");
        }
    }

    /// The typed response of `R` to `body`.
    fn answer<R: TypedRequest>(body: ResponseBody) -> Result<R::Response, UnexpectedResponse> {
        R::Response::from_response(body)
    }

    #[test]
    fn typed_requests_carry_their_method_and_response() {
        fn check<R: TypedRequest>(r: R) -> Method {
            let body: RequestBody = r.into();
            body.method()
        }
        assert_eq!(check(requests::WorkerDump), requests::WorkerDump::METHOD);
        assert_eq!(
            check(requests::WorkerCreateRouter {
                router_id: RouterId::new("r"),
            }),
            Method::WorkerCreateRouter
        );
        assert_eq!(
            check(requests::TransportSetMaxIncomingBitrate(1)),
            Method::TransportSetMaxIncomingBitrate
        );
        let counters = MediaCounters {
            rtp_resyncs: 3,
            ..MediaCounters::default()
        };
        assert_eq!(
            answer::<requests::WorkerGetMediaCounters>(ResponseBody::MediaCounters(Box::new(
                counters.clone()
            ))),
            Ok(Box::new(counters))
        );
        assert_eq!(
            answer::<requests::ProducerPause>(ResponseBody::None),
            Ok(())
        );
        assert_eq!(
            answer::<requests::ProducerDump>(ResponseBody::None),
            Err(UnexpectedResponse("None"))
        );
        assert_eq!(
            answer::<requests::ProducerGetStats>(ResponseBody::RtpStreamStats(vec![])),
            Ok(vec![])
        );
        let score = ConsumerScore::default();
        assert_eq!(
            answer::<requests::TransportConsume>(ResponseBody::Consumed {
                paused: true,
                producer_paused: false,
                score,
            }),
            Ok(Consumed {
                paused: true,
                producer_paused: false,
                score,
            })
        );
        assert_eq!(
            answer::<RequestBody>(ResponseBody::None),
            Ok(ResponseBody::None),
            "untyped: the caller matches"
        );
        assert_eq!(
            answer::<requests::DataConsumerGetBufferedAmount>(ResponseBody::BufferedAmount(7)),
            Ok(7)
        );
        let e = answer::<requests::TransportDump>(ResponseBody::None).unwrap_err();
        assert_eq!(e.to_string(), "unexpected response body None");
    }

    #[test]
    fn bodyless_is_derived_from_the_declaration() {
        for m in Method::ALL {
            if let Some(body) = RequestBody::bodyless(m) {
                assert_eq!(body.method(), m);
            }
        }
        assert_eq!(
            RequestBody::bodyless(Method::WorkerClose),
            Some(RequestBody::WorkerClose)
        );
        assert_eq!(RequestBody::bodyless(Method::TransportProduce), None);
    }
}
