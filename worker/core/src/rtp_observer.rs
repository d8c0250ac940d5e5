//! An RtpObserver: a router entity fed the audio levels of the producers added to it
//! (mediasoup's AudioLevelObserver and ActiveSpeakerObserver; the logic is in
//! [`observers`](crate::observers)), reporting through notifications on its id.

use std::time::{Duration, Instant};

use ferrosfu_fbs::{
    ActiveSpeakerObserverOptions, AudioLevelObserverOptions, RouterId, RtpObserverId,
};

use crate::observers::{ActiveSpeakerObserver, AudioLevelEvent, AudioLevelObserver};
use crate::tables::ProducerKey;

#[derive(Debug)]
pub(crate) enum ObserverKind {
    ActiveSpeaker(ActiveSpeakerObserver<ProducerKey>),
    AudioLevel(AudioLevelObserver<ProducerKey>),
}

/// What an observer reports (producers by key; the caller names them).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ObserverEvent {
    DominantSpeaker(ProducerKey),
    Volumes(Vec<(ProducerKey, i8)>),
    Silence,
}

#[derive(Debug)]
pub(crate) struct RtpObserver {
    pub id: RtpObserverId,
    pub router: RouterId,
    pub kind: ObserverKind,
    pub producers: Vec<ProducerKey>,
    pub paused: bool,
}

impl RtpObserver {
    pub(crate) fn active_speaker(
        router: RouterId,
        o: ActiveSpeakerObserverOptions,
        now: Instant,
    ) -> Self {
        let interval = if o.interval == 0 {
            ActiveSpeakerObserver::<ProducerKey>::DEFAULT_INTERVAL
        } else {
            Duration::from_millis(u64::from(o.interval))
        };
        Self::new(
            o.rtp_observer_id,
            router,
            ObserverKind::ActiveSpeaker(ActiveSpeakerObserver::new(interval, now)),
        )
    }

    pub(crate) fn audio_level(
        router: RouterId,
        o: AudioLevelObserverOptions,
        now: Instant,
    ) -> Self {
        // mediasoup's defaults for what an app leaves out (0).
        let interval =
            Duration::from_millis(u64::from(if o.interval == 0 { 1000 } else { o.interval }));
        let max_entries = o.max_entries.max(1);
        let observer = AudioLevelObserver::new(max_entries, o.threshold.min(0), interval, now);
        Self::new(
            o.rtp_observer_id,
            router,
            ObserverKind::AudioLevel(observer),
        )
    }

    fn new(id: RtpObserverId, router: RouterId, kind: ObserverKind) -> Self {
        Self {
            id,
            router,
            kind,
            producers: Vec::new(),
            paused: false,
        }
    }

    pub(crate) fn add_producer(&mut self, k: ProducerKey, paused: bool, now: Instant) {
        if self.producers.contains(&k) {
            return;
        }
        self.producers.push(k);
        match &mut self.kind {
            ObserverKind::ActiveSpeaker(o) => {
                o.add_producer(k, now);
                o.set_producer_paused(k, paused);
            }
            ObserverKind::AudioLevel(o) => {
                o.add_producer(k);
                o.set_producer_paused(k, paused);
            }
        }
    }

    /// Removes producer `k`; what that changes at once (a new dominant speaker).
    pub(crate) fn remove_producer(
        &mut self,
        k: ProducerKey,
        now: Instant,
    ) -> Option<ObserverEvent> {
        let at = self.producers.iter().position(|&p| p == k)?;
        self.producers.swap_remove(at);
        match &mut self.kind {
            ObserverKind::ActiveSpeaker(o) => o
                .remove_producer(k, now)
                .map(ObserverEvent::DominantSpeaker),
            ObserverKind::AudioLevel(o) => {
                o.remove_producer(k);
                None
            }
        }
    }

    pub(crate) fn set_producer_paused(&mut self, k: ProducerKey, paused: bool) {
        match &mut self.kind {
            ObserverKind::ActiveSpeaker(o) => o.set_producer_paused(k, paused),
            ObserverKind::AudioLevel(o) => o.set_producer_paused(k, paused),
        }
    }

    /// Pauses or resumes the observer; what that reports at once (a paused AudioLevelObserver
    /// reports silence).
    pub(crate) fn set_paused(&mut self, paused: bool, now: Instant) -> Option<ObserverEvent> {
        if self.paused == paused {
            return None;
        }
        self.paused = paused;
        match (&mut self.kind, paused) {
            (ObserverKind::ActiveSpeaker(o), true) => {
                o.pause();
                None
            }
            (ObserverKind::ActiveSpeaker(o), false) => {
                o.resume(now);
                None
            }
            (ObserverKind::AudioLevel(o), true) => o.pause().map(level_event),
            (ObserverKind::AudioLevel(o), false) => {
                o.resume(now);
                None
            }
        }
    }

    /// One audio level (−dBov, 0..=127) of producer `k`.
    pub(crate) fn on_audio_level(&mut self, k: ProducerKey, level: u8, now: Instant) {
        match &mut self.kind {
            ObserverKind::ActiveSpeaker(o) => o.on_audio_level(k, level, now),
            ObserverKind::AudioLevel(o) => o.on_audio_level(k, level),
        }
    }

    pub(crate) fn timeout(&self) -> Option<Instant> {
        match &self.kind {
            ObserverKind::ActiveSpeaker(o) => o.timeout(),
            ObserverKind::AudioLevel(o) => o.timeout(),
        }
    }

    pub(crate) fn on_timeout(&mut self, now: Instant) -> Option<ObserverEvent> {
        match &mut self.kind {
            ObserverKind::ActiveSpeaker(o) => o.on_timeout(now).map(ObserverEvent::DominantSpeaker),
            ObserverKind::AudioLevel(o) => o.on_timeout(now).map(level_event),
        }
    }
}

fn level_event(e: AudioLevelEvent<ProducerKey>) -> ObserverEvent {
    match e {
        AudioLevelEvent::Volumes(v) => ObserverEvent::Volumes(v),
        AudioLevelEvent::Silence => ObserverEvent::Silence,
    }
}
