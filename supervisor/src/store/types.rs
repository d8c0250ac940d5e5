//! What the store writes and reads: typed rows and queued writes. Timestamps are UTC; JSON
//! columns are JSONB on PostgreSQL and TEXT on SQLite.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// A recording's state. Stored as the lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    Starting,
    Recording,
    Finalizing,
    /// Finalized; the file waits for (or is in) its upload to object storage.
    Uploading,
    Done,
    Failed,
}

impl RecordingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Starting => "starting",
            RecordingStatus::Recording => "recording",
            RecordingStatus::Finalizing => "finalizing",
            RecordingStatus::Uploading => "uploading",
            RecordingStatus::Done => "done",
            RecordingStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "starting" => RecordingStatus::Starting,
            "recording" => RecordingStatus::Recording,
            "finalizing" => RecordingStatus::Finalizing,
            "uploading" => RecordingStatus::Uploading,
            "done" => RecordingStatus::Done,
            "failed" => RecordingStatus::Failed,
            _ => return None,
        })
    }

    /// Done or failed: nothing will change it any more.
    pub fn is_final(self) -> bool {
        matches!(self, RecordingStatus::Done | RecordingStatus::Failed)
    }

    /// The recorder is gone and the file finalized (or the recording failed): uploading, done
    /// or failed.
    pub fn is_settled(self) -> bool {
        self.is_final() || self == RecordingStatus::Uploading
    }
}

/// A user, created on first sight (the token's peer claim, else the peerId).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRef {
    pub id: String,
    pub display_name: String,
}

/// One queued write. Writes are applied in the order they were queued.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// A room opened: the meeting with this code is inserted (with `id`, `creator`,
    /// `settings`, `started_at = at`, status `active`), or, when the code exists already (the
    /// room reopened), set back to `active` with `ended_at` cleared; its id and `started_at`
    /// stay. The creator is upserted into users first.
    MeetingStarted {
        id: String,
        code: String,
        creator: Option<UserRef>,
        settings: Value,
        at: DateTime<Utc>,
    },
    /// The room closed: status `ended`, `ended_at = at`.
    MeetingEnded { code: String, at: DateTime<Utc> },
    /// The open meeting with this code has new settings (they replace the stored object):
    /// its P2P and E2EE modes and mode history.
    MeetingSettings { code: String, settings: Value },
    /// Startup after a crash: every `active` meeting is ended and every participant without
    /// `left_at` has left, at `at`.
    MeetingsInterrupted { at: DateTime<Utc> },
    /// A peer joined the meeting with this code (the user is upserted, display name refreshed).
    ParticipantJoined {
        id: String,
        meeting_code: String,
        user: UserRef,
        display_name: String,
        at: DateTime<Utc>,
    },
    ParticipantLeft {
        id: String,
        at: DateTime<Utc>,
        stats: Value,
    },
    /// A producer: `kind` "audio" | "video", `codec` the mime type ("audio/opus").
    MediaTrackCreated {
        id: String,
        participant_id: String,
        kind: String,
        codec: String,
        parameters: Value,
        at: DateTime<Utc>,
    },
    RecordingCreated {
        id: String,
        meeting_code: String,
        storage_path: String,
        status: RecordingStatus,
        metadata: Value,
        at: DateTime<Utc>,
    },
    /// New status; `size_bytes`/`duration_seconds` replace the stored values when `Some`;
    /// `metadata` replaces the stored object; `storage_url` is set when `Some`.
    RecordingUpdated {
        id: String,
        status: RecordingStatus,
        size_bytes: Option<i64>,
        duration_seconds: Option<f64>,
        metadata: Value,
        storage_url: Option<String>,
    },
    /// A chat message, sent by the peer whose participants row is `participant_id` (which
    /// names the meeting): `display_name` is the sender's name when it sent it, `text` 1 to
    /// 4096 bytes (a CHECK in both schemas; longer or empty text is rejected and counted).
    /// Like every write it waits out a database outage; it is dropped only when the queue is
    /// full (counted in [`StoreStats::dropped`] and warned).
    ChatMessageSent {
        id: String,
        participant_id: String,
        display_name: String,
        text: String,
        at: DateTime<Utc>,
    },
    /// A final caption: what the participant whose row is `participant_id` said on its audio
    /// producer `producer_id` between `started_at` and `ended_at` (text 1 to 4096 bytes, a
    /// CHECK like chat's).
    TranscriptFinal {
        id: String,
        participant_id: String,
        producer_id: String,
        text: String,
        started_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeetingRow {
    pub id: String,
    pub meeting_code: String,
    pub creator_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub settings: Value,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParticipantRow {
    pub id: String,
    pub meeting_id: String,
    pub user_id: String,
    pub display_name: String,
    pub joined_at: DateTime<Utc>,
    pub left_at: Option<DateTime<Utc>>,
    pub stats: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MediaTrackRow {
    pub id: String,
    pub participant_id: String,
    pub kind: String,
    pub codec: String,
    pub parameters: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordingRow {
    pub id: String,
    pub meeting_id: String,
    /// Joined from meetings.
    pub meeting_code: String,
    pub storage_path: String,
    pub size_bytes: Option<i64>,
    pub duration_seconds: Option<f64>,
    pub status: RecordingStatus,
    pub created_at: DateTime<Utc>,
    pub metadata: Value,
    /// `s3://bucket/key` once uploaded to object storage.
    pub storage_url: Option<String>,
}

/// A chat message with its sender's peer id (the participant's user).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatRow {
    pub id: String,
    pub meeting_id: String,
    pub participant_id: String,
    /// Joined from participants (`user_id`: the peerId, or the token's peer claim).
    pub peer_id: String,
    pub display_name: String,
    pub sent_at: DateTime<Utc>,
    pub text: String,
}

/// A stored caption with its speaker's peer id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptRow {
    pub id: String,
    pub participant_id: String,
    /// Joined from participants (`user_id`: the peerId, or the token's peer claim).
    pub peer_id: String,
    pub display_name: String,
    pub producer_id: String,
    pub text: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

/// Counters of the write queue, for /metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Writes waiting.
    pub queued: u64,
    pub applied: u64,
    /// Failed attempts (each is retried).
    pub retries: u64,
    /// Writes refused because the queue was full (or the store closed).
    pub dropped: u64,
    /// Writes the database refused on the merits (a constraint violation, e.g. a participant
    /// of an unknown meeting): logged at error and dropped, not retried.
    pub rejected: u64,
    /// Whether the last attempt failed (the database is unreachable or refusing).
    pub failing: bool,
}
