//! Retransmission: a subscriber's NACK answered from the producer's packet store, on the
//! consumer's RTX stream (RFC 4588) when negotiated, else as the original packet again; each
//! sequence number at most once per RTT.

use std::time::{Duration, Instant};

use crate::WorkerCore;
use crate::bwe::pacer::Class;
use crate::proto::rtp::{self, Rewrite, RtpHeader};
use crate::proto::vp8::Vp8Descriptor;
use crate::proto::vp9::Vp9Descriptor;
use crate::tables::ConsumerKey;
use crate::units::{Pt, Ssrc};

/// A pacer queue longer than this skips retransmissions.
const CONGESTED_QUEUE: Duration = Duration::from_millis(200);

impl WorkerCore {
    pub(super) fn retransmit(&mut self, ck: ConsumerKey, seqs: &[u16], now: Instant) {
        let ntp = self.clock(now).ntp(now);
        let Some(c) = self.tables.consumers.get_mut(ck) else {
            return;
        };
        c.stream.nack_count += 1;
        c.stream.nack_packet_count += seqs.len() as u64;
        let min_interval = c
            .stream
            .rtt
            .unwrap_or(Duration::from_millis(10))
            .max(Duration::from_millis(10));
        let Some(p) = self.tables.producers.get(c.producer) else {
            return;
        };
        let Some(t) = self.tables.transports.get_mut(c.transport) else {
            return;
        };
        let Some(tuple) = t.send_tuple(false) else {
            return;
        };
        // Congested (the pacer holds more than it sends in this long): a retransmission would
        // only add to the queue it was lost in, and arrive too late to be played.
        if t.pacer.queue_time() > CONGESTED_QUEUE {
            t.counters.rtx_skipped += seqs.len() as u64;
            return;
        }
        let mut queued = false;
        for &seq in seqs {
            let Some(buffer) = c.stream.buffer.as_mut() else {
                break;
            };
            // A packet of an encoding the consumer no longer sends is of no use: the decoder
            // restarted at the new encoding's keyframe.
            let current = c.layers.as_ref().and_then(|l| l.current_encoding());
            let Some((from, pkt)) = buffer
                .get_for_resend(seq, now, min_interval)
                .filter(|from| current.is_none_or(|e| e == from.encoding))
                .and_then(|from| {
                    let e = p.encodings.get(usize::from(from.encoding))?;
                    Some((from, e.store.as_ref()?.get(from.in_ext_seq)?))
                })
            else {
                continue;
            };
            let Ok(hdr) = RtpHeader::parse(pkt) else {
                continue;
            };
            // Nor is one of a spatial layer over an SVC consumer's target (after a switch
            // down, a congested link would carry retransmissions of the dropped layer instead
            // of the layers it still gets).
            if let Some(target) = c.layers.as_ref().and_then(|l| l.svc_spatial_target())
                && Vp9Descriptor::parse(hdr.payload(pkt))
                    .is_some_and(|d| d.spatial_layer() > target)
            {
                t.counters.rtx_skipped += 1;
                continue;
            }
            let out_pt = c.pt_map[hdr.pt.0 as usize & 0x7f];
            if out_pt == 0 {
                continue;
            }
            let timestamp = from.timestamp;
            // RFC 4588: on the RTX stream, with the original sequence number before the payload.
            let rtx = c.stream.rtx_ssrc.zip(c.stream.pt_rtx);
            let (ssrc, pt, out_seq) = match rtx {
                Some((rtx_ssrc, rtx_pt)) => (rtx_ssrc, rtx_pt, c.stream.next_rtx_seq()),
                None => (c.stream.ssrc, out_pt, seq),
            };
            let osn = rtx.map(|_| seq.to_be_bytes());
            let direct = t.pacer.admit(Class::Retransmission, pkt.len(), now);
            let rw = Rewrite {
                ssrc: Ssrc(ssrc),
                pt: Pt(pt),
                seq: out_seq,
                timestamp,
                marker: from.marker,
                ext_map: &c.ext_map,
                own: c.own_exts(|| if direct { t.next_twcc_seq() } else { 0 }, ntp),
            };
            let twcc = rw.own.twcc.map(|(_, seq)| seq);
            let buf = &mut self.rewrite_buf;
            rtp::write_rewritten(buf, pkt, &hdr, &rw, osn.as_ref().map_or(&[], |o| &o[..]));
            // The same PictureID / TL0PICIDX as the first time.
            if let Some(ids) = from.picture
                && let Some(d) = Vp8Descriptor::parse(hdr.payload(pkt))
            {
                let at = buf.len() - hdr.payload(pkt).len();
                d.rewrite(&mut buf[at..], ids);
            }
            if !direct {
                if t.pace(
                    buf,
                    (Class::Retransmission, c.kind),
                    (c.twcc_ext, c.abs_send_time_ext),
                    ck,
                ) {
                    c.stream.rtx_packets += 1;
                    queued = true;
                }
                continue;
            }
            if let Some(sent) = self
                .transmits
                .push_with(tuple, |out| t.protect_into(buf, false, out))
            {
                c.stream.rtx_packets += 1;
                t.on_rtp_sent(sent, twcc, true, None, now);
                self.stats.rtp(c.kind).sent(buf.len(), true);
            }
        }
        if queued {
            let tk = c.transport;
            self.pacing(tk, now);
        }
    }
}
