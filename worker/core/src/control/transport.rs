//! Transports: creation on a router (WebRtcTransport on its own sockets or a WebRtcServer's;
//! PlainTransport), requests addressed to a transport, and closing with what depends on it.

use std::time::{Duration, Instant};

use base64::Engine as _;
use ferrosfu_fbs::{
    ConnectParams, HandlerId, MediaEvent, PlainTransportOptions, RequestBody, RequestFailure,
    ResponseBody, RouterId, SrtpParameters, TraceEventType, WebRtcTransportListen,
    WebRtcTransportOptions,
};
use rand::Rng;

use super::server::candidates;
use super::{invalid, suite_profile};
use crate::WorkerCore;
use crate::bwe::pacer::PACING_FACTOR;
use crate::data::sctp::SctpSlot;
use crate::demux::Owner;
use crate::proto::dtls::Dtls;
use crate::proto::ice::{IceCredentials, IceLite, Protocol};
use crate::tables::TransportKey;
use crate::transport::BWE_MIN_BPS;
use crate::transport::{BoundSocket, Kind, Plain, Transport, TransportIds, WebRtc};
use crate::worker_core::Output;

impl WorkerCore {
    pub(super) fn create_webrtc_transport(
        &mut self,
        router: RouterId,
        o: WebRtcTransportOptions,
        sockets: Vec<BoundSocket>,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        self.tables.check_new_transport_id(&o.transport_id)?;
        if !o.enable_udp && !o.enable_tcp {
            return Err(invalid("enable_udp and enable_tcp are both false"));
        }
        let (server, usable, own) = match &o.listen {
            WebRtcTransportListen::Server(sid) => {
                let s = self
                    .tables
                    .servers
                    .get(sid)
                    .ok_or_else(|| invalid(format!("no webrtc server {sid}")))?;
                let usable: Vec<BoundSocket> = s
                    .sockets
                    .iter()
                    .filter(|b| match b.protocol {
                        Protocol::Udp => o.enable_udp,
                        Protocol::Tcp => o.enable_tcp,
                    })
                    .cloned()
                    .collect();
                (Some(sid.clone()), usable, Vec::new())
            }
            WebRtcTransportListen::Individual(_) => (None, sockets.clone(), sockets),
        };
        if usable.is_empty() {
            return Err(invalid("no listen address for the enabled protocols"));
        }
        let identity = self.identity()?;
        let creds = IceCredentials {
            ufrag: self.random_string(16),
            pwd: self.random_string(32),
        };
        let mut ice = IceLite::new(creds.clone(), identity.crypto.clone());
        if o.ice_consent_timeout > 0 {
            ice.set_consent_timeout(Duration::from_secs(o.ice_consent_timeout as u64));
        }
        let web = WebRtc {
            ice,
            dtls: Dtls::new(identity),
            srtp: None,
            server: server.clone(),
            candidates: candidates(&usable, o.prefer_udp, o.prefer_tcp),
            sctp: o
                .sctp
                .map(check_sctp_options)
                .transpose()?
                .map(SctpSlot::new),
        };
        let rtcp_ssrc = self.rng.random();
        let mut t = Transport::new(
            o.transport_id,
            router.clone(),
            Kind::WebRtc(Box::new(web)),
            own.clone(),
            rtcp_ssrc,
            now,
        );
        if o.initial_available_outgoing_bitrate > 0 {
            t.set_start_bps(u64::from(o.initial_available_outgoing_bitrate));
        }
        let k = self.tables.insert_transport(t);
        for s in &own {
            self.demux.add_socket(s, Owner::Transport(k));
        }
        if let Some(sid) = &server
            && let Some(s) = self.tables.servers.get_mut(sid)
        {
            s.transports.push(k);
        }
        self.demux.add_ufrag(creds.ufrag, k);
        self.added_to_router(&router, k, now)
    }

    pub(super) fn create_plain_transport(
        &mut self,
        router: RouterId,
        o: PlainTransportOptions,
        sockets: Vec<BoundSocket>,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        self.tables.check_new_transport_id(&o.transport_id)?;
        let mut it = sockets.iter().cloned();
        let socket = it.next().ok_or_else(|| invalid("no socket bound"))?;
        let rtcp_socket = if o.rtcp_mux {
            None
        } else {
            Some(it.next().ok_or_else(|| invalid("no RTCP socket bound"))?)
        };
        let local_srtp = match o.srtp_crypto_suite {
            None => None,
            Some(suite) => {
                let p = suite_profile(suite);
                let mut key = vec![0u8; p.key_len() + p.salt_len()];
                self.rng.fill(&mut key[..]);
                let params = SrtpParameters {
                    crypto_suite: suite,
                    key_base64: base64::engine::general_purpose::STANDARD.encode(&key),
                };
                Some((params, key))
            }
        };
        let plain = Plain::new(socket, rtcp_socket, o.rtcp_mux, o.comedia, local_srtp);
        let rtcp_ssrc = self.rng.random();
        let t = Transport::new(
            o.transport_id,
            router.clone(),
            Kind::Plain(Box::new(plain)),
            sockets.clone(),
            rtcp_ssrc,
            now,
        );
        let k = self.tables.insert_transport(t);
        for s in &sockets {
            self.demux.add_socket(s, Owner::Transport(k));
        }
        self.added_to_router(&router, k, now)
    }

    fn transport_dump(&mut self, k: TransportKey) -> Result<ResponseBody, RequestFailure> {
        let t = &self.tables.transports[k];
        let ids = TransportIds {
            producers: t
                .producers
                .iter()
                .filter_map(|&p| self.tables.producers.get(p).map(|p| p.id.clone()))
                .collect(),
            consumers: t
                .consumers
                .iter()
                .filter_map(|&c| self.tables.consumers.get(c))
                .filter(|c| !c.sibling)
                .map(|c| c.id.clone())
                .collect(),
            data_producers: self.data_producer_ids(k),
            data_consumers: self.data_consumer_ids(k),
        };
        let fps = self
            .identity
            .as_ref()
            .map(|i| i.fingerprints.clone())
            .unwrap_or_default();
        let t = &mut self.tables.transports[k];
        let dump = match &t.kind {
            Kind::WebRtc(_) => t
                .webrtc_dump(ids, &fps)
                .map(ResponseBody::WebRtcTransportDump),
            Kind::Plain(_) => t.plain_dump(ids).map(ResponseBody::PlainTransportDump),
            Kind::Direct(_) => self.direct_dump(k).map(ResponseBody::DirectTransportDump),
        };
        dump.ok_or_else(|| invalid("transport kind changed"))
    }

    /// The transport `k` was added: its router lists it, the tick runs, the reply is its dump.
    fn added_to_router(
        &mut self,
        router: &RouterId,
        k: TransportKey,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        if let Some(r) = self.tables.routers.get_mut(router) {
            r.transports.push(k);
        }
        self.ensure_tick(now);
        self.transport_dump(k)
    }

    pub(super) fn transport_request(
        &mut self,
        k: TransportKey,
        body: RequestBody,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        match body {
            RequestBody::TransportClose => {
                self.close_transport(k, now, false);
                Ok(ResponseBody::None)
            }
            RequestBody::TransportDump => self.transport_dump(k),
            RequestBody::TransportGetStats => {
                let ts = self.timestamp(now);
                let (received, sent) = self.rtp_loss(k);
                let t = &mut self.tables.transports[k];
                Ok(ResponseBody::TransportStats(
                    t.stats(now, ts, received, sent),
                ))
            }
            RequestBody::TransportConnect(p) => self.connect(k, p, now),
            RequestBody::TransportRestartIce => self.restart_ice(k),
            RequestBody::TransportSetMaxIncomingBitrate(b) => {
                self.tables.transports[k].max_incoming_bitrate = b;
                Ok(ResponseBody::None)
            }
            RequestBody::TransportSetMaxOutgoingBitrate(b) => {
                let min = self.tables.transports[k].min_outgoing_bitrate;
                check_outgoing_bitrate(b)?;
                if b > 0 && b < min {
                    return Err(invalid(format!(
                        "maxOutgoingBitrate {b} is under minOutgoingBitrate {min}"
                    )));
                }
                self.outgoing_bounds_changed(k, min, b, now);
                Ok(ResponseBody::None)
            }
            RequestBody::TransportSetMinOutgoingBitrate(b) => {
                let max = self.tables.transports[k].max_outgoing_bitrate;
                check_outgoing_bitrate(b)?;
                if max > 0 && b > max {
                    return Err(invalid(format!(
                        "minOutgoingBitrate {b} is over maxOutgoingBitrate {max}"
                    )));
                }
                self.outgoing_bounds_changed(k, b, max, now);
                Ok(ResponseBody::None)
            }
            RequestBody::TransportEnableTraceEvent(events) => {
                let t = &mut self.tables.transports[k];
                t.trace_bwe = events.contains(&TraceEventType::Bwe);
                t.bwe_ctl.next_trace = None;
                Ok(ResponseBody::None)
            }
            RequestBody::TransportProduce(o) => self.produce(k, o),
            RequestBody::TransportConsume(o) => self.consume(k, o, now),
            RequestBody::TransportProduceData(o) => self.produce_data(k, o),
            RequestBody::TransportConsumeData(o) => self.consume_data(k, o, now),
            other => Err(super::misrouted(&other)),
        }
    }

    fn connect(
        &mut self,
        k: TransportKey,
        p: ConnectParams,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        let t = &mut self.tables.transports[k];
        match (&mut t.kind, p) {
            (Kind::WebRtc(w), ConnectParams::WebRtc { dtls_parameters }) => {
                w.dtls
                    .set_remote(dtls_parameters.role, dtls_parameters.fingerprints)
                    .map_err(invalid)?;
                if w.ice.selected_tuple().is_some() {
                    w.dtls.start(now);
                }
                self.pump_dtls(k, now);
            }
            (
                Kind::Plain(pl),
                ConnectParams::Plain {
                    ip,
                    port,
                    rtcp_port,
                    srtp_parameters,
                },
            ) => pl.connect(ip, port, rtcp_port, srtp_parameters)?,
            _ => {
                return Err(invalid(
                    "connect parameters do not match the transport type",
                ));
            }
        }
        self.transport_dump(k)
    }

    /// New local ICE credentials (the remote restarts ICE with them).
    fn restart_ice(&mut self, k: TransportKey) -> Result<ResponseBody, RequestFailure> {
        let creds = IceCredentials {
            ufrag: self.random_string(16),
            pwd: self.random_string(32),
        };
        let Kind::WebRtc(w) = &mut self.tables.transports[k].kind else {
            return Err(invalid("restart_ice on a PlainTransport"));
        };
        let old = w.ice.local_credentials().ufrag.clone();
        w.ice.restart(creds.clone());
        self.demux.remove_ufrag(&old);
        self.demux.add_ufrag(creds.ufrag.clone(), k);
        Ok(ResponseBody::IceParameters(ferrosfu_fbs::IceParameters {
            username_fragment: creds.ufrag,
            password: creds.pwd,
            ice_lite: true,
        }))
    }

    /// `notify_children`: tell the supervisor about producers/consumers closed with it (used
    /// when the transport closes for a reason the supervisor did not ask for).
    pub(crate) fn close_transport(&mut self, k: TransportKey, now: Instant, notify_children: bool) {
        if !self.tables.transports.contains_key(k) {
            return;
        }
        self.close_transport_data(k, now, notify_children);
        let Some(t) = self.tables.transports.get(k) else {
            return;
        };
        let consumers = t.consumers.clone();
        let producers = t.producers.clone();
        for ck in consumers {
            if let Some(c) = self.tables.consumers.get(ck) {
                // A pipe consumer's other streams close with its first, untold.
                let h = (notify_children && !c.sibling).then(|| HandlerId::from(&c.id));
                self.close_consumer(ck);
                if let Some(h) = h {
                    self.notify(h, MediaEvent::ConsumerTransportClose);
                }
            }
        }
        for pk in producers {
            if let Some(p) = self.tables.producers.get(pk) {
                let h = HandlerId::from(&p.id);
                self.close_producer(pk, now);
                if notify_children {
                    self.notify(h, MediaEvent::ProducerTransportClose);
                }
            }
        }
        let Some(mut t) = self.tables.remove_transport(k) else {
            return;
        };
        self.demux.forget_transport(k);
        if let Kind::WebRtc(w) = &mut t.kind {
            self.demux.remove_ufrag(&w.ice.local_credentials().ufrag);
            if let Some(sid) = &w.server
                && let Some(s) = self.tables.servers.get_mut(sid)
            {
                s.transports.retain(|&x| x != k);
            }
            w.dtls.close(now);
            // Best effort close_notify to the remote.
            let tuple = w.ice.selected_tuple();
            while let Some(data) = w.dtls.poll_transmit() {
                if let Some(tuple) = tuple {
                    self.transmits.push(tuple, &data);
                }
            }
        }
        if let Some(r) = self.tables.routers.get_mut(&t.router) {
            r.transports.retain(|&x| x != k);
        }
        for s in &t.own_sockets {
            self.demux.remove_socket(s);
        }
        if !t.own_sockets.is_empty() {
            self.outputs
                .push_back(Output::ReleaseSockets(std::mem::take(&mut t.own_sockets)));
        }
    }
}

/// An outgoing bitrate bound: 0 (none) or at least the estimate's floor (as mediasoup).
fn check_outgoing_bitrate(b: u32) -> Result<(), RequestFailure> {
    if b > 0 && u64::from(b) < BWE_MIN_BPS {
        return Err(invalid(format!(
            "bitrate must be >= {BWE_MIN_BPS} or 0 (unlimited)"
        )));
    }
    Ok(())
}

impl WorkerCore {
    /// Transport `k`'s outgoing bounds changed: the estimate, the pacer and the allocation
    /// follow at once.
    fn outgoing_bounds_changed(&mut self, k: TransportKey, min: u32, max: u32, now: Instant) {
        let t = &mut self.tables.transports[k];
        t.set_outgoing_bounds(min, max);
        if let Some(e) = t.estimate_bps() {
            t.pacer
                .set_rate(Some((e as f64 * PACING_FACTOR) as u64), now);
        }
        self.allocate_transport(k, now);
    }

    /// The fraction lost of what transport `k` receives (its producers' streams, from our
    /// receiver reports) and of what it sends (its consumers' streams, from the remote's
    /// receiver reports), weighted by packets; `None` where it has no such stream.
    fn rtp_loss(&self, k: TransportKey) -> (Option<f64>, Option<f64>) {
        let t = &self.tables.transports[k];
        let mut recv = (0.0, 0u64);
        for p in t
            .producers
            .iter()
            .filter_map(|&pk| self.tables.producers.get(pk))
        {
            for s in p.encodings.iter().filter_map(|e| e.stream.as_ref()) {
                let n = s.packets.max(1);
                recv.0 += f64::from(s.fraction_lost) / 256.0 * n as f64;
                recv.1 += n;
            }
        }
        let mut sent = (0.0, 0u64);
        for c in t
            .consumers
            .iter()
            .filter_map(|&ck| self.tables.consumers.get(ck))
        {
            let n = c.stream.packets.max(1);
            sent.0 += f64::from(c.stream.fraction_lost) / 256.0 * n as f64;
            sent.1 += n;
        }
        let ratio = |(sum, n): (f64, u64)| (n > 0).then(|| sum / n as f64);
        (ratio(recv), ratio(sent))
    }
}

/// `enableSctp`'s settings, within what the association supports.
fn check_sctp_options(
    o: ferrosfu_fbs::SctpOptions,
) -> Result<ferrosfu_fbs::SctpOptions, RequestFailure> {
    let n = o.num_streams;
    if n.os == 0 || n.mis == 0 {
        return Err(invalid("numSctpStreams: OS and MIS must be at least 1"));
    }
    let max = super::data::MAX_MESSAGE_SIZE_LIMIT;
    if o.max_message_size == 0 || o.max_message_size > max {
        return Err(invalid(format!("maxSctpMessageSize must be 1..={max}")));
    }
    if o.send_buffer_size < o.max_message_size || o.send_buffer_size > 4 * max {
        return Err(invalid(format!(
            "sctpSendBufferSize must be maxSctpMessageSize..={}",
            4 * max
        )));
    }
    Ok(o)
}
