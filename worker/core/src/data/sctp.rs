//! A WebRtcTransport's SCTP association (with `enableSctp`): created when DTLS connects, in
//! the DTLS role (the DTLS client sends the INIT), fed with DTLS application data, its packets
//! written back through DTLS; its events become data producer messages and notifications.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use ferrosfu_fbs::{DataCounters, HandlerId, MediaEvent, SctpOptions, SctpParameters};

use super::{DataConsumerKey, DataProducerKey};
use crate::WorkerCore;
use crate::sctp::{
    SctpAssociation, SctpConfig, SctpCounters, SctpEvent, SctpState, SendError, StreamParams,
};
use crate::tables::TransportKey;
use crate::transport::Kind;

/// The SCTP side of a WebRtcTransport.
#[derive(Debug)]
pub(crate) struct SctpSlot {
    pub options: SctpOptions,
    /// From DTLS connected on.
    pub assoc: Option<Box<SctpAssociation>>,
    /// Incoming stream id → its DataProducer; outgoing stream id → its DataConsumer.
    pub inbound: HashMap<u16, (DataProducerKey, StreamParams)>,
    pub outbound: HashMap<u16, (DataConsumerKey, StreamParams, u32)>,
}

impl SctpSlot {
    pub(crate) fn new(options: SctpOptions) -> Self {
        Self {
            options,
            assoc: None,
            inbound: HashMap::new(),
            outbound: HashMap::new(),
        }
    }

    pub(crate) fn state(&self) -> ferrosfu_fbs::SctpState {
        fbs_state(self.assoc.as_ref().map_or(SctpState::New, |a| a.state()))
    }

    pub(crate) fn parameters(&mut self) -> SctpParameters {
        let buffered = self.assoc.as_mut().map_or(0, |a| a.total_buffered());
        SctpParameters {
            port: 5000,
            os: self.options.num_streams.os,
            mis: self.options.num_streams.mis,
            max_message_size: self.options.max_message_size,
            send_buffer_size: self.options.send_buffer_size,
            sctp_buffered_amount: u32::try_from(buffered).unwrap_or(u32::MAX),
            is_data_channel: true,
        }
    }

    /// Whether stream id `id` is taken on this transport, either way.
    pub(crate) fn in_use(&self, id: u16) -> bool {
        self.inbound.contains_key(&id) || self.outbound.contains_key(&id)
    }

    /// Creates and starts the association (DTLS just connected).
    fn start(&mut self, client: bool, now: Instant) {
        if self.assoc.is_some() {
            return;
        }
        let o = &self.options;
        let mut a = Box::new(SctpAssociation::new(
            SctpConfig {
                os: o.num_streams.os,
                mis: o.num_streams.mis,
                max_message_size: o.max_message_size as usize,
                send_buffer_size: o.send_buffer_size as usize,
                ..SctpConfig::default()
            },
            client,
        ));
        for (&id, (_, params)) in &self.inbound {
            a.register_inbound(id, *params);
        }
        for (&id, (_, params, low)) in &self.outbound {
            let _ = a.open_stream(id, *params);
            a.set_buffered_amount_low_threshold(id, *low as usize);
        }
        a.start(now);
        self.assoc = Some(a);
    }
}

/// `into` plus what association counters `c` say.
pub(crate) fn add_counters(into: &mut DataCounters, c: &SctpCounters) {
    into.messages_received += c.messages_in;
    into.messages_sent += c.messages_out;
    // Packets that could not be placed: undecodable, a crate fault, no room in the queue.
    into.malformed += c.malformed + c.crate_panics + c.events_dropped;
    into.unknown_stream += c.unknown_stream;
    into.dcep += c.dcep_ignored;
    into.unknown_ppid += c.unknown_ppid;
    into.oversize += c.oversize;
    into.send_buffer_full += c.send_buffer_full;
}

pub(crate) fn fbs_state(s: SctpState) -> ferrosfu_fbs::SctpState {
    match s {
        SctpState::New => ferrosfu_fbs::SctpState::New,
        SctpState::Connecting => ferrosfu_fbs::SctpState::Connecting,
        SctpState::Connected => ferrosfu_fbs::SctpState::Connected,
        SctpState::Failed => ferrosfu_fbs::SctpState::Failed,
        SctpState::Closed => ferrosfu_fbs::SctpState::Closed,
    }
}

impl WorkerCore {
    /// Every association's counters, live and closed.
    pub(crate) fn data_counters(&self) -> DataCounters {
        let mut d = self.stats.data_closed;
        for t in self.tables.transports.values() {
            if let Kind::WebRtc(w) = &t.kind
                && let Some(a) = w.sctp.as_ref().and_then(|s| s.assoc.as_ref())
            {
                add_counters(&mut d, &a.counters());
            }
        }
        d
    }

    /// Transport `k` closes: its association's counters go to the worker's.
    pub(crate) fn sctp_closing(&mut self, k: TransportKey) {
        if let Some(c) = self
            .sctp_slot(k)
            .and_then(|s| s.assoc.as_ref())
            .map(|a| a.counters())
        {
            add_counters(&mut self.stats.data_closed, &c);
        }
    }

    fn sctp_slot(&mut self, k: TransportKey) -> Option<&mut SctpSlot> {
        match &mut self.tables.transports.get_mut(k)?.kind {
            Kind::WebRtc(w) => w.sctp.as_mut(),
            _ => None,
        }
    }

    /// DTLS connected on transport `k`: its association starts in the DTLS role.
    pub(crate) fn sctp_dtls_connected(&mut self, k: TransportKey, client: bool, now: Instant) {
        let Some(s) = self.sctp_slot(k) else {
            return;
        };
        s.start(client, now);
        self.sctp_pump(k, now);
    }

    /// DTLS application data of transport `k` into its association (dropped, counted, when
    /// the transport has no SCTP).
    pub(crate) fn sctp_input(&mut self, k: TransportKey, now: Instant) {
        let Some(t) = self.tables.transports.get_mut(k) else {
            return;
        };
        let Kind::WebRtc(w) = &mut t.kind else {
            return;
        };
        let mut fed = false;
        while let Some(data) = w.dtls.poll_application_data() {
            match w.sctp.as_mut().and_then(|s| s.assoc.as_mut()) {
                Some(a) => {
                    a.handle_input(&data, now);
                    fed = true;
                }
                None => t.counters.dropped += 1,
            }
        }
        if fed {
            self.sctp_pump(k, now);
        }
    }

    /// The association's timers, when due.
    pub(crate) fn sctp_timers(&mut self, k: TransportKey, now: Instant) {
        let Some(a) = self.sctp_slot(k).and_then(|s| s.assoc.as_mut()) else {
            return;
        };
        if a.poll_timeout().is_some_and(|t| t <= now) {
            a.handle_timeout(now);
            self.sctp_pump(k, now);
        }
    }

    /// Sends what the association of `k` wrote (through DTLS), then handles its events.
    pub(crate) fn sctp_pump(&mut self, k: TransportKey, now: Instant) {
        self.sctp_flush(k, now);
        let mut events = Vec::new();
        if let Some(a) = self.sctp_slot(k).and_then(|s| s.assoc.as_mut()) {
            while let Some(e) = a.poll_event() {
                events.push(e);
            }
        }
        for e in events {
            self.sctp_event(k, e, now);
        }
    }

    /// The association's packets into DTLS records, onto the selected tuple.
    fn sctp_flush(&mut self, k: TransportKey, now: Instant) {
        let Some(t) = self.tables.transports.get_mut(k) else {
            return;
        };
        let Kind::WebRtc(w) = &mut t.kind else {
            return;
        };
        let Some(a) = w.sctp.as_mut().and_then(|s| s.assoc.as_mut()) else {
            return;
        };
        let mut wrote = false;
        while let Some(pkt) = a.poll_transmit(now) {
            wrote |= w.dtls.write_application_data(&pkt, now);
        }
        if !wrote {
            return;
        }
        let tuple = w.ice.selected_tuple();
        while let Some(data) = w.dtls.poll_transmit() {
            if let Some(tuple) = tuple {
                t.counters.bytes_sent += data.len() as u64;
                self.transmits.push(tuple, &data);
            }
        }
    }

    fn sctp_event(&mut self, k: TransportKey, e: SctpEvent, now: Instant) {
        let Some(t) = self.tables.transports.get(k) else {
            return;
        };
        let h = HandlerId::from(&t.id);
        match e {
            SctpEvent::StateChanged(s) => {
                self.notify(h, MediaEvent::TransportSctpStateChange(fbs_state(s)));
            }
            SctpEvent::Message {
                stream_id,
                ppid,
                payload,
            } => {
                let pk = self
                    .sctp_slot(k)
                    .and_then(|s| s.inbound.get(&stream_id).map(|x| x.0));
                if let Some(pk) = pk {
                    self.data_producer_message(pk, ppid, payload, None, None, now);
                }
            }
            SctpEvent::BufferedAmountLow { stream_id } => {
                let Some(s) = self.sctp_slot(k) else {
                    return;
                };
                let Some(ck) = s.outbound.get(&stream_id).map(|x| x.0) else {
                    return;
                };
                let amount = s.assoc.as_mut().map_or(0, |a| a.buffered_amount(stream_id));
                if let Some(c) = self.tables.data.consumers.get(ck) {
                    let h = HandlerId::from(&c.id);
                    self.notify(
                        h,
                        MediaEvent::DataConsumerBufferedAmountLow(
                            u32::try_from(amount).unwrap_or(u32::MAX),
                        ),
                    );
                }
            }
            SctpEvent::StreamClosed { stream_id } => {
                // The peer closed its data channel: the DataProducer/Consumer on it go.
                let Some(s) = self.sctp_slot(k) else {
                    return;
                };
                let pk = s.inbound.get(&stream_id).map(|x| x.0);
                let ck = s.outbound.get(&stream_id).map(|x| x.0);
                if let Some(pk) = pk
                    && let Some(p) = self.tables.data.producers.get(pk)
                {
                    let h = HandlerId::from(&p.id);
                    self.close_data_producer(pk, now);
                    self.notify(h, MediaEvent::DataProducerTransportClose);
                }
                if let Some(ck) = ck
                    && let Some(c) = self.tables.data.consumers.get(ck)
                {
                    let h = HandlerId::from(&c.id);
                    self.close_data_consumer(ck, now);
                    self.notify(h, MediaEvent::DataConsumerTransportClose);
                }
            }
        }
    }

    /// One message on outgoing stream `stream_id` of transport `k`.
    pub(crate) fn sctp_send(
        &mut self,
        k: TransportKey,
        stream_id: u16,
        ppid: u32,
        payload: Bytes,
        now: Instant,
    ) -> Result<(), SendError> {
        let Some(a) = self.sctp_slot(k).and_then(|s| s.assoc.as_mut()) else {
            return Err(SendError::NotConnected);
        };
        a.send_bytes(stream_id, ppid, payload, now)?;
        self.sctp_flush(k, now);
        Ok(())
    }

    /// Forgets stream `stream_id` of transport `k` and resets it toward the peer.
    pub(crate) fn sctp_close_stream(&mut self, k: TransportKey, stream_id: u16, now: Instant) {
        let Some(s) = self.sctp_slot(k) else {
            return;
        };
        s.inbound.remove(&stream_id);
        s.outbound.remove(&stream_id);
        if let Some(a) = s.assoc.as_mut() {
            a.close_stream(stream_id, now);
        }
        self.sctp_flush(k, now);
    }

    /// Registers DataProducer `pk` on incoming stream `id` of transport `k`.
    pub(crate) fn sctp_add_inbound(
        &mut self,
        k: TransportKey,
        id: u16,
        params: StreamParams,
        pk: DataProducerKey,
    ) {
        if let Some(s) = self.sctp_slot(k) {
            s.inbound.insert(id, (pk, params));
            if let Some(a) = s.assoc.as_mut() {
                a.register_inbound(id, params);
            }
        }
    }

    /// Opens outgoing stream `id` of transport `k` for DataConsumer `ck`.
    pub(crate) fn sctp_add_outbound(
        &mut self,
        k: TransportKey,
        id: u16,
        params: StreamParams,
        ck: DataConsumerKey,
        now: Instant,
    ) {
        if let Some(s) = self.sctp_slot(k) {
            s.outbound.insert(id, (ck, params, 0));
            if let Some(a) = s.assoc.as_mut() {
                let _ = a.open_stream(id, params);
            }
        }
        self.sctp_flush(k, now);
    }

    pub(crate) fn sctp_buffered_amount(&mut self, k: TransportKey, id: u16) -> u32 {
        self.sctp_slot(k)
            .and_then(|s| s.assoc.as_mut())
            .map_or(0, |a| {
                u32::try_from(a.buffered_amount(id)).unwrap_or(u32::MAX)
            })
    }

    pub(crate) fn sctp_set_low_threshold(&mut self, k: TransportKey, id: u16, n: u32) {
        if let Some(s) = self.sctp_slot(k) {
            if let Some(o) = s.outbound.get_mut(&id) {
                o.2 = n;
            }
            if let Some(a) = s.assoc.as_mut() {
                a.set_buffered_amount_low_threshold(id, n as usize);
            }
        }
    }
}
