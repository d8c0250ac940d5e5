//! A Producer: media a remote endpoint sends into a transport, one [`RecvStream`] per encoding.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferrosfu_fbs::{
    MediaKind, ProduceOptions, ProducerDump, ProducerId, RequestFailure, RtpMapping, RtpParameters,
    RtpStreamStats,
};

use crate::proto::rtp::Codec;
use crate::streams::keyframe::KeyFrameRequester;
use crate::streams::layer_rates::LayerRates;
use crate::streams::recv::RecvStream;
use crate::streams::retransmit::PacketStore;
use crate::tables::{ConsumerKey, ObserverKey, TransportKey};

pub(crate) const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub(crate) const URI_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
pub(crate) const URI_RRID: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
pub(crate) const URI_TRANSPORT_WIDE_CC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
pub(crate) const URI_ABS_SEND_TIME: &str =
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub(crate) const URI_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

#[derive(Debug)]
pub(crate) struct Encoding {
    pub ssrc: Option<u32>,
    pub rid: Option<String>,
    pub rtx_ssrc: Option<u32>,
    #[allow(dead_code)] // router-space SSRC, used when simulcast consumers select layers
    pub mapped_ssrc: u32,
    pub stream: Option<RecvStream>,
    /// What this encoding forwarded lately, for its consumers' retransmissions; allocated when
    /// the first consumer that retransmits (NACK negotiated) is created.
    pub store: Option<PacketStore>,
    /// Keyframe requests toward the publisher for this encoding, throttled.
    pub keyframe: KeyFrameRequester,
    /// Media arrived within [`INACTIVE_AFTER`]: simulcast consumers may switch to it.
    pub active: bool,
    /// When its last media packet (not a retransmission) arrived.
    pub last_seen: Option<Instant>,
}

/// An encoding that sent nothing for this long is inactive: simulcast consumers fall back to
/// another one (a publisher dropped it for lack of bandwidth or CPU, or muted it).
pub(crate) const INACTIVE_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub(crate) struct Producer {
    pub id: ProducerId,
    pub transport: TransportKey,
    pub kind: MediaKind,
    pub params: RtpParameters,
    pub mapping: RtpMapping,
    pub paused: bool,
    pub encodings: Vec<Encoding>,
    /// Media payload type → (mime, clock rate, codec).
    pub media_pts: HashMap<u8, (String, u32, Codec)>,
    /// RTX payload type → the media payload type it repairs.
    pub rtx_pts: HashMap<u8, u8>,
    pub nack_enabled: bool,
    /// Use FIR rather than PLI (the codec negotiated `ccm fir` but not `nack pli`).
    pub use_fir: bool,
    pub mid_ext: u8,
    pub rid_ext: u8,
    pub rrid_ext: u8,
    /// Id of the transport-wide-cc extension in what the publisher sends (0: not negotiated).
    pub twcc_ext: u8,
    pub consumers: Vec<ConsumerKey>,
    /// RtpObservers fed this producer's audio levels.
    pub observers: Vec<ObserverKey>,
    /// Id of the ssrc-audio-level extension in what the publisher sends (0: not negotiated).
    pub audio_level_ext: u8,
    /// How many of the consumers select layers (simulcast): packets get their VP8 descriptor
    /// parsed for them.
    pub layered_consumers: usize,
    pub last_scores: Vec<u8>,
    pub dropped: u64,
    /// Bitrate per layer (measured while layered consumers exist), for the allocator.
    pub layer_rates: Box<LayerRates>,
    /// The spatial layers its consumers need, as last told to the publisher (dynacast).
    pub layers_needed: Option<Vec<u8>>,
    /// The last measured cost (bit/s) of each spatial layer taken whole: what the allocator
    /// counts for a layer its publisher stopped sending because dynacast said nobody needed it
    /// (so a consumer that can take it again is granted it, and the publisher told to resume).
    pub last_layer_cost: Vec<u64>,
    /// Dynacast: fewer layers needed (how many) since when, not told yet.
    pub dynacast_pending: Option<(usize, Instant)>,
}

impl Producer {
    pub(crate) fn new(
        opts: ProduceOptions,
        transport: TransportKey,
    ) -> Result<Self, RequestFailure> {
        let p = &opts.rtp_parameters;
        if p.codecs.is_empty() {
            return Err(RequestFailure::invalid_argument(
                "rtp_parameters has no codecs",
            ));
        }
        if p.encodings.is_empty() {
            return Err(RequestFailure::invalid_argument(
                "rtp_parameters has no encodings",
            ));
        }
        if opts.rtp_mapping.encodings.len() != p.encodings.len() {
            return Err(RequestFailure::invalid_argument(
                "rtp_mapping.encodings does not match rtp_parameters.encodings",
            ));
        }
        let mut media_pts = HashMap::new();
        let mut rtx_pts = HashMap::new();
        for c in &p.codecs {
            if c.payload_type > 127 {
                return Err(RequestFailure::invalid_argument(format!(
                    "payload type {} out of range",
                    c.payload_type
                )));
            }
            if c.mime_type.to_ascii_lowercase().ends_with("/rtx") {
                let apt = c
                    .parameters
                    .iter()
                    .find(|(k, _)| k == "apt")
                    .and_then(|(_, v)| v.parse::<u8>().ok())
                    .ok_or_else(|| {
                        RequestFailure::invalid_argument(format!(
                            "RTX codec {} without a valid apt",
                            c.payload_type
                        ))
                    })?;
                rtx_pts.insert(c.payload_type, apt);
            } else {
                media_pts.insert(
                    c.payload_type,
                    (
                        c.mime_type.clone(),
                        c.clock_rate,
                        Codec::from_mime(&c.mime_type),
                    ),
                );
            }
        }
        if media_pts.is_empty() {
            return Err(RequestFailure::invalid_argument("no media codec"));
        }
        let main = &p.codecs[0];
        let has_fb = |kind: &str, param: &str| {
            main.rtcp_feedback
                .iter()
                .any(|f| f.kind == kind && f.parameter == param)
        };
        let nack_enabled = has_fb("nack", "");
        let use_fir = !has_fb("nack", "pli") && has_fb("ccm", "fir");
        let ext_id = |uri: &str| {
            p.header_extensions
                .iter()
                .find(|e| e.uri == uri)
                .map_or(0, |e| e.id)
        };
        let mut encodings = Vec::with_capacity(p.encodings.len());
        for (e, m) in p.encodings.iter().zip(&opts.rtp_mapping.encodings) {
            if e.ssrc.is_none() && e.rid.is_none() {
                return Err(RequestFailure::invalid_argument(
                    "an encoding has neither ssrc nor rid",
                ));
            }
            let mut enc = Encoding {
                ssrc: e.ssrc,
                rid: e.rid.clone(),
                rtx_ssrc: e.rtx_ssrc,
                mapped_ssrc: m.mapped_ssrc,
                stream: None,
                store: None,
                keyframe: KeyFrameRequester::new(Duration::from_millis(
                    opts.key_frame_request_delay as u64,
                )),
                active: false,
                last_seen: None,
            };
            if let Some(ssrc) = e.ssrc {
                enc.stream = Some(RecvStream::new(
                    ssrc,
                    e.rtx_ssrc,
                    e.rid.clone(),
                    main.mime_type.clone(),
                    main.clock_rate,
                    nack_enabled,
                ));
            }
            encodings.push(enc);
        }
        let n = encodings.len();
        Ok(Self {
            id: opts.producer_id,
            transport,
            kind: opts.kind,
            mid_ext: ext_id(URI_MID),
            rid_ext: ext_id(URI_RID),
            rrid_ext: ext_id(URI_RRID),
            twcc_ext: ext_id(URI_TRANSPORT_WIDE_CC),
            audio_level_ext: ext_id(URI_AUDIO_LEVEL),
            params: opts.rtp_parameters,
            mapping: opts.rtp_mapping,
            paused: opts.paused,
            encodings,
            media_pts,
            rtx_pts,
            nack_enabled,
            use_fir,
            consumers: Vec::new(),
            observers: Vec::new(),
            layered_consumers: 0,
            last_scores: vec![0; n],
            layer_rates: Box::default(),
            layers_needed: None,
            last_layer_cost: Vec::new(),
            dynacast_pending: None,
            dropped: 0,
        })
    }

    /// Makes the stream of encoding `i` exist (RID encodings learn their SSRC from the first
    /// packet).
    pub(crate) fn bind_ssrc(&mut self, i: usize, ssrc: u32) {
        let main = &self.params.codecs[0];
        let enc = &mut self.encodings[i];
        if enc.stream.is_none() {
            enc.ssrc = Some(ssrc);
            enc.stream = Some(RecvStream::new(
                ssrc,
                enc.rtx_ssrc,
                enc.rid.clone(),
                main.mime_type.clone(),
                main.clock_rate,
                self.nack_enabled,
            ));
        }
    }

    pub(crate) fn stats(&mut self, now: Instant) -> Vec<RtpStreamStats> {
        self.encodings
            .iter_mut()
            .filter_map(|e| e.stream.as_mut())
            .map(|s| RtpStreamStats {
                ssrc: s.ssrc,
                rtx_ssrc: s.rtx_ssrc,
                rid: s.rid.clone(),
                mime_type: s.mime_type.clone(),
                packet_count: s.packets,
                byte_count: s.bytes,
                packets_lost: s.packets_lost(),
                fraction_lost: s.fraction_lost,
                jitter: s.jitter(),
                bitrate: s.rate.bitrate(now),
                score: s.score,
                nack_count: s.nack_count,
                nack_packet_count: s.nack_packet_count,
                pli_count: s.pli_count,
                fir_count: s.fir_count,
                retransmitted_packet_count: s.retransmitted,
                round_trip_time: crate::stats::rtt_ms(s.rtt),
                bad_sequence_dropped: s.bad_sequence(),
                resync_count: s.resyncs(),
            })
            .collect()
    }

    pub(crate) fn dump(&self) -> ProducerDump {
        ProducerDump {
            id: self.id.clone(),
            kind: self.kind,
            rtp_parameters: self.params.clone(),
            rtp_mapping: self.mapping.clone(),
            paused: self.paused,
        }
    }

    /// The scores of the encodings, and whether they changed since last asked.
    pub(crate) fn scores_changed(&mut self) -> Option<Vec<(u32, Option<String>, u8)>> {
        let scores: Vec<u8> = self
            .encodings
            .iter()
            .map(|e| e.stream.as_ref().map_or(0, |s| s.score))
            .collect();
        if scores == self.last_scores {
            return None;
        }
        self.last_scores = scores;
        Some(
            self.encodings
                .iter()
                .filter_map(|e| e.stream.as_ref())
                .map(|s| (s.ssrc, s.rid.clone(), s.score))
                .collect(),
        )
    }

    /// The score of encoding `enc` (what a consumer sending it sees).
    pub(crate) fn score(&self, enc: usize) -> u8 {
        self.encodings
            .get(enc)
            .and_then(|e| e.stream.as_ref())
            .map_or(0, |s| s.score)
    }
}
