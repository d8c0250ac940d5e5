//! The periodic work: ICE consent and DTLS retransmission timers of WebRTC transports, and
//! every [`TICK`] per producer (NACK retries, deferred keyframe requests), per transport
//! (transport-wide-cc feedback, RTCP reports every `RTCP_INTERVAL`), then scores.

use std::time::Instant;

use ferrosfu_fbs::{ConsumerScore, HandlerId, MediaEvent};

use crate::WorkerCore;
use crate::proto::rtcp::Rtcp;
use crate::streams::recv::NtpClock;
use crate::tables::{ConsumerKey, ProducerKey, TransportKey};
use crate::transport::RTCP_INTERVAL;
use crate::worker_core::TICK;

impl WorkerCore {
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.release_pacers(now);
        // ICE and DTLS timers every TICK at most (pacers wake the core far more often).
        if self.next_tick.is_none_or(|t| t <= now) {
            let tks: Vec<TransportKey> = self.tables.transports.keys().collect();
            for &k in &tks {
                self.webrtc_timers(k, now);
            }
        }
        if self.next_tick.is_some_and(|t| t <= now) {
            self.tick(now);
            self.next_tick = if self.tables.transports.is_empty() {
                None
            } else {
                Some(now + TICK)
            };
        }
    }

    fn tick(&mut self, now: Instant) {
        let clock = self.clock(now);
        let pks: Vec<ProducerKey> = self.tables.producers.keys().collect();
        for pk in pks {
            self.producer_tick(pk, now);
        }
        let tks: Vec<TransportKey> = self.tables.transports.keys().collect();
        for &tk in &tks {
            let t = &mut self.tables.transports[tk];
            // One packet each (reduced-size RTCP): a long report is several near-MTU ones.
            for f in t.twcc_in.poll_feedback(now, t.rtcp_ssrc) {
                self.send_rtcp(tk, &[Rtcp::TransportCc(Box::new(f))]);
            }
        }
        for tk in tks {
            if self.tables.transports[tk].next_rtcp <= now {
                self.transport_reports(tk, now, &clock);
            }
        }
        let pks: Vec<ProducerKey> = self.tables.producers.keys().collect();
        for pk in pks {
            self.producer_score(pk);
        }
        self.allocation_tick(now);
        self.dynacast_tick(now);
        self.observers_tick(now);
        let cks: Vec<ConsumerKey> = self.tables.consumers.keys().collect();
        for ck in cks {
            self.consumer_score(ck);
        }
    }

    /// NACK retries and a deferred keyframe request of producer `pk`.
    fn producer_tick(&mut self, pk: ProducerKey, now: Instant) {
        let p = &mut self.tables.producers[pk];
        let mut nacks = Vec::new();
        for e in &mut p.encodings {
            if let Some(s) = e.stream.as_mut()
                && (s.has_unsent_nacks() || s.nack_timeout().is_some_and(|t| t <= now))
            {
                let seqs = s.poll_nacks(now);
                if !seqs.is_empty() {
                    nacks.push(Rtcp::Nack {
                        media_ssrc: s.ssrc,
                        seqs,
                    });
                }
            }
        }
        let tk = p.transport;
        let mut deferred_keys = 0u32;
        for (i, e) in p.encodings.iter_mut().enumerate().take(32) {
            if e.keyframe.handle_timeout(now) {
                deferred_keys |= 1 << i;
            }
        }
        if !nacks.is_empty() {
            self.send_rtcp(tk, &nacks);
        }
        for i in 0..32 {
            if deferred_keys & (1 << i) != 0 {
                self.send_key_frame_request(pk, i);
            }
        }
        self.encoding_activity(pk, now);
    }

    /// The periodic RTCP of transport `tk`: SRs (+ SDES) for its consumers, RRs for its
    /// producers, REMB when a maximum incoming bitrate is set.
    fn transport_reports(&mut self, tk: TransportKey, now: Instant, clock: &NtpClock) {
        let our_ntp = clock.ntp(now);
        let t = &self.tables.transports[tk];
        let mut items = Vec::new();
        let mut cnames = Vec::new();
        for &ck in &t.consumers {
            let Some(c) = self.tables.consumers.get_mut(ck) else {
                continue;
            };
            // The encoding the consumer sends: the first (simple), the current one (simulcast).
            let enc = match &c.layers {
                Some(l) => l.current_encoding().map(usize::from),
                None => Some(usize::from(c.encoding)),
            };
            let prtp = self.tables.producers.get(c.producer).and_then(|p| {
                let s = p.encodings.get(enc?)?.stream.as_ref()?;
                // Through the sender's clock when its SRs tell it (lip sync across streams),
                // else from the SR's arrival or the newest packet.
                self.tables
                    .transports
                    .get(p.transport)
                    .and_then(|t| t.sender_clock.sender_ntp(our_ntp, now))
                    .and_then(|n| s.rtp_time_at_sender_ntp(n))
                    .or_else(|| s.rtp_time_at(now))
            });
            if let Some(sr) = c.stream.sender_report(now, clock, prtp) {
                if let Rtcp::SenderReport { ssrc, .. } = &sr
                    && !c.params.rtcp.cname.is_empty()
                {
                    cnames.push((*ssrc, c.params.rtcp.cname.clone()));
                }
                items.push(sr);
            }
        }
        if !cnames.is_empty() {
            items.push(Rtcp::Sdes { cnames });
        }
        let mut blocks = Vec::new();
        let mut ssrcs = Vec::new();
        for &pk in &t.producers {
            if let Some(p) = self.tables.producers.get_mut(pk) {
                for e in &mut p.encodings {
                    if let Some(s) = e.stream.as_mut()
                        && let Some(b) = s.report_block(now, clock)
                    {
                        // What the interval said, when the stream sent anything in it.
                        if s.interval_expected > 0 {
                            let r = &mut self.stats.reports;
                            r.loss_received.observe(f64::from(b.fraction_lost) / 256.0);
                            r.jitter_received
                                .observe(f64::from(b.jitter) / f64::from(s.clock_rate.max(1)));
                        }
                        ssrcs.push(s.ssrc);
                        blocks.push(b);
                    }
                }
            }
        }
        for chunk in blocks.chunks(31) {
            items.push(Rtcp::ReceiverReport {
                ssrc: t.rtcp_ssrc,
                reports: chunk.to_vec(),
            });
        }
        if t.max_incoming_bitrate > 0 && !ssrcs.is_empty() {
            items.push(Rtcp::Remb {
                bitrate: t.max_incoming_bitrate as u64,
                ssrcs,
            });
        }
        self.tables.transports[tk].next_rtcp = now + RTCP_INTERVAL;
        // Keep each compound well under the MTU.
        for chunk in items.chunks(8) {
            self.send_rtcp(tk, chunk);
        }
    }

    fn producer_score(&mut self, pk: ProducerKey) {
        let p = &mut self.tables.producers[pk];
        if let Some(scores) = p.scores_changed() {
            let h = HandlerId::from(&p.id);
            self.notify(h, MediaEvent::ProducerScore(scores));
        }
    }

    fn consumer_score(&mut self, ck: ConsumerKey) {
        let c = &self.tables.consumers[ck];
        if c.sibling {
            return;
        }
        // The encoding it sends (simulcast: the current one; none yet: the first).
        let enc = c
            .layers
            .as_ref()
            .and_then(|l| l.current_encoding())
            .map_or(usize::from(c.encoding), usize::from);
        let producer_score = self
            .tables
            .producers
            .get(c.producer)
            .map_or(0, |p| p.score(enc));
        let score = ConsumerScore {
            score: c.stream.score,
            producer_score,
        };
        if score != c.last_score {
            let h = HandlerId::from(&c.id);
            self.tables.consumers[ck].last_score = score;
            self.notify(h, MediaEvent::ConsumerScore(score));
        }
    }
}
