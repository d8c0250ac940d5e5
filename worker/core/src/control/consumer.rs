//! Consumers: `transport.consume`, and requests to a consumer (dump, stats, pause/resume,
//! keyframe request, close).

use std::time::Instant;

use ferrosfu_fbs::{ConsumeOptions, RequestBody, RequestFailure, ResponseBody};
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
        let initial_seq: u16 = self.rng.random();
        let ts_offset: u32 = self.rng.random();
        let c = Consumer::new(o, pk, producer, tk, initial_seq, ts_offset, now)?;
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
        let (ssrc, rtx_ssrc) = (c.stream.ssrc, c.stream.rtx_ssrc);
        let ck = self.tables.insert_consumer(c);
        let t = &mut self.tables.transports[tk];
        t.ssrc_consumers.insert(ssrc, ck);
        if let Some(r) = rtx_ssrc {
            t.ssrc_consumers.insert(r, ck);
        }
        t.consumers.push(ck);
        let p = &mut self.tables.producers[pk];
        p.consumers.push(ck);
        if retransmits {
            // Simple consumers forward the first encoding, simulcast ones any.
            let n = if layered { p.encodings.len() } else { 1 };
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
            self.consumer_key_frame(ck, now);
        }
        self.bwe_consumer_added(tk, ck, now);
        Ok(reply)
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
            RequestBody::ConsumerGetStats => Ok(ResponseBody::RtpStreamStats(c.stats(now))),
            RequestBody::ConsumerPause => {
                c.paused = true;
                Ok(ResponseBody::None)
            }
            RequestBody::ConsumerResume => {
                if c.paused {
                    c.paused = false;
                    c.resync();
                    self.consumer_key_frame(k, now);
                }
                Ok(ResponseBody::None)
            }
            RequestBody::ConsumerRequestKeyFrame => {
                self.consumer_key_frame(k, now);
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

    pub(crate) fn close_consumer(&mut self, ck: ConsumerKey) {
        let Some(c) = self.tables.remove_consumer(ck) else {
            return;
        };
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
