//! What `/metrics` says of the rooms: rooms, peers (local and of other nodes), rooms spanning
//! workers, pipe transports between this node's workers and toward other nodes, and what the
//! pipes carry. Read when scraped; no per-packet work.

use std::time::Duration;

use super::Rooms;
use crate::media::Transport;

/// A pipe transport that does not answer its stats within this is left out of the bit rates.
const STATS_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RoomsStats {
    pub rooms: u64,
    pub local_peers: u64,
    pub remote_peers: u64,
    /// Rooms with routers on more than one worker of this node.
    pub spanning: u64,
    /// PipeTransports between this node's routers (one per pair and direction's side).
    pub worker_pipes: u64,
    /// PipeTransports toward other nodes.
    pub node_pipes: u64,
    /// What all pipe transports send and receive (bit/s, the worker's 1 s rates).
    pub pipe_send_bps: u64,
    pub pipe_recv_bps: u64,
}

impl Rooms {
    pub(crate) async fn stats(&self) -> RoomsStats {
        let rooms = self.open_rooms().await;
        let mut s = RoomsStats {
            rooms: rooms.len() as u64,
            ..RoomsStats::default()
        };
        let mut pipes: Vec<Transport> = Vec::new();
        for r in &rooms {
            {
                let st = r.state.lock().await;
                for p in st.peers.values() {
                    if p.remote.is_some() {
                        s.remote_peers += 1;
                    } else {
                        s.local_peers += 1;
                    }
                }
            }
            let routers = r.routers();
            if routers.len() > 1 {
                s.spanning += 1;
            }
            for rr in routers {
                let t = rr.router.pipes().lock().await.transports();
                s.worker_pipes += t.len() as u64;
                pipes.extend(t);
            }
        }
        let node = self.node_pipes.open();
        s.node_pipes = node.len() as u64;
        pipes.extend(node);
        for t in pipes {
            if let Ok(Ok(st)) = tokio::time::timeout(STATS_TIMEOUT, t.get_stats()).await {
                s.pipe_send_bps += u64::from(st.send_bitrate);
                s.pipe_recv_bps += u64::from(st.recv_bitrate);
            }
        }
        s
    }
}
