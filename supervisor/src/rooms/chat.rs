//! Chat and file offers. A peer's data producer with label `chat` is not given to the others
//! as it is: the room consumes it itself (a `direct` data consumer on its DirectTransport),
//! checks each message (`crate::chat`: per-peer rate limit, size, UTF-8), stores it and sends it
//! on through a `direct` data producer of its own for that sender, which the other peers
//! consume (`newDataConsumer` with the sender's peerId, as mediasoup-demo). A refused message
//! goes nowhere and its sender hears `chatMessageRejected` {code, reason}. A peer that joins
//! hears `chatHistory` {messages} (the last 100, from the store) before its consumers.
//!
//! Files travel on the peers' own data channels (label `file`); `shareFile` checks the offer
//! against `data_channels.max_file_size` and tells the others `fileShared`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrosfu_fbs::{DataProducerId, DataSend, DataType, MediaEvent, ProduceDataOptions, ppid};
use tokio::sync::broadcast::error::RecvError;

use super::api::Notification;
use super::{Room, RoomError};
use crate::chat::{
    CHAT_LABEL, ChatHistory, ChatMessage, ChatRateLimiter, HISTORY_LEN, validate_chat,
};
use crate::media::{DataConsumeOptions, DataProducer};
use crate::worker::new_id;

/// Bytes per chunk of a shared file (the demo app's chunking; `chunks` must match).
pub(crate) const FILE_CHUNK: u64 = 16 * 1024;
/// How long a joining peer's history read waits for queued chat writes.
const HISTORY_FLUSH: Duration = Duration::from_millis(500);

/// `shareFile`: a file a peer is about to send on its `file` channel.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ShareFile {
    pub name: String,
    pub size: u64,
    pub mime: Option<String>,
    pub sha256: String,
    pub chunks: u64,
}

/// `fileShared`, to the other peers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileShared {
    pub file_id: String,
    pub peer_id: String,
    pub display_name: String,
    pub name: String,
    pub size: u64,
    pub mime: String,
    pub sha256: String,
    pub chunks: u64,
}

impl ShareFile {
    fn check(&self, max_size: u64) -> Result<(), RoomError> {
        let bad = |m: String| Err(RoomError::bad_request(m));
        if self.name.is_empty() || self.name.len() > 255 || self.name.contains(['/', '\\', '\0']) {
            return bad("name must be 1-255 bytes without / \\ or NUL".into());
        }
        if self.mime.as_ref().is_some_and(|m| m.len() > 255) {
            return bad("mime is at most 255 bytes".into());
        }
        if self.size > max_size {
            return bad(format!("the file is larger than the {max_size} byte limit"));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("sha256 must be 64 hex digits".into());
        }
        if self.chunks != self.size.div_ceil(FILE_CHUNK).max(1) {
            return bad(format!("chunks must be ceil(size / {FILE_CHUNK})"));
        }
        Ok(())
    }
}

impl Room {
    /// Relays `producer` (a peer's `chat` data producer) through the room: returns the room's
    /// data producer the other peers consume instead. Closed with the peer's producer.
    pub(super) async fn start_chat_relay(
        self: &Arc<Self>,
        peer_id: &str,
        producer: &DataProducer,
    ) -> Result<DataProducer, RoomError> {
        let direct = self.direct_transport().await?;
        let relay = direct
            .produce_data(ProduceDataOptions {
                data_producer_id: DataProducerId::new(new_id()),
                data_type: DataType::Direct,
                sctp_stream_parameters: None,
                label: CHAT_LABEL.to_owned(),
                protocol: producer.protocol().to_owned(),
                paused: false,
            })
            .await?;
        // The relay runs on the home router: a sender hosted elsewhere is relayed there first.
        let tap = match async {
            let here = self.data_producer_on(producer, &self.router).await?;
            Ok::<_, RoomError>(
                direct
                    .consume_data(&here, DataConsumeOptions::default())
                    .await?,
            )
        }
        .await
        {
            Ok(c) => c,
            Err(e) => {
                let _ = relay.close().await;
                return Err(e);
            }
        };
        let mut events = tap.events();
        let room = Arc::downgrade(self);
        let peer_id = peer_id.to_owned();
        let out = relay.clone();
        tokio::spawn(async move {
            let mut limiter = ChatRateLimiter::default();
            loop {
                let (ppid_value, data) = tokio::select! {
                    e = events.recv() => match e {
                        Ok(MediaEvent::DataConsumerMessage { ppid, data }) => (ppid, data),
                        Ok(_) | Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => break,
                    },
                    _ = tap.closed() => break,
                };
                let Some(room) = room.upgrade() else { break };
                room.chat_message(&peer_id, &mut limiter, ppid_value, &data, &out)
                    .await;
            }
            let _ = out.close().await;
        });
        Ok(relay)
    }

    /// One message of `peer_id`'s chat: refused (the sender is told), or stored and relayed.
    async fn chat_message(
        &self,
        peer_id: &str,
        limiter: &mut ChatRateLimiter,
        ppid_value: u32,
        data: &[u8],
        relay: &DataProducer,
    ) {
        let text_ppid = matches!(ppid_value, ppid::STRING | ppid::STRING_EMPTY);
        let checked = limiter
            .check(Instant::now())
            .and_then(|()| validate_chat(data, text_ppid));
        let (text, sender) = {
            let st = self.state.lock().await;
            let Some(peer) = st.peers.get(peer_id) else {
                return;
            };
            match checked {
                Err(refusal) => {
                    tracing::debug!(room = %self.id, peer = peer_id, code = refusal.code(), "chat message refused");
                    peer.notify(&Notification::ChatMessageRejected(refusal));
                    return;
                }
                Ok(text) => (
                    text.to_owned(),
                    (
                        peer.display_name.clone(),
                        peer.participant.as_ref().map(|p| p.id.clone()),
                    ),
                ),
            }
        };
        let (display_name, participant) = sender;
        let msg = ChatMessage {
            id: new_id(),
            peer_id: peer_id.to_owned(),
            display_name,
            sent_at: chrono::Utc::now(),
            text,
        };
        if let Some(participant) = participant {
            self.cx.store.write(msg.stored(&participant));
        }
        let sent = relay
            .send(DataSend {
                ppid: ppid::STRING,
                data: msg.text.into_bytes(),
                subchannels: None,
                required_subchannel: None,
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(room = %self.id, peer = peer_id, "chat relay: {e}");
        }
    }

    /// `chatHistory` to a peer that joined: the room's last messages, oldest first.
    pub(super) async fn send_chat_history(&self, peer_id: &str) {
        self.cx.store.flush(HISTORY_FLUSH).await;
        let rows = match self.cx.store.chat_history(&self.id, HISTORY_LEN).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(room = %self.id, peer = peer_id, "chat history not read: {e}");
                return;
            }
        };
        if let Some(p) = self.state.lock().await.peers.get(peer_id) {
            p.notify(&Notification::ChatHistory(ChatHistory::from(rows)));
        }
    }

    /// `shareFile`: checks the offer, tells the other joined peers `fileShared`; answers the
    /// file id and who will receive it.
    pub(crate) async fn share_file(
        &self,
        peer_id: &str,
        f: ShareFile,
    ) -> Result<(String, Vec<String>), RoomError> {
        f.check(self.cx.media.data_channels.max_file_size)?;
        let st = self.state.lock().await;
        st.may_produce(peer_id)?;
        let me = st.peer(peer_id)?;
        let shared = FileShared {
            file_id: new_id(),
            peer_id: peer_id.to_owned(),
            display_name: me.display_name.clone(),
            name: f.name,
            size: f.size,
            mime: f.mime.unwrap_or_else(|| "application/octet-stream".into()),
            sha256: f.sha256.to_ascii_lowercase(),
            chunks: f.chunks,
        };
        let receivers: Vec<String> = st
            .peers
            .values()
            .filter(|p| p.joined && p.id != peer_id)
            .map(|p| p.id.clone())
            .collect();
        st.notify_joined(peer_id, &Notification::FileShared(shared.clone()));
        tracing::info!(room = %self.id, peer = peer_id, file = %shared.file_id, size = shared.size, "file shared");
        Ok((shared.file_id, receivers))
    }
}
