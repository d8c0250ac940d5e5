//! WebRtcTransport: ICE-lite, DTLS and SRTP over one selected tuple. Datagrams are split by
//! their first byte (RFC 7983): STUN to ICE, DTLS to the handshake, SRTP/SRTCP to media once
//! ICE validated the tuple. The pumps turn the ICE and DTLS state machines' events into
//! notifications, transmissions and the SRTP session.

use std::time::Instant;

use ferrosfu_fbs::{DtlsState, HandlerId, IceCandidate, MediaEvent, WebRtcServerId};

use super::{Kind, fbs_ice_state, fbs_tuple};
use crate::WorkerCore;
use crate::data::sctp::SctpSlot;
use crate::proto::dtls::{Dtls, DtlsOutput};
use crate::proto::ice::{IceEvent, IceLite, IceState, StunOutcome, Tuple};
use crate::proto::packet::PacketKind;
use crate::proto::srtp::SrtpSession;
use crate::tables::TransportKey;

#[derive(Debug)]
pub(crate) struct WebRtc {
    pub ice: IceLite,
    pub dtls: Dtls,
    pub srtp: Option<SrtpSession>,
    pub server: Option<WebRtcServerId>,
    pub candidates: Vec<IceCandidate>,
    /// With `enableSctp`: data channels.
    pub sctp: Option<SctpSlot>,
}

impl WorkerCore {
    pub(crate) fn webrtc_datagram(
        &mut self,
        k: TransportKey,
        tuple: Tuple,
        kind: PacketKind,
        data: &[u8],
        arrival: Instant,
        now: Instant,
    ) {
        let t = &mut self.tables.transports[k];
        let Kind::WebRtc(w) = &mut t.kind else {
            return;
        };
        match kind {
            PacketKind::Stun => {
                let before = w.ice.stats();
                let outcome = w.ice.handle_stun(data, tuple, now);
                let after = w.ice.stats();
                self.stats.ice_unauthorized += after.unauthorized - before.unauthorized;
                self.stats.ice_bad_requests += after.bad_requests - before.bad_requests;
                match outcome {
                    StunOutcome::Reply(reply) => {
                        t.counters.bytes_sent += reply.len() as u64;
                        self.transmits.push(tuple, &reply);
                    }
                    StunOutcome::Drop(_) => t.counters.dropped += 1,
                }
                if w.ice.is_valid(&tuple) {
                    self.demux.add_tuple(tuple, k);
                }
                self.pump_ice(k, now);
            }
            PacketKind::Dtls => {
                if !w.ice.is_valid(&tuple) {
                    t.counters.dropped += 1;
                    return;
                }
                if !w.dtls.handle_datagram(data, now) {
                    t.counters.dropped += 1;
                }
                self.pump_dtls(k, now);
                self.sctp_input(k, now);
            }
            PacketKind::Rtp | PacketKind::Rtcp => {
                if !w.ice.is_valid(&tuple) {
                    t.counters.dropped += 1;
                    return;
                }
                self.media_in(k, data, kind == PacketKind::Rtcp, arrival, now);
            }
            PacketKind::Unknown => t.counters.dropped += 1,
        }
    }

    pub(crate) fn pump_ice(&mut self, k: TransportKey, now: Instant) {
        let Some(t) = self.tables.transports.get_mut(k) else {
            return;
        };
        let Kind::WebRtc(w) = &mut t.kind else {
            return;
        };
        let h = HandlerId::from(&t.id);
        let mut events = Vec::new();
        while let Some(e) = w.ice.poll_event() {
            events.push(e);
        }
        let mut start_dtls = false;
        for e in events {
            match e {
                IceEvent::StateChanged(s) => {
                    tracing::debug!(target: "ice", transport = %h, state = ?s, "ice state");
                    if s == IceState::Disconnected {
                        self.stats.ice_consent_lost += 1;
                    }
                    self.notify(
                        h.clone(),
                        MediaEvent::TransportIceStateChange(fbs_ice_state(s)),
                    );
                }
                IceEvent::TupleSelected(tuple) => {
                    start_dtls = true;
                    self.demux.add_tuple(tuple, k);
                    self.notify(
                        h.clone(),
                        MediaEvent::TransportIceSelectedTupleChange(fbs_tuple(&tuple)),
                    );
                }
            }
        }
        if start_dtls {
            if let Some(Kind::WebRtc(w)) = self.tables.transports.get_mut(k).map(|t| &mut t.kind) {
                w.dtls.start(now);
            }
            self.pump_dtls(k, now);
        }
    }

    pub(crate) fn pump_dtls(&mut self, k: TransportKey, now: Instant) {
        let Some(t) = self.tables.transports.get_mut(k) else {
            return;
        };
        let Kind::WebRtc(w) = &mut t.kind else {
            return;
        };
        let h = HandlerId::from(&t.id);
        let tuple = w.ice.selected_tuple();
        while let Some(data) = w.dtls.poll_transmit() {
            if let Some(tuple) = tuple {
                t.counters.bytes_sent += data.len() as u64;
                self.transmits.push(tuple, &data);
            }
        }
        let mut events = Vec::new();
        while let Some(e) = w.dtls.poll_event() {
            events.push(e);
        }
        for e in events {
            match e {
                DtlsOutput::StateChanged(state, reason) => {
                    if state == DtlsState::Failed {
                        self.stats.dtls_failures += 1;
                        tracing::info!(target: "dtls", transport = %h, ?reason, "dtls failed");
                    }
                    self.notify(
                        h.clone(),
                        MediaEvent::TransportDtlsStateChange { state, reason },
                    );
                }
                DtlsOutput::Connected(c) => {
                    let crypto = match rtc_dtls::crypto_provider::default_provider() {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(target: "srtp", error = %e, "no crypto provider");
                            continue;
                        }
                    };
                    match SrtpSession::from_keying_material(
                        c.profile,
                        &c.keying_material,
                        c.is_client,
                        &crypto,
                    ) {
                        Ok(s) => {
                            if let Some(Kind::WebRtc(w)) =
                                self.tables.transports.get_mut(k).map(|t| &mut t.kind)
                            {
                                tracing::debug!(target: "srtp", transport = %h, profile = ?c.profile, "srtp ready");
                                w.srtp = Some(s);
                            }
                            // What was forwarded before the transport could send is lost: its
                            // active video consumers need a keyframe now (as mediasoup does
                            // when a transport connects).
                            let consumers = self.tables.transports[k].consumers.clone();
                            for ck in consumers {
                                self.consumer_key_frame(ck, now);
                            }
                            self.sctp_dtls_connected(k, c.is_client, now);
                        }
                        Err(e) => {
                            self.stats.dtls_failures += 1;
                            self.notify(
                                h.clone(),
                                MediaEvent::TransportDtlsStateChange {
                                    state: DtlsState::Failed,
                                    reason: Some(e.to_string()),
                                },
                            );
                        }
                    }
                }
            }
        }
    }
}

impl WorkerCore {
    /// ICE consent and DTLS retransmission timers of transport `k` (a WebRtcTransport), when
    /// due. Tuples ICE no longer considers valid stop mapping to the transport.
    pub(crate) fn webrtc_timers(&mut self, k: TransportKey, now: Instant) {
        let Some(Kind::WebRtc(w)) = self.tables.transports.get_mut(k).map(|t| &mut t.kind) else {
            return;
        };
        if w.ice.poll_timeout().is_some_and(|x| x <= now) {
            w.ice.handle_timeout(now);
            self.demux.retain_tuples(k, |tuple| w.ice.is_valid(tuple));
            self.pump_ice(k, now);
        }
        if let Some(Kind::WebRtc(w)) = self.tables.transports.get_mut(k).map(|t| &mut t.kind)
            && w.dtls.poll_timeout().is_some_and(|x| x <= now)
        {
            w.dtls.handle_timeout(now);
            self.pump_dtls(k, now);
        }
        self.sctp_timers(k, now);
    }
}
