//! A remote sender's NTP clock as seen from ours, for lip sync.
//!
//! Consumers' sender reports map each stream's RTP time to our NTP time. Taking a producer
//! stream's RTP time "now" as its last SR's RTP time plus the time since that SR *arrived* puts
//! the SR's one-way delay into the mapping, stream by stream: when the audio SR and the video
//! SR of one sender are delayed differently (queues, a loaded worker), audio and video drift
//! apart by the difference (tens of ms on a loaded machine). All streams of one sender share its
//! NTP clock, so one offset per transport — our NTP at arrival minus the SR's NTP, the smallest
//! of the last [`WINDOW`] (least delayed) — maps every stream through the sender's own clock:
//! the sender's NTP/RTP relation is kept exactly, and audio and video stay as aligned as the
//! sender made them.

use std::time::{Duration, Instant};

/// Samples older than this are not used (clocks drift apart slowly; routes change).
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// Samples kept (SRs arrive about once a second per stream).
const SAMPLES: usize = 32;

/// The offset of one sender's NTP clock from ours.
#[derive(Clone, Debug, Default)]
pub(crate) struct SenderClock {
    /// (arrival, our NTP at arrival − SR NTP), a ring.
    samples: [Option<(Instant, i64)>; SAMPLES],
    next: usize,
}

impl SenderClock {
    /// An SR stamped `sr_ntp` (64-bit NTP) arrived at `now`, when our NTP clock read `our_ntp`.
    pub(crate) fn on_sender_report(&mut self, sr_ntp: u64, our_ntp: u64, now: Instant) {
        self.samples[self.next] = Some((now, our_ntp.wrapping_sub(sr_ntp) as i64));
        self.next = (self.next + 1) % SAMPLES;
    }

    /// Our NTP minus the sender's, from the least delayed recent SR.
    pub(crate) fn offset(&self, now: Instant) -> Option<i64> {
        self.samples
            .iter()
            .flatten()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= WINDOW)
            .map(|&(_, d)| d)
            .min()
    }

    /// The sender's NTP time when ours reads `our_ntp`.
    pub(crate) fn sender_ntp(&self, our_ntp: u64, now: Instant) -> Option<u64> {
        self.offset(now).map(|d| our_ntp.wrapping_sub(d as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1 << 32;

    #[test]
    fn the_least_delayed_recent_report_sets_the_offset() {
        let t0 = crate::test_epoch();
        let mut c = SenderClock::default();
        assert_eq!(c.offset(t0), None);
        // The sender's clock is 100 s behind ours; SRs arrive 20, 5 and 80 ms after they left.
        let ms = |n: u64| n * SECOND / 1000;
        for (i, delay) in [20u64, 5, 80].into_iter().enumerate() {
            let sent = 1000 * SECOND + i as u64 * SECOND;
            let ours = sent + 100 * SECOND + ms(delay);
            c.on_sender_report(sent, ours, t0 + Duration::from_secs(i as u64));
        }
        let now = t0 + Duration::from_secs(3);
        assert_eq!(c.offset(now), Some((100 * SECOND + ms(5)) as i64));
        assert_eq!(
            c.sender_ntp(2000 * SECOND, now),
            Some(1900 * SECOND - ms(5))
        );
        // Ten seconds later only the last sample is recent enough.
        let later = t0 + Duration::from_secs(12);
        assert_eq!(c.offset(later), Some((100 * SECOND + ms(80)) as i64));
        assert_eq!(c.offset(t0 + Duration::from_secs(30)), None);
    }
}
