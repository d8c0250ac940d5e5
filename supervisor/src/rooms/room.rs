//! One room: its router, its peers' state, and the life of its peers (arriving, joining,
//! leaving, being closed) and of the room itself. The media requests are in the sibling files.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::api::{Join, Joined, PeerLink, RecordSource, Stats};
use super::speaker::Observers;
use super::state::{Participant, Peer, RoomState};
use super::{MediaSettings, RoomError, Rooms};
use crate::auth::Role;
use crate::media::WebRtcServer;
use crate::ortc::{self, RtpCapabilities};
use crate::store::{Store, UserRef, Write};
use crate::worker::{Router, new_id};

/// What a room shares with its registry.
#[derive(Debug)]
pub(super) struct Context {
    pub caps: RtpCapabilities,
    pub media: MediaSettings,
    pub store: Store,
    pub rooms: Weak<Rooms>,
}

#[derive(Debug)]
pub(crate) struct Room {
    pub id: String,
    pub(super) router: Router,
    /// The WebRtcServer of the router's worker: WebRtcTransports share its ports. None: each
    /// transport binds its own.
    pub(super) server: Option<WebRtcServer>,
    pub(super) cx: Context,
    /// Who speaks (see `speaker.rs`).
    pub(super) observers: Observers,
    pub(super) state: Mutex<RoomState>,
    /// The room's DirectTransport and who hears of new data producers (see `data.rs`).
    pub(super) data: super::data::RoomData,
    /// Every router of the room, `router` first (see `routers.rs`).
    pub(super) routers: std::sync::Mutex<Vec<super::RoomRouter>>,
    /// Held while a peer of the room is placed (`Rooms::place_peer`).
    pub(super) placing: Mutex<()>,
    /// The other nodes' peers were loaded (at the first local join; see `cluster.rs`).
    pub(super) remote_synced: AtomicBool,
    closed: AtomicBool,
    /// End-to-end encrypted (a peer said so): the server refuses to record it.
    e2ee: AtomicBool,
    /// Wakes the room's P2P task (`p2p.rs`); the state's `p2p.changed`.
    pub(super) p2p_wake: Arc<tokio::sync::Notify>,
    /// When it opened (`GET /api/rooms`).
    pub(super) created: std::time::SystemTime,
}

impl Room {
    /// A room on `router`, with its speaker observers (without them when the worker refuses
    /// them: the room works, with no `activeSpeaker`).
    pub(super) async fn open(
        id: &str,
        router: Router,
        server: Option<WebRtcServer>,
        cx: Context,
    ) -> Arc<Self> {
        let observers = Observers::create(&router, id).await;
        let home = super::RoomRouter {
            router: router.clone(),
            server: server.clone(),
        };
        let state = RoomState::default();
        let p2p_wake = state.p2p.changed.clone();
        let room = Arc::new(Self {
            p2p_wake,
            id: id.to_owned(),
            routers: std::sync::Mutex::new(vec![home]),
            placing: Mutex::new(()),
            remote_synced: AtomicBool::new(false),
            router,
            server,
            cx,
            observers,
            state: Mutex::new(state),
            data: super::data::RoomData::default(),
            closed: AtomicBool::new(false),
            e2ee: AtomicBool::new(false),
            created: std::time::SystemTime::now(),
        });
        room.watch_speakers();
        room.run_p2p();
        room
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the room is end-to-end encrypted: its media is ciphertext to the server.
    pub(crate) fn is_e2ee(&self) -> bool {
        self.e2ee.load(Ordering::Acquire)
    }

    /// Marks the room end-to-end encrypted (for as long as it is open); recorded in the
    /// meeting's settings the first time.
    pub(crate) async fn set_e2ee(&self) {
        if !self.e2ee.swap(true, Ordering::AcqRel) {
            tracing::info!(room = %self.id, "room is end-to-end encrypted");
            self.write_settings(&*self.state.lock().await);
        }
    }

    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    pub(crate) fn rtp_capabilities(&self) -> &RtpCapabilities {
        &self.cx.caps
    }

    /// The producers to record: every open producer of `peer`, or the listed ones (each must
    /// belong to this room).
    pub(crate) async fn recording_sources(
        &self,
        peer: Option<&str>,
        producer_ids: &[String],
    ) -> Result<Vec<RecordSource>, RoomError> {
        self.state
            .lock()
            .await
            .recording_sources(&self.id, peer, producer_ids)
    }

    /// A connected peer arrives (not joined yet). The same peer id already here is replaced:
    /// its connection is closed and the others see it leave. Fails when the room closed
    /// meanwhile (the caller then gets a fresh room).
    pub(crate) async fn attach(
        self: &Arc<Self>,
        peer_id: &str,
        session: u64,
        link: Arc<dyn PeerLink>,
        role: Role,
    ) -> Result<(), RoomError> {
        let mut st = self.state.lock().await;
        if self.is_closed() {
            return Err(RoomError::RoomClosed);
        }
        let max = self.cx.media.quotas.peers_per_room;
        if let Some(old) = st.attach(Peer::new(peer_id, session, Some(link), role), max)? {
            tracing::info!(room = %self.id, peer = peer_id, "peer reconnected: replacing the old one");
            if let Some(l) = &old.link {
                l.close(4000, "replaced by a new connection");
            }
            self.gone(old);
        }
        Ok(())
    }

    /// A peer's connection ended (only if it is still the same session).
    pub(crate) async fn detach(self: &Arc<Self>, peer_id: &str, session: u64) {
        let mut st = self.state.lock().await;
        if st.peers.get(peer_id).is_none_or(|p| p.session != session) {
            return;
        }
        if let Some(p) = st.remove(peer_id) {
            self.gone(p);
        }
        self.close_if_empty(&st);
    }

    /// A connected peer joins: answers the peers already joined, who hear `newPeer`. The
    /// caller then runs [`Room::consume_all`] once its answer is out.
    pub(crate) async fn join(
        self: &Arc<Self>,
        peer_id: &str,
        join: Join,
    ) -> Result<Joined, RoomError> {
        let caps = join.rtp_capabilities.filter(|c| !c.codecs.is_empty());
        if let Some(c) = &caps {
            ortc::validate_rtp_capabilities(c)?;
        }
        let display_name = join.display_name.unwrap_or_else(|| peer_id.to_owned());
        let device = join.device.unwrap_or_else(|| json!({}));
        if device["e2ee"] == true {
            self.set_e2ee().await;
        }
        // The other nodes hear of it, and the first local peer loads theirs (before its answer).
        self.announce_local_join(&super::api::PeerInfo {
            id: peer_id.to_owned(),
            display_name: display_name.clone(),
            device: device.clone(),
        })
        .await;
        let mut st = self.state.lock().await;
        let peers = st.join(peer_id, display_name, device, caps)?;
        let peer = st.peer_mut(peer_id)?;
        peer.participant = Some(self.participant_joined(peer_id, &peer.display_name));
        // Joining a room of a draining node: told at once, as the others were.
        if let Some(notice) = self.cx.rooms.upgrade().and_then(|r| r.draining().cloned()) {
            peer.notify(&notice);
        }
        tracing::info!(room = %self.id, peer = peer_id, "peer joined");
        Ok(Joined { peers })
    }

    pub(crate) async fn change_display_name(
        &self,
        peer_id: &str,
        name: String,
    ) -> Result<(), RoomError> {
        self.state.lock().await.rename(peer_id, name.clone())?;
        self.publish(crate::cluster::RoomEvent::DisplayNameChanged {
            peer_id: peer_id.to_owned(),
            display_name: name,
        });
        Ok(())
    }

    /// The stats of a transport of `peer_id`.
    pub(crate) async fn transport_stats(
        &self,
        peer_id: &str,
        transport_id: &str,
    ) -> Result<Stats, RoomError> {
        let t = self.state.lock().await.transport(peer_id, transport_id)?;
        Ok(Stats::Transport(t.get_stats().await?))
    }

    /// The stats of a producer of `peer_id`.
    pub(crate) async fn producer_stats(&self, peer_id: &str, id: &str) -> Result<Stats, RoomError> {
        let e = self.state.lock().await.producer(peer_id, id)?.clone();
        Ok(Stats::Streams {
            inbound: true,
            kind: e.kind,
            streams: e.p.get_stats().await?,
        })
    }

    /// The stats of a consumer of `peer_id`.
    pub(crate) async fn consumer_stats(&self, peer_id: &str, id: &str) -> Result<Stats, RoomError> {
        let (c, producer) = {
            let st = self.state.lock().await;
            let c = st.consumer(peer_id, id)?;
            let p = st
                .any_producer(c.producer_id().as_str())
                .ok()
                .map(|e| e.p.clone());
            (c, p)
        };
        // The producer may have closed meanwhile: its encodings are then not listed.
        let producer = match producer {
            Some(p) => p.get_stats().await.unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(Stats::Consumer {
            kind: c.kind().into(),
            outbound: c.get_stats().await?,
            producer,
        })
    }

    /// Writes the participants row of a peer that joins.
    pub(super) fn participant_joined(&self, peer_id: &str, display_name: &str) -> Participant {
        let id = new_id();
        self.cx.store.write(Write::ParticipantJoined {
            id: id.clone(),
            meeting_code: self.id.clone(),
            user: UserRef {
                id: peer_id.to_owned(),
                display_name: display_name.to_owned(),
            },
            display_name: display_name.to_owned(),
            at: chrono::Utc::now(),
        });
        Participant {
            id,
            joined: tokio::time::Instant::now(),
            producers: 0,
            p2p_since: None,
            p2p_time: std::time::Duration::ZERO,
            modes: Vec::new(),
        }
    }

    /// Ends the participants row of a peer that leaves.
    fn participant_left(&self, part: &Participant, device: &Value) {
        self.cx.store.write(Write::ParticipantLeft {
            id: part.id.clone(),
            at: chrono::Utc::now(),
            stats: json!({
                "durationSeconds": part.joined.elapsed().as_secs_f64(),
                "producers": part.producers,
                "device": device,
                "p2pSeconds": part.p2p_seconds(tokio::time::Instant::now()),
                "modes": part.modes,
            }),
        });
    }

    /// A removed peer: its row ends and its transports close (its producers and consumers go
    /// with them; the consumers of its producers close with `ProducerClosed`).
    pub(super) fn gone(&self, p: Peer) {
        if let Some(part) = &p.participant {
            self.participant_left(part, &p.device);
        }
        if p.joined && p.remote.is_none() {
            self.publish(crate::cluster::RoomEvent::PeerLeft {
                peer_id: p.id.clone(),
            });
        }
        tracing::info!(room = %self.id, peer = %p.id, "peer left");
        tokio::spawn(async move {
            for (_, t) in p.transports {
                let _ = t.t.close().await;
            }
        });
    }

    /// Marks the room closed; true for the call that closed it (which ends the meeting).
    fn mark_closed(&self) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Its P2P task ends.
        self.p2p_wake.notify_one();
        self.cx.store.write(Write::MeetingEnded {
            code: self.id.clone(),
            at: chrono::Utc::now(),
        });
        true
    }

    pub(super) fn close_if_empty(self: &Arc<Self>, st: &RoomState) {
        // Peers of other nodes do not keep the room open here.
        if st.peers.values().any(|p| p.remote.is_none()) || !self.mark_closed() {
            return;
        }
        tracing::info!(room = %self.id, "room closed (last peer left)");
        let room = self.clone();
        tokio::spawn(async move {
            if let Some(rooms) = room.cx.rooms.upgrade() {
                rooms.remove(&room).await;
            }
            room.close_other_routers().await;
            let _ = room.router.close().await;
        });
    }

    /// Disconnects every peer and closes the room (worker death, shutdown).
    pub(super) async fn close_all(self: &Arc<Self>, code: u16, reason: &str) {
        let mut st = self.state.lock().await;
        self.mark_closed();
        for (_, p) in st.peers.drain() {
            if let Some(part) = &p.participant {
                self.participant_left(part, &p.device);
            }
            if let Some(l) = &p.link {
                l.close(code, reason);
            }
        }
        drop(st);
        if let Some(rooms) = self.cx.rooms.upgrade() {
            rooms.remove(self).await;
        }
        self.close_other_routers().await;
        let _ = self.router.close().await;
    }

    /// Closes one peer (e.g. its transport failed): connection closed, others told.
    pub(super) async fn close_peer(self: &Arc<Self>, peer_id: &str, why: &str) {
        let mut st = self.state.lock().await;
        if let Some(p) = st.remove(peer_id) {
            tracing::warn!(room = %self.id, peer = peer_id, "closing peer: {why}");
            if let Some(l) = &p.link {
                l.close(4000, why);
            }
            self.gone(p);
        }
        self.close_if_empty(&st);
    }
}
