//! Arbitrary bytes as a decrypted compound RTCP packet: `parse_rtcp` never panics, and whatever
//! it returns, `build_rtcp` serializes without panicking into a compound that parses again.
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run rtcp -- -max_total_time=60

use ferrosfu_worker_core::{build_rtcp, parse_rtcp};

/// One input.
pub fn run(data: &[u8]) {
    let Ok(items) = parse_rtcp(data) else { return };
    let wire = build_rtcp(&items, 0x5EED_0001);
    if !items.is_empty() {
        let back = parse_rtcp(&wire).expect("a compound the core built parses");
        assert_eq!(back.len(), items.len(), "{items:?}");
    }
}
