//! What a consumer sends ([`SendStream`]): sequence/timestamp rewriting, retransmission
//! mapping, sender reports, RR processing, score.

use std::time::{Duration, Instant};

use crate::proto::rtcp::{ReportBlock, ntp_middle};
use crate::streams::recv::{NtpClock, RateMeter, score_from_loss};
use crate::streams::retransmit::RetransmitBuffer;

/// A stream a consumer sends.
#[derive(Debug)]
pub struct SendStream {
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
    pub pt_rtx: Option<u8>,
    pub mime_type: String,
    pub clock_rate: u32,
    /// Output seq = input extended seq + offset (mod 2^16); re-anchored after pause/resume.
    seq_offset: u16,
    /// Input extended seq at which the current anchor starts; older packets are dropped.
    anchor_in: Option<u64>,
    pub last_out_seq: u16,
    /// Output timestamp = input timestamp + offset (mod 2^32); re-anchored after a restart.
    ts_offset: u32,
    /// The offset before the last restart and the input extended seq from which the current
    /// one applies: retransmissions of older packets keep their original output timestamps.
    prev_ts_offset: Option<(u64, u32)>,
    /// The producer's stream restarted: the next forwarded packet re-anchors the timestamps.
    ts_restart: bool,
    /// (timestamp, sent at) of the newest packet sent, by sequence order.
    pub last_out_ts: Option<(u32, Instant)>,
    /// NTP middle 32 bits of our last SRs: an RR's LSR must be one of them to give an RTT.
    sr_sent: [u32; 4],
    sr_next: usize,
    rtx_seq: u16,
    pub packets: u64,
    pub bytes: u64,
    pub rtx_packets: u64,
    pub rate: RateMeter,
    pub nack_count: u64,
    pub nack_packet_count: u64,
    pub pli_count: u64,
    pub fir_count: u64,
    pub rtt: Option<Duration>,
    pub fraction_lost: u8,
    pub packets_lost: u32,
    pub jitter: u32,
    pub score: u8,
    /// (ntp middle, sent at) of our SRs, to compute RTT from RRs.
    pub buffer: Option<RetransmitBuffer>,
}

impl SendStream {
    pub fn new(
        ssrc: u32,
        rtx: Option<(u32, u8)>,
        mime_type: String,
        clock_rate: u32,
        nack_enabled: bool,
        initial_seq: u16,
        ts_offset: u32,
    ) -> Self {
        Self {
            ssrc,
            rtx_ssrc: rtx.map(|r| r.0),
            pt_rtx: rtx.map(|r| r.1),
            mime_type,
            clock_rate: clock_rate.max(1),
            seq_offset: 0,
            anchor_in: None,
            last_out_seq: initial_seq.wrapping_sub(1),
            ts_offset,
            prev_ts_offset: None,
            ts_restart: false,
            last_out_ts: None,
            sr_sent: [0; 4],
            sr_next: 0,
            rtx_seq: initial_seq ^ 0x5555,
            packets: 0,
            bytes: 0,
            rtx_packets: 0,
            rate: RateMeter::default(),
            nack_count: 0,
            nack_packet_count: 0,
            pli_count: 0,
            fir_count: 0,
            rtt: None,
            fraction_lost: 0,
            packets_lost: 0,
            jitter: 0,
            score: 10,
            buffer: nack_enabled.then(RetransmitBuffer::new),
        }
    }

    /// Forget the anchor: the next forwarded packet continues right after the last sent one.
    pub fn resync(&mut self) {
        self.anchor_in = None;
    }

    /// The producer's stream restarted in new sequence and timestamp spaces: the next forwarded
    /// packet continues right after the last sent one, in sequence numbers and in time.
    pub fn restart(&mut self) {
        self.anchor_in = None;
        self.ts_restart = true;
    }

    pub fn needs_sync(&self) -> bool {
        self.anchor_in.is_none()
    }

    /// The output sequence number for input `ext_seq`, or `None` when the packet predates the
    /// current anchor (sent before a pause, or older than a resync).
    pub fn map_seq(&mut self, ext_seq: u64) -> Option<u16> {
        match self.anchor_in {
            None => {
                self.anchor_in = Some(ext_seq);
                self.seq_offset = self
                    .last_out_seq
                    .wrapping_add(1)
                    .wrapping_sub(ext_seq as u16);
            }
            Some(a) if ext_seq < a => return None,
            Some(_) => {}
        }
        let out = (ext_seq as u16).wrapping_add(self.seq_offset);
        if out.wrapping_sub(self.last_out_seq) < 0x8000 {
            self.last_out_seq = out;
        }
        Some(out)
    }

    /// The output timestamp of a packet forwarded now (input `ext_seq`, timestamp `ts`). After
    /// a restart, the first one continues the output timeline by the time elapsed since the
    /// last packet sent, so playback does not jump.
    pub fn map_ts(&mut self, ext_seq: u64, ts: u32, now: Instant) -> u32 {
        if self.ts_restart {
            self.ts_restart = false;
            if let Some((last, at)) = self.last_out_ts {
                let elapsed =
                    now.saturating_duration_since(at).as_secs_f64() * self.clock_rate as f64;
                let out = last.wrapping_add((elapsed as u32).max(1));
                self.prev_ts_offset = Some((ext_seq, self.ts_offset));
                self.ts_offset = out.wrapping_sub(ts);
            }
        }
        self.retransmitted_ts(ext_seq, ts)
    }

    /// The output timestamp of input packet `ext_seq` sent before (a retransmission).
    pub fn retransmitted_ts(&self, ext_seq: u64, ts: u32) -> u32 {
        match self.prev_ts_offset {
            Some((from, prev)) if ext_seq < from => ts.wrapping_add(prev),
            _ => ts.wrapping_add(self.ts_offset),
        }
    }

    /// Packet `out_seq` (timestamp `out_ts`, `len` bytes) was sent.
    pub fn on_sent(&mut self, out_seq: u16, out_ts: u32, len: usize, now: Instant) {
        self.packets += 1;
        self.bytes += len as u64;
        self.rate.add(len, now);
        // The newest by sequence order (a late packet's or a stray timestamp cannot move it).
        if out_seq == self.last_out_seq {
            self.last_out_ts = Some((out_ts, now));
        }
    }

    pub fn next_rtx_seq(&mut self) -> u16 {
        self.rtx_seq = self.rtx_seq.wrapping_add(1);
        self.rtx_seq
    }

    /// Our SR: NTP now and the RTP time that corresponds to it in our (rewritten) timeline.
    /// `producer_rtp_now` is the producer's RTP time now (from its SR or last packet).
    pub fn sender_report(
        &mut self,
        now: Instant,
        ntp: &NtpClock,
        producer_rtp_now: Option<u32>,
    ) -> Option<crate::proto::rtcp::Rtcp> {
        // The producer's RTP time in our timeline; while a restart has not been re-anchored yet,
        // our own last packet's timeline (the producer's is in a space we do not map yet).
        let rtp = match producer_rtp_now.filter(|_| !self.ts_restart) {
            Some(r) => r.wrapping_add(self.ts_offset),
            None => {
                let (ts, at) = self.last_out_ts?;
                let d = now.saturating_duration_since(at).as_secs_f64() * self.clock_rate as f64;
                ts.wrapping_add(d as u32)
            }
        };
        self.last_out_ts?;
        let ntp = ntp.ntp(now);
        self.sr_sent[self.sr_next] = ntp_middle(ntp);
        self.sr_next = (self.sr_next + 1) % self.sr_sent.len();
        Some(crate::proto::rtcp::Rtcp::SenderReport {
            ssrc: self.ssrc,
            ntp,
            rtp,
            packets: self.packets as u32,
            octets: self.bytes as u32,
            reports: vec![],
        })
    }

    /// Processes the RR block about this stream: RTT (from LSR/DLSR), loss, score.
    pub fn on_report_block(&mut self, b: &ReportBlock, now: Instant, ntp: &NtpClock) {
        self.fraction_lost = b.fraction_lost;
        self.packets_lost = b.total_lost;
        self.jitter = b.jitter;
        self.score = score_from_loss(b.fraction_lost);
        // Only an LSR of one of our recent SRs gives an RTT: a stray or stale report cannot
        // set the retransmission pacing.
        if b.lsr != 0 && self.sr_sent.contains(&b.lsr) {
            let now_mid = ntp_middle(ntp.ntp(now));
            let rtt = now_mid.wrapping_sub(b.lsr).wrapping_sub(b.dlsr);
            if rtt < 0x8000_0000 {
                self.rtt = Some(Duration::from_secs_f64(rtt as f64 / 65536.0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_stream_is_continuous_across_resync() {
        let mut s = SendStream::new(5, None, "audio/opus".into(), 48000, false, 100, 0);
        assert_eq!(s.map_seq(1000), Some(100));
        assert_eq!(s.map_seq(1001), Some(101));
        s.resync();
        assert_eq!(s.map_seq(2000), Some(102));
        assert_eq!(s.map_seq(1999), None);
        assert_eq!(s.map_seq(2001), Some(103));
    }

    #[test]
    fn a_restart_continues_sequence_and_time() {
        let t0 = crate::test_epoch();
        let mut s = SendStream::new(5, None, "audio/opus".into(), 48000, true, 100, 7);
        for i in 0..3u64 {
            let out = s.map_seq(70_000 + i).unwrap();
            let ts = s.map_ts(
                70_000 + i,
                960 * i as u32,
                t0 + Duration::from_millis(20 * i),
            );
            s.on_sent(out, ts, 50, t0 + Duration::from_millis(20 * i));
        }
        assert_eq!(s.last_out_ts.unwrap().0, 1927);
        s.restart();
        let t1 = t0 + Duration::from_millis(60);
        assert_eq!(s.map_seq(200_000), Some(103));
        assert_eq!(s.map_ts(200_000, 3_000_000_000, t1), 1927 + 960);
        assert_eq!(s.map_ts(200_001, 3_000_000_960, t1), 1927 + 1920);
        // A retransmission from before the restart keeps its timestamp.
        assert_eq!(s.retransmitted_ts(70_001, 960), 967);
        assert_eq!(s.retransmitted_ts(200_000, 3_000_000_000), 1927 + 960);
    }

    #[test]
    fn the_timeline_follows_sequence_order_not_timestamps() {
        let t0 = crate::test_epoch();
        let mut s = SendStream::new(5, None, "video/VP8".into(), 90000, false, 0, 0);
        let out = s.map_seq(70_000).unwrap();
        s.on_sent(out, 1000, 10, t0);
        let late = s.map_seq(69_999);
        assert_eq!(late, None, "before the anchor");
        let out = s.map_seq(70_002).unwrap();
        s.on_sent(out, 4000, 10, t0);
        // A late packet with a far timestamp does not move the timeline.
        let out = s.map_seq(70_001).unwrap();
        s.on_sent(out, 2_000_000_000, 10, t0);
        assert_eq!(s.last_out_ts.unwrap().0, 4000);
    }

    #[test]
    fn rtt_from_lsr_dlsr() {
        let t0 = crate::test_epoch();
        let clock = NtpClock {
            anchor: t0,
            anchor_ntp: 1 << 40,
        };
        let mut s = SendStream::new(5, None, "video/VP8".into(), 90000, false, 0, 0);
        let out = s.map_seq(70_000).unwrap();
        s.on_sent(out, 0, 10, t0);
        let sent = t0 + Duration::from_secs(1);
        let Some(crate::proto::rtcp::Rtcp::SenderReport { ntp, .. }) =
            s.sender_report(sent, &clock, None)
        else {
            panic!("an SR");
        };
        // Remote held it 100 ms; the RR arrives 180 ms after the SR was sent → RTT 80 ms.
        let mut b = ReportBlock {
            ssrc: 5,
            lsr: ntp_middle(ntp),
            dlsr: 6554,
            ..Default::default()
        };
        s.on_report_block(&b, sent + Duration::from_millis(180), &clock);
        let rtt = s.rtt.unwrap().as_millis();
        assert!((79..=81).contains(&rtt), "{rtt}");
        // An LSR that is none of our SRs gives no RTT.
        b.lsr ^= 0x10_0000;
        b.dlsr = 0;
        s.on_report_block(&b, sent + Duration::from_secs(3), &clock);
        assert_eq!(s.rtt.unwrap().as_millis(), rtt);
    }
}
