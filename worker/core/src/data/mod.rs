//! Data channels: DataProducers and DataConsumers (mediasoup's), of type `sctp` (a stream of a
//! WebRtcTransport's SCTP association, see [`sctp`]) or `direct` (on a DirectTransport: the
//! supervisor sends into the producer, `DataConsumerMessage` notifications carry what reaches
//! the consumer). A message a DataProducer receives goes to each of its DataConsumers that is
//! not paused and subscribes to one of the message's subchannels (mediasoup 3.13+).

pub(crate) mod sctp;

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use bytes::Bytes;
use ferrosfu_fbs::{
    DataConsumerDump, DataConsumerId, DataProducerDump, DataProducerId, DataStats, DataType,
    HandlerId, MediaEvent, RequestFailure, SctpStreamParameters, ppid,
};
use slotmap::{SlotMap, new_key_type};

use crate::WorkerCore;
use crate::sctp::{SendError, StreamParams};
use crate::tables::TransportKey;
use crate::transport::Kind;

new_key_type! {
    pub(crate) struct DataProducerKey;
    pub(crate) struct DataConsumerKey;
}

/// Longest `label` / `protocol` accepted (a data channel's label is at most 65535 bytes in
/// DCEP; nothing real is near this).
pub(crate) const MAX_LABEL_LEN: usize = 1024;
/// Most subchannels a DataConsumer subscribes to.
pub(crate) const MAX_SUBCHANNELS: usize = 1024;

#[derive(Debug)]
pub(crate) struct DataProducer {
    pub id: DataProducerId,
    pub transport: TransportKey,
    pub data_type: DataType,
    pub sctp: Option<SctpStreamParameters>,
    pub label: String,
    pub protocol: String,
    pub paused: bool,
    pub consumers: Vec<DataConsumerKey>,
    pub messages: u64,
    pub bytes: u64,
}

#[derive(Debug)]
pub(crate) struct DataConsumer {
    pub id: DataConsumerId,
    pub transport: TransportKey,
    pub producer: DataProducerKey,
    pub data_type: DataType,
    pub sctp: Option<SctpStreamParameters>,
    pub label: String,
    pub protocol: String,
    pub paused: bool,
    pub producer_paused: bool,
    pub subchannels: BTreeSet<u16>,
    pub low_threshold: u32,
    pub messages: u64,
    pub bytes: u64,
    /// Messages not sent: send buffer full, association not connected, too large.
    pub dropped: u64,
}

impl DataConsumer {
    /// Whether a message sent to `subchannels` (none: everyone) and requiring
    /// `required` reaches this consumer (mediasoup's `DataConsumer::SendMessage` rule).
    pub(crate) fn wants(&self, subchannels: Option<&[u16]>, required: Option<u16>) -> bool {
        if let Some(s) = subchannels
            && !s.is_empty()
            && !s.iter().any(|x| self.subchannels.contains(x))
        {
            return false;
        }
        required.is_none_or(|r| self.subchannels.contains(&r))
    }

    pub(crate) fn dump(&self, producer_id: DataProducerId) -> DataConsumerDump {
        DataConsumerDump {
            id: self.id.clone(),
            data_producer_id: producer_id,
            data_type: self.data_type,
            sctp_stream_parameters: self.sctp,
            label: self.label.clone(),
            protocol: self.protocol.clone(),
            buffered_amount_low_threshold: self.low_threshold,
            paused: self.paused,
            data_producer_paused: self.producer_paused,
            subchannels: self.subchannels.iter().copied().collect(),
        }
    }
}

impl DataProducer {
    pub(crate) fn dump(&self) -> DataProducerDump {
        DataProducerDump {
            id: self.id.clone(),
            data_type: self.data_type,
            sctp_stream_parameters: self.sctp,
            label: self.label.clone(),
            protocol: self.protocol.clone(),
            paused: self.paused,
        }
    }

    pub(crate) fn stats(&self, timestamp: u64) -> DataStats {
        DataStats {
            timestamp,
            label: self.label.clone(),
            protocol: self.protocol.clone(),
            messages: self.messages,
            bytes: self.bytes,
            buffered_amount: 0,
        }
    }
}

/// The stream parameters of the association from the channel's.
pub(crate) fn stream_params(p: &SctpStreamParameters) -> StreamParams {
    StreamParams {
        ordered: p.ordered,
        max_packet_life_time: p.max_packet_life_time,
        max_retransmits: p.max_retransmits,
    }
}

/// Every DataProducer and DataConsumer of the worker, by key and by id.
#[derive(Debug, Default)]
pub(crate) struct DataTables {
    pub producers: SlotMap<DataProducerKey, DataProducer>,
    pub consumers: SlotMap<DataConsumerKey, DataConsumer>,
    producer_ids: HashMap<DataProducerId, DataProducerKey>,
    consumer_ids: HashMap<DataConsumerId, DataConsumerKey>,
}

fn invalid(e: impl Into<String>) -> RequestFailure {
    RequestFailure::invalid_argument(e)
}

impl DataTables {
    pub(crate) fn producer_key(&self, h: &HandlerId) -> Result<DataProducerKey, RequestFailure> {
        self.producer_by_id(&DataProducerId::new(h.as_str()))
    }

    pub(crate) fn producer_by_id(
        &self,
        id: &DataProducerId,
    ) -> Result<DataProducerKey, RequestFailure> {
        self.producer_ids
            .get(id)
            .copied()
            .ok_or_else(|| invalid(format!("no data producer with id {:?}", id.as_str())))
    }

    pub(crate) fn consumer_key(&self, h: &HandlerId) -> Result<DataConsumerKey, RequestFailure> {
        self.consumer_ids
            .get(&DataConsumerId::new(h.as_str()))
            .copied()
            .ok_or_else(|| invalid(format!("no data consumer with id {:?}", h.as_str())))
    }

    pub(crate) fn insert_producer(
        &mut self,
        p: DataProducer,
    ) -> Result<DataProducerKey, RequestFailure> {
        if p.id.as_str().is_empty() || self.producer_ids.contains_key(&p.id) {
            return Err(invalid(format!(
                "bad or duplicate data producer id {:?}",
                p.id.as_str()
            )));
        }
        let id = p.id.clone();
        let k = self.producers.insert(p);
        self.producer_ids.insert(id, k);
        Ok(k)
    }

    pub(crate) fn insert_consumer(
        &mut self,
        c: DataConsumer,
    ) -> Result<DataConsumerKey, RequestFailure> {
        if c.id.as_str().is_empty() || self.consumer_ids.contains_key(&c.id) {
            return Err(invalid(format!(
                "bad or duplicate data consumer id {:?}",
                c.id.as_str()
            )));
        }
        let id = c.id.clone();
        let k = self.consumers.insert(c);
        self.consumer_ids.insert(id, k);
        Ok(k)
    }

    pub(crate) fn remove_producer(&mut self, k: DataProducerKey) -> Option<DataProducer> {
        let p = self.producers.remove(k)?;
        self.producer_ids.remove(&p.id);
        Some(p)
    }

    pub(crate) fn remove_consumer(&mut self, k: DataConsumerKey) -> Option<DataConsumer> {
        let c = self.consumers.remove(k)?;
        self.consumer_ids.remove(&c.id);
        Some(c)
    }
}

impl WorkerCore {
    /// A message for DataProducer `pk` (from its endpoint, or `data_producer.send`): counted,
    /// then given to each consumer that takes it.
    pub(crate) fn data_producer_message(
        &mut self,
        pk: DataProducerKey,
        ppid: u32,
        payload: Bytes,
        subchannels: Option<&[u16]>,
        required: Option<u16>,
        now: Instant,
    ) {
        let Some(p) = self.tables.data.producers.get_mut(pk) else {
            return;
        };
        p.messages += 1;
        p.bytes += payload.len() as u64;
        if p.paused {
            return;
        }
        let consumers = p.consumers.clone();
        for ck in consumers {
            let Some(c) = self.tables.data.consumers.get(ck) else {
                continue;
            };
            if c.paused || !c.wants(subchannels, required) {
                continue;
            }
            self.data_consumer_send(ck, ppid, payload.clone(), now);
        }
    }

    /// Sends one message to DataConsumer `ck`'s endpoint (`sctp`) or to the supervisor
    /// (`direct`). A full send buffer is notified (`sctpsendbufferfull`); other refusals are
    /// counted. Returns whether it went out.
    pub(crate) fn data_consumer_send(
        &mut self,
        ck: DataConsumerKey,
        ppid: u32,
        payload: Bytes,
        now: Instant,
    ) -> bool {
        let Some(c) = self.tables.data.consumers.get(ck) else {
            return false;
        };
        let h = HandlerId::from(&c.id);
        let tk = c.transport;
        let len = payload.len() as u64;
        let result = match (c.data_type, c.sctp) {
            (DataType::Direct, _) => {
                self.notify(
                    h.clone(),
                    MediaEvent::DataConsumerMessage {
                        ppid,
                        data: payload.to_vec(),
                    },
                );
                Ok(())
            }
            (DataType::Sctp, Some(s)) => self.sctp_send(tk, s.stream_id, ppid, payload, now),
            (DataType::Sctp, None) => Err(SendError::UnknownStream),
        };
        let Some(c) = self.tables.data.consumers.get_mut(ck) else {
            return false;
        };
        match result {
            Ok(()) => {
                c.messages += 1;
                c.bytes += len;
                true
            }
            Err(e) => {
                c.dropped += 1;
                if e == SendError::SendBufferFull {
                    self.notify(h, MediaEvent::DataConsumerSctpSendBufferFull);
                }
                false
            }
        }
    }

    /// Closes DataConsumer `ck`: its producer forgets it, its stream is reset.
    pub(crate) fn close_data_consumer(&mut self, ck: DataConsumerKey, now: Instant) {
        let Some(c) = self.tables.data.remove_consumer(ck) else {
            return;
        };
        if let Some(p) = self.tables.data.producers.get_mut(c.producer) {
            p.consumers.retain(|&x| x != ck);
        }
        if let Some(t) = self.tables.transports.get_mut(c.transport) {
            t.data_consumers.retain(|&x| x != ck);
        }
        if let Some(s) = c.sctp {
            self.sctp_close_stream(c.transport, s.stream_id, now);
        }
    }

    /// Closes DataProducer `pk` and its consumers (each notified: `dataproducerclose`).
    pub(crate) fn close_data_producer(&mut self, pk: DataProducerKey, now: Instant) {
        let Some(p) = self.tables.data.remove_producer(pk) else {
            return;
        };
        for ck in p.consumers {
            if let Some(c) = self.tables.data.consumers.get(ck) {
                let h = HandlerId::from(&c.id);
                self.close_data_consumer(ck, now);
                self.notify(h, MediaEvent::DataConsumerDataProducerClose);
            }
        }
        if let Some(t) = self.tables.transports.get_mut(p.transport) {
            t.data_producers.retain(|&x| x != pk);
        }
        if let Some(s) = p.sctp {
            self.sctp_close_stream(p.transport, s.stream_id, now);
        }
    }

    /// Closes the data producers and consumers of transport `k` (closing), notifying each
    /// when `notify` (a close the supervisor did not ask for).
    pub(crate) fn close_transport_data(&mut self, k: TransportKey, now: Instant, notify: bool) {
        self.sctp_closing(k);
        let Some(t) = self.tables.transports.get(k) else {
            return;
        };
        let consumers = t.data_consumers.clone();
        let producers = t.data_producers.clone();
        for ck in consumers {
            if let Some(c) = self.tables.data.consumers.get(ck) {
                let h = HandlerId::from(&c.id);
                self.close_data_consumer(ck, now);
                if notify {
                    self.notify(h, MediaEvent::DataConsumerTransportClose);
                }
            }
        }
        for pk in producers {
            if let Some(p) = self.tables.data.producers.get(pk) {
                let h = HandlerId::from(&p.id);
                self.close_data_producer(pk, now);
                if notify {
                    self.notify(h, MediaEvent::DataProducerTransportClose);
                }
            }
        }
    }

    /// Whether a message of `len` bytes with `ppid` may enter transport `k` from the
    /// supervisor (a DirectTransport's `max_message_size`; a data channel PPID).
    pub(crate) fn check_direct_message(
        &self,
        k: TransportKey,
        ppid_value: u32,
        len: usize,
    ) -> Result<(), RequestFailure> {
        if !ppid::is_message(ppid_value) {
            return Err(invalid(format!(
                "ppid {ppid_value} is not a data channel message (51, 53, 56, 57)"
            )));
        }
        let max = match self.tables.transports.get(k).map(|t| &t.kind) {
            Some(Kind::Direct(d)) => d.max_message_size as usize,
            Some(Kind::WebRtc(w)) => w
                .sctp
                .as_ref()
                .map_or(0, |s| s.options.max_message_size as usize),
            _ => 0,
        };
        if len > max {
            return Err(invalid(format!(
                "message of {len} bytes exceeds the maximum of {max}"
            )));
        }
        Ok(())
    }
}
