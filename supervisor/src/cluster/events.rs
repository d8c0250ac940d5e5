//! Room events between nodes and this node's own share of each room.
//!
//! Events travel as JSON on one Redis pub/sub channel per room (`ferrosfu:room:<roomId>`):
//! Redis then delivers a room's events only to the nodes hosting it, and a node's subscriptions
//! are exactly its rooms. [`LocalRooms`] mirrors what this node has published (its peers and
//! their producers): it is what the room directory in Redis holds for this node, rewritten from
//! here whenever Redis lost it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::NodeId;

/// Something that happened to a room on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum RoomEvent {
    PeerJoined {
        peer_id: String,
        display_name: String,
        #[serde(default)]
        device: Value,
    },
    PeerLeft {
        peer_id: String,
    },
    ProducerAdded {
        peer_id: String,
        producer_id: String,
        /// "audio" or "video".
        kind: String,
        /// The consumable RTP parameters (what a consumer on another router is made from).
        rtp_parameters: Value,
        #[serde(default)]
        app_data: Value,
        paused: bool,
    },
    ProducerClosed {
        peer_id: String,
        producer_id: String,
    },
    /// A data producer other peers may consume (for `chat`, the room's checked relay of it is
    /// what travels; the offer still names this id).
    DataProducerAdded {
        peer_id: String,
        #[serde(flatten)]
        data_producer: DataProducerEntry,
    },
    DataProducerClosed {
        peer_id: String,
        data_producer_id: String,
    },
    ProducerPaused {
        peer_id: String,
        producer_id: String,
    },
    ProducerResumed {
        peer_id: String,
        producer_id: String,
    },
    DisplayNameChanged {
        peer_id: String,
        display_name: String,
    },
    /// The loudest producer of the room (all None: silence).
    ActiveSpeaker {
        peer_id: Option<String>,
        producer_id: Option<String>,
        volume: Option<i32>,
    },
}

/// A [`RoomEvent`] with where it happened: the message on the room's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomMessage {
    pub room: String,
    pub node: NodeId,
    #[serde(flatten)]
    pub event: RoomEvent,
}

/// A producer as the room directory lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerEntry {
    pub producer_id: String,
    pub kind: String,
    pub rtp_parameters: Value,
    #[serde(default)]
    pub app_data: Value,
    pub paused: bool,
}

/// A data producer as the room directory lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataProducerEntry {
    pub data_producer_id: String,
    pub label: String,
    pub protocol: String,
    #[serde(default)]
    pub app_data: Value,
    /// The SCTP stream parameters its consumers get (ordered, partial reliability), as JSON.
    #[serde(default)]
    pub stream: Value,
}

/// A peer as the room directory lists it, with its producers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerEntry {
    pub peer_id: String,
    pub display_name: String,
    #[serde(default)]
    pub device: Value,
    #[serde(default)]
    pub producers: Vec<ProducerEntry>,
    #[serde(default)]
    pub data_producers: Vec<DataProducerEntry>,
}

/// A peer of another node, from the room directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemotePeer {
    pub node: NodeId,
    #[serde(flatten)]
    pub peer: PeerEntry,
}

/// Why an event could not be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("peer {0} has not joined room {1} on this node")]
    UnknownPeer(String, String),
    #[error("peer {0} already joined room {1} on this node")]
    PeerExists(String, String),
    #[error("producer {0} is not known in room {1}")]
    UnknownProducer(String, String),
    #[error("event too large ({0} bytes)")]
    TooLarge(usize),
}

/// What publishing an event changes in the room directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DirWrite {
    /// Nothing (e.g. active speaker).
    None,
    /// Write this peer's entry; `first` when the room just became local (index it).
    Upsert {
        peer_id: String,
        entry: String,
        first: bool,
    },
    /// Remove the peer; `last` when the node has no peer left in the room.
    Remove { peer_id: String, last: bool },
}

/// This node's peers (and their producers) by room: what it published.
#[derive(Debug, Default)]
pub(crate) struct LocalRooms {
    rooms: BTreeMap<String, BTreeMap<String, PeerEntry>>,
}

impl LocalRooms {
    /// Applies an event about to be published; returns the directory write it implies.
    pub(crate) fn apply(
        &mut self,
        room: &str,
        event: &RoomEvent,
    ) -> Result<DirWrite, PublishError> {
        let unknown_peer = |p: &str| PublishError::UnknownPeer(p.to_owned(), room.to_owned());
        match event {
            RoomEvent::PeerJoined {
                peer_id,
                display_name,
                device,
            } => {
                let first = !self.rooms.contains_key(room);
                let peers = self.rooms.entry(room.to_owned()).or_default();
                if peers.contains_key(peer_id) {
                    return Err(PublishError::PeerExists(peer_id.clone(), room.to_owned()));
                }
                let entry = PeerEntry {
                    peer_id: peer_id.clone(),
                    display_name: display_name.clone(),
                    device: device.clone(),
                    producers: Vec::new(),
                    data_producers: Vec::new(),
                };
                let json = to_json(&entry);
                peers.insert(peer_id.clone(), entry);
                Ok(DirWrite::Upsert {
                    peer_id: peer_id.clone(),
                    entry: json,
                    first,
                })
            }
            RoomEvent::PeerLeft { peer_id } => {
                let peers = self
                    .rooms
                    .get_mut(room)
                    .ok_or_else(|| unknown_peer(peer_id))?;
                peers.remove(peer_id).ok_or_else(|| unknown_peer(peer_id))?;
                let last = peers.is_empty();
                if last {
                    self.rooms.remove(room);
                }
                Ok(DirWrite::Remove {
                    peer_id: peer_id.clone(),
                    last,
                })
            }
            RoomEvent::ProducerAdded {
                peer_id,
                producer_id,
                kind,
                rtp_parameters,
                app_data,
                paused,
            } => self.update_peer(room, peer_id, |p| {
                p.producers.retain(|x| x.producer_id != *producer_id);
                p.producers.push(ProducerEntry {
                    producer_id: producer_id.clone(),
                    kind: kind.clone(),
                    rtp_parameters: rtp_parameters.clone(),
                    app_data: app_data.clone(),
                    paused: *paused,
                });
                Ok(())
            }),
            RoomEvent::ProducerClosed {
                peer_id,
                producer_id,
            } => self.update_peer(room, peer_id, |p| {
                let before = p.producers.len();
                p.producers.retain(|x| x.producer_id != *producer_id);
                if p.producers.len() == before {
                    return Err(PublishError::UnknownProducer(
                        producer_id.clone(),
                        room.to_owned(),
                    ));
                }
                Ok(())
            }),
            RoomEvent::ProducerPaused {
                peer_id,
                producer_id,
            }
            | RoomEvent::ProducerResumed {
                peer_id,
                producer_id,
            } => {
                let paused = matches!(event, RoomEvent::ProducerPaused { .. });
                self.update_peer(room, peer_id, |p| {
                    let producer = p
                        .producers
                        .iter_mut()
                        .find(|x| x.producer_id == *producer_id)
                        .ok_or_else(|| {
                            PublishError::UnknownProducer(producer_id.clone(), room.to_owned())
                        })?;
                    producer.paused = paused;
                    Ok(())
                })
            }
            RoomEvent::DisplayNameChanged {
                peer_id,
                display_name,
            } => self.update_peer(room, peer_id, |p| {
                p.display_name = display_name.clone();
                Ok(())
            }),
            RoomEvent::DataProducerAdded {
                peer_id,
                data_producer,
            } => self.update_peer(room, peer_id, |p| {
                p.data_producers
                    .retain(|x| x.data_producer_id != data_producer.data_producer_id);
                p.data_producers.push(data_producer.clone());
                Ok(())
            }),
            RoomEvent::DataProducerClosed {
                peer_id,
                data_producer_id,
            } => self.update_peer(room, peer_id, |p| {
                p.data_producers
                    .retain(|x| x.data_producer_id != *data_producer_id);
                Ok(())
            }),
            RoomEvent::ActiveSpeaker { .. } => Ok(DirWrite::None),
        }
    }

    fn update_peer(
        &mut self,
        room: &str,
        peer_id: &str,
        change: impl FnOnce(&mut PeerEntry) -> Result<(), PublishError>,
    ) -> Result<DirWrite, PublishError> {
        let peer = self
            .rooms
            .get_mut(room)
            .and_then(|peers| peers.get_mut(peer_id))
            .ok_or_else(|| PublishError::UnknownPeer(peer_id.to_owned(), room.to_owned()))?;
        change(peer)?;
        Ok(DirWrite::Upsert {
            peer_id: peer_id.to_owned(),
            entry: to_json(peer),
            first: false,
        })
    }

    pub(crate) fn hosts(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// Rooms with at least one local peer.
    pub(crate) fn room_ids(&self) -> Vec<String> {
        self.rooms.keys().cloned().collect()
    }

    /// Every room with its peers' directory entries (JSON), for a full rewrite.
    pub(crate) fn snapshot(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.rooms
            .iter()
            .map(|(room, peers)| {
                let entries = peers
                    .iter()
                    .map(|(id, p)| (id.clone(), to_json(p)))
                    .collect();
                (room.clone(), entries)
            })
            .collect()
    }

    /// (rooms, peers) hosted here.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.rooms.len(),
            self.rooms.values().map(BTreeMap::len).sum(),
        )
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("directory entries are plain JSON values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn joined(peer: &str) -> RoomEvent {
        RoomEvent::PeerJoined {
            peer_id: peer.into(),
            display_name: format!("{peer} name"),
            device: json!({"name": "test"}),
        }
    }

    fn produced(peer: &str, producer: &str) -> RoomEvent {
        RoomEvent::ProducerAdded {
            peer_id: peer.into(),
            producer_id: producer.into(),
            kind: "audio".into(),
            rtp_parameters: json!({"codecs": []}),
            app_data: json!({}),
            paused: false,
        }
    }

    #[test]
    fn messages_are_flat_camel_case_json() {
        let m = RoomMessage {
            room: "r1".into(),
            node: NodeId::new("n1"),
            event: produced("p1", "x1"),
        };
        let v = serde_json::to_value(&m).expect("serializes");
        assert_eq!(v["type"], "producerAdded");
        assert_eq!(v["room"], "r1");
        assert_eq!(v["node"], "n1");
        assert_eq!(v["producerId"], "x1");
        assert_eq!(v["rtpParameters"], json!({"codecs": []}));
        let back: RoomMessage = serde_json::from_value(v).expect("parses");
        assert_eq!(back, m);
        let silence: RoomMessage = serde_json::from_str(
            r#"{"room":"r","node":"n","type":"activeSpeaker","peerId":null,"producerId":null,"volume":null}"#,
        )
        .expect("parses");
        assert!(matches!(
            silence.event,
            RoomEvent::ActiveSpeaker { peer_id: None, .. }
        ));
        for bad in [
            r#"{"room":"r","node":"n","type":"nope"}"#,
            r#"{"room":"r","type":"peerLeft","peerId":"p"}"#,
            "[]",
        ] {
            assert!(serde_json::from_str::<RoomMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_mirror_follows_joins_producers_and_leaves() {
        let mut l = LocalRooms::default();
        let first = l.apply("r", &joined("a")).expect("joins");
        assert!(matches!(first, DirWrite::Upsert { first: true, .. }));
        let second = l.apply("r", &joined("b")).expect("joins");
        assert!(matches!(second, DirWrite::Upsert { first: false, .. }));
        assert!(l.apply("r", &joined("b")).is_err(), "twice");
        l.apply("r", &produced("a", "x")).expect("produces");
        l.apply(
            "r",
            &RoomEvent::ProducerPaused {
                peer_id: "a".into(),
                producer_id: "x".into(),
            },
        )
        .expect("pauses");
        let snap = l.snapshot();
        let a: PeerEntry = serde_json::from_str(&snap[0].1[0].1).expect("entry");
        assert_eq!(a.producers.len(), 1);
        assert!(a.producers[0].paused);
        assert!(
            l.apply("r", &produced("zz", "y")).is_err(),
            "unknown peer refused"
        );
        assert_eq!(l.counts(), (1, 2));
        let left = l
            .apply(
                "r",
                &RoomEvent::PeerLeft {
                    peer_id: "a".into(),
                },
            )
            .expect("leaves");
        assert_eq!(
            left,
            DirWrite::Remove {
                peer_id: "a".into(),
                last: false
            }
        );
        let left = l
            .apply(
                "r",
                &RoomEvent::PeerLeft {
                    peer_id: "b".into(),
                },
            )
            .expect("leaves");
        assert!(matches!(left, DirWrite::Remove { last: true, .. }));
        assert!(!l.hosts("r"));
        assert_eq!(l.counts(), (0, 0));
    }
}
