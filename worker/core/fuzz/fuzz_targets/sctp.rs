//! See `src/sctp.rs` for what this target drives and asserts.
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run sctp -- -max_total_time=60
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrosfu_worker_core_fuzz::sctp::run(data));
