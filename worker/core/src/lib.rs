//! The worker's media engine, sans IO: no sockets, no async runtime, no clock.
//!
//! # Drive contract
//!
//! The IO shell (the `ferrosfu-worker` binary) owns the channel fds, the sockets and the clock. It
//! drives a [`WorkerCore`] like this, and nothing else:
//!
//! 1. Feed exactly one [`Input`] with [`WorkerCore::handle_input`], passing the current time:
//!    a channel request ([`Input::Command`], [`Input::CommandWithSockets`]), a datagram
//!    ([`Input::Datagram`], bytes borrowed for the call) or [`Input::Timeout`].
//! 2. Drain [`WorkerCore::poll_transmit`] until it returns `None`: each [`Transmit`] is appended
//!    to a buffer the shell owns (one datagram, or a GSO batch to one destination when
//!    `segment_size` is set); send it from `tuple.local` to `tuple.remote`.
//! 3. Drain [`WorkerCore::poll_output`] until it returns `None`, acting on each [`Output`]:
//!    - [`Output::Reply`]: encode the response and write it to the channel;
//!    - [`Output::Notify`]: encode the notification and write it to the channel;
//!    - [`Output::ReleaseSockets`]: close these sockets (after step 2, so a transport's last
//!      datagrams, such as its DTLS close_notify, left first);
//!    - [`Output::Closed`]: the worker was closed by `worker.close`; flush the channel and exit 0.
//! 4. Sleep until the earliest of: new input, or [`WorkerCore::poll_timeout`] (then feed
//!    [`Input::Timeout`]).
//!
//! Requests that need the operating system (`worker.get_resource_usage`,
//! `worker.update_settings`) are answered by the shell and never reach the core.
//!
//! Errors follow three tiers: peer input is dropped and counted, a bad control request gets a
//! typed error reply ([`ferrosfu_fbs::ErrorKind`]), a broken invariant panics with the reason so
//! the supervisor restarts the worker.

mod bwe;
mod consumer;
mod control;
mod data;
mod demux;
mod media;
mod observers;
mod producer;
mod proto;
mod router;
mod rtp_observer;
mod sctp;
mod stats;
mod streams;
mod tables;
mod transmit;
mod transport;
mod units;
mod worker_core;

pub use bwe::{BandwidthUsage, BweUpdate, PacketResult, SendSideBwe};
pub use observers::{ActiveSpeakerObserver, AudioLevelEvent, AudioLevelObserver, audio_level_of};
pub use proto::dtls::{DtlsIdentity, dtls_profile, fingerprint};
pub use proto::ice::{
    CONSENT_TIMEOUT, IceCredentials, IceDrop, IceEvent, IceLite, IceState, IceStats, Protocol,
    StunOutcome, Tuple,
};
pub use proto::packet::{PacketKind, classify};
pub use proto::rtcp::{ReportBlock, Rtcp, build as build_rtcp, parse as parse_rtcp};
pub use proto::rtp::{
    Codec, OwnExts, Rewrite, RtpError, RtpHeader, build_packet, is_keyframe, write_rewritten,
};
pub use proto::srtp::{SrtpDrop, SrtpProfile, SrtpSession, SrtpSetupError, SrtpStats};
pub use proto::twcc::TwccFeedback;
pub use proto::vp8::{PictureIds, Vp8Descriptor};
pub use proto::vp9::{Vp9Descriptor, Vp9ScalabilityStructure};
pub use router::Router;
pub use sctp::{
    Dcep, DcepError, DcepOpen, DcepReliability, MAX_QUEUED_EVENTS as SCTP_MAX_QUEUED_EVENTS,
    SctpAssociation, SctpConfig, SctpCounters, SctpEvent, SctpState, SendError as SctpSendError,
    StreamParams as SctpStreamParams,
};
pub use sctp::{PPID_BINARY, PPID_BINARY_EMPTY, PPID_DCEP, PPID_STRING, PPID_STRING_EMPTY};
pub use streams::keyframe::KeyFrameRequester;
pub use streams::layers::{Changes, Decision, LayerSelector, MAX_SPATIAL_LAYERS};
pub use streams::recv::{NtpClock, RecvStream, RecvVerdict};
pub use streams::retransmit::{PacketStore, RetransmitBuffer};
pub use streams::send::SendStream;
pub use streams::seq_map::SeqMap;
pub use streams::svc::{MAX_SVC_LAYERS, SvcContext, SvcVerdict};
pub use streams::vp8::{Vp8Context, Vp8Verdict};
pub use transport::BoundSocket;
pub use units::{Pt, SeqNo, Ssrc};
/// A starting `Instant` for unit tests (the core itself never reads a clock: `clippy.toml`).
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}

pub use control::{SocketRequest, sockets_needed};
pub use stats::{Buckets, CoreStats, JITTER_BOUNDS, LOSS_BOUNDS, RTT_BOUNDS, ReportHistograms};
pub use transmit::{MAX_TRANSMIT_BYTES, Transmit};
pub use worker_core::{CoreConfig, Input, Output, TICK, WorkerCore};
