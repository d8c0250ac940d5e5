//! What a consumer of a VP8 stream keeps to forward a subset of its temporal layers, or to
//! switch between simulcast encodings, as one continuous stream (the base of issue 12's
//! simulcast consumer; mediasoup's `VP8::EncodingContext` and `SeqManager` are the model):
//!
//! - [`SeqMap`]: wrap-aware renumbering of PictureID (7 or 15 bits) and TL0PICIDX (8 bits) in
//!   which the inputs the consumer dropped leave no gap (a decoder sees consecutive pictures),
//!   while real loss still does.
//! - [`Vp8Context::process`]: per packet, drops frames above the target temporal layer, moves
//!   up a temporal layer only at a layer-sync frame (Y), and gives the PictureID / TL0PICIDX to
//!   write; after [`Vp8Context::sync`] (a switch to another encoding) the numbering continues
//!   right after the last one sent.
//!
//! No allocation per packet: the dropped-input window is a fixed ring.

use crate::proto::vp8::{PictureIds, Vp8Descriptor};

/// Dropped inputs remembered (whole frames; the oldest are folded into the offset).
const DROPPED: usize = 64;

/// Renumbering of `bits`-bit sequence values with dropped inputs taken out of the output.
#[derive(Clone, Debug)]
pub struct SeqMap {
    bits: u32,
    /// Output = input + base − (dropped inputs before it), modulo 2^bits.
    base: u16,
    max_in: Option<u16>,
    max_out: u16,
    /// Dropped inputs, oldest first.
    dropped: [u16; DROPPED],
    n_dropped: usize,
}

impl SeqMap {
    pub fn new(bits: u32) -> SeqMap {
        SeqMap {
            bits: bits.clamp(1, 16),
            base: 0,
            max_in: None,
            max_out: 0,
            dropped: [0; DROPPED],
            n_dropped: 0,
        }
    }

    /// A map whose first synced input continues after output `last`.
    pub fn continuing_after(bits: u32, last: u16) -> SeqMap {
        let mut m = SeqMap::new(bits);
        m.max_out = last & m.mask();
        m
    }

    /// The highest output given so far (or the one [`SeqMap::continuing_after`] set).
    pub fn max_output(&self) -> u16 {
        self.max_out
    }

    #[inline]
    fn mask(&self) -> u16 {
        (((1u32 << self.bits) - 1) & 0xffff) as u16
    }

    /// `a` comes after `b` in the wrapping space (less than half the range ahead).
    #[inline]
    fn higher(&self, a: u16, b: u16) -> bool {
        let d = a.wrapping_sub(b) & self.mask();
        d != 0 && u32::from(d) < (1u32 << (self.bits - 1))
    }

    /// The highest input seen (forwarded or dropped).
    pub fn max_input(&self) -> Option<u16> {
        self.max_in
    }

    /// The next input after `input` continues right after the last output.
    pub fn sync(&mut self, input: u16) {
        self.base = self.max_out.wrapping_sub(input) & self.mask();
        self.max_in = Some(input & self.mask());
        self.n_dropped = 0;
    }

    /// Input `input` is dropped: later outputs close the gap. An input not newer than the
    /// highest seen is ignored (a late copy of a dropped one is still refused by
    /// [`SeqMap::input`] while it is remembered).
    pub fn drop_input(&mut self, input: u16) {
        let input = input & self.mask();
        if self.max_in.is_some_and(|m| !self.higher(input, m)) {
            return;
        }
        if self.n_dropped == DROPPED {
            // The oldest leaves the window: every later input is past it, fold it into base.
            self.dropped.copy_within(1.., 0);
            self.n_dropped -= 1;
            self.base = self.base.wrapping_sub(1) & self.mask();
        }
        self.dropped[self.n_dropped] = input;
        self.n_dropped += 1;
        self.max_in = Some(input);
    }

    /// The output for `input`, `None` when it was dropped.
    #[inline]
    pub fn input(&mut self, input: u16) -> Option<u16> {
        let input = input & self.mask();
        // The common case, a new input: every dropped one is older (a drop moves `max_in`).
        if let Some(m) = self.max_in
            && self.higher(input, m)
        {
            let out = input
                .wrapping_add(self.base)
                .wrapping_sub(self.n_dropped as u16)
                & self.mask();
            self.max_in = Some(input);
            if self.higher(out, self.max_out) {
                self.max_out = out;
            }
            return Some(out);
        }
        self.input_old(input)
    }

    /// [`SeqMap::input`] of an input not newer than every one seen (late, or the first).
    #[inline(never)]
    fn input_old(&mut self, input: u16) -> Option<u16> {
        let dropped = &self.dropped[..self.n_dropped];
        if dropped.contains(&input) {
            return None;
        }
        let before = dropped.iter().filter(|&&d| self.higher(input, d)).count() as u16;
        let out = input.wrapping_add(self.base).wrapping_sub(before) & self.mask();
        if self.max_in.is_none_or(|m| self.higher(input, m)) {
            self.max_in = Some(input);
        }
        if self.max_in == Some(input) && (self.higher(out, self.max_out) || self.max_out == out) {
            self.max_out = out;
        }
        Some(out)
    }
}

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
