//! What WHIP and WHEP sessions (`crate::whip`) need of a room beyond the broadcaster API: the
//! peer a player watches, and whether a session's transport is still alive.

use ferrosfu_fbs::{DtlsState, IceState};

use super::api::ActiveSpeaker;
use super::{Room, RoomError};
use crate::ortc::MediaKind;

/// A transport's ICE and DTLS states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Liveness {
    pub ice: Option<IceState>,
    pub dtls: Option<DtlsState>,
}

impl Room {
    /// The peer a WHEP player watches and its producers (audio first): `peer`; else the active
    /// speaker; else the peer with producers that joined first. `except` (the player itself)
    /// is never chosen.
    pub(crate) async fn whep_source(
        &self,
        peer: Option<&str>,
        except: &str,
    ) -> Result<(String, Vec<(String, MediaKind)>), RoomError> {
        let st = self.state.lock().await;
        let has_media = |id: &str| st.peers.get(id).is_some_and(|p| !p.producers.is_empty());
        let id = match peer {
            Some(p) if st.peers.contains_key(p) => p.to_owned(),
            Some(p) => {
                return Err(RoomError::not_found(format!(
                    "peer \"{p}\" is not in room \"{}\"",
                    self.id
                )));
            }
            None => match &st.speaker {
                Some(ActiveSpeaker::Peer { peer_id, .. })
                    if peer_id != except && has_media(peer_id) =>
                {
                    peer_id.clone()
                }
                _ => st
                    .peers
                    .values()
                    .filter(|p| p.joined && p.id != except && !p.producers.is_empty())
                    .min_by_key(|p| (p.participant.as_ref().map(|x| x.joined), p.id.clone()))
                    .map(|p| p.id.clone())
                    .ok_or_else(|| {
                        RoomError::not_found(format!("nobody in room \"{}\" sends media", self.id))
                    })?,
            },
        };
        let mut producers: Vec<(String, MediaKind)> = st
            .peer(&id)?
            .producers
            .iter()
            .map(|(pid, e)| (pid.clone(), e.kind))
            .collect();
        producers.sort_by_key(|(pid, k)| (*k == MediaKind::Video, pid.clone()));
        if producers.is_empty() {
            return Err(RoomError::not_found(format!(
                "peer \"{id}\" sends no audio or video"
            )));
        }
        Ok((id, producers))
    }

    /// The ICE and DTLS states of transport `transport_id` of `peer_id` (an error when the
    /// peer or transport is gone).
    pub(crate) async fn liveness(
        &self,
        peer_id: &str,
        transport_id: &str,
    ) -> Result<Liveness, RoomError> {
        let t = self.state.lock().await.transport(peer_id, transport_id)?;
        let s = t.get_stats().await?;
        Ok(Liveness {
            ice: s.ice_state,
            dtls: s.dtls_state,
        })
    }
}

impl Room {
    /// The host candidates of WebRtcTransport `transport_id` of `peer_id` (they outlive an ICE
    /// restart).
    pub(crate) async fn ice_candidates(
        &self,
        peer_id: &str,
        transport_id: &str,
    ) -> Result<Vec<ferrosfu_fbs::IceCandidate>, RoomError> {
        let t = self.state.lock().await.transport(peer_id, transport_id)?;
        Ok(t.webrtc().map(|d| d.ice_candidates).unwrap_or_default())
    }
}
