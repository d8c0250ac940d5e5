//! Producers: created on a transport (`Transport::produce`), paused and resumed, closed with
//! their transport.

use std::sync::Arc;

use ferrosfu_fbs::{
    MediaEvent, MediaKind, ProduceOptions, ProducerDump, ProducerId, RtpStreamStats, requests,
};
use tokio::sync::watch;

use super::{CloseReason, Life, Transport, parent_reason};
use crate::channel::RequestError;

impl Transport {
    /// `transport.produce` with fully resolved parameters (see `ortc`).
    pub async fn produce(&self, options: ProduceOptions) -> Result<Producer, RequestError> {
        let id = options.producer_id.clone();
        let kind = options.kind;
        let paused = options.paused;
        let (life, notes) = Life::new(
            (&id).into(),
            self.life().worker.clone(),
            requests::TransportProduce::METHOD,
        )?;
        self.life()
            .request(requests::TransportProduce(options))
            .await?;
        let parent = self.clone();
        life.watch(
            notes,
            async move { parent_reason(parent.closed().await) },
            |e| {
                matches!(e, MediaEvent::ProducerTransportClose).then_some(CloseReason::ParentClosed)
            },
        );
        Ok(Producer {
            inner: Arc::new(ProducerInner {
                id,
                kind,
                transport: self.clone(),
                life,
                paused: watch::channel(paused).0,
            }),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Producer {
    inner: Arc<ProducerInner>,
}

#[derive(Debug)]
struct ProducerInner {
    id: ProducerId,
    kind: MediaKind,
    transport: Transport,
    life: Arc<Life>,
    paused: watch::Sender<bool>,
}

impl Producer {
    pub fn id(&self) -> &ProducerId {
        &self.inner.id
    }

    pub fn kind(&self) -> MediaKind {
        self.inner.kind
    }

    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    pub fn paused(&self) -> bool {
        *self.inner.paused.borrow()
    }

    life_accessors!("Score notifications.");

    pub async fn pause(&self) -> Result<(), RequestError> {
        self.inner.life.request(requests::ProducerPause).await?;
        self.inner.paused.send_replace(true);
        Ok(())
    }

    pub async fn resume(&self) -> Result<(), RequestError> {
        self.inner.life.request(requests::ProducerResume).await?;
        self.inner.paused.send_replace(false);
        Ok(())
    }

    pub async fn get_stats(&self) -> Result<Vec<RtpStreamStats>, RequestError> {
        self.inner.life.request(requests::ProducerGetStats).await
    }

    pub async fn dump(&self) -> Result<ProducerDump, RequestError> {
        self.inner.life.request(requests::ProducerDump).await
    }

    /// Closes the producer; its consumers close with [`CloseReason::ProducerClosed`].
    pub async fn close(&self) -> Result<(), RequestError> {
        self.inner.life.close_by_user(requests::ProducerClose).await
    }
}
