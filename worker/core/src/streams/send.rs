//! What a consumer sends ([`SendStream`]): sequence/timestamp rewriting, retransmission
//! mapping, sender reports, RR processing, score.

use std::time::{Duration, Instant};

use crate::proto::rtcp::{ReportBlock, ntp_middle};
use crate::streams::recv::{NtpClock, RateMeter, score_from_loss};
use crate::streams::retransmit::RetransmitBuffer;
use crate::streams::seq_map::SeqMap;

/// A stream a consumer sends.
#[derive(Debug)]
pub struct SendStream {
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
    pub pt_rtx: Option<u8>,
    pub mime_type: String,
    pub clock_rate: u32,
    /// Output sequence numbers: consecutive over the packets forwarded, the ones a layered
    /// consumer drops ([`SendStream::drop_seq`]) taken out; re-anchored after pause/resume or a
    /// switch of encoding.
    seq: SeqMap,
    /// Input extended seq at which the current anchor starts; older packets are dropped.
    anchor_in: Option<u64>,
    /// Output timestamp = input timestamp + offset (mod 2^32); re-anchored after a restart or a
    /// switch of encoding.
    ts_offset: u32,
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
    /// What each sent packet was, for retransmissions (NACK negotiated).
    pub buffer: Option<RetransmitBuffer>,
}

/// How far ahead of the last packet sent a switch of encoding may place the first packet of the
/// new one by the sender's clock (more: the mapping is not trusted, elapsed time is used).
const MAX_SWITCH_AHEAD: Duration = Duration::from_secs(1);

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
            seq: SeqMap::continuing_after(16, initial_seq.wrapping_sub(1)),
            anchor_in: None,
            ts_offset,
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

    /// The newest output sequence number.
    pub fn last_out_seq(&self) -> u16 {
        self.seq.max_output()
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
    /// current anchor (sent before a pause, or older than a resync) or was dropped.
    pub fn map_seq(&mut self, ext_seq: u64) -> Option<u16> {
        match self.anchor_in {
            None => {
                self.anchor_in = Some(ext_seq);
                self.seq.sync((ext_seq as u16).wrapping_sub(1));
            }
            Some(a) if ext_seq < a => return None,
            Some(_) => {}
        }
        self.seq.input(ext_seq as u16)
    }

    /// Input `ext_seq` (of the anchored stream) is not forwarded: the output sequence closes
    /// the gap, so the receiver sees no loss.
    pub fn drop_seq(&mut self, ext_seq: u64) {
        if self.anchor_in.is_some_and(|a| ext_seq >= a) {
            self.seq.drop_input(ext_seq as u16);
        }
    }

    /// The output timestamp of a packet forwarded now (input `ext_seq`, timestamp `ts`). After
    /// a restart, the first one continues the output timeline by the time elapsed since the
    /// last packet sent, so playback does not jump.
    pub fn map_ts(&mut self, ts: u32, now: Instant) -> u32 {
        if self.ts_restart {
            self.ts_restart = false;
            self.continue_timeline(ts, None, now);
        }
        ts.wrapping_add(self.ts_offset)
    }

    /// Input timestamp `ts` in the output timeline as it is now (no re-anchoring).
    pub fn output_ts(&self, ts: u32) -> u32 {
        ts.wrapping_add(self.ts_offset)
    }

    /// The next packet forwarded (timestamp `ts`) comes from another encoding, another timeline:
    /// its output timestamp is `same_instant` (the output time of the instant the sender
    /// stamped `ts`, from its sender reports) when that is after the last packet sent and not
    /// far ahead of it, one tick after the last packet when it is at or just before it (the
    /// same captured frame), else the last one plus the time elapsed since it was sent.
    pub fn switch_timeline(&mut self, ts: u32, same_instant: Option<u32>, now: Instant) {
        self.ts_restart = false;
        self.continue_timeline(ts, same_instant, now);
    }

    fn continue_timeline(&mut self, ts: u32, same_instant: Option<u32>, now: Instant) {
        let Some((last, at)) = self.last_out_ts else {
            return;
        };
        let ticks = |d: Duration| (d.as_secs_f64() * f64::from(self.clock_rate)) as u32;
        let ahead = same_instant.map(|m| m.wrapping_sub(last) as i32);
        let out = match ahead {
            Some(a) if a > 0 && a as u32 <= ticks(MAX_SWITCH_AHEAD) => last.wrapping_add(a as u32),
            Some(a) if a <= 0 && a.unsigned_abs() <= ticks(MAX_SWITCH_AHEAD) => {
                last.wrapping_add(1)
            }
            _ => last.wrapping_add(ticks(now.saturating_duration_since(at)).max(1)),
        };
        self.ts_offset = out.wrapping_sub(ts);
    }

    /// Packet `out_seq` (timestamp `out_ts`, `len` bytes) was sent.
    pub fn on_sent(&mut self, out_seq: u16, out_ts: u32, len: usize, now: Instant) {
        self.packets += 1;
        self.bytes += len as u64;
        self.rate.add(len, now);
        // The newest by sequence order (a late packet's or a stray timestamp cannot move it).
        if out_seq == self.last_out_seq() {
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

    /// Processes the RR block about this stream: RTT (from LSR/DLSR), loss, score. Returns the
    /// RTT the block measured, if it did.
    pub fn on_report_block(
        &mut self,
        b: &ReportBlock,
        now: Instant,
        ntp: &NtpClock,
    ) -> Option<Duration> {
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
                return self.rtt;
            }
        }
        None
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
            let ts = s.map_ts(960 * i as u32, t0 + Duration::from_millis(20 * i));
            s.on_sent(out, ts, 50, t0 + Duration::from_millis(20 * i));
        }
        assert_eq!(s.last_out_ts.unwrap().0, 1927);
        s.restart();
        let t1 = t0 + Duration::from_millis(60);
        assert_eq!(s.map_seq(200_000), Some(103));
        assert_eq!(s.map_ts(3_000_000_000, t1), 1927 + 960);
        assert_eq!(s.map_ts(3_000_000_960, t1), 1927 + 1920);
    }

    #[test]
    fn dropped_inputs_leave_no_gap_in_the_output() {
        let mut s = SendStream::new(5, None, "video/VP8".into(), 90000, false, 100, 0);
        assert_eq!(s.map_seq(1000), Some(100));
        s.drop_seq(1001);
        s.drop_seq(1002);
        assert_eq!(s.map_seq(1003), Some(101));
        assert_eq!(s.map_seq(1002), None, "a late copy of a dropped one");
        s.drop_seq(999);
        assert_eq!(
            s.map_seq(1004),
            Some(102),
            "a drop before the anchor changes nothing"
        );
    }

    #[test]
    fn a_switch_of_encoding_continues_the_timeline_at_the_senders_instant() {
        let t0 = crate::test_epoch();
        let mut s = SendStream::new(5, None, "video/VP8".into(), 90000, false, 0, 1000);
        let out = s.map_seq(70_000).unwrap();
        let ts = s.map_ts(9000, t0);
        assert_eq!(ts, 10_000);
        s.on_sent(out, ts, 10, t0);
        // The other encoding stamps the same instant 5,000,000 ticks later; its next frame,
        // 3000 ticks on, follows the last one sent by 3000.
        s.switch_timeline(5_003_000, Some(13_000), t0);
        assert_eq!(s.map_ts(5_003_000, t0), 13_000);
        assert_eq!(s.map_ts(5_006_000, t0), 16_000);
        s.on_sent(s.last_out_seq(), 16_000, 10, t0);
        // The same captured instant as the last packet: one tick after it.
        s.switch_timeline(77, Some(16_000), t0);
        assert_eq!(s.map_ts(77, t0), 16_001);
        // No mapping (or one far off): the time elapsed since the last packet.
        let t1 = t0 + Duration::from_millis(100);
        s.switch_timeline(5, None, t1);
        assert_eq!(s.map_ts(5, t1), 16_000 + 9000);
        s.switch_timeline(5, Some(16_000 + 900_000), t1);
        assert_eq!(s.map_ts(5, t1), 16_000 + 9000);
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
