//! The protoo wire protocol (what protoo-client speaks): JSON text frames
//! `{request:true,id,method,data}`, `{response:true,id,ok:true,data}` /
//! `{response:true,id,ok:false,errorCode,errorReason}` and `{notification:true,method,data}`, in
//! both directions.
//!
//! [`PeerConn`] is the sending half of one connected peer: notifications, server → client
//! requests with their pending responses, and close. Outgoing frames go through a bounded queue;
//! a client that does not read (queue full) is disconnected rather than buffered without limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::rooms::{BoxFuture, Notification, PeerLink, RoomError};

/// Frames waiting for the socket, per peer.
pub(crate) const OUT_QUEUE: usize = 1024;

/// A typed error reply: `errorCode` is HTTP-like (400 bad parameters, 403 not allowed, 404
/// unknown method or id, 409 wrong state, 500 internal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtooError {
    pub code: u16,
    pub reason: String,
}

impl ProtooError {
    pub(crate) fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
    pub(crate) fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(400, reason)
    }
    pub(crate) fn not_found(reason: impl Into<String>) -> Self {
        Self::new(404, reason)
    }
    pub(crate) fn internal(reason: impl Into<String>) -> Self {
        Self::new(500, reason)
    }
}

impl std::fmt::Display for ProtooError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl From<RoomError> for ProtooError {
    fn from(e: RoomError) -> Self {
        Self::new(e.status(), e.to_string())
    }
}

/// One frame from a client, any of the three kinds.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Incoming {
    #[serde(default)]
    pub request: bool,
    #[serde(default)]
    pub response: bool,
    #[serde(default)]
    pub notification: bool,
    pub id: Option<u64>,
    pub method: Option<String>,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub ok: bool,
    pub error_code: Option<u16>,
    pub error_reason: Option<String>,
}

pub(crate) enum Outgoing {
    Text(String),
    /// Close the socket with this code and reason.
    Close(u16, String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, ProtooError>>>>>;

/// The sending half of a connected peer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PeerConn {
    tx: mpsc::Sender<Outgoing>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for PeerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConn")
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

impl PeerConn {
    pub(crate) fn new(tx: mpsc::Sender<Outgoing>) -> Self {
        Self {
            tx,
            pending: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    fn send(&self, frame: Value) {
        match self.tx.try_send(Outgoing::Text(frame.to_string())) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("signaling: peer does not read its socket; disconnecting it");
                // The writer drains and then closes; make room for the close by dropping.
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx
                        .send(Outgoing::Close(1008, "too slow to read".into()))
                        .await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// A notification: `{notification: true, method, data}`.
    pub(crate) fn notify(&self, n: &Notification) {
        match serde_json::to_value(n) {
            Ok(mut frame) => {
                frame["notification"] = json!(true);
                self.send(frame);
            }
            Err(e) => tracing::error!("notification not serializable: {e}"),
        }
    }

    pub(crate) fn respond(&self, id: u64, result: Result<Value, ProtooError>) {
        self.send(match result {
            Ok(data) => json!({ "response": true, "id": id, "ok": true, "data": data }),
            Err(e) => json!({
                "response": true, "id": id, "ok": false,
                "errorCode": e.code, "errorReason": e.reason,
            }),
        });
    }

    /// A server → client request; resolves with the client's response (or a 408 on timeout, a
    /// 410 when the peer goes away).
    pub(crate) async fn request(
        &self,
        method: &str,
        data: Value,
        timeout: Duration,
    ) -> Result<Value, ProtooError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("never held across a panic")
            .insert(id, tx);
        self.send(json!({ "request": true, "id": id, "method": method, "data": data }));
        let r = tokio::time::timeout(timeout, rx).await;
        self.pending
            .lock()
            .expect("never held across a panic")
            .remove(&id);
        match r {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ProtooError::new(410, "peer closed")),
            Err(_) => Err(ProtooError::new(408, format!("{method}: no response"))),
        }
    }

    /// A client's response to one of our requests.
    pub(crate) fn resolve(&self, msg: Incoming) {
        let Some(id) = msg.id else { return };
        let Some(tx) = self
            .pending
            .lock()
            .expect("never held across a panic")
            .remove(&id)
        else {
            return;
        };
        let r = if msg.ok {
            Ok(msg.data)
        } else {
            Err(ProtooError::new(
                msg.error_code.unwrap_or(500),
                msg.error_reason.unwrap_or_default(),
            ))
        };
        let _ = tx.send(r);
    }

    pub(crate) fn close(&self, code: u16, reason: &str) {
        let _ = self.tx.try_send(Outgoing::Close(code, reason.to_owned()));
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl PeerLink for PeerConn {
    fn notify(&self, n: &Notification) {
        PeerConn::notify(self, n);
    }

    fn request(
        &self,
        method: &'static str,
        data: Value,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Value, RoomError>> {
        Box::pin(async move {
            PeerConn::request(self, method, data, timeout)
                .await
                .map_err(|e| RoomError::Peer {
                    code: e.code,
                    reason: e.reason,
                })
        })
    }

    fn close(&self, code: u16, reason: &str) {
        PeerConn::close(self, code, reason);
    }
}
