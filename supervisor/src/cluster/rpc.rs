//! Requests between nodes over Redis pub/sub.
//!
//! A request is published on the target's channel `ferrosfu:rpc:<node>`; PUBLISH answers how
//! many subscribers got it, so a node that is not listening fails the request at once instead
//! of at the timeout. The answer comes back on the asker's `ferrosfu:reply:<node>` with the
//! request's id. Delivery is at most once (pub/sub): a request lost with a Redis outage ends in
//! [`RpcError::Timeout`], and the caller decides whether to retry.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Semaphore, oneshot};

use super::pubsub::MAX_MESSAGE;
use super::{Inner, NodeId, OP_TIMEOUT, keys, lock};

/// Requests of this node waiting for an answer, at most.
const MAX_PENDING: usize = 1024;
/// Requests from other nodes handled at once, at most; more are answered "busy".
const MAX_HANDLING: usize = 64;
/// How long a handler may take before the asker's timeout makes its answer moot.
const MAX_HANDLER_TIME: Duration = Duration::from_secs(30);

/// A request from another node, as its handler sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcRequest {
    pub id: u64,
    pub from: NodeId,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

/// An error a handler answers with (and the asker gets as [`RpcError::Remote`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteError {
    /// Machine-readable: "bad_request", "not_found", "failed", "unknown_method", "busy", ….
    pub code: String,
    pub message: String,
}

impl RemoteError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteError {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Why a request to another node (or a directory read) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The node is not in the directory (never was, or its registration expired).
    #[error("node {0} is not in the cluster")]
    UnknownNode(NodeId),
    /// The node is registered but does not listen (it died within its TTL).
    #[error("node {0} is gone")]
    NodeGone(NodeId),
    #[error("no answer in time")]
    Timeout,
    #[error("remote error {0}")]
    Remote(RemoteError),
    #[error("request too large ({0} bytes)")]
    TooLarge(usize),
    #[error("too many requests waiting for answers")]
    Busy,
    #[error("redis: {0}")]
    Redis(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    id: u64,
    from: NodeId,
    #[serde(flatten)]
    result: ReplyResult,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ReplyResult {
    Ok(Value),
    Error(RemoteError),
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, RemoteError>> + Send>>;
type Handler = Arc<dyn Fn(RpcRequest) -> HandlerFuture + Send + Sync>;

pub(super) struct RpcState {
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<ReplyResult>>>,
    handlers: RwLock<HashMap<String, Handler>>,
    handling: Arc<Semaphore>,
}

impl Default for RpcState {
    fn default() -> Self {
        RpcState {
            next_id: AtomicU64::new(1),
            pending: Mutex::default(),
            handlers: RwLock::default(),
            handling: Arc::new(Semaphore::new(MAX_HANDLING)),
        }
    }
}

impl RpcState {
    pub(super) fn register<F, Fut>(&self, method: &str, handler: F)
    where
        F: Fn(RpcRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RemoteError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        self.handlers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(method.to_owned(), handler);
    }

    fn handler(&self, method: &str) -> Option<Handler> {
        self.handlers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(method)
            .cloned()
    }
}

/// Removes the pending entry however the request ends.
struct PendingGuard<'a> {
    state: &'a RpcState,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.state.pending).remove(&self.id);
    }
}

pub(super) async fn request(
    inner: &Inner,
    node: &NodeId,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, RpcError> {
    let state = &inner.rpc;
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let req = RpcRequest {
        id,
        from: inner.settings.node_id.clone(),
        method: method.to_owned(),
        params,
    };
    let payload = serde_json::to_string(&req).expect("requests are plain JSON");
    if payload.len() > MAX_MESSAGE {
        return Err(RpcError::TooLarge(payload.len()));
    }
    let (tx, rx) = oneshot::channel();
    {
        let mut pending = lock(&state.pending);
        if pending.len() >= MAX_PENDING {
            return Err(RpcError::Busy);
        }
        pending.insert(id, tx);
    }
    let _guard = PendingGuard { state, id };
    let deadline = tokio::time::Instant::now() + timeout;
    let send = async {
        let mut conn = inner.conn();
        let (registered, receivers): (bool, i64) = redis::pipe()
            .exists(keys::node(node))
            .publish(keys::rpc_channel(node), &payload)
            .query_async(&mut conn)
            .await
            .map_err(|e| RpcError::Redis(e.to_string()))?;
        match (registered, receivers) {
            (_, n) if n > 0 => Ok(()),
            (false, _) if lock(&inner.nodes).contains_key(node) => {
                Err(RpcError::NodeGone(node.clone()))
            }
            (false, _) => Err(RpcError::UnknownNode(node.clone())),
            (true, _) => Err(RpcError::NodeGone(node.clone())),
        }
    };
    match tokio::time::timeout_at(deadline, send).await {
        Ok(r) => r?,
        Err(_) => return Err(RpcError::Timeout),
    }
    match tokio::time::timeout_at(deadline, rx).await {
        Ok(Ok(ReplyResult::Ok(v))) => Ok(v),
        Ok(Ok(ReplyResult::Error(e))) => Err(RpcError::Remote(e)),
        // The sender went away: the cluster is stopping.
        Ok(Err(_)) => Err(RpcError::Timeout),
        Err(_) => Err(RpcError::Timeout),
    }
}

/// A request arrived on this node's channel: run its handler and publish the answer.
pub(super) fn on_request(inner: &Arc<Inner>, payload: &[u8]) {
    let Ok(req) = serde_json::from_slice::<RpcRequest>(payload) else {
        inner.stats.count_bad_message();
        return;
    };
    let handler = inner.rpc.handler(&req.method);
    let permit = inner.rpc.handling.clone().try_acquire_owned();
    let inner = inner.clone();
    tokio::spawn(async move {
        let result = match (handler, permit) {
            (None, _) => Err(RemoteError::new(
                "unknown_method",
                format!("no handler for {:?}", req.method),
            )),
            (Some(_), Err(_)) => Err(RemoteError::new("busy", "too many requests at once")),
            (Some(h), Ok(_permit)) => {
                match tokio::time::timeout(MAX_HANDLER_TIME, h(req.clone())).await {
                    Ok(r) => r,
                    Err(_) => Err(RemoteError::new("timeout", "the handler took too long")),
                }
            }
        };
        let reply = Reply {
            id: req.id,
            from: inner.settings.node_id.clone(),
            result: match result {
                Ok(v) => ReplyResult::Ok(v),
                Err(e) => ReplyResult::Error(e),
            },
        };
        let mut json = serde_json::to_string(&reply).expect("replies are plain JSON");
        if json.len() > MAX_MESSAGE {
            json = serde_json::to_string(&Reply {
                id: req.id,
                from: inner.settings.node_id.clone(),
                result: ReplyResult::Error(RemoteError::new("too_large", "answer too large")),
            })
            .expect("replies are plain JSON");
        }
        let mut conn = inner.conn();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(keys::reply_channel(&req.from)).arg(json);
        let publish = cmd.query_async::<i64>(&mut conn);
        if let Ok(Err(e)) = tokio::time::timeout(OP_TIMEOUT, publish).await {
            tracing::debug!(target: "cluster", from = %req.from, "answering a request: {e}");
        }
    });
}

/// An answer arrived on this node's reply channel.
pub(super) fn on_reply(inner: &Inner, payload: &[u8]) {
    let Ok(reply) = serde_json::from_slice::<Reply>(payload) else {
        inner.stats.count_bad_message();
        return;
    };
    // A late answer (the asker gave up) finds no entry: dropped.
    if let Some(tx) = lock(&inner.rpc.pending).remove(&reply.id) {
        let _ = tx.send(reply.result);
    }
}
