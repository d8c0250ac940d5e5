//! Fan-out: a packet a producer accepted is kept for retransmissions, NACKs what it revealed
//! missing, and is rewritten (SSRC, payload type, sequence number, timestamp, header-extension
//! ids and our own extensions) and protected once per consumer, into one reused buffer.

use std::time::Instant;

use ferrosfu_fbs::MediaKind;

use crate::WorkerCore;
use crate::proto::rtcp::Rtcp;
use crate::proto::rtp::{self, Rewrite, RtpHeader};
use crate::tables::ProducerKey;
use crate::units::{Pt, Ssrc};

impl WorkerCore {
    /// Packet `ext` of the producer's encoding `enc_i` was accepted: NACK what is missing, keep
    /// it for retransmissions, forward it to the consumers.
    pub(super) fn accepted(
        &mut self,
        pk: ProducerKey,
        enc_i: usize,
        pkt: &[u8],
        hdr: &RtpHeader,
        ext_seq: u64,
        now: Instant,
    ) {
        let Some(p) = self.tables.producers.get_mut(pk) else {
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
        let p = &self.tables.producers[pk];
        if p.paused || enc_i != 0 {
            // Simple consumers forward the first encoding only.
            return;
        }
        // Fan-out: each consumer rewrites into its own buffer, then its transport protects and
        // sends. The inbound packet is never modified.
        let mut need_key = false;
        for &ck in &p.consumers {
            let Some(c) = self.tables.consumers.get_mut(ck) else {
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
            let Some(t) = self.tables.transports.get_mut(c.transport) else {
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
            if let Some(sent) = self
                .transmits
                .push_with(tuple, |out| t.protect_into(buf, false, out))
            {
                t.counters.rtp_sent += 1;
                t.counters.bytes_sent += sent as u64;
                t.counters.send_rate.add(sent, now);
                c.stream.on_sent(out_seq, out_ts, len, now);
            }
        }
        if need_key {
            self.request_key_frame(pk, now);
        }
    }
}
