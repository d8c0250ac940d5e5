//! One direction of one peer's path: a bottleneck (a FIFO drained at a rate, drop-tail), then
//! propagation latency, with random and burst loss of RTP.
//!
//! A datagram entering the link at `now`:
//!
//! 1. **Queue** (only with [`Link::rate_bps`]): it leaves the bottleneck at
//!    `max(now, previous departure) + size · 8 / rate`, unless the [`QueueLimit`] says the queue
//!    is full, then it is dropped (drop-tail: the newcomer, never a queued one). Every datagram
//!    takes queue time and rate: RTP, RTCP, STUN and DTLS alike.
//! 2. **Loss** (RTP only, as before this module existed): the [`Link::burst`] window, then the
//!    random [`Link::loss`]. A lost packet has used its place in the queue (loss on the path
//!    after the bottleneck, as on a lossy last hop).
//! 3. **Propagation**: it arrives [`Link::latency`] after leaving the queue.
//!
//! Without a rate ([`Link::default`]) there is no queue: every datagram arrives `latency` after
//! it was sent, exactly as the simulation did before the bottleneck existed, and the seeded
//! random draws are the same ones.
//!
//! The rate may change between two `Sim::run_for` calls: datagrams already queued keep the
//! departure they were given; the next one is serialised at the new rate after them (FIFO
//! order always holds, also when the rate is removed).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

/// When the bottleneck's queue is full (a datagram that would make it exceed either limit is
/// dropped). `None`: no limit of that kind.
///
/// The default, 64 KiB or 200 ms whichever comes first, is a home router's: Linux `tc tbf` is
/// usually configured with `latency 200ms` (or less), and a consumer router's buffer is some tens
/// of kilobytes. At 600 kbit/s the delay limit binds (200 ms ≈ 15 kB); above ~2.6 Mbit/s the
/// byte limit does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimit {
    /// Bytes waiting in the queue (the datagram being serialised included) at most.
    pub max_bytes: Option<usize>,
    /// Time a datagram would spend in the queue at most, from its arrival to the end of its own
    /// serialisation.
    pub max_delay: Option<Duration>,
}

impl QueueLimit {
    /// No limit: the queue (and its delay) grows without bound.
    pub const UNLIMITED: QueueLimit = QueueLimit {
        max_bytes: None,
        max_delay: None,
    };
}

impl Default for QueueLimit {
    fn default() -> Self {
        QueueLimit {
            max_bytes: Some(64 * 1024),
            max_delay: Some(Duration::from_millis(200)),
        }
    }
}

/// What happened on one link so far (reset it by assigning `LinkStats::default()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams that arrived at the far end (counted on arrival, all kinds).
    pub delivered_packets: u64,
    /// Their bytes (the datagrams as sent: SRTP/SRTCP/STUN/DTLS, no IP/UDP headers).
    pub delivered_bytes: u64,
    /// Datagrams dropped because the queue was full.
    pub queue_drops: u64,
    /// Their bytes.
    pub queue_dropped_bytes: u64,
    /// RTP packets lost at random or in the burst window.
    pub random_losses: u64,
    /// Datagrams that went through the queue (a rate was set), and the sum and the maximum of
    /// the time they spent there (arrival to end of serialisation).
    pub queued_packets: u64,
    pub total_queue_delay: Duration,
    pub max_queue_delay: Duration,
}

impl LinkStats {
    /// Mean time spent in the queue by the datagrams that went through it.
    pub fn mean_queue_delay(&self) -> Duration {
        match u32::try_from(self.queued_packets) {
            Ok(0) => Duration::ZERO,
            Ok(n) => self.total_queue_delay / n,
            Err(_) => Duration::from_secs_f64(
                self.total_queue_delay.as_secs_f64() / self.queued_packets as f64,
            ),
        }
    }
}

/// What a link does to the datagrams that cross it (one direction of one peer): see the module
/// documentation for the order of queue, loss and latency.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// Propagation delay, after the queue.
    pub latency: Duration,
    /// Probability that an RTP packet is lost (STUN, DTLS and RTCP are never lost at random).
    pub loss: f64,
    /// Drop RTP packets number `start + 1 ..= start + len` (RTP packets counted on this link,
    /// from 1).
    pub burst: Option<(u64, u64)>,
    /// Probability that a DTLS application-data datagram (SCTP: data channels) is lost.
    pub data_loss: f64,
    /// Bottleneck rate in bit/s: datagrams are serialised one after the other at this rate.
    /// `None`: no bottleneck (no queue, no serialisation time).
    pub rate_bps: Option<u64>,
    /// When the bottleneck's queue drops newcomers (only with a rate).
    pub queue: QueueLimit,
    /// Bytes counted per datagram on top of its own size for serialisation and the byte limit
    /// (28 for IPv4 + UDP, 48 for IPv6 + UDP). Default 0: the datagram alone.
    pub overhead_bytes: usize,
    /// Counters, readable (and resettable) by tests.
    pub stats: LinkStats,
    /// What is in flight (opaque; public so that `Link { latency, ..Link::bottleneck(r) }`
    /// works outside this crate).
    pub state: LinkState,
}

/// A link's queue and RTP count.
#[derive(Clone, Debug, Default)]
pub struct LinkState {
    /// RTP packets offered to this link (the burst window counts them).
    rtp_count: u64,
    /// (departure, bytes) of each datagram in the queue, oldest first.
    backlog: VecDeque<(Instant, usize)>,
    backlog_bytes: usize,
    /// When the last datagram admitted leaves the queue.
    last_departure: Option<Instant>,
}

impl Link {
    /// A bottleneck of `rate_bps` with the default queue, no latency, no loss.
    pub fn bottleneck(rate_bps: u64) -> Link {
        Link {
            rate_bps: Some(rate_bps),
            ..Link::default()
        }
    }

    /// A datagram of `len` bytes (RTP when `rtp`) enters the link at `now`: when it arrives at
    /// the far end, or `None` when it is dropped (queue full) or lost. `rng` draws the random
    /// loss (only for RTP, only when [`Link::loss`] > 0).
    pub fn admit(
        &mut self,
        now: Instant,
        len: usize,
        rtp: bool,
        rng: &mut impl Rng,
    ) -> Option<Instant> {
        if rtp {
            self.state.rtp_count += 1;
        }
        let departure = self.enqueue(now, len)?;
        if rtp && self.lost(rng) {
            self.stats.random_losses += 1;
            return None;
        }
        Some(departure + self.latency)
    }

    /// [`Self::admit`] or [`Self::admit_other`] by what `data` is (DTLS application data:
    /// first byte 23).
    pub fn admit_any(
        &mut self,
        now: Instant,
        data: &[u8],
        rtp: bool,
        rng: &mut impl Rng,
    ) -> Option<Instant> {
        if rtp {
            self.admit(now, data.len(), true, rng)
        } else {
            self.admit_other(now, data.len(), data.first() == Some(&23), rng)
        }
    }

    /// [`Self::admit`] for a datagram that is not RTP; `app_data` (a DTLS application-data
    /// record) is lost with [`Link::data_loss`].
    pub fn admit_other(
        &mut self,
        now: Instant,
        len: usize,
        app_data: bool,
        rng: &mut impl Rng,
    ) -> Option<Instant> {
        let departure = self.enqueue(now, len)?;
        if app_data && self.data_loss > 0.0 && rng.random_bool(self.data_loss) {
            self.stats.random_losses += 1;
            return None;
        }
        Some(departure + self.latency)
    }

    /// A datagram the link admitted arrived (counted here so that counters read mid-run say
    /// what the far end has seen).
    pub fn on_delivered(&mut self, len: usize) {
        self.stats.delivered_packets += 1;
        self.stats.delivered_bytes += len as u64;
    }

    /// Bytes waiting in the queue at `now` (the datagram being serialised included).
    pub fn queued_bytes(&mut self, now: Instant) -> usize {
        self.drain(now);
        self.state.backlog_bytes
    }

    /// How long a datagram entering at `now` would wait before its serialisation starts.
    pub fn queue_delay(&self, now: Instant) -> Duration {
        self.state
            .last_departure
            .map_or(Duration::ZERO, |d| d.saturating_duration_since(now))
    }

    fn drain(&mut self, now: Instant) {
        while let Some(&(at, bytes)) = self.state.backlog.front() {
            if at > now {
                break;
            }
            self.state.backlog.pop_front();
            self.state.backlog_bytes -= bytes;
        }
    }

    /// When the datagram leaves the queue, or `None` when the queue drops it.
    fn enqueue(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let start = self.state.last_departure.map_or(now, |d| d.max(now));
        let Some(rate) = self.rate_bps.filter(|&r| r > 0) else {
            // No bottleneck: nothing waits, except behind what a former rate still queues.
            if start > now {
                self.state.last_departure = Some(start);
            }
            return Some(start);
        };
        self.drain(now);
        let bytes = len + self.overhead_bytes;
        let bits = bytes as u128 * 8 * 1_000_000_000;
        let tx = Duration::from_nanos(bits.div_ceil(u128::from(rate)) as u64);
        let departure = start + tx;
        let delay = departure - now;
        let full = self
            .queue
            .max_bytes
            .is_some_and(|m| self.state.backlog_bytes + bytes > m)
            || self.queue.max_delay.is_some_and(|m| delay > m);
        if full {
            self.stats.queue_drops += 1;
            self.stats.queue_dropped_bytes += len as u64;
            return None;
        }
        self.state.last_departure = Some(departure);
        self.state.backlog.push_back((departure, bytes));
        self.state.backlog_bytes += bytes;
        self.stats.queued_packets += 1;
        self.stats.total_queue_delay += delay;
        self.stats.max_queue_delay = self.stats.max_queue_delay.max(delay);
        Some(departure)
    }

    /// Burst window first, then the random draw (the order and the draws of the simulation
    /// before the bottleneck existed).
    fn lost(&mut self, rng: &mut impl Rng) -> bool {
        if let Some((start, len)) = self.burst
            && self.state.rtp_count > start
            && self.state.rtp_count <= start + len
        {
            return true;
        }
        self.loss > 0.0 && rng.random_bool(self.loss)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// `link` fed for `secs` by a sender of `send_bps` in `size`-byte RTP datagrams (evenly
    /// spaced): (arrival times, in order of sending, None when dropped or lost).
    fn feed(
        link: &mut Link,
        t0: Instant,
        secs: u64,
        send_bps: u64,
        size: usize,
    ) -> Vec<Option<Instant>> {
        let mut rng = StdRng::seed_from_u64(1);
        let gap = Duration::from_nanos(size as u64 * 8 * 1_000_000_000 / send_bps);
        let n = secs * 1_000_000_000 / gap.as_nanos() as u64;
        (0..n)
            .map(|k| link.admit(t0 + gap * k as u32, size, true, &mut rng))
            .collect()
    }

    /// Bytes arriving in `[from, to)`.
    fn bytes_between(arrivals: &[Option<Instant>], size: usize, from: Instant, to: Instant) -> u64 {
        arrivals
            .iter()
            .flatten()
            .filter(|&&a| a >= from && a < to)
            .count() as u64
            * size as u64
    }

    #[test]
    fn default_link_only_delays() {
        let t0 = Instant::now();
        let mut link = Link {
            latency: 20 * MS,
            ..Link::default()
        };
        let arrivals = feed(&mut link, t0, 1, 10_000_000, 1200);
        let gap = Duration::from_nanos(1200 * 8 * 100);
        for (k, a) in arrivals.iter().enumerate() {
            assert_eq!(*a, Some(t0 + gap * k as u32 + 20 * MS));
        }
        assert_eq!(link.stats.queued_packets, 0);
        assert_eq!(link.stats.max_queue_delay, Duration::ZERO);
    }

    #[test]
    fn saturated_bottleneck_delivers_its_rate_within_3_percent() {
        for rate in [250_000, 600_000, 2_500_000] {
            let t0 = Instant::now();
            let mut link = Link::bottleneck(rate);
            let arrivals = feed(&mut link, t0, 11, rate * 2, 1000);
            // Ten seconds of steady state, after the queue filled.
            let got = bytes_between(
                &arrivals,
                1000,
                t0 + Duration::from_secs(1),
                t0 + Duration::from_secs(11),
            );
            let achieved = got * 8 / 10;
            let err = achieved.abs_diff(rate) as f64 / rate as f64;
            assert!(err < 0.03, "rate {rate}: achieved {achieved} bit/s");
            assert!(
                link.stats.queue_drops > 0,
                "a 2× sender overflows the queue"
            );
        }
    }

    #[test]
    fn queue_delay_stays_within_the_time_limit() {
        let t0 = Instant::now();
        let mut link = Link {
            latency: 30 * MS,
            ..Link::bottleneck(600_000)
        };
        let arrivals = feed(&mut link, t0, 5, 1_500_000, 1200);
        let gap = Duration::from_nanos(1200 * 8 * 1_000_000_000 / 1_500_000);
        let limit = link.queue.max_delay.unwrap();
        assert!(link.stats.max_queue_delay <= limit);
        assert!(
            link.stats.max_queue_delay > limit - 20 * MS,
            "{:?}",
            link.stats
        );
        for (k, a) in arrivals.iter().enumerate() {
            if let Some(a) = a {
                let sent = t0 + gap * k as u32;
                assert!(*a - sent <= limit + 30 * MS);
            }
        }
        // In order: a FIFO.
        let mut last = t0;
        for a in arrivals.iter().flatten() {
            assert!(*a >= last);
            last = *a;
        }
    }

    #[test]
    fn byte_limit_drops_tail_and_counts() {
        let t0 = Instant::now();
        let mut link = Link {
            queue: QueueLimit {
                max_bytes: Some(10_000),
                max_delay: None,
            },
            ..Link::bottleneck(1_000_000)
        };
        let mut rng = StdRng::seed_from_u64(1);
        // 20 datagrams of 1000 bytes at once: 10 fit, 10 are dropped.
        let fates: Vec<_> = (0..20)
            .map(|_| link.admit(t0, 1000, false, &mut rng))
            .collect();
        assert!(fates[..10].iter().all(Option::is_some));
        assert!(fates[10..].iter().all(Option::is_none));
        assert_eq!(link.stats.queue_drops, 10);
        assert_eq!(link.stats.queue_dropped_bytes, 10_000);
        assert_eq!(link.queued_bytes(t0), 10_000);
        // 8 ms per datagram: the last one leaves at 80 ms.
        assert_eq!(fates[9], Some(t0 + 80 * MS));
        assert_eq!(link.stats.max_queue_delay, 80 * MS);
        // Once one has left there is room for one more.
        assert_eq!(link.queued_bytes(t0 + 8 * MS), 9000);
        assert_eq!(
            link.admit(t0 + 8 * MS, 1000, false, &mut rng),
            Some(t0 + 88 * MS)
        );
        assert_eq!(link.admit(t0 + 8 * MS, 1000, false, &mut rng), None);
    }

    #[test]
    fn a_rate_change_takes_effect_for_what_comes_next() {
        let t0 = Instant::now();
        let mut link = Link {
            queue: QueueLimit::UNLIMITED,
            ..Link::bottleneck(1_000_000)
        };
        let arrivals = feed(&mut link, t0, 5, 2_000_000, 1000);
        let at5 = t0 + Duration::from_secs(5);
        let before = bytes_between(&arrivals, 1000, t0, at5);
        assert!(before.abs_diff(625_000) < 2_000, "{before}");
        // The queue holds 5 s of backlog (unlimited): it drains at the old rate, then new
        // datagrams go at the new one.
        let drained = *arrivals.last().unwrap();
        link.rate_bps = Some(250_000);
        let mut rng = StdRng::seed_from_u64(1);
        let a = link.admit(at5, 1000, true, &mut rng).unwrap();
        assert_eq!(a, drained.unwrap() + 32 * MS);
        // Without a rate: FIFO behind the backlog, no serialisation time.
        link.rate_bps = None;
        assert_eq!(link.admit(at5, 1000, true, &mut rng), Some(a));
    }

    #[test]
    fn random_loss_and_burst_only_touch_rtp_and_are_seeded() {
        let run = || {
            let t0 = Instant::now();
            let mut link = Link {
                loss: 0.1,
                burst: Some((10, 5)),
                ..Link::bottleneck(1_000_000)
            };
            let mut rng = StdRng::seed_from_u64(9);
            let fates: Vec<bool> = (0..1000u32)
                .map(|k| {
                    link.admit(t0 + 10 * MS * k, 500, k % 2 == 0, &mut rng)
                        .is_some()
                })
                .collect();
            (fates, link.stats)
        };
        let (fates, stats) = run();
        assert_eq!(run(), (fates.clone(), stats), "same seed, same fates");
        assert!(
            fates.iter().skip(1).step_by(2).all(|&f| f),
            "non-RTP never lost"
        );
        // RTP packets 11..=15 are offered at k = 20, 22, … 28.
        assert!((20..30).step_by(2).all(|k| !fates[k]));
        assert!((30..80).contains(&stats.random_losses), "{stats:?}");
        assert_eq!(stats.queue_drops, 0);
    }
}
