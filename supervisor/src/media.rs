//! Typed async handles for the media plane, as mediasoup's Rust/Node layer offers them:
//! [`Transport`] (WebRtcTransport / PlainTransport / DirectTransport), [`Producer`],
//! [`Consumer`], [`DataProducer`], [`DataConsumer`], [`WebRtcServer`], [`RtpObserver`]
//! (ActiveSpeakerObserver / AudioLevelObserver), and `Router::pipe_to_router` ([`PipeSettings`]).
//!
//! Every handle is cheap to clone. Each watches its parent and its own worker notifications, so
//! closing cascades (router → transports and RTP observers; transport → producers/consumers;
//! producer → its consumers) and a worker death closes everything that lived on it. `closed()`
//! says why an entity went away; `events()` streams its notifications (ICE/DTLS state, scores,
//! producer pause/resume, dominant speaker, audio volumes…).
//!
//! Each entity registers its handler id on the worker channel before the request that creates
//! it, and one task per entity drains that lossless queue (see [`crate::channel::Notifications`]):
//! it updates the handle's state and its close flag *first*, then fans the event out to the
//! `events()` subscribers. That fan-out is a bounded broadcast: a subscriber that lags may miss
//! events such as scores, but never a close, because closing is the `closed()` watch, set by the
//! entity's own task from every close event.

/// `is_closed`, `closed` and `events` (documented as `$events`) of a handle whose
/// `inner.life` is its [`Life`].
macro_rules! life_accessors {
    ($events:literal) => {
        /// Whether the entity is closed (by itself, its parent, its producer or its worker).
        pub fn is_closed(&self) -> bool {
            self.inner.life.is_closed()
        }

        /// Waits until the entity is closed and says why.
        pub async fn closed(&self) -> crate::media::CloseReason {
            self.inner.life.wait_closed().await
        }

        #[doc = $events]
        pub fn events(&self) -> tokio::sync::broadcast::Receiver<ferrosfu_fbs::MediaEvent> {
            self.inner.life.events.subscribe()
        }
    };
}

mod consumer;
mod data_consumer;
mod data_producer;
mod pipe;
mod pipe_data;
mod producer;
mod rtp_observer;
mod sctp_ids;
mod server;
mod transport;

use std::sync::Arc;

use ferrosfu_fbs::{Event, HandlerId, MediaEvent, Method, RequestBody, TypedRequest};
use tokio::sync::{broadcast, watch};

pub use consumer::Consumer;
pub use data_consumer::{DataConsumeOptions, DataConsumer};
pub use data_producer::DataProducer;
pub use pipe::{
    PipeError, PipeSettings, PipedProducer, RouterPipes, connect_pipe, create_pipe_transport,
    pipe_consume, pipe_produce,
};
pub use pipe_data::PipedData;
pub use producer::Producer;
pub use rtp_observer::{RtpObserver, RtpObserverKind};
pub use server::WebRtcServer;
pub use transport::{Transport, TransportKind};

use crate::channel::{Notifications, RequestError};
use crate::worker::{Router, RouterClosed, Worker, WorkerExit};

/// Why an entity is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Its own `close()` was called.
    Closed,
    /// Its router (for transports and RTP observers) or transport (for producers/consumers)
    /// closed.
    ParentClosed,
    /// The consumer's producer (or the data consumer's data producer) closed.
    ProducerClosed,
    /// The worker it lived on died.
    WorkerDied(WorkerExit),
}

/// Close state and events shared by every handle kind.
#[derive(Debug)]
struct Life {
    handler: HandlerId,
    worker: Worker,
    closed: watch::Sender<Option<CloseReason>>,
    events: broadcast::Sender<MediaEvent>,
}

impl Life {
    /// Registers `handler` on the worker's channel; call it before sending `method`, the request
    /// that creates the entity, so none of the entity's notifications can be missed.
    fn new(
        handler: HandlerId,
        worker: Worker,
        method: Method,
    ) -> Result<(Arc<Self>, Notifications), RequestError> {
        let notes =
            worker
                .channel()
                .register(handler.clone())
                .map_err(|e| RequestError::Rejected {
                    method,
                    failure: ferrosfu_fbs::RequestFailure::invalid_argument(e.to_string()),
                })?;
        let life = Arc::new(Self {
            handler,
            worker,
            closed: watch::channel(None).0,
            events: broadcast::channel(256).0,
        });
        Ok((life, notes))
    }

    fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    /// Marks closed (first reason wins). Returns whether this call closed it.
    fn close(&self, reason: CloseReason) -> bool {
        let mut first = false;
        self.closed.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(reason);
                first = true;
            }
            first
        });
        first
    }

    async fn wait_closed(&self) -> CloseReason {
        let mut rx = self.closed.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().expect("waited for Some"),
            // The sender lives in self: it cannot be dropped while we borrow self.
            Err(_) => CloseReason::Closed,
        }
    }

    /// A request to this entity (its handler id), refused without asking once it is closed.
    async fn request<R: TypedRequest>(&self, request: R) -> Result<R::Response, RequestError> {
        if self.is_closed() {
            let body: RequestBody = request.into();
            return Err(RequestError::ChannelClosed {
                method: body.method(),
            });
        }
        self.worker.request(self.handler.clone(), request).await
    }

    /// The user's `close()`: marks closed (first reason wins) and tells the worker, once, and
    /// only while the worker lives.
    async fn close_by_user<R: TypedRequest<Response = ()>>(
        &self,
        request: R,
    ) -> Result<(), RequestError> {
        if !self.close(CloseReason::Closed) || !self.worker.is_alive() {
            return Ok(());
        }
        self.worker.request(self.handler.clone(), request).await
    }

    /// Drains this entity's notifications: `on_event` updates the handle's state and says
    /// whether the event closes the entity; then the event goes to the `events()` subscribers.
    /// Closes the entity when `parent` closes, a closing event arrives or the channel ends.
    /// Ends (dropping `notes`, which unregisters the handler id) when the entity is closed.
    fn watch<F, E>(self: &Arc<Self>, mut notes: Notifications, parent: F, mut on_event: E)
    where
        F: Future<Output = CloseReason> + Send + 'static,
        E: FnMut(&MediaEvent) -> Option<CloseReason> + Send + 'static,
    {
        let life = self.clone();
        tokio::spawn(async move {
            let mut own = life.closed.subscribe();
            tokio::pin!(parent);
            loop {
                tokio::select! {
                    n = notes.recv() => match n {
                        Some(n) => {
                            if let Event::Media(e) = n.event {
                                let reason = on_event(&e);
                                if let Some(r) = reason {
                                    // Close first: a subscriber woken by the event sees it closed.
                                    life.close(r);
                                    let _ = life.events.send(e);
                                    return;
                                }
                                let _ = life.events.send(e);
                            }
                        }
                        None => {
                            life.close(CloseReason::WorkerDied(life.worker.wait_exit().await));
                            return;
                        }
                    },
                    r = &mut parent => {
                        life.close(r);
                        return;
                    }
                    _ = async { let _ = own.wait_for(Option::is_some).await; } => return,
                }
            }
        });
    }
}

async fn router_gone(router: Router) -> CloseReason {
    match router.closed().await {
        RouterClosed::Closed => CloseReason::ParentClosed,
        RouterClosed::WorkerDied(e) => CloseReason::WorkerDied(e),
    }
}

fn parent_reason(r: CloseReason) -> CloseReason {
    match r {
        CloseReason::WorkerDied(e) => CloseReason::WorkerDied(e),
        _ => CloseReason::ParentClosed,
    }
}

#[cfg(test)]
pub(crate) mod scripted;
#[cfg(test)]
mod tests;
