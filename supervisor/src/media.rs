//! Typed async handles for the media plane, as mediasoup's Rust/Node layer offers them:
//! [`Transport`] (WebRtcTransport / PlainTransport), [`Producer`], [`Consumer`], [`WebRtcServer`].
//!
//! Every handle is cheap to clone. Each watches its parent and its own worker notifications, so
//! closing cascades (router → transports → producers/consumers; producer → its consumers) and a
//! worker death closes everything that lived on it. `closed()` says why an entity went away;
//! `events()` streams its notifications (ICE/DTLS state, scores, producer pause/resume…).
//!
//! Each entity registers its handler id on the worker channel before the request that creates
//! it, and one task per entity drains that lossless queue (see [`crate::channel::Notifications`]):
//! it updates the handle's state and its close flag *first*, then fans the event out to the
//! `events()` subscribers. That fan-out is a bounded broadcast: a subscriber that lags may miss
//! events such as scores, but never a close, because closing is the `closed()` watch, set by the
//! entity's own task from every close event.

use std::sync::{Arc, Mutex};

use ferrosfu_fbs::{
    ConnectParams, ConsumeOptions, ConsumerDump, ConsumerId, ConsumerScore, DtlsParameters, Event,
    HandlerId, IceParameters, MediaEvent, MediaKind, Method, PlainTransportDump,
    PlainTransportOptions, ProduceOptions, ProducerDump, ProducerId, RequestBody, ResponseBody,
    RtpStreamStats, SrtpParameters, TransportId, TransportStats, WebRtcServerDump, WebRtcServerId,
    WebRtcServerOptions, WebRtcTransportDump, WebRtcTransportOptions,
};
use tokio::sync::{broadcast, watch};

use crate::channel::{Notifications, RequestError};
use crate::worker::{Router, RouterClosed, Worker, WorkerExit};

/// Why an entity is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Its own `close()` was called.
    Closed,
    /// Its router (for transports) or transport (for producers/consumers) closed.
    ParentClosed,
    /// The consumer's producer closed.
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

    async fn request(&self, body: RequestBody) -> Result<ResponseBody, RequestError> {
        if self.is_closed() {
            return Err(RequestError::ChannelClosed {
                method: body.method(),
            });
        }
        self.worker.request(self.handler.clone(), body).await
    }

    /// The user's `close()`: marks closed (first reason wins) and tells the worker, once, and
    /// only while the worker lives.
    async fn close_by_user(&self, body: RequestBody) -> Result<(), RequestError> {
        if !self.close(CloseReason::Closed) || !self.worker.is_alive() {
            return Ok(());
        }
        self.worker
            .request(self.handler.clone(), body)
            .await
            .map(drop)
    }

    /// A `*.get_stats` request answered with RTP stream stats.
    async fn stream_stats(&self, body: RequestBody) -> Result<Vec<RtpStreamStats>, RequestError> {
        let method = body.method();
        match self.request(body).await? {
            ResponseBody::RtpStreamStats(s) => Ok(s),
            _ => Err(unexpected(method)),
        }
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

fn unexpected(method: Method) -> RequestError {
    RequestError::UnexpectedBody { method }
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

// ---------------------------------------------------------------------------------------------

/// A WebRtcServer: one UDP/TCP port set shared by many WebRtcTransports of a worker.
#[derive(Clone, Debug)]
pub struct WebRtcServer {
    id: WebRtcServerId,
    life: Arc<Life>,
    dump: Arc<WebRtcServerDump>,
}

impl WebRtcServer {
    pub async fn create(
        worker: &Worker,
        options: WebRtcServerOptions,
    ) -> Result<Self, RequestError> {
        let id = options.web_rtc_server_id.clone();
        let (life, notes) = Life::new(
            (&id).into(),
            worker.clone(),
            Method::WorkerCreateWebRtcServer,
        )?;
        let dump = match worker
            .request(
                HandlerId::worker(),
                RequestBody::WorkerCreateWebRtcServer(options),
            )
            .await?
        {
            ResponseBody::WebRtcServerDump(d) => d,
            _ => return Err(unexpected(Method::WorkerCreateWebRtcServer)),
        };
        let w = worker.clone();
        life.watch(
            notes,
            async move { CloseReason::WorkerDied(w.died().await) },
            |_| None,
        );
        Ok(Self {
            id,
            life,
            dump: Arc::new(dump),
        })
    }

    pub fn id(&self) -> &WebRtcServerId {
        &self.id
    }

    /// The bound listen infos (actual ports).
    pub fn listen_infos(&self) -> &[ferrosfu_fbs::ListenInfo] {
        &self.dump.listen_infos
    }

    pub async fn dump(&self) -> Result<WebRtcServerDump, RequestError> {
        match self.life.request(RequestBody::WebRtcServerDump).await? {
            ResponseBody::WebRtcServerDump(d) => Ok(d),
            _ => Err(unexpected(Method::WebRtcServerDump)),
        }
    }

    pub async fn close(&self) -> Result<(), RequestError> {
        if !self.life.close(CloseReason::Closed) || !self.life.worker.is_alive() {
            return Ok(());
        }
        self.life
            .worker
            .request(self.life.handler.clone(), RequestBody::WebRtcServerClose)
            .await
            .map(drop)
    }
}

// ---------------------------------------------------------------------------------------------

/// What kind of transport, with what its creation returned.
#[derive(Clone, Debug)]
pub enum TransportKind {
    WebRtc(Box<WebRtcTransportDump>),
    Plain(Box<PlainTransportDump>),
}

/// A WebRtcTransport or PlainTransport. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Transport {
    inner: Arc<TransportInner>,
}

#[derive(Debug)]
struct TransportInner {
    id: TransportId,
    router: Router,
    life: Arc<Life>,
    kind: Mutex<TransportKind>,
}

fn transport_closing(e: &MediaEvent) -> Option<CloseReason> {
    let _ = e;
    None
}

impl Transport {
    /// `router.create_webrtc_transport`.
    pub async fn create_webrtc(
        router: &Router,
        options: WebRtcTransportOptions,
    ) -> Result<Self, RequestError> {
        let id = options.transport_id.clone();
        let registered = Life::new(
            (&id).into(),
            router.worker().clone(),
            Method::RouterCreateWebRtcTransport,
        )?;
        let dump = match router
            .worker()
            .request(
                router.id().into(),
                RequestBody::RouterCreateWebRtcTransport(options),
            )
            .await?
        {
            ResponseBody::WebRtcTransportDump(d) => d,
            _ => return Err(unexpected(Method::RouterCreateWebRtcTransport)),
        };
        Ok(Self::new(
            router,
            id,
            registered,
            TransportKind::WebRtc(Box::new(dump)),
        ))
    }

    /// `router.create_plain_transport`.
    pub async fn create_plain(
        router: &Router,
        options: PlainTransportOptions,
    ) -> Result<Self, RequestError> {
        let id = options.transport_id.clone();
        let registered = Life::new(
            (&id).into(),
            router.worker().clone(),
            Method::RouterCreatePlainTransport,
        )?;
        let dump = match router
            .worker()
            .request(
                router.id().into(),
                RequestBody::RouterCreatePlainTransport(options),
            )
            .await?
        {
            ResponseBody::PlainTransportDump(d) => d,
            _ => return Err(unexpected(Method::RouterCreatePlainTransport)),
        };
        Ok(Self::new(
            router,
            id,
            registered,
            TransportKind::Plain(Box::new(dump)),
        ))
    }

    fn new(
        router: &Router,
        id: TransportId,
        (life, notes): (Arc<Life>, Notifications),
        kind: TransportKind,
    ) -> Self {
        life.watch(notes, router_gone(router.clone()), transport_closing);
        Self {
            inner: Arc::new(TransportInner {
                id,
                router: router.clone(),
                life,
                kind: Mutex::new(kind),
            }),
        }
    }

    pub fn id(&self) -> &TransportId {
        &self.inner.id
    }

    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// What creation (or the latest connect/dump) returned.
    pub fn kind(&self) -> TransportKind {
        self.inner
            .kind
            .lock()
            .expect("never held across a panic")
            .clone()
    }

    /// For a WebRtcTransport: ICE parameters, candidates and DTLS parameters to signal.
    pub fn webrtc(&self) -> Option<WebRtcTransportDump> {
        match self.kind() {
            TransportKind::WebRtc(d) => Some(*d),
            TransportKind::Plain(_) => None,
        }
    }

    pub fn plain(&self) -> Option<PlainTransportDump> {
        match self.kind() {
            TransportKind::Plain(d) => Some(*d),
            TransportKind::WebRtc(_) => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.inner.life.is_closed()
    }

    pub async fn closed(&self) -> CloseReason {
        self.inner.life.wait_closed().await
    }

    /// ICE state, selected tuple, DTLS state, comedia tuple notifications.
    pub fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.inner.life.events.subscribe()
    }

    fn store(&self, body: ResponseBody) {
        let mut k = self.inner.kind.lock().expect("never held across a panic");
        match body {
            ResponseBody::WebRtcTransportDump(d) => *k = TransportKind::WebRtc(Box::new(d)),
            ResponseBody::PlainTransportDump(d) => *k = TransportKind::Plain(Box::new(d)),
            _ => {}
        }
    }

    /// WebRtcTransport: the remote DTLS parameters.
    pub async fn connect_webrtc(
        &self,
        dtls_parameters: DtlsParameters,
    ) -> Result<(), RequestError> {
        let r = self
            .inner
            .life
            .request(RequestBody::TransportConnect(ConnectParams::WebRtc {
                dtls_parameters,
            }))
            .await?;
        self.store(r);
        Ok(())
    }

    /// PlainTransport: the remote address (unless comedia) and SRTP keys (when enabled).
    pub async fn connect_plain(
        &self,
        ip: Option<String>,
        port: Option<u16>,
        rtcp_port: Option<u16>,
        srtp_parameters: Option<SrtpParameters>,
    ) -> Result<PlainTransportDump, RequestError> {
        let r = self
            .inner
            .life
            .request(RequestBody::TransportConnect(ConnectParams::Plain {
                ip,
                port,
                rtcp_port,
                srtp_parameters,
            }))
            .await?;
        self.store(r.clone());
        match r {
            ResponseBody::PlainTransportDump(d) => Ok(d),
            _ => Err(unexpected(Method::TransportConnect)),
        }
    }

    pub async fn restart_ice(&self) -> Result<IceParameters, RequestError> {
        match self
            .inner
            .life
            .request(RequestBody::TransportRestartIce)
            .await?
        {
            ResponseBody::IceParameters(p) => {
                if let TransportKind::WebRtc(d) =
                    &mut *self.inner.kind.lock().expect("never held across a panic")
                {
                    d.ice_parameters = p.clone();
                }
                Ok(p)
            }
            _ => Err(unexpected(Method::TransportRestartIce)),
        }
    }

    pub async fn set_max_incoming_bitrate(&self, bitrate: u32) -> Result<(), RequestError> {
        self.inner
            .life
            .request(RequestBody::TransportSetMaxIncomingBitrate(bitrate))
            .await
            .map(drop)
    }

    pub async fn get_stats(&self) -> Result<TransportStats, RequestError> {
        match self
            .inner
            .life
            .request(RequestBody::TransportGetStats)
            .await?
        {
            ResponseBody::TransportStats(s) => Ok(s),
            _ => Err(unexpected(Method::TransportGetStats)),
        }
    }

    pub async fn dump(&self) -> Result<TransportKind, RequestError> {
        let r = self.inner.life.request(RequestBody::TransportDump).await?;
        self.store(r);
        Ok(self.kind())
    }

    /// Closes the transport, its producers and consumers. Closing twice is a no-op.
    pub async fn close(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .close_by_user(RequestBody::TransportClose)
            .await
    }

    /// `transport.produce` with fully resolved parameters (see `ortc`).
    pub async fn produce(&self, options: ProduceOptions) -> Result<Producer, RequestError> {
        let id = options.producer_id.clone();
        let kind = options.kind;
        let paused = options.paused;
        let (life, notes) = Life::new(
            (&id).into(),
            self.inner.life.worker.clone(),
            Method::TransportProduce,
        )?;
        self.inner
            .life
            .request(RequestBody::TransportProduce(options))
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

    /// `transport.consume` with fully resolved parameters (see `ortc`).
    pub async fn consume(&self, options: ConsumeOptions) -> Result<Consumer, RequestError> {
        let id = options.consumer_id.clone();
        let producer_id = options.producer_id.clone();
        let kind = options.kind;
        let (life, notes) = Life::new(
            (&id).into(),
            self.inner.life.worker.clone(),
            Method::TransportConsume,
        )?;
        let (paused, producer_paused, score) = match self
            .inner
            .life
            .request(RequestBody::TransportConsume(options))
            .await?
        {
            ResponseBody::Consumed {
                paused,
                producer_paused,
                score,
            } => (paused, producer_paused, score),
            _ => return Err(unexpected(Method::TransportConsume)),
        };
        let state = Arc::new(Mutex::new(ConsumerState {
            paused,
            producer_paused,
            score,
        }));
        let parent = self.clone();
        let st = state.clone();
        life.watch(
            notes,
            async move { parent_reason(parent.closed().await) },
            // Paused/score are kept current here, from the lossless queue, not from a
            // subscription to the fan-out that could lag.
            move |e| {
                let mut s = st.lock().expect("never held across a panic");
                match e {
                    MediaEvent::ConsumerProducerPause => s.producer_paused = true,
                    MediaEvent::ConsumerProducerResume => s.producer_paused = false,
                    MediaEvent::ConsumerScore(sc) => s.score = *sc,
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

// ---------------------------------------------------------------------------------------------

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

    pub fn is_closed(&self) -> bool {
        self.inner.life.is_closed()
    }

    pub async fn closed(&self) -> CloseReason {
        self.inner.life.wait_closed().await
    }

    /// Score notifications.
    pub fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.inner.life.events.subscribe()
    }

    pub async fn pause(&self) -> Result<(), RequestError> {
        self.inner.life.request(RequestBody::ProducerPause).await?;
        self.inner.paused.send_replace(true);
        Ok(())
    }

    pub async fn resume(&self) -> Result<(), RequestError> {
        self.inner.life.request(RequestBody::ProducerResume).await?;
        self.inner.paused.send_replace(false);
        Ok(())
    }

    pub async fn get_stats(&self) -> Result<Vec<RtpStreamStats>, RequestError> {
        self.inner
            .life
            .stream_stats(RequestBody::ProducerGetStats)
            .await
    }

    pub async fn dump(&self) -> Result<ProducerDump, RequestError> {
        match self.inner.life.request(RequestBody::ProducerDump).await? {
            ResponseBody::ProducerDump(d) => Ok(d),
            _ => Err(unexpected(Method::ProducerDump)),
        }
    }

    /// Closes the producer; its consumers close with [`CloseReason::ProducerClosed`].
    pub async fn close(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .close_by_user(RequestBody::ProducerClose)
            .await
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Consumer {
    inner: Arc<ConsumerInner>,
}

#[derive(Debug)]
struct ConsumerState {
    paused: bool,
    producer_paused: bool,
    score: ConsumerScore,
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

    pub fn score(&self) -> ConsumerScore {
        self.state(|s| s.score)
    }

    pub fn is_closed(&self) -> bool {
        self.inner.life.is_closed()
    }

    pub async fn closed(&self) -> CloseReason {
        self.inner.life.wait_closed().await
    }

    /// Score, producer pause/resume and close notifications.
    pub fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.inner.life.events.subscribe()
    }

    pub async fn pause(&self) -> Result<(), RequestError> {
        self.inner.life.request(RequestBody::ConsumerPause).await?;
        self.state(|s| s.paused = true);
        Ok(())
    }

    /// Resumes; the worker asks the producer for a keyframe.
    pub async fn resume(&self) -> Result<(), RequestError> {
        self.inner.life.request(RequestBody::ConsumerResume).await?;
        self.state(|s| s.paused = false);
        Ok(())
    }

    pub async fn request_key_frame(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .request(RequestBody::ConsumerRequestKeyFrame)
            .await
            .map(drop)
    }

    pub async fn get_stats(&self) -> Result<Vec<RtpStreamStats>, RequestError> {
        self.inner
            .life
            .stream_stats(RequestBody::ConsumerGetStats)
            .await
    }

    pub async fn dump(&self) -> Result<ConsumerDump, RequestError> {
        match self.inner.life.request(RequestBody::ConsumerDump).await? {
            ResponseBody::ConsumerDump(d) => Ok(d),
            _ => Err(unexpected(Method::ConsumerDump)),
        }
    }

    pub async fn close(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .close_by_user(RequestBody::ConsumerClose)
            .await
    }
}

#[cfg(test)]
mod tests;
