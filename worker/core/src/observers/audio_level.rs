//! mediasoup's AudioLevelObserver: every `interval`, the loudest producers.
//!
//! Each audio packet's level (RFC 6464, in −dBov: 0 loudest, 127 silence) is added to its
//! producer's sum for the interval. When the interval ends, for every producer that sent at
//! least `MIN_PACKETS` (10) levels, the mean in the dB domain (an arithmetic mean of the −dBov
//! values, integer division as in mediasoup, so −30.6 dBov reads −30) is kept if it is at least
//! `threshold` dBov. The kept producers are reported loudest first, at most `max_entries`, as
//! [`AudioLevelEvent::Volumes`], every interval in which there are some. When there are none,
//! [`AudioLevelEvent::Silence`] is reported once: not again until volumes were reported in
//! between (the observer starts out silent, so a room that never speaks reports nothing).
//!
//! The voice-activity bit of the extension is not used, as in mediasoup. A paused producer is
//! left out (its levels are ignored); a paused observer ignores every level, reports nothing,
//! and forgets the interval it was in.

use std::cmp::Reverse;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::{ProducerTable, next_tick};

/// Fewer levels than this in an interval and the producer is left out of it (mediasoup: at
/// 20 ms per packet, under 200 ms of audio, which is too little to average).
const MIN_PACKETS: u32 = 10;

/// What an [`AudioLevelObserver`] reports at the end of an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioLevelEvent<K> {
    /// The producers above the threshold, loudest first, with their mean level in dBov
    /// (−127..=0); producers with the same level stay in the order they were added.
    Volumes(Vec<(K, i8)>),
    /// Nobody was above the threshold (reported once per silence).
    Silence,
}

/// The sums of one producer for the current interval.
#[derive(Debug, Default)]
struct Sums {
    /// The sum of the −dBov levels (u32: mediasoup's u16 would wrap after 516 loud packets).
    total: u32,
    count: u32,
    paused: bool,
}

/// The AudioLevelObserver of one router: every interval, the producers whose mean level was above
/// the threshold, loudest first, or one silence (details at the top of `observers/audio_level.rs`).
#[derive(Debug)]
pub struct AudioLevelObserver<K> {
    max_entries: u16,
    threshold: i8,
    interval: Duration,
    /// When the current interval ends; `None` while the observer is paused.
    due: Option<Instant>,
    /// Whether the last report was silence (or nothing was reported yet).
    silence: bool,
    producers: ProducerTable<K, Sums>,
}

impl<K: Copy + Eq + Hash> AudioLevelObserver<K> {
    /// The shortest interval: a shorter one is raised to this (mediasoup's clamp).
    pub const MIN_INTERVAL: Duration = Duration::from_millis(250);
    /// The longest interval: a longer one is lowered to this.
    pub const MAX_INTERVAL: Duration = Duration::from_millis(5000);

    /// A running observer whose first interval starts at `now`. mediasoup's defaults are
    /// `max_entries` 1, `threshold_dbov` −80 and `interval` 1 s. The interval is clamped to
    /// [`Self::MIN_INTERVAL`]..=[`Self::MAX_INTERVAL`]; a positive threshold is a bad request
    /// that the control layer rejects (mediasoup: `TypeError`); here it would only mean that
    /// nobody is ever loud enough.
    pub fn new(max_entries: u16, threshold_dbov: i8, interval: Duration, now: Instant) -> Self {
        let interval = interval.clamp(Self::MIN_INTERVAL, Self::MAX_INTERVAL);
        Self {
            max_entries,
            threshold: threshold_dbov,
            interval,
            due: Some(now + interval),
            silence: true,
            producers: ProducerTable::new(),
        }
    }

    /// The interval, after clamping.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether the observer is paused.
    pub fn is_paused(&self) -> bool {
        self.due.is_none()
    }

    /// Observes `producer` (an audio producer) from now on; adding it twice changes nothing.
    pub fn add_producer(&mut self, producer: K) {
        self.producers.insert(producer, Sums::default());
    }

    /// Stops observing `producer`; what it sent in the current interval is forgotten.
    pub fn remove_producer(&mut self, producer: K) {
        self.producers.remove(producer);
    }

    /// The producer was paused (its levels are ignored until it is resumed, and what it sent
    /// in the current interval is forgotten) or resumed.
    pub fn set_producer_paused(&mut self, producer: K, paused: bool) {
        if let Some(sums) = self.producers.get_mut(producer) {
            *sums = Sums {
                paused,
                ..Sums::default()
            };
        }
    }

    /// Pauses the observer: the current interval is forgotten and nothing is reported until
    /// [`Self::resume`]. Returns [`AudioLevelEvent::Silence`] if the last report was volumes
    /// (mediasoup reports silence on pause, so listeners do not keep a stale "loudest").
    pub fn pause(&mut self) -> Option<AudioLevelEvent<K>> {
        self.due.take()?;
        self.reset_sums();
        self.report_silence()
    }

    /// Resumes a paused observer; its next interval starts at `now` (no-op if running).
    pub fn resume(&mut self, now: Instant) {
        if self.due.is_none() {
            self.due = Some(now + self.interval);
        }
    }

    /// One level from `producer`'s `ssrc-audio-level` extension, in −dBov (0..=127; larger
    /// values, impossible from [`audio_level_of`](super::audio_level_of), count as 127).
    pub fn on_audio_level(&mut self, producer: K, level: u8) {
        if self.due.is_none() {
            return;
        }
        if let Some(sums) = self.producers.get_mut(producer).filter(|s| !s.paused) {
            sums.total = sums.total.saturating_add(u32::from(level.min(127)));
            sums.count += 1;
        }
    }

    /// When [`Self::on_timeout`] has something to do: the end of the current interval, or
    /// `None` while paused.
    pub fn timeout(&self) -> Option<Instant> {
        self.due
    }

    /// Ends the interval if it is due, and returns what to report about it.
    pub fn on_timeout(&mut self, now: Instant) -> Option<AudioLevelEvent<K>> {
        let due = self.due.filter(|&due| due <= now)?;
        self.due = Some(next_tick(due, self.interval, now));

        let threshold = self.threshold;
        let mut volumes: Vec<(K, i8)> = self
            .producers
            .iter()
            .filter(|(_, s)| s.count >= MIN_PACKETS)
            .map(|(k, s)| {
                // total / count <= 127: the cast cannot truncate.
                let mean = (s.total / s.count).min(127) as i8;
                (k, -mean)
            })
            .filter(|&(_, dbov)| dbov >= threshold)
            .collect();
        self.reset_sums();

        if volumes.is_empty() {
            return self.report_silence();
        }
        self.silence = false;
        // Stable: equal levels keep the insertion order (mediasoup keys a map by level and
        // so reports only one of two producers with the same level; we report both).
        volumes.sort_by_key(|&(_, dbov)| Reverse(dbov));
        volumes.truncate(usize::from(self.max_entries));
        Some(AudioLevelEvent::Volumes(volumes))
    }

    fn report_silence(&mut self) -> Option<AudioLevelEvent<K>> {
        if self.silence {
            return None;
        }
        self.silence = true;
        Some(AudioLevelEvent::Silence)
    }

    fn reset_sums(&mut self) {
        for (_, sums) in self.producers.iter_mut() {
            sums.total = 0;
            sums.count = 0;
        }
    }
}

#[cfg(test)]
mod tests;
