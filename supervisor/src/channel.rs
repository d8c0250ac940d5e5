//! The supervisor's end of a worker channel: request/response correlation with per-request
//! timeouts, notification dispatch by handler id (see [`dispatch`]), and worker logs re-emitted
//! through `tracing`.
//!
//! One reader task decodes frames from the worker; one writer task batches outgoing frames into
//! as few writes as possible. Callers never touch the fds.

mod dispatch;

pub use dispatch::{AlreadyRegistered, Notifications};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrosfu_fbs::{
    Encoder, ErrorKind, FrameBuffer, FrameEvent, FromResponse, HandlerId, LogLevel, LogRecord,
    Message, Method, Notification, Request, RequestBody, RequestFailure, RequestId, Response,
    TypedRequest, decode_message,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::Instrument;

use dispatch::{Dispatcher, Routed};

/// Why a request did not get an accepted response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The worker answered with a typed error.
    #[error("{method} rejected ({}): {}", failure.kind, failure.reason)]
    Rejected {
        method: Method,
        failure: RequestFailure,
    },
    #[error("{method} timed out after {after:?}")]
    Timeout { method: Method, after: Duration },
    /// The channel closed (the worker exited or died) before the response arrived.
    #[error("{method}: channel closed")]
    ChannelClosed { method: Method },
    #[error("{method}: {reason}")]
    Encode { method: Method, reason: String },
    /// The response body (`body`, its kind) was not the one this method returns.
    #[error("{method}: unexpected response body {body}")]
    UnexpectedBody { method: Method, body: &'static str },
}

impl RequestError {
    /// Whether the caller sent something wrong (as opposed to the operation failing).
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self, RequestError::Rejected { failure, .. } if failure.kind == ErrorKind::InvalidArgument)
    }
}

/// Counters a channel keeps; read by `/metrics`.
#[derive(Debug, Default)]
pub struct ChannelStats {
    pub requests: AtomicU64,
    pub timeouts: AtomicU64,
    /// Frames from the worker that could not be decoded, plus errors the worker reported about
    /// frames it received.
    pub errors: AtomicU64,
    /// Notifications for a handler id no live entity registered (it closed, or was never made
    /// through this supervisor); dropped.
    pub unrouted: AtomicU64,
}

type Pending = Mutex<HashMap<u32, oneshot::Sender<Response>>>;

/// Handle to one worker channel. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Channel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    next_id: AtomicU32,
    pending: Pending,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    notifications: Arc<Dispatcher>,
    closed: AtomicBool,
    closed_watch: watch::Sender<bool>,
    stats: ChannelStats,
}

thread_local! {
    static ENCODER: std::cell::RefCell<Encoder> = std::cell::RefCell::new(Encoder::new());
}

impl Channel {
    /// Starts the reader and writer tasks over `reader` (worker -> supervisor) and `writer`
    /// (supervisor -> worker). Returns the channel and a receiver of worker-level notifications
    /// subscribed before the first frame is read, so none (such as `worker.running`) is missed.
    pub fn start<R, W>(
        reader: R,
        writer: W,
        span: tracing::Span,
    ) -> (Channel, broadcast::Receiver<Notification>)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let (dispatcher, first_rx) = Dispatcher::new(64);
        let inner = Arc::new(Inner {
            next_id: AtomicU32::new(1),
            pending: Mutex::new(HashMap::new()),
            tx,
            notifications: Arc::new(dispatcher),
            closed: AtomicBool::new(false),
            closed_watch: watch::channel(false).0,
            stats: ChannelStats::default(),
        });
        tokio::spawn(write_loop(writer, rx).instrument(span.clone()));
        tokio::spawn(read_loop(reader, inner.clone()).instrument(span));
        (Channel { inner }, first_rx)
    }

    /// Sends a request and waits for its response, at most `timeout`: the typed response of
    /// `R` (`requests::*`), or the whole [`ferrosfu_fbs::ResponseBody`] for an untyped
    /// [`RequestBody`]. An accepted response of another kind than `R`'s is
    /// [`RequestError::UnexpectedBody`].
    pub async fn request<R: TypedRequest>(
        &self,
        handler_id: HandlerId,
        request: R,
        timeout: Duration,
    ) -> Result<R::Response, RequestError> {
        let body: RequestBody = request.into();
        let method = body.method();
        if self.is_closed() {
            return Err(RequestError::ChannelClosed { method });
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let msg = Message::Request(Request {
            id: RequestId(id),
            handler_id,
            body,
        });
        let frame =
            ENCODER
                .with(|e| e.borrow_mut().frame(&msg))
                .map_err(|e| RequestError::Encode {
                    method,
                    reason: e.to_string(),
                })?;

        let (done_tx, done_rx) = oneshot::channel();
        self.lock_pending().insert(id, done_tx);
        // Re-check after registering: the reader may have failed all pending requests between
        // the first check and the insert.
        if self.is_closed() || self.inner.tx.send(frame).is_err() {
            self.lock_pending().remove(&id);
            return Err(RequestError::ChannelClosed { method });
        }
        self.inner.stats.requests.fetch_add(1, Ordering::Relaxed);

        match tokio::time::timeout(timeout, done_rx).await {
            Ok(Ok(resp)) => {
                let body = resp
                    .result
                    .map_err(|failure| RequestError::Rejected { method, failure })?;
                R::Response::from_response(body)
                    .map_err(|e| RequestError::UnexpectedBody { method, body: e.0 })
            }
            Ok(Err(_)) => Err(RequestError::ChannelClosed { method }),
            Err(_) => {
                self.lock_pending().remove(&id);
                self.inner.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(RequestError::Timeout {
                    method,
                    after: timeout,
                })
            }
        }
    }

    /// Writes raw bytes to the worker, bypassing encoding. For tests of the worker's resilience.
    #[doc(hidden)]
    pub fn send_raw(&self, bytes: Vec<u8>) -> bool {
        self.inner.tx.send(bytes).is_ok()
    }

    /// Worker-level notifications (handler id `""`): `worker.running`, channel errors.
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.inner.notifications.subscribe_worker()
    }

    /// Registers an entity's handler id: every notification the worker sends for it from now on
    /// is queued, in order and without loss, on the returned [`Notifications`] until it is
    /// dropped. Register *before* sending the request that creates the entity.
    pub fn register(&self, handler: HandlerId) -> Result<Notifications, AlreadyRegistered> {
        self.inner.notifications.register(handler)
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Resolves once the worker's end of the channel is closed (EOF or error).
    pub async fn wait_closed(&self) {
        let mut rx = self.inner.closed_watch.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    pub fn stats(&self) -> &ChannelStats {
        &self.inner.stats
    }

    /// Requests sent and not yet answered.
    pub fn pending(&self) -> usize {
        self.lock_pending().len()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u32, oneshot::Sender<Response>>> {
        lock(&self.inner.pending)
    }
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<u32, oneshot::Sender<Response>>> {
    // A panic while holding this lock cannot leave the map inconsistent (single insert/remove).
    p.lock().unwrap_or_else(|e| e.into_inner())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        // Coalesce whatever else is queued into one write.
        while batch.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(e) = writer.write_all(&batch).await {
            tracing::debug!(target: "channel", "write to worker failed: {e}");
            return;
        }
    }
    // All senders gone: close our end so the worker sees EOF.
    let _ = writer.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(mut reader: R, inner: Arc<Inner>) {
    let mut frames = FrameBuffer::new();
    loop {
        match reader.read_buf(frames.read_target()).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: "channel", "read from worker failed: {e}");
                break;
            }
        }
        while let Some(ev) = frames.next_event() {
            match ev {
                FrameEvent::Frame(payload) => match decode_message(&payload) {
                    Ok(msg) => dispatch(&inner, msg),
                    Err(e) => {
                        inner.stats.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(target: "channel", "undecodable frame from worker: {e}");
                    }
                },
                FrameEvent::Oversized {
                    declared,
                    discarded,
                } => {
                    inner.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        target: "channel",
                        "oversized frame ({declared} bytes) from worker; discarded {discarded} bytes"
                    );
                }
            }
        }
    }
    inner.closed.store(true, Ordering::Release);
    // Fail every pending request: dropping the senders wakes the callers with ChannelClosed.
    lock(&inner.pending).clear();
    // End every entity's queue after what it already holds.
    inner.notifications.close();
    inner.closed_watch.send_replace(true);
}

fn dispatch(inner: &Inner, msg: Message) {
    match msg {
        Message::Response(resp) => {
            let waiter = lock(&inner.pending).remove(&resp.id.0);
            match waiter {
                Some(w) => {
                    let _ = w.send(resp);
                }
                None => tracing::debug!(
                    target: "channel",
                    id = resp.id.0,
                    "response for an unknown or timed-out request"
                ),
            }
        }
        Message::Notification(n) => {
            if let ferrosfu_fbs::Event::WorkerChannelError { reason } = &n.event {
                inner.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(target: "channel", "worker reports a channel error: {reason}");
            }
            if let Routed::Unrouted(handler) = inner.notifications.dispatch(n) {
                inner.stats.unrouted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    target: "channel",
                    handler = %handler,
                    "notification for an unregistered handler; dropped"
                );
            }
        }
        Message::Log(record) => emit_log(&record),
        Message::Request(r) => {
            inner.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "channel", id = r.id.0, "worker sent a request; ignored");
        }
    }
}

/// Re-emits a worker log line under target `worker`, with the worker's own target as a field;
/// the enclosing span carries the worker's core and pid.
fn emit_log(r: &LogRecord) {
    let (t, text) = (r.target.as_str(), r.text.as_str());
    match r.level {
        LogLevel::Trace => tracing::trace!(target: "worker", target = t, "{text}"),
        LogLevel::Debug => tracing::debug!(target: "worker", target = t, "{text}"),
        LogLevel::Info => tracing::info!(target: "worker", target = t, "{text}"),
        LogLevel::Warn => tracing::warn!(target: "worker", target = t, "{text}"),
        LogLevel::Error => tracing::error!(target: "worker", target = t, "{text}"),
    }
}

#[cfg(test)]
mod tests {
    //! Correlation logic against a scripted peer on an in-memory pipe (the real worker is covered
    //! by the worker tests and the integration tests).
    use super::*;
    use ferrosfu_fbs::{ResponseBody, RouterId, WorkerDump, requests};
    use tokio::io::DuplexStream;

    struct Peer {
        rx: FrameBuffer,
        io: DuplexStream,
        enc: Encoder,
    }

    impl Peer {
        async fn next_request(&mut self) -> Request {
            loop {
                if let Some(FrameEvent::Frame(p)) = self.rx.next_event() {
                    match decode_message(&p).unwrap() {
                        Message::Request(r) => return r,
                        m => panic!("{m:?}"),
                    }
                }
                let n = self.io.read_buf(self.rx.read_target()).await.unwrap();
                assert!(n > 0, "eof");
            }
        }
        async fn send(&mut self, m: Message) {
            let f = self.enc.frame(&m).unwrap();
            self.io.write_all(&f).await.unwrap();
        }
    }

    fn pair() -> (Channel, broadcast::Receiver<Notification>, Peer) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(a);
        let (ch, notes) = Channel::start(r, w, tracing::Span::none());
        (
            ch,
            notes,
            Peer {
                rx: FrameBuffer::new(),
                io: b,
                enc: Encoder::new(),
            },
        )
    }

    fn dump(core: u32) -> ResponseBody {
        ResponseBody::WorkerDump(WorkerDump {
            pid: 1,
            core,
            router_ids: vec![],
        })
    }

    const T: Duration = Duration::from_secs(5);

    /// Issues a request on a task of its own, so the test can play the worker meanwhile.
    fn spawn_request(
        ch: &Channel,
        handler: &str,
        body: RequestBody,
        timeout: Duration,
    ) -> tokio::task::JoinHandle<Result<ResponseBody, RequestError>> {
        let (ch, handler) = (ch.clone(), HandlerId::new(handler));
        tokio::spawn(async move { ch.request(handler, body, timeout).await })
    }

    #[tokio::test]
    async fn responses_answered_out_of_order_reach_their_callers() {
        let (ch, _n, mut peer) = pair();
        let calls: Vec<_> = (0..3)
            .map(|_| spawn_request(&ch, "", RequestBody::WorkerDump, T))
            .collect();
        let mut reqs = Vec::new();
        for _ in 0..3 {
            reqs.push(peer.next_request().await);
        }
        // Answer in reverse, each with the request id as "core" so callers can tell them apart.
        for r in reqs.iter().rev() {
            peer.send(Message::Response(Response {
                id: r.id,
                result: Ok(dump(r.id.0)),
            }))
            .await;
        }
        let mut got = Vec::new();
        for c in calls {
            match c.await.unwrap().unwrap() {
                ResponseBody::WorkerDump(d) => got.push(d.core),
                b => panic!("{b:?}"),
            }
        }
        got.sort();
        let mut want: Vec<u32> = reqs.iter().map(|r| r.id.0).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(ch.pending(), 0);
    }

    #[tokio::test]
    async fn typed_errors_are_returned() {
        let (ch, _n, mut peer) = pair();
        let call = spawn_request(&ch, "r", RequestBody::RouterDump, T);
        let r = peer.next_request().await;
        assert_eq!(r.handler_id, HandlerId::new("r"));
        peer.send(Message::Response(Response {
            id: r.id,
            result: Err(RequestFailure::invalid_argument("no such router")),
        }))
        .await;
        let err = call.await.unwrap().unwrap_err();
        assert!(err.is_invalid_argument(), "{err}");
    }

    #[tokio::test]
    async fn typed_requests_get_their_typed_response_or_a_typed_error() {
        let (ch, _n, mut peer) = pair();
        let c = ch.clone();
        let call = tokio::spawn(async move {
            c.request(HandlerId::worker(), requests::WorkerDump, T)
                .await
        });
        let r = peer.next_request().await;
        assert_eq!(r.body, RequestBody::WorkerDump);
        peer.send(Message::Response(Response {
            id: r.id,
            result: Ok(dump(4)),
        }))
        .await;
        assert_eq!(call.await.unwrap().unwrap().core, 4);

        // A body of another kind is a typed error, not a panic.
        let c = ch.clone();
        let call = tokio::spawn(async move {
            c.request(HandlerId::new("r"), requests::RouterClose, T)
                .await
        });
        let r = peer.next_request().await;
        peer.send(Message::Response(Response {
            id: r.id,
            result: Ok(dump(5)),
        }))
        .await;
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(
            err,
            RequestError::UnexpectedBody {
                method: Method::RouterClose,
                body: "WorkerDump"
            }
        );
        assert_eq!(
            err.to_string(),
            "router.close: unexpected response body WorkerDump"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_without_answer_times_out_and_a_late_answer_is_ignored() {
        let (ch, _n, mut peer) = pair();
        let call = spawn_request(&ch, "", RequestBody::WorkerDump, Duration::from_millis(50));
        let r = peer.next_request().await;
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(
            err,
            RequestError::Timeout {
                method: Method::WorkerDump,
                after: Duration::from_millis(50)
            }
        );
        assert_eq!(ch.pending(), 0);
        assert_eq!(ch.stats().timeouts.load(Ordering::Relaxed), 1);
        // The late response is dropped, and the channel still serves the next request.
        peer.send(Message::Response(Response {
            id: r.id,
            result: Ok(ResponseBody::None),
        }))
        .await;
        let call = spawn_request(&ch, "", RequestBody::WorkerDump, T);
        let r2 = peer.next_request().await;
        assert_ne!(r2.id, r.id);
        peer.send(Message::Response(Response {
            id: r2.id,
            result: Ok(dump(9)),
        }))
        .await;
        assert_eq!(call.await.unwrap().unwrap(), dump(9));
    }

    #[tokio::test]
    async fn pending_requests_fail_when_the_worker_goes_away() {
        let (ch, _n, mut peer) = pair();
        let body = RequestBody::WorkerCreateRouter {
            router_id: RouterId::new("x"),
        };
        let call = spawn_request(&ch, "", body, T);
        peer.next_request().await;
        drop(peer);
        assert_eq!(
            call.await.unwrap().unwrap_err(),
            RequestError::ChannelClosed {
                method: Method::WorkerCreateRouter
            }
        );
        ch.wait_closed().await;
        assert!(matches!(
            ch.request(HandlerId::worker(), RequestBody::WorkerDump, T)
                .await,
            Err(RequestError::ChannelClosed { .. })
        ));
    }

    /// The peer writes `msgs` as one burst, then a worker-level marker; returns once the reader
    /// dispatched all of them (it handles frames in order).
    async fn burst(
        peer: &mut Peer,
        notes: &mut broadcast::Receiver<Notification>,
        msgs: &[Message],
    ) {
        let mut bytes = Vec::new();
        for m in msgs {
            bytes.extend_from_slice(&peer.enc.frame(m).unwrap());
        }
        bytes.extend_from_slice(&peer.enc.frame(&running_marker()).unwrap());
        let writer = async { peer.io.write_all(&bytes).await.unwrap() };
        let marker = async {
            loop {
                let n = notes
                    .recv()
                    .await
                    .expect("no lag on the worker ring: 1 event");
                if matches!(n.event, ferrosfu_fbs::Event::WorkerRunning(_)) {
                    return;
                }
            }
        };
        tokio::join!(writer, marker);
    }

    fn running_marker() -> Message {
        Message::Notification(Notification {
            handler_id: HandlerId::worker(),
            event: ferrosfu_fbs::Event::WorkerRunning(ferrosfu_fbs::WorkerRunning {
                pid: 1,
                core: 0,
                protocol_version: 0,
                version: String::new(),
            }),
        })
    }

    fn media(handler: &str, e: ferrosfu_fbs::MediaEvent) -> Message {
        Message::Notification(Notification {
            handler_id: HandlerId::new(handler),
            event: ferrosfu_fbs::Event::Media(e),
        })
    }

    /// Issue 11: 10,000 notifications in one burst — scores for 5 consumers and 5 producers
    /// (hundreds each, more than a bounded ring would hold), each entity's close inside the
    /// burst, plus notifications for handlers nobody registered — read by slow entity tasks
    /// that start only after the whole burst was dispatched. Every score and every close
    /// arrives, in order, and the unknown handlers are counted, not delivered. (With 256-slot
    /// queues that drop when full, this test fails.)
    #[tokio::test]
    async fn a_burst_of_ten_thousand_notifications_loses_no_close() {
        use ferrosfu_fbs::{ConsumerScore, MediaEvent};
        const ENTITIES: usize = 10;
        const TOTAL: usize = 10_000;
        let (ch, mut notes, mut peer) = pair();
        let name = |i: usize| {
            if i % 2 == 0 {
                format!("consumer-{i}")
            } else {
                format!("producer-{i}")
            }
        };
        let mut queues: Vec<_> = (0..ENTITIES)
            .map(|i| ch.register(HandlerId::new(name(i))).unwrap())
            .collect();

        let mut msgs = Vec::with_capacity(TOTAL);
        let mut scores = [0usize; ENTITIES];
        let mut unknown = 0;
        // Entity i closes at position close_at(i), spread over the burst; after its close the
        // worker says nothing more about it.
        let close_at = |i: usize| TOTAL / 2 + i * (TOTAL / 2 - 1) / ENTITIES;
        let mut closed = [false; ENTITIES];
        for k in 0..TOTAL {
            let i = k % ENTITIES;
            if let Some(c) = (0..ENTITIES).find(|&c| close_at(c) == k) {
                let close = if c % 2 == 0 {
                    MediaEvent::ConsumerProducerClose
                } else {
                    MediaEvent::ProducerTransportClose
                };
                msgs.push(media(&name(c), close));
                closed[c] = true;
            } else if k % 97 == 0 || closed[i] {
                msgs.push(media("nobody", MediaEvent::ConsumerProducerPause));
                unknown += 1;
            } else {
                let score = (k % 11) as u8;
                msgs.push(media(
                    &name(i),
                    if i % 2 == 0 {
                        MediaEvent::ConsumerScore(ConsumerScore {
                            score,
                            producer_score: score,
                        })
                    } else {
                        MediaEvent::ProducerScore(vec![(1, None, score)])
                    },
                ));
                scores[i] += 1;
            }
        }
        assert_eq!(msgs.len(), TOTAL);
        assert!(closed.iter().all(|c| *c));
        burst(&mut peer, &mut notes, &msgs).await;
        assert_eq!(ch.stats().unrouted.load(Ordering::Relaxed), unknown as u64);

        // Slow readers: each sleeps after every event.
        let readers: Vec<_> = queues
            .drain(..)
            .map(|mut q| {
                tokio::spawn(async move {
                    let (mut n, mut close) = (0, None);
                    while let Some(note) = q.recv().await {
                        let ferrosfu_fbs::Event::Media(e) = note.event else {
                            panic!("{note:?}")
                        };
                        assert!(close.is_none(), "event after the close: {e:?}");
                        match e {
                            MediaEvent::ConsumerScore(_) | MediaEvent::ProducerScore(_) => n += 1,
                            e => close = Some(e),
                        }
                        tokio::time::sleep(Duration::from_micros(200)).await;
                        if close.is_some() {
                            break;
                        }
                    }
                    (n, close)
                })
            })
            .collect();
        for (i, r) in readers.into_iter().enumerate() {
            let (n, close) = r.await.unwrap();
            assert_eq!(n, scores[i], "scores of {}", name(i));
            let want = if i % 2 == 0 {
                MediaEvent::ConsumerProducerClose
            } else {
                MediaEvent::ProducerTransportClose
            };
            assert_eq!(close, Some(want), "close of {}", name(i));
        }
    }

    #[tokio::test]
    async fn registrations_route_unregister_on_drop_and_end_with_the_channel() {
        use ferrosfu_fbs::MediaEvent;
        let (ch, mut notes, mut peer) = pair();
        let mut a = ch.register(HandlerId::new("a")).unwrap();
        assert_eq!(
            ch.register(HandlerId::new("a")).unwrap_err(),
            AlreadyRegistered(HandlerId::new("a"))
        );
        let b = ch.register(HandlerId::new("b")).unwrap();
        drop(b);
        assert_eq!(ch.inner.notifications.registered(), 1);
        let msgs = [
            media("a", MediaEvent::ConsumerProducerPause),
            media("b", MediaEvent::ConsumerProducerPause),
            media("a", MediaEvent::ConsumerProducerClose),
        ];
        burst(&mut peer, &mut notes, &msgs).await;
        assert_eq!(ch.stats().unrouted.load(Ordering::Relaxed), 1);
        // The worker goes away: what was queued still arrives, then the end.
        drop(peer);
        ch.wait_closed().await;
        let got: Vec<_> = [a.recv().await, a.recv().await, a.recv().await]
            .into_iter()
            .map(|n| n.map(|n| n.event))
            .collect();
        assert_eq!(
            got,
            [
                Some(ferrosfu_fbs::Event::Media(
                    MediaEvent::ConsumerProducerPause
                )),
                Some(ferrosfu_fbs::Event::Media(
                    MediaEvent::ConsumerProducerClose
                )),
                None
            ]
        );
        // A registration after the end ends at once.
        let mut late = ch.register(HandlerId::new("late")).unwrap();
        assert!(late.recv().await.is_none());
        assert_eq!(ch.inner.notifications.registered(), 0);
    }

    #[tokio::test]
    async fn notifications_reach_subscribers_and_garbage_is_counted() {
        let (ch, mut notes, mut peer) = pair();
        peer.io
            .write_all(&[5, 0, 0, 0, 1, 2, 3, 4, 5])
            .await
            .unwrap();
        peer.send(Message::Notification(Notification {
            handler_id: HandlerId::worker(),
            event: ferrosfu_fbs::Event::WorkerChannelError { reason: "x".into() },
        }))
        .await;
        let n = notes.recv().await.unwrap();
        assert!(matches!(
            n.event,
            ferrosfu_fbs::Event::WorkerChannelError { .. }
        ));
        assert_eq!(ch.stats().errors.load(Ordering::Relaxed), 2);
    }
}
