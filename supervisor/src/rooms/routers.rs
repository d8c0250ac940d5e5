//! A room's routers. A room starts on one router (its home: speaker observers, the chat
//! DirectTransport) and grows onto routers of other workers when placement says its workers are
//! full (see `Rooms::place_peer`): each peer is hosted by one of the room's routers (all its
//! transports go there), at most one router per worker.
//!
//! Media meets across routers through `pipe_to_router`: a consumer on a peer's router of a
//! producer hosted elsewhere consumes the piped producer (one pipe per producer per router,
//! made on the first consumer that needs it); audio producers are piped to the home router for
//! the speaker observers. Data producers are relayed the same way (`pipe_data_to_router`).

use std::sync::Arc;

use super::state::ProducerEntry;
use super::{Room, RoomError};
use crate::media::{DataProducer, PipeSettings, WebRtcServer};
use crate::ortc::RtpParameters;
use crate::worker::Router;

/// One router of a room and the WebRtcServer of its worker (None: transports bind their own
/// ports).
#[derive(Clone, Debug)]
pub(crate) struct RoomRouter {
    pub router: Router,
    pub server: Option<WebRtcServer>,
}

impl RoomRouter {
    pub(crate) fn same(&self, r: &Router) -> bool {
        self.router.id() == r.id()
    }
}

/// How long a placement's consumers count as pending: until the consumers exist and the
/// worker's count includes them (they are made within a second or two of the transports).
const RESERVATION_HOLD: std::time::Duration = std::time::Duration::from_secs(5);

/// Producers on other routers reach a peer's router through loopback pipes.
fn pipe_settings() -> PipeSettings {
    PipeSettings::default()
}

impl Room {
    /// Every router of the room, the home router first.
    pub(crate) fn routers(&self) -> Vec<RoomRouter> {
        self.routers
            .lock()
            .expect("never held across a panic")
            .clone()
    }

    /// The router hosting `peer_id`, chosen (and the room grown onto another worker when
    /// placement says so) at its first transport.
    pub(super) async fn peer_router(
        self: &Arc<Self>,
        peer_id: &str,
    ) -> Result<RoomRouter, RoomError> {
        if let Some(r) = self.state.lock().await.peer(peer_id)?.router.clone() {
            return Ok(r);
        }
        let chosen = match self.cx.rooms.upgrade() {
            Some(rooms) => rooms.place_peer(self, peer_id).await?,
            None => self.home(),
        };
        let mut st = self.state.lock().await;
        let peer = st.peer_mut(peer_id)?;
        // A concurrent request of the same peer may have chosen first: keep one router.
        Ok(peer.router.get_or_insert(chosen).clone())
    }

    pub(super) fn home(&self) -> RoomRouter {
        RoomRouter {
            router: self.router.clone(),
            server: self.server.clone(),
        }
    }

    /// Adds a router (of another worker) to the room; a worker death there closes the peers it
    /// hosts (they rejoin and are placed again).
    pub(super) fn add_router(self: &Arc<Self>, r: RoomRouter) {
        self.routers
            .lock()
            .expect("never held across a panic")
            .push(r.clone());
        tracing::info!(room = %self.id, router = %r.router.id().as_str(), worker = r.router.worker().pid(), "room grows onto another worker");
        let room = Arc::downgrade(self);
        tokio::spawn(async move {
            if let crate::worker::RouterClosed::WorkerDied(exit) = r.router.closed().await
                && let Some(room) = room.upgrade()
            {
                tracing::warn!(room = %room.id, ?exit, "a worker of the room died: closing its peers");
                room.routers
                    .lock()
                    .expect("never held across a panic")
                    .retain(|x| !x.same(&r.router));
                room.close_peers_on(&r.router, 1012, "media worker died; rejoin")
                    .await;
            }
        });
    }

    /// The consumers a peer joining now will have: one per producer of the other peers.
    pub(super) async fn join_cost(&self, peer_id: &str) -> usize {
        let st = self.state.lock().await;
        st.peers
            .values()
            .filter(|p| p.id != peer_id)
            .map(|p| p.producers.len())
            .sum()
    }

    /// Keeps a placement's pending consumers counted until each exists (see
    /// [`Room::consumer_placed`]) or [`RESERVATION_HOLD`] has passed.
    pub(super) async fn hold_reservation(&self, peer_id: &str, r: crate::load::Reservation) {
        let held = Arc::new(std::sync::Mutex::new(Some(r)));
        if let Ok(p) = self.state.lock().await.peer_mut(peer_id) {
            p.reservation = Some(held.clone());
        }
        tokio::spawn(async move {
            tokio::time::sleep(RESERVATION_HOLD).await;
            held.lock().expect("never held across a panic").take();
        });
    }

    /// A consumer of `peer_id` was made: one less pending on its worker.
    pub(super) async fn consumer_placed(&self, peer_id: &str) {
        let st = self.state.lock().await;
        if let Some(held) = st.peers.get(peer_id).and_then(|p| p.reservation.as_ref()) {
            let mut r = held.lock().expect("never held across a panic");
            if r.as_mut().is_some_and(|r| !r.release_one()) {
                r.take();
            }
        }
    }

    /// Closes the routers other than the home router (the room closed).
    pub(super) async fn close_other_routers(&self) {
        let others: Vec<RoomRouter> = self.routers().into_iter().skip(1).collect();
        for r in others {
            let _ = r.router.close().await;
        }
    }

    /// `producer` as `target` has it: the producer itself, or (hosted on another router) the
    /// producer piped to `target`, with the consumable parameters consumers there are made from.
    pub(super) async fn producer_on(
        &self,
        producer: &ProducerEntry,
        target: &Router,
    ) -> Result<(crate::media::Producer, RtpParameters), RoomError> {
        let source = producer.p.transport().router();
        if source.id() == target.id() {
            return Ok((producer.p.clone(), producer.consumable.clone()));
        }
        let piped = source
            .pipe_to_router(
                &producer.p,
                &producer.consumable,
                &self.cx.caps,
                target,
                &pipe_settings(),
            )
            .await
            .map_err(|e| RoomError::Failed(format!("pipe to router: {e}")))?;
        Ok((piped.producer, piped.consumable))
    }

    /// `producer` (a data producer of the room) as `target` has it: itself, or relayed there.
    pub(super) async fn data_producer_on(
        &self,
        producer: &DataProducer,
        target: &Router,
    ) -> Result<DataProducer, RoomError> {
        let source = producer.transport().router();
        if source.id() == target.id() {
            return Ok(producer.clone());
        }
        source
            .pipe_data_to_router(
                producer,
                target,
                self.cx.media.data_channels.max_message_size,
            )
            .await
            .map_err(|e| RoomError::Failed(format!("pipe data to router: {e}")))
    }

    /// Disconnects the peers hosted on `router` (its worker died).
    async fn close_peers_on(self: &Arc<Self>, router: &Router, code: u16, reason: &str) {
        let ids: Vec<String> = {
            let st = self.state.lock().await;
            st.peers
                .values()
                .filter(|p| p.router.as_ref().is_some_and(|r| r.same(router)))
                .map(|p| p.id.clone())
                .collect()
        };
        for id in ids {
            let mut st = self.state.lock().await;
            if let Some(p) = st.remove(&id) {
                if let Some(l) = &p.link {
                    l.close(code, reason);
                }
                self.gone(p);
            }
            self.close_if_empty(&st);
        }
    }
}
