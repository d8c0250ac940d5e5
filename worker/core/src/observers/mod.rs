//! A router's RTP observers, sans IO: who is speaking, from the audio producers'
//! `urn:ietf:params:rtp-hdrext:ssrc-audio-level` header extension (RFC 6464).
//!
//! mediasoup has two of them, and so do we, with the same semantics:
//!
//! - [`AudioLevelObserver`] (`audio_level.rs`): every interval, the loudest
//!   producers (mean level in dBov above a threshold), or one `silence` when nobody is.
//! - [`ActiveSpeakerObserver`] (`active_speaker.rs`): the dominant speaker, by
//!   Volfin and Cohen's "Dominant Speaker Identification for Multipoint Videoconferencing"
//!   (as ported by Jitsi and then mediasoup), which does not hand the floor to a cough.
//!
//! Both are driven the same way: the router feeds each audio level it parses
//! ([`audio_level_of`]) with `on_audio_level`, sleeps until `timeout()`, then calls
//! `on_timeout(now)` and turns what it returns into a notification. Neither reads a clock,
//! does IO or allocates per packet; producers are named by a key of the caller's choice (the
//! core's `ProducerKey`).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

mod active_speaker;
mod audio_level;

pub use active_speaker::ActiveSpeakerObserver;
pub use audio_level::{AudioLevelEvent, AudioLevelObserver};

/// The level and voice-activity flag of an `ssrc-audio-level` extension value (RFC 6464 §3):
/// one byte, `V` (the top bit: the sender's voice activity detection said "voice") then the
/// level in −dBov, 0 (loudest, 0 dBov) to 127 (silence, −127 dBov or quieter).
///
/// The value must be exactly one byte, as mediasoup's `ReadSsrcAudioLevel` requires; anything
/// else is `None` (peer input: the packet is still forwarded, the level is just not used).
pub fn audio_level_of(ext: &[u8]) -> Option<(u8, bool)> {
    match ext {
        [b] => Some((b & 0x7f, b & 0x80 != 0)),
        _ => None,
    }
}

/// The next run of a periodic timer that keeps its phase (mediasoup's repeating uv timer):
/// `due + interval`, or `now + interval` if the shell woke so late that this is already past.
fn next_tick(due: Instant, interval: Duration, now: Instant) -> Instant {
    let next = due + interval;
    if next > now { next } else { now + interval }
}

/// Per-producer state of an observer: a hash lookup by key on the packet path, and a stable
/// insertion order for the periodic pass (so ties and "the first producer" are deterministic,
/// where mediasoup iterates a hash map).
#[derive(Debug)]
struct ProducerTable<K, V> {
    index: HashMap<K, usize>,
    entries: Vec<(K, V)>,
}

impl<K: Copy + Eq + Hash, V> ProducerTable<K, V> {
    fn new() -> Self {
        Self {
            index: HashMap::new(),
            entries: Vec::new(),
        }
    }

    /// Adds `key` unless it is already there (then returns false and keeps its state).
    fn insert(&mut self, key: K, value: V) -> bool {
        if self.index.contains_key(&key) {
            return false;
        }
        self.index.insert(key, self.entries.len());
        self.entries.push((key, value));
        true
    }

    /// Removes `key`, keeping the order of the others (a control operation: O(n) is fine).
    fn remove(&mut self, key: K) -> Option<V> {
        let i = self.index.remove(&key)?;
        let (_, value) = self.entries.remove(i);
        for (j, (k, _)) in self.entries.iter().enumerate().skip(i) {
            self.index.insert(*k, j);
        }
        Some(value)
    }

    fn get(&self, key: K) -> Option<&V> {
        self.index.get(&key).map(|&i| &self.entries[i].1)
    }

    fn get_mut(&mut self, key: K) -> Option<&mut V> {
        self.index.get(&key).map(|&i| &mut self.entries[i].1)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn iter(&self) -> impl Iterator<Item = (K, &V)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (*k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_level_extension_is_one_byte() {
        assert_eq!(audio_level_of(&[0x80 | 30]), Some((30, true)));
        assert_eq!(audio_level_of(&[127]), Some((127, false)));
        assert_eq!(audio_level_of(&[]), None);
        assert_eq!(audio_level_of(&[30, 0]), None);
    }

    #[test]
    fn table_keeps_insertion_order_across_removals() {
        let mut t = ProducerTable::new();
        for k in 1..=4u32 {
            assert!(t.insert(k, k * 10));
        }
        assert!(!t.insert(2, 0), "a second add keeps the first state");
        assert_eq!(t.remove(2), Some(20));
        assert_eq!(t.remove(2), None);
        assert_eq!(t.iter().map(|(k, _)| k).collect::<Vec<_>>(), [1, 3, 4]);
        assert_eq!(t.get(4), Some(&40));
        *t.get_mut(3).expect("present") += 1;
        assert_eq!(t.get(3), Some(&31));
        assert_eq!(t.len(), 3);
    }
}
