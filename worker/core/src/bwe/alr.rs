//! Application-limited region (ALR): the transport sends well under its estimate (an SFU
//! usually does: its consumers' layers, not the link, set the rate). As libwebrtc's
//! `AlrDetector`: in ALR once what was sent over the last second is under [`START_RATIO`] of the
//! estimate, out of it once over [`END_RATIO`]. In ALR the acknowledged throughput says what the
//! application sent, not what the path carries, so an overuse backs off from the estimate
//! rather than from it (libwebrtc's ALR-limited backoff).

/// In ALR under this share of the estimate...
const START_RATIO: f64 = 0.65;
/// ... out of it over this one.
const END_RATIO: f64 = 0.80;

#[derive(Debug, Default)]
pub(crate) struct AlrDetector {
    in_alr: bool,
}

impl AlrDetector {
    /// The transport sent `sent_bps` over the last second with an estimate of `estimate_bps`:
    /// whether it is in ALR now.
    pub(crate) fn update(&mut self, sent_bps: u64, estimate_bps: u64) -> bool {
        let ratio = sent_bps as f64 / estimate_bps.max(1) as f64;
        if self.in_alr && ratio > END_RATIO {
            self.in_alr = false;
        } else if !self.in_alr && ratio < START_RATIO {
            self.in_alr = true;
        }
        self.in_alr
    }

    pub(crate) fn in_alr(&self) -> bool {
        self.in_alr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enters_under_65_percent_and_leaves_over_80() {
        let mut a = AlrDetector::default();
        assert!(!a.update(700_000, 1_000_000));
        assert!(a.update(600_000, 1_000_000));
        assert!(a.update(750_000, 1_000_000), "hysteresis");
        assert!(!a.update(850_000, 1_000_000));
        assert!(!a.in_alr());
    }
}
