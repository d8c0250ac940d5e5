//! What live captions (`crate::captions`) need of a room: its audio producers, a speaker's
//! participants row, and `transcript` notifications to everyone in it.

use super::api::{Notification, RecordSource};
use super::room::Room;
use crate::store::Write;

/// `transcript`: a caption of `peerId`'s audio producer `producerId`; `final: false` ones are
/// replaced by the next of the same producer. `startMs`/`endMs`: milliseconds since the room's
/// transcription started.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Transcript {
    pub peer_id: String,
    pub producer_id: String,
    pub text: String,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub start_ms: u64,
    pub end_ms: u64,
}

impl Room {
    /// Every open audio producer of the peers connected to this node.
    pub(crate) async fn audio_sources(&self) -> Vec<RecordSource> {
        let st = self.state.lock().await;
        st.peers
            .values()
            .filter(|p| p.remote.is_none())
            .flat_map(|p| {
                p.producers
                    .values()
                    .filter(|e| e.kind == crate::ortc::MediaKind::Audio)
                    .map(|e| RecordSource {
                        producer: e.p.clone(),
                        kind: e.kind,
                        consumable: e.consumable.clone(),
                        peer_id: p.id.clone(),
                    })
            })
            .collect()
    }

    /// Every joined peer hears the caption; a final one is stored under the speaker's
    /// participants row (when it has one: it may have left meanwhile).
    pub(crate) async fn caption(&self, t: Transcript, stored: Option<(String, Write)>) {
        let st = self.state.lock().await;
        if let Some((peer_id, mut w)) = stored {
            let participant = st
                .peers
                .get(&peer_id)
                .and_then(|p| p.participant.as_ref())
                .map(|p| p.id.clone());
            if let (Some(id), Write::TranscriptFinal { participant_id, .. }) = (participant, &mut w)
            {
                *participant_id = id;
                self.cx.store.write(w);
            }
        }
        st.notify_all_joined(&Notification::Transcript(t));
    }
}
