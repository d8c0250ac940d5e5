//! The supervisor's fuzz targets as plain functions: `fuzz_targets/<target>.rs` hands each
//! libFuzzer input to `<target>::run`, and `supervisor/tests/fuzz_regression.rs` (stable
//! `cargo test`) includes this file with `#[path]` and replays every file of
//! `regression/<target>/` through the same function.

pub mod sdp_offer;
pub mod turn_messages;

/// A target: the name of its fuzz binary and regression directory, and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 2] = [
    ("turn_messages", turn_messages::run),
    ("sdp_offer", sdp_offer::run),
];
