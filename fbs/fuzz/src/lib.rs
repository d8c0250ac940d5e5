//! The channel codec's fuzz target as a plain function: `fuzz_targets/channel_frames.rs` hands
//! each libFuzzer input to `channel_frames::run`, and `fbs/tests/fuzz_regression.rs` (stable
//! `cargo test`) includes this file with `#[path]` and replays every file of
//! `regression/channel_frames/` through the same function.

pub mod channel_frames;

/// A target: the name of its fuzz binary and regression directory, and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 1] = [("channel_frames", channel_frames::run)];
