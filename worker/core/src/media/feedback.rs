//! Feedback: RTCP from the remote end of a transport (sender/receiver reports, NACK, PLI/FIR;
//! transport-wide-cc and REMB to the send-side estimation), keyframe requests to
//! publishers (throttled per producer) and RTCP we send.

use std::time::Instant;

use ferrosfu_fbs::MediaKind;

use crate::WorkerCore;
use crate::bwe::PacketResult;
use crate::proto::rtcp::{self, Rtcp};
use crate::streams::recv::NtpClock;
use crate::tables::{ConsumerKey, ProducerKey, TransportKey};

impl WorkerCore {
    pub(super) fn rtcp_in(&mut self, k: TransportKey, items: Vec<Rtcp>, now: Instant) {
        let clock = self.clock(now);
        for item in items {
            let t = &self.tables.transports[k];
            match item {
                Rtcp::SenderReport {
                    ssrc,
                    ntp,
                    rtp,
                    reports,
                    ..
                } => {
                    if let Some(&(pk, i, false)) = t.ssrc_producers.get(&ssrc)
                        && let Some(s) = self
                            .tables
                            .producers
                            .get_mut(pk)
                            .and_then(|p| p.encodings[i].stream.as_mut())
                    {
                        // Only an SR the stream took (not one held as off its timeline) tells
                        // the sender's clock.
                        if s.on_sender_report(ntp, rtp, now) {
                            self.tables.transports[k].sender_clock.on_sender_report(
                                ntp,
                                clock.ntp(now),
                                now,
                            );
                        }
                    }
                    self.report_blocks(k, &reports, now, &clock);
                }
                Rtcp::ReceiverReport { reports, .. } => {
                    self.report_blocks(k, &reports, now, &clock);
                }
                Rtcp::Nack { media_ssrc, seqs } => {
                    self.stats.feedback.nacks_received += 1;
                    if let Some(&ck) = t.ssrc_consumers.get(&media_ssrc) {
                        self.retransmit(ck, &seqs, now);
                    }
                }
                Rtcp::Pli { media_ssrc } => {
                    self.stats.feedback.plis_received += 1;
                    if let Some(&ck) = t.ssrc_consumers.get(&media_ssrc)
                        && let Some(c) = self.tables.consumers.get_mut(ck)
                    {
                        c.stream.pli_count += 1;
                        self.consumer_key_frame(ck, now);
                    }
                }
                Rtcp::Fir { media_ssrcs } => {
                    self.stats.feedback.firs_received += 1;
                    for s in media_ssrcs {
                        if let Some(&ck) = self.tables.transports[k].ssrc_consumers.get(&s)
                            && let Some(c) = self.tables.consumers.get_mut(ck)
                        {
                            c.stream.fir_count += 1;
                            self.consumer_key_frame(ck, now);
                        }
                    }
                }
                Rtcp::TransportCc(cc) => {
                    let t = &mut self.tables.transports[k];
                    let results = t.feedback_adapter.on_feedback(&cc, &mut t.send_history);
                    if !results.is_empty() {
                        self.on_packet_results(k, &results, now);
                    }
                }
                // A receiver's estimate of what we send it (only about streams we send).
                Rtcp::Remb { bitrate, ssrcs } => {
                    if ssrcs.iter().any(|s| t.ssrc_consumers.contains_key(s)) {
                        self.remb_received(k, bitrate, now);
                    }
                }
                Rtcp::Sdes { .. } => {}
            }
        }
    }

    /// What the subscriber of transport `tk` reported of packets we sent it (from its
    /// transport-wide feedback, each packet once): counted, and fed to the transport's
    /// send-side estimator (its estimate is `availableOutgoingBitrate` in the transport's
    /// stats; the pacer and the allocator that act on it come next, issue 13).
    pub(crate) fn on_packet_results(
        &mut self,
        tk: TransportKey,
        results: &[PacketResult],
        now: Instant,
    ) {
        let Some(t) = self.tables.transports.get_mut(tk) else {
            return;
        };
        let acked = results.iter().filter(|r| r.arrival.is_some()).count() as u64;
        t.counters.feedback_acked = acked;
        t.counters.feedback_lost = results.len() as u64 - acked;
        if !results.is_empty() {
            let prober = &t.bwe_ctl.prober;
            t.bwe.set_probing(prober.floor(now), prober.sending());
            let update = t.bwe.on_feedback(results, now);
            t.bwe_fed = true;
            t.bwe_ctl.last_feedback = Some(now);
            self.bwe_updated(tk, &update, now);
        }
    }

    fn report_blocks(
        &mut self,
        k: TransportKey,
        blocks: &[rtcp::ReportBlock],
        now: Instant,
        clock: &NtpClock,
    ) {
        for b in blocks {
            let Some(&ck) = self.tables.transports[k].ssrc_consumers.get(&b.ssrc) else {
                continue;
            };
            let Some(c) = self.tables.consumers.get_mut(ck) else {
                continue;
            };
            let measured = c.stream.on_report_block(b, now, clock);
            let r = &mut self.stats.reports;
            r.loss_sent.observe(f64::from(b.fraction_lost) / 256.0);
            r.jitter_sent
                .observe(f64::from(b.jitter) / f64::from(c.stream.clock_rate.max(1)));
            if let Some(rtt) = measured {
                r.rtt.observe(rtt.as_secs_f64());
            }
            if let Some(rtt) = c.stream.rtt {
                self.tables.transports[k].bwe.set_rtt(rtt);
            }
        }
    }

    /// Asks the publisher of producer `pk` for a keyframe of encoding `enc`, throttled by its
    /// `key_frame_request_delay`.
    pub(crate) fn request_key_frame(&mut self, pk: ProducerKey, enc: usize, now: Instant) {
        let Some(p) = self.tables.producers.get_mut(pk) else {
            return;
        };
        if p.kind != MediaKind::Video || p.paused {
            return;
        }
        if let Some(e) = p.encodings.get_mut(enc)
            && e.keyframe.request(now)
        {
            self.send_key_frame_request(pk, enc);
        }
    }

    /// Asks for the keyframe consumer `ck` needs (of the encoding it sends or switches to),
    /// when it forwards video.
    pub(crate) fn consumer_key_frame(&mut self, ck: ConsumerKey, now: Instant) {
        let Some(c) = self.tables.consumers.get(ck) else {
            return;
        };
        if !c.active() || c.kind != MediaKind::Video {
            return;
        }
        if let Some(enc) = c.key_encoding() {
            let pk = c.producer;
            self.request_key_frame(pk, enc, now);
        }
    }

    pub(super) fn send_key_frame_request(&mut self, pk: ProducerKey, enc: usize) {
        let Some(p) = self.tables.producers.get_mut(pk) else {
            return;
        };
        let use_fir = p.use_fir;
        let Some(s) = p.encodings.get_mut(enc).and_then(|e| e.stream.as_mut()) else {
            return;
        };
        let item = if use_fir {
            s.fir_count += 1;
            Rtcp::Fir {
                media_ssrcs: vec![s.ssrc],
            }
        } else {
            s.pli_count += 1;
            Rtcp::Pli { media_ssrc: s.ssrc }
        };
        let tk = p.transport;
        tracing::trace!(target: "rtcp", producer = %p.id, enc, "keyframe requested");
        self.send_rtcp(tk, &[item]);
    }

    pub(crate) fn send_rtcp(&mut self, tk: TransportKey, items: &[Rtcp]) {
        let Some(t) = self.tables.transports.get_mut(tk) else {
            return;
        };
        let Some(tuple) = t.send_tuple(true) else {
            return;
        };
        let wire = rtcp::build(items, t.rtcp_ssrc);
        if let Some(len) = self
            .transmits
            .push_with(tuple, |out| t.protect_into(&wire, true, out))
        {
            t.counters.rtcp_sent += 1;
            t.counters.bytes_sent += len as u64;
            let f = &mut self.stats.feedback;
            for item in items {
                match item {
                    Rtcp::Nack { .. } => f.nacks_sent += 1,
                    Rtcp::Pli { .. } => f.plis_sent += 1,
                    Rtcp::Fir { .. } => f.firs_sent += 1,
                    _ => {}
                }
            }
        }
    }
}
