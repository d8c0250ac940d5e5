//! A room's peers and what each owns, with the rules that need no worker: who may join,
//! produce or be replaced, who hears which notification, and where things are found.
//! [`super::Room`] keeps one [`RoomState`] behind its lock and does the media around it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::RoomError;
use super::api::{Notification, PeerInfo, PeerLink, RecordSource};
use crate::auth::Role;
use crate::media::{Consumer, DataConsumer, DataProducer, Producer, Transport};
use crate::ortc::{MediaKind, RtpCapabilities, RtpParameters};

#[derive(Debug, Default)]
pub(super) struct RoomState {
    pub peers: HashMap<String, Peer>,
    /// The last `activeSpeaker` told: a peer that joins later hears it too.
    pub speaker: Option<super::api::ActiveSpeaker>,
    /// Two-party calls peer to peer (see `p2p.rs`).
    pub p2p: super::p2p::P2p,
}

#[derive(Debug)]
pub(super) struct Peer {
    pub id: String,
    /// Connection session; 0 for REST broadcasters.
    pub session: u64,
    /// None for REST broadcasters.
    pub link: Option<Arc<dyn PeerLink>>,
    pub role: Role,
    pub joined: bool,
    pub display_name: String,
    pub device: Value,
    pub rtp_caps: Option<RtpCapabilities>,
    pub transports: HashMap<String, PeerTransport>,
    pub producers: HashMap<String, ProducerEntry>,
    pub consumers: HashMap<String, Consumer>,
    pub data_producers: HashMap<String, DataProducerEntry>,
    pub data_consumers: HashMap<String, DataConsumer>,
    /// The participants row of this join (set when the peer joins).
    pub participant: Option<Participant>,
    /// The room's router that hosts its transports (chosen at its first transport).
    pub router: Option<super::RoomRouter>,
    /// A peer of another node of the cluster (see `cluster.rs`): which node.
    pub remote: Option<crate::cluster::NodeId>,
    /// The consumers its placement counted as pending on that router's worker, until made.
    pub reservation: Option<Arc<std::sync::Mutex<Option<crate::load::Reservation>>>>,
    /// Its end-to-end encryption public key (base64), once published.
    pub e2ee_key: Option<String>,
}

#[derive(Debug)]
pub(super) struct Participant {
    pub id: String,
    pub joined: tokio::time::Instant,
    pub producers: u32,
    /// Since when its call is direct (peer to peer), and how long it was before.
    pub p2p_since: Option<tokio::time::Instant>,
    pub p2p_time: std::time::Duration,
    /// Its mode changes: `{mode, at}` (participants.stats).
    pub modes: Vec<Value>,
}

impl Participant {
    /// Its call went direct at `now`.
    pub(super) fn p2p_start(&mut self, now: tokio::time::Instant) {
        self.p2p_since.get_or_insert(now);
        self.mode("p2p");
    }

    /// Its call went back to the SFU at `now`.
    pub(super) fn p2p_end(&mut self, now: tokio::time::Instant) {
        if let Some(t) = self.p2p_since.take() {
            self.p2p_time += now.saturating_duration_since(t);
            self.mode("sfu");
        }
    }

    /// Seconds it spent peer to peer until `now`.
    pub(super) fn p2p_seconds(&self, now: tokio::time::Instant) -> f64 {
        let open = self.p2p_since.map_or(std::time::Duration::ZERO, |t| {
            now.saturating_duration_since(t)
        });
        (self.p2p_time + open).as_secs_f64()
    }

    fn mode(&mut self, mode: &str) {
        if self.modes.len() < 100 {
            self.modes
                .push(json!({ "mode": mode, "at": chrono::Utc::now().to_rfc3339() }));
        }
    }
}

#[derive(Debug)]
pub(super) struct PeerTransport {
    pub t: Transport,
    pub consuming: bool,
    pub next_mid: u32,
    /// The RTCP CNAME of every producer on this transport (mediasoup's `cnameForProducers`).
    pub cname_for_producers: Option<String>,
}

#[derive(Clone, Debug)]
pub(super) struct ProducerEntry {
    pub p: Producer,
    pub kind: MediaKind,
    pub consumable: RtpParameters,
    pub app_data: Value,
}

#[derive(Clone, Debug)]
pub(super) struct DataProducerEntry {
    pub p: DataProducer,
    pub app_data: Value,
    /// For a `chat` producer: the room's relay the others consume instead (see `chat.rs`).
    pub relay: Option<DataProducer>,
}

impl Peer {
    /// A peer that arrived and has not joined yet.
    pub(super) fn new(id: &str, session: u64, link: Option<Arc<dyn PeerLink>>, role: Role) -> Self {
        Self {
            id: id.to_owned(),
            session,
            link,
            role,
            joined: false,
            display_name: String::new(),
            device: json!({}),
            rtp_caps: None,
            transports: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            data_producers: HashMap::new(),
            data_consumers: HashMap::new(),
            participant: None,
            router: None,
            reservation: None,
            remote: None,
            e2ee_key: None,
        }
    }

    pub(super) fn info(&self) -> PeerInfo {
        PeerInfo {
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            device: self.device.clone(),
        }
    }

    pub(super) fn notify(&self, n: &Notification) {
        if let Some(l) = &self.link {
            l.notify(n);
        }
    }

    fn source(&self, e: &ProducerEntry) -> RecordSource {
        RecordSource {
            producer: e.p.clone(),
            kind: e.kind,
            consumable: e.consumable.clone(),
            peer_id: self.id.clone(),
        }
    }
}

fn transport_not_found(id: &str) -> RoomError {
    RoomError::not_found(format!("transport with id \"{id}\" not found"))
}

fn producer_not_found(id: &str) -> RoomError {
    RoomError::not_found(format!("producer with id \"{id}\" not found"))
}

impl RoomState {
    /// Every joined peer but `except` hears `n`.
    pub(super) fn notify_joined(&self, except: &str, n: &Notification) {
        for p in self.peers.values().filter(|p| p.joined && p.id != except) {
            p.notify(n);
        }
    }

    /// Every joined peer hears `n`.
    pub(super) fn notify_all_joined(&self, n: &Notification) {
        for p in self.peers.values().filter(|p| p.joined) {
            p.notify(n);
        }
    }

    /// A connected peer arrives (not joined). The same id already here is removed first (the
    /// others see it leave) and returned so its socket and media can be closed. A new id is
    /// refused when the room holds `max_peers` already.
    pub(super) fn attach(
        &mut self,
        peer: Peer,
        max_peers: Option<usize>,
    ) -> Result<Option<Peer>, RoomError> {
        self.check_room(&peer.id, max_peers)?;
        let old = self.remove(&peer.id);
        self.peers.insert(peer.id.clone(), peer);
        Ok(old)
    }

    /// `peer_id` may own one more `what` (it owns `count(peer)`) under `max`; else 429.
    pub(super) fn quota(
        &self,
        peer_id: &str,
        max: Option<usize>,
        what: &str,
        count: impl Fn(&Peer) -> usize,
    ) -> Result<(), RoomError> {
        match max {
            Some(max) if count(self.peer(peer_id)?) >= max => Err(RoomError::too_many(format!(
                "too many {what}: at most {max} per peer"
            ))),
            _ => Ok(()),
        }
    }

    /// `peer_id` may open one more transport under `[limits] transports_per_peer`.
    pub(super) fn may_add_transport(
        &self,
        peer_id: &str,
        q: &crate::limits::Quotas,
    ) -> Result<(), RoomError> {
        self.quota(peer_id, q.transports_per_peer, "transports", |p| {
            p.transports.len()
        })
    }

    /// `peer_id` may add one more producer under `[limits] producers_per_peer`.
    pub(super) fn may_add_producer(
        &self,
        peer_id: &str,
        q: &crate::limits::Quotas,
    ) -> Result<(), RoomError> {
        self.quota(peer_id, q.producers_per_peer, "producers", |p| {
            p.producers.len()
        })
    }

    /// `peer_id` may get one more consumer under `[limits] consumers_per_peer`.
    pub(super) fn may_add_consumer(
        &self,
        peer_id: &str,
        q: &crate::limits::Quotas,
    ) -> Result<(), RoomError> {
        self.quota(peer_id, q.consumers_per_peer, "consumers", |p| {
            p.consumers.len()
        })
    }

    /// Room for `peer_id` under `max_peers` (every peer counts, those of other nodes too; a
    /// peer already here replaces itself).
    fn check_room(&self, peer_id: &str, max_peers: Option<usize>) -> Result<(), RoomError> {
        match max_peers {
            Some(max) if self.peers.len() >= max && !self.peers.contains_key(peer_id) => Err(
                RoomError::too_many(format!("room full: at most {max} peers")),
            ),
            _ => Ok(()),
        }
    }

    /// Removes a peer; the others hear `peerClosed` if it had joined.
    pub(super) fn remove(&mut self, peer_id: &str) -> Option<Peer> {
        let p = self.peers.remove(peer_id)?;
        self.p2p.touch();
        if p.joined {
            self.notify_joined(
                peer_id,
                &Notification::PeerClosed {
                    peer_id: peer_id.to_owned(),
                },
            );
        }
        Some(p)
    }

    /// `peer_id` when it is a peer of `node` (another node of the cluster).
    pub(super) fn remote_peer(
        &self,
        peer_id: &str,
        node: &crate::cluster::NodeId,
    ) -> Option<&Peer> {
        self.peers
            .get(peer_id)
            .filter(|p| p.remote.as_ref() == Some(node))
    }

    pub(super) fn remote_peer_mut(
        &mut self,
        peer_id: &str,
        node: &crate::cluster::NodeId,
    ) -> Option<&mut Peer> {
        self.peers
            .get_mut(peer_id)
            .filter(|p| p.remote.as_ref() == Some(node))
    }

    pub(super) fn peer(&self, peer_id: &str) -> Result<&Peer, RoomError> {
        self.peers.get(peer_id).ok_or_else(RoomError::peer_gone)
    }

    pub(super) fn peer_mut(&mut self, peer_id: &str) -> Result<&mut Peer, RoomError> {
        self.peers.get_mut(peer_id).ok_or_else(RoomError::peer_gone)
    }

    /// A connected peer joins: the others joined hear `newPeer`; answers who they are.
    pub(super) fn join(
        &mut self,
        peer_id: &str,
        display_name: String,
        device: Value,
        caps: Option<RtpCapabilities>,
    ) -> Result<Vec<PeerInfo>, RoomError> {
        let peer = self.peer_mut(peer_id)?;
        if peer.joined {
            return Err(RoomError::conflict("peer already joined"));
        }
        peer.joined = true;
        peer.display_name = display_name;
        peer.device = device;
        peer.rtp_caps = caps;
        self.p2p.touch();
        Ok(self.announce(peer_id))
    }

    /// A broadcaster joins (a joined peer without a connection); its id must be free.
    pub(super) fn add_joined(
        &mut self,
        mut peer: Peer,
        max_peers: Option<usize>,
    ) -> Result<Vec<PeerInfo>, RoomError> {
        self.check_room(&peer.id, max_peers)?;
        if self.peers.contains_key(&peer.id) {
            return Err(RoomError::conflict(format!(
                "broadcaster with id \"{}\" already exists",
                peer.id
            )));
        }
        peer.joined = true;
        let id = peer.id.clone();
        self.peers.insert(id.clone(), peer);
        self.p2p.touch();
        Ok(self.announce(&id))
    }

    /// Tells the other joined peers about `peer_id`; returns them.
    fn announce(&self, peer_id: &str) -> Vec<PeerInfo> {
        let me = Notification::NewPeer(self.peers[peer_id].info());
        let mut others = Vec::new();
        for o in self.peers.values().filter(|o| o.joined && o.id != peer_id) {
            others.push(o.info());
            o.notify(&me);
        }
        others.sort_by(|a, b| a.id.cmp(&b.id));
        others
    }

    /// A new display name; the others hear it when the peer has joined.
    pub(super) fn rename(&mut self, peer_id: &str, name: String) -> Result<(), RoomError> {
        let peer = self.peer_mut(peer_id)?;
        let old = std::mem::replace(&mut peer.display_name, name.clone());
        if peer.joined {
            self.notify_joined(
                peer_id,
                &Notification::PeerDisplayNameChanged {
                    peer_id: peer_id.to_owned(),
                    display_name: name,
                    old_display_name: old,
                },
            );
        }
        Ok(())
    }

    /// Whether `peer_id` may produce now: joined, with a publishing token.
    pub(super) fn may_produce(&self, peer_id: &str) -> Result<(), RoomError> {
        let p = self.peer(peer_id)?;
        if !p.joined {
            return Err(RoomError::conflict("peer not yet joined"));
        }
        if p.role != Role::Publish {
            return Err(RoomError::forbidden("this token may not publish"));
        }
        Ok(())
    }

    /// The broadcaster `id` (a peer without a connection).
    pub(super) fn broadcaster(&self, id: &str) -> Result<&Peer, RoomError> {
        match self.peers.get(id) {
            Some(p) if p.link.is_none() && p.remote.is_none() => Ok(p),
            _ => Err(RoomError::not_found(format!(
                "broadcaster with id \"{id}\" does not exist"
            ))),
        }
    }

    pub(super) fn transport(&self, peer_id: &str, id: &str) -> Result<Transport, RoomError> {
        self.peers
            .get(peer_id)
            .and_then(|p| p.transports.get(id))
            .map(|t| t.t.clone())
            .ok_or_else(|| transport_not_found(id))
    }

    /// The CNAME a new producer on transport `id` of `peer_id` gets, as mediasoup's
    /// `Transport.produce` gives it: the first producer's (its own if it has one, else a random
    /// one; an app, e.g. Chromium simulcast by RID, may send none), for every later producer.
    pub(super) fn producer_cname(
        &mut self,
        peer_id: &str,
        id: &str,
        given: &str,
    ) -> Result<String, RoomError> {
        let t = self
            .peers
            .get_mut(peer_id)
            .and_then(|p| p.transports.get_mut(id))
            .ok_or_else(|| transport_not_found(id))?;
        Ok(t.cname_for_producers
            .get_or_insert_with(|| {
                if given.is_empty() {
                    crate::worker::new_id()[..8].to_owned()
                } else {
                    given.to_owned()
                }
            })
            .clone())
    }

    /// The next mid of a transport of `peer_id`: the one named, else its first consuming one.
    pub(super) fn take_mid(
        &mut self,
        peer_id: &str,
        transport_id: Option<&str>,
    ) -> Option<(Transport, u32)> {
        let peer = self.peers.get_mut(peer_id)?;
        let t = match transport_id {
            Some(id) => peer.transports.get_mut(id)?,
            None => peer.transports.values_mut().find(|t| t.consuming)?,
        };
        t.next_mid += 1;
        Some((t.t.clone(), t.next_mid - 1))
    }

    /// A producer of `peer_id`.
    pub(super) fn producer(&self, peer_id: &str, id: &str) -> Result<&ProducerEntry, RoomError> {
        self.peers
            .get(peer_id)
            .and_then(|p| p.producers.get(id))
            .ok_or_else(|| producer_not_found(id))
    }

    /// A producer of anyone in the room.
    pub(super) fn any_producer(&self, id: &str) -> Result<&ProducerEntry, RoomError> {
        self.peers
            .values()
            .find_map(|p| p.producers.get(id))
            .ok_or_else(|| producer_not_found(id))
    }

    /// The peer (or broadcaster) whose open producer `id` is.
    pub(super) fn producer_owner(&self, id: &str) -> Option<&str> {
        self.peers
            .values()
            .find(|p| p.producers.contains_key(id))
            .map(|p| p.id.as_str())
    }

    pub(super) fn consumer(&self, peer_id: &str, id: &str) -> Result<Consumer, RoomError> {
        self.peers
            .get(peer_id)
            .and_then(|p| p.consumers.get(id))
            .cloned()
            .ok_or_else(|| RoomError::not_found(format!("consumer with id \"{id}\" not found")))
    }

    /// Who consumes a new producer of `owner`: the other joined, connected peers.
    pub(super) fn consumers_for(&self, owner: &str) -> Vec<String> {
        self.peers
            .values()
            .filter(|o| o.joined && o.id != owner && o.link.is_some())
            .map(|o| o.id.clone())
            .collect()
    }

    /// What a peer that just joined consumes: every producer of the other joined peers.
    pub(super) fn producers_for(&self, peer_id: &str) -> Vec<(String, ProducerEntry)> {
        self.peers
            .values()
            .filter(|o| o.joined && o.id != peer_id)
            .flat_map(|o| o.producers.values().map(|p| (o.id.clone(), p.clone())))
            .collect()
    }

    /// The producers to record: every open producer of `peer`, or the listed ones (each must
    /// belong to this room). Not found for an unknown peer or producer, a conflict for a peer
    /// with nothing to record.
    pub(super) fn recording_sources(
        &self,
        room_id: &str,
        peer: Option<&str>,
        producer_ids: &[String],
    ) -> Result<Vec<RecordSource>, RoomError> {
        let mut out: Vec<RecordSource> = Vec::new();
        if let Some(peer) = peer {
            let p = self.peers.get(peer).ok_or_else(|| {
                RoomError::not_found(format!("peer \"{peer}\" is not in room \"{room_id}\""))
            })?;
            let mut entries: Vec<&ProducerEntry> =
                p.producers.values().filter(|e| !e.p.is_closed()).collect();
            // Audio first, then video, each by id: a stable track order in the file.
            entries.sort_by(|a, b| {
                (a.kind.as_str(), a.p.id().as_str()).cmp(&(b.kind.as_str(), b.p.id().as_str()))
            });
            out.extend(entries.into_iter().map(|e| p.source(e)));
            if out.is_empty() {
                return Err(RoomError::conflict(format!(
                    "peer \"{peer}\" has no producer to record"
                )));
            }
        }
        for id in producer_ids {
            let found = self
                .peers
                .values()
                .find_map(|p| p.producers.get(id).map(|e| (p, e)))
                .filter(|(_, e)| !e.p.is_closed());
            let (p, e) = found.ok_or_else(|| {
                RoomError::not_found(format!("producer \"{id}\" is not in room \"{room_id}\""))
            })?;
            if !out.iter().any(|s| s.producer.id() == e.p.id()) {
                out.push(p.source(e));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Ear;
    use super::*;

    fn connect(st: &mut RoomState, id: &str, role: Role) -> Arc<Ear> {
        let ear = Arc::new(Ear::default());
        st.attach(Peer::new(id, 1, Some(ear.clone()), role), None)
            .unwrap();
        ear
    }

    fn join(st: &mut RoomState, id: &str) -> Result<Vec<PeerInfo>, RoomError> {
        st.join(id, id.to_uppercase(), json!({"name": "test"}), None)
    }

    #[test]
    fn joining_announces_to_joined_peers_only() {
        let mut st = RoomState::default();
        let a = connect(&mut st, "a", Role::Publish);
        let b = connect(&mut st, "b", Role::Publish);
        assert!(join(&mut st, "a").unwrap().is_empty());
        assert!(b.take().is_empty(), "b has not joined: it hears nothing");
        let others = join(&mut st, "b").unwrap();
        assert_eq!(
            others.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(
            a.take(),
            [
                json!({"method": "newPeer", "data": {"id": "b", "displayName": "B", "device": {"name": "test"}}})
            ]
        );
        assert_eq!(join(&mut st, "b").unwrap_err().status(), 409);
        assert_eq!(join(&mut st, "nobody").unwrap_err().status(), 409);
    }

    #[test]
    fn a_reconnecting_peer_replaces_the_old_one_and_the_others_see_it_leave() {
        let mut st = RoomState::default();
        let a = connect(&mut st, "a", Role::Publish);
        let _old_b = connect(&mut st, "b", Role::Publish);
        join(&mut st, "a").unwrap();
        join(&mut st, "b").unwrap();
        a.take();
        let old = st
            .attach(
                Peer::new("b", 2, Some(Arc::new(Ear::default())), Role::Publish),
                Some(2),
            )
            .unwrap()
            .expect("the old b");
        assert_eq!(old.session, 1);
        assert_eq!(st.peers["b"].session, 2);
        assert!(!st.peers["b"].joined);
        assert_eq!(
            a.take(),
            [json!({"method": "peerClosed", "data": {"peerId": "b"}})]
        );
    }

    #[test]
    fn leaving_before_joining_is_silent() {
        let mut st = RoomState::default();
        let a = connect(&mut st, "a", Role::Publish);
        join(&mut st, "a").unwrap();
        connect(&mut st, "b", Role::Publish);
        assert!(st.remove("b").is_some());
        assert!(st.remove("b").is_none());
        assert!(a.take().is_empty());
    }

    #[test]
    fn renames_are_heard_once_joined() {
        let mut st = RoomState::default();
        let a = connect(&mut st, "a", Role::Publish);
        connect(&mut st, "b", Role::Publish);
        join(&mut st, "a").unwrap();
        st.rename("b", "Bee".into()).unwrap();
        assert!(a.take().is_empty());
        // Joining names the peer anew.
        join(&mut st, "b").unwrap();
        a.take();
        st.rename("b", "Robert".into()).unwrap();
        assert_eq!(
            a.take(),
            [json!({"method": "peerDisplayNameChanged", "data": {
                "peerId": "b", "displayName": "Robert", "oldDisplayName": "B"}})]
        );
    }

    #[test]
    fn producing_needs_a_join_and_a_publishing_token() {
        let mut st = RoomState::default();
        connect(&mut st, "pub", Role::Publish);
        connect(&mut st, "sub", Role::Subscribe);
        assert_eq!(st.may_produce("pub").unwrap_err().status(), 409);
        join(&mut st, "pub").unwrap();
        join(&mut st, "sub").unwrap();
        assert!(st.may_produce("pub").is_ok());
        assert_eq!(st.may_produce("sub").unwrap_err().status(), 403);
        assert_eq!(st.may_produce("gone").unwrap_err().status(), 409);
    }

    #[test]
    fn a_full_room_refuses_new_peers_but_not_returning_ones() {
        let mut st = RoomState::default();
        connect(&mut st, "a", Role::Publish);
        connect(&mut st, "b", Role::Publish);
        let ear = || Some(Arc::new(Ear::default()) as Arc<dyn PeerLink>);
        let e = st
            .attach(Peer::new("c", 1, ear(), Role::Publish), Some(2))
            .unwrap_err();
        assert_eq!(e.status(), 429);
        assert_eq!(e.to_string(), "room full: at most 2 peers");
        let e = st
            .add_joined(Peer::new("bc", 0, None, Role::Publish), Some(2))
            .unwrap_err();
        assert_eq!(e.status(), 429);
        // "b" reconnecting replaces itself: no new place taken.
        assert!(
            st.attach(Peer::new("b", 2, ear(), Role::Publish), Some(2))
                .is_ok()
        );
        assert_eq!(st.peers.len(), 2);
        // Per-peer quotas count what the peer owns.
        assert!(
            st.quota("a", Some(1), "transports", |p| p.transports.len())
                .is_ok()
        );
        let e = st
            .quota("a", Some(0), "transports", |p| p.transports.len())
            .unwrap_err();
        assert_eq!(e.to_string(), "too many transports: at most 0 per peer");
        assert_eq!(e.status(), 429);
    }

    #[test]
    fn broadcasters_are_peers_without_a_connection() {
        let mut st = RoomState::default();
        let a = connect(&mut st, "a", Role::Publish);
        join(&mut st, "a").unwrap();
        a.take();
        let others = st
            .add_joined(Peer::new("bc", 0, None, Role::Publish), None)
            .unwrap();
        assert_eq!(others.len(), 1);
        assert_eq!(a.take().len(), 1, "newPeer");
        assert!(st.broadcaster("bc").is_ok());
        assert_eq!(st.broadcaster("a").unwrap_err().status(), 404);
        let dup = st
            .add_joined(Peer::new("bc", 0, None, Role::Publish), None)
            .unwrap_err();
        assert_eq!(dup.status(), 409);
        // Only connected peers are offered consumers of a new producer.
        assert_eq!(st.consumers_for("x"), ["a"]);
    }

    #[test]
    fn unknown_entities_are_not_found() {
        let mut st = RoomState::default();
        connect(&mut st, "a", Role::Publish);
        assert_eq!(st.transport("a", "t").unwrap_err().status(), 404);
        assert_eq!(st.producer("a", "p").unwrap_err().status(), 404);
        assert_eq!(st.any_producer("p").unwrap_err().status(), 404);
        assert_eq!(st.consumer("a", "c").unwrap_err().status(), 404);
        assert!(st.take_mid("a", None).is_none());
        let e = st.recording_sources("r", Some("nobody"), &[]).unwrap_err();
        assert_eq!(e.status(), 404);
        let e = st.recording_sources("r", Some("a"), &[]).unwrap_err();
        assert_eq!(e.status(), 409, "nothing to record");
        let e = st.recording_sources("r", None, &["p".into()]).unwrap_err();
        assert_eq!(e.status(), 404);
    }
}
