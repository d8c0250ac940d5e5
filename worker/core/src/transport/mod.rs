//! Transports: the network side of producers and consumers. A WebRtcTransport runs ICE-lite,
//! DTLS and SRTP; a PlainTransport sends plain (or SDES-keyed SRTP) RTP/RTCP to a fixed or learned
//! remote.

pub(crate) mod plain;
pub(crate) mod webrtc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrosfu_fbs::{
    BweTrace, BweType, ConsumerId, DtlsParameters, DtlsRole, IceParameters, PlainTransportDump,
    ProducerId, RouterId, TransportId, TransportProtocol, TransportStats, TransportTuple,
    WebRtcTransportDump,
};

use crate::bwe::feedback::FeedbackAdapter;
use crate::bwe::history::SendHistory;
use crate::bwe::pacer::Pacer;
use crate::bwe::{Control, SendSideBwe};
use crate::data::{DataConsumerKey, DataProducerKey};
use crate::media::Paced;
use crate::proto::ice::{IceState, Protocol, Tuple};
use crate::proto::srtp::SrtpDrop;
use crate::proto::twcc::{EarlyArrivals, TwccFeedback};
use crate::streams::recv::RateMeter;
use crate::streams::sender_clock::SenderClock;
use crate::tables::{ConsumerKey, ProducerKey};
pub(crate) use plain::Plain;
pub(crate) use webrtc::WebRtc;

/// A socket the shell bound for a transport or a WebRtcServer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundSocket {
    pub protocol: Protocol,
    pub local: SocketAddr,
    /// Address to announce in candidates / tuples instead of the bound IP.
    pub announced: Option<String>,
}

impl BoundSocket {
    pub fn announced_ip(&self) -> String {
        self.announced
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| self.local.ip().to_string())
    }
}

pub(crate) fn fbs_protocol(p: Protocol) -> TransportProtocol {
    match p {
        Protocol::Udp => TransportProtocol::Udp,
        Protocol::Tcp => TransportProtocol::Tcp,
    }
}

pub(crate) fn fbs_tuple(t: &Tuple) -> TransportTuple {
    TransportTuple {
        local_address: t.local.ip().to_string(),
        local_port: t.local.port(),
        remote_ip: t.remote.ip().to_string(),
        remote_port: t.remote.port(),
        protocol: fbs_protocol(t.protocol),
    }
}

pub(crate) fn fbs_ice_state(s: IceState) -> ferrosfu_fbs::IceState {
    match s {
        IceState::New => ferrosfu_fbs::IceState::New,
        IceState::Connected => ferrosfu_fbs::IceState::Connected,
        IceState::Completed => ferrosfu_fbs::IceState::Completed,
        IceState::Disconnected => ferrosfu_fbs::IceState::Disconnected,
    }
}

#[derive(Debug)]
pub(crate) enum Kind {
    WebRtc(Box<WebRtc>),
    Plain(Box<Plain>),
    Direct(Direct),
}

/// A DirectTransport: no network, only `direct` DataProducers and DataConsumers.
#[derive(Debug)]
pub(crate) struct Direct {
    pub max_message_size: u32,
}

/// Counters for `transport.get_stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub rtp_received: u64,
    pub rtp_sent: u64,
    pub rtcp_received: u64,
    pub rtcp_sent: u64,
    pub rtx_sent: u64,
    /// NACKed packets not retransmitted because the pacer was congested.
    pub rtx_skipped: u64,
    /// Queued video dropped when its consumer switched down (stale after the keyframe).
    pub paced_discarded: u64,
    pub dropped: u64,
    /// Packets the subscriber's last transport-wide feedback reported received / lost (for the
    /// first time).
    pub feedback_acked: u64,
    pub feedback_lost: u64,
    pub recv_rate: RateMeter,
    pub send_rate: RateMeter,
    /// What the prober sent, as counted by the allocator's last run (for `probe_rate`).
    pub probe_seen: u64,
    pub probe_rate: RateMeter,
}

#[derive(Debug)]
pub(crate) struct Transport {
    pub id: TransportId,
    pub router: RouterId,
    pub kind: Kind,
    /// Sockets bound for this transport alone (released when it closes).
    pub own_sockets: Vec<BoundSocket>,
    pub producers: Vec<ProducerKey>,
    pub consumers: Vec<ConsumerKey>,
    pub data_producers: Vec<DataProducerKey>,
    pub data_consumers: Vec<DataConsumerKey>,
    /// Inbound SSRC → (producer, encoding index, is RTX).
    pub ssrc_producers: HashMap<u32, (ProducerKey, usize, bool)>,
    pub mid_producers: HashMap<String, ProducerKey>,
    /// Outbound SSRC (media or RTX) → consumer, for feedback from the receiver.
    pub ssrc_consumers: HashMap<u32, ConsumerKey>,
    pub counters: Counters,
    /// Sender SSRC of our RTCP (RR and feedback when no consumer stream applies).
    pub rtcp_ssrc: u32,
    pub next_rtcp: Instant,
    pub max_incoming_bitrate: u32,
    /// `transport.set_max/min_outgoing_bitrate` (bit/s; 0: not set): bounds of the send-side
    /// estimate, and so of what the allocator grants and the pacer sends.
    pub max_outgoing_bitrate: u32,
    pub min_outgoing_bitrate: u32,
    /// The send-side estimate's start (mediasoup's `initialAvailableOutgoingBitrate`).
    pub start_bps: u64,
    /// `transport.enable_trace_event(['bwe'])`: emit `bwe` traces.
    pub trace_bwe: bool,
    /// Transport-wide sequence number of the last RTP packet we sent with the transport-cc
    /// extension (one sequence across every consumer of this transport).
    pub twcc_seq: u16,
    /// Transport-wide feedback on what we receive (for publishers' bandwidth estimation), and
    /// the header-extension id its sequence numbers come in (0: none of our producers uses it).
    pub twcc_in: TwccFeedback,
    pub twcc_ext_in: u8,
    /// RTP that arrived before the transport had a producer (so no extension id yet): reported
    /// to `twcc_in` once the first producer names one.
    pub twcc_early: EarlyArrivals,
    /// The remote sender's NTP clock, from the SRs of every producer of this transport: maps
    /// their streams to our clock alike (lip sync).
    pub sender_clock: SenderClock,
    /// The packets we sent with a transport-wide sequence number, and what the subscriber's
    /// feedback says of them (send-side estimation).
    pub send_history: SendHistory,
    pub feedback_adapter: FeedbackAdapter,
    /// The send-side estimate toward the remote, from that feedback (mediasoup's
    /// `initialAvailableOutgoingBitrate`, 600 kbit/s by default, until feedback says more).
    pub bwe: SendSideBwe,
    /// Whether any transport-wide feedback came yet (before: no estimate to report).
    pub bwe_fed: bool,
    /// The subscriber's last REMB (bit/s): the estimate when it sends no transport-wide
    /// feedback (it negotiated only `goog-remb`), else a ceiling on it.
    pub remb_bps: Option<u64>,
    /// A consumer negotiated transport-wide-cc or REMB: feedback will come, and until it does
    /// the estimate is the start one (mediasoup's `initialAvailableOutgoingBitrate`).
    pub bwe_expected: bool,
    /// Its RTP leaves through this once the estimate is fed (before: at once, unpaced).
    pub pacer: Pacer<Paced>,
    /// Buffers of packets that left the pacer, for the next ones.
    pub paced_pool: Vec<Vec<u8>>,
    /// When its pacer next lets a packet go (`None`: nothing waits).
    pub pace_wake: Option<Instant>,
    /// Probing, allocation and reporting on top of the estimate.
    pub bwe_ctl: Control,
}

/// Bounds of the send-side estimate (bit/s).
pub(crate) const BWE_MIN_BPS: u64 = 30_000;
pub(crate) const BWE_MAX_BPS: u64 = 100_000_000;
/// mediasoup's default `initialAvailableOutgoingBitrate`.
pub(crate) const BWE_START_BPS: u64 = 600_000;

/// Why an inbound packet did not reach a producer/consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Drop {
    NotConnected,
    Srtp(SrtpDrop),
}

pub(crate) const RTCP_INTERVAL: Duration = Duration::from_millis(1000);

impl Transport {
    pub(crate) fn new(
        id: TransportId,
        router: RouterId,
        kind: Kind,
        own_sockets: Vec<BoundSocket>,
        rtcp_ssrc: u32,
        now: Instant,
    ) -> Self {
        Self {
            id,
            router,
            kind,
            own_sockets,
            producers: Vec::new(),
            consumers: Vec::new(),
            data_producers: Vec::new(),
            data_consumers: Vec::new(),
            ssrc_producers: HashMap::new(),
            mid_producers: HashMap::new(),
            ssrc_consumers: HashMap::new(),
            counters: Counters::default(),
            rtcp_ssrc,
            next_rtcp: now + RTCP_INTERVAL,
            max_incoming_bitrate: 0,
            max_outgoing_bitrate: 0,
            min_outgoing_bitrate: 0,
            start_bps: BWE_START_BPS,
            trace_bwe: false,
            twcc_seq: 0,
            twcc_in: TwccFeedback::default(),
            twcc_ext_in: 0,
            twcc_early: EarlyArrivals::default(),
            sender_clock: SenderClock::default(),
            send_history: SendHistory::default(),
            feedback_adapter: FeedbackAdapter::default(),
            bwe: SendSideBwe::new(BWE_START_BPS, BWE_MIN_BPS, BWE_MAX_BPS),
            bwe_fed: false,
            remb_bps: None,
            bwe_expected: false,
            pacer: Pacer::default(),
            paced_pool: Vec::new(),
            pace_wake: None,
            bwe_ctl: Control::default(),
        }
    }

    /// The available outgoing bitrate: the transport-wide estimate (capped by a REMB), else
    /// the REMB alone; `None` before any feedback.
    pub(crate) fn estimate_bps(&self) -> Option<u64> {
        match (self.bwe_fed, self.remb_bps) {
            (true, r) => Some(self.bwe.estimate().min(r.unwrap_or(u64::MAX))),
            (false, Some(r)) => Some(r.clamp(BWE_MIN_BPS, self.bwe_max_bps())),
            (false, None) => self.bwe_expected.then(|| self.bwe.estimate()),
        }
    }

    /// Whether it has an estimate to pace and allocate by.
    pub(crate) fn has_estimate(&self) -> bool {
        self.bwe_fed || self.remb_bps.is_some() || self.bwe_expected
    }

    /// The highest the send-side estimate may go, bit/s.
    pub(crate) fn bwe_max_bps(&self) -> u64 {
        match self.max_outgoing_bitrate {
            0 => BWE_MAX_BPS,
            m => u64::from(m).min(BWE_MAX_BPS),
        }
    }

    /// The lowest the send-side estimate may go, bit/s.
    pub(crate) fn bwe_min_bps(&self) -> u64 {
        u64::from(self.min_outgoing_bitrate).max(BWE_MIN_BPS)
    }

    /// Starts the send-side estimate at `start_bps` (within the bounds).
    pub(crate) fn set_start_bps(&mut self, start_bps: u64) {
        self.start_bps = start_bps;
        self.bwe = SendSideBwe::new(start_bps, self.bwe_min_bps(), self.bwe_max_bps());
    }

    /// `transport.set_max/min_outgoing_bitrate`: the estimate is kept within the new bounds.
    pub(crate) fn set_outgoing_bounds(&mut self, min: u32, max: u32) {
        self.min_outgoing_bitrate = min;
        self.max_outgoing_bitrate = max;
        let (lo, hi) = (self.bwe_min_bps(), self.bwe_max_bps());
        self.bwe.set_bounds(lo, hi.max(lo));
    }

    /// What the send-side controller reports in a `bwe` trace.
    pub(crate) fn bwe_trace(&self, timestamp: u64) -> BweTrace {
        let bps = |v: u64| v.min(u64::from(u32::MAX)) as u32;
        BweTrace {
            timestamp,
            bwe_type: if self.bwe_fed || self.remb_bps.is_none() {
                BweType::TransportCc
            } else {
                BweType::Remb
            },
            desired_bitrate: bps(self.bwe_ctl.desired_bps),
            effective_desired_bitrate: bps(self.bwe_ctl.effective_desired_bps),
            min_bitrate: bps(self.bwe_min_bps()),
            max_bitrate: bps(self.bwe_max_bps()),
            start_bitrate: bps(self.start_bps),
            max_padding_bitrate: bps(self
                .bwe_ctl
                .desired_bps
                .saturating_sub(self.bwe_ctl.effective_desired_bps)),
            available_bitrate: bps(self.estimate_bps().unwrap_or(0)),
        }
    }

    /// The transport-wide sequence number for the next RTP packet sent.
    pub(crate) fn next_twcc_seq(&mut self) -> u16 {
        self.twcc_seq = self.twcc_seq.wrapping_add(1);
        self.twcc_seq
    }

    /// Decrypts an inbound RTP (`rtcp = false`) or RTCP packet.
    pub(crate) fn unprotect(&mut self, data: &[u8], rtcp: bool) -> Result<Vec<u8>, Drop> {
        let srtp = match &mut self.kind {
            Kind::WebRtc(w) => match w.srtp.as_mut() {
                Some(s) => Some(s),
                None => return Err(Drop::NotConnected),
            },
            Kind::Plain(p) => p.srtp.as_mut(),
            Kind::Direct(_) => return Err(Drop::NotConnected),
        };
        match srtp {
            None => Ok(data.to_vec()),
            Some(s) => {
                let r = if rtcp {
                    s.unprotect_rtcp(data)
                } else {
                    s.unprotect_rtp(data)
                };
                r.map(Vec::from).map_err(Drop::Srtp)
            }
        }
    }

    /// Where to send RTP (`rtcp = false`) or RTCP, if the remote is known.
    pub(crate) fn send_tuple(&self, rtcp: bool) -> Option<Tuple> {
        match &self.kind {
            Kind::WebRtc(w) => w.ice.selected_tuple(),
            Kind::Plain(p) => {
                if rtcp && !p.rtcp_mux {
                    let s = p.rtcp_socket.as_ref()?;
                    Some(Tuple {
                        local: p.rtcp_local.unwrap_or(s.local),
                        remote: p.rtcp_remote?,
                        protocol: s.protocol,
                    })
                } else {
                    Some(Tuple {
                        local: p.local.unwrap_or(p.socket.local),
                        remote: p.remote?,
                        protocol: p.socket.protocol,
                    })
                }
            }
            Kind::Direct(_) => None,
        }
    }

    /// Protects a plaintext RTP/RTCP packet for the wire, appending it to `out`; false (and
    /// nothing appended) when it cannot be sent yet. Plain transports without SRTP copy the
    /// packet once, into the transmit arena; SRTP goes through the crate's output buffer.
    pub(crate) fn protect_into(&mut self, plain: &[u8], rtcp: bool, out: &mut Vec<u8>) -> bool {
        let srtp = match &mut self.kind {
            Kind::WebRtc(w) => match w.srtp.as_mut() {
                Some(s) => Some(s),
                None => return false,
            },
            Kind::Plain(p) => p.srtp.as_mut(),
            Kind::Direct(_) => return false,
        };
        match srtp {
            None => out.extend_from_slice(plain),
            Some(s) => {
                let r = if rtcp {
                    s.protect_rtcp(plain)
                } else {
                    s.protect_rtp(plain)
                };
                match r {
                    Ok(wire) => out.extend_from_slice(&wire),
                    Err(_) => return false,
                }
            }
        }
        true
    }

    pub(crate) fn ice_parameters(&self) -> Option<IceParameters> {
        match &self.kind {
            Kind::WebRtc(w) => {
                let c = w.ice.local_credentials();
                Some(IceParameters {
                    username_fragment: c.ufrag.clone(),
                    password: c.pwd.clone(),
                    ice_lite: true,
                })
            }
            Kind::Plain(_) | Kind::Direct(_) => None,
        }
    }

    pub(crate) fn webrtc_dump(
        &mut self,
        ids: TransportIds,
        fingerprints: &[ferrosfu_fbs::DtlsFingerprint],
    ) -> Option<WebRtcTransportDump> {
        let ice_parameters = self.ice_parameters()?;
        let Kind::WebRtc(w) = &mut self.kind else {
            return None;
        };
        let sctp_parameters = w.sctp.as_mut().map(|s| s.parameters());
        let sctp_state = w.sctp.as_ref().map(|s| s.state());
        let w = &**w;
        Some(WebRtcTransportDump {
            id: self.id.clone(),
            ice_parameters,
            ice_candidates: w.candidates.clone(),
            ice_state: fbs_ice_state(w.ice.state()),
            ice_selected_tuple: w.ice.selected_tuple().as_ref().map(fbs_tuple),
            dtls_parameters: DtlsParameters {
                role: w.dtls.role().unwrap_or(DtlsRole::Auto),
                fingerprints: fingerprints.to_vec(),
            },
            dtls_state: w.dtls.state(),
            producer_ids: ids.producers,
            consumer_ids: ids.consumers,
            sctp_parameters,
            sctp_state,
            data_producer_ids: ids.data_producers,
            data_consumer_ids: ids.data_consumers,
        })
    }

    pub(crate) fn plain_dump(&self, ids: TransportIds) -> Option<PlainTransportDump> {
        let Kind::Plain(p) = &self.kind else {
            return None;
        };
        let tuple = |s: &BoundSocket, remote: Option<SocketAddr>| TransportTuple {
            local_address: s.announced_ip(),
            local_port: s.local.port(),
            remote_ip: remote.map(|r| r.ip().to_string()).unwrap_or_default(),
            remote_port: remote.map_or(0, |r| r.port()),
            protocol: fbs_protocol(s.protocol),
        };
        Some(PlainTransportDump {
            id: self.id.clone(),
            rtcp_mux: p.rtcp_mux,
            comedia: p.comedia,
            tuple: tuple(&p.socket, p.remote),
            rtcp_tuple: p.rtcp_socket.as_ref().map(|s| tuple(s, p.rtcp_remote)),
            srtp_parameters: p.local_srtp.as_ref().map(|(s, _)| s.clone()),
            producer_ids: ids.producers,
            consumer_ids: ids.consumers,
        })
    }

    /// `transport.get_stats`; `loss_received`: the fraction lost of what its producers receive
    /// (from our receiver reports), `None` without producers.
    pub(crate) fn stats(
        &mut self,
        now: Instant,
        timestamp: u64,
        loss_received: Option<f64>,
        loss_sent_rr: Option<f64>,
    ) -> TransportStats {
        let (ice_state, dtls_state, tuple, srtp) = match &self.kind {
            Kind::WebRtc(w) => (
                Some(fbs_ice_state(w.ice.state())),
                Some(w.dtls.state()),
                w.ice.selected_tuple().as_ref().map(fbs_tuple),
                w.srtp.as_ref().map(|s| s.stats()),
            ),
            Kind::Plain(p) => (
                None,
                None,
                self.send_tuple(false).as_ref().map(fbs_tuple).or_else(|| {
                    Some(TransportTuple {
                        local_address: p.socket.announced_ip(),
                        local_port: p.socket.local.port(),
                        remote_ip: String::new(),
                        remote_port: 0,
                        protocol: fbs_protocol(p.socket.protocol),
                    })
                }),
                p.srtp.as_ref().map(|s| s.stats()),
            ),
            Kind::Direct(_) => (None, None, None, None),
        };
        let c = &mut self.counters;
        TransportStats {
            transport_id: self.id.clone(),
            timestamp,
            bytes_received: c.bytes_received,
            bytes_sent: c.bytes_sent,
            rtp_packets_received: c.rtp_received,
            rtp_packets_sent: c.rtp_sent,
            rtcp_packets_received: c.rtcp_received,
            rtcp_packets_sent: c.rtcp_sent,
            rtx_packets_sent: c.rtx_sent,
            packets_dropped: c.dropped,
            srtp_auth_failures: srtp.map_or(0, |s| s.auth_failed),
            srtp_replays: srtp.map_or(0, |s| s.replayed),
            recv_bitrate: c.recv_rate.bitrate(now),
            send_bitrate: c.send_rate.bitrate(now),
            ice_state,
            dtls_state,
            tuple,
            available_outgoing_bitrate: if self.bwe_fed || self.remb_bps.is_some() {
                self.estimate_bps()
                    .map_or(0, |e| e.min(u64::from(u32::MAX)) as u32)
            } else {
                0
            },
            available_incoming_bitrate: self.max_incoming_bitrate,
            max_incoming_bitrate: self.max_incoming_bitrate,
            max_outgoing_bitrate: self.max_outgoing_bitrate,
            min_outgoing_bitrate: self.min_outgoing_bitrate,
            rtp_packet_loss_received: loss_received,
            rtp_packet_loss_sent: if self.bwe_fed {
                Some(self.bwe.fraction_loss())
            } else {
                loss_sent_rr
            },
            probation_bytes_sent: self.bwe_ctl.prober.bytes_sent,
            probation_send_bitrate: self.counters.probe_rate.bitrate(now),
        }
    }
}

/// The ids of what a transport holds, for its dump.
#[derive(Debug, Default)]
pub(crate) struct TransportIds {
    pub producers: Vec<ProducerId>,
    pub consumers: Vec<ConsumerId>,
    pub data_producers: Vec<ferrosfu_fbs::DataProducerId>,
    pub data_consumers: Vec<ferrosfu_fbs::DataConsumerId>,
}
