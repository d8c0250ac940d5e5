//! Producers: `transport.produce`, and requests to a producer (dump, stats, pause/resume,
//! close). Closing a producer closes its consumers and tells the supervisor.

use std::time::Instant;

use ferrosfu_fbs::{
    HandlerId, MediaEvent, ProduceOptions, RequestBody, RequestFailure, ResponseBody,
};

use super::{invalid, misrouted};
use crate::WorkerCore;
use crate::producer::Producer;
use crate::tables::{ProducerKey, TransportKey};

impl WorkerCore {
    pub(super) fn produce(
        &mut self,
        tk: TransportKey,
        o: ProduceOptions,
    ) -> Result<ResponseBody, RequestFailure> {
        self.tables.check_new_producer_id(&o.producer_id)?;
        let t = &self.tables.transports[tk];
        for e in &o.rtp_parameters.encodings {
            for s in [e.ssrc, e.rtx_ssrc].into_iter().flatten() {
                if t.ssrc_producers.contains_key(&s) {
                    return Err(invalid(format!("ssrc {s} already used on this transport")));
                }
            }
        }
        if let Some(mid) = &o.rtp_parameters.mid
            && t.mid_producers.contains_key(mid)
        {
            return Err(invalid(format!(
                "mid {mid:?} already used on this transport"
            )));
        }
        let pk = self.tables.insert_producer(Producer::new(o, tk)?);
        let p = &self.tables.producers[pk];
        let t = &mut self.tables.transports[tk];
        for (i, e) in p.encodings.iter().enumerate() {
            if let Some(s) = e.ssrc {
                t.ssrc_producers.insert(s, (pk, i, false));
            }
            if let Some(s) = e.rtx_ssrc {
                t.ssrc_producers.insert(s, (pk, i, true));
            }
        }
        if let Some(mid) = &p.params.mid {
            t.mid_producers.insert(mid.clone(), pk);
        }
        if p.twcc_ext != 0 {
            // One id per transport (a browser uses one for every m-line of its connection).
            t.twcc_ext_in = p.twcc_ext;
        }
        t.producers.push(pk);
        tracing::debug!(target: "rtp", id = %p.id, "producer created");
        Ok(ResponseBody::None)
    }

    pub(super) fn producer_request(
        &mut self,
        k: ProducerKey,
        body: RequestBody,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        match body {
            RequestBody::ProducerClose => {
                self.close_producer(k, now);
                Ok(ResponseBody::None)
            }
            RequestBody::ProducerDump => {
                Ok(ResponseBody::ProducerDump(self.tables.producers[k].dump()))
            }
            RequestBody::ProducerGetStats => Ok(ResponseBody::RtpStreamStats(
                self.tables.producers[k].stats(now),
            )),
            RequestBody::ProducerPause | RequestBody::ProducerResume => {
                let pause = matches!(body, RequestBody::ProducerPause);
                self.set_producer_paused(k, pause, now);
                Ok(ResponseBody::None)
            }
            other => Err(misrouted(&other)),
        }
    }

    fn set_producer_paused(&mut self, pk: ProducerKey, pause: bool, now: Instant) {
        let p = &mut self.tables.producers[pk];
        if p.paused == pause {
            return;
        }
        p.paused = pause;
        let consumers = p.consumers.clone();
        self.producer_paused_for_observers(pk, pause);
        let mut keys = 0u32;
        for ck in consumers {
            let Some(c) = self.tables.consumers.get_mut(ck) else {
                continue;
            };
            c.producer_paused = pause;
            if !pause {
                c.resync();
                if let Some(enc) = c.key_encoding().filter(|&e| e < 32) {
                    keys |= 1 << enc;
                }
            }
            if c.sibling {
                continue;
            }
            let h = HandlerId::from(&c.id);
            self.notify(
                h,
                if pause {
                    MediaEvent::ConsumerProducerPause
                } else {
                    MediaEvent::ConsumerProducerResume
                },
            );
        }
        for enc in 0..32 {
            if keys & (1 << enc) != 0 {
                self.request_key_frame(pk, enc, now);
            }
        }
    }

    pub(crate) fn close_producer(&mut self, pk: ProducerKey, now: Instant) {
        let Some(p) = self.tables.remove_producer(pk) else {
            return;
        };
        self.producer_left_observers(pk, &p.observers, now);
        for ck in p.consumers {
            if let Some(c) = self.tables.consumers.get(ck) {
                let h = (!c.sibling).then(|| HandlerId::from(&c.id));
                self.close_consumer(ck);
                if let Some(h) = h {
                    self.notify(h, MediaEvent::ConsumerProducerClose);
                }
            }
        }
        if let Some(t) = self.tables.transports.get_mut(p.transport) {
            t.producers.retain(|&x| x != pk);
            t.ssrc_producers.retain(|_, v| v.0 != pk);
            t.mid_producers.retain(|_, &mut v| v != pk);
        }
    }
}
