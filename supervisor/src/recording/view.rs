//! What a client sees of a recording ([`View`], in memory or from its stored row) and why an
//! operation on recordings failed ([`RecError`]).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::upload::UploadState;
use super::{Container, StreamInfo};
use crate::rooms::RoomError;
use crate::store::{RecordingRow, RecordingStatus, Write};

/// Everything a client sees of a recording; what is not a column goes to the row's metadata.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct View {
    pub id: String,
    pub room_id: String,
    pub peer_id: Option<String>,
    pub producer_ids: Vec<String>,
    pub status: RecordingStatus,
    pub path: String,
    pub size: Option<i64>,
    pub duration: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub error: Option<String>,
    pub recorder_pid: Option<u32>,
    pub container: Option<Container>,
    pub mime_type: Option<String>,
    pub tracks: Vec<Value>,
    pub streams: Vec<StreamInfo>,
    /// Why it was finalized: "stopped" (the API), "source closed", "max duration", "low disk",
    /// "shutdown" (supervisor SIGTERM).
    pub stop_reason: Option<String>,
    /// `s3://bucket/key` once uploaded (a column of its own).
    pub storage_url: Option<String>,
    /// The upload to object storage, when there is one.
    pub upload: Option<UploadState>,
}

impl View {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "roomId": self.room_id,
            "peerId": self.peer_id,
            "producerIds": self.producer_ids,
            "status": self.status.as_str(),
            "path": self.path,
            "size": self.size,
            "duration": self.duration,
            "createdAt": self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "error": self.error,
            "recorderPid": self.recorder_pid,
            "container": self.container,
            "mimeType": self.mime_type,
            "tracks": self.tracks,
            "streams": self.streams,
            "stopReason": self.stop_reason,
            "storageUrl": self.storage_url,
            "upload": self.upload,
        })
    }

    pub(super) fn metadata(&self) -> Value {
        json!({
            "roomId": self.room_id,
            "peerId": self.peer_id,
            "producerIds": self.producer_ids,
            "error": self.error,
            "container": self.container,
            "mimeType": self.mime_type,
            "tracks": self.tracks,
            "streams": self.streams,
            "stopReason": self.stop_reason,
            "upload": self.upload,
        })
    }

    /// The write that stores this state.
    pub(super) fn stored(&self) -> Write {
        Write::RecordingUpdated {
            id: self.id.clone(),
            status: self.status,
            size_bytes: self.size,
            duration_seconds: self.duration,
            metadata: self.metadata(),
            storage_url: self.storage_url.clone(),
        }
    }

    /// A stored row (a finished recording, or one of an earlier run).
    pub(crate) fn from_row(r: RecordingRow) -> View {
        let m = &r.metadata;
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        fn parse<T: serde::de::DeserializeOwned>(m: &Value, k: &str) -> Option<T> {
            serde_json::from_value(m.get(k)?.clone()).ok()
        }
        View {
            room_id: s("roomId").unwrap_or_else(|| r.meeting_code.clone()),
            peer_id: s("peerId"),
            producer_ids: parse(m, "producerIds").unwrap_or_default(),
            error: s("error"),
            container: parse(m, "container"),
            mime_type: s("mimeType"),
            tracks: parse(m, "tracks").unwrap_or_default(),
            streams: parse(m, "streams").unwrap_or_default(),
            stop_reason: s("stopReason"),
            upload: parse(m, "upload"),
            storage_url: r.storage_url,
            id: r.id,
            status: r.status,
            path: r.storage_path,
            size: r.size_bytes,
            duration: r.duration_seconds,
            created_at: r.created_at,
            recorder_pid: None,
        }
    }
}

/// Why starting or finding a recording failed: an HTTP status and a reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub(crate) struct RecError {
    pub status: u16,
    pub reason: String,
    /// The recording that was created and failed, if it got that far.
    pub id: Option<String>,
}

impl RecError {
    pub(super) fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            id: None,
        }
    }
}

impl From<RoomError> for RecError {
    fn from(e: RoomError) -> Self {
        RecError::new(e.status(), e.to_string())
    }
}
