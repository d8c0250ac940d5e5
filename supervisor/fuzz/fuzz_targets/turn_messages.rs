//! See `src/turn_messages.rs` for what this target drives and asserts.
//!
//!   cd supervisor/fuzz && cargo +nightly fuzz run turn_messages -- -max_total_time=60
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrosfu_supervisor_fuzz::turn_messages::run(data));
