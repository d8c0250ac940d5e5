//! Media: what happens to a datagram once the demultiplexer found its transport.
//!
//! `datagram` → the transport's kind ([`transport::webrtc`](crate::transport::webrtc): STUN,
//! DTLS, SRTP; [`transport::plain`](crate::transport::plain): comedia, optional SRTP) →
//! `media_in` (unprotect) → [`ingress`] (RTP from a publisher: producer stream, RTX, sequence
//! validation) → [`fanout`] (rewrite and protect per consumer) or [`feedback`] (RTCP in: reports,
//! NACK → [`retransmit`], PLI/FIR → keyframe requests). [`tick`] runs the periodic work of each
//! entity: NACK retries, deferred keyframe requests, RTCP reports, scores, ICE/DTLS timers.

mod allocation;
mod fanout;
mod feedback;
mod ingress;
mod layers;
mod pace;
mod retransmit;
mod tick;

use std::time::Instant;

pub(crate) use pace::Paced;

use crate::WorkerCore;
use crate::demux::Miss;
use crate::proto::ice::Tuple;
use crate::proto::packet::classify;
use crate::proto::rtcp;
use crate::proto::srtp::SrtpDrop;
use crate::tables::TransportKey;
use crate::transport::{Drop as Unprotect, Kind};

impl WorkerCore {
    /// One datagram (or RFC 4571 frame) received on `tuple` at `arrival` (≤ `now`): find its
    /// transport, count it, hand it to the transport's kind.
    pub(crate) fn datagram(&mut self, tuple: Tuple, data: &[u8], arrival: Instant, now: Instant) {
        let kind = classify(data);
        let k = match self.demux.route(&tuple, kind, data) {
            Ok(k) => k,
            Err(Miss::UnknownSocket) => {
                self.stats.unknown_socket += 1;
                return;
            }
            Err(Miss::UnknownTuple) => {
                self.stats.unknown_tuple += 1;
                return;
            }
        };
        let Some(t) = self.tables.transports.get_mut(k) else {
            return;
        };
        t.counters.bytes_received += data.len() as u64;
        t.counters.recv_rate.add(data.len(), now);
        match &t.kind {
            Kind::WebRtc(_) => self.webrtc_datagram(k, tuple, kind, data, arrival, now),
            Kind::Plain(_) => self.plain_datagram(k, tuple, kind, data, arrival, now),
            Kind::Direct(_) => {}
        }
    }

    /// An RTP or RTCP packet the transport admitted (received at `arrival`): unprotect, then RTP
    /// to its producer or RTCP to feedback.
    pub(crate) fn media_in(
        &mut self,
        k: TransportKey,
        data: &[u8],
        rtcp: bool,
        arrival: Instant,
        now: Instant,
    ) {
        let t = &mut self.tables.transports[k];
        let plain = match t.unprotect(data, rtcp) {
            Ok(p) => p,
            Err(e) => {
                t.counters.dropped += 1;
                match e {
                    Unprotect::Srtp(SrtpDrop::AuthFailed) => self.stats.srtp_auth_failures += 1,
                    Unprotect::Srtp(SrtpDrop::Replayed) => self.stats.srtp_replays += 1,
                    Unprotect::Srtp(SrtpDrop::Malformed) | Unprotect::NotConnected => {}
                }
                tracing::trace!(target: "srtp", reason = ?e, "inbound packet dropped");
                return;
            }
        };
        if rtcp {
            t.counters.rtcp_received += 1;
            match rtcp::parse(&plain) {
                Ok(items) => self.rtcp_in(k, items, now),
                Err(_) => t.counters.dropped += 1,
            }
        } else {
            t.counters.rtp_received += 1;
            self.rtp_in(k, &plain, arrival, now);
        }
    }

    pub(crate) fn drop_packet(&mut self, k: TransportKey) {
        if let Some(t) = self.tables.transports.get_mut(k) {
            t.counters.dropped += 1;
        }
    }
}
