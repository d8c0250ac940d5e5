//! Set-up for the tests of the supervisor's typed media API (`ferrosfu::media`) against a real
//! worker process: the worker, transports on loopback, and the codec, producer and consumer
//! parameters the tests share.
//!
//! Everything here panics on failure, with a message saying what failed: these are set-up steps,
//! and a test whose set-up fails has failed.

use ferrosfu::media::Transport;
use ferrosfu::{Router, Worker, WorkerSettings};
use ferrosfu_fbs::{
    CodecMapping, ConsumeOptions, ConsumerId, ConsumerType, EncodingMapping, ListenInfo, MediaKind,
    PlainTransportOptions, ProduceOptions, ProducerId, RtcpParameters, RtpCodecParameters,
    RtpEncodingParameters, RtpMapping, RtpParameters, TransportId, TransportProtocol,
    WebRtcTransportListen, WebRtcTransportOptions,
};

/// Both transport protocols, UDP first, for [`webrtc_transport`].
pub const UDP_AND_TCP: &[TransportProtocol] = &[TransportProtocol::Udp, TransportProtocol::Tcp];

/// The Opus payload type plain-RTP publishers send with in these tests (as GStreamer's
/// `rtpopuspay pt=111`).
pub const PLAIN_OPUS_PT: u8 = 111;
/// The payload type [`produce_opus`] maps Opus to in the router, which consumers send with.
pub const ROUTER_OPUS_PT: u8 = 100;
/// The SSRC [`produce_opus`] maps the publisher's stream to in the router.
pub const ROUTER_OPUS_SSRC: u32 = 777;

/// Settings for a worker of this build (`ferrosfu-worker` next to the test executable) pinned to
/// core 0, the defaults otherwise.
pub fn worker_settings() -> WorkerSettings {
    let mut s = WorkerSettings::new(crate::bin("ferrosfu-worker"));
    s.core = Some(0);
    s
}

/// A worker process with [`worker_settings`], once it reported running.
pub async fn spawn_worker() -> Worker {
    Worker::spawn(&worker_settings())
        .await
        .expect("worker starts")
}

/// Where a transport listens in these tests: `protocol` on 127.0.0.1, a port from the worker's
/// range, nothing announced.
pub fn loopback(protocol: TransportProtocol) -> ListenInfo {
    ListenInfo {
        protocol,
        ip: "127.0.0.1".into(),
        announced_address: None,
        port: 0,
    }
}

/// Options of a WebRtcTransport `id` listening on [`loopback`] for each of `protocols` (only those
/// enabled), UDP preferred, the default consent timeout and a 1 Mbit/s initial outgoing estimate.
pub fn webrtc_options(id: &str, protocols: &[TransportProtocol]) -> WebRtcTransportOptions {
    WebRtcTransportOptions {
        transport_id: TransportId::new(id),
        listen: WebRtcTransportListen::Individual(protocols.iter().map(|p| loopback(*p)).collect()),
        enable_udp: protocols.contains(&TransportProtocol::Udp),
        enable_tcp: protocols.contains(&TransportProtocol::Tcp),
        prefer_udp: true,
        prefer_tcp: false,
        ice_consent_timeout: 0,
        initial_available_outgoing_bitrate: 1_000_000,
        sctp: None,
    }
}

/// A WebRtcTransport `id` on `router` with [`webrtc_options`].
pub async fn webrtc_transport(
    router: &Router,
    id: &str,
    protocols: &[TransportProtocol],
) -> Transport {
    Transport::create_webrtc(router, webrtc_options(id, protocols))
        .await
        .unwrap_or_else(|e| panic!("create WebRtcTransport {id}: {e}"))
}

/// Options of a PlainTransport `id` on [`loopback`] UDP with rtcp-mux and no SRTP; `comedia`: it
/// learns its remote tuple from the first packet it receives.
pub fn plain_options(id: &str, comedia: bool) -> PlainTransportOptions {
    PlainTransportOptions {
        transport_id: TransportId::new(id),
        listen_info: loopback(TransportProtocol::Udp),
        rtcp_listen_info: None,
        rtcp_mux: true,
        comedia,
        srtp_crypto_suite: None,
    }
}

/// A PlainTransport `id` on `router` with [`plain_options`].
pub async fn plain_transport(router: &Router, id: &str, comedia: bool) -> Transport {
    Transport::create_plain(router, plain_options(id, comedia))
        .await
        .unwrap_or_else(|e| panic!("create PlainTransport {id}: {e}"))
}

/// Opus (48 kHz, stereo, no parameters, no RTCP feedback) under payload type `pt`.
pub fn opus(pt: u8) -> RtpCodecParameters {
    RtpCodecParameters {
        mime_type: "audio/opus".into(),
        payload_type: pt,
        clock_rate: 48000,
        channels: Some(2),
        parameters: vec![],
        rtcp_feedback: vec![],
    }
}

/// One Opus stream on m-section `mid`: [`opus`] under payload type `pt`, one encoding with SSRC
/// `ssrc`, no header extensions.
fn opus_stream(mid: Option<&str>, pt: u8, ssrc: u32, rtcp: RtcpParameters) -> RtpParameters {
    RtpParameters {
        mid: mid.map(str::to_owned),
        codecs: vec![opus(pt)],
        header_extensions: vec![],
        encodings: vec![RtpEncodingParameters {
            ssrc: Some(ssrc),
            ..Default::default()
        }],
        rtcp,
    }
}

/// Producer `id` of a plain-RTP Opus publisher: payload type [`PLAIN_OPUS_PT`], SSRC `ssrc`, no
/// MID, RTCP CNAME `cname`; mapped to [`ROUTER_OPUS_PT`] and [`ROUTER_OPUS_SSRC`] in the router.
pub fn produce_opus(id: &str, ssrc: u32, cname: &str) -> ProduceOptions {
    ProduceOptions {
        producer_id: ProducerId::new(id),
        kind: MediaKind::Audio,
        rtp_parameters: opus_stream(
            None,
            PLAIN_OPUS_PT,
            ssrc,
            RtcpParameters {
                cname: cname.into(),
                reduced_size: false,
            },
        ),
        rtp_mapping: RtpMapping {
            codecs: vec![CodecMapping {
                payload_type: PLAIN_OPUS_PT,
                mapped_payload_type: ROUTER_OPUS_PT,
            }],
            encodings: vec![EncodingMapping {
                ssrc: Some(ssrc),
                rid: None,
                scalability_mode: None,
                mapped_ssrc: ROUTER_OPUS_SSRC,
            }],
        },
        key_frame_request_delay: 0,
        paused: false,
    }
}

/// Consumer `id` of the [`produce_opus`] producer `producer`, not paused: Opus under
/// [`ROUTER_OPUS_PT`], SSRC `ssrc`, MID "0", reduced-size RTCP with CNAME `cname`.
pub fn consume_opus(id: &str, producer: &str, ssrc: u32, cname: &str) -> ConsumeOptions {
    ConsumeOptions {
        consumer_id: ConsumerId::new(id),
        producer_id: ProducerId::new(producer),
        kind: MediaKind::Audio,
        rtp_parameters: opus_stream(
            Some("0"),
            ROUTER_OPUS_PT,
            ssrc,
            RtcpParameters {
                cname: cname.into(),
                reduced_size: true,
            },
        ),
        consumable_rtp_encodings: vec![],
        paused: false,
        ignore_dtx: false,
        consumer_type: ConsumerType::Simple,
        preferred_layers: None,
    }
}

/// The payload of RTP packet `pkt`: after the CSRCs and the header extension (a room's
/// consumers write their MID and send time into every packet); empty when it is too short.
pub fn rtp_payload(pkt: &[u8]) -> &[u8] {
    let n = pkt.len();
    if n < 12 {
        return &[];
    }
    let mut start = 12 + 4 * usize::from(pkt[0] & 0x0f);
    if pkt[0] & 0x10 != 0 && n >= start + 4 {
        start += 4 + 4 * usize::from(u16::from_be_bytes([pkt[start + 2], pkt[start + 3]]));
    }
    &pkt[start.min(n)..]
}

/// A bare RTP packet (version 2, no padding, extension, CSRCs or marker) carrying `payload`.
pub fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, pt];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// The router-side mapping of a producer's parameters (as a webrtc-rs
/// [`Publisher`](crate::rtc_client::Publisher) offers them): the same payload types, and the
/// encodings mapped to SSRCs `base_ssrc`, `base_ssrc + 1`, … in order.
pub fn mapping(params: &RtpParameters, base_ssrc: u32) -> RtpMapping {
    RtpMapping {
        codecs: params
            .codecs
            .iter()
            .map(|c| CodecMapping {
                payload_type: c.payload_type,
                mapped_payload_type: c.payload_type,
            })
            .collect(),
        encodings: params
            .encodings
            .iter()
            .enumerate()
            .map(|(i, e)| EncodingMapping {
                ssrc: e.ssrc,
                rid: e.rid.clone(),
                scalability_mode: None,
                mapped_ssrc: base_ssrc + i as u32,
            })
            .collect(),
    }
}
