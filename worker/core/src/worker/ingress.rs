//! RTP from a publisher: find its producer stream, unwrap RTX, validate the sequence number
//! ([`RecvStream::on_packet`](crate::stream::RecvStream::on_packet)), then fan the packet out to
//! the producer's consumers.

use std::time::Instant;

use ferrosfu_fbs::MediaKind;

use super::{IDENTITY_EXT_MAP, Output, Transmit, WorkerCore, bind_by_mid_rid};
use crate::rtcp::Rtcp;
use crate::rtp::{self, OwnExts, Rewrite, RtpHeader};
use crate::stream::RecvVerdict;
use crate::units::{Pt, Ssrc};

impl WorkerCore {
    pub(super) fn rtp_in(&mut self, k: u64, pkt: &[u8], now: Instant) {
        let Ok(hdr) = RtpHeader::parse(pkt) else {
            self.drop_packet(k);
            return;
        };
        let t = self.transports.get_mut(&k).expect("caller looked it up");
        // Every packet that carries a transport-wide sequence number counts for the publisher's
        // bandwidth estimation, before any lookup: RTX, and padding probes on SSRCs of no
        // producer, are part of what it sent (as mediasoup's transport-level accounting).
        if t.twcc_ext_in != 0
            && let Some((_, &[hi, lo])) = hdr.extensions(pkt).find(|(id, _)| *id == t.twcc_ext_in)
        {
            t.twcc_in
                .on_packet(u16::from_be_bytes([hi, lo]), hdr.ssrc.0, now);
        }
        let found = match t.ssrc_producers.get(&hdr.ssrc.0) {
            Some(&f) => Some(f),
            None => bind_by_mid_rid(t, &mut self.producers, &hdr, pkt),
        };
        let Some((pk, enc_i, is_rtx)) = found else {
            t.counters.dropped += 1;
            return;
        };
        let Some(p) = self.producers.get_mut(&pk) else {
            return;
        };
        // RTX: unwrap into the original packet (RFC 4588).
        let mut rtx_buf = Vec::new();
        let (pkt, hdr) = if is_rtx {
            let payload = hdr.payload(pkt);
            let (Some(&apt), true) = (p.rtx_pts.get(&hdr.pt.0), payload.len() >= 2) else {
                p.dropped += 1;
                return;
            };
            let Some(media_ssrc) = p.encodings[enc_i].stream.as_ref().map(|s| s.ssrc) else {
                p.dropped += 1;
                return;
            };
            let osn = u16::from_be_bytes([payload[0], payload[1]]);
            let mut h2 = hdr;
            h2.payload.0 += 2;
            rtp::write_rewritten(
                &mut rtx_buf,
                pkt,
                &h2,
                &Rewrite {
                    ssrc: Ssrc(media_ssrc),
                    pt: Pt(apt),
                    seq: osn,
                    timestamp: hdr.timestamp,
                    marker: hdr.marker,
                    ext_map: &IDENTITY_EXT_MAP,
                    own: OwnExts::default(),
                },
                &[],
            );
            match RtpHeader::parse(&rtx_buf) {
                Ok(h) => (&rtx_buf[..], h),
                Err(_) => return,
            }
        } else {
            (pkt, hdr)
        };
        if !p.media_pts.contains_key(&hdr.pt.0) {
            p.dropped += 1;
            return;
        }
        let Some(stream) = p.encodings[enc_i].stream.as_mut() else {
            return;
        };
        let bad_before = stream.bad_sequence();
        let verdict = stream.on_packet(pkt, hdr.seq, hdr.timestamp, now, is_rtx);
        self.stats.rtp_bad_sequence += stream.bad_sequence() - bad_before;
        match verdict {
            RecvVerdict::Forward { ext, big_gap } => {
                self.accepted(pk, enc_i, pkt, &hdr, ext, now);
                if big_gap {
                    self.request_key_frame(pk, now);
                }
            }
            RecvVerdict::ForwardHeld { ext, restart } => {
                let held = stream.take_held();
                if restart {
                    self.stats.rtp_resyncs += 1;
                    self.restart_consumers(pk, enc_i);
                }
                if let Ok(h) = RtpHeader::parse(&held) {
                    self.accepted(pk, enc_i, &held, &h, ext - 1, now);
                }
                self.accepted(pk, enc_i, pkt, &hdr, ext, now);
                if let Some(s) = self
                    .producers
                    .get_mut(&pk)
                    .and_then(|p| p.encodings[enc_i].stream.as_mut())
                {
                    s.recycle_held(held);
                }
            }
            RecvVerdict::BadSequence | RecvVerdict::Held | RecvVerdict::Duplicate => {}
        }
    }

    /// The producer's stream of encoding `enc_i` restarted in new sequence and timestamp
    /// spaces: its consumers continue their own numbering and timeline after what they sent.
    fn restart_consumers(&mut self, pk: u64, enc_i: usize) {
        // Simple consumers forward the first encoding only.
        if enc_i != 0 {
            return;
        }
        let Some(p) = self.producers.get(&pk) else {
            return;
        };
        for ck in &p.consumers {
            if let Some(c) = self.consumers.get_mut(ck) {
                c.stream.restart();
            }
        }
    }

    /// Packet `ext` of the producer's encoding `enc_i` was accepted: NACK what is missing, keep
    /// it for retransmissions, forward it to the consumers.
    fn accepted(
        &mut self,
        pk: u64,
        enc_i: usize,
        pkt: &[u8],
        hdr: &RtpHeader,
        ext_seq: u64,
        now: Instant,
    ) {
        let Some(p) = self.producers.get_mut(&pk) else {
            return;
        };
        let Some(&(_, _, codec)) = p.media_pts.get(&hdr.pt.0) else {
            p.dropped += 1;
            return;
        };
        let Some(stream) = p.encodings[enc_i].stream.as_mut() else {
            return;
        };
        let nacks = if stream.has_unsent_nacks() {
            stream.poll_nacks(now)
        } else {
            Vec::new()
        };
        let media_ssrc = stream.ssrc;
        let keyframe = rtp::is_keyframe(codec, hdr.payload(pkt));
        if keyframe {
            p.keyframe.on_keyframe();
        }
        let producer_transport = p.transport;
        if let Some(store) = p.encodings[enc_i].store.as_mut() {
            store.put(ext_seq, pkt);
        }
        if !nacks.is_empty() {
            self.send_rtcp(
                producer_transport,
                &[Rtcp::Nack {
                    media_ssrc,
                    seqs: nacks,
                }],
            );
        }
        let ntp = self.clock(now).ntp(now);
        let p = &self.producers[&pk];
        if p.paused || enc_i != 0 {
            // Simple consumers forward the first encoding only.
            return;
        }
        // Fan-out: each consumer rewrites into its own buffer, then its transport protects and
        // sends. The inbound packet is never modified.
        let mut need_key = false;
        for &ck in &p.consumers {
            let Some(c) = self.consumers.get_mut(&ck) else {
                continue;
            };
            if !c.active() {
                continue;
            }
            let out_pt = c.pt_map[hdr.pt.0 as usize & 0x7f];
            if out_pt == 0 {
                continue;
            }
            if c.stream.needs_sync() && c.kind == MediaKind::Video && !keyframe {
                need_key = true;
                continue;
            }
            let Some(out_seq) = c.stream.map_seq(ext_seq) else {
                continue;
            };
            let out_ts = c.stream.map_ts(ext_seq, hdr.timestamp, now);
            if let Some(b) = c.stream.buffer.as_mut() {
                b.record(out_seq, ext_seq);
            }
            let Some(t) = self.transports.get_mut(&c.transport) else {
                continue;
            };
            let Some(tuple) = t.send_tuple(false) else {
                continue;
            };
            let rw = Rewrite {
                ssrc: Ssrc(c.stream.ssrc),
                pt: Pt(out_pt),
                seq: out_seq,
                timestamp: out_ts,
                marker: hdr.marker,
                ext_map: &c.ext_map,
                own: c.own_exts(|| t.next_twcc_seq(), ntp),
            };
            // One rewrite buffer for every consumer: it stays in cache across the fan-out.
            let buf = &mut self.rewrite_buf;
            rtp::write_rewritten(buf, pkt, hdr, &rw, &[]);
            let len = buf.len();
            if let Some(data) = t.protect(buf, false) {
                t.counters.rtp_sent += 1;
                t.counters.bytes_sent += data.len() as u64;
                t.counters.send_rate.add(data.len(), now);
                self.outputs
                    .push_back(Output::Transmit(Transmit { tuple, data }));
                c.stream.on_sent(out_seq, out_ts, len, now);
            }
        }
        if need_key {
            self.request_key_frame(pk, now);
        }
    }
}
