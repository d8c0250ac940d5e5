//! Keyframe requests toward a publisher, throttled.

use std::time::{Duration, Instant};

/// Keyframe requests toward a publisher (one per encoding), throttled by
/// `key_frame_request_delay`: a request inside the delay window of the last one sent is
/// remembered and sent when the window ends (at most one), unless a keyframe arrives first; a
/// keyframe closes the window (the next need is asked at once).
#[derive(Debug, Default)]
pub struct KeyFrameRequester {
    pub delay: Duration,
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyFrameRequester {
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            last_sent: None,
            pending: false,
        }
    }

    /// A keyframe is wanted now. Returns true when a request must be sent now.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(t) if now.saturating_duration_since(t) < self.delay => {
                self.pending = true;
                false
            }
            _ => {
                self.last_sent = Some(now);
                self.pending = false;
                true
            }
        }
    }

    /// A keyframe arrived: it answers what was asked, and the next need is new (asked at once,
    /// not held to the window of the last request: a consumer switching layers waits for one
    /// round trip, not up to `delay`).
    pub fn on_keyframe(&mut self) {
        self.pending = false;
        self.last_sent = None;
    }

    pub fn timeout(&self) -> Option<Instant> {
        if self.pending {
            self.last_sent.map(|t| t + self.delay)
        } else {
            None
        }
    }

    /// Whether a deferred request is due now.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.pending && self.timeout().is_some_and(|t| now >= t) {
            self.pending = false;
            self.last_sent = Some(now);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_requests_are_throttled() {
        let t0 = crate::test_epoch();
        let mut k = KeyFrameRequester::new(Duration::from_millis(1000));
        assert!(k.request(t0));
        assert!(!k.request(t0 + Duration::from_millis(10)));
        assert!(!k.request(t0 + Duration::from_millis(20)));
        assert_eq!(k.timeout(), Some(t0 + Duration::from_millis(1000)));
        assert!(!k.handle_timeout(t0 + Duration::from_millis(999)));
        assert!(k.handle_timeout(t0 + Duration::from_millis(1000)));
        assert_eq!(k.timeout(), None);
        // A keyframe answers; the next need is asked at once.
        assert!(!k.request(t0 + Duration::from_millis(1010)));
        k.on_keyframe();
        assert_eq!(k.timeout(), None);
        assert!(k.request(t0 + Duration::from_millis(1020)));
    }
}
