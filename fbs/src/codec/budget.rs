//! The decode budget: a bound on how much a payload may decode into.
//!
//! FlatBuffers lets many vector entries point at the same table or string, so a small frame can
//! describe a huge typed value (issue 3: 1 000 entries sharing one table of 1 000 entries sharing
//! one long string). Every vector element and every owned string the decoder produces is charged
//! against a budget proportional to the payload size. An honest encoding needs at least 4 bytes
//! of payload per vector element (its offset) and one per string byte, so the budget
//! ([`BYTES_PER_PAYLOAD_BYTE`] × payload + [`FIXED_BYTES`]) never runs out for a message our
//! encoder produced; a frame that exhausts it is refused with [`EXCEEDED`].
//!
//! Once the budget is spent the decoder keeps its shape but produces nothing more (vectors stop,
//! strings come out empty), so the work done after that point is bounded too, and
//! `decode_message` turns the exhausted budget into the error.
//!
//! The budget lives in a thread-local set for the duration of one `decode_message` call, so the
//! many small `*_from` conversions stay infallible and unchanged in shape.

use std::cell::Cell;

use flatbuffers::{Follow, ForwardsUOffset, Vector};

/// Budget per payload byte, in bytes of decoded value.
pub(super) const BYTES_PER_PAYLOAD_BYTE: usize = 16;
/// Budget every payload gets on top, for the fixed parts of small messages.
pub(super) const FIXED_BYTES: usize = 64 * 1024;
/// What one vector element costs (roughly the decoded size of a small element).
const ELEMENT_COST: usize = 32;

/// The [`crate::DecodeError`] reason of a payload that exhausts its budget.
pub(super) const EXCEEDED: &str =
    "decoded size exceeds the budget for the payload size (shared vector entries?)";

thread_local! {
    /// Bytes left; `None` outside a decode (nothing is charged then).
    static LEFT: Cell<Option<usize>> = const { Cell::new(None) };
    static EXHAUSTED: Cell<bool> = const { Cell::new(false) };
}

/// The budget for a payload of `len` bytes.
pub(super) fn for_payload(len: usize) -> usize {
    len.saturating_mul(BYTES_PER_PAYLOAD_BYTE)
        .saturating_add(FIXED_BYTES)
}

/// The verifier's own limits, as a backstop behind the decode budget: the "apparent size" (the
/// bytes visited with shared parts counted each time) and the tables visited, both proportional
/// to the payload with room to spare for honest messages (every table takes at least 8 bytes: its
/// offset and its vtable offset), so a shared-entry payload also costs the verifier bounded work.
pub(super) fn verifier_options(len: usize) -> flatbuffers::VerifierOptions {
    flatbuffers::VerifierOptions {
        max_tables: len / 4 + 64,
        max_apparent_size: for_payload(len).saturating_mul(4),
        ..Default::default()
    }
}

/// Runs `f` with a budget of `bytes`; returns its result and whether the budget ran out.
pub(super) fn with_budget<T>(bytes: usize, f: impl FnOnce() -> T) -> (T, bool) {
    struct Reset(Option<usize>, bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            LEFT.with(|l| l.set(self.0));
            EXHAUSTED.with(|e| e.set(self.1));
        }
    }
    let _reset = Reset(LEFT.with(Cell::get), EXHAUSTED.with(Cell::get));
    LEFT.with(|l| l.set(Some(bytes)));
    EXHAUSTED.with(|e| e.set(false));
    let out = f();
    (out, EXHAUSTED.with(Cell::get))
}

/// Charges `n` bytes; `false` (and the budget marked exhausted) when they are not there.
fn charge(n: usize) -> bool {
    LEFT.with(|l| match l.get() {
        None => true,
        Some(left) if left >= n && !EXHAUSTED.with(Cell::get) => {
            l.set(Some(left - n));
            true
        }
        Some(_) => {
            EXHAUSTED.with(|e| e.set(true));
            false
        }
    })
}

/// A string copied out of the payload, charged to the budget (empty once it is spent).
pub(super) fn own(s: &str) -> String {
    if charge(s.len()) {
        s.to_owned()
    } else {
        String::new()
    }
}

/// Bounded iteration over FlatBuffers vectors: each element is charged before it is yielded.
pub(super) trait Bounded<'a, T: Follow<'a> + 'a> {
    /// The elements while the budget lasts.
    fn bounded(self) -> impl Iterator<Item = T::Inner> + 'a;
}

impl<'a, T: Follow<'a> + 'a> Bounded<'a, T> for Vector<'a, T> {
    fn bounded(self) -> impl Iterator<Item = T::Inner> + 'a {
        self.iter().take_while(|_| charge(ELEMENT_COST))
    }
}

/// Bounded iteration over vectors of strings: each string is also charged its length.
pub(super) trait BoundedStrs<'a> {
    fn bounded_strs(self) -> impl Iterator<Item = &'a str> + 'a;
}

impl<'a> BoundedStrs<'a> for Vector<'a, ForwardsUOffset<&'a str>> {
    fn bounded_strs(self) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .take_while(|s| charge(ELEMENT_COST.saturating_add(s.len())))
    }
}

/// `.own()` on a `&str` from the payload: [`own`] as a method.
pub(super) trait Own {
    fn own(self) -> String;
}

impl Own for &str {
    fn own(self) -> String {
        own(self)
    }
}

/// A byte vector copied out of the payload, charged to the budget (empty once it is spent).
pub(super) fn own_bytes(v: Vector<'_, u8>) -> Vec<u8> {
    let b = v.bytes();
    if charge(b.len()) {
        b.to_vec()
    } else {
        Vec::new()
    }
}
