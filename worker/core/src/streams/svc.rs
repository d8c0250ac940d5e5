//! What a consumer of a VP9 SVC stream keeps to forward a subset of its spatial and temporal
//! layers (the pure-logic half of issue 12's SVC consumer; mediasoup's `VP9::EncodingContext`,
//! `VP9::PayloadDescriptorHandler::Process` and `SvcConsumer` are the model,
//! /work/notes/issue12-research.md §5 for their rules). One source stream carries every layer,
//! so nothing is renumbered here: the caller keeps RTP sequence numbers dense with
//! [`SeqMap`](super::seq_map::SeqMap) (16 bits) over the packets this drops, and the timestamp is
//! unchanged.
//!
//! Per packet, [`SvcContext::process`] forwards spatial layers up to the current one and
//! temporal layers up to the current one, moving the current layers toward the target:
//!
//! - Spatial up, only on a keyframe (the key picture's base layer packet, the first of the
//!   picture), straight to the target temporal layer too (nothing after a keyframe refers to
//!   what came before it; climbing from TID 0 would leave PictureID gaps a receiver's VP9
//!   reference finder waits on). Not at
//!   an upper layer's frame that is not inter-picture predicted (P=0) in an inter picture,
//!   though it would decode: by then the lower layer's last packet of that picture has gone
//!   with the marker bit, and a second end of picture would follow.
//! - Spatial down, in K-SVC on a keyframe (each layer's inter frames depend only on that layer,
//!   so a lower one must restart); in full SVC at the end (E) of the target layer's frame: the
//!   rest of that picture is cut, the picture ends there.
//! - K-SVC forwards only the current layer's inter frames (P=1): lower layers are needed only on
//!   key pictures.
//! - Temporal up at the start (B) of a frame marked as a switching-up point (U) of a layer above
//!   the current one and not above the target, in a picture's lowest forwarded layer (SID 0 or
//!   no inter-layer dependency, D=0). Temporal down at the end of a frame at or below the
//!   target: no frame is cut.
//! - The packet that ends the frame of the highest forwarded spatial layer gets the RTP marker
//!   bit: with the upper layers dropped, the receiver still sees where the picture ends.
//! - A late packet (its PictureID up to 64 behind the newest seen) changes nothing and is
//!   forwarded when its layers are forwarded now (mediasoup forwards every late packet).
//! - After a resync ([`SvcContext::resync`]) forwarding restarts on a keyframe.
//!
//! No allocation per packet.

use crate::proto::vp9::Vp9Descriptor;

/// Most spatial and temporal layers a VP9 descriptor can index (SID and TID are 3 bits).
pub const MAX_SVC_LAYERS: u8 = 8;

/// How far behind the newest PictureID a packet is late (reordered, retransmitted: 2 s at
/// 30 fps); further behind, the sender renumbered and the packet starts the new numbering
/// (capped at half the range of 7-bit PictureIDs).
const LATE_PICTURES: u16 = 64;

/// What to do with one VP9 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvcVerdict {
    /// Forward it. `marker`: the RTP marker bit to send (the packet's own, or set because it
    /// ends the highest forwarded layer's frame); `sync`: the first packet after a resync
    /// (continue the numbering after the last one sent); `layers_changed`: it moved the current
    /// layers ([`SvcContext::current`]), report them.
    Forward {
        marker: bool,
        sync: bool,
        layers_changed: bool,
    },
    /// Its layer is not forwarded (or not yet: a switch waits for its point), or the
    /// descriptor names layers the stream does not have.
    Drop,
}

/// A consumer's spatial and temporal layer state on one SVC stream.
#[derive(Clone, Debug)]
pub struct SvcContext {
    spatial_layers: u8,
    temporal_layers: u8,
    /// K-SVC (scalability mode `_KEY`): inter-layer dependency only on key pictures.
    ksvc: bool,
    target: Option<(u8, u8)>,
    current: Option<(u8, u8)>,
    sync_required: bool,
    /// The newest PictureID seen, to tell late packets.
    max_picture_id: Option<u16>,
}

impl SvcContext {
    /// A stream of `spatial_layers` × `temporal_layers` (each clamped to 1..=8), K-SVC or full
    /// SVC. Nothing is forwarded until [`SvcContext::set_target`] and a keyframe.
    pub fn new(spatial_layers: u8, temporal_layers: u8, ksvc: bool) -> SvcContext {
        SvcContext {
            spatial_layers: spatial_layers.clamp(1, MAX_SVC_LAYERS),
            temporal_layers: temporal_layers.clamp(1, MAX_SVC_LAYERS),
            ksvc,
            target: None,
            current: None,
            sync_required: true,
            max_picture_id: None,
        }
    }

    /// The layers to forward, clamped to the stream's (`None`: nothing, the current layers are
    /// gone at once). Returns whether to ask the producer for a keyframe: a switch of spatial
    /// layer needs one in K-SVC, and in full SVC when going up (down needs none; mediasoup's
    /// `SvcConsumer::UpdateTargetLayers`).
    pub fn set_target(&mut self, target: Option<(u8, u8)>) -> bool {
        let target = target.map(|(s, t)| {
            (
                s.min(self.spatial_layers - 1),
                t.min(self.temporal_layers - 1),
            )
        });
        self.target = target;
        let Some((ts, _)) = target else {
            self.current = None;
            self.sync_required = true;
            self.max_picture_id = None;
            return false;
        };
        match self.current {
            None => true,
            Some((cs, _)) => ts > cs || (self.ksvc && ts != cs),
        }
    }

    pub fn target(&self) -> Option<(u8, u8)> {
        self.target
    }

    /// The (spatial, temporal) layers being forwarded now.
    pub fn current(&self) -> Option<(u8, u8)> {
        self.current
    }

    /// Forwarding restarts on a keyframe (resumed, reconnected).
    pub fn resync(&mut self) {
        self.sync_required = true;
        self.max_picture_id = None;
    }

    /// Nothing is forwarded until further notice (the bandwidth allocator paused the
    /// consumer): no current layers; forwarding restarts on a keyframe, toward the target.
    pub fn stop(&mut self) {
        self.current = None;
        self.resync();
    }

    /// The verdict for a packet with descriptor `d` and RTP marker bit `marker`.
    pub fn process(&mut self, d: &Vp9Descriptor, marker: bool) -> SvcVerdict {
        let Some((ts, tt)) = self.target else {
            return SvcVerdict::Drop;
        };
        let (sid, tid) = (d.spatial_layer(), d.temporal_layer());
        let key = d.is_keyframe();
        if sid >= self.spatial_layers || tid >= self.temporal_layers || (self.sync_required && !key)
        {
            return SvcVerdict::Drop;
        }
        if let Some((pid, wide)) = d.picture_id {
            let mask = if wide { 0x7fff } else { 0x7f };
            let behind = self
                .max_picture_id
                .map_or(0, |max| max.wrapping_sub(pid) & mask);
            match behind {
                0 => self.max_picture_id = Some(pid),
                b if b <= LATE_PICTURES.min(mask / 2) => return self.late(d, marker),
                // Ahead, or so far behind that the sender renumbered: the newest now.
                _ => self.max_picture_id = Some(pid),
            }
        }

        // Spatial: up on a keyframe; down on a keyframe (K-SVC) or at the end of the target
        // layer's frame (full SVC). From a keyframe on every temporal layer up to the target is
        // decodable (nothing after it refers to what came before): no climb from TID 0.
        let (mut s, mut t) = (self.current.map(|c| c.0), self.current.map_or(0, |c| c.1));
        match s {
            // The first picture, or after a stop: a keyframe.
            None if key => (s, t) = (Some(ts), tt),
            None => {}
            Some(cs) if ts > cs && key => (s, t) = (Some(ts), tt),
            Some(cs) if ts < cs => {
                if self.ksvc {
                    if key {
                        (s, t) = (Some(ts), tt);
                    }
                } else if sid == ts && d.end_of_frame {
                    s = Some(ts);
                }
            }
            Some(_) => {}
        }
        let Some(s) = s else {
            return SvcVerdict::Drop;
        };
        if self.drops_spatially(d, s) {
            return SvcVerdict::Drop;
        }
        // Temporal: up where a switching-up frame starts in the picture's lowest forwarded layer,
        // down at the end of a frame that stays.
        if tt > t {
            if d.start_of_frame
                && d.switching_up_point
                && tid > t
                && tid <= tt
                && (sid == 0 || !d.inter_layer_dependency)
            {
                t = tid;
            }
        } else if tt < t && tid <= tt && d.end_of_frame {
            t = tt;
        }
        if tid > t {
            return SvcVerdict::Drop;
        }
        let layers_changed = self.current != Some((s, t));
        self.current = Some((s, t));
        SvcVerdict::Forward {
            marker: marker || (sid == s && d.end_of_frame),
            sync: std::mem::take(&mut self.sync_required),
            layers_changed,
        }
    }

    /// The packet's spatial layer is not forwarded while `s` is the current one.
    fn drops_spatially(&self, d: &Vp9Descriptor, s: u8) -> bool {
        let sid = d.spatial_layer();
        sid > s || (self.ksvc && d.inter_picture_predicted && sid != s)
    }

    /// A late packet (reordered, retransmitted): forwarded when its layers are forwarded now.
    fn late(&self, d: &Vp9Descriptor, marker: bool) -> SvcVerdict {
        match self.current {
            Some((s, t)) if !self.drops_spatially(d, s) && d.temporal_layer() <= t => {
                SvcVerdict::Forward {
                    marker: marker || (d.spatial_layer() == s && d.end_of_frame),
                    sync: false,
                    layers_changed: false,
                }
            }
            _ => SvcVerdict::Drop,
        }
    }
}

#[cfg(test)]
mod tests;
