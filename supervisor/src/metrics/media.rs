//! What the workers' media engines counted (`worker.get_media_counters`, polled per scrape):
//! drops, RTP by kind and direction, RTCP feedback, SRTP/ICE/DTLS failures, open entities, and
//! the loss, jitter and RTT histograms of the RTCP reports. Labels are low-cardinality: `core`,
//! `kind`, `direction`, `reason`, `type`; never a room or a peer.

use std::fmt;

use ferrosfu_fbs::{Histogram, MediaCounters};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{CoreLabel, DirectionLabel, ReasonLabel};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindDirectionLabel {
    core: String,
    kind: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    core: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedbackLabel {
    core: String,
    r#type: &'static str,
    direction: &'static str,
}

/// Histograms whose buckets come counted (a worker's [`Histogram`]: per-bucket counts since
/// it started), one series per label set. A series whose counts do not match its bounds (one
/// count per bound and one above) is left out rather than exposed wrong.
#[derive(Debug)]
pub(super) struct CountedHistograms<L> {
    series: Vec<(L, Histogram)>,
}

impl<L> Default for CountedHistograms<L> {
    fn default() -> Self {
        Self { series: Vec::new() }
    }
}

impl<L> CountedHistograms<L> {
    pub(super) fn push(&mut self, labels: L, h: Histogram) {
        let ascending = h.bounds.windows(2).all(|w| w[0] < w[1]);
        if h.counts.len() == h.bounds.len() + 1
            && ascending
            && h.bounds.iter().all(|b| b.is_finite())
        {
            self.series.push((labels, h));
        }
    }
}

impl<L: EncodeLabelSet + fmt::Debug + Send + Sync + 'static> EncodeMetric for CountedHistograms<L> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        for (labels, h) in &self.series {
            // The last bucket is +Inf (prometheus_client writes f64::MAX as "+Inf").
            let buckets: Vec<(f64, u64)> = h
                .bounds
                .iter()
                .copied()
                .chain([f64::MAX])
                .zip(h.counts.iter().copied())
                .collect();
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count(), &buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

pub(super) fn register_media(reg: &mut Registry, media: &[(u32, MediaCounters)]) {
    register_drops(reg, media);
    register_rtp(reg, media);
    register_failures(reg, media);
    register_entities(reg, media);
    register_histograms(reg, media);
}

fn register_drops(reg: &mut Registry, media: &[(u32, MediaCounters)]) {
    let dropped = Family::<ReasonLabel, Counter>::default();
    let resyncs = Family::<CoreLabel, Counter>::default();
    let data = Family::<DirectionLabel, Counter>::default();
    let data_dropped = Family::<ReasonLabel, Counter>::default();
    for (core, m) in media {
        let core = core.to_string();
        let d = &m.data;
        for (direction, n) in [("received", d.messages_received), ("sent", d.messages_sent)] {
            let core = core.clone();
            data.get_or_create(&DirectionLabel { core, direction })
                .inc_by(n);
        }
        for (reason, n) in [
            ("malformed", d.malformed),
            ("unknown_stream", d.unknown_stream),
            ("dcep", d.dcep),
            ("unknown_ppid", d.unknown_ppid),
            ("oversize", d.oversize),
            ("send_buffer_full", d.send_buffer_full),
        ] {
            let core = core.clone();
            data_dropped
                .get_or_create(&ReasonLabel { core, reason })
                .inc_by(n);
        }
        for (reason, n) in [
            ("bad_sequence", m.rtp_bad_sequence),
            ("unknown_socket", m.unknown_socket),
            ("unknown_tuple", m.unknown_tuple),
        ] {
            dropped
                .get_or_create(&ReasonLabel {
                    core: core.clone(),
                    reason,
                })
                .inc_by(n);
        }
        resyncs
            .get_or_create(&CoreLabel { core })
            .inc_by(m.rtp_resyncs);
    }
    reg.register(
        "ferrosfu_rtp_packets_dropped",
        "Received packets the worker of this core dropped since it started, by reason: \
         bad_sequence (RTP not forwarded for its sequence number: a jump no next packet \
         confirmed, an RTX of nothing sent), unknown_socket / unknown_tuple (reached no transport)",
        dropped,
    );
    reg.register(
        "ferrosfu_rtp_stream_resyncs",
        "Producer streams the worker of this core resynchronised to a restarted sender's new \
         sequence space since it started",
        resyncs,
    );
    reg.register(
        "ferrosfu_data_messages",
        "Data channel (SCTP) messages the worker of this core received from endpoints and sent \
         to them since it started",
        data,
    );
    reg.register(
        "ferrosfu_data_drops",
        "Data channel (SCTP) packets or messages the worker of this core dropped since it \
         started, by reason: malformed (undecodable or unplaceable packets), unknown_stream (no \
         data producer on it, or at or above MIS), dcep (in-band channel opening: channels are \
         negotiated), unknown_ppid, oversize (over maxSctpMessageSize), send_buffer_full (a \
         consumer's association had no room)",
        data_dropped,
    );
}

fn register_rtp(reg: &mut Registry, media: &[(u32, MediaCounters)]) {
    let packets = Family::<KindDirectionLabel, Counter>::default();
    let bytes = Family::<KindDirectionLabel, Counter>::default();
    let rtx = Family::<KindLabel, Counter>::default();
    let feedback = Family::<FeedbackLabel, Counter>::default();
    for (core, m) in media {
        for (kind, c) in [("audio", &m.audio), ("video", &m.video)] {
            for (direction, p, b) in [
                ("received", c.packets_received, c.bytes_received),
                ("sent", c.packets_sent, c.bytes_sent),
            ] {
                let l = KindDirectionLabel {
                    core: core.to_string(),
                    kind,
                    direction,
                };
                packets.get_or_create(&l).inc_by(p);
                bytes.get_or_create(&l).inc_by(b);
            }
            rtx.get_or_create(&KindLabel {
                core: core.to_string(),
                kind,
            })
            .inc_by(c.retransmissions_sent);
        }
        let f = &m.feedback;
        for (r#type, direction, n) in [
            ("nack", "received", f.nacks_received),
            ("nack", "sent", f.nacks_sent),
            ("pli", "received", f.plis_received),
            ("pli", "sent", f.plis_sent),
            ("fir", "received", f.firs_received),
            ("fir", "sent", f.firs_sent),
        ] {
            feedback
                .get_or_create(&FeedbackLabel {
                    core: core.to_string(),
                    r#type,
                    direction,
                })
                .inc_by(n);
        }
    }
    reg.register(
        "ferrosfu_rtp_packets",
        "RTP packets the worker of this core received from publishers and sent to subscribers \
         (retransmissions and probing padding included) since it started, by kind",
        packets,
    );
    reg.register(
        "ferrosfu_rtp_bytes",
        "RTP bytes (header and payload, before SRTP) the worker of this core received from \
         publishers and sent to subscribers since it started, by kind",
        bytes,
    );
    reg.register(
        "ferrosfu_rtp_retransmissions",
        "RTP packets the worker of this core sent again for a subscriber's NACK (RTX, or the \
         original packet without RTX) since it started; also in ferrosfu_rtp_packets_total",
        rtx,
    );
    reg.register(
        "ferrosfu_rtcp_feedback",
        "RTCP feedback messages (type nack, pli, fir) the worker of this core received from \
         endpoints and sent to them since it started; a NACK counts once however many packets \
         it names",
        feedback,
    );
}

fn register_failures(reg: &mut Registry, media: &[(u32, MediaCounters)]) {
    let srtp = Family::<ReasonLabel, Counter>::default();
    let ice = Family::<ReasonLabel, Counter>::default();
    let dtls = Family::<CoreLabel, Counter>::default();
    for (core, m) in media {
        let core = core.to_string();
        for (reason, n) in [
            ("auth_failed", m.srtp_auth_failures),
            ("replayed", m.srtp_replays),
        ] {
            let core = core.clone();
            srtp.get_or_create(&ReasonLabel { core, reason }).inc_by(n);
        }
        for (reason, n) in [
            ("consent_lost", m.ice_consent_lost),
            ("unauthorized", m.ice_unauthorized),
            ("bad_request", m.ice_bad_requests),
        ] {
            let core = core.clone();
            ice.get_or_create(&ReasonLabel { core, reason }).inc_by(n);
        }
        dtls.get_or_create(&CoreLabel { core })
            .inc_by(m.dtls_failures);
    }
    reg.register(
        "ferrosfu_srtp_failures",
        "Inbound SRTP/SRTCP packets the worker of this core dropped since it started, by \
         reason: auth_failed (authentication tag), replayed (an index already seen or too old)",
        srtp,
    );
    reg.register(
        "ferrosfu_ice_failures",
        "ICE failures on the worker of this core since it started, by reason: consent_lost (a \
         selected tuple's consent expired: the transport went disconnected), unauthorized / \
         bad_request (STUN checks refused with 401 / 400)",
        ice,
    );
    reg.register(
        "ferrosfu_dtls_failures",
        "DTLS handshakes that failed on the worker of this core since it started (a remote \
         certificate that does not match the signaled fingerprint, no certificate, a timeout)",
        dtls,
    );
}

fn register_entities(reg: &mut Registry, media: &[(u32, MediaCounters)]) {
    let transports = Family::<CoreLabel, Gauge>::default();
    let producers = Family::<CoreLabel, Gauge>::default();
    for (core, m) in media {
        let l = CoreLabel {
            core: core.to_string(),
        };
        transports.get_or_create(&l).set(i64::from(m.transports));
        producers.get_or_create(&l).set(i64::from(m.producers));
    }
    reg.register(
        "ferrosfu_worker_transports",
        "Transports open on the worker of this core (WebRTC, plain, pipe and direct)",
        transports,
    );
    reg.register(
        "ferrosfu_worker_producers",
        "Producers open on the worker of this core (pipe producers included)",
        producers,
    );
}

fn register_histograms(reg: &mut Registry, media: &[(u32, MediaCounters)]) {
    let mut loss = CountedHistograms::<DirectionLabel>::default();
    let mut jitter = CountedHistograms::<DirectionLabel>::default();
    let mut rtt = CountedHistograms::<CoreLabel>::default();
    for (core, m) in media {
        let core = core.to_string();
        for (direction, l, j) in [
            ("received", &m.loss_received, &m.jitter_received),
            ("sent", &m.loss_sent, &m.jitter_sent),
        ] {
            let label = DirectionLabel {
                core: core.clone(),
                direction,
            };
            loss.push(label.clone(), l.clone());
            jitter.push(label, j.clone());
        }
        rtt.push(CoreLabel { core }, m.rtt.clone());
    }
    reg.register(
        "ferrosfu_rtp_loss_ratio",
        "Fraction lost (0-1) per RTCP report block since the worker of this core started: of \
         the streams it receives (direction received: its receiver reports to publishers) and \
         sends (direction sent: the subscribers' receiver reports)",
        loss,
    );
    reg.register(
        "ferrosfu_rtp_jitter_seconds",
        "Interarrival jitter per RTCP report block since the worker of this core started, of \
         the streams it receives and sends (as ferrosfu_rtp_loss_ratio)",
        jitter,
    );
    reg.register(
        "ferrosfu_rtt_seconds",
        "Round-trip times to subscribers (LSR/DLSR of their receiver reports about the streams \
         the worker of this core sends) since it started",
        rtt,
    );
}

#[cfg(test)]
mod tests {
    use ferrosfu_fbs::{DataCounters, FeedbackCounters, RtpCounters};

    use super::*;
    use crate::lifecycle::Phase;
    use crate::metrics::{Extras, render};

    fn histogram(bounds: &[f64], counts: &[u64], sum: f64) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: counts.to_vec(),
            sum,
        }
    }

    fn text_of(m: MediaCounters) -> String {
        let extras = Extras {
            media: vec![(3, m)],
            ..Default::default()
        };
        render(Phase::Running, &[], &[], &extras)
    }

    fn assert_lines(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn media_counters_are_counters_by_core_and_reason() {
        let text = text_of(MediaCounters {
            unknown_socket: 1,
            unknown_tuple: 2,
            rtp_bad_sequence: 7,
            rtp_resyncs: 4,
            dtls_failures: 5,
            data: DataCounters {
                messages_received: 11,
                send_buffer_full: 2,
                ..Default::default()
            },
            srtp_auth_failures: 6,
            srtp_replays: 8,
            ice_consent_lost: 9,
            ice_unauthorized: 10,
            ..Default::default()
        });
        assert_lines(
            &text,
            &[
                "# TYPE ferrosfu_rtp_packets_dropped counter",
                "ferrosfu_rtp_packets_dropped_total{core=\"3\",reason=\"bad_sequence\"} 7",
                "ferrosfu_rtp_packets_dropped_total{core=\"3\",reason=\"unknown_tuple\"} 2",
                "ferrosfu_rtp_stream_resyncs_total{core=\"3\"} 4",
                "ferrosfu_dtls_failures_total{core=\"3\"} 5",
                "ferrosfu_data_messages_total{core=\"3\",direction=\"received\"} 11",
                "ferrosfu_data_drops_total{core=\"3\",reason=\"send_buffer_full\"} 2",
                "ferrosfu_srtp_failures_total{core=\"3\",reason=\"auth_failed\"} 6",
                "ferrosfu_srtp_failures_total{core=\"3\",reason=\"replayed\"} 8",
                "ferrosfu_ice_failures_total{core=\"3\",reason=\"consent_lost\"} 9",
                "ferrosfu_ice_failures_total{core=\"3\",reason=\"unauthorized\"} 10",
                "ferrosfu_ice_failures_total{core=\"3\",reason=\"bad_request\"} 0",
            ],
        );
    }

    #[test]
    fn rtp_is_counted_by_kind_and_direction_feedback_by_type() {
        let text = text_of(MediaCounters {
            audio: RtpCounters {
                packets_received: 50,
                bytes_received: 5000,
                ..Default::default()
            },
            video: RtpCounters {
                packets_sent: 300,
                bytes_sent: 360_000,
                retransmissions_sent: 4,
                ..Default::default()
            },
            feedback: FeedbackCounters {
                nacks_received: 3,
                plis_sent: 2,
                ..Default::default()
            },
            transports: 4,
            producers: 2,
            ..Default::default()
        });
        assert_lines(
            &text,
            &[
                "# TYPE ferrosfu_rtp_packets counter",
                "ferrosfu_rtp_packets_total{core=\"3\",kind=\"audio\",direction=\"received\"} 50",
                "ferrosfu_rtp_bytes_total{core=\"3\",kind=\"audio\",direction=\"received\"} 5000",
                "ferrosfu_rtp_packets_total{core=\"3\",kind=\"video\",direction=\"sent\"} 300",
                "ferrosfu_rtp_bytes_total{core=\"3\",kind=\"video\",direction=\"sent\"} 360000",
                "ferrosfu_rtp_retransmissions_total{core=\"3\",kind=\"video\"} 4",
                "ferrosfu_rtcp_feedback_total{core=\"3\",type=\"nack\",direction=\"received\"} 3",
                "ferrosfu_rtcp_feedback_total{core=\"3\",type=\"pli\",direction=\"sent\"} 2",
                "ferrosfu_worker_transports{core=\"3\"} 4",
                "ferrosfu_worker_producers{core=\"3\"} 2",
            ],
        );
    }

    #[test]
    fn worker_histograms_are_cumulative_prometheus_histograms() {
        let text = text_of(MediaCounters {
            rtt: histogram(&[0.01, 0.1], &[2, 3, 1], 1.5),
            loss_sent: histogram(&[0.0, 0.5], &[4, 1, 0], 0.25),
            ..Default::default()
        });
        assert_lines(
            &text,
            &[
                "# TYPE ferrosfu_rtt_seconds histogram",
                "ferrosfu_rtt_seconds_sum{core=\"3\"} 1.5",
                "ferrosfu_rtt_seconds_count{core=\"3\"} 6",
                "ferrosfu_rtt_seconds_bucket{le=\"0.01\",core=\"3\"} 2",
                "ferrosfu_rtt_seconds_bucket{le=\"0.1\",core=\"3\"} 5",
                "ferrosfu_rtt_seconds_bucket{le=\"+Inf\",core=\"3\"} 6",
                "# TYPE ferrosfu_rtp_loss_ratio histogram",
                "ferrosfu_rtp_loss_ratio_bucket{le=\"0.0\",core=\"3\",direction=\"sent\"} 4",
                "ferrosfu_rtp_loss_ratio_bucket{le=\"+Inf\",core=\"3\",direction=\"sent\"} 5",
                "ferrosfu_rtp_loss_ratio_count{core=\"3\",direction=\"sent\"} 5",
            ],
        );
    }

    #[test]
    fn a_histogram_whose_counts_do_not_fit_its_bounds_is_left_out() {
        let text = text_of(MediaCounters {
            rtt: histogram(&[0.01, 0.1], &[2, 3], 1.0),
            ..Default::default()
        });
        assert!(!text.contains("ferrosfu_rtt_seconds_"), "{text}");
        assert!(text.contains("# TYPE ferrosfu_rtt_seconds histogram"));
    }
}
