//! Consumers: `transport.consume`, and requests to a consumer (dump, stats, pause/resume,
//! keyframe request, close).

use std::time::Instant;

use ferrosfu_fbs::{ConsumeOptions, ConsumerType, RequestBody, RequestFailure, ResponseBody};
use rand::Rng;

use super::{invalid, misrouted};
use crate::WorkerCore;
use crate::consumer::Consumer;
use crate::streams::layered::Layers;
use crate::streams::retransmit::PacketStore;
use crate::tables::{ConsumerKey, TransportKey};

impl WorkerCore {
    pub(super) fn consume(
        &mut self,
        tk: TransportKey,
        o: ConsumeOptions,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        self.tables.check_new_consumer_id(&o.consumer_id)?;
        let pk = self
            .tables
            .producer_by_id(&o.producer_id)
            .map_err(|_| invalid(format!("no producer {}", o.producer_id)))?;
        let producer = &self.tables.producers[pk];
        let t = &self.tables.transports[tk];
        if self.tables.transports[producer.transport].router != t.router {
            return Err(invalid("the producer is in another router"));
        }
        for e in &o.rtp_parameters.encodings {
            for s in [e.ssrc, e.rtx_ssrc].into_iter().flatten() {
                if t.ssrc_consumers.contains_key(&s) {
                    return Err(invalid(format!("ssrc {s} already used on this transport")));
                }
            }
        }
        let pipe = o.consumer_type == ConsumerType::Pipe;
        // A pipe consumer: one stream per producer encoding (as many as both sides have), the
        // producer's timestamps unchanged (its sender reports then hold on the far side as they
        // are); the others: the first encoding's stream, in a timeline of their own.
        let streams = if pipe {
            o.rtp_parameters
                .encodings
                .len()
                .min(producer.encodings.len())
                .clamp(1, 32)
        } else {
            1
        };
        let mut entries = Vec::with_capacity(streams);
        for i in 0..streams {
            let initial_seq: u16 = self.rng.random();
            let ts_offset: u32 = if pipe { 0 } else { self.rng.random() };
            entries.push(Consumer::new(
                o.clone(),
                i,
                pk,
                producer,
                tk,
                initial_seq,
                ts_offset,
                now,
            )?);
        }
        let c = &entries[0];
        let reply = ResponseBody::Consumed {
            paused: c.paused,
            producer_paused: c.producer_paused,
            score: c.last_score,
        };
        let layered = c.layers.is_some();
        // Simulcast consumers ask for the keyframe of the encoding they start on once they know
        // which encodings are active; the others ask now.
        let simulcast = matches!(c.layers.as_deref(), Some(Layers::Simulcast(_)));
        let retransmits = c.stream.buffer.is_some();
        let mut keys = Vec::with_capacity(streams);
        for c in entries {
            let (ssrc, rtx_ssrc) = (c.stream.ssrc, c.stream.rtx_ssrc);
            let sibling = c.sibling;
            let ck = if sibling {
                self.tables.consumers.insert(c)
            } else {
                self.tables.insert_consumer(c)
            };
            let t = &mut self.tables.transports[tk];
            t.ssrc_consumers.insert(ssrc, ck);
            if let Some(r) = rtx_ssrc {
                t.ssrc_consumers.insert(r, ck);
            }
            t.consumers.push(ck);
            self.tables.producers[pk].consumers.push(ck);
            keys.push(ck);
        }
        let ck = keys[0];
        self.tables.consumers[ck].siblings = keys[1..].to_vec();
        let p = &mut self.tables.producers[pk];
        if retransmits {
            // Simple consumers forward the first encoding, simulcast and pipe ones any.
            let n = if layered || pipe {
                p.encodings.len()
            } else {
                1
            };
            for e in p.encodings.iter_mut().take(n) {
                e.store.get_or_insert_with(PacketStore::new);
            }
        }
        if layered {
            p.layered_consumers += 1;
        }
        if simulcast {
            self.init_layers(ck, now);
        } else {
            for &k in &keys {
                self.consumer_key_frame(k, now);
            }
        }
        self.bwe_consumer_added(tk, ck, now);
        Ok(reply)
    }

    /// Consumer `ck` and, for a pipe consumer, the streams of its other encodings.
    fn with_siblings(&self, ck: ConsumerKey) -> Vec<ConsumerKey> {
        let mut all = vec![ck];
        if let Some(c) = self.tables.consumers.get(ck) {
            all.extend_from_slice(&c.siblings);
        }
        all
    }

    pub(super) fn consumer_request(
        &mut self,
        k: ConsumerKey,
        body: RequestBody,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        let c = &mut self.tables.consumers[k];
        match body {
            RequestBody::ConsumerClose => {
                self.close_consumer(k);
                Ok(ResponseBody::None)
            }
            RequestBody::ConsumerDump => Ok(ResponseBody::ConsumerDump(c.dump())),
            RequestBody::ConsumerGetStats => {
                let mut stats = Vec::new();
                for ck in self.with_siblings(k) {
                    stats.extend(self.tables.consumers[ck].stats(now));
                }
                Ok(ResponseBody::RtpStreamStats(stats))
            }
            RequestBody::ConsumerPause => {
                for ck in self.with_siblings(k) {
                    self.tables.consumers[ck].paused = true;
                }
                Ok(ResponseBody::None)
            }
            RequestBody::ConsumerResume => {
                if c.paused {
                    for ck in self.with_siblings(k) {
                        let c = &mut self.tables.consumers[ck];
                        c.paused = false;
                        c.resync();
                        self.consumer_key_frame(ck, now);
                    }
                }
                Ok(ResponseBody::None)
            }
            RequestBody::ConsumerRequestKeyFrame => {
                for ck in self.with_siblings(k) {
                    self.consumer_key_frame(ck, now);
                }
                Ok(ResponseBody::None)
            }
            RequestBody::ConsumerSetPreferredLayers(layers) => Ok(ResponseBody::PreferredLayers(
                self.set_preferred_layers(k, layers, now),
            )),
            RequestBody::ConsumerSetPriority(priority) => {
                if priority == 0 {
                    return Err(invalid("priority must be 1 to 255"));
                }
                c.priority = priority;
                Ok(ResponseBody::None)
            }
            other => Err(misrouted(&other)),
        }
    }

    /// Closes consumer `ck` (and a pipe consumer's other streams with it).
    pub(crate) fn close_consumer(&mut self, ck: ConsumerKey) {
        let Some(c) = self.tables.remove_consumer(ck) else {
            return;
        };
        for &s in &c.siblings {
            self.close_consumer(s);
        }
        if let Some(p) = self.tables.producers.get_mut(c.producer) {
            p.consumers.retain(|&x| x != ck);
            if c.layers.is_some() {
                p.layered_consumers -= 1;
            }
            // The last consumer that retransmits is gone: so is the store it read from.
            let consumers = &self.tables.consumers;
            let retransmitting = p
                .consumers
                .iter()
                .any(|&k| consumers.get(k).is_some_and(|c| c.stream.buffer.is_some()));
            if !retransmitting {
                for e in &mut p.encodings {
                    e.store = None;
                }
            }
        }
        if let Some(t) = self.tables.transports.get_mut(c.transport) {
            t.consumers.retain(|&x| x != ck);
            t.ssrc_consumers.retain(|_, &mut v| v != ck);
        }
    }
}
