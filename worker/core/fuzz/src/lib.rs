//! The worker core's fuzz targets as plain functions: `fuzz_targets/<target>.rs` hands each
//! libFuzzer input to `<target>::run`, and `worker/core/tests/fuzz_regression.rs` (stable
//! `cargo test`) includes this file with `#[path]` and replays every file of
//! `regression/<target>/` through the same function.
//!
//! Only `arbitrary` (the version libfuzzer-sys re-exports), `ferrosfu-sim` (the worker core's
//! simulation: drive helpers, client peers) and crates the core itself depends on are used here,
//! so that the include compiles as part of the core's tests.

// Harnesses, not the core: they start simulated time at a real instant.
#![allow(clippy::disallowed_methods)]

pub mod core_datagram;
pub mod dtls_auth;
pub mod ice_stun;
pub mod recv_stream;
pub mod rtcp;
pub mod rtp;
pub mod sctp;
pub mod vp8;
pub mod vp9;

/// A target: the name of its fuzz binary and regression directory, and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 9] = [
    ("core_datagram", core_datagram::run),
    ("dtls_auth", dtls_auth::run),
    ("ice_stun", ice_stun::run),
    ("recv_stream", recv_stream::run),
    ("rtcp", rtcp::run),
    ("rtp", rtp::run),
    ("sctp", sctp::run),
    ("vp8", vp8::run),
    ("vp9", vp9::run),
];
