//! How simulcast and SVC consumers select layers ([`Layers`]), and the per-packet state of a
//! simulcast consumer: which encoding (spatial layer) and which VP8
//! temporal layers it forwards ([`LayerSelector`], [`Vp8Context`]), the encoding it last sent
//! from (a switch re-anchors numbering and time), and the layers it last reported.
//!
//! The decision is a branch on fields parsed once per packet for every consumer (the encoding
//! index, keyframe, the VP8 descriptor); nothing is allocated.

use std::time::{Duration, Instant};

use ferrosfu_fbs::ConsumerLayers;

use crate::proto::vp8::{PictureIds, Vp8Descriptor};
use crate::proto::vp9::Vp9Descriptor;
use crate::streams::layers::{Changes, Decision, LayerSelector};
use crate::streams::svc_layers::SvcLayers;
use crate::streams::vp8::{Vp8Context, Vp8Verdict};

/// While a consumer waits for a keyframe of the layer it switches to, it asks again this often
/// (a request or its keyframe can be lost).
pub(crate) const KEYFRAME_RETRY: Duration = Duration::from_millis(500);

/// Whether a consumer waiting for a keyframe should ask (again) now: the first time, or
/// [`KEYFRAME_RETRY`] after it last asked (then `asked` is now).
pub(crate) fn ask_key(waiting: bool, asked: &mut Option<Instant>, now: Instant) -> bool {
    let due = waiting && asked.is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_RETRY);
    if due {
        *asked = Some(now);
    }
    due
}

/// (spatial, temporal) as [`ConsumerLayers`].
pub(crate) fn layers((spatial, temporal): (u8, u8)) -> ConsumerLayers {
    ConsumerLayers {
        spatial_layer: spatial,
        temporal_layer: Some(temporal),
    }
}

/// How a simulcast or SVC consumer selects layers.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // boxed as a whole in `Consumer::layers`
pub(crate) enum Layers {
    /// One encoding at a time (spatial layer), VP8 temporal layers within it.
    Simulcast(Layered),
    /// Spatial and temporal layers of one VP9 stream.
    Svc(SvcLayers),
}

impl Layers {
    /// The verdict for a packet of encoding `enc` (keyframe or not, RTP marker bit, its VP8 or
    /// VP9 descriptor as the codec has).
    pub(crate) fn on_packet(
        &mut self,
        enc: u8,
        keyframe: bool,
        marker: bool,
        vp8: Option<&Vp8Descriptor>,
        vp9: Option<&Vp9Descriptor>,
        now: Instant,
    ) -> LayerVerdict {
        match self {
            Layers::Simulcast(l) => l.on_packet(enc, keyframe, marker, vp8, now),
            Layers::Svc(l) if enc == 0 => l.on_packet(vp9, marker, now),
            Layers::Svc(_) => LayerVerdict::Drop {
                own: false,
                want_key: false,
            },
        }
    }

    /// The preference as applied (clamped) and the encoding to ask a keyframe of now.
    pub(crate) fn set_preferred(
        &mut self,
        spatial: u8,
        temporal: Option<u8>,
        now: Instant,
    ) -> (ConsumerLayers, Option<u8>) {
        match self {
            Layers::Simulcast(l) => {
                let (applied, c) = l.selector.set_preferred(spatial, temporal);
                (layers(applied), l.after(c, now))
            }
            Layers::Svc(l) => {
                let key = l.set_preferred(spatial, temporal);
                if key {
                    l.key_asked(now);
                }
                (layers(l.preferred()), key.then_some(0))
            }
        }
    }

    /// The highest layers the consumer's share of the bandwidth allows (issue 13's allocator;
    /// `None`: no limit); the encoding to ask a keyframe of now.
    pub(crate) fn set_ceiling(&mut self, ceiling: Option<(u8, u8)>, now: Instant) -> Option<u8> {
        match self {
            Layers::Simulcast(l) => {
                let c = l.selector.set_ceiling(ceiling);
                l.after(c, now)
            }
            Layers::Svc(l) => {
                let key = l.set_ceiling(ceiling);
                if key {
                    l.key_asked(now);
                }
                key.then_some(0)
            }
        }
    }

    /// Whether encoding `enc` is active; the encoding to ask a keyframe of now.
    pub(crate) fn set_usable(&mut self, enc: u8, usable: bool, now: Instant) -> Option<u8> {
        match self {
            Layers::Simulcast(l) => {
                let c = l.selector.set_usable(enc, usable);
                l.after(c, now)
            }
            // One stream: its layers come and go within it.
            Layers::Svc(_) => None,
        }
    }

    /// Forwarding restarts on a keyframe (resumed).
    pub(crate) fn resync(&mut self) {
        match self {
            Layers::Simulcast(l) => l.selector.resync(),
            Layers::Svc(l) => l.resync(),
        }
    }

    /// Nothing is forwarded until further notice (paused by the bandwidth allocator): no
    /// current layers (reported as such), forwarding restarts on a keyframe.
    pub(crate) fn stop(&mut self) {
        match self {
            Layers::Simulcast(l) => l.selector.stop(),
            Layers::Svc(l) => l.stop(),
        }
    }

    /// The encoding being sent (simulcast: its spatial layer; SVC: the one stream).
    pub(crate) fn current_encoding(&self) -> Option<u8> {
        match self {
            Layers::Simulcast(l) => l.selector.current_spatial(),
            Layers::Svc(_) => Some(0),
        }
    }

    /// The encoding whose keyframe the consumer needs: the one it sends, else the one it
    /// switches to.
    pub(crate) fn key_encoding(&self) -> Option<u8> {
        match self {
            Layers::Simulcast(l) => l
                .selector
                .current_spatial()
                .or_else(|| l.selector.target().map(|(s, _)| s)),
            Layers::Svc(_) => Some(0),
        }
    }

    pub(crate) fn preferred(&self) -> ConsumerLayers {
        layers(match self {
            Layers::Simulcast(l) => l.selector.preferred(),
            Layers::Svc(l) => l.preferred(),
        })
    }

    pub(crate) fn target(&self) -> Option<ConsumerLayers> {
        match self {
            Layers::Simulcast(l) => l.target(),
            Layers::Svc(l) => l.target(),
        }
    }

    pub(crate) fn current(&self) -> Option<ConsumerLayers> {
        match self {
            Layers::Simulcast(l) => l.current(),
            Layers::Svc(l) => l.current(),
        }
    }

    /// An SVC consumer's target spatial layer (`None` for simulcast, or with no target): a
    /// packet of a layer above it is of no use to its subscriber any more.
    pub(crate) fn svc_spatial_target(&self) -> Option<u8> {
        match self {
            Layers::Simulcast(_) => None,
            Layers::Svc(l) => l.target().map(|t| t.spatial_layer),
        }
    }

    /// The current layers when they changed since last reported.
    pub(crate) fn layers_change(&mut self) -> Option<Option<ConsumerLayers>> {
        match self {
            Layers::Simulcast(l) => l.layers_change(),
            Layers::Svc(l) => l.layers_change(),
        }
    }
}

/// What a simulcast consumer does with one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LayerVerdict {
    /// Not forwarded. `own`: it belongs to the encoding being sent (its sequence number is
    /// taken out of the output); `want_key`: the consumer waits for a keyframe of this encoding
    /// and should ask for one now.
    Drop { own: bool, want_key: bool },
    /// Forwarded. `resync`: the first packet after a switch or a resync (re-anchor sequence
    /// numbers on it); `switched_from`: the encoding sent before, when this one is another
    /// (re-anchor timestamps: another timeline); `picture`: the VP8 PictureID / TL0PICIDX to
    /// write; `marker`: the RTP marker bit to send (SVC: set where the highest forwarded layer
    /// ends a picture).
    Forward {
        resync: bool,
        switched_from: Option<u8>,
        picture: Option<PictureIds>,
        marker: bool,
    },
}

/// A simulcast consumer's layer state.
#[derive(Clone, Debug)]
pub(crate) struct Layered {
    pub(crate) selector: LayerSelector,
    vp8: Option<Vp8Context>,
    /// The encoding the last forwarded packet came from.
    sent_from: Option<u8>,
    /// The layers last reported (`consumer.layerschange`).
    reported: Option<ConsumerLayers>,
    /// When a keyframe of the target was last asked for.
    key_asked: Option<Instant>,
}

impl Layered {
    /// `spatial` encodings of `temporal` temporal layers each; `vp8`: the codec has a VP8
    /// payload descriptor to select temporal layers and renumber pictures by.
    pub(crate) fn new(spatial: u8, temporal: u8, vp8: bool) -> Layered {
        Layered {
            selector: LayerSelector::new(spatial, temporal),
            vp8: vp8.then(Vp8Context::default),
            sent_from: None,
            reported: None,
            key_asked: None,
        }
    }

    /// The verdict for a packet of encoding `spatial` (keyframe or not, its VP8 descriptor).
    pub(crate) fn on_packet(
        &mut self,
        spatial: u8,
        keyframe: bool,
        marker: bool,
        vp8: Option<&Vp8Descriptor>,
        now: Instant,
    ) -> LayerVerdict {
        let own = self.sent_from == Some(spatial);
        let resync = match self.selector.on_packet(spatial, keyframe) {
            Decision::Drop => {
                let current = self.selector.current_spatial();
                // Waiting for a keyframe: of the target to switch to, or of the current
                // encoding after a resync.
                let to_target = self.selector.target().is_some_and(|(s, _)| s == spatial)
                    && current != Some(spatial);
                let waiting = to_target || current == Some(spatial);
                let want_key = ask_key(waiting, &mut self.key_asked, now);
                return LayerVerdict::Drop { own, want_key };
            }
            Decision::Forward { sync, .. } => sync,
        };
        let mut switched_from = None;
        if resync {
            if !own {
                switched_from = self.sent_from;
            }
            self.sent_from = Some(spatial);
            if let Some(ctx) = self.vp8.as_mut() {
                ctx.sync();
            }
        }
        let picture = match (self.vp8.as_mut(), vp8) {
            (Some(ctx), Some(d)) => {
                let target = self.selector.target().map_or(0, |(_, t)| t);
                match ctx.process(d, target) {
                    Vp8Verdict::Forward(ids) => Some(ids),
                    Vp8Verdict::Drop => {
                        return LayerVerdict::Drop {
                            own: true,
                            want_key: false,
                        };
                    }
                }
            }
            _ => None,
        };
        LayerVerdict::Forward {
            resync,
            switched_from,
            picture,
            marker,
        }
    }

    /// The layers forwarded now: the encoding sent and its temporal layer; `None` while
    /// nothing is forwarded.
    pub(crate) fn current(&self) -> Option<ConsumerLayers> {
        let spatial = self.selector.current_spatial()?;
        let temporal = match &self.vp8 {
            Some(ctx) => ctx.current_temporal_layer(),
            None => self.selector.target().map_or(0, |(_, t)| t),
        };
        Some(ConsumerLayers {
            spatial_layer: spatial,
            temporal_layer: Some(temporal),
        })
    }

    /// The current layers when they changed since last reported.
    pub(crate) fn layers_change(&mut self) -> Option<Option<ConsumerLayers>> {
        let now = self.current();
        (now != self.reported).then(|| {
            self.reported = now;
            now
        })
    }

    /// Applies what a change of preference or usability did: `Some(spatial)` when a keyframe of
    /// that encoding must be asked for now.
    pub(crate) fn after(&mut self, c: Changes, now: Instant) -> Option<u8> {
        if c.stopped {
            self.sent_from = None;
        }
        let s = c.keyframe_for?;
        self.key_asked = Some(now);
        Some(s)
    }

    /// The target (spatial, temporal) as [`ConsumerLayers`].
    pub(crate) fn target(&self) -> Option<ConsumerLayers> {
        self.selector.target().map(layers)
    }
}

#[cfg(test)]
mod tests;
