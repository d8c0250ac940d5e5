//! Why a room operation failed, as one typed value; signaling maps it to a protoo `errorCode`
//! and the REST APIs to an HTTP status, both through [`RoomError::status`].

use crate::channel::RequestError;
use crate::ortc::OrtcError;

/// A refused or failed room operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RoomError {
    /// The caller sent something wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// The peer's token does not allow it (403).
    #[error("{0}")]
    Forbidden(String),
    /// An unknown room, peer, transport, producer or consumer (404).
    #[error("{0}")]
    NotFound(String),
    /// Not in this state: not joined yet, joined twice, already there, gone meanwhile (409).
    #[error("{0}")]
    Conflict(String),
    /// The room closed while the request was on its way; a new one may open (503).
    #[error("room closed")]
    RoomClosed,
    /// No worker runs to host a new room (503).
    #[error("no worker is running")]
    NoWorker,
    /// Every worker is above its load limit (`[rooms] worker_max_load` / `worker_max_consumers`):
    /// the node takes no new room (503); a load balancer should send it elsewhere.
    #[error("node full: every worker is above its load limit")]
    NodeFull,
    /// The node holds `[limits] rooms_per_node` rooms: it takes no new one (503), as when full.
    #[error("node full: at most {0} rooms")]
    RoomLimit(usize),
    /// The node drains (SIGTERM, `POST /api/drain`): open rooms go on, new ones are refused
    /// (503); a load balancer should send it elsewhere.
    #[error("node draining: it takes no new room")]
    Draining,
    /// A quota of `[limits]` is reached (429): too many peers in the room, transports,
    /// producers or consumers of the peer, requests per second.
    #[error("{0}")]
    TooMany(String),
    /// The operation failed (500): the worker failed it or went away.
    /// A client-controlled size over its bound (413).
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Failed(String),
    /// The peer answered a server request with an error (its own code).
    #[error("{reason}")]
    Peer { code: u16, reason: String },
}

impl RoomError {
    pub(crate) fn bad_request(reason: impl Into<String>) -> Self {
        Self::BadRequest(reason.into())
    }
    pub(crate) fn not_found(reason: impl Into<String>) -> Self {
        Self::NotFound(reason.into())
    }
    pub(crate) fn conflict(reason: impl Into<String>) -> Self {
        Self::Conflict(reason.into())
    }
    pub(crate) fn forbidden(reason: impl Into<String>) -> Self {
        Self::Forbidden(reason.into())
    }

    /// The protoo `errorCode` / HTTP status.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::RoomClosed
            | Self::NoWorker
            | Self::NodeFull
            | Self::RoomLimit(_)
            | Self::Draining => 503,
            Self::TooMany(_) => 429,
            Self::TooLarge(_) => 413,
            Self::Failed(_) => 500,
            Self::Peer { code, .. } => *code,
        }
    }

    pub(crate) fn too_many(reason: impl Into<String>) -> Self {
        Self::TooMany(reason.into())
    }

    /// The peer that asked has gone (its request raced its disconnection).
    pub(crate) fn too_large(reason: impl Into<String>) -> Self {
        Self::TooLarge(reason.into())
    }

    pub(crate) fn peer_gone() -> Self {
        Self::conflict("peer is gone")
    }
}

impl From<RequestError> for RoomError {
    /// The worker refusing an argument is the caller's fault; anything else failed.
    fn from(e: RequestError) -> Self {
        match &e {
            RequestError::Rejected { failure, .. } if e.is_invalid_argument() => {
                Self::BadRequest(failure.reason.clone())
            }
            _ => Self::Failed(e.to_string()),
        }
    }
}

impl From<OrtcError> for RoomError {
    fn from(e: OrtcError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use ferrosfu_fbs::{Method, RequestFailure};

    use super::*;

    #[test]
    fn each_variant_has_its_status() {
        let cases = [
            (RoomError::bad_request("x"), 400),
            (RoomError::forbidden("x"), 403),
            (RoomError::not_found("x"), 404),
            (RoomError::conflict("x"), 409),
            (RoomError::RoomClosed, 503),
            (RoomError::NoWorker, 503),
            (RoomError::NodeFull, 503),
            (RoomError::Draining, 503),
            (RoomError::RoomLimit(3), 503),
            (RoomError::TooMany("x".into()), 429),
            (RoomError::too_large("x"), 413),
            (RoomError::Failed("x".into()), 500),
            (
                RoomError::Peer {
                    code: 408,
                    reason: "x".into(),
                },
                408,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status, "{e:?}");
        }
    }

    #[test]
    fn worker_refusals_split_into_bad_argument_and_failure() {
        let rejected = |failure| RequestError::Rejected {
            method: Method::TransportConnect,
            failure,
        };
        let bad = RoomError::from(rejected(RequestFailure::invalid_argument(
            "bad fingerprint",
        )));
        assert_eq!(bad, RoomError::BadRequest("bad fingerprint".into()));
        let failed = RoomError::from(rejected(RequestFailure::failed("no socket")));
        assert_eq!(failed.status(), 500);
        let closed = RoomError::from(RequestError::ChannelClosed {
            method: Method::TransportConnect,
        });
        assert_eq!(closed.status(), 500);
    }

    #[test]
    fn ortc_refusals_are_bad_requests() {
        let e = RoomError::from(OrtcError::InvalidMimeType {
            mime_type: "x".into(),
        });
        assert_eq!(e.status(), 400);
    }
}
