//! Sending RTP through a transport's pacer ([`crate::bwe::pacer`]): a rewritten packet the pacer
//! admits leaves at once, as before pacing existed (protected straight into the transmit arena);
//! one it does not is kept in plaintext, without its transport-wide sequence number and
//! abs-send-time, which are written when it leaves (so the numbers go out in order and the
//! send-side estimator sees the time it really left). The core wakes for the transports whose
//! pacer holds packets ([`WorkerCore::poll_timeout`]).

use std::time::Instant;

use ferrosfu_fbs::MediaKind;

use crate::WorkerCore;
use crate::bwe::pacer::Class;
use crate::proto::rtp::{self, Rewrite, RtpHeader};
use crate::stats::CoreStats;
use crate::tables::{ConsumerKey, TransportKey};
use crate::transmit::TransmitQueue;
use crate::transport::Transport;
use crate::units::{Pt, Ssrc};

/// A packet waiting in a pacer: plaintext, with where to write what is stamped at send time.
#[derive(Debug)]
pub(crate) struct Paced {
    pub packet: Vec<u8>,
    /// Offset of the 2-byte transport-wide sequence number to write.
    pub twcc_at: Option<usize>,
    /// Offset of the 3-byte abs-send-time to write.
    pub abs_at: Option<usize>,
    pub class: Class,
    /// The media kind of the consumer it is from.
    pub kind: MediaKind,
    /// The probe cluster it belongs to.
    pub probe: Option<u32>,
    /// The consumer it is from.
    pub consumer: Option<ConsumerKey>,
}

/// Padding bytes in one probe packet (the most RFC 3550's count byte allows).
const PADDING_BYTES: usize = 255;
/// Probe packets sent in one wake-up at most (the rest when the core wakes next).
const MAX_PADDING_PER_WAKE: usize = 16;

/// Free packet buffers kept per transport (beyond, they are dropped).
const POOL_MAX: usize = 64;

/// The offset in `pkt` of header extension `id`'s value (`id` 0: none).
fn ext_offset(pkt: &[u8], hdr: &RtpHeader, id: u8) -> Option<usize> {
    if id == 0 {
        return None;
    }
    let (_, v) = hdr.extensions(pkt).find(|e| e.0 == id)?;
    Some(v.as_ptr() as usize - pkt.as_ptr() as usize)
}

impl Transport {
    /// Queues rewritten packet `plain` of a consumer of `kind` in the pacer (its transport-wide
    /// sequence number and abs-send-time, extensions `twcc_ext` / `abs_ext`, written when it
    /// leaves). False when the pacer refused it (a full queue).
    pub(crate) fn pace(
        &mut self,
        plain: &[u8],
        (class, kind): (Class, MediaKind),
        (twcc_ext, abs_ext): (u8, u8),
        consumer: ConsumerKey,
    ) -> bool {
        let Ok(hdr) = RtpHeader::parse(plain) else {
            return false;
        };
        let mut packet = self.paced_pool.pop().unwrap_or_default();
        packet.clear();
        packet.extend_from_slice(plain);
        let item = Paced {
            twcc_at: ext_offset(plain, &hdr, twcc_ext),
            abs_at: ext_offset(plain, &hdr, abs_ext),
            packet,
            class,
            kind,
            probe: None,
            consumer: Some(consumer),
        };
        match self.pacer.push(class, plain.len(), item) {
            Ok(()) => true,
            Err(item) => {
                self.recycle(item.packet);
                false
            }
        }
    }

    /// When the pacer or the prober next needs the core.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        let pad = self.bwe_ctl.prober.padding_due().map(|d| d.max(now));
        match (self.pacer.next_release(now), pad) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Consumer `ck` switched down to a new encoding (from its keyframe on): the video it
    /// queued of the old one is dropped (the decoder restarts at the keyframe; that the
    /// pacer still held it means the path is congested).
    pub(crate) fn discard_queued(&mut self, ck: ConsumerKey) -> usize {
        let mut stale = self.pacer.discard(Class::Video, |p| p.consumer == Some(ck));
        stale.extend(
            self.pacer
                .discard(Class::Retransmission, |p| p.consumer == Some(ck)),
        );
        let n = stale.len();
        for p in stale {
            self.recycle(p.packet);
        }
        self.counters.paced_discarded += n as u64;
        n
    }

    fn recycle(&mut self, packet: Vec<u8>) {
        if self.paced_pool.len() < POOL_MAX {
            self.paced_pool.push(packet);
        }
    }

    /// Sends what its pacer lets go at `now` into `transmits` (`ntp`: our clock, for
    /// abs-send-time), counted in `stats`. Returns whether packets still wait.
    pub(crate) fn release_paced(
        &mut self,
        transmits: &mut TransmitQueue,
        stats: &mut CoreStats,
        ntp: u64,
        now: Instant,
    ) -> bool {
        let Some(tuple) = self.send_tuple(false) else {
            // Nowhere to send (ICE lost its pair): what waits is stale by the time it returns.
            while let Some(p) = self.pacer.take_any() {
                self.recycle(p.packet);
            }
            return false;
        };
        while let Some(mut p) = self.pacer.pop(now) {
            let twcc = p.twcc_at.map(|at| {
                let seq = self.next_twcc_seq();
                p.packet[at..at + 2].copy_from_slice(&seq.to_be_bytes());
                seq
            });
            if let Some(at) = p.abs_at {
                let abs = ((ntp >> 14) & 0xff_ffff) as u32;
                p.packet[at..at + 3].copy_from_slice(&abs.to_be_bytes()[1..]);
            }
            let packet = std::mem::take(&mut p.packet);
            if let Some(sent) =
                transmits.push_with(tuple, |out| self.protect_into(&packet, false, out))
            {
                let rtx = p.class == Class::Retransmission;
                self.on_rtp_sent(sent, twcc, rtx, p.probe, now);
                stats.rtp(p.kind).sent(packet.len(), rtx);
            }
            self.recycle(packet);
        }
        !self.pacer.is_empty()
    }

    /// Counts an RTP packet of `sent` bytes on the wire that left now, with transport-wide
    /// sequence number `twcc`.
    pub(crate) fn on_rtp_sent(
        &mut self,
        sent: usize,
        twcc: Option<u16>,
        rtx: bool,
        probe: Option<u32>,
        now: Instant,
    ) {
        // Whatever leaves with a transport-wide sequence number while a probe cluster is sent
        // belongs to it (what has none is not in the feedback that measures the cluster: a
        // cluster counting audio without one read 86 % of its rate on an idle link).
        let probe =
            probe.or_else(|| twcc.and_then(|_| self.bwe_ctl.prober.on_sent(sent, false, now)));
        let c = &mut self.counters;
        if rtx {
            c.rtx_sent += 1;
        } else {
            c.rtp_sent += 1;
        }
        c.bytes_sent += sent as u64;
        c.send_rate.add(sent, now);
        if let Some(seq) = twcc {
            self.send_history.on_sent(seq, now, sent, probe);
        }
    }
}

impl WorkerCore {
    /// Transport `tk` queued packets in its pacer, or started a probe cluster: the core wakes
    /// for it.
    pub(crate) fn pacing(&mut self, tk: TransportKey, now: Instant) {
        let Some(t) = self.tables.transports.get_mut(tk) else {
            return;
        };
        t.pace_wake = t.next_wake(now);
        if t.pace_wake.is_some() && !self.paced.contains(&tk) {
            self.paced.push(tk);
        }
    }

    /// Sends what the pacers of the transports waiting let go now.
    pub(crate) fn release_pacers(&mut self, now: Instant) {
        if self.paced.is_empty() {
            return;
        }
        let ntp = self.clock(now).ntp(now);
        let mut i = 0;
        while i < self.paced.len() {
            let tk = self.paced[i];
            let Some(t) = self.tables.transports.get_mut(tk) else {
                self.paced.swap_remove(i);
                continue;
            };
            if t.pace_wake.is_some_and(|w| w <= now) {
                t.release_paced(&mut self.transmits, &mut self.stats, ntp, now);
                if t.bwe_ctl.prober.padding_due().is_some_and(|d| d <= now) {
                    self.send_padding(tk, ntp, now);
                }
                let t = &mut self.tables.transports[tk];
                t.pace_wake = t.next_wake(now);
            }
            let t = &self.tables.transports[tk];
            if t.pace_wake.is_none() {
                self.paced.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Padding for transport `tk`'s probe cluster, as far as it is due: padding-only packets on
    /// the RTX stream of one of its video consumers (one with RTX and transport-wide-cc), as
    /// libwebrtc sends them — a forwarding one if there is one, else one the allocator paused
    /// (with every video consumer paused, only padding can show that the path has room for
    /// them again). Without such a consumer the cluster is dropped.
    fn send_padding(&mut self, tk: TransportKey, ntp: u64, now: Instant) {
        let t = &mut self.tables.transports[tk];
        let Some(tuple) = t.send_tuple(false) else {
            t.bwe_ctl.prober.abort();
            return;
        };
        let consumers = &self.tables.consumers;
        let ck = t
            .consumers
            .iter()
            .copied()
            .filter(|&ck| {
                consumers.get(ck).is_some_and(|c| {
                    c.kind == MediaKind::Video
                        && c.wanted()
                        && c.twcc_ext != 0
                        && c.stream.rtx_ssrc.is_some()
                        && c.stream.pt_rtx.is_some()
                })
            })
            .min_by_key(|&ck| consumers[ck].bwe_paused);
        let Some(c) = ck.and_then(|ck| self.tables.consumers.get_mut(ck)) else {
            t.bwe_ctl.prober.abort();
            return;
        };
        let (Some(ssrc), Some(pt)) = (c.stream.rtx_ssrc, c.stream.pt_rtx) else {
            return;
        };
        let ts = c.stream.last_out_ts.map_or(0, |(ts, _)| ts);
        for _ in 0..MAX_PADDING_PER_WAKE {
            if t.bwe_ctl.prober.padding_due().is_none_or(|d| d > now) {
                break;
            }
            let seq = c.stream.next_rtx_seq();
            let src = rtp::build_packet(Pt(pt), seq, ts, Ssrc(ssrc), false, &[]);
            let Ok(hdr) = RtpHeader::parse(&src) else {
                break;
            };
            let rw = Rewrite {
                ssrc: Ssrc(ssrc),
                pt: Pt(pt),
                seq,
                timestamp: ts,
                marker: false,
                ext_map: &c.ext_map,
                own: c.own_exts(|| t.next_twcc_seq(), ntp),
            };
            let twcc = rw.own.twcc.map(|(_, s)| s);
            let buf = &mut self.rewrite_buf;
            rtp::write_rewritten(buf, &src, &hdr, &rw, &[]);
            // RFC 3550 padding: zeros, the last byte their count.
            buf[0] |= 0x20;
            buf.resize(buf.len() + PADDING_BYTES - 1, 0);
            buf.push(PADDING_BYTES as u8);
            if let Some(sent) = self
                .transmits
                .push_with(tuple, |out| t.protect_into(buf, false, out))
            {
                let probe = t.bwe_ctl.prober.on_sent(sent, true, now);
                t.on_rtp_sent(sent, twcc, false, probe, now);
                self.stats.video.sent(buf.len(), false);
            } else {
                t.bwe_ctl.prober.abort();
                break;
            }
        }
    }

    /// The earliest time a pacer needs the core.
    pub(crate) fn pacer_timeout(&self) -> Option<Instant> {
        self.paced
            .iter()
            .filter_map(|&tk| self.tables.transports.get(tk)?.pace_wake)
            .min()
    }
}
