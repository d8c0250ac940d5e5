//! Which spatial layer (simulcast encoding) a consumer forwards, and when it may switch: the
//! decision half of issue 12's simulcast consumer, sans IO (mediasoup's `SimulcastConsumer`
//! is the model; /work/notes/issue12-research.md §1 for its rules):
//!
//! - The target is the lowest usable layer at or above the preferred one, else the highest
//!   usable one below it (mediasoup's `RecalculateTargetLayers`); its temporal target is the
//!   preferred one on the preferred spatial layer, the highest below it, 0 above it. No usable
//!   layer: nothing is forwarded.
//! - A switch, up or down, completes only on a keyframe of the target layer; until then the
//!   current layer keeps flowing. The caller asks the producer for that keyframe
//!   ([`Changes::keyframe_for`]) and resynchronizes numbering and time on the switching packet
//!   ([`Decision::Forward`] `sync`).
//! - After a resume or a reconnection ([`LayerSelector::resync`]) forwarding restarts on a
//!   keyframe.
//!
//! The "target layers" are an input: issue 13's bandwidth allocation will set the usable
//! ceiling the same way the app's preference does.

/// Most spatial layers a consumer selects among (simulcast encodings).
pub const MAX_SPATIAL_LAYERS: usize = 4;

/// What one packet of spatial layer `s` gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Drop,
    /// Forward it; `sync`: continue numbering and time after the last packet sent (a switch, or
    /// the first packet after a resync); `switched`: it completes a switch of spatial layer.
    Forward {
        sync: bool,
        switched: bool,
    },
}

/// What a change of preference or usability did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The target (spatial, temporal) changed.
    pub target_changed: bool,
    /// Ask the producer for a keyframe of this spatial layer (the target, not yet current).
    pub keyframe_for: Option<u8>,
    /// Nothing is forwarded any more: report `layerschange` with no layers.
    pub stopped: bool,
}

/// A consumer's spatial layer selection.
#[derive(Clone, Debug)]
pub struct LayerSelector {
    spatial_layers: u8,
    temporal_layers: u8,
    preferred: (u8, u8),
    /// The highest layers the consumer's share of its transport's bandwidth allows (issue 13's
    /// allocator sets it; `None`: no limit).
    ceiling: Option<(u8, u8)>,
    usable: [bool; MAX_SPATIAL_LAYERS],
    target: Option<(u8, u8)>,
    current: Option<u8>,
    sync_required: bool,
}

impl LayerSelector {
    /// `spatial_layers` encodings of `temporal_layers` each; preferred: the highest of both.
    /// No layer is usable until [`LayerSelector::set_usable`] says so.
    pub fn new(spatial_layers: u8, temporal_layers: u8) -> LayerSelector {
        let s = spatial_layers.clamp(1, MAX_SPATIAL_LAYERS as u8);
        let t = temporal_layers.max(1);
        LayerSelector {
            spatial_layers: s,
            temporal_layers: t,
            preferred: (s - 1, t - 1),
            ceiling: None,
            usable: [false; MAX_SPATIAL_LAYERS],
            target: None,
            current: None,
            sync_required: true,
        }
    }

    /// The app's preference, clamped (no temporal layer: the highest); returns what applies.
    pub fn set_preferred(&mut self, spatial: u8, temporal: Option<u8>) -> ((u8, u8), Changes) {
        let s = spatial.min(self.spatial_layers - 1);
        let t = temporal
            .unwrap_or(self.temporal_layers - 1)
            .min(self.temporal_layers - 1);
        self.preferred = (s, t);
        (self.preferred, self.recalculate())
    }

    /// Whether spatial layer `spatial` can be forwarded (its encoding is active and scored).
    pub fn set_usable(&mut self, spatial: u8, usable: bool) -> Changes {
        if let Some(u) = self.usable.get_mut(usize::from(spatial)) {
            *u = usable && spatial < self.spatial_layers;
        }
        self.recalculate()
    }

    /// The highest (spatial, temporal) layers to forward whatever the preference (a bandwidth
    /// allocator's input; `None`: no limit). Layers above it are not chosen; at its spatial
    /// layer the temporal layer is at most its own.
    pub fn set_ceiling(&mut self, ceiling: Option<(u8, u8)>) -> Changes {
        self.ceiling = ceiling;
        self.recalculate()
    }

    /// The preference as applied (clamped).
    pub fn preferred(&self) -> (u8, u8) {
        self.preferred
    }

    pub fn target(&self) -> Option<(u8, u8)> {
        self.target
    }

    pub fn current_spatial(&self) -> Option<u8> {
        self.current
    }

    /// Forwarding restarts on a keyframe (resumed, reconnected).
    pub fn resync(&mut self) {
        self.sync_required = true;
    }

    /// Nothing is forwarded until further notice (the bandwidth allocator paused the
    /// consumer): no current layer; forwarding restarts on a keyframe of the target.
    pub fn stop(&mut self) {
        self.current = None;
        self.sync_required = true;
    }

    fn recalculate(&mut self) -> Changes {
        // The preference, lowered to the ceiling.
        let (ps, pt) = match self.ceiling {
            Some((cs, ct)) if cs < self.preferred.0 => (cs, ct),
            Some((cs, ct)) if cs == self.preferred.0 => (cs, self.preferred.1.min(ct)),
            _ => self.preferred,
        };
        let max_spatial = self.ceiling.map_or(u8::MAX, |(cs, _)| cs);
        let mut spatial = None;
        for s in 0..self.spatial_layers {
            if !self.usable[usize::from(s)] || s > max_spatial {
                continue;
            }
            spatial = Some(s);
            if s >= ps {
                break;
            }
        }
        let target = spatial.map(|s| {
            let t = match s.cmp(&ps) {
                std::cmp::Ordering::Equal => pt.min(self.temporal_layers - 1),
                std::cmp::Ordering::Less => match self.ceiling {
                    Some((cs, ct)) if cs == s => ct.min(self.temporal_layers - 1),
                    _ => self.temporal_layers - 1,
                },
                std::cmp::Ordering::Greater => 0,
            };
            (s, t)
        });
        let mut c = Changes {
            target_changed: target != self.target,
            ..Changes::default()
        };
        self.target = target;
        match target {
            None => {
                c.stopped = self.current.take().is_some();
                self.sync_required = true;
            }
            Some((s, _)) if Some(s) != self.current => c.keyframe_for = Some(s),
            Some(_) => {}
        }
        c
    }

    /// The decision for a packet of spatial layer `spatial`, keyframe or not.
    pub fn on_packet(&mut self, spatial: u8, keyframe: bool) -> Decision {
        let Some((target, _)) = self.target else {
            return Decision::Drop;
        };
        let switching = self.current != Some(target) && spatial == target;
        if switching {
            if !keyframe {
                return Decision::Drop;
            }
            self.current = Some(target);
            self.sync_required = false;
            return Decision::Forward {
                sync: true,
                switched: true,
            };
        }
        if self.current != Some(spatial) || (self.sync_required && !keyframe) {
            return Decision::Drop;
        }
        let sync = std::mem::take(&mut self.sync_required);
        Decision::Forward {
            sync,
            switched: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FWD: Decision = Decision::Forward {
        sync: false,
        switched: false,
    };
    const SWITCH: Decision = Decision::Forward {
        sync: true,
        switched: true,
    };

    /// Three layers of three temporal layers, all usable, forwarding layer 2.
    fn on_top() -> LayerSelector {
        let mut l = LayerSelector::new(3, 3);
        for s in 0..3 {
            l.set_usable(s, true);
        }
        assert_eq!(l.target(), Some((2, 2)));
        assert_eq!(l.on_packet(2, true), SWITCH);
        l
    }

    #[test]
    fn the_target_is_the_preferred_layer_or_the_nearest_usable_one() {
        let mut l = LayerSelector::new(3, 3);
        assert_eq!(l.target(), None);
        assert_eq!(l.on_packet(0, true), Decision::Drop, "nothing usable yet");
        let c = l.set_usable(0, true);
        assert_eq!((l.target(), c.keyframe_for), (Some((0, 2)), Some(0)));
        l.set_usable(2, true);
        assert_eq!(l.target(), Some((2, 2)));
        let ((s, t), _) = l.set_preferred(1, Some(0));
        assert_eq!((s, t), (1, 0));
        // Layer 1 is not usable: the lowest usable above it, temporal layer 0.
        assert_eq!(l.target(), Some((2, 0)));
        l.set_usable(2, false);
        // Nothing at or above the preference: the highest below it, every temporal layer.
        assert_eq!(l.target(), Some((0, 2)));
        l.set_usable(1, true);
        assert_eq!(l.target(), Some((1, 0)));
        // Preferences are clamped; no temporal layer means the highest.
        assert_eq!(l.set_preferred(9, None).0, (2, 2));
    }

    #[test]
    fn switching_up_waits_for_a_keyframe_of_the_target_while_the_current_layer_flows() {
        let mut l = LayerSelector::new(3, 3);
        l.set_usable(0, true);
        l.set_preferred(0, None);
        assert_eq!(
            l.on_packet(0, false),
            Decision::Drop,
            "starts on a keyframe"
        );
        assert_eq!(l.on_packet(0, true), SWITCH);
        assert_eq!(l.on_packet(0, false), FWD);
        l.set_usable(2, true);
        let (_, c) = l.set_preferred(2, None);
        assert_eq!((c.target_changed, c.keyframe_for), (true, Some(2)));
        assert_eq!(
            l.on_packet(2, false),
            Decision::Drop,
            "no inter frame of the new layer"
        );
        assert_eq!(
            l.on_packet(0, false),
            FWD,
            "the current layer keeps flowing"
        );
        assert_eq!(l.on_packet(2, true), SWITCH);
        assert_eq!(l.current_spatial(), Some(2));
        assert_eq!(l.on_packet(0, true), Decision::Drop, "the old layer stops");
        assert_eq!(l.on_packet(2, false), FWD);
    }

    #[test]
    fn switching_down_also_waits_for_a_keyframe() {
        let mut l = on_top();
        let (_, c) = l.set_preferred(0, None);
        assert_eq!(c.keyframe_for, Some(0));
        assert_eq!(l.on_packet(0, false), Decision::Drop);
        assert_eq!(l.on_packet(2, false), FWD);
        assert_eq!(l.on_packet(0, true), SWITCH);
        assert_eq!(l.on_packet(2, false), Decision::Drop);
    }

    #[test]
    fn a_layer_that_stops_makes_the_target_fall_back_and_no_layer_stops_forwarding() {
        let mut l = on_top();
        let c = l.set_usable(2, false);
        assert_eq!((l.target(), c.keyframe_for), (Some((1, 2)), Some(1)));
        assert_eq!(l.on_packet(1, true), SWITCH);
        l.set_usable(0, false);
        let c = l.set_usable(1, false);
        assert!(c.stopped && c.target_changed);
        assert_eq!((l.target(), l.current_spatial()), (None, None));
        assert_eq!(l.on_packet(1, true), Decision::Drop);
        // A layer comes back: forwarding restarts on its keyframe.
        l.set_usable(0, true);
        assert_eq!(l.on_packet(0, false), Decision::Drop);
        assert_eq!(l.on_packet(0, true), SWITCH);
    }

    #[test]
    fn a_ceiling_lowers_the_target_below_the_preference_and_lifting_it_restores_it() {
        let mut l = on_top();
        let c = l.set_ceiling(Some((1, 1)));
        assert_eq!((l.target(), c.keyframe_for), (Some((1, 1)), Some(1)));
        // Layer 1 gone: the highest usable below the ceiling, never above it.
        l.set_usable(1, false);
        assert_eq!(l.target(), Some((0, 2)));
        l.set_usable(0, false);
        assert_eq!(l.target(), None, "nothing at or under the ceiling");
        l.set_usable(0, true);
        l.set_usable(1, true);
        // A preference under the ceiling stands; the ceiling lifted, the preference rules.
        l.set_preferred(0, Some(0));
        assert_eq!(l.target(), Some((0, 0)));
        l.set_preferred(2, None);
        assert_eq!(l.target(), Some((1, 1)));
        l.set_ceiling(None);
        assert_eq!(l.target(), Some((2, 2)));
    }

    #[test]
    fn after_a_resync_forwarding_restarts_on_a_keyframe() {
        let mut l = on_top();
        l.resync();
        assert_eq!(l.on_packet(2, false), Decision::Drop);
        assert_eq!(
            l.on_packet(2, true),
            Decision::Forward {
                sync: true,
                switched: false
            }
        );
        assert_eq!(l.on_packet(2, false), FWD);
    }

    #[test]
    fn a_stop_leaves_no_current_layer_until_a_keyframe_of_the_target() {
        let mut l = on_top();
        l.stop();
        assert_eq!(l.current_spatial(), None);
        l.set_ceiling(Some((0, 2)));
        assert_eq!(l.on_packet(0, false), Decision::Drop);
        assert_eq!(l.on_packet(0, true), SWITCH);
        assert_eq!(l.current_spatial(), Some(0));
        assert_eq!(l.on_packet(0, false), FWD);
    }
}
