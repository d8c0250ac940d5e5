//! Scores and RTP stream statistics.

use super::*;

pub(super) fn build_consumer_score(
    fbb: &mut Fbb,
    s: &ConsumerScore,
) -> WIPOffset<fb_cons::ConsumerScore<'static>> {
    fb_cons::ConsumerScore::create(
        fbb,
        &fb_cons::ConsumerScoreArgs {
            score: s.score,
            producer_score: s.producer_score,
        },
    )
}

pub(super) fn build_consumer_layers(
    fbb: &mut Fbb,
    l: Option<&ConsumerLayers>,
) -> Option<WIPOffset<fb_cons::ConsumerLayers<'static>>> {
    l.map(|l| {
        fb_cons::ConsumerLayers::create(
            fbb,
            &fb_cons::ConsumerLayersArgs {
                spatial_layer: l.spatial_layer,
                temporal_layer: l.temporal_layer,
            },
        )
    })
}

pub(super) fn consumer_layers_from(l: fb_cons::ConsumerLayers<'_>) -> ConsumerLayers {
    ConsumerLayers {
        spatial_layer: l.spatial_layer(),
        temporal_layer: l.temporal_layer(),
    }
}

pub(super) fn build_rtp_stream_stats(
    fbb: &mut Fbb,
    s: &RtpStreamStats,
) -> WIPOffset<fb_rs::Stats<'static>> {
    let rid = opt_str(fbb, s.rid.as_deref());
    let mime_type = Some(fbb.create_string(&s.mime_type));
    fb_rs::Stats::create(
        fbb,
        &fb_rs::StatsArgs {
            ssrc: s.ssrc,
            rtx_ssrc: s.rtx_ssrc,
            rid,
            mime_type,
            packet_count: s.packet_count,
            byte_count: s.byte_count,
            packets_lost: s.packets_lost,
            fraction_lost: s.fraction_lost,
            jitter: s.jitter,
            bitrate: s.bitrate,
            score: s.score,
            nack_count: s.nack_count,
            nack_packet_count: s.nack_packet_count,
            pli_count: s.pli_count,
            fir_count: s.fir_count,
            retransmitted_packet_count: s.retransmitted_packet_count,
            round_trip_time: s.round_trip_time,
            bad_sequence_dropped: s.bad_sequence_dropped,
            resync_count: s.resync_count,
        },
    )
}

pub(super) fn consumer_score_from(s: fb_cons::ConsumerScore<'_>) -> ConsumerScore {
    ConsumerScore {
        score: s.score(),
        producer_score: s.producer_score(),
    }
}

pub(super) fn rtp_stream_stats_from(s: fb_rs::Stats<'_>) -> RtpStreamStats {
    RtpStreamStats {
        ssrc: s.ssrc(),
        rtx_ssrc: s.rtx_ssrc(),
        rid: s.rid().map(own),
        mime_type: s.mime_type().own(),
        packet_count: s.packet_count(),
        byte_count: s.byte_count(),
        packets_lost: s.packets_lost(),
        fraction_lost: s.fraction_lost(),
        jitter: s.jitter(),
        bitrate: s.bitrate(),
        score: s.score(),
        nack_count: s.nack_count(),
        nack_packet_count: s.nack_packet_count(),
        pli_count: s.pli_count(),
        fir_count: s.fir_count(),
        retransmitted_packet_count: s.retransmitted_packet_count(),
        round_trip_time: s.round_trip_time(),
        bad_sequence_dropped: s.bad_sequence_dropped(),
        resync_count: s.resync_count(),
    }
}
