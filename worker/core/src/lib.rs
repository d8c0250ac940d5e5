//! The worker's media engine, sans IO: no sockets, no async runtime, no clock.
//!
//! # Drive contract
//!
//! The IO shell (the `ferrosfu-worker` binary) owns the channel fds, the sockets and the clock. It
//! drives a [`WorkerCore`] like this, and nothing else:
//!
//! 1. Feed exactly one [`Input`] with [`WorkerCore::handle_input`], passing the current time.
//! 2. Drain [`WorkerCore::poll_output`] until it returns `None`, acting on each [`Output`]:
//!    - [`Output::Reply`]: encode the response and write it to the channel;
//!    - [`Output::Notify`]: encode the notification and write it to the channel;
//!    - [`Output::Closed`]: the worker was closed by `worker.close`; flush the channel and exit 0.
//! 3. Sleep until the earliest of: new input, or [`WorkerCore::poll_timeout`] (then feed
//!    [`Input::Timeout`]).
//!
//! Requests that need the operating system (`worker.get_resource_usage`,
//! `worker.update_settings`) are answered by the shell and never reach the core.
//!
//! Errors follow three tiers: peer input is dropped and counted, a bad control request gets a
//! typed error reply ([`ferrosfu_fbs::ErrorKind`]), a broken invariant panics with the reason so
//! the supervisor restarts the worker.

mod consumer;
mod dtls;
mod ice;
mod keyframe;
mod packet;
mod producer;
mod retransmit;
mod router;
mod rtcp;
mod rtp;
mod send_stream;
mod seq;
mod srtp;
mod stream;
mod transport;
mod twcc;
mod units;
mod worker;

pub use dtls::{DtlsIdentity, fingerprint};
pub use ice::{
    CONSENT_TIMEOUT, IceCredentials, IceDrop, IceEvent, IceLite, IceState, IceStats, Protocol,
    StunOutcome, Tuple,
};
pub use keyframe::KeyFrameRequester;
pub use packet::{PacketKind, classify};
pub use retransmit::{PacketStore, RetransmitBuffer};
pub use router::Router;
pub use rtcp::{ReportBlock, Rtcp, build as build_rtcp, parse as parse_rtcp};
pub use rtp::{
    Codec, OwnExts, Rewrite, RtpError, RtpHeader, build_packet, is_keyframe, write_rewritten,
};
pub use send_stream::SendStream;
pub use srtp::{SrtpDrop, SrtpProfile, SrtpSession, SrtpSetupError, SrtpStats};
pub use stream::{NtpClock, RecvStream, RecvVerdict};
pub use transport::BoundSocket;
pub use twcc::TwccFeedback;
pub use units::{Pt, SeqNo, Ssrc};
/// A starting `Instant` for unit tests (the core itself never reads a clock: `clippy.toml`).
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}

pub use worker::{
    CoreConfig, CoreStats, Input, Output, SocketRequest, TICK, Transmit, WorkerCore, sockets_needed,
};
