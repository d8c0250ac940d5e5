//! Data channels on simulated peers: an SCTP association over each peer's DTLS (the worker
//! core's own [`SctpAssociation`], in the opposite role), started once DTLS is up, and
//! helpers for data producers and consumers.

use bytes::Bytes;
use ferrosfu_fbs::{
    ConsumeDataOptions, DataConsumerId, DataProducerId, DataType, ProduceDataOptions, RequestBody,
    ResponseBody, SctpOptions, SctpStreamParameters,
};
use ferrosfu_worker_core::{SctpAssociation, SctpConfig, SctpEvent, SctpStreamParams};

use crate::net::Sim;

/// A peer's side of the data channels.
#[derive(Debug)]
pub struct SctpPeer {
    pub config: SctpConfig,
    /// From DTLS up.
    pub assoc: Option<SctpAssociation>,
    /// Messages received: (stream id, ppid, payload), in order.
    pub rx: Vec<(u16, u32, Bytes)>,
    /// Every other event.
    pub events: Vec<SctpEvent>,
    /// Streams to set up once the association exists: (id, params, inbound).
    pending: Vec<(u16, SctpStreamParams, bool)>,
}

impl SctpPeer {
    pub fn new(o: &SctpOptions) -> Self {
        Self {
            config: SctpConfig {
                // The peer's outgoing streams are the worker's incoming ones.
                os: o.num_streams.mis,
                mis: o.num_streams.os,
                max_message_size: o.max_message_size as usize,
                send_buffer_size: o.send_buffer_size as usize,
                ..SctpConfig::default()
            },
            assoc: None,
            rx: Vec::new(),
            events: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn setup(a: &mut SctpAssociation, id: u16, params: SctpStreamParams, inbound: bool) {
        if inbound {
            a.register_inbound(id, params);
        } else {
            let _ = a.open_stream(id, params);
        }
    }
}

/// Reliable, ordered stream parameters.
pub fn reliable(stream_id: u16) -> SctpStreamParameters {
    SctpStreamParameters::reliable(stream_id)
}

fn params(p: &SctpStreamParameters) -> SctpStreamParams {
    SctpStreamParams {
        ordered: p.ordered,
        max_packet_life_time: p.max_packet_life_time,
        max_retransmits: p.max_retransmits,
    }
}

impl Sim {
    /// Moves SCTP packets between peer `i`'s association and its DTLS, starts the
    /// association once DTLS is up, serves its timers, collects its events.
    pub(crate) fn peer_sctp(&mut self, i: usize) {
        let now = self.now;
        let p = &mut self.peers[i];
        let Some(s) = p.sctp.as_mut() else {
            return;
        };
        if s.assoc.is_none() {
            if !p.client.is_connected() {
                return;
            }
            let mut a = SctpAssociation::new(s.config, p.client.is_dtls_client());
            for (id, params, inbound) in s.pending.drain(..) {
                SctpPeer::setup(&mut a, id, params, inbound);
            }
            a.start(now);
            s.assoc = Some(a);
        }
        let a = s.assoc.as_mut().expect("just set");
        while let Some(d) = p.client.poll_application_data() {
            a.handle_input(&d, now);
        }
        if a.poll_timeout().is_some_and(|t| t <= now) {
            a.handle_timeout(now);
        }
        while let Some(pkt) = a.poll_transmit(now) {
            p.client.write_application_data(now, &pkt);
        }
        while let Some(e) = a.poll_event() {
            match e {
                SctpEvent::Message {
                    stream_id,
                    ppid,
                    payload,
                } => s.rx.push((stream_id, ppid, payload)),
                other => s.events.push(other),
            }
        }
    }

    /// Peer `i` opens its outgoing stream `p` (its data producer's channel), now or once its
    /// association exists.
    pub fn peer_open_stream(&mut self, i: usize, p: &SctpStreamParameters) {
        self.peer_stream(i, p, false);
    }

    /// Peer `i` accepts messages on stream `p` (its data consumer's channel).
    pub fn peer_accept_stream(&mut self, i: usize, p: &SctpStreamParameters) {
        self.peer_stream(i, p, true);
    }

    fn peer_stream(&mut self, i: usize, p: &SctpStreamParameters, inbound: bool) {
        let s = self.peers[i].sctp.as_mut().expect("peer without SCTP");
        match s.assoc.as_mut() {
            Some(a) => SctpPeer::setup(a, p.stream_id, params(p), inbound),
            None => s.pending.push((p.stream_id, params(p), inbound)),
        }
    }

    /// Peer `i` sends a message on its stream `stream_id`; what the association answered.
    pub fn peer_send_data(
        &mut self,
        i: usize,
        stream_id: u16,
        ppid: u32,
        payload: &[u8],
    ) -> Result<(), ferrosfu_worker_core::SctpSendError> {
        let now = self.now;
        let a = self.peers[i]
            .sctp
            .as_mut()
            .and_then(|s| s.assoc.as_mut())
            .ok_or(ferrosfu_worker_core::SctpSendError::NotConnected)?;
        let r = a.send(stream_id, ppid, payload, now);
        self.peer_sctp(i);
        self.flush_client(i);
        r
    }

    /// Whether peer `i`'s association is connected.
    pub fn peer_sctp_connected(&self, i: usize) -> bool {
        self.peers[i]
            .sctp
            .as_ref()
            .and_then(|s| s.assoc.as_ref())
            .is_some_and(|a| a.state() == ferrosfu_worker_core::SctpState::Connected)
    }

    /// An `sctp` data producer on peer `i`'s transport, on stream `stream`.
    pub fn produce_data(
        &mut self,
        i: usize,
        id: &str,
        label: &str,
        stream: SctpStreamParameters,
    ) -> Result<ResponseBody, ferrosfu_fbs::RequestFailure> {
        let tid = self.peers[i].transport_id.clone();
        let r = self.request(
            &tid,
            RequestBody::TransportProduceData(ProduceDataOptions {
                data_producer_id: DataProducerId::new(id),
                data_type: DataType::Sctp,
                sctp_stream_parameters: Some(stream),
                label: label.into(),
                protocol: String::new(),
                paused: false,
            }),
        );
        if r.is_ok() {
            self.peer_open_stream(i, &stream);
        }
        r
    }

    /// An `sctp` data consumer of `producer` on peer `i`'s transport, on stream `stream`.
    pub fn consume_data(
        &mut self,
        i: usize,
        id: &str,
        producer: &str,
        stream: SctpStreamParameters,
    ) -> Result<ResponseBody, ferrosfu_fbs::RequestFailure> {
        let tid = self.peers[i].transport_id.clone();
        let r = self.request(
            &tid,
            RequestBody::TransportConsumeData(ConsumeDataOptions {
                data_consumer_id: DataConsumerId::new(id),
                data_producer_id: DataProducerId::new(producer),
                data_type: DataType::Sctp,
                sctp_stream_parameters: Some(stream),
                label: "chat".into(),
                protocol: String::new(),
                paused: false,
                subchannels: None,
            }),
        );
        if r.is_ok() {
            self.peer_accept_stream(i, &stream);
        }
        r
    }
}
