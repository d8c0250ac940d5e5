//! Who speaks, as mediasoup-demo's `Room.js` tells its peers: each room has one
//! ActiveSpeakerObserver and one AudioLevelObserver on its router (the demo's values), every
//! audio producer (peer or broadcaster) is added to both, and every joined peer hears
//! `activeSpeaker`:
//!
//! - the dominant speaker changed: `{peerId, producerId, volume}` (the producer's volume in the
//!   audio level observer's latest `volumes`, `null` when it was not in them);
//! - the audio level observer reports silence: `{peerId: null}` (clients clear the highlight);
//! - the first `volumes` after a silence: the dominant speaker again, with its volume, so the
//!   highlight comes back.
//!
//! The worker removes a closed producer from its observers by itself, so nothing is removed
//! here. A room whose observers the worker refused works without `activeSpeaker`.
//!
//! Each observer's events arrive in order, but the two observers' are not ordered between them
//! (one queue per handler id): a `volumes` and a dominant-speaker change the worker sends in the
//! same instant may be taken in either order, so that `volume` may be the previous interval's.

use std::sync::Arc;

use ferrosfu_fbs::{MediaEvent, ProducerId};
use tokio::sync::broadcast;

use super::Room;
use super::api::{ActiveSpeaker, Notification};
use crate::media::RtpObserver;
use crate::worker::Router;

/// Milliseconds between the ActiveSpeakerObserver's decisions (mediasoup's default).
const ACTIVE_SPEAKER_INTERVAL_MS: u16 = 300;
/// AudioLevelObserver: the loudest producer only, from −80 dBov, every 800 ms (mediasoup-demo).
const AUDIO_LEVEL_MAX_ENTRIES: u16 = 1;
const AUDIO_LEVEL_THRESHOLD_DBOV: i8 = -80;
const AUDIO_LEVEL_INTERVAL_MS: u16 = 800;

/// A room's observers; `None` where the worker refused to create one.
#[derive(Debug, Default)]
pub(super) struct Observers {
    pub active_speaker: Option<RtpObserver>,
    pub audio_level: Option<RtpObserver>,
}

impl Observers {
    /// Creates both observers on `router`; a failure is logged and the room goes on without.
    pub(super) async fn create(router: &Router, room_id: &str) -> Self {
        let (active_speaker, audio_level) = tokio::join!(
            router.create_active_speaker_observer(ACTIVE_SPEAKER_INTERVAL_MS),
            router.create_audio_level_observer(
                AUDIO_LEVEL_MAX_ENTRIES,
                AUDIO_LEVEL_THRESHOLD_DBOV,
                AUDIO_LEVEL_INTERVAL_MS,
            ),
        );
        let keep = |r: Result<RtpObserver, _>, what: &str| match r {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(room = room_id, "no {what} observer, no activeSpeaker: {e}");
                None
            }
        };
        Self {
            active_speaker: keep(active_speaker, "active speaker"),
            audio_level: keep(audio_level, "audio level"),
        }
    }

    fn each(&self) -> impl Iterator<Item = &RtpObserver> {
        self.active_speaker.iter().chain(&self.audio_level)
    }

    /// Adds an audio producer to every observer; a failure (the producer closed meanwhile) is
    /// logged, the producer is not affected.
    pub(super) async fn add(&self, room_id: &str, producer: &ProducerId) {
        for o in self.each() {
            if let Err(e) = o.add_producer(producer).await {
                tracing::debug!(
                    room = room_id,
                    producer = producer.as_str(),
                    observer = ?o.kind(),
                    "producer not observed: {e}"
                );
            }
        }
    }
}

/// What to tell the room after an observer event.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Say {
    /// `producer` (its owner is looked up) speaks, at `volume` dBov if known.
    Speaker {
        producer: ProducerId,
        volume: Option<i8>,
    },
    Nobody,
}

/// What the observers said last: the rules above, with no room or worker.
#[derive(Debug, Default)]
struct Speaking {
    dominant: Option<ProducerId>,
    /// The latest `volumes` (empty after a silence).
    volumes: Vec<(ProducerId, i8)>,
    silent: bool,
}

impl Speaking {
    fn volume(&self, p: &ProducerId) -> Option<i8> {
        self.volumes.iter().find(|(id, _)| id == p).map(|(_, v)| *v)
    }

    fn on_event(&mut self, e: &MediaEvent) -> Option<Say> {
        match e {
            MediaEvent::ActiveSpeakerObserverDominantSpeaker { producer_id } => {
                self.dominant = Some(producer_id.clone());
                Some(Say::Speaker {
                    producer: producer_id.clone(),
                    volume: self.volume(producer_id),
                })
            }
            MediaEvent::AudioLevelObserverVolumes(v) => {
                self.volumes.clone_from(v);
                if !std::mem::replace(&mut self.silent, false) {
                    return None;
                }
                let producer = self.dominant.clone()?;
                Some(Say::Speaker {
                    volume: self.volume(&producer),
                    producer,
                })
            }
            MediaEvent::AudioLevelObserverSilence => {
                self.volumes.clear();
                (!std::mem::replace(&mut self.silent, true)).then_some(Say::Nobody)
            }
            _ => None,
        }
    }
}

/// The next event of an observer; `None` once its events end (then pending: the branch is
/// done).
async fn next(rx: &mut Option<broadcast::Receiver<MediaEvent>>) -> Option<MediaEvent> {
    loop {
        let Some(r) = rx.as_mut() else {
            return std::future::pending().await;
        };
        match r.recv().await {
            Ok(e) => return Some(e),
            // Only volumes can pile up (every interval); the next one says as much.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => {
                *rx = None;
                return None;
            }
        }
    }
}

impl Room {
    /// Relays the observers' events as `activeSpeaker` to every joined peer, until the router
    /// closes (the observers go with it) or the room is gone.
    pub(super) fn watch_speakers(self: &Arc<Self>) {
        let mut active = self.observers.active_speaker.as_ref().map(|o| o.events());
        let mut levels = self.observers.audio_level.as_ref().map(|o| o.events());
        if active.is_none() && levels.is_none() {
            return;
        }
        let room = Arc::downgrade(self);
        let router = self.router.clone();
        tokio::spawn(async move {
            let mut speaking = Speaking::default();
            let gone = router.closed();
            tokio::pin!(gone);
            while active.is_some() || levels.is_some() {
                let e = tokio::select! {
                    e = next(&mut active) => e,
                    e = next(&mut levels) => e,
                    _ = &mut gone => return,
                };
                // `None`: that observer's events ended; the loop ends when both did.
                let Some(say) = e.and_then(|e| speaking.on_event(&e)) else {
                    continue;
                };
                let Some(room) = room.upgrade() else { return };
                let mut st = room.state.lock().await;
                let n = match say {
                    Say::Nobody => ActiveSpeaker::Nobody,
                    Say::Speaker { producer, volume } => {
                        // A producer that closed meanwhile: its peer no longer speaks.
                        let Some(owner) = st.producer_owner(producer.as_str()) else {
                            continue;
                        };
                        ActiveSpeaker::Peer {
                            peer_id: owner.to_owned(),
                            producer_id: producer.as_str().to_owned(),
                            volume,
                        }
                    }
                };
                st.notify_all_joined(&Notification::ActiveSpeaker(n.clone()));
                st.speaker = Some(n);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dominant(p: &str) -> MediaEvent {
        MediaEvent::ActiveSpeakerObserverDominantSpeaker {
            producer_id: ProducerId::new(p),
        }
    }

    fn volumes(v: &[(&str, i8)]) -> MediaEvent {
        MediaEvent::AudioLevelObserverVolumes(
            v.iter().map(|(p, db)| (ProducerId::new(*p), *db)).collect(),
        )
    }

    fn speaker(p: &str, volume: Option<i8>) -> Option<Say> {
        Some(Say::Speaker {
            producer: ProducerId::new(p),
            volume,
        })
    }

    #[test]
    fn a_dominant_speaker_is_told_with_its_latest_volume() {
        let mut s = Speaking::default();
        // No volumes yet: null.
        assert_eq!(s.on_event(&dominant("a")), speaker("a", None));
        // Volumes while someone speaks say nothing by themselves.
        assert_eq!(s.on_event(&volumes(&[("b", -20)])), None);
        assert_eq!(s.on_event(&dominant("b")), speaker("b", Some(-20)));
        // Only the latest volumes count: a producer not in them has no volume.
        assert_eq!(s.on_event(&volumes(&[("c", -30)])), None);
        assert_eq!(s.on_event(&dominant("b")), speaker("b", None));
        assert_eq!(s.on_event(&MediaEvent::ProducerScore(vec![])), None);
    }

    #[test]
    fn silence_clears_and_the_next_volumes_bring_the_speaker_back() {
        let mut s = Speaking::default();
        // Silence before anyone spoke: nobody, once.
        assert_eq!(
            s.on_event(&MediaEvent::AudioLevelObserverSilence),
            Some(Say::Nobody)
        );
        assert_eq!(s.on_event(&MediaEvent::AudioLevelObserverSilence), None);
        // Volumes after a silence with no dominant speaker yet: nothing to bring back.
        assert_eq!(s.on_event(&volumes(&[("a", -40)])), None);
        assert_eq!(s.on_event(&dominant("a")), speaker("a", Some(-40)));
        assert_eq!(
            s.on_event(&MediaEvent::AudioLevelObserverSilence),
            Some(Say::Nobody)
        );
        // Silence forgets the volumes.
        assert_eq!(s.on_event(&dominant("a")), speaker("a", None));
        assert_eq!(s.on_event(&volumes(&[("a", -35)])), speaker("a", Some(-35)));
        assert_eq!(s.on_event(&volumes(&[("a", -36)])), None);
        // The loudest is not the dominant speaker: it comes back without a volume.
        assert_eq!(
            s.on_event(&MediaEvent::AudioLevelObserverSilence),
            Some(Say::Nobody)
        );
        assert_eq!(s.on_event(&volumes(&[("b", -10)])), speaker("a", None));
    }
}
