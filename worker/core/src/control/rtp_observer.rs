//! RtpObservers: `router.create_active_speaker_observer`, `router.create_audio_level_observer`,
//! requests to an observer (close, pause, resume, add/remove a producer), and what they report
//! (from the tick, or at once when a change decides something) as notifications on their id.

use std::time::Instant;

use ferrosfu_fbs::{HandlerId, MediaEvent, MediaKind, RequestBody, RequestFailure, ResponseBody};

use super::{invalid, misrouted};
use crate::WorkerCore;
use crate::rtp_observer::{ObserverEvent, RtpObserver};
use crate::tables::{ObserverKey, ProducerKey};

impl WorkerCore {
    pub(super) fn create_observer(
        &mut self,
        o: RtpObserver,
    ) -> Result<ResponseBody, RequestFailure> {
        let router = o.router.clone();
        let k = self.tables.insert_observer(o)?;
        if let Some(r) = self.tables.routers.get_mut(&router) {
            r.observers.push(k);
        }
        Ok(ResponseBody::None)
    }

    pub(super) fn observer_request(
        &mut self,
        k: ObserverKey,
        body: RequestBody,
        now: Instant,
    ) -> Result<ResponseBody, RequestFailure> {
        match body {
            RequestBody::RtpObserverClose => self.close_observer(k),
            RequestBody::RtpObserverPause | RequestBody::RtpObserverResume => {
                let pause = matches!(body, RequestBody::RtpObserverPause);
                let e = self.tables.observers[k].set_paused(pause, now);
                self.observer_event(k, e);
            }
            RequestBody::RtpObserverAddProducer { producer_id } => {
                let pk = self
                    .tables
                    .producer_by_id(&producer_id)
                    .map_err(|_| invalid(format!("no producer {producer_id}")))?;
                let p = &mut self.tables.producers[pk];
                let o = &mut self.tables.observers[k];
                let router = &self.tables.transports[p.transport].router;
                if p.kind != MediaKind::Audio || *router != o.router {
                    return Err(invalid(
                        "an rtp observer takes audio producers of its own router",
                    ));
                }
                o.add_producer(pk, p.paused, now);
                tracing::debug!(target: "observer", id = %o.id, producer = %p.id, level_ext = p.audio_level_ext, "producer added");
                if !p.observers.contains(&k) {
                    p.observers.push(k);
                }
            }
            RequestBody::RtpObserverRemoveProducer { producer_id } => {
                let pk = self
                    .tables
                    .producer_by_id(&producer_id)
                    .map_err(|_| invalid(format!("no producer {producer_id}")))?;
                self.tables.producers[pk].observers.retain(|&o| o != k);
                let e = self.tables.observers[k].remove_producer(pk, now);
                self.observer_event(k, e);
            }
            other => return Err(misrouted(&other)),
        }
        Ok(ResponseBody::None)
    }

    /// Closes observer `k` (closed by the supervisor or with its router: no notification).
    pub(crate) fn close_observer(&mut self, k: ObserverKey) {
        let Some(o) = self.tables.remove_observer(k) else {
            return;
        };
        for pk in o.producers {
            if let Some(p) = self.tables.producers.get_mut(pk) {
                p.observers.retain(|&x| x != k);
            }
        }
        if let Some(r) = self.tables.routers.get_mut(&o.router) {
            r.observers.retain(|&x| x != k);
        }
    }

    /// Producer `pk` closes: its observers forget it (and may pick another speaker).
    pub(crate) fn producer_left_observers(
        &mut self,
        pk: ProducerKey,
        observers: &[ObserverKey],
        now: Instant,
    ) {
        for &k in observers {
            let e = self
                .tables
                .observers
                .get_mut(k)
                .and_then(|o| o.remove_producer(pk, now));
            self.observer_event(k, e);
        }
    }

    /// Producer `pk` paused or resumed: its observers ignore or hear it again.
    pub(crate) fn producer_paused_for_observers(&mut self, pk: ProducerKey, paused: bool) {
        let Some(p) = self.tables.producers.get(pk) else {
            return;
        };
        for &k in &p.observers {
            if let Some(o) = self.tables.observers.get_mut(k) {
                o.set_producer_paused(pk, paused);
            }
        }
    }

    /// The periodic decisions of every observer that is due.
    pub(crate) fn observers_tick(&mut self, now: Instant) {
        let due: Vec<ObserverKey> = self
            .tables
            .observers
            .iter()
            .filter(|(_, o)| o.timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| k)
            .collect();
        for k in due {
            let e = self.tables.observers[k].on_timeout(now);
            self.observer_event(k, e);
        }
    }

    /// Reports what observer `k` decided, naming producers by id.
    fn observer_event(&mut self, k: ObserverKey, e: Option<ObserverEvent>) {
        let (Some(e), Some(o)) = (e, self.tables.observers.get(k)) else {
            return;
        };
        let producers = &self.tables.producers;
        let id = |pk: ProducerKey| producers.get(pk).map(|p| p.id.clone());
        let event = match e {
            ObserverEvent::DominantSpeaker(pk) => match id(pk) {
                Some(producer_id) => {
                    MediaEvent::ActiveSpeakerObserverDominantSpeaker { producer_id }
                }
                None => return,
            },
            ObserverEvent::Volumes(v) => MediaEvent::AudioLevelObserverVolumes(
                v.into_iter()
                    .filter_map(|(pk, volume)| Some((id(pk)?, volume)))
                    .collect(),
            ),
            ObserverEvent::Silence => MediaEvent::AudioLevelObserverSilence,
        };
        tracing::debug!(target: "observer", id = %o.id, ?event, "rtp observer event");
        let h = HandlerId::from(&o.id);
        self.notify(h, event);
    }
}
