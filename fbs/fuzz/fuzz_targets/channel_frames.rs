//! See `src/channel_frames.rs` for what this target drives and asserts.
//!
//!   cd fbs/fuzz && cargo +nightly fuzz run channel_frames -- -max_total_time=60
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrosfu_fbs_fuzz::channel_frames::run(data));
