//! A Consumer: one producer's media sent to one remote endpoint, rewritten into the consumer's
//! own SSRC, payload types, sequence/timestamp space and header-extension ids.

use std::time::Instant;

use ferrosfu_fbs::{
    ConsumeOptions, ConsumerDump, ConsumerId, ConsumerScore, ConsumerType, MediaKind, ProducerId,
    RequestFailure, RtpParameters, RtpStreamStats, parse_scalability_mode,
};

use crate::producer::{
    Producer, URI_ABS_SEND_TIME, URI_MID, URI_RID, URI_RRID, URI_TRANSPORT_WIDE_CC,
};
use crate::proto::rtp::Codec;
use crate::proto::rtp::OwnExts;
use crate::streams::layered::{Layered, Layers};
use crate::streams::layers::MAX_SPATIAL_LAYERS;
use crate::streams::send::SendStream;
use crate::streams::svc_layers::SvcLayers;
use crate::tables::{ConsumerKey, ProducerKey, TransportKey};

#[derive(Debug)]
pub(crate) struct Consumer {
    pub id: ConsumerId,
    pub producer_id: ProducerId,
    pub producer: ProducerKey,
    pub transport: TransportKey,
    pub kind: MediaKind,
    pub params: RtpParameters,
    pub paused: bool,
    pub producer_paused: bool,
    pub stream: SendStream,
    /// Producer payload type → our payload type (0 = not forwarded).
    pub pt_map: [u8; 128],
    /// Producer extension id → our extension id (0 = dropped).
    pub ext_map: [u8; 256],
    /// Our MID header extension (id, value), written into every packet we send.
    pub mid_ext: Option<(u8, Vec<u8>)>,
    /// Our transport-wide-cc and abs-send-time extension ids (0 = not negotiated): written at
    /// send time from our transport's sequence and our clock.
    pub twcc_ext: u8,
    pub abs_send_time_ext: u8,
    pub consumer_type: ConsumerType,
    /// 1 (lowest) to 255: its share when a transport's bandwidth is split (issue 13).
    pub priority: u8,
    /// Simulcast/SVC: which layers it forwards (`None`: simple).
    pub layers: Option<Box<Layers>>,
    pub last_score: ConsumerScore,
    /// Its transport's allocator paused it: even its lowest layer does not fit the estimate.
    pub bwe_paused: bool,
    /// The layers the allocator granted last (`None`: not allocated yet, or a simple consumer).
    pub granted: Option<(u8, u8)>,
    /// The producer encoding a consumer without layer selection forwards: 0 for a simple
    /// consumer, its own for each stream of a pipe consumer.
    pub encoding: u8,
    /// A pipe consumer's streams of the producer's other encodings (on the first stream, the
    /// one its id names), each a consumer entry of its own with `sibling` set.
    pub siblings: Vec<ConsumerKey>,
    /// One of a pipe consumer's streams after the first: addressed through the first, never
    /// notifies on its own.
    pub sibling: bool,
}

impl Consumer {
    /// The header-extension elements this consumer writes itself into a packet it sends now:
    /// its MID, the next transport-wide sequence number (from `twcc_seq`, only called when
    /// negotiated) and the 24-bit abs-send-time of `ntp` (6.18 fixed-point seconds).
    pub(crate) fn own_exts(&self, twcc_seq: impl FnOnce() -> u16, ntp: u64) -> OwnExts<'_> {
        OwnExts {
            mid: self.mid_ext.as_ref().map(|(id, v)| (*id, &v[..])),
            twcc: (self.twcc_ext != 0).then(|| (self.twcc_ext, twcc_seq())),
            abs_send_time: (self.abs_send_time_ext != 0)
                .then_some((self.abs_send_time_ext, ((ntp >> 14) & 0xff_ffff) as u32)),
        }
    }

    /// Consumer `opts` of `producer`; `encoding`: which of `opts`' encodings this entry sends
    /// (0, or each stream of a pipe consumer in turn).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        opts: ConsumeOptions,
        encoding: usize,
        producer_key: ProducerKey,
        producer: &Producer,
        transport: TransportKey,
        initial_seq: u16,
        ts_offset: u32,
        now: Instant,
    ) -> Result<Self, RequestFailure> {
        let p = &opts.rtp_parameters;
        let enc = p
            .encodings
            .get(encoding)
            .ok_or_else(|| RequestFailure::invalid_argument("rtp_parameters has no encodings"))?;
        let ssrc = enc
            .ssrc
            .ok_or_else(|| RequestFailure::invalid_argument("consumer encoding without ssrc"))?;
        if opts.kind != producer.kind {
            return Err(RequestFailure::invalid_argument(
                "consumer kind differs from its producer's",
            ));
        }
        let media = p
            .codecs
            .iter()
            .find(|c| !c.mime_type.to_ascii_lowercase().ends_with("/rtx"))
            .ok_or_else(|| RequestFailure::invalid_argument("rtp_parameters has no media codec"))?;
        // Payload types: match the producer's media codecs by mime type and clock rate.
        let mut pt_map = [0u8; 128];
        for (ppt, (mime, clock, _)) in &producer.media_pts {
            if let Some(c) = p
                .codecs
                .iter()
                .find(|c| c.mime_type.eq_ignore_ascii_case(mime) && c.clock_rate == *clock)
                && c.payload_type < 128
            {
                pt_map[*ppt as usize] = c.payload_type;
            }
        }
        if pt_map.iter().all(|&v| v == 0) {
            return Err(RequestFailure::invalid_argument(
                "no consumer codec matches the producer's codecs",
            ));
        }
        // Header extensions: by URI. The publisher's MID and RID/RRID name its own m-line and
        // encodings: never forwarded. We write our own MID instead (receivers demultiplex by
        // MID before SSRC: a forwarded MID lands our media on another transceiver). The
        // publisher's transport-wide sequence and send time describe its leg, not ours: we
        // write our own at send time (as mediasoup does).
        let mut ext_map = [0u8; 256];
        let ours = [
            URI_MID,
            URI_RID,
            URI_RRID,
            URI_TRANSPORT_WIDE_CC,
            URI_ABS_SEND_TIME,
        ];
        for pe in &producer.params.header_extensions {
            if ours.contains(&pe.uri.as_str()) {
                continue;
            }
            if let Some(ce) = p.header_extensions.iter().find(|e| e.uri == pe.uri) {
                ext_map[pe.id as usize] = ce.id;
            }
        }
        let mid_ext = match (
            p.header_extensions.iter().find(|e| e.uri == URI_MID),
            p.mid.as_deref(),
        ) {
            (Some(e), Some(mid)) if (1..=255).contains(&mid.len()) && e.id != 0 => {
                Some((e.id, mid.as_bytes().to_vec()))
            }
            _ => None,
        };
        let ext_id = |uri: &str| {
            p.header_extensions
                .iter()
                .find(|e| e.uri == uri)
                .map_or(0, |e| e.id)
        };
        let (twcc_ext, abs_send_time_ext) =
            (ext_id(URI_TRANSPORT_WIDE_CC), ext_id(URI_ABS_SEND_TIME));
        let has_fb = |kind: &str, param: &str| {
            media
                .rtcp_feedback
                .iter()
                .any(|f| f.kind == kind && f.parameter == param)
        };
        let nack = has_fb("nack", "");
        let rtx = match (
            enc.rtx_ssrc,
            p.codecs.iter().find(|c| {
                c.mime_type.to_ascii_lowercase().ends_with("/rtx")
                    && c.parameters.iter().any(|(k, v)| {
                        k == "apt" && v.parse::<u8>().ok() == Some(media.payload_type)
                    })
            }),
        ) {
            (Some(s), Some(c)) => Some((s, c.payload_type)),
            _ => None,
        };
        let stream = SendStream::new(
            ssrc,
            rtx,
            media.mime_type.clone(),
            media.clock_rate,
            nack,
            initial_seq,
            ts_offset,
        );
        let layers = layers_of(&opts, producer, &media.mime_type, now)?;
        Ok(Self {
            id: opts.consumer_id,
            producer_id: opts.producer_id,
            producer: producer_key,
            transport,
            kind: opts.kind,
            consumer_type: opts.consumer_type,
            priority: 1,
            layers,
            params: opts.rtp_parameters,
            paused: opts.paused,
            producer_paused: producer.paused,
            stream,
            pt_map,
            ext_map,
            mid_ext,
            twcc_ext,
            abs_send_time_ext,
            last_score: ConsumerScore {
                score: 10,
                producer_score: producer.score(0),
            },
            bwe_paused: false,
            granted: None,
            encoding: encoding as u8,
            siblings: Vec::new(),
            sibling: encoding > 0,
        })
    }

    /// It forwards: neither paused by its app, nor its producer, nor its transport's allocator.
    pub(crate) fn active(&self) -> bool {
        self.wanted() && !self.bwe_paused
    }

    /// Neither it nor its producer is paused: it wants media (the allocator decides the rest).
    pub(crate) fn wanted(&self) -> bool {
        !self.paused && !self.producer_paused
    }

    /// Forwarding restarts after the last packet sent, on a keyframe for video (resumed).
    pub(crate) fn resync(&mut self) {
        self.stream.resync();
        if let Some(l) = self.layers.as_deref_mut() {
            l.resync();
        }
    }

    /// The producer encoding whose keyframe this consumer needs: the one it sends, else the
    /// one it switches to (simulcast); the first (simple).
    pub(crate) fn key_encoding(&self) -> Option<usize> {
        match &self.layers {
            Some(l) => l.key_encoding().map(usize::from),
            None => Some(usize::from(self.encoding)),
        }
    }

    pub(crate) fn stats(&mut self, now: Instant) -> Vec<RtpStreamStats> {
        let s = &mut self.stream;
        vec![RtpStreamStats {
            ssrc: s.ssrc,
            rtx_ssrc: s.rtx_ssrc,
            rid: None,
            mime_type: s.mime_type.clone(),
            packet_count: s.packets,
            byte_count: s.bytes,
            packets_lost: s.packets_lost as u64,
            fraction_lost: s.fraction_lost,
            jitter: s.jitter,
            bitrate: s.rate.bitrate(now),
            score: s.score,
            nack_count: s.nack_count,
            nack_packet_count: s.nack_packet_count,
            pli_count: s.pli_count,
            fir_count: s.fir_count,
            retransmitted_packet_count: s.rtx_packets,
            round_trip_time: crate::stats::rtt_ms(s.rtt),
            bad_sequence_dropped: 0,
            resync_count: 0,
        }]
    }

    pub(crate) fn dump(&self) -> ConsumerDump {
        ConsumerDump {
            id: self.id.clone(),
            producer_id: self.producer_id.clone(),
            kind: self.kind,
            rtp_parameters: self.params.clone(),
            paused: self.paused,
            producer_paused: self.producer_paused,
            consumer_type: self.consumer_type,
            priority: self.priority,
            preferred_layers: self.layers.as_ref().map(|l| l.preferred()),
            target_layers: self.layers.as_ref().and_then(|l| l.target()),
            current_layers: self.layers.as_ref().and_then(|l| l.current()),
        }
    }
}

/// The layer selection of a consumer of type `consumer_type` (`None`: simple), from the
/// producer's encodings and scalability mode; the app's initial preference applied.
fn layers_of(
    opts: &ConsumeOptions,
    producer: &Producer,
    mime: &str,
    now: Instant,
) -> Result<Option<Box<Layers>>, RequestFailure> {
    let mode = producer
        .params
        .encodings
        .first()
        .and_then(|e| e.scalability_mode.as_deref());
    let (spatial, temporal) = parse_scalability_mode(mode);
    let codec = Codec::from_mime(mime);
    let mut layers = match (opts.consumer_type, producer.kind) {
        (ConsumerType::Simple | ConsumerType::Pipe, _) | (_, MediaKind::Audio) => return Ok(None),
        (ConsumerType::Simulcast, _) => {
            let spatial = producer.encodings.len().min(MAX_SPATIAL_LAYERS) as u8;
            Layers::Simulcast(Layered::new(spatial, temporal, codec == Codec::Vp8))
        }
        (ConsumerType::Svc, _) if codec == Codec::Vp9 && producer.encodings.len() == 1 => {
            let ksvc = mode.is_some_and(|m| m.ends_with("_KEY"));
            Layers::Svc(SvcLayers::new(spatial, temporal, ksvc))
        }
        (t, _) => {
            return Err(RequestFailure::invalid_argument(format!(
                "{} consumers of {mime} are not supported",
                t.as_str()
            )));
        }
    };
    if let Some(p) = opts.preferred_layers {
        layers.set_preferred(p.spatial_layer, p.temporal_layer, now);
    }
    Ok(Some(Box::new(layers)))
}
