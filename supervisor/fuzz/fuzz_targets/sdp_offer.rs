//! See `src/sdp_offer.rs` for what this target drives and asserts.
//!
//!   cd supervisor/fuzz && cargo +nightly fuzz run sdp_offer -- -max_total_time=60
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrosfu_supervisor_fuzz::sdp_offer::run(data));
