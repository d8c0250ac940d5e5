//! Fan-out: a packet a producer accepted is kept for retransmissions, NACKs what it revealed
//! missing, and is rewritten (SSRC, payload type, sequence number, timestamp, header-extension
//! ids and our own extensions) and protected once per consumer, into one reused buffer.

use std::time::Instant;

use ferrosfu_fbs::{Event, HandlerId, MediaEvent, MediaKind, Notification};

use crate::WorkerCore;
use crate::bwe::pacer::Class;
use crate::observers::audio_level_of;
use crate::producer::Producer;
use crate::proto::rtcp::Rtcp;
use crate::proto::rtp::{self, Codec, Rewrite, RtpHeader};
use crate::proto::vp8::Vp8Descriptor;
use crate::proto::vp9::Vp9Descriptor;
use crate::streams::layered::LayerVerdict;
use crate::streams::retransmit::SentFrom;
use crate::tables::ProducerKey;
use crate::units::{Pt, Ssrc};
use crate::worker_core::Output;

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
            p.encodings[enc_i].keyframe.on_keyframe();
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
        let p = &mut self.tables.producers[pk];
        if p.paused {
            return;
        }
        if !p.observers.is_empty()
            && let Some((level, _)) = hdr
                .extension(pkt, p.audio_level_ext)
                .and_then(audio_level_of)
        {
            for &k in &p.observers {
                if let Some(o) = self.tables.observers.get_mut(k) {
                    o.on_audio_level(pk, level, now);
                }
            }
        }
        let enc = enc_i as u8;
        // Parsed once for every consumer: simulcast and SVC consumers select layers by them.
        let layered = p.layered_consumers > 0;
        let vp8 = (layered && codec == Codec::Vp8)
            .then(|| Vp8Descriptor::parse(hdr.payload(pkt)))
            .flatten();
        let vp9 = (layered && codec == Codec::Vp9)
            .then(|| Vp9Descriptor::parse(hdr.payload(pkt)))
            .flatten();
        if layered {
            // What each layer costs, for the allocators of the consumers' transports.
            let (s, t) = match (&vp9, &vp8) {
                (Some(d), _) if p.encodings.len() == 1 => {
                    (d.spatial_id.unwrap_or(0), d.temporal_id.unwrap_or(0))
                }
                (_, Some(d)) => (enc_i as u8, d.tid.unwrap_or(0)),
                _ => (enc_i as u8, 0),
            };
            p.layer_rates.add(s, t, pkt.len(), now);
        }
        // Fan-out: each consumer rewrites into its own buffer, then its transport protects and
        // sends. The inbound packet is never modified.
        // Encodings whose keyframe a consumer waits for (a pipe consumer has at most 32).
        let mut layer_keys = 0u32;
        // Transports that queued packets in their pacer (no allocation unless one did).
        let mut paced = Vec::new();
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
            let mut picture = None;
            let mut marker = hdr.marker;
            if let Some(l) = c.layers.as_deref_mut() {
                match l.on_packet(enc, keyframe, hdr.marker, vp8.as_ref(), vp9.as_ref(), now) {
                    LayerVerdict::Drop { own, want_key } => {
                        if own {
                            c.stream.drop_seq(ext_seq);
                        }
                        if want_key {
                            layer_keys |= 1u32.checked_shl(enc_i as u32).unwrap_or(0);
                        }
                        continue;
                    }
                    LayerVerdict::Forward {
                        resync,
                        switched_from,
                        picture: ids,
                        marker: m,
                    } => {
                        if resync {
                            c.stream.resync();
                        }
                        if let Some(from) = switched_from {
                            if from > enc
                                && let Some(t) = self.tables.transports.get_mut(c.transport)
                                && t.discard_queued(ck) > 0
                            {
                                // The queue may be empty now.
                                if paced.last() != Some(&c.transport) {
                                    paced.push(c.transport);
                                }
                            }
                            let same_instant = same_instant(p, enc_i, from, hdr.timestamp)
                                .map(|ts| c.stream.output_ts(ts));
                            c.stream.switch_timeline(hdr.timestamp, same_instant, now);
                        }
                        picture = ids;
                        marker = m;
                    }
                }
                if let Some(change) = l.layers_change() {
                    self.outputs.push_back(Output::Notify(Notification {
                        handler_id: HandlerId::from(&c.id),
                        event: Event::Media(MediaEvent::ConsumerLayersChange(change)),
                    }));
                }
            } else if enc_i != usize::from(c.encoding) {
                // Simple consumers forward the first encoding only, each stream of a pipe
                // consumer its own.
                continue;
            } else if c.stream.needs_sync() && c.kind == MediaKind::Video && !keyframe {
                layer_keys |= 1u32.checked_shl(enc_i as u32).unwrap_or(0);
                continue;
            }
            let Some(out_seq) = c.stream.map_seq(ext_seq) else {
                continue;
            };
            let out_ts = c.stream.map_ts(hdr.timestamp, now);
            if let Some(b) = c.stream.buffer.as_mut() {
                b.record(
                    out_seq,
                    SentFrom {
                        encoding: enc,
                        in_ext_seq: ext_seq,
                        timestamp: out_ts,
                        marker,
                        picture,
                    },
                );
            }
            let Some(t) = self.tables.transports.get_mut(c.transport) else {
                continue;
            };
            let Some(tuple) = t.send_tuple(false) else {
                continue;
            };
            // Through the pacer: at once while it has room, else queued, numbered when it leaves.
            let class = if c.kind == MediaKind::Audio {
                Class::Audio
            } else {
                Class::Video
            };
            let direct = t.pacer.admit(class, pkt.len(), now);
            let rw = Rewrite {
                ssrc: Ssrc(c.stream.ssrc),
                pt: Pt(out_pt),
                seq: out_seq,
                timestamp: out_ts,
                marker,
                ext_map: &c.ext_map,
                own: c.own_exts(|| if direct { t.next_twcc_seq() } else { 0 }, ntp),
            };
            // One rewrite buffer for every consumer: it stays in cache across the fan-out.
            let buf = &mut self.rewrite_buf;
            rtp::write_rewritten(buf, pkt, hdr, &rw, &[]);
            if let (Some(ids), Some(d)) = (picture, vp8.as_ref()) {
                let at = buf.len() - hdr.payload(pkt).len();
                d.rewrite(&mut buf[at..], ids);
            }
            let len = buf.len();
            if !direct {
                if t.pace(buf, (class, c.kind), (c.twcc_ext, c.abs_send_time_ext), ck) {
                    c.stream.on_sent(out_seq, out_ts, len, now);
                    if paced.last() != Some(&c.transport) {
                        paced.push(c.transport);
                    }
                }
                continue;
            }
            let twcc = rw.own.twcc.map(|(_, seq)| seq);
            if let Some(sent) = self
                .transmits
                .push_with(tuple, |out| t.protect_into(buf, false, out))
            {
                t.on_rtp_sent(sent, twcc, false, None, now);
                self.stats.rtp(c.kind).sent(len, false);
                c.stream.on_sent(out_seq, out_ts, len, now);
            }
        }
        for tk in paced {
            self.pacing(tk, now);
        }
        while layer_keys != 0 {
            let s = layer_keys.trailing_zeros();
            layer_keys &= layer_keys - 1;
            self.request_key_frame(pk, s as usize, now);
        }
    }
}

/// The timestamp in encoding `other`'s timeline of the instant encoding `enc` stamps `ts`, by
/// the sender reports of both (the same sender clock); `None` until both have one.
fn same_instant(p: &Producer, enc: usize, other: u8, ts: u32) -> Option<u32> {
    let this = p.encodings.get(enc)?.stream.as_ref()?;
    let other = p.encodings.get(usize::from(other))?.stream.as_ref()?;
    this.same_instant_in(ts, other)
}
