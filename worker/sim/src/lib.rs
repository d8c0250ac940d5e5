//! One simulation of the worker core, shared by its scenario tests (`worker/core/tests`), its
//! fuzz targets (`worker/core/fuzz`) and its benches (`worker/core/benches`):
//!
//! - [`Sim`]: a simulated network around one `WorkerCore`: real ICE (STUN from rtc-stun), real
//!   DTLS (rtc-dtls) and real SRTP on every client [`Peer`], a seeded [`Link`] per direction (an
//!   optional bottleneck with a drop-tail queue, random and burst RTP loss, latency; deliveries
//!   in time order, ties in send order), and simulated time. Subscriber peers can answer with
//!   transport-wide-cc feedback as Chrome does ([`Peer::twcc_ext`]).
//!   No sockets, no sleeps: everything runs as fast as the CPU allows and is reproducible.
//! - [`scenario`]: one VP8 publisher and N subscribers, and the RTP parameters they use.
//! - [`simulcast`]: a three-encoding VP8 simulcast publisher (by SSRC or RID) and what its
//!   subscribers received.
//! - [`bwe`]: bandwidth-estimation scenarios: a simulcast publisher at realistic bit rates and
//!   subscribers behind bottlenecks answering with transport-wide feedback; what each received
//!   per time window (encoding, bit rate, loss before and after repair).
//! - [`pipe`]: two simulations (two workers) in one time, their PipeTransports joined by a
//!   pair of links: a producer piped from one router to the other.
//! - [`svc`]: a VP9 L3T3 / L3T3_KEY publisher and what its SVC subscribers received.
//! - [`drive`]: what any driver of a `WorkerCore` needs: the core's configuration and DTLS
//!   identity, listen/socket descriptions, a request that checks its single reply, every
//!   transmit as datagrams, and STUN binding requests signed with a transport's ICE password.
//! - [`client`]: the project's one sans-IO WebRTC client transport (ICE, DTLS, SRTP), wrapped
//!   by [`Peer`] here and driven over real sockets by the load generator (`tests/loadgen`).
//! - [`stun`]: checks and answers signed with an ICE password.
//! - [`dtls`]: a client peer's DTLS side (client or server, honest or not about its
//!   certificate) and the SRTP session its handshake keys.
//!
//! Not for the core's unit tests (`worker/core/src`): this crate depends on the core, so types
//! match only in the core's integration tests, benches and the fuzz crate.

// Test support: a panic is the failure report, and simulated time starts at a real instant.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

pub mod bwe;
pub mod client;
pub mod data;
pub mod drive;
pub mod dtls;
mod link;
mod net;
pub mod pipe;
pub mod scenario;
pub mod simulcast;
pub mod stun;
pub mod svc;

pub use data::SctpPeer;
pub use dtls::DtlsSetup;
pub use link::{Link, LinkState, LinkStats, QueueLimit};
pub use net::{Peer, Sim};
pub use scenario::*;
