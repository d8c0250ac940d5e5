//! `worker.get_media_counters`: what a worker's media engine counted since it started (see
//! `FBS.Worker.MediaCountersResponse`). The supervisor polls it per scrape; nothing here is sent
//! per packet.

use crate::data::DataCounters;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaCounters {
    /// Datagrams that reached no socket / no transport.
    pub unknown_socket: u64,
    pub unknown_tuple: u64,
    /// RTP packets not forwarded for their sequence number (RFC 3550 A.1), all producers.
    pub rtp_bad_sequence: u64,
    /// Producer streams resynchronised to a restarted sender's new sequence space.
    pub rtp_resyncs: u64,
    /// DTLS handshakes that failed (a certificate that does not match the signaled
    /// fingerprint among them).
    pub dtls_failures: u64,
    pub data: DataCounters,
    pub audio: RtpCounters,
    pub video: RtpCounters,
    pub feedback: FeedbackCounters,
    /// Inbound SRTP/SRTCP dropped: authentication failed / a replayed or too old index.
    pub srtp_auth_failures: u64,
    pub srtp_replays: u64,
    /// Selected tuples that lost ICE consent (the transport went disconnected).
    pub ice_consent_lost: u64,
    /// STUN checks refused: 401 (wrong credentials or integrity), 400 (malformed check).
    pub ice_unauthorized: u64,
    pub ice_bad_requests: u64,
    /// Entities open now.
    pub transports: u32,
    pub producers: u32,
    pub consumers: u32,
    /// Fraction lost (0–1) per report block: of streams received (our receiver reports), of
    /// streams sent (the subscribers' reports).
    pub loss_received: Histogram,
    pub loss_sent: Histogram,
    /// Interarrival jitter (seconds) per report block, as for the loss.
    pub jitter_received: Histogram,
    pub jitter_sent: Histogram,
    /// Round-trip times (seconds) of the streams sent, from the subscribers' LSR/DLSR.
    pub rtt: Histogram,
}

/// RTP of one media kind since the worker started: packets and bytes (header and payload, before
/// SRTP) received from publishers and sent to subscribers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtpCounters {
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Retransmissions and probing padding included.
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Packets sent again for a NACK (RTX, or the original packet without RTX).
    pub retransmissions_sent: u64,
}

impl RtpCounters {
    /// A packet of `len` bytes received.
    #[inline]
    pub fn received(&mut self, len: usize) {
        self.packets_received += 1;
        self.bytes_received += len as u64;
    }

    /// A packet of `len` bytes sent; `retransmission` for a NACK's answer.
    #[inline]
    pub fn sent(&mut self, len: usize, retransmission: bool) {
        self.packets_sent += 1;
        self.bytes_sent += len as u64;
        self.retransmissions_sent += u64::from(retransmission);
    }
}

/// RTCP feedback messages since the worker started (a NACK counts once, however many packets it
/// names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedbackCounters {
    pub nacks_received: u64,
    pub nacks_sent: u64,
    pub plis_received: u64,
    pub plis_sent: u64,
    pub firs_received: u64,
    pub firs_sent: u64,
}

/// Observations in fixed buckets since the worker started: `counts[i]` observations `v` with
/// `bounds[i-1] < v <= bounds[i]`, and a last count above the last bound (`counts` has one more
/// entry than `bounds`; a decoded one that does not is taken as it comes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Ascending upper bounds.
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    /// Of every observation.
    pub sum: f64,
}

impl Histogram {
    /// Observations in all buckets.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}
