//! Rooms and peers, as mediasoup-demo's `server/lib/Room.js` runs them, behind a typed API
//! ([`api`]) that signaling (protoo), the broadcaster REST API and recording call.
//!
//! A room is created by its first peer, gets one router on the least-loaded worker by
//! [`crate::placement`] (and that worker's WebRtcServer, when the pool runs them; refused with
//! [`RoomError::NodeFull`] when every worker is above its limit) and closes when its last peer (connected
//! peer or REST broadcaster) leaves. Each room's state sits behind one async mutex: requests of
//! all its peers are applied one at a time, as a single-threaded Node room would, while
//! different rooms run in parallel. Nothing awaits a client while holding the lock: consumer
//! offers are sent from their own tasks.
//!
//! Files: [`state`] holds the peers and the rules that need no worker; [`room`] a room's life
//! (peers arriving, joining, leaving; closing); [`transport`], [`produce`] and [`consume`] the
//! media of connected peers; [`broadcaster`] the REST broadcasters (and [`whip`] what WHIP/WHEP
//! sessions add); [`speaker`] the room's speaker observers and `activeSpeaker`.

mod api;
mod broadcaster;
mod captions;
mod chat;
mod cluster;
mod cluster_data;
mod consume;
mod data;
mod e2ee;
mod error;
mod inspect;
mod p2p;
mod produce;
mod room;
mod routers;
mod speaker;
mod state;
mod stats;
mod transport;
mod whip;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ferrosfu_fbs::{ListenInfo, TransportProtocol};
use serde_json::json;
use tokio::sync::Mutex;

pub(crate) use api::{
    BoxFuture, BroadcasterTransport, BroadcasterTransportRequest, Connect, ConsumerAction, Join,
    Notification, PeerLink, Produce, ProduceData, ProducerAction, RecordSource, SctpStreamParams,
    Stats, WebRtcTransportRequest,
};
pub(crate) use captions::Transcript;
pub(crate) use chat::ShareFile;
pub(crate) use e2ee::SenderKey;
pub(crate) use error::RoomError;
pub(crate) use p2p::{P2pMode, P2pSettings};
pub(crate) use room::Room;
pub(crate) use routers::RoomRouter;
pub(crate) use stats::RoomsStats;

use crate::ortc::{self, RtpCapabilities};
use crate::placement::{self, Limits, Placement, Work};
use crate::pool::WorkerPool;
use crate::store::{Store, UserRef, Write};
use crate::worker::{RouterClosed, new_id};

/// Where RTC transports listen and what they announce.
#[derive(Clone, Debug)]
pub(crate) struct MediaSettings {
    /// The listen addresses in preference order (at least one) with what each announces.
    pub listen: Vec<crate::config::MediaAddr>,
    /// SCTP data channels on WebRTC transports.
    pub data_channels: crate::config::DataChannels,
    /// `[limits]`: peers per room, rooms per node, what one peer may own.
    pub quotas: crate::limits::Quotas,
    /// `[rooms] p2p*`: two-party calls peer to peer.
    pub p2p: P2pSettings,
}

impl MediaSettings {
    /// A listen info per listen address, on a port of the workers' range.
    fn listen(&self, protocol: TransportProtocol) -> Vec<ListenInfo> {
        self.listen
            .iter()
            .map(|a| a.listen_info(protocol, 0))
            .collect()
    }

    /// The address plain transports listen on: the first IPv4 listen address (recorders and
    /// RTP tools mostly speak IPv4), else the first one.
    fn plain(&self) -> Option<&crate::config::MediaAddr> {
        self.listen
            .iter()
            .find(|a| a.ip.is_ipv4())
            .or(self.listen.first())
    }
}

/// Every room of this supervisor.
#[derive(Debug)]
pub(crate) struct Rooms {
    pool: WorkerPool,
    media: MediaSettings,
    limits: Limits,
    caps: RtpCapabilities,
    store: Store,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_session: AtomicU64,
    /// The cluster, when `[cluster]` is on (see `cluster.rs`).
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// Pipe transports toward each other node.
    node_pipes: cluster::NodePipes,
    /// Set once the node drains: the `serverDraining` notice (new rooms are refused; every
    /// joined peer hears it, and so does each peer that joins later).
    draining: std::sync::OnceLock<Notification>,
    /// How many rooms are open (the drain waits for 0).
    open: tokio::sync::watch::Sender<usize>,
    /// The built-in TURN server: its credentials go with `p2pStart`.
    turn: std::sync::OnceLock<Arc<crate::turn::Turn>>,
}

impl Rooms {
    pub(crate) fn new(
        pool: WorkerPool,
        media: MediaSettings,
        limits: Limits,
        store: Store,
    ) -> Arc<Self> {
        let caps = ortc::router_rtp_capabilities(&ortc::default_media_codecs())
            .expect("the default media codecs are valid");
        Arc::new(Self {
            pool,
            media,
            limits,
            caps,
            store,
            rooms: Mutex::default(),
            next_session: AtomicU64::new(1),
            cluster: std::sync::OnceLock::new(),
            node_pipes: cluster::NodePipes::default(),
            draining: std::sync::OnceLock::new(),
            open: tokio::sync::watch::Sender::new(0),
            turn: std::sync::OnceLock::new(),
        })
    }

    /// The built-in TURN server, whose credentials peers get for their direct connections.
    pub(crate) fn set_turn(&self, turn: Arc<crate::turn::Turn>) {
        let _ = self.turn.set(turn);
    }

    pub(super) fn turn(&self) -> Option<Arc<crate::turn::Turn>> {
        self.turn.get().cloned()
    }

    /// The router RTP capabilities every room has (they depend only on the media codecs).
    pub(crate) fn rtp_capabilities(&self) -> &RtpCapabilities {
        &self.caps
    }

    /// A number for a new connection of a peer; a room forgets a peer only when the
    /// connection that leaves is the one it knows.
    pub(crate) fn new_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) async fn get(&self, id: &str) -> Option<Arc<Room>> {
        self.rooms
            .lock()
            .await
            .get(id)
            .filter(|r| !r.is_closed())
            .cloned()
    }

    /// The open room `id`; not found when there is none.
    pub(crate) async fn existing(&self, id: &str) -> Result<Arc<Room>, RoomError> {
        self.get(id)
            .await
            .ok_or_else(|| RoomError::not_found(format!("room \"{id}\" does not exist")))
    }

    /// The open room `id`, created when there is none (router on the worker placement picks;
    /// [`RoomError::NodeFull`] when every worker is above its limit);
    /// `creator` is the peer or broadcaster that asks (the meeting's creator when it opens).
    pub(crate) async fn get_or_create(
        self: &Arc<Self>,
        id: &str,
        creator: &str,
    ) -> Result<Arc<Room>, RoomError> {
        let mut map = self.rooms.lock().await;
        if let Some(r) = map.get(id).filter(|r| !r.is_closed()) {
            return Ok(r.clone());
        }
        if self.draining.get().is_some() {
            return Err(RoomError::Draining);
        }
        if let Some(max) = self.media.quotas.rooms_per_node
            && map.values().filter(|r| !r.is_closed()).count() >= max
        {
            return Err(RoomError::RoomLimit(max));
        }
        let snapshot = self.pool.snapshot();
        let mut loads = self.pool.load_tracker().loads(&snapshot);
        if !loads.iter().any(|l| l.alive) {
            return Err(RoomError::NoWorker);
        }
        for l in &mut loads {
            l.routers = map
                .values()
                .filter(|r| Some(r.router().worker().pid()) == l.pid)
                .count();
        }
        // Its first peer consumes nothing yet; later joins are placed as they come.
        let core = match placement::place_simple(&loads, &self.limits, &[], 0) {
            Placement::New(core) | Placement::Existing(core) => core,
            Placement::Full => return Err(RoomError::NodeFull),
        };
        let (worker, server) = snapshot
            .into_iter()
            .find(|i| i.core == core)
            .and_then(|i| Some((i.worker?, i.webrtc_server)))
            .ok_or(RoomError::NoWorker)?;
        let router = worker.create_router().await?;
        let room = Room::open(
            id,
            router.clone(),
            server,
            room::Context {
                caps: self.caps.clone(),
                media: self.media.clone(),
                store: self.store.clone(),
                rooms: Arc::downgrade(self),
            },
        )
        .await;
        map.insert(id.to_owned(), room.clone());
        self.open.send_replace(map.len());
        tracing::info!(room = id, router = %router.id().as_str(), worker = worker.pid(), "room opened");
        // The meeting whose code is the room id (reopened when it existed).
        self.store.write(Write::MeetingStarted {
            id: new_id(),
            code: id.to_owned(),
            creator: Some(UserRef {
                id: creator.to_owned(),
                display_name: creator.to_owned(),
            }),
            settings: json!({ "routerId": router.id().as_str(), "workerPid": worker.pid() }),
            at: chrono::Utc::now(),
        });
        // A dead worker takes the room with it: its peers are disconnected so they rejoin.
        let weak = Arc::downgrade(&room);
        tokio::spawn(async move {
            if let RouterClosed::WorkerDied(exit) = router.closed().await
                && let Some(room) = weak.upgrade()
            {
                tracing::warn!(room = %room.id, ?exit, "worker died: closing the room");
                room.close_all(1012, "media worker died; rejoin").await;
            }
        });
        Ok(room)
    }

    /// The router of `room` that hosts `peer_id` (its first transport is being made), by
    /// placement over the workers' loads: one of the room's routers whose worker stays under
    /// its limit with the consumers the peer will have (one per producer of the others now),
    /// else a new router of the room on the least-loaded worker that does. When no worker can
    /// take it, the room's least-loaded router does (an open meeting is not refused a peer:
    /// new rooms are). A worker with no consumer at all takes any one peer (a peer too big for
    /// an empty worker fits nowhere better, so an idle worker the room may grow onto takes it).
    pub(super) async fn place_peer(
        &self,
        room: &Arc<Room>,
        peer_id: &str,
    ) -> Result<RoomRouter, RoomError> {
        // One placement at a time per room: two peers cannot both add a router on one worker.
        let _placing = room.placing.lock().await;
        let consumers = room.join_cost(peer_id).await;
        let snapshot = self.pool.snapshot();
        let routers = room.routers();
        let core_of = |r: &RoomRouter| {
            snapshot
                .iter()
                .find(|i| {
                    i.worker
                        .as_ref()
                        .is_some_and(|w| w.pid() == r.router.worker().pid())
                })
                .map(|i| i.core)
        };
        let room_cores: Vec<u32> = routers.iter().filter_map(core_of).collect();
        let mut loads = self.pool.load_tracker().loads(&snapshot);
        let hosted = self.rooms.lock().await;
        for l in &mut loads {
            l.routers = hosted
                .values()
                .flat_map(|r| r.routers())
                .filter(|r| Some(r.router.worker().pid()) == l.pid)
                .count();
        }
        drop(hosted);
        let limits = self.limits;
        let placed = placement::place(&loads, &limits, &room_cores, |host| {
            // An idle worker the room may grow onto takes any one peer.
            let idle = !room_cores.contains(&host)
                && loads
                    .iter()
                    .any(|w| w.core == host && w.consumers + w.pending == 0);
            vec![(host, Work::consumers(if idle { 0 } else { consumers }))]
        });
        let core = match placed {
            Placement::Existing(core) => {
                if let Some(r) = routers.iter().find(|r| core_of(r) == Some(core)) {
                    room.hold_reservation(
                        peer_id,
                        self.pool.load_tracker().reserve(core, consumers),
                    )
                    .await;
                    return Ok(r.clone());
                }
                core
            }
            Placement::New(core) => core,
            // Every worker is above its limit: an open meeting is not broken up for it (new
            // rooms are refused, see `get_or_create`): its least-used router takes the peer.
            Placement::Full => {
                let least = routers
                    .iter()
                    .filter_map(|r| {
                        let core = core_of(r)?;
                        let w = loads.iter().find(|w| w.core == core && w.alive)?;
                        Some((w.usage(&limits, Work::consumers(consumers)), r))
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, r)| r.clone())
                    .ok_or(RoomError::NodeFull)?;
                tracing::warn!(room = %room.id, peer = peer_id, "every worker is above its limit: the peer joins its room's least-loaded router");
                return Ok(least);
            }
        };
        let (worker, server) = snapshot
            .into_iter()
            .find(|i| i.core == core)
            .and_then(|i| Some((i.worker?, i.webrtc_server)))
            .ok_or(RoomError::NoWorker)?;
        let rr = RoomRouter {
            router: worker.create_router().await?,
            server,
        };
        room.add_router(rr.clone());
        room.hold_reservation(peer_id, self.pool.load_tracker().reserve(core, consumers))
            .await;
        tracing::info!(room = %room.id, peer = peer_id, worker = worker.pid(), "peer placed on a new router of the room");
        Ok(rr)
    }

    async fn remove(&self, room: &Arc<Room>) {
        let mut map = self.rooms.lock().await;
        if map.get(&room.id).is_some_and(|r| Arc::ptr_eq(r, room)) {
            map.remove(&room.id);
            self.open.send_replace(map.len());
        }
    }

    /// Starts draining (idempotent): from now on new rooms are refused with
    /// [`RoomError::Draining`] while open rooms go on; every joined peer hears
    /// `serverDraining {deadline}` (Unix ms after which the node closes what is left), and so
    /// does each peer that joins an open room later.
    pub(crate) async fn drain(&self, deadline: chrono::DateTime<chrono::Utc>) {
        let notice = Notification::ServerDraining {
            deadline: deadline.timestamp_millis(),
        };
        if self.draining.set(notice.clone()).is_err() {
            return;
        }
        // `get_or_create` checks the flag under this lock: every room is either listed here or
        // was refused.
        let rooms: Vec<_> = self.rooms.lock().await.values().cloned().collect();
        for r in rooms {
            r.state.lock().await.notify_all_joined(&notice);
        }
    }

    /// The `serverDraining` notice once the node drains.
    pub(super) fn draining(&self) -> Option<&Notification> {
        self.draining.get()
    }

    /// Resolves once no room is open on this node.
    /// Rooms open now, and whether they reach `[limits] rooms_per_node` (the node is then full).
    pub(crate) fn at_room_limit(&self) -> Option<usize> {
        self.media
            .quotas
            .rooms_per_node
            .filter(|&max| *self.open.borrow() >= max)
    }

    pub(crate) async fn wait_empty(&self) {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
    }

    /// Closes every room (supervisor shutdown).
    pub(crate) async fn close_all(&self) {
        let rooms: Vec<_> = self.rooms.lock().await.values().cloned().collect();
        for r in rooms {
            r.close_all(1001, "server shutting down").await;
        }
    }
}

#[cfg(test)]
mod data_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod placement_tests {
    use super::*;

    #[test]
    fn transports_announce_the_public_address() {
        use crate::config::MediaAddr;
        let m = MediaSettings {
            listen: vec![
                MediaAddr {
                    ip: std::net::IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 0]),
                    announced: Some("2001:db8::10".into()),
                },
                MediaAddr {
                    ip: std::net::IpAddr::from([0, 0, 0, 0]),
                    announced: Some("203.0.113.10".into()),
                },
            ],
            data_channels: crate::config::Config::default().data_channels,
            quotas: crate::limits::Quotas::default(),
            p2p: P2pSettings::default(),
        };
        assert_eq!(m.plain().unwrap().public(), "203.0.113.10");
        let l = m.listen(TransportProtocol::Udp);
        let l: Vec<_> = l
            .iter()
            .map(|l| (l.ip.as_str(), l.port, l.announced_address.as_deref()))
            .collect();
        assert_eq!(
            l,
            [
                ("::", 0, Some("2001:db8::10")),
                ("0.0.0.0", 0, Some("203.0.113.10"))
            ]
        );
        let m = MediaSettings {
            listen: vec![MediaAddr {
                ip: std::net::IpAddr::from([127, 0, 0, 1]),
                announced: None,
            }],
            data_channels: crate::config::Config::default().data_channels,
            quotas: crate::limits::Quotas::default(),
            p2p: P2pSettings::default(),
        };
        assert_eq!(m.plain().unwrap().public(), "127.0.0.1");
    }
}
