//! The built-in TURN server (RFC 8656 over UDP, TCP and TLS), for clients that cannot reach the
//! media ports directly (UDP blocked, only TCP 443 open).
//!
//! It runs inside the supervisor, as tasks on its runtime (pinned to `supervisor.cores`): it
//! shares the HTTP listener's certificate, issues the credentials the signaling hands out and
//! reports to `/metrics` without another process to deploy, and the relayed traffic is only the
//! share of clients that need it. The protocol engine is `turn-server-proto` (sans-IO, RFC
//! 5766/6062/6156/8656, TCP framing, permissions, channels, lifetimes); [`gate`] adds the REST
//! credentials, the relay policy (only this node's media addresses) and the per-user quota,
//! [`shell`] the sockets.

pub mod credentials;
pub mod gate;
mod shell;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};

pub use credentials::IceServer;
pub use gate::AllowedPeers;
pub use shell::{Framer, NotTurn};

use crate::config::TurnConfig;

/// What the TURN server needs besides its `[turn]` section.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    pub config: TurnConfig,
    /// The HTTP listener's certificate, for `tls_listen`.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Where relays may send: this node's media addresses.
    pub allowed: AllowedPeers,
    /// Address the relay sockets bind to.
    pub relay_ip: IpAddr,
    /// Host clients are told to reach the server at.
    pub public_host: String,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TurnStats {
    pub allocations: AtomicU64,
    pub allocations_total: AtomicU64,
    pub tcp_connections: AtomicU64,
    pub client_packets: AtomicU64,
    pub relayed_in_packets: AtomicU64,
    pub relayed_in_bytes: AtomicU64,
    pub relayed_out_packets: AtomicU64,
    pub relayed_out_bytes: AtomicU64,
    /// Refusals and drops by reason.
    reasons: Mutex<HashMap<&'static str, u64>>,
}

impl TurnStats {
    fn refuse(&self, reason: &'static str) {
        *self
            .reasons
            .lock()
            .expect("turn stats")
            .entry(reason)
            .or_default() += 1;
    }

    fn dropped(&self, reason: &'static str) {
        self.refuse(reason);
    }

    /// (reason, count), sorted.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self
            .reasons
            .lock()
            .expect("turn stats")
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        v.sort_unstable();
        v
    }
}

/// A running TURN server.
#[derive(Debug)]
pub struct Turn {
    secret: Vec<u8>,
    ttl_s: u64,
    urls: Vec<String>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    stats: Arc<TurnStats>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Turn {
    /// Binds the listeners (UDP + TCP on `listen`, TLS on `tls_listen`) and starts serving.
    pub async fn start(s: TurnSettings) -> Result<Arc<Turn>, String> {
        let c = &s.config;
        let listen = c.listen.ok_or("turn.listen is not set")?;
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|e| format!("turn udp {listen}: {e}"))?;
        let udp_addr = udp.local_addr().map_err(|e| e.to_string())?;
        // The TCP listener takes the UDP port (port 0 resolves to the same number).
        let tcp_listen = SocketAddr::new(listen.ip(), udp_addr.port());
        let tcp = TcpListener::bind(tcp_listen)
            .await
            .map_err(|e| format!("turn tcp {tcp_listen}: {e}"))?;
        let tcp_addr = tcp.local_addr().map_err(|e| e.to_string())?;
        let tls = match (c.tls_listen, &s.tls) {
            (Some(addr), Some(cfg)) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("turn tls {addr}: {e}"))?;
                // TURN clients offer no ALPN (or "stun.turn"); the HTTP config insists on
                // http/1.1.
                let mut cfg = (**cfg).clone();
                cfg.alpn_protocols.clear();
                Some((l, tokio_rustls::TlsAcceptor::from(Arc::new(cfg))))
            }
            (Some(_), None) => return Err("turn.tls_listen needs a TLS certificate".into()),
            _ => None,
        };
        let tls_addr = match &tls {
            Some((l, _)) => Some(l.local_addr().map_err(|e| e.to_string())?),
            None => None,
        };
        let secret = match &c.secret {
            Some(s) => s.as_bytes().to_vec(),
            None => {
                tracing::info!("turn: no secret configured, a random one is used for this run");
                let mut b = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
                    .map_err(|_| "no system randomness")?;
                b.to_vec()
            }
        };
        let stats = Arc::new(TurnStats::default());
        let (tx, rx) = mpsc::channel(shell::QUEUE);
        let udp = Arc::new(udp);
        let gate = gate::Gate::new(
            &secret,
            &c.realm,
            s.allowed.clone(),
            c.max_allocations_per_user,
        );
        let engine = shell::Shell::new(
            shell::Listeners {
                udp: udp.clone(),
                tcp: tcp_addr,
                tls: tls_addr,
            },
            &c.realm,
            gate,
            tx.clone(),
            s.relay_ip,
            c.relay_ports,
            c.max_allocations,
            stats.clone(),
        )
        .map_err(|e| e.to_string())?;
        let (stop, stop_rx) = watch::channel(false);
        // A client may hold a control connection per allocation, and some more while it tries.
        let max_connections = c.max_allocations.saturating_mul(2);
        let mut tasks = vec![
            tokio::spawn(engine.run(rx, stop_rx)),
            tokio::spawn(shell::read_datagrams(udp, tx.clone(), stats.clone())),
            tokio::spawn(shell::accept_streams(
                tcp,
                None,
                tx.clone(),
                stats.clone(),
                max_connections,
            )),
        ];
        if let Some((l, acceptor)) = tls {
            tasks.push(tokio::spawn(shell::accept_streams(
                l,
                Some(acceptor),
                tx,
                stats.clone(),
                max_connections,
            )));
        }
        let host = if s.public_host.contains(':') && !s.public_host.starts_with('[') {
            format!("[{}]", s.public_host)
        } else {
            s.public_host.clone()
        };
        let mut urls = vec![
            format!("turn:{host}:{}?transport=udp", udp_addr.port()),
            format!("turn:{host}:{}?transport=tcp", tcp_addr.port()),
        ];
        if let Some(a) = tls_addr {
            urls.push(format!("turns:{host}:{}?transport=tcp", a.port()));
        }
        tracing::info!(udp = %udp_addr, tcp = %tcp_addr, tls = ?tls_addr, relay_ip = %s.relay_ip,
            ?urls, "turn listening");
        Ok(Arc::new(Turn {
            secret,
            ttl_s: c.credential_ttl.as_secs(),
            urls,
            udp_addr,
            tcp_addr,
            tls_addr,
            stats,
            stop,
            tasks: Mutex::new(tasks),
        }))
    }

    /// Fresh credentials for `user` (a peer id), with every URL of this server.
    pub fn ice_servers(&self, user: &str) -> Vec<IceServer> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (username, credential) = credentials::issue(&self.secret, self.ttl_s, user, now);
        vec![IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }]
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    pub fn stats(&self) -> &TurnStats {
        &self.stats
    }

    /// Stops serving; allocations end with it.
    pub fn stop(&self) {
        self.stop.send_replace(true);
        for t in self.tasks.lock().expect("turn tasks").drain(..) {
            t.abort();
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The media addresses of this node, as the supervisor resolved them at start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MediaAddresses<'a> {
    /// The listen addresses with what they announce.
    pub listen: &'a [crate::config::MediaAddr],
    /// The addresses of the host's interfaces that are up.
    pub host: &'a [IpAddr],
    /// The node's announced (IPv4) address, if any.
    pub announced: Option<&'a str>,
}

/// The TURN settings for this node: relays may reach the media listen addresses (every local
/// address of the family when listening on 0.0.0.0 or ::, plus the announced addresses) on the
/// RTC port range and the workers' WebRtcServer ports.
pub(crate) fn settings_from_config(
    config: &crate::Config,
    media: MediaAddresses<'_>,
    workers: usize,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
) -> TurnSettings {
    let announced = media.announced;
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in media.listen {
        if a.ip.is_unspecified() {
            ips.extend(media.host.iter().filter(|h| h.is_ipv4() == a.ip.is_ipv4()));
        } else {
            ips.push(a.ip);
        }
        ips.extend(
            a.announced
                .as_deref()
                .and_then(|s| s.parse::<IpAddr>().ok()),
        );
    }
    let ips: Vec<IpAddr> = ips.into_iter().map(|ip| ip.to_canonical()).collect();
    let mut ports = vec![config.rtc_ports.min..=config.rtc_ports.max];
    if config.webrtc_server_port != 0 {
        let last = u32::from(config.webrtc_server_port) + workers.max(1) as u32 - 1;
        ports.push(config.webrtc_server_port..=u16::try_from(last).unwrap_or(u16::MAX));
    }
    // A local address of the host (not the announced IP, which may be a NAT's): the first IPv4
    // listen address, or the host's first non-loopback IPv4 address when that one is 0.0.0.0.
    let first = media
        .listen
        .iter()
        .find(|a| a.ip.is_ipv4())
        .or(media.listen.first())
        .map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip);
    let relay_ip = config.turn.relay_ip.unwrap_or(if first.is_unspecified() {
        media
            .host
            .iter()
            .copied()
            .find(|h| h.is_ipv4() && !h.is_loopback())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    } else {
        first
    });
    let public_host = config
        .turn
        .public_host
        .clone()
        .or_else(|| announced.map(str::to_owned))
        .unwrap_or_else(|| relay_ip.to_string());
    let mut all = ips;
    all.push(relay_ip);
    all.sort_unstable();
    all.dedup();
    TurnSettings {
        config: config.turn.clone(),
        tls,
        allowed: AllowedPeers { ips: all, ports },
        relay_ip,
        public_host,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// `/metrics`: the TURN server's figures.
pub(crate) fn register_metrics(reg: &mut prometheus_client::registry::Registry, s: &TurnStats) {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    let gauge = |v: u64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        g
    };
    let counter = |v: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        c
    };
    reg.register(
        "ferrosfu_turn_allocations",
        "Live TURN allocations (relay sockets)",
        gauge(s.allocations.load(Relaxed)),
    );
    reg.register(
        "ferrosfu_turn_allocations_created",
        "TURN allocations made since start",
        counter(s.allocations_total.load(Relaxed)),
    );
    reg.register(
        "ferrosfu_turn_connections",
        "Open TURN TCP/TLS connections",
        gauge(s.tcp_connections.load(Relaxed)),
    );
    let packets = Family::<DirectionLabel, Counter>::default();
    let bytes = Family::<DirectionLabel, Counter>::default();
    for (direction, p, b) in [
        ("to_peer", &s.relayed_out_packets, &s.relayed_out_bytes),
        ("from_peer", &s.relayed_in_packets, &s.relayed_in_bytes),
    ] {
        packets
            .get_or_create(&DirectionLabel { direction })
            .inc_by(p.load(Relaxed));
        bytes
            .get_or_create(&DirectionLabel { direction })
            .inc_by(b.load(Relaxed));
    }
    reg.register(
        "ferrosfu_turn_relayed_packets",
        "Packets relayed between TURN clients and this node's media",
        packets,
    );
    reg.register(
        "ferrosfu_turn_relayed_bytes",
        "Bytes relayed between TURN clients and this node's media",
        bytes,
    );
    let refused = Family::<ReasonLabel, Counter>::default();
    for (reason, n) in s.refusals() {
        refused.get_or_create(&ReasonLabel { reason }).inc_by(n);
    }
    reg.register(
        "ferrosfu_turn_refused",
        "TURN messages refused or dropped, by reason (expired, forbidden_peer, user_quota, \
         node_quota, malformed, overload, ...)",
        refused,
    );
}
