//! The per-packet state of an SVC consumer (VP9 K-SVC or full SVC, one stream carrying every
//! layer): the app's preference, the [`SvcContext`] that picks the packets of the target
//! layers and ends each picture with the marker bit, and the layers last reported.

use std::time::Instant;

use ferrosfu_fbs::ConsumerLayers;

use crate::proto::vp9::Vp9Descriptor;
use crate::streams::layered::{LayerVerdict, ask_key, layers};
use crate::streams::svc::{SvcContext, SvcVerdict};

#[derive(Clone, Debug)]
pub(crate) struct SvcLayers {
    ctx: SvcContext,
    spatial_layers: u8,
    temporal_layers: u8,
    preferred: (u8, u8),
    /// The highest layers the bandwidth allows (`None`: no limit).
    ceiling: Option<(u8, u8)>,
    reported: Option<ConsumerLayers>,
    key_asked: Option<Instant>,
}

impl SvcLayers {
    /// A stream of `spatial` × `temporal` layers (its scalability mode), K-SVC or not; the
    /// preference starts at the highest layers.
    pub(crate) fn new(spatial: u8, temporal: u8, ksvc: bool) -> SvcLayers {
        let (s, t) = (spatial.max(1), temporal.max(1));
        let mut ctx = SvcContext::new(s, t, ksvc);
        ctx.set_target(Some((s - 1, t - 1)));
        SvcLayers {
            ctx,
            spatial_layers: s,
            temporal_layers: t,
            preferred: (s - 1, t - 1),
            ceiling: None,
            reported: None,
            key_asked: None,
        }
    }

    /// The app's preference, clamped (no temporal layer: the highest); whether a keyframe must
    /// be asked for (a switch up, or any spatial switch in K-SVC).
    pub(crate) fn set_preferred(&mut self, spatial: u8, temporal: Option<u8>) -> bool {
        let s = spatial.min(self.spatial_layers - 1);
        let t = temporal
            .unwrap_or(self.temporal_layers - 1)
            .min(self.temporal_layers - 1);
        self.preferred = (s, t);
        self.retarget()
    }

    /// The highest layers to forward whatever the preference (`None`: no limit); whether a
    /// keyframe must be asked for.
    pub(crate) fn set_ceiling(&mut self, ceiling: Option<(u8, u8)>) -> bool {
        self.ceiling = ceiling;
        self.retarget()
    }

    /// The target: the preference lowered to the ceiling.
    fn retarget(&mut self) -> bool {
        let (ps, pt) = self.preferred;
        let target = match self.ceiling {
            Some((cs, ct)) if cs < ps => (cs, ct),
            Some((cs, ct)) if cs == ps => (ps, pt.min(ct)),
            _ => (ps, pt),
        };
        self.ctx.set_target(Some(target))
    }

    pub(crate) fn preferred(&self) -> (u8, u8) {
        self.preferred
    }

    pub(crate) fn resync(&mut self) {
        self.ctx.resync();
    }

    pub(crate) fn stop(&mut self) {
        self.ctx.stop();
    }

    /// Keyframes were asked for now.
    pub(crate) fn key_asked(&mut self, now: Instant) {
        self.key_asked = Some(now);
    }

    /// The verdict for a packet with descriptor `d` (`None`: not a VP9 payload the consumer
    /// can read) and RTP marker bit `marker`.
    pub(crate) fn on_packet(
        &mut self,
        d: Option<&Vp9Descriptor>,
        marker: bool,
        now: Instant,
    ) -> LayerVerdict {
        let verdict = d.map_or(SvcVerdict::Drop, |d| self.ctx.process(d, marker));
        match verdict {
            SvcVerdict::Forward { marker, sync, .. } => LayerVerdict::Forward {
                resync: sync,
                switched_from: None,
                picture: None,
                marker,
            },
            SvcVerdict::Drop => {
                // Waiting for a keyframe: to start, or to move up a spatial layer.
                let waiting = match (self.ctx.current(), self.ctx.target()) {
                    (None, Some(_)) => true,
                    (Some((cs, _)), Some((ts, _))) => ts > cs,
                    _ => false,
                };
                let want_key = ask_key(waiting, &mut self.key_asked, now);
                LayerVerdict::Drop {
                    own: true,
                    want_key,
                }
            }
        }
    }

    pub(crate) fn current(&self) -> Option<ConsumerLayers> {
        self.ctx.current().map(layers)
    }

    pub(crate) fn target(&self) -> Option<ConsumerLayers> {
        self.ctx.target().map(layers)
    }

    /// The current layers when they changed since last reported.
    pub(crate) fn layers_change(&mut self) -> Option<Option<ConsumerLayers>> {
        let now = self.current();
        (now != self.reported).then(|| {
            self.reported = now;
            now
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-packet picture of layer `sid` (non-flexible mode, 15-bit PictureID, E and B set).
    fn vp9(pid: u16, sid: u8, key: bool) -> Vp9Descriptor {
        let b0 = 0xA0 | if key { 0 } else { 0x40 } | 0x08 | 0x04;
        let p = [b0, 0x80 | (pid >> 8) as u8, pid as u8, (sid << 1) | 0x10, 0];
        Vp9Descriptor::parse(&p).unwrap()
    }

    #[test]
    fn an_svc_consumer_forwards_the_preferred_spatial_layers_and_asks_keys_to_go_up() {
        let t = crate::test_epoch();
        let mut l = SvcLayers::new(3, 1, false);
        assert!(
            l.set_preferred(1, None),
            "nothing current yet: the start asks"
        );
        // No keyframe yet: dropped, ask for one (once per retry interval).
        assert_eq!(
            l.on_packet(Some(&vp9(1, 0, false)), true, t),
            LayerVerdict::Drop {
                own: true,
                want_key: true
            }
        );
        for (sid, fwd) in [(0, true), (1, true), (2, false)] {
            let v = l.on_packet(Some(&vp9(2, sid, true)), sid == 2, t);
            assert_eq!(matches!(v, LayerVerdict::Forward { .. }), fwd, "sid {sid}");
        }
        assert_eq!(l.layers_change(), Some(l.current()));
        assert_eq!(l.current().map(|c| c.spatial_layer), Some(1));
        assert!(l.set_preferred(2, None), "up needs a keyframe");
        assert!(!l.set_preferred(0, None), "down does not (full SVC)");
        assert_eq!(
            l.on_packet(None, true, t),
            LayerVerdict::Drop {
                own: true,
                want_key: false
            }
        );
    }
}
