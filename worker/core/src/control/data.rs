//! Data channels: `router.create_direct_transport`, `transport.produce_data` /
//! `transport.consume_data`, and the requests addressed to DataProducers and DataConsumers.

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;
use ferrosfu_fbs::{
    ConsumeDataOptions, DataSend, DataType, DirectTransportDump, DirectTransportOptions, HandlerId,
    MediaEvent, ProduceDataOptions, RequestBody, RequestFailure, ResponseBody, RouterId,
    SctpStreamParameters,
};

use super::invalid;
use crate::WorkerCore;
use crate::data::{
    DataConsumer, DataConsumerKey, DataProducer, DataProducerKey, MAX_LABEL_LEN, MAX_SUBCHANNELS,
    stream_params,
};
use crate::tables::TransportKey;
use crate::transport::{Direct, Kind, Transport};

/// The largest message a DirectTransport or an association may be configured for.
pub(crate) const MAX_MESSAGE_SIZE_LIMIT: u32 = 16 * 1024 * 1024;

fn check_label(label: &str, protocol: &str) -> Result<(), RequestFailure> {
    if label.len() > MAX_LABEL_LEN || protocol.len() > MAX_LABEL_LEN {
        return Err(invalid(format!(
            "label and protocol are limited to {MAX_LABEL_LEN} bytes"
        )));
    }
    Ok(())
}

fn check_stream(p: &SctpStreamParameters) -> Result<(), RequestFailure> {
    if p.max_packet_life_time.is_some() && p.max_retransmits.is_some() {
        return Err(invalid(
            "maxPacketLifeTime and maxRetransmits are mutually exclusive",
        ));
    }
    Ok(())
}

fn subchannel_set(v: Vec<u16>) -> Result<BTreeSet<u16>, RequestFailure> {
    let s: BTreeSet<u16> = v.into_iter().collect();
    if s.len() > MAX_SUBCHANNELS {
        return Err(invalid(format!("at most {MAX_SUBCHANNELS} subchannels")));
    }
    Ok(s)
}

impl WorkerCore {
    pub(super) fn create_direct_transport(
        &mut self,
        router: RouterId,
        o: DirectTransportOptions,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        self.tables.check_new_transport_id(&o.transport_id)?;
        if o.max_message_size == 0 || o.max_message_size > MAX_MESSAGE_SIZE_LIMIT {
            return Err(invalid(format!(
                "maxMessageSize must be 1..={MAX_MESSAGE_SIZE_LIMIT}"
            )));
        }
        let t = Transport::new(
            o.transport_id,
            router.clone(),
            Kind::Direct(Direct {
                max_message_size: o.max_message_size,
            }),
            Vec::new(),
            0,
            now,
        );
        let k = self.tables.insert_transport(t);
        if let Some(r) = self.tables.routers.get_mut(&router) {
            r.transports.push(k);
        }
        self.ensure_tick(now);
        Ok(ResponseBody::None)
    }

    pub(crate) fn direct_dump(&self, k: TransportKey) -> Option<DirectTransportDump> {
        let t = self.tables.transports.get(k)?;
        let Kind::Direct(d) = &t.kind else {
            return None;
        };
        Some(DirectTransportDump {
            id: t.id.clone(),
            max_message_size: d.max_message_size,
            data_producer_ids: self.data_producer_ids(k),
            data_consumer_ids: self.data_consumer_ids(k),
        })
    }

    pub(crate) fn data_producer_ids(&self, k: TransportKey) -> Vec<ferrosfu_fbs::DataProducerId> {
        self.tables.transports.get(k).map_or_else(Vec::new, |t| {
            t.data_producers
                .iter()
                .filter_map(|&p| self.tables.data.producers.get(p).map(|p| p.id.clone()))
                .collect()
        })
    }

    pub(crate) fn data_consumer_ids(&self, k: TransportKey) -> Vec<ferrosfu_fbs::DataConsumerId> {
        self.tables.transports.get(k).map_or_else(Vec::new, |t| {
            t.data_consumers
                .iter()
                .filter_map(|&c| self.tables.data.consumers.get(c).map(|c| c.id.clone()))
                .collect()
        })
    }

    /// `transport.produce_data`: `sctp` on a WebRtcTransport with SCTP (an incoming stream
    /// below MIS, not taken), `direct` on a DirectTransport.
    pub(super) fn produce_data(
        &mut self,
        k: TransportKey,
        o: ProduceDataOptions,
    ) -> Result<ResponseBody, RequestFailure> {
        check_label(&o.label, &o.protocol)?;
        let stream = self.check_data_type(k, o.data_type, o.sctp_stream_parameters, true)?;
        let p = DataProducer {
            id: o.data_producer_id,
            transport: k,
            data_type: o.data_type,
            sctp: stream,
            label: o.label,
            protocol: o.protocol,
            paused: o.paused,
            consumers: Vec::new(),
            messages: 0,
            bytes: 0,
        };
        let dump = p.dump();
        let pk = self.tables.data.insert_producer(p)?;
        self.tables.transports[k].data_producers.push(pk);
        if let Some(s) = stream {
            self.sctp_add_inbound(k, s.stream_id, stream_params(&s), pk);
        }
        Ok(ResponseBody::DataProducerDump(dump))
    }

    /// `transport.consume_data`: DataProducer `o.data_producer_id` (same router) to this
    /// transport: `sctp` on an outgoing stream below OS that is not taken, or `direct`.
    pub(super) fn consume_data(
        &mut self,
        k: TransportKey,
        o: ConsumeDataOptions,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        check_label(&o.label, &o.protocol)?;
        let pk = self.tables.data.producer_by_id(&o.data_producer_id)?;
        let p = &self.tables.data.producers[pk];
        let producer_router = self.tables.transports.get(p.transport).map(|t| &t.router);
        if producer_router != Some(&self.tables.transports[k].router) {
            return Err(invalid("the data producer is on another router"));
        }
        let producer_paused = p.paused;
        let stream = self.check_data_type(k, o.data_type, o.sctp_stream_parameters, false)?;
        let c = DataConsumer {
            id: o.data_consumer_id,
            transport: k,
            producer: pk,
            data_type: o.data_type,
            sctp: stream,
            label: o.label,
            protocol: o.protocol,
            paused: o.paused,
            producer_paused,
            subchannels: subchannel_set(o.subchannels.unwrap_or_default())?,
            low_threshold: 0,
            messages: 0,
            bytes: 0,
            dropped: 0,
        };
        let dump = c.dump(o.data_producer_id);
        let ck = self.tables.data.insert_consumer(c)?;
        self.tables.transports[k].data_consumers.push(ck);
        self.tables.data.producers[pk].consumers.push(ck);
        if let Some(s) = stream {
            self.sctp_add_outbound(k, s.stream_id, stream_params(&s), ck, now);
        }
        Ok(ResponseBody::DataConsumerDump(dump))
    }

    /// The stream a data producer (`inbound`) or consumer of `data_type` takes on transport
    /// `k`; `None` for `direct`.
    fn check_data_type(
        &self,
        k: TransportKey,
        data_type: DataType,
        stream: Option<SctpStreamParameters>,
        inbound: bool,
    ) -> Result<Option<SctpStreamParameters>, RequestFailure> {
        match (data_type, &self.tables.transports[k].kind) {
            (DataType::Direct, Kind::Direct(_)) => Ok(None),
            (DataType::Direct, _) => Err(invalid(
                "a direct data producer/consumer needs a DirectTransport",
            )),
            (DataType::Sctp, Kind::WebRtc(w)) => {
                let Some(slot) = w.sctp.as_ref() else {
                    return Err(invalid("SCTP is not enabled on this transport"));
                };
                let s = stream.ok_or_else(|| invalid("sctpStreamParameters missing"))?;
                check_stream(&s)?;
                let n = &slot.options.num_streams;
                let limit = if inbound { n.mis } else { n.os };
                if s.stream_id >= limit {
                    return Err(invalid(format!(
                        "streamId {} is out of range (< {limit})",
                        s.stream_id
                    )));
                }
                if slot.in_use(s.stream_id) {
                    return Err(invalid(format!("streamId {} is in use", s.stream_id)));
                }
                Ok(Some(s))
            }
            (DataType::Sctp, _) => Err(invalid("SCTP data needs a WebRtcTransport with SCTP")),
        }
    }

    pub(super) fn data_producer_request(
        &mut self,
        pk: DataProducerKey,
        body: RequestBody,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        match body {
            RequestBody::DataProducerClose => {
                self.close_data_producer(pk, now);
                Ok(ResponseBody::None)
            }
            RequestBody::DataProducerDump => Ok(ResponseBody::DataProducerDump(
                self.tables.data.producers[pk].dump(),
            )),
            RequestBody::DataProducerGetStats => {
                let ts = self.timestamp(now);
                Ok(ResponseBody::DataStats(
                    self.tables.data.producers[pk].stats(ts),
                ))
            }
            RequestBody::DataProducerPause | RequestBody::DataProducerResume => {
                let pause = matches!(body, RequestBody::DataProducerPause);
                let p = &mut self.tables.data.producers[pk];
                if p.paused != pause {
                    p.paused = pause;
                    let event = if pause {
                        MediaEvent::DataConsumerDataProducerPause
                    } else {
                        MediaEvent::DataConsumerDataProducerResume
                    };
                    for ck in p.consumers.clone() {
                        if let Some(c) = self.tables.data.consumers.get_mut(ck) {
                            c.producer_paused = pause;
                            let h = HandlerId::from(&c.id);
                            self.notify(h, event.clone());
                        }
                    }
                }
                Ok(ResponseBody::None)
            }
            RequestBody::DataProducerSend(s) => {
                let p = &self.tables.data.producers[pk];
                if p.data_type != DataType::Direct {
                    return Err(invalid("send() is for direct data producers"));
                }
                self.check_direct_message(p.transport, s.ppid, s.data.len())?;
                let DataSend {
                    ppid,
                    data,
                    subchannels,
                    required_subchannel,
                } = s;
                self.data_producer_message(
                    pk,
                    ppid,
                    Bytes::from(data),
                    subchannels.as_deref(),
                    required_subchannel,
                    now,
                );
                Ok(ResponseBody::None)
            }
            other => Err(super::misrouted(&other)),
        }
    }

    pub(super) fn data_consumer_request(
        &mut self,
        ck: DataConsumerKey,
        body: RequestBody,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        let c = &self.tables.data.consumers[ck];
        let (tk, stream) = (c.transport, c.sctp.map(|s| s.stream_id));
        match body {
            RequestBody::DataConsumerClose => {
                self.close_data_consumer(ck, now);
                Ok(ResponseBody::None)
            }
            RequestBody::DataConsumerDump => {
                let pid = self
                    .tables
                    .data
                    .producers
                    .get(c.producer)
                    .map(|p| p.id.clone())
                    .unwrap_or_default();
                Ok(ResponseBody::DataConsumerDump(c.dump(pid)))
            }
            RequestBody::DataConsumerGetStats => {
                let ts = self.timestamp(now);
                let buffered = stream.map_or(0, |id| self.sctp_buffered_amount(tk, id));
                let c = &self.tables.data.consumers[ck];
                Ok(ResponseBody::DataStats(ferrosfu_fbs::DataStats {
                    timestamp: ts,
                    label: c.label.clone(),
                    protocol: c.protocol.clone(),
                    messages: c.messages,
                    bytes: c.bytes,
                    buffered_amount: buffered,
                }))
            }
            RequestBody::DataConsumerPause => {
                self.tables.data.consumers[ck].paused = true;
                Ok(ResponseBody::None)
            }
            RequestBody::DataConsumerResume => {
                self.tables.data.consumers[ck].paused = false;
                Ok(ResponseBody::None)
            }
            RequestBody::DataConsumerGetBufferedAmount => Ok(ResponseBody::BufferedAmount(
                stream.map_or(0, |id| self.sctp_buffered_amount(tk, id)),
            )),
            RequestBody::DataConsumerSetBufferedAmountLowThreshold(n) => {
                self.tables.data.consumers[ck].low_threshold = n;
                if let Some(id) = stream {
                    self.sctp_set_low_threshold(tk, id, n);
                }
                Ok(ResponseBody::None)
            }
            RequestBody::DataConsumerSend(s) => {
                if c.data_type != DataType::Sctp {
                    return Err(invalid("send() on a data consumer is for sctp ones"));
                }
                self.check_direct_message(tk, s.ppid, s.data.len())?;
                if self.data_consumer_send(ck, s.ppid, Bytes::from(s.data), now) {
                    Ok(ResponseBody::None)
                } else {
                    Err(RequestFailure::failed(
                        "not sent: the association is not connected or its send buffer is full",
                    ))
                }
            }
            RequestBody::DataConsumerSetSubchannels(v) => {
                let set = subchannel_set(v)?;
                let out = set.iter().copied().collect();
                self.tables.data.consumers[ck].subchannels = set;
                Ok(ResponseBody::Subchannels(out))
            }
            other => Err(super::misrouted(&other)),
        }
    }
}
