//! Consumers: created on a transport (`Transport::consume`), paused and resumed, closed with
//! their transport or their producer.

use std::sync::{Arc, Mutex};

use ferrosfu_fbs::{
    ConsumeOptions, Consumed, ConsumerDump, ConsumerId, ConsumerLayers, ConsumerScore, MediaEvent,
    MediaKind, ProducerId, RtpStreamStats, requests,
};

use super::{CloseReason, Life, Transport, parent_reason};
use crate::channel::RequestError;

impl Transport {
    /// `transport.consume` with fully resolved parameters (see `ortc`).
    pub async fn consume(&self, options: ConsumeOptions) -> Result<Consumer, RequestError> {
        let id = options.consumer_id.clone();
        let producer_id = options.producer_id.clone();
        let kind = options.kind;
        let (life, notes) = Life::new(
            (&id).into(),
            self.life().worker.clone(),
            requests::TransportConsume::METHOD,
        )?;
        let Consumed {
            paused,
            producer_paused,
            score,
        } = self
            .life()
            .request(requests::TransportConsume(options))
            .await?;
        let state = Arc::new(Mutex::new(ConsumerState {
            paused,
            producer_paused,
            score,
            bwe_paused: false,
        }));
        let parent = self.clone();
        let st = state.clone();
        // Counted on its worker while it is open: the watcher below owns the count and ends
        // when the consumer closes (for whatever reason), dropping it.
        let counted = self.life().worker.count_consumer();
        life.watch(
            notes,
            async move { parent_reason(parent.closed().await) },
            // Paused/score are kept current here, from the lossless queue, not from a
            // subscription to the fan-out that could lag.
            move |e| {
                let _ = &counted;
                let mut s = st.lock().expect("never held across a panic");
                match e {
                    MediaEvent::ConsumerProducerPause => s.producer_paused = true,
                    MediaEvent::ConsumerProducerResume => s.producer_paused = false,
                    MediaEvent::ConsumerScore(sc) => s.score = *sc,
                    MediaEvent::ConsumerBwePause => s.bwe_paused = true,
                    MediaEvent::ConsumerBweResume => s.bwe_paused = false,
                    MediaEvent::ConsumerProducerClose => return Some(CloseReason::ProducerClosed),
                    MediaEvent::ConsumerTransportClose => return Some(CloseReason::ParentClosed),
                    _ => {}
                }
                None
            },
        );
        Ok(Consumer {
            inner: Arc::new(ConsumerInner {
                id,
                producer_id,
                kind,
                transport: self.clone(),
                life,
                state,
            }),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Consumer {
    inner: Arc<ConsumerInner>,
}

#[derive(Debug)]
struct ConsumerState {
    paused: bool,
    producer_paused: bool,
    score: ConsumerScore,
    /// The send-side allocator paused it (its lowest layer does not fit the estimate).
    bwe_paused: bool,
}

#[derive(Debug)]
struct ConsumerInner {
    id: ConsumerId,
    producer_id: ProducerId,
    kind: MediaKind,
    transport: Transport,
    life: Arc<Life>,
    state: Arc<Mutex<ConsumerState>>,
}

impl Consumer {
    pub fn id(&self) -> &ConsumerId {
        &self.inner.id
    }

    pub fn producer_id(&self) -> &ProducerId {
        &self.inner.producer_id
    }

    pub fn kind(&self) -> MediaKind {
        self.inner.kind
    }

    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    fn state<R>(&self, f: impl FnOnce(&mut ConsumerState) -> R) -> R {
        f(&mut self.inner.state.lock().expect("never held across a panic"))
    }

    pub fn paused(&self) -> bool {
        self.state(|s| s.paused)
    }

    pub fn producer_paused(&self) -> bool {
        self.state(|s| s.producer_paused)
    }

    /// Whether the transport's bandwidth allocator has it paused.
    pub fn bwe_paused(&self) -> bool {
        self.state(|s| s.bwe_paused)
    }

    pub fn score(&self) -> ConsumerScore {
        self.state(|s| s.score)
    }

    life_accessors!("Score, producer pause/resume and close notifications.");

    pub async fn pause(&self) -> Result<(), RequestError> {
        self.inner.life.request(requests::ConsumerPause).await?;
        self.state(|s| s.paused = true);
        Ok(())
    }

    /// Resumes; the worker asks the producer for a keyframe.
    pub async fn resume(&self) -> Result<(), RequestError> {
        self.inner.life.request(requests::ConsumerResume).await?;
        self.state(|s| s.paused = false);
        Ok(())
    }

    pub async fn request_key_frame(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::ConsumerRequestKeyFrame)
            .await
    }

    /// The spatial/temporal layers the app prefers (simulcast/SVC); answers the preference as
    /// the worker applied it (`None`: a simple consumer, which has no layers).
    pub async fn set_preferred_layers(
        &self,
        layers: ConsumerLayers,
    ) -> Result<Option<ConsumerLayers>, RequestError> {
        self.inner
            .life
            .request(requests::ConsumerSetPreferredLayers(layers))
            .await
    }

    /// 1 (lowest) to 255: the consumer's share when its transport's bandwidth is split.
    pub async fn set_priority(&self, priority: u8) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::ConsumerSetPriority(priority))
            .await
    }

    pub async fn get_stats(&self) -> Result<Vec<RtpStreamStats>, RequestError> {
        self.inner.life.request(requests::ConsumerGetStats).await
    }

    pub async fn dump(&self) -> Result<ConsumerDump, RequestError> {
        self.inner.life.request(requests::ConsumerDump).await
    }

    pub async fn close(&self) -> Result<(), RequestError> {
        self.inner.life.close_by_user(requests::ConsumerClose).await
    }
}
