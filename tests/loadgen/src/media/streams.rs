//! The media streams: a publisher's pacer (VP8-like frames at 30 fps or Opus-sized audio every
//! 20 ms, keyframes every second and on request) and a consumer's receive counting (extended
//! sequence numbers); the RTP/RTCP bytes they read and write.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::stats::wall_ns;

use super::{
    AUDIO_PACKET, AUDIO_PTIME, KEYFRAME_INTERVAL, MAGIC, MediaKind, PACING_FACTOR, PeerId,
    SendSpec, VIDEO_FPS,
};

/// A received RTP stream (one consumer).
pub(super) struct RecvStream {
    pub(super) ssrc: u32,
    pub(super) producer_id: String,
    /// Highest extended sequence number, once a packet arrived.
    pub(super) highest: Option<u64>,
    pub(super) received: u64,
    /// Packets that arrived while the window was open.
    pub(super) window_arrived: u64,
    /// Decrypted packets whose send stamp falls in the window (counted through the grace).
    pub(super) window_stamped: u64,
    /// `highest` when the window opened, and when it closed.
    pub(super) window_base: Option<u64>,
    pub(super) window_end: Option<u64>,
}

impl RecvStream {
    /// A stream of `producer_id` on `ssrc`, nothing received yet.
    pub(super) fn new(ssrc: u32, producer_id: String) -> RecvStream {
        RecvStream {
            ssrc,
            producer_id,
            highest: None,
            received: 0,
            window_arrived: 0,
            window_stamped: 0,
            window_base: None,
            window_end: None,
        }
    }

    pub(super) fn on_seq(&mut self, seq: u16) {
        match self.highest {
            None => self.highest = Some(u64::from(seq)),
            Some(h) => {
                let diff = seq.wrapping_sub(h as u16) as i16;
                if diff > 0 {
                    self.highest = Some(h + diff as u64);
                }
            }
        }
        self.received += 1;
    }
}

/// A publisher's outgoing stream and its pacer.
pub(super) struct OutStream {
    pub(super) peer: PeerId,
    pub(super) spec: SendSpec,
    pub(super) seq: u16,
    pub(super) rtp_ts: u32,
    /// The generator's own per-stream counter, written in the payload.
    pub(super) counter: u32,
    /// Next packet due (None until the peer is connected).
    pub(super) next_due: Option<Instant>,
    /// Video: start of the current frame, packets left in it, gap between them.
    pub(super) frame_start: Instant,
    pub(super) frame_left: u32,
    pub(super) frame_packets: u32,
    pub(super) pace_gap: Duration,
    pub(super) budget: f64,
    pub(super) keyframe_due: bool,
    pub(super) last_keyframe: Option<Instant>,
    pub(super) frame_is_key: bool,
    pub(super) sent: u64,
    pub(super) window_sent: u64,
}

impl OutStream {
    pub(super) fn new(peer: PeerId, spec: SendSpec, now: Instant) -> OutStream {
        let seed = crate::peer::random_bytes(6);
        let packet_bits = (spec.packet_size.max(64) * 8) as f64;
        let pace_gap =
            Duration::from_secs_f64(packet_bits / (PACING_FACTOR * spec.bitrate.max(1) as f64));
        OutStream {
            peer,
            seq: u16::from_be_bytes([seed[0], seed[1]]),
            rtp_ts: u32::from_be_bytes([seed[2], seed[3], seed[4], seed[5]]),
            counter: 0,
            next_due: None,
            frame_start: now,
            frame_left: 0,
            frame_packets: 0,
            pace_gap,
            budget: 0.0,
            keyframe_due: true,
            last_keyframe: None,
            frame_is_key: false,
            sent: 0,
            window_sent: 0,
            spec,
        }
    }

    /// Builds the next packet (plaintext RTP) into `buf` and advances the pacer.
    pub(super) fn next_packet(&mut self, now: Instant, buf: &mut Vec<u8>) {
        buf.clear();
        self.counter = self.counter.wrapping_add(1);
        self.seq = self.seq.wrapping_add(1);
        let due = self.next_due.unwrap_or(now);
        match self.spec.kind {
            MediaKind::Audio => {
                self.rtp_ts = self.rtp_ts.wrapping_add(960);
                rtp_header(
                    buf,
                    false,
                    self.spec.pt,
                    self.seq,
                    self.rtp_ts,
                    self.spec.ssrc,
                );
                // Opus TOC: config 31 (CELT FB 20 ms), mono, one frame.
                buf.push(0xf8);
                stamp(buf, self.counter);
                buf.resize(AUDIO_PACKET.max(buf.len()), 0x5a);
                self.next_due = Some(next_slot(due, AUDIO_PTIME, now));
            }
            MediaKind::Video => {
                let first = self.frame_left == 0;
                if first {
                    self.start_frame(due, now);
                }
                self.frame_left -= 1;
                let last = self.frame_left == 0;
                rtp_header(
                    buf,
                    last,
                    self.spec.pt,
                    self.seq,
                    self.rtp_ts,
                    self.spec.ssrc,
                );
                if first {
                    // VP8 payload descriptor: S=1, PID=0, then the 3-byte frame tag (RFC 6386
                    // §9.1): P (bit 0) = 0 for a keyframe, show_frame (bit 4), first partition
                    // size (bits 5..24).
                    buf.push(0x10);
                    let part = (self.spec.packet_size.saturating_sub(40) as u32) & 0x7_ffff;
                    let tag = u32::from(!self.frame_is_key) | (1 << 4) | (part << 5);
                    buf.extend_from_slice(&tag.to_le_bytes()[..3]);
                    if self.frame_is_key {
                        // Start code + 640x480.
                        buf.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
                    }
                } else {
                    buf.push(0x00);
                }
                stamp(buf, self.counter);
                buf.resize(self.spec.packet_size.max(buf.len()), 0x5a);
                self.next_due = Some(if last {
                    self.frame_start + frame_interval()
                } else {
                    due + self.pace_gap
                });
            }
        }
        self.sent += 1;
    }

    pub(super) fn start_frame(&mut self, due: Instant, now: Instant) {
        // A pacer far behind (the thread was starved) restarts from now rather than bursting.
        self.frame_start = if now.saturating_duration_since(due) > frame_interval() {
            now
        } else {
            due
        };
        self.budget += self.spec.bitrate as f64 / 8.0 / f64::from(VIDEO_FPS);
        let n = (self.budget / self.spec.packet_size.max(1) as f64)
            .floor()
            .max(1.0);
        self.budget -= n * self.spec.packet_size as f64;
        self.frame_packets = n as u32;
        self.frame_left = self.frame_packets;
        let fit = frame_interval() / self.frame_packets.max(1);
        self.pace_gap = self.pace_gap.min(fit);
        self.rtp_ts = self.rtp_ts.wrapping_add(90_000 / VIDEO_FPS);
        self.frame_is_key = self.keyframe_due
            || self
                .last_keyframe
                .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_INTERVAL);
        if self.frame_is_key {
            self.keyframe_due = false;
            self.last_keyframe = Some(now);
        }
    }
}

pub(super) fn frame_interval() -> Duration {
    Duration::from_secs(1) / VIDEO_FPS
}

/// The next slot of a periodic stream; one far behind restarts from now.
pub(super) fn next_slot(due: Instant, period: Duration, now: Instant) -> Instant {
    let next = due + period;
    if next + period < now {
        now + period
    } else {
        next
    }
}

pub(super) fn rtp_header(buf: &mut Vec<u8>, marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    buf.push(0x80);
    buf.push((u8::from(marker) << 7) | (pt & 0x7f));
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&ts.to_be_bytes());
    buf.extend_from_slice(&ssrc.to_be_bytes());
}

/// `MAGIC`, the stream's counter, the send time (CLOCK_REALTIME ns).
pub(super) fn stamp(buf: &mut Vec<u8>, counter: u32) {
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&counter.to_be_bytes());
    buf.extend_from_slice(&wall_ns().to_be_bytes());
}

/// The send time in a decrypted packet (plaintext RTP), if it carries our stamp.
pub(crate) fn sent_at_ns(plain: &[u8]) -> Option<u64> {
    let payload = &plain[rtp_header_len(plain)?..];
    // The stamp follows the VP8 descriptor (+ frame tag) or the Opus TOC: within 20 bytes.
    let window = &payload[..payload.len().min(32)];
    let at = window.windows(4).position(|w| w == MAGIC)?;
    let ts = payload.get(at + 8..at + 16)?;
    Some(u64::from_be_bytes(ts.try_into().ok()?))
}

/// Length of an RTP header (CSRCs and extension included).
pub(crate) fn rtp_header_len(p: &[u8]) -> Option<usize> {
    let b0 = *p.first()?;
    let mut len = 12 + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        let ext = p.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= p.len()).then_some(len)
}

/// Media SSRCs asked for a keyframe (PLI, FIR) in a plaintext RTCP compound packet.
pub(crate) fn keyframe_requests(rtcp: &[u8], out: &mut Vec<u32>) {
    let mut off = 0;
    while off + 4 <= rtcp.len() {
        let b0 = rtcp[off];
        if b0 >> 6 != 2 {
            return;
        }
        let fmt = b0 & 0x1f;
        let pt = rtcp[off + 1];
        let len = (usize::from(u16::from_be_bytes([rtcp[off + 2], rtcp[off + 3]])) + 1) * 4;
        let Some(pkt) = rtcp.get(off..off + len) else {
            return;
        };
        if pt == 206 && fmt == 1 && pkt.len() >= 12 {
            out.push(u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]));
        } else if pt == 206 && fmt == 4 {
            for fci in pkt.get(12..).unwrap_or_default().chunks_exact(8) {
                out.push(u32::from_be_bytes([fci[0], fci[1], fci[2], fci[3]]));
            }
        }
        off += len;
    }
}

/// An RTCP receiver report (RFC 3550 §6.4.2) from `ssrc` with a block per (source SSRC,
/// extended highest sequence number): no loss, no jitter, no SR seen.
pub(crate) fn receiver_report(ssrc: u32, blocks: &[(u32, u32)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + 24 * blocks.len());
    b.push(0x80 | blocks.len() as u8);
    b.push(201);
    b.extend_from_slice(&((1 + 6 * blocks.len()) as u16).to_be_bytes());
    b.extend_from_slice(&ssrc.to_be_bytes());
    for &(source, highest) in blocks {
        b.extend_from_slice(&source.to_be_bytes());
        b.extend_from_slice(&[0; 4]); // fraction lost, cumulative lost
        b.extend_from_slice(&highest.to_be_bytes());
        b.extend_from_slice(&[0; 12]); // jitter, LSR, DLSR
    }
    b
}

/// Fails when `spec` cannot be sent as configured.
pub(crate) fn check_spec(spec: &SendSpec) -> Result<()> {
    if spec.kind == MediaKind::Video {
        if spec.packet_size < 60 || spec.packet_size > 1400 {
            bail!("packet size {} outside 60..=1400", spec.packet_size);
        }
        if spec.bitrate < 10_000 {
            bail!("bitrate {} below 10 kbit/s", spec.bitrate);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn video_packets_carry_a_vp8_keyframe_and_the_stamp() {
        let now = Instant::now();
        let spec = SendSpec {
            kind: MediaKind::Video,
            ssrc: 7,
            pt: 96,
            bitrate: 2_000_000,
            packet_size: 1200,
        };
        let mut s = OutStream::new(0, spec, now);
        s.next_due = Some(now);
        let mut buf = Vec::new();
        s.next_packet(now, &mut buf);
        assert_eq!(buf.len(), 1200);
        assert_eq!(buf[12], 0x10, "S=1, PID=0");
        assert_eq!(buf[13] & 1, 0, "P=0: keyframe");
        assert_eq!(&buf[16..19], &[0x9d, 0x01, 0x2a]);
        assert!(sent_at_ns(&buf).is_some_and(|t| t > 0));
        // 2 Mbit/s in 1200 B packets at 30 fps: 6 or 7 packets per frame, marker on the last.
        let mut markers = 0;
        let mut n = 1;
        let mut t = now;
        while markers == 0 {
            t = s.next_due.expect("due");
            s.next_packet(t, &mut buf);
            n += 1;
            markers += usize::from(buf[1] & 0x80 != 0);
            assert_eq!(buf[12], 0x00, "continuation");
        }
        assert!((6..=7).contains(&n), "{n} packets in the first frame");
        assert!(t - now < frame_interval());
        assert!((s.spec.pps() - 208.3).abs() < 1.0);
    }

    #[test]
    pub(super) fn receiver_reports_parse() {
        use rtc_rtcp::receiver_report::ReceiverReport;
        let rr = receiver_report(7, &[(0x1111, 70_000), (0x2222, 5)]);
        let mut b = bytes::Bytes::from(rr);
        let packets = rtc_rtcp::packet::unmarshal(&mut b).unwrap();
        let r = packets[0]
            .as_any()
            .downcast_ref::<ReceiverReport>()
            .unwrap();
        assert_eq!(r.ssrc, 7);
        let got: Vec<(u32, u32)> = r
            .reports
            .iter()
            .map(|b| (b.ssrc, b.last_sequence_number))
            .collect();
        assert_eq!(got, vec![(0x1111, 70_000), (0x2222, 5)]);
    }

    #[test]
    pub(super) fn pli_and_fir_are_found_in_a_compound_packet() {
        // RR (empty) + PLI(media 0x0a0b0c0d) + FIR(entry 0x01020304).
        let mut p = vec![0x80, 201, 0, 1, 0, 0, 0, 9];
        p.extend_from_slice(&[0x81, 206, 0, 2, 0, 0, 0, 9, 0x0a, 0x0b, 0x0c, 0x0d]);
        p.extend_from_slice(&[0x84, 206, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0]);
        p.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        let mut out = Vec::new();
        keyframe_requests(&p, &mut out);
        assert_eq!(out, vec![0x0a0b_0c0d, 0x0102_0304]);
        keyframe_requests(&p[..10], &mut out);
        assert_eq!(out.len(), 2, "a truncated packet adds nothing");
    }

    #[test]
    pub(super) fn extended_sequence_survives_wrap_and_reordering() {
        let mut r = RecvStream::new(1, String::new());
        for s in [65534u16, 65535, 1, 0, 2] {
            r.on_seq(s);
        }
        assert_eq!(r.highest, Some(65538));
        assert_eq!(r.received, 5);
    }
}
