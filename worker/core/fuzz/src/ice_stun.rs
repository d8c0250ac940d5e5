//! Arbitrary datagrams to the ICE-lite responder: no panic, and an unauthenticated datagram
//! never changes the ICE state.
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run ice_stun -- -max_total_time=60

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferrosfu_worker_core::{IceCredentials, IceLite, IceState, Protocol, Tuple, classify};

/// One input.
pub fn run(data: &[u8]) {
    static NOW: OnceLock<Instant> = OnceLock::new();
    let now = *NOW.get_or_init(Instant::now);
    let _ = classify(data);
    let crypto = rtc_stun::crypto::default_provider().expect("ring");
    let mut ice = IceLite::new(
        IceCredentials {
            ufrag: "u".into(),
            pwd: "p".repeat(22),
        },
        crypto,
    );
    let tuple = Tuple {
        local: "127.0.0.1:1".parse().expect("addr"),
        remote: "127.0.0.1:2".parse().expect("addr"),
        protocol: Protocol::Udp,
    };
    let _ = ice.handle_stun(data, tuple, now);
    // Random bytes cannot carry a valid HMAC-SHA1 under the local password.
    assert_eq!(ice.state(), IceState::New);
    ice.handle_timeout(now + Duration::from_secs(31));
}
