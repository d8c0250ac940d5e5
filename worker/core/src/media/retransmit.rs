//! Retransmission: a subscriber's NACK answered from the producer's packet store, on the
//! consumer's RTX stream (RFC 4588) when negotiated, else as the original packet again; each
//! sequence number at most once per RTT.

use std::time::{Duration, Instant};

use crate::WorkerCore;
use crate::proto::rtp::{self, Rewrite, RtpHeader};
use crate::tables::ConsumerKey;
use crate::units::{Pt, Ssrc};

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
        // Simple consumers forward (and so retransmit) the producer's first encoding.
        let Some(store) = self
            .tables
            .producers
            .get(c.producer)
            .and_then(|p| p.encodings.first())
            .and_then(|e| e.store.as_ref())
        else {
            return;
        };
        let Some(t) = self.tables.transports.get_mut(c.transport) else {
            return;
        };
        let Some(tuple) = t.send_tuple(false) else {
            return;
        };
        for &seq in seqs {
            let Some(buffer) = c.stream.buffer.as_mut() else {
                return;
            };
            let Some((in_ext_seq, pkt)) = buffer
                .get_for_resend(seq, now, min_interval)
                .and_then(|in_ext_seq| Some((in_ext_seq, store.get(in_ext_seq)?)))
            else {
                continue;
            };
            let Ok(hdr) = RtpHeader::parse(pkt) else {
                continue;
            };
            let out_pt = c.pt_map[hdr.pt.0 as usize & 0x7f];
            if out_pt == 0 {
                continue;
            }
            let timestamp = c.stream.retransmitted_ts(in_ext_seq, hdr.timestamp);
            // RFC 4588: on the RTX stream, with the original sequence number before the payload.
            let rtx = c.stream.rtx_ssrc.zip(c.stream.pt_rtx);
            let (ssrc, pt, out_seq) = match rtx {
                Some((rtx_ssrc, rtx_pt)) => (rtx_ssrc, rtx_pt, c.stream.next_rtx_seq()),
                None => (c.stream.ssrc, out_pt, seq),
            };
            let osn = rtx.map(|_| seq.to_be_bytes());
            let rw = Rewrite {
                ssrc: Ssrc(ssrc),
                pt: Pt(pt),
                seq: out_seq,
                timestamp,
                marker: hdr.marker,
                ext_map: &c.ext_map,
                own: c.own_exts(|| t.next_twcc_seq(), ntp),
            };
            let buf = &mut self.rewrite_buf;
            rtp::write_rewritten(buf, pkt, &hdr, &rw, osn.as_ref().map_or(&[], |o| &o[..]));
            if let Some(sent) = self
                .transmits
                .push_with(tuple, |out| t.protect_into(buf, false, out))
            {
                c.stream.rtx_packets += 1;
                t.counters.rtx_sent += 1;
                t.counters.bytes_sent += sent as u64;
            }
        }
    }
}
