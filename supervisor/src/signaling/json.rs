//! mediasoup's JSON shapes for what the worker reports: transport parameters (ICE, DTLS, plain
//! tuples) and stats, plus the DTLS parameters clients send.

use ferrosfu_fbs::{
    DtlsFingerprint, DtlsParameters, DtlsRole, DtlsState, IceCandidate, IceParameters, IceState,
    RtpStreamStats, TransportProtocol, TransportStats, TransportTuple, WebRtcTransportDump,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::rooms::Stats;

fn protocol(p: TransportProtocol) -> &'static str {
    match p {
        TransportProtocol::Udp => "udp",
        TransportProtocol::Tcp => "tcp",
    }
}

pub(crate) fn ice_parameters(p: &IceParameters) -> Value {
    json!({
        "usernameFragment": p.username_fragment,
        "password": p.password,
        "iceLite": p.ice_lite,
    })
}

/// Both `address` (mediasoup ≥ 3.13) and `ip` (older clients) are given.
pub(crate) fn ice_candidates(c: &[IceCandidate]) -> Value {
    c.iter()
        .map(|c| {
            let mut v = json!({
                "foundation": c.foundation,
                "priority": c.priority,
                "address": c.address,
                "ip": c.address,
                "protocol": protocol(c.protocol),
                "port": c.port,
                "type": c.kind,
            });
            if let Some(t) = &c.tcp_type {
                v["tcpType"] = json!(t);
            }
            v
        })
        .collect()
}

fn role(r: DtlsRole) -> &'static str {
    match r {
        DtlsRole::Auto => "auto",
        DtlsRole::Client => "client",
        DtlsRole::Server => "server",
    }
}

pub(crate) fn dtls_parameters(p: &DtlsParameters) -> Value {
    json!({
        "role": role(p.role),
        "fingerprints": p.fingerprints.iter().map(|f| json!({
            "algorithm": f.algorithm,
            "value": f.value,
        })).collect::<Vec<_>>(),
    })
}

/// Client DTLS parameters: `{ role?: "auto"|"client"|"server", fingerprints: [{algorithm, value}] }`
/// (at least one fingerprint, none empty).
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "DtlsJson")]
pub(crate) struct Dtls(pub DtlsParameters);

#[derive(Deserialize)]
struct DtlsJson {
    #[serde(default)]
    role: Option<DtlsRoleJson>,
    fingerprints: Vec<FingerprintJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum DtlsRoleJson {
    Auto,
    Client,
    Server,
}

#[derive(Deserialize)]
struct FingerprintJson {
    algorithm: String,
    value: String,
}

impl TryFrom<DtlsJson> for Dtls {
    type Error = String;

    fn try_from(j: DtlsJson) -> Result<Self, String> {
        if j.fingerprints.is_empty() {
            return Err("dtlsParameters: no fingerprint".into());
        }
        if j.fingerprints
            .iter()
            .any(|f| f.algorithm.is_empty() || f.value.is_empty())
        {
            return Err("dtlsParameters: each fingerprint needs algorithm and value".into());
        }
        Ok(Dtls(DtlsParameters {
            role: match j.role {
                None | Some(DtlsRoleJson::Auto) => DtlsRole::Auto,
                Some(DtlsRoleJson::Client) => DtlsRole::Client,
                Some(DtlsRoleJson::Server) => DtlsRole::Server,
            },
            fingerprints: j
                .fingerprints
                .into_iter()
                .map(|f| DtlsFingerprint {
                    algorithm: f.algorithm,
                    value: f.value,
                })
                .collect(),
        }))
    }
}

/// A new WebRtcTransport as mediasoup-client's `device.createSendTransport` takes it.
pub(crate) fn webrtc_transport(d: &WebRtcTransportDump) -> Value {
    json!({
        "id": d.id.as_str(),
        "iceParameters": ice_parameters(&d.ice_parameters),
        "iceCandidates": ice_candidates(&d.ice_candidates),
        "dtlsParameters": dtls_parameters(&d.dtls_parameters),
        "sctpParameters": match &d.sctp_parameters {
            Some(p) => json!({
                "port": p.port,
                "OS": p.os,
                "MIS": p.mis,
                "maxMessageSize": p.max_message_size,
            }),
            None => Value::Null,
        },
    })
}

/// `get*Stats`: a transport's, or the streams of a producer (`inbound-rtp`) or consumer
/// (`outbound-rtp`).
pub(crate) fn stats(s: &Stats) -> Value {
    match s {
        Stats::Transport(t) => transport_stats(t),
        Stats::DataProducer(d) => json!([{
            "type": "data-producer",
            "timestamp": d.timestamp,
            "label": d.label,
            "protocol": d.protocol,
            "messagesReceived": d.messages,
            "bytesReceived": d.bytes,
        }]),
        Stats::DataConsumer(d) => json!([{
            "type": "data-consumer",
            "timestamp": d.timestamp,
            "label": d.label,
            "protocol": d.protocol,
            "messagesSent": d.messages,
            "bytesSent": d.bytes,
            "bufferedAmount": d.buffered_amount,
        }]),
        Stats::Streams {
            inbound,
            kind,
            streams,
        } => {
            let now = now_ms();
            let which = if *inbound {
                "inbound-rtp"
            } else {
                "outbound-rtp"
            };
            streams
                .iter()
                .map(|st| rtp_stream_stats(which, kind.as_str(), st, now))
                .collect()
        }
        Stats::Consumer {
            kind,
            outbound,
            producer,
        } => {
            let now = now_ms();
            let out = outbound
                .iter()
                .map(|st| rtp_stream_stats("outbound-rtp", kind.as_str(), st, now));
            let inb = producer
                .iter()
                .map(|st| rtp_stream_stats("inbound-rtp", kind.as_str(), st, now));
            out.chain(inb).collect()
        }
    }
}

pub(crate) fn tuple(t: &TransportTuple) -> Value {
    json!({
        "localAddress": t.local_address,
        "localIp": t.local_address,
        "localPort": t.local_port,
        "remoteIp": t.remote_ip,
        "remotePort": t.remote_port,
        "protocol": protocol(t.protocol),
    })
}

fn ice_state(s: IceState) -> &'static str {
    match s {
        IceState::New => "new",
        IceState::Connected => "connected",
        IceState::Completed => "completed",
        IceState::Disconnected => "disconnected",
        IceState::Closed => "closed",
    }
}

fn dtls_state(s: DtlsState) -> &'static str {
    match s {
        DtlsState::New => "new",
        DtlsState::Connecting => "connecting",
        DtlsState::Connected => "connected",
        DtlsState::Failed => "failed",
        DtlsState::Closed => "closed",
    }
}

/// `transport.getStats()`: one object, in an array as mediasoup returns it.
fn transport_stats(s: &TransportStats) -> Value {
    let mut v = json!({
        "type": if s.ice_state.is_some() { "webrtc-transport" } else { "plain-rtp-transport" },
        "transportId": s.transport_id.as_str(),
        "timestamp": s.timestamp,
        "bytesReceived": s.bytes_received,
        "bytesSent": s.bytes_sent,
        "recvBitrate": s.recv_bitrate,
        "sendBitrate": s.send_bitrate,
        "availableOutgoingBitrate": s.available_outgoing_bitrate,
        "availableIncomingBitrate": s.available_incoming_bitrate,
        "maxIncomingBitrate": s.max_incoming_bitrate,
        "maxOutgoingBitrate": s.max_outgoing_bitrate,
        "minOutgoingBitrate": s.min_outgoing_bitrate,
        "rtpPacketLossReceived": s.rtp_packet_loss_received,
        "rtpPacketLossSent": s.rtp_packet_loss_sent,
        "probationBytesSent": s.probation_bytes_sent,
        "probationSendBitrate": s.probation_send_bitrate,
        "rtpPacketsReceived": s.rtp_packets_received,
        "rtpPacketsSent": s.rtp_packets_sent,
        "rtcpPacketsReceived": s.rtcp_packets_received,
        "rtcpPacketsSent": s.rtcp_packets_sent,
        "rtxPacketsSent": s.rtx_packets_sent,
        "packetsDropped": s.packets_dropped,
        "srtpAuthFailures": s.srtp_auth_failures,
        "srtpReplays": s.srtp_replays,
    });
    if let Some(st) = s.ice_state {
        v["iceRole"] = json!("controlled");
        v["iceState"] = json!(ice_state(st));
    }
    if let Some(st) = s.dtls_state {
        v["dtlsState"] = json!(dtls_state(st));
    }
    if let Some(t) = &s.tuple {
        v[if s.ice_state.is_some() {
            "iceSelectedTuple"
        } else {
            "tuple"
        }] = tuple(t);
    }
    json!([v])
}

/// One RTP stream's stats as mediasoup's `inbound-rtp` (producer) or `outbound-rtp` (consumer).
fn rtp_stream_stats(kind: &str, media: &str, s: &RtpStreamStats, now_ms: u64) -> Value {
    let mut v = json!({
        "type": kind,
        "timestamp": now_ms,
        "ssrc": s.ssrc,
        "kind": media,
        "mimeType": s.mime_type,
        "packetCount": s.packet_count,
        "byteCount": s.byte_count,
        "packetsLost": s.packets_lost,
        "fractionLost": s.fraction_lost,
        "jitter": s.jitter,
        "bitrate": s.bitrate,
        "score": s.score,
        "nackCount": s.nack_count,
        "nackPacketCount": s.nack_packet_count,
        "pliCount": s.pli_count,
        "firCount": s.fir_count,
        "packetsRetransmitted": s.retransmitted_packet_count,
        "roundTripTime": s.round_trip_time,
    });
    if kind == "inbound-rtp" {
        // RFC 3550 A.1 sequence validation of what the publisher sends.
        v["packetsDroppedBadSequence"] = json!(s.bad_sequence_dropped);
        v["sequenceResyncs"] = json!(s.resync_count);
    }
    if let Some(r) = s.rtx_ssrc {
        v["rtxSsrc"] = json!(r);
    }
    if let Some(r) = &s.rid {
        v["rid"] = json!(r);
    }
    v
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
