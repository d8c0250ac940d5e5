//! RTP from a publisher: find its producer stream, unwrap RTX, validate the sequence number
//! ([`RecvStream::on_packet`](crate::streams::recv::RecvStream::on_packet)), then fan the packet out to
//! the producer's consumers ([`fanout`](super::fanout)).

use std::time::Instant;

use slotmap::SlotMap;

use crate::WorkerCore;
use crate::producer::Producer;
use crate::proto::rtp::{self, OwnExts, Rewrite, RtpHeader};
use crate::streams::recv::RecvVerdict;
use crate::tables::{ProducerKey, TransportKey};
use crate::transport::Transport;
use crate::units::{Pt, Ssrc};

/// Extension ids unchanged: an RTX packet unwrapped keeps the publisher's ids.
static IDENTITY_EXT_MAP: [u8; 256] = {
    let mut m = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        m[i] = i as u8;
        i += 1;
    }
    m
};

impl WorkerCore {
    /// RTP packet `pkt` of transport `k`, unprotected, received at `arrival`.
    pub(super) fn rtp_in(&mut self, k: TransportKey, pkt: &[u8], arrival: Instant, now: Instant) {
        let Ok(hdr) = RtpHeader::parse(pkt) else {
            self.drop_packet(k);
            return;
        };
        let t = &mut self.tables.transports[k];
        // Every packet that carries a transport-wide sequence number counts for the publisher's
        // bandwidth estimation, before any lookup: RTX, and padding probes on SSRCs of no
        // producer, are part of what it sent (as mediasoup's transport-level accounting). The
        // feedback reports when the packet reached the host, not when the worker read it.
        if t.twcc_ext_in != 0 {
            if !t.twcc_early.is_empty() {
                t.twcc_early.replay(t.twcc_ext_in, &mut t.twcc_in, now);
            }
            if let Some((_, &[hi, lo])) = hdr.extensions(pkt).find(|(id, _)| *id == t.twcc_ext_in) {
                t.twcc_in
                    .on_packet_arrived(u16::from_be_bytes([hi, lo]), hdr.ssrc.0, arrival, now);
            }
        } else if t.producers.is_empty() {
            // Before the first produce() the id is unknown: keep the arrival for when it is.
            t.twcc_early
                .push(hdr.ssrc.0, arrival, now, hdr.extensions(pkt));
        } else if !t.twcc_early.is_empty() {
            // The producers do not use transport-wide-cc.
            t.twcc_early.clear();
        }
        let found = match t.ssrc_producers.get(&hdr.ssrc.0) {
            Some(&f) => Some(f),
            None => bind_by_mid_rid(t, &mut self.tables.producers, &hdr, pkt),
        };
        let Some((pk, enc_i, is_rtx)) = found else {
            t.counters.dropped += 1;
            return;
        };
        let Some(p) = self.tables.producers.get_mut(pk) else {
            return;
        };
        self.stats.rtp(p.kind).received(pkt.len());
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
        if !is_rtx {
            let e = &mut p.encodings[enc_i];
            e.last_seen = Some(now);
            if !e.active {
                self.encoding_alive(pk, enc_i, now);
            }
        }
        let Some(p) = self.tables.producers.get_mut(pk) else {
            return;
        };
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
                    self.request_key_frame(pk, enc_i, now);
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
                    .tables
                    .producers
                    .get_mut(pk)
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
    fn restart_consumers(&mut self, pk: ProducerKey, enc_i: usize) {
        let Some(p) = self.tables.producers.get(pk) else {
            return;
        };
        for &ck in &p.consumers {
            if let Some(c) = self.tables.consumers.get_mut(ck) {
                // Simple consumers forward the first encoding, simulcast ones the one they send.
                let sends_it = match &c.layers {
                    Some(l) => l.current_encoding() == Some(enc_i as u8),
                    None => enc_i == 0,
                };
                if sends_it {
                    c.stream.restart();
                }
            }
        }
    }
}

/// Finds the producer of an unknown SSRC through the MID and RID header extensions, and binds
/// the SSRC to it.
pub(crate) fn bind_by_mid_rid(
    t: &mut Transport,
    producers: &mut SlotMap<ProducerKey, Producer>,
    hdr: &RtpHeader,
    pkt: &[u8],
) -> Option<(ProducerKey, usize, bool)> {
    for &pk in &t.producers {
        let p = producers.get_mut(pk)?;
        if p.mid_ext == 0 {
            continue;
        }
        let Some(mid) = hdr.extension(pkt, p.mid_ext) else {
            continue;
        };
        if p.params.mid.as_deref().map(str::as_bytes) != Some(mid) {
            continue;
        }
        let rid = (p.rid_ext != 0)
            .then(|| hdr.extension(pkt, p.rid_ext))
            .flatten();
        let rrid = (p.rrid_ext != 0)
            .then(|| hdr.extension(pkt, p.rrid_ext))
            .flatten();
        let (want, is_rtx) = match (rid, rrid) {
            (Some(r), _) => (Some(r), false),
            (None, Some(r)) => (Some(r), true),
            (None, None) => (None, p.rtx_pts.contains_key(&hdr.pt.0)),
        };
        let i = match want {
            Some(r) => p
                .encodings
                .iter()
                .position(|e| e.rid.as_deref().map(str::as_bytes) == Some(r))?,
            None if p.encodings.len() == 1 => 0,
            None => continue,
        };
        if is_rtx {
            p.encodings[i].stream.as_ref()?;
            if let Some(s) = p.encodings[i].stream.as_mut() {
                s.rtx_ssrc = Some(hdr.ssrc.0);
            }
        } else {
            p.bind_ssrc(i, hdr.ssrc.0);
        }
        t.ssrc_producers.insert(hdr.ssrc.0, (pk, i, is_rtx));
        return Some((pk, i, is_rtx));
    }
    None
}
