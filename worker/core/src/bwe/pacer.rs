//! The pacer of one transport: its packets leave at the pacing rate (the estimate × 2.5, as
//! GoogCC), not all at once after a frame arrives, from a bounded queue in which audio goes
//! first, then retransmissions, then video.
//!
//! A leaky bucket with debt (libwebrtc's `PacingController` in its dynamic mode): sending adds a
//! packet's size to the debt, time drains it at the pacing rate, and a packet may leave while the
//! debt is within one short burst window. So a packet that finds the bucket empty leaves at once
//! (the per-packet path stays a check and an add); a keyframe's burst is spread over
//! `size / rate`. Audio is never held (it counts toward the debt). A queue that would take longer
//! than [`MAX_QUEUE_TIME`] to drain raises the rate to drain it within that time; one over
//! [`MAX_QUEUE_BYTES`] refuses video (counted by the caller) rather than grow.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Packets leave at this multiple of the estimate. GoogCC's 2.5 suits an encoder whose target
/// is the estimate; an SFU's allocation already keeps the average under it, so the pacer's job
/// is to spread bursts (a keyframe after a layer switch) at a rate the path takes without
/// building a queue: a little over the estimate.
pub(crate) const PACING_FACTOR: f64 = 1.25;
/// How much may leave back to back before the rate applies (one burst window at the rate).
const BURST_WINDOW: Duration = Duration::from_millis(5);
/// A queue is drained within this time at the latest (the rate is raised to do so).
pub(crate) const MAX_QUEUE_TIME: Duration = Duration::from_millis(500);
/// The most a transport queues; beyond it video is refused.
pub(crate) const MAX_QUEUE_BYTES: usize = 1 << 20;
/// The slowest pacing rate (bit/s), whatever the estimate.
const MIN_RATE_BPS: f64 = 50_000.0;

/// What a packet is, in the order the pacer sends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    Audio = 0,
    Retransmission = 1,
    Video = 2,
}

#[derive(Debug)]
struct Waiting<T> {
    size: usize,
    item: T,
}

/// A transport's pacer over items `T` (the packets, with whatever the caller needs to send
/// them). Time is an argument.
#[derive(Debug)]
pub(crate) struct Pacer<T> {
    /// Bits per second; `None`: no pacing (everything leaves at once).
    rate_bps: Option<f64>,
    /// Bytes sent ahead of the rate.
    debt: f64,
    last: Option<Instant>,
    queues: [VecDeque<Waiting<T>>; 3],
    queued_bytes: usize,
    /// Items refused for a full queue.
    pub(crate) refused: u64,
}

impl<T> Default for Pacer<T> {
    fn default() -> Self {
        Self {
            rate_bps: None,
            debt: 0.0,
            last: None,
            queues: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            queued_bytes: 0,
            refused: 0,
        }
    }
}

impl<T> Pacer<T> {
    /// Paces at `bps` from now on (`None`: stops pacing; what waits leaves at the next poll).
    pub(crate) fn set_rate(&mut self, bps: Option<u64>, now: Instant) {
        self.drain(now);
        self.rate_bps = bps.map(|b| (b as f64).max(MIN_RATE_BPS));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued_bytes == 0 && self.queues.iter().all(VecDeque::is_empty)
    }

    /// How long what waits takes to leave at the set rate.
    pub(crate) fn queue_time(&self) -> Duration {
        match self.rate_bps {
            Some(r) if self.queued_bytes > 0 => {
                Duration::from_secs_f64(self.queued_bytes as f64 * 8.0 / r)
            }
            _ => Duration::ZERO,
        }
    }

    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// The rate in force: the set rate, raised so the queue drains within [`MAX_QUEUE_TIME`].
    fn effective_rate(&self) -> Option<f64> {
        let r = self.rate_bps?;
        let drain = self.queued_bytes as f64 * 8.0 / MAX_QUEUE_TIME.as_secs_f64();
        Some(r.max(drain))
    }

    fn drain(&mut self, now: Instant) {
        if let (Some(last), Some(r)) = (self.last, self.effective_rate()) {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.debt = (self.debt - r * dt / 8.0).max(0.0);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
    }

    /// The debt a packet may still leave under.
    fn allowance(&self, r: f64) -> f64 {
        r * BURST_WINDOW.as_secs_f64() / 8.0
    }

    /// A packet of `size` bytes may leave now, ahead of nothing queued: true, and it is counted;
    /// false: queue it ([`Self::push`]). Audio always may.
    pub(crate) fn admit(&mut self, class: Class, size: usize, now: Instant) -> bool {
        let Some(r) = self.rate_bps else {
            return true;
        };
        self.drain(now);
        let ahead = match class {
            Class::Audio => false,
            Class::Retransmission => !self.queues[0].is_empty() || !self.queues[1].is_empty(),
            Class::Video => !self.is_empty(),
        };
        if class == Class::Audio || (!ahead && self.debt <= self.allowance(r)) {
            self.debt += size as f64;
            true
        } else {
            false
        }
    }

    /// Queues `item` of `size` bytes; gives it back when the queue is full (video only: audio
    /// and retransmissions are always taken).
    pub(crate) fn push(&mut self, class: Class, size: usize, item: T) -> Result<(), T> {
        if class == Class::Video && self.queued_bytes + size > MAX_QUEUE_BYTES {
            self.refused += 1;
            return Err(item);
        }
        self.queued_bytes += size;
        self.queues[class as usize].push_back(Waiting { size, item });
        Ok(())
    }

    /// The next item due now, counted as sent.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<T> {
        self.drain(now);
        let allowance = self
            .effective_rate()
            .map_or(f64::INFINITY, |r| self.allowance(r));
        if self.debt > allowance {
            return None;
        }
        let w = self.queues.iter_mut().find_map(VecDeque::pop_front)?;
        self.queued_bytes -= w.size;
        self.debt += w.size as f64;
        Some(w.item)
    }

    /// Removes the queued items of `class` that `stale` says are, returning them.
    pub(crate) fn discard(&mut self, class: Class, mut stale: impl FnMut(&T) -> bool) -> Vec<T> {
        let q = &mut self.queues[class as usize];
        let mut out = Vec::new();
        let mut kept = VecDeque::with_capacity(q.len());
        for w in q.drain(..) {
            if stale(&w.item) {
                self.queued_bytes -= w.size;
                out.push(w.item);
            } else {
                kept.push_back(w);
            }
        }
        *q = kept;
        out
    }

    /// Takes a queued item whatever the rate (to discard what cannot be sent).
    pub(crate) fn take_any(&mut self) -> Option<T> {
        let w = self.queues.iter_mut().find_map(VecDeque::pop_front)?;
        self.queued_bytes -= w.size;
        Some(w.item)
    }

    /// When the next queued item is due (`None`: nothing queued).
    pub(crate) fn next_release(&self, now: Instant) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        let Some(r) = self.effective_rate() else {
            return Some(now);
        };
        let elapsed = self
            .last
            .map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
        let debt = (self.debt - r * elapsed / 8.0).max(0.0);
        let over = debt - self.allowance(r);
        if over <= 0.0 {
            return Some(now);
        }
        // At least 1 ms apart: a timer per packet at high rates would cost more than it smooths.
        let wait = Duration::from_secs_f64(over * 8.0 / r).max(Duration::from_millis(1));
        Some(now + wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        #[allow(clippy::disallowed_methods)] // tests: an arbitrary origin
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs the pacer over `for_ms`, popping at every due time; (item, ms after t0) sent.
    fn run(p: &mut Pacer<u32>, t0: Instant, for_ms: u64) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let mut now = t0;
        let end = t0 + ms(for_ms);
        while now <= end {
            while let Some(i) = p.pop(now) {
                out.push((i, now.duration_since(t0).as_millis() as u64));
            }
            match p.next_release(now) {
                Some(t) if t <= end => now = t.max(now + Duration::from_micros(100)),
                _ => break,
            }
        }
        out
    }

    #[test]
    fn without_a_rate_everything_leaves_at_once() {
        let mut p = Pacer::<u32>::default();
        let now = t0();
        for _ in 0..100 {
            assert!(p.admit(Class::Video, 1200, now));
        }
    }

    #[test]
    fn a_keyframe_burst_is_spread_at_the_rate() {
        let now = t0();
        let mut p = Pacer::default();
        p.set_rate(Some(1_000_000), now);
        // 50 packets of 1250 B = 500 kbit: 0.5 s at 1 Mbit/s.
        let mut queued = 0;
        for i in 0..50 {
            if !p.admit(Class::Video, 1250, now) {
                p.push(Class::Video, 1250, i).unwrap();
                queued += 1;
            }
        }
        assert!(
            queued >= 45,
            "only the burst window leaves at once: {queued} queued"
        );
        let sent = run(&mut p, now, 1000);
        assert_eq!(sent.len(), queued);
        let last = sent.last().unwrap().1;
        assert!(
            (440..=520).contains(&last),
            "the burst took {last} ms at 1 Mbit/s"
        );
        assert!(p.is_empty());
    }

    #[test]
    fn audio_and_retransmissions_go_before_video() {
        let now = t0();
        let mut p = Pacer::default();
        p.set_rate(Some(100_000), now);
        assert!(p.admit(Class::Video, 1200, now));
        for i in 0..5 {
            assert!(!p.admit(Class::Video, 1200, now));
            p.push(Class::Video, 1200, i).unwrap();
        }
        assert!(!p.admit(Class::Retransmission, 1200, now));
        p.push(Class::Retransmission, 1200, 100).unwrap();
        assert!(p.admit(Class::Audio, 100, now), "audio is never held");
        let sent = run(&mut p, now, 2000);
        assert_eq!(sent[0].0, 100, "the retransmission leaves first: {sent:?}");
    }

    #[test]
    fn a_long_queue_drains_within_the_limit_and_a_full_one_refuses_video() {
        let now = t0();
        let mut p = Pacer::default();
        p.set_rate(Some(100_000), now);
        let mut n = 0;
        while p.push(Class::Video, 1200, n).is_ok() {
            n += 1;
        }
        assert_eq!(p.refused, 1);
        assert!(p.queued_bytes() <= MAX_QUEUE_BYTES);
        p.push(Class::Retransmission, 1200, u32::MAX)
            .expect("retransmissions are always taken");
        // 1 MiB at 100 kbit/s would take 84 s; it drains in about MAX_QUEUE_TIME instead
        // (the raise shrinks as the queue does, so a little longer).
        let sent = run(&mut p, now, 5000);
        assert_eq!(sent.len() as u32, n + 1);
        let last = sent.last().unwrap().1;
        assert!(last < 5000, "drained in {last} ms");
    }

    #[test]
    fn stopping_pacing_releases_the_queue() {
        let now = t0();
        let mut p = Pacer::default();
        p.set_rate(Some(100_000), now);
        for i in 0..10 {
            p.push(Class::Video, 1200, i).unwrap();
        }
        p.set_rate(None, now);
        assert_eq!(p.next_release(now), Some(now));
        let mut n = 0;
        while p.pop(now).is_some() {
            n += 1;
        }
        assert_eq!(n, 10);
    }
}
