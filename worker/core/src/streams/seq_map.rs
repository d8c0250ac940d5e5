//! Wrap-aware renumbering of sequence values (RTP sequence numbers, VP8 PictureID/TL0PICIDX)
//! in which the inputs a consumer dropped leave no gap in the output while real loss still
//! does (mediasoup's `SeqManager`). No allocation per input: the dropped-input window is a
//! fixed ring.

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
    pub(crate) fn higher(&self, a: u16, b: u16) -> bool {
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

#[cfg(test)]
mod tests;
