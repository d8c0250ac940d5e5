//! What the operator API says of rooms (`GET /api/rooms`, `GET /api/rooms/:roomId`): per-room
//! detail read at request time from the room state and the workers' stats and dumps, never
//! exported as metric labels (room and peer ids would blow up the cardinality).
//!
//! The room lock is held only to copy out the handles; the worker requests run afterwards, all
//! at once, each bounded by [`ASK_TIMEOUT`] (a field a worker did not answer in time is null).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use ferrosfu_fbs::{ConsumerLayers, ConsumerType, RtpStreamStats, TransportStats};
use futures_util::future::join_all;
use serde::Serialize;

use super::state::Peer;
use super::{Room, Rooms};
use crate::media::{Consumer, Producer, Transport, TransportKind};
use crate::ortc::MediaKind;

/// How long one stats or dump request may take before its field is left out.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

async fn ask<T, E>(f: impl Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(ASK_TIMEOUT, f).await.ok()?.ok()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// One entry of `GET /api/rooms`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoomSummary {
    id: String,
    /// Peers connected to this node (joined or not) and peers of other nodes of the cluster.
    peers: usize,
    remote_peers: usize,
    /// The core of the worker the room opened on, then every core it has routers on.
    core: Option<u32>,
    cores: Vec<u32>,
    created_at: String,
}

/// `GET /api/rooms/:roomId`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoomDetail {
    id: String,
    core: Option<u32>,
    cores: Vec<u32>,
    created_at: String,
    /// End-to-end encrypted: the node forwards ciphertext and refuses to record it.
    e2ee: bool,
    p2p: P2pDetail,
    /// RTP packets the node received from the room's producers and sent to its consumers,
    /// summed over the room (0 forwarded while a two-party call is peer to peer).
    rtp: RtpTotals,
    peers: Vec<PeerDetail>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct P2pDetail {
    /// auto or off.
    mode: crate::config::P2pMode,
    /// sfu, connecting or p2p.
    phase: &'static str,
    /// The two of a direct call (the offerer first).
    pair: Option<[String; 2]>,
    history: Vec<serde_json::Value>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct RtpTotals {
    packets_received: u64,
    packets_forwarded: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PeerDetail {
    id: String,
    display_name: String,
    joined: bool,
    joined_at: Option<String>,
    /// The node it is connected to, for a peer of another node (its media is not here).
    node: Option<String>,
    /// Fraction lost (0-1) of what the node receives from the peer (our receiver reports) and
    /// sends it (its feedback), the worst of its transports; null until RTCP says.
    packet_loss: Loss,
    /// Mean round-trip time of its consumers' streams, from its receiver reports; null until
    /// one says.
    rtt_ms: Option<f64>,
    transports: Vec<TransportDetail>,
    producers: Vec<ProducerDetail>,
    consumers: Vec<ConsumerDetail>,
}

#[derive(Debug, Default, Serialize)]
struct Loss {
    received: Option<f64>,
    sent: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TransportDetail {
    id: String,
    /// webrtc, plain or direct.
    kind: &'static str,
    /// Whether it carries the peer's consumers (a receive transport).
    consuming: bool,
    /// Bit/s over the last second.
    recv_bitrate: Option<u32>,
    send_bitrate: Option<u32>,
    packet_loss: Loss,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProducerDetail {
    id: String,
    kind: MediaKind,
    paused: bool,
    /// One per stream (simulcast: per encoding); null when the worker did not answer.
    streams: Option<Vec<StreamScore>>,
    /// RTP packets received, all streams (0 when the worker did not answer).
    packets_received: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StreamScore {
    ssrc: u32,
    rid: Option<String>,
    /// 0-10.
    score: u8,
    bitrate: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConsumerDetail {
    id: String,
    producer_id: String,
    kind: MediaKind,
    /// simple, simulcast, svc, pipe (null when the worker did not answer).
    r#type: Option<&'static str>,
    paused: bool,
    producer_paused: bool,
    /// 0-10: what the peer receives, and what the producer delivers.
    score: u8,
    producer_score: u8,
    /// Simulcast and SVC consumers: the layers forwarded now and the ones the peer prefers.
    layers: Option<Layers>,
    rtt_ms: Option<u32>,
    /// RTP packets sent to the peer (0 when the worker did not answer).
    packets_sent: u64,
}

#[derive(Debug, Serialize)]
struct Layers {
    current: Option<Layer>,
    preferred: Option<Layer>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Layer {
    spatial_layer: u8,
    temporal_layer: Option<u8>,
}

impl From<ConsumerLayers> for Layer {
    fn from(l: ConsumerLayers) -> Self {
        Self {
            spatial_layer: l.spatial_layer,
            temporal_layer: l.temporal_layer,
        }
    }
}

/// What a peer holds, copied out under the room lock.
struct PeerCopy {
    id: String,
    display_name: String,
    joined: bool,
    joined_at: Option<SystemTime>,
    node: Option<String>,
    transports: Vec<(Transport, bool)>,
    producers: Vec<Producer>,
    consumers: Vec<Consumer>,
}

impl PeerCopy {
    fn of(p: &Peer, now: SystemTime) -> Self {
        Self {
            id: p.id.clone(),
            display_name: p.display_name.clone(),
            joined: p.joined,
            joined_at: p
                .participant
                .as_ref()
                .and_then(|part| now.checked_sub(part.joined.elapsed())),
            node: p.remote.as_ref().map(ToString::to_string),
            transports: p
                .transports
                .values()
                .map(|t| (t.t.clone(), t.consuming))
                .collect(),
            producers: p.producers.values().map(|e| e.p.clone()).collect(),
            consumers: p.consumers.values().cloned().collect(),
        }
    }
}

impl Rooms {
    /// `GET /api/rooms`: every open room, by id.
    pub(crate) async fn summaries(&self) -> Vec<RoomSummary> {
        let mut rooms = self.open_rooms().await;
        rooms.sort_by(|a, b| a.id.cmp(&b.id));
        let cores = self.cores();
        let mut out = Vec::with_capacity(rooms.len());
        for r in rooms {
            let (local, remote) = {
                let st = r.state.lock().await;
                let remote = st.peers.values().filter(|p| p.remote.is_some()).count();
                (st.peers.len() - remote, remote)
            };
            out.push(summary(&r, &cores, local, remote));
        }
        out
    }

    /// `GET /api/rooms/:roomId`; `None` when no such room is open.
    pub(crate) async fn inspect(&self, id: &str) -> Option<RoomDetail> {
        let room = self.get(id).await?;
        let now = SystemTime::now();
        let (peers, p2p) = {
            let st = room.state.lock().await;
            let mut v: Vec<_> = st.peers.values().map(|p| PeerCopy::of(p, now)).collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            let p2p = P2pDetail {
                mode: st.p2p.mode.unwrap_or(self.media.p2p.mode),
                phase: st.p2p.phase.name(),
                pair: st.p2p.phase.pair().map(|p| [p.a.clone(), p.b.clone()]),
                history: st.p2p.history.clone(),
            };
            (v, p2p)
        };
        let (core, cores) = cores_of(&room, &self.cores());
        let peers = join_all(peers.into_iter().map(peer_detail)).await;
        let rtp = peers.iter().fold(RtpTotals::default(), |t, p| RtpTotals {
            packets_received: t.packets_received
                + p.producers.iter().map(|x| x.packets_received).sum::<u64>(),
            packets_forwarded: t.packets_forwarded
                + p.consumers.iter().map(|x| x.packets_sent).sum::<u64>(),
        });
        Some(RoomDetail {
            id: room.id.clone(),
            core,
            cores,
            created_at: rfc3339(room.created),
            e2ee: room.is_e2ee(),
            p2p,
            rtp,
            peers,
        })
    }

    /// Worker pid → core, of the running workers.
    fn cores(&self) -> HashMap<u32, u32> {
        self.pool
            .snapshot()
            .iter()
            .filter_map(|i| Some((i.worker.as_ref()?.pid(), i.core)))
            .collect()
    }
}

/// The core of the worker room `r` opened on, and every core it has routers on (`cores`: worker
/// pid → core).
fn cores_of(r: &Room, cores: &HashMap<u32, u32>) -> (Option<u32>, Vec<u32>) {
    let mut all: Vec<u32> = r
        .routers()
        .iter()
        .filter_map(|rr| cores.get(&rr.router.worker().pid()).copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    (cores.get(&r.router().worker().pid()).copied(), all)
}

fn summary(r: &Room, cores: &HashMap<u32, u32>, peers: usize, remote_peers: usize) -> RoomSummary {
    let (core, cores) = cores_of(r, cores);
    RoomSummary {
        id: r.id.clone(),
        peers,
        remote_peers,
        core,
        cores,
        created_at: rfc3339(r.created),
    }
}

/// The larger of two optional losses.
fn worst(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

async fn peer_detail(p: PeerCopy) -> PeerDetail {
    let (transports, producers, consumers) = futures_util::join!(
        join_all(p.transports.iter().map(|(t, c)| transport_detail(t, *c))),
        join_all(p.producers.iter().map(producer_detail)),
        join_all(p.consumers.iter().map(consumer_detail)),
    );
    let packet_loss = transports.iter().fold(Loss::default(), |l, t| Loss {
        received: worst(l.received, t.packet_loss.received),
        sent: worst(l.sent, t.packet_loss.sent),
    });
    let rtts: Vec<f64> = consumers
        .iter()
        .filter_map(|c| c.rtt_ms)
        .filter(|&ms| ms > 0)
        .map(f64::from)
        .collect();
    let rtt_ms = (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64);
    PeerDetail {
        id: p.id,
        display_name: p.display_name,
        joined: p.joined,
        joined_at: p.joined_at.map(rfc3339),
        node: p.node,
        packet_loss,
        rtt_ms,
        transports,
        producers,
        consumers,
    }
}

async fn transport_detail(t: &Transport, consuming: bool) -> TransportDetail {
    let stats: Option<TransportStats> = ask(t.get_stats()).await;
    TransportDetail {
        id: t.id().as_str().to_owned(),
        kind: match t.kind() {
            TransportKind::WebRtc(_) => "webrtc",
            TransportKind::Plain(_) => "plain",
            TransportKind::Direct(_) => "direct",
        },
        consuming,
        recv_bitrate: stats.as_ref().map(|s| s.recv_bitrate),
        send_bitrate: stats.as_ref().map(|s| s.send_bitrate),
        packet_loss: Loss {
            received: stats.as_ref().and_then(|s| s.rtp_packet_loss_received),
            sent: stats.as_ref().and_then(|s| s.rtp_packet_loss_sent),
        },
    }
}

async fn producer_detail(p: &Producer) -> ProducerDetail {
    let streams: Option<Vec<RtpStreamStats>> = ask(p.get_stats()).await;
    ProducerDetail {
        id: p.id().as_str().to_owned(),
        kind: p.kind().into(),
        paused: p.paused(),
        packets_received: streams.iter().flatten().map(|s| s.packet_count).sum(),
        streams: streams.map(|s| {
            s.into_iter()
                .map(|s| StreamScore {
                    ssrc: s.ssrc,
                    rid: s.rid,
                    score: s.score,
                    bitrate: s.bitrate,
                })
                .collect()
        }),
    }
}

async fn consumer_detail(c: &Consumer) -> ConsumerDetail {
    let (dump, stats) = futures_util::join!(ask(c.dump()), ask(c.get_stats()));
    let score = c.score();
    let layered = dump
        .as_ref()
        .filter(|d| matches!(d.consumer_type, ConsumerType::Simulcast | ConsumerType::Svc));
    ConsumerDetail {
        id: c.id().as_str().to_owned(),
        producer_id: c.producer_id().as_str().to_owned(),
        kind: c.kind().into(),
        r#type: dump.as_ref().map(|d| d.consumer_type.as_str()),
        paused: c.paused(),
        producer_paused: c.producer_paused(),
        score: score.score,
        producer_score: score.producer_score,
        layers: layered.map(|d| Layers {
            current: d.current_layers.map(Layer::from),
            preferred: d.preferred_layers.map(Layer::from),
        }),
        rtt_ms: stats
            .as_ref()
            .and_then(|s| s.first())
            .map(|s| s.round_trip_time),
        packets_sent: stats.iter().flatten().map(|s| s.packet_count).sum(),
    }
}
