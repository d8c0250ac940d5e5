//! RTP observers: an ActiveSpeakerObserver (the dominant speaker among its producers) or an
//! AudioLevelObserver (the loudest producers of each interval, or silence), created on a router
//! (`Router::create_active_speaker_observer` / `create_audio_level_observer`), fed producers,
//! paused and resumed, closed with their router, as mediasoup's.
//!
//! The worker says nothing when an observer goes with its router (as for transports): the handle
//! closes with the router's handle, like a transport's. A producer that closes leaves its
//! observers on the worker by itself; removing it is only needed to stop observing a live one.

use std::sync::Arc;

use ferrosfu_fbs::{
    ActiveSpeakerObserverOptions, AudioLevelObserverOptions, ProducerId, RequestBody,
    RtpObserverId, TypedRequest, requests,
};
use tokio::sync::watch;

use super::{Life, router_gone};
use crate::channel::RequestError;
use crate::worker::{Router, new_id};

/// What an [`RtpObserver`] observes, and so which events it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RtpObserverKind {
    /// `ActiveSpeakerObserverDominantSpeaker` events.
    ActiveSpeaker,
    /// `AudioLevelObserverVolumes` / `AudioLevelObserverSilence` events.
    AudioLevel,
}

impl Router {
    /// `router.create_active_speaker_observer`: `interval` ms between decisions (mediasoup's
    /// default 300).
    pub async fn create_active_speaker_observer(
        &self,
        interval: u16,
    ) -> Result<RtpObserver, RequestError> {
        let id = RtpObserverId::new(new_id());
        let request = requests::RouterCreateActiveSpeakerObserver(ActiveSpeakerObserverOptions {
            rtp_observer_id: id.clone(),
            interval,
        });
        RtpObserver::create(self, id, RtpObserverKind::ActiveSpeaker, request).await
    }

    /// `router.create_audio_level_observer`: at most `max_entries` producers a `volumes` event
    /// (mediasoup's default 1), those whose average reached `threshold` dBov (−127..0, default
    /// −80), every `interval` ms (default 1000).
    pub async fn create_audio_level_observer(
        &self,
        max_entries: u16,
        threshold: i8,
        interval: u16,
    ) -> Result<RtpObserver, RequestError> {
        let id = RtpObserverId::new(new_id());
        let request = requests::RouterCreateAudioLevelObserver(AudioLevelObserverOptions {
            rtp_observer_id: id.clone(),
            max_entries,
            threshold,
            interval,
        });
        RtpObserver::create(self, id, RtpObserverKind::AudioLevel, request).await
    }
}

/// An ActiveSpeakerObserver or AudioLevelObserver on a router. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RtpObserver {
    inner: Arc<RtpObserverInner>,
}

#[derive(Debug)]
struct RtpObserverInner {
    id: RtpObserverId,
    kind: RtpObserverKind,
    router: Router,
    life: Arc<Life>,
    paused: watch::Sender<bool>,
}

impl RtpObserver {
    /// Registers `id`, sends `request` (a `router.create_*_observer`) to the router and
    /// watches the new observer: it closes with the router.
    async fn create<R>(
        router: &Router,
        id: RtpObserverId,
        kind: RtpObserverKind,
        request: R,
    ) -> Result<Self, RequestError>
    where
        R: TypedRequest<Response = ()> + Clone,
    {
        let method = Into::<RequestBody>::into(request.clone()).method();
        let (life, notes) = Life::new((&id).into(), router.worker().clone(), method)?;
        router.worker().request(router.id().into(), request).await?;
        // No event closes an observer: it goes with its router (or its worker, or `close`).
        life.watch(notes, router_gone(router.clone()), |_| None);
        Ok(Self {
            inner: Arc::new(RtpObserverInner {
                id,
                kind,
                router: router.clone(),
                life,
                paused: watch::channel(false).0,
            }),
        })
    }

    pub fn id(&self) -> &RtpObserverId {
        &self.inner.id
    }

    pub fn kind(&self) -> RtpObserverKind {
        self.inner.kind
    }

    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// Whether `pause` was called (and not `resume` since): a paused observer sends nothing.
    pub fn paused(&self) -> bool {
        *self.inner.paused.borrow()
    }

    life_accessors!(
        "Dominant-speaker (ActiveSpeakerObserver) or volumes and silence (AudioLevelObserver) \
         notifications."
    );

    /// Observes `producer_id` (an audio producer of the same router) from now on.
    pub async fn add_producer(&self, producer_id: &ProducerId) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::RtpObserverAddProducer {
                producer_id: producer_id.clone(),
            })
            .await
    }

    /// Stops observing `producer_id` (not needed when the producer closes).
    pub async fn remove_producer(&self, producer_id: &ProducerId) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::RtpObserverRemoveProducer {
                producer_id: producer_id.clone(),
            })
            .await
    }

    pub async fn pause(&self) -> Result<(), RequestError> {
        self.inner.life.request(requests::RtpObserverPause).await?;
        self.inner.paused.send_replace(true);
        Ok(())
    }

    pub async fn resume(&self) -> Result<(), RequestError> {
        self.inner.life.request(requests::RtpObserverResume).await?;
        self.inner.paused.send_replace(false);
        Ok(())
    }

    /// Closes the observer (its producers are untouched). Closing twice is a no-op.
    pub async fn close(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .close_by_user(requests::RtpObserverClose)
            .await
    }
}
