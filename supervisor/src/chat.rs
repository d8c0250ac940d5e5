//! Chat on the `chat` data channel: the rules a message must pass before it is relayed and
//! stored ([`validate_chat`], [`ChatRateLimiter`]), and the JSON clients see ([`ChatMessage`],
//! [`ChatHistory`]). No IO and no clock: the caller passes `now`, so the rules are unit-tested
//! deterministically. `api` is the operators' REST endpoint (`GET /api/rooms/:roomId/chat`).
//!
//! The flow a room follows for one message on the `chat` label:
//!
//! 1. `limiter.check(now)` (one [`ChatRateLimiter`] per peer) — refused: tell the sender why;
//! 2. `validate_chat(payload, is_text_ppid)` — refused: tell the sender why;
//! 3. build a [`ChatMessage`] (new id, the peer's current display name, `sent_at = now`),
//!    relay it to every peer of the room and queue [`ChatMessage::stored`] on the store;
//! 4. a peer that joins gets [`ChatHistory`] of `store.chat_history(room, HISTORY_LEN)`.

mod api;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

pub(crate) use api::{ApiState, routes};

use crate::store::{ChatRow, Write};

/// The data channel label chat messages travel on.
pub const CHAT_LABEL: &str = "chat";
/// The longest message accepted, in bytes of UTF-8 (the store's schemas hold the same bound).
pub const MAX_CHAT_BYTES: usize = 4096;
/// How many past messages a peer that joins gets.
pub const HISTORY_LEN: usize = 100;
/// Messages a peer may send per second, sustained.
pub const RATE_PER_SECOND: u32 = 10;
/// Messages a peer may send at once after being quiet.
pub const RATE_BURST: u32 = 10;

/// Why a chat message was refused. [`code`](Self::code) is stable (for programs), the
/// `Display` text is the reason for people; both go to the sender.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChatRefusal {
    #[error("message too long: {len} bytes, at most {max}")]
    TooLong { len: usize, max: usize },
    #[error("message is not valid UTF-8 text")]
    NotUtf8,
    /// PostgreSQL cannot store U+0000 in text; no chat client means to send it.
    #[error("message contains a NUL character")]
    ContainsNul,
    #[error("message is empty")]
    Empty,
    #[error("chat messages must be sent as text, not binary")]
    Binary,
    #[error("too many messages: at most {per_second} per second; retry in {} ms", .retry_after.as_micros().div_ceil(1000))]
    RateLimited {
        per_second: u32,
        retry_after: Duration,
    },
}

impl ChatRefusal {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ChatRefusal::TooLong { .. } => "too_long",
            ChatRefusal::NotUtf8 => "not_utf8",
            ChatRefusal::ContainsNul => "contains_nul",
            ChatRefusal::Empty => "empty",
            ChatRefusal::Binary => "binary",
            ChatRefusal::RateLimited { .. } => "rate_limited",
        }
    }
}

/// `{"code": "too_long", "reason": "message too long: …"}`.
impl Serialize for ChatRefusal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ChatRefusal", 2)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("reason", &self.to_string())?;
        st.end()
    }
}

/// The text of a message received on the `chat` label, or why it is refused.
///
/// `payload` is the message as the sender's application sent it (WebRTC's "empty string"
/// PPID carries one placeholder byte: pass an empty slice for it); `is_text_ppid` says whether
/// it came as a string (PPID 51 or 56) rather than binary (53, 57). Checked in this order:
/// length (before looking at the bytes), binary, UTF-8, NUL, empty (nothing but whitespace).
pub fn validate_chat(payload: &[u8], is_text_ppid: bool) -> Result<&str, ChatRefusal> {
    if payload.len() > MAX_CHAT_BYTES {
        return Err(ChatRefusal::TooLong {
            len: payload.len(),
            max: MAX_CHAT_BYTES,
        });
    }
    if !is_text_ppid {
        return Err(ChatRefusal::Binary);
    }
    let text = std::str::from_utf8(payload).map_err(|_| ChatRefusal::NotUtf8)?;
    if text.contains('\0') {
        return Err(ChatRefusal::ContainsNul);
    }
    if text.trim().is_empty() {
        return Err(ChatRefusal::Empty);
    }
    Ok(text)
}

/// One peer's chat rate: a token bucket of `burst` messages refilled at `per_second`, kept as
/// a theoretical arrival time (GCRA), so the arithmetic is exact. Time is an argument.
#[derive(Clone, Debug)]
pub struct ChatRateLimiter {
    per_second: u32,
    /// Time one token takes to refill.
    interval: Duration,
    /// How far ahead of `now` the arrival time may run: `burst - 1` intervals.
    tolerance: Duration,
    /// When the bucket is full again; None before the first message.
    tat: Option<Instant>,
}

impl Default for ChatRateLimiter {
    /// [`RATE_PER_SECOND`] with a burst of [`RATE_BURST`].
    fn default() -> Self {
        ChatRateLimiter::new(RATE_PER_SECOND, RATE_BURST)
    }
}

impl ChatRateLimiter {
    /// `per_second` and `burst` of 0 are taken as 1.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = per_second.max(1);
        let interval = Duration::from_secs(1) / per_second;
        ChatRateLimiter {
            per_second,
            interval,
            tolerance: interval * (burst.max(1) - 1),
            tat: None,
        }
    }

    /// Takes a token for a message at `now`, or says how long until one is free. A refused
    /// message takes nothing. A `now` before an earlier call's refills nothing.
    pub fn check(&mut self, now: Instant) -> Result<(), ChatRefusal> {
        let tat = self.tat.map_or(now, |t| t.max(now));
        let ahead = tat - now;
        if ahead > self.tolerance {
            return Err(ChatRefusal::RateLimited {
                per_second: self.per_second,
                retry_after: ahead - self.tolerance,
            });
        }
        self.tat = Some(tat + self.interval);
        Ok(())
    }
}

/// A chat message as clients see it: relayed live (the notification's data) and in
/// [`ChatHistory`] and the REST API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    pub peer_id: String,
    /// The sender's display name when it sent the message.
    pub display_name: String,
    /// RFC 3339, UTC, milliseconds (`2026-12-05T07:03:17.123Z`), like every time in the APIs.
    #[serde(serialize_with = "millis")]
    pub sent_at: DateTime<Utc>,
    pub text: String,
}

impl ChatMessage {
    /// The store write for this message, sent by the peer whose participants row is
    /// `participant_id` (the row names the meeting and the peer).
    pub fn stored(&self, participant_id: &str) -> Write {
        Write::ChatMessageSent {
            id: self.id.clone(),
            participant_id: participant_id.to_owned(),
            display_name: self.display_name.clone(),
            text: self.text.clone(),
            at: self.sent_at,
        }
    }
}

impl From<ChatRow> for ChatMessage {
    fn from(r: ChatRow) -> Self {
        ChatMessage {
            id: r.id,
            peer_id: r.peer_id,
            display_name: r.display_name,
            sent_at: r.sent_at,
            text: r.text,
        }
    }
}

/// The data of the `chatHistory` notification a peer gets after `join`: the last messages,
/// oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatHistory {
    pub messages: Vec<ChatMessage>,
}

impl From<Vec<ChatRow>> for ChatHistory {
    fn from(rows: Vec<ChatRow>) -> Self {
        ChatHistory {
            messages: rows.into_iter().map(ChatMessage::from).collect(),
        }
    }
}

fn millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests;
