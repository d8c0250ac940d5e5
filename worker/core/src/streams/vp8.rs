//! What a consumer of a VP8 stream keeps to forward a subset of its temporal layers, or to
//! switch between simulcast encodings, as one continuous stream (the base of issue 12's
//! simulcast consumer; mediasoup's `VP8::EncodingContext` and `SeqManager` are the model):
//!
//! - PictureID (7 or 15 bits) and TL0PICIDX (8 bits) are renumbered with
//!   [`SeqMap`](super::seq_map::SeqMap): the frames the consumer dropped leave no gap (a decoder
//!   sees consecutive pictures), real loss still does.
//! - [`Vp8Context::process`]: per packet, drops frames above the target temporal layer, moves
//!   up a temporal layer only at a layer-sync frame (Y), and gives the PictureID / TL0PICIDX to
//!   write; after [`Vp8Context::sync`] (a switch to another encoding) the numbering continues
//!   right after the last one sent.
//!
//! No allocation per packet: the dropped-input window is a fixed ring.

use crate::proto::vp8::{PictureIds, Vp8Descriptor};
use crate::streams::seq_map::SeqMap;

/// What to do with one VP8 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vp8Verdict {
    /// Forward it, writing these values where the descriptor has the fields.
    Forward(PictureIds),
    /// Its frame is above the target temporal layer (or not a place to move up): drop it.
    Drop,
}

/// A consumer's VP8 numbering and temporal-layer state.
#[derive(Clone, Debug)]
pub struct Vp8Context {
    picture_id: Option<SeqMap>,
    tl0: SeqMap,
    sync_required: bool,
    current_tid: u8,
}

impl Default for Vp8Context {
    fn default() -> Self {
        Vp8Context {
            picture_id: None,
            tl0: SeqMap::new(8),
            sync_required: false,
            current_tid: 0,
        }
    }
}

impl Vp8Context {
    /// The next packet comes from another encoding: continue the numbering after the last sent.
    pub fn sync(&mut self) {
        self.sync_required = true;
    }

    /// The temporal layer being forwarded now.
    pub fn current_temporal_layer(&self) -> u8 {
        self.current_tid
    }

    /// The verdict for a packet with descriptor `d`, forwarding temporal layers up to `target`.
    pub fn process(&mut self, d: &Vp8Descriptor, target: u8) -> Vp8Verdict {
        if let Some((_, wide)) = d.picture_id {
            self.picture_id
                .get_or_insert_with(|| SeqMap::new(if wide { 15 } else { 7 }));
        }
        let pid = d.picture_id.map(|(p, _)| p);
        if self.sync_required
            && let (Some(p), Some(t)) = (pid, d.tl0picidx)
        {
            if let Some(m) = self.picture_id.as_mut() {
                m.sync(p.wrapping_sub(1));
            }
            self.tl0.sync(u16::from(t).wrapping_sub(1));
            self.sync_required = false;
        }
        // Filter only new frames: a late or retransmitted packet follows its frame's verdict.
        if let (Some(p), Some(tid), Some(t)) = (pid, d.tid, d.tl0picidx)
            && let Some(m) = self.picture_id.as_mut()
            && m.max_input().is_none_or(|max| !m.higher(max, p))
            && (tid > target || (tid > self.current_tid && !d.layer_sync))
        {
            m.drop_input(p);
            if tid == 0 {
                self.tl0.drop_input(u16::from(t));
            }
            return Vp8Verdict::Drop;
        }
        let picture_id = match (pid, self.picture_id.as_mut()) {
            (Some(p), Some(m)) => match m.input(p) {
                Some(out) => Some(out),
                None => return Vp8Verdict::Drop,
            },
            _ => None,
        };
        let tl0picidx = match d.tl0picidx {
            Some(t) => match self.tl0.input(u16::from(t)) {
                Some(out) => Some(out as u8),
                None => return Vp8Verdict::Drop,
            },
            None => None,
        };
        match d.tid {
            Some(t) if t > self.current_tid => self.current_tid = t,
            Some(_) => {}
            None => self.current_tid = 0,
        }
        self.current_tid = self.current_tid.min(target);
        Vp8Verdict::Forward(PictureIds {
            picture_id,
            tl0picidx,
        })
    }
}

#[cfg(test)]
mod tests;
