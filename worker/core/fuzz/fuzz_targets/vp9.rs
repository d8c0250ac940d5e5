//! See `src/vp9.rs` for what this target drives and asserts.
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run vp9 -- -max_total_time=60
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrosfu_worker_core_fuzz::vp9::run(data));
