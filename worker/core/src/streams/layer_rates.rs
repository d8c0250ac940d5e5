//! What each layer of a producer costs: the bitrate of every (spatial, temporal) layer it
//! receives — the encoding and VP8 TID for simulcast, the VP9 spatial and temporal ids for SVC —
//! measured over a 1 s window, for the bandwidth allocator. A layer that went quiet (its
//! encoding paused by the publisher, e.g. for dynacast) keeps its last measured bitrate, so an
//! allocator can still ask for it back.

use std::time::{Duration, Instant};

use crate::streams::layers::MAX_SPATIAL_LAYERS;
use crate::streams::recv::RateMeter;

/// The window the meters measure over.
const WINDOW: Duration = Duration::from_secs(1);

/// Temporal layers measured per spatial layer (higher TIDs count as the last).
pub(crate) const MAX_TEMPORAL_LAYERS: usize = 4;

#[derive(Debug, Default)]
pub(crate) struct LayerRates {
    meters: [[RateMeter; MAX_TEMPORAL_LAYERS]; MAX_SPATIAL_LAYERS],
    last: [[u32; MAX_TEMPORAL_LAYERS]; MAX_SPATIAL_LAYERS],
    /// When each spatial layer's first packet came: a meter younger than its window measures
    /// less than a window's worth, so its rate is scaled up.
    first: [Option<Instant>; MAX_SPATIAL_LAYERS],
}

impl LayerRates {
    /// A packet of `bytes` of layer (`spatial`, `temporal`) arrived.
    pub(crate) fn add(&mut self, spatial: u8, temporal: u8, bytes: usize, now: Instant) {
        let s = usize::from(spatial).min(MAX_SPATIAL_LAYERS - 1);
        let t = usize::from(temporal).min(MAX_TEMPORAL_LAYERS - 1);
        self.meters[s][t].add(bytes, now);
        self.first[s].get_or_insert(now);
    }

    /// Bit/s of layer (`spatial`, `temporal`) alone (not the layers under it); a quiet layer's
    /// last measured rate; 0 for a layer never seen.
    pub(crate) fn layer(&mut self, spatial: usize, temporal: usize, now: Instant) -> u32 {
        let (Some(m), Some(l)) = (
            self.meters
                .get_mut(spatial)
                .and_then(|m| m.get_mut(temporal)),
            self.last.get_mut(spatial).and_then(|l| l.get_mut(temporal)),
        ) else {
            return 0;
        };
        let mut b = m.bitrate(now);
        // Young: scale to the window (at least 100 ms of it, one bucket).
        if let Some(first) = self.first[spatial] {
            let age = now.saturating_duration_since(first);
            if age < WINDOW {
                let age = age.max(WINDOW / 10).as_secs_f64();
                b = (f64::from(b) * WINDOW.as_secs_f64() / age) as u32;
            }
        }
        if b > 0 {
            *l = b;
        }
        *l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_each_layer_and_remembers_a_quiet_one() {
        #[allow(clippy::disallowed_methods)] // tests: an arbitrary origin
        let t0 = Instant::now();
        let mut r = LayerRates::default();
        for i in 0..30u64 {
            let now = t0 + Duration::from_millis(33 * i);
            r.add(0, 0, 500, now);
            r.add(1, (i % 2) as u8, 1000, now);
        }
        // 990 ms old: scaled to the second.
        let now = t0 + Duration::from_millis(990);
        let scaled = |bits: u32| (f64::from(bits) / 0.99) as u32;
        assert_eq!(r.layer(0, 0, now), scaled(30 * 500 * 8));
        assert_eq!(r.layer(1, 0, now), scaled(15 * 1000 * 8));
        assert_eq!(r.layer(1, 1, now), scaled(15 * 1000 * 8));
        assert_eq!(r.layer(2, 0, now), 0, "never seen");
        let later = now + Duration::from_secs(3);
        assert_eq!(
            r.layer(0, 0, later),
            scaled(30 * 500 * 8),
            "quiet: the last rate"
        );
        assert_eq!(r.layer(9, 9, later), 0);
        // 100 ms in: a tenth of a second's bytes is a second's worth.
        let mut young = LayerRates::default();
        young.add(0, 0, 1000, t0);
        assert_eq!(young.layer(0, 0, t0 + Duration::from_millis(50)), 80_000);
    }
}
