//! `worker.get_media_counters`: the worker's counters and histograms.

use super::*;
use crate::counters::{FeedbackCounters, Histogram, MediaCounters, RtpCounters};

pub(super) fn build_media_counters(
    fbb: &mut Fbb,
    c: &MediaCounters,
) -> WIPOffset<fb_worker::MediaCountersResponse<'static>> {
    let data = Some(build_data_counters(fbb, &c.data));
    let audio = Some(build_rtp_counters(fbb, &c.audio));
    let video = Some(build_rtp_counters(fbb, &c.video));
    let f = &c.feedback;
    let feedback = Some(fb_worker::FeedbackCounters::create(
        fbb,
        &fb_worker::FeedbackCountersArgs {
            nacks_received: f.nacks_received,
            nacks_sent: f.nacks_sent,
            plis_received: f.plis_received,
            plis_sent: f.plis_sent,
            firs_received: f.firs_received,
            firs_sent: f.firs_sent,
        },
    ));
    let loss_received = Some(build_histogram(fbb, &c.loss_received));
    let loss_sent = Some(build_histogram(fbb, &c.loss_sent));
    let jitter_received = Some(build_histogram(fbb, &c.jitter_received));
    let jitter_sent = Some(build_histogram(fbb, &c.jitter_sent));
    let rtt = Some(build_histogram(fbb, &c.rtt));
    fb_worker::MediaCountersResponse::create(
        fbb,
        &fb_worker::MediaCountersResponseArgs {
            unknown_socket: c.unknown_socket,
            unknown_tuple: c.unknown_tuple,
            rtp_bad_sequence: c.rtp_bad_sequence,
            rtp_resyncs: c.rtp_resyncs,
            dtls_failures: c.dtls_failures,
            data,
            audio,
            video,
            feedback,
            srtp_auth_failures: c.srtp_auth_failures,
            srtp_replays: c.srtp_replays,
            ice_consent_lost: c.ice_consent_lost,
            ice_unauthorized: c.ice_unauthorized,
            ice_bad_requests: c.ice_bad_requests,
            transports: c.transports,
            producers: c.producers,
            consumers: c.consumers,
            loss_received,
            loss_sent,
            jitter_received,
            jitter_sent,
            rtt,
        },
    )
}

pub(super) fn media_counters_from(c: fb_worker::MediaCountersResponse<'_>) -> MediaCounters {
    let f = c.feedback();
    let hist = |h: Option<fb_worker::Histogram<'_>>| h.map(histogram_from).unwrap_or_default();
    MediaCounters {
        unknown_socket: c.unknown_socket(),
        unknown_tuple: c.unknown_tuple(),
        rtp_bad_sequence: c.rtp_bad_sequence(),
        rtp_resyncs: c.rtp_resyncs(),
        dtls_failures: c.dtls_failures(),
        data: c.data().map(data_counters_from).unwrap_or_default(),
        audio: c.audio().map(rtp_counters_from).unwrap_or_default(),
        video: c.video().map(rtp_counters_from).unwrap_or_default(),
        feedback: f.map_or_else(FeedbackCounters::default, |f| FeedbackCounters {
            nacks_received: f.nacks_received(),
            nacks_sent: f.nacks_sent(),
            plis_received: f.plis_received(),
            plis_sent: f.plis_sent(),
            firs_received: f.firs_received(),
            firs_sent: f.firs_sent(),
        }),
        srtp_auth_failures: c.srtp_auth_failures(),
        srtp_replays: c.srtp_replays(),
        ice_consent_lost: c.ice_consent_lost(),
        ice_unauthorized: c.ice_unauthorized(),
        ice_bad_requests: c.ice_bad_requests(),
        transports: c.transports(),
        producers: c.producers(),
        consumers: c.consumers(),
        loss_received: hist(c.loss_received()),
        loss_sent: hist(c.loss_sent()),
        jitter_received: hist(c.jitter_received()),
        jitter_sent: hist(c.jitter_sent()),
        rtt: hist(c.rtt()),
    }
}

fn build_rtp_counters(
    fbb: &mut Fbb,
    c: &RtpCounters,
) -> WIPOffset<fb_worker::RtpCounters<'static>> {
    fb_worker::RtpCounters::create(
        fbb,
        &fb_worker::RtpCountersArgs {
            packets_received: c.packets_received,
            bytes_received: c.bytes_received,
            packets_sent: c.packets_sent,
            bytes_sent: c.bytes_sent,
            retransmissions_sent: c.retransmissions_sent,
        },
    )
}

fn rtp_counters_from(c: fb_worker::RtpCounters<'_>) -> RtpCounters {
    RtpCounters {
        packets_received: c.packets_received(),
        bytes_received: c.bytes_received(),
        packets_sent: c.packets_sent(),
        bytes_sent: c.bytes_sent(),
        retransmissions_sent: c.retransmissions_sent(),
    }
}

fn build_histogram(fbb: &mut Fbb, h: &Histogram) -> WIPOffset<fb_worker::Histogram<'static>> {
    let bounds = Some(fbb.create_vector(&h.bounds));
    let counts = Some(fbb.create_vector(&h.counts));
    fb_worker::Histogram::create(
        fbb,
        &fb_worker::HistogramArgs {
            bounds,
            counts,
            sum: h.sum,
        },
    )
}

fn histogram_from(h: fb_worker::Histogram<'_>) -> Histogram {
    Histogram {
        bounds: h
            .bounds()
            .map(|v| v.bounded().collect())
            .unwrap_or_default(),
        counts: h
            .counts()
            .map(|v| v.bounded().collect())
            .unwrap_or_default(),
        sum: h.sum(),
    }
}
