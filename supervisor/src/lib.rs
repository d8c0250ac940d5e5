//! The ferrosfu supervisor: everything above the worker channel.
//!
//! [`Supervisor::start`] spawns the worker pool (one pinned worker per configured core), binds
//! the HTTP listener and reports readiness to systemd; [`Supervisor::shutdown`] drains: it stops
//! accepting work, closes the workers (killing stragglers) and stops the listener. The phases are
//! observable through [`Supervisor::lifecycle`].

mod admin;
pub mod affinity;
mod api_error;
pub mod auth;
pub(crate) mod captions;
pub mod channel;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod container;
mod drain;
mod http;
pub mod lifecycle;
pub mod limits;
pub mod load;
pub mod logging;
pub mod media;
mod metrics;
pub mod ortc;
pub mod placement;
pub mod pool;
pub mod recording;
mod rooms;
pub mod signaling;
pub mod store;
mod tls;
pub mod turn;
pub mod whip;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;

pub use channel::{Channel, RequestError};
pub use config::{Cli, Config};
pub use lifecycle::{Lifecycle, Phase};
pub use media::{CloseReason, Consumer, Producer, Transport, TransportKind, WebRtcServer};
pub use pool::{PoolEvent, RestartPolicy, WebRtcServerSpec, WorkerInfo, WorkerPool};
pub use tls::CertReloader;
pub use worker::{Router, RouterClosed, SpawnError, Worker, WorkerExit, WorkerSettings};

/// Why the supervisor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("worker on core {core}: {source}")]
    Worker { core: u32, source: SpawnError },
    #[error("http listener {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(String),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
    #[error("turn: {0}")]
    Turn(String),
}

impl StartError {
    /// Configuration problems exit with 2 (systemd will not help by restarting); others with 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) | StartError::Tls(_) => 2,
            StartError::Worker { source, .. } if source.is_bad_settings() => 2,
            StartError::Cluster(e) if e.is_config() => 2,
            _ => 1,
        }
    }
}

/// A running supervisor.
#[derive(Debug)]
pub struct Supervisor {
    config: Config,
    pool: WorkerPool,
    lifecycle: Arc<Lifecycle>,
    http_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    tls_reloader: Option<Arc<CertReloader>>,
    http_stop: tokio::sync::watch::Sender<bool>,
    http_task: tokio::task::JoinHandle<()>,
    rooms: Arc<rooms::Rooms>,
    recordings: Arc<recording::Recordings>,
    store: store::Store,
    cluster: Option<Arc<cluster::Cluster>>,
    turn: Option<Arc<turn::Turn>>,
    drain: Arc<drain::Drain>,
}

impl Supervisor {
    pub async fn start(config: Config) -> Result<Supervisor, StartError> {
        let lifecycle = Arc::new(Lifecycle::default());
        if config.dev {
            tracing::warn!("development mode (--dev): unauthenticated access is allowed");
        }
        let cores = config.worker_cores.resolve().map_err(StartError::Config)?;
        let recording_cores = match &config.recording_cores {
            Some(list) => list.resolve().map_err(StartError::Config)?,
            None => {
                let all = config::CoreList::Auto
                    .resolve()
                    .map_err(StartError::Config)?;
                let free: Vec<u32> = all.iter().copied().filter(|c| !cores.contains(c)).collect();
                if free.is_empty() { all } else { free }
            }
        };
        let recordings_dir = std::path::absolute(&config.recordings_dir)
            .and_then(|d| std::fs::create_dir_all(&d).map(|()| d))
            .map_err(|e| {
                StartError::Config(format!(
                    "recordings directory {}: {e}",
                    config.recordings_dir.display()
                ))
            })?;
        let bin = config.resolve_worker_bin();
        let settings = WorkerSettings {
            core: None,
            log_level: config.worker_log_level,
            log_targets: config.worker_log_targets.clone(),
            rtc_ports: (config.rtc_ports.min, config.rtc_ports.max),
            request_timeout: config.request_timeout,
            ..WorkerSettings::new(bin.clone())
        };
        let (tls, tls_reloader) = match &config.tls {
            Some((cert, key)) => {
                let (cfg, reloader) = tls::server_config(cert, key).map_err(StartError::Tls)?;
                (Some(cfg), Some(reloader))
            }
            None => (None, None),
        };
        if config.jwt_secret.is_none() && !config.dev {
            tracing::warn!(
                "no auth.jwt_secret configured and not in --dev mode: signaling and REST refuse everyone"
            );
        }
        // Bind first: a taken port then fails fast, before any worker exists.
        let listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.http_listen,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.http_listen,
            source,
        })?;
        let admin_listener = match config.admin_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Listen { addr, source })?,
            ),
            None => None,
        };
        let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
        // The store before the workers: a database that cannot be reached or migrated stops the
        // start here (systemd restarts the unit); later outages are retried in the background.
        let store = store::Store::open(&config.database_url).await?;
        if store.backend() == store::Backend::Sqlite {
            // An embedded database belongs to this supervisor alone: meetings an earlier run
            // left open (it was killed) are over.
            store.write(store::Write::MeetingsInterrupted {
                at: chrono::Utc::now(),
            });
        }
        let host = config::host_addresses();
        let media_addrs = config.media_listen.resolve(&host);
        // The node's announced address for the cluster and TURN: the first IPv4 one.
        let announced = media_addrs
            .iter()
            .find(|a| a.ip.is_ipv4())
            .or(media_addrs.first())
            .and_then(|a| a.announced.clone());
        // Redis before the workers: a wrong password or an unreachable Redis stops the start.
        let cluster_conn = match cluster::settings_from_config(
            &config,
            http_addr,
            announced.as_deref(),
            tls.is_some(),
        ) {
            Some(settings) => Some(cluster::Cluster::connect(settings).await?),
            None => None,
        };
        // One WebRtcServer per worker (port base + index), unless the base port is 0.
        let webrtc_servers = (config.webrtc_server_port != 0).then(|| WebRtcServerSpec {
            listen: media_addrs.clone(),
            base_port: config.webrtc_server_port,
        });
        tracing::info!(?cores, bin = %bin.display(), "starting workers");
        let pool = WorkerPool::start(settings, &cores, config.restart.clone(), webrtc_servers)
            .await
            .map_err(|(core, source)| StartError::Worker { core, source })?;
        tracing::info!(
            listen = ?media_addrs,
            webrtc_server_port = config.webrtc_server_port,
            "rtc transports"
        );
        let turn = if config.turn.enabled() {
            let settings = turn::settings_from_config(
                &config,
                turn::MediaAddresses {
                    listen: &media_addrs,
                    host: &host,
                    announced: announced.as_deref(),
                },
                cores.len(),
                tls.clone(),
            );
            Some(
                turn::Turn::start(settings)
                    .await
                    .map_err(StartError::Turn)?,
            )
        } else {
            None
        };
        let rooms = rooms::Rooms::new(
            pool.clone(),
            rooms::MediaSettings {
                listen: media_addrs,
                data_channels: config.data_channels,
                quotas: config.quotas,
                p2p: config.p2p,
            },
            config.room_limits,
            store.clone(),
        );
        if let Some(t) = &turn {
            rooms.set_turn(t.clone());
        }
        let auth = Arc::new(auth::Auth::new(
            config.jwt_secret.as_deref(),
            config.dev,
            config.allowed_origins.clone(),
        ));
        let recordings = recording::Recordings::new(
            recording::RecordingSettings {
                dir: recordings_dir,
                cores: recording_cores,
                ports: config.recording_ports,
                gst_launch: config.gst_launch.clone(),
                containers: config.containers,
                stop_timeout: config.recording_stop_timeout,
                max_duration: config.recording_max_duration,
                min_free_disk: config.recording_min_free_disk,
                storage: config.recording_storage.clone(),
            },
            store.clone(),
            rooms.clone(),
        )
        .map_err(StartError::Config)?;
        {
            let r = recordings.clone();
            tokio::spawn(async move { r.recover().await });
        }
        let cluster = match cluster_conn {
            Some(c) => {
                let pool = pool.clone();
                // Rooms and peers are counted by the cluster from what this node published.
                let load = move || {
                    let loads = pool.loads();
                    let alive: Vec<_> = loads.iter().filter(|l| l.alive).collect();
                    let n = alive.len().max(1) as f64;
                    cluster::NodeLoad {
                        workers: alive.len() as u64,
                        cpu: alive.iter().map(|l| l.cpu).sum::<f64>() / n * 100.0,
                        consumers: alive.iter().map(|l| l.consumers as u64).sum(),
                        ..cluster::NodeLoad::default()
                    }
                };
                let c = c.start(Box::new(load)).await;
                // Rooms span the nodes (see rooms/cluster.rs).
                rooms.attach_cluster(c.clone());
                Some(c)
            }
            None => None,
        };
        let web_dir = config.resolve_web_dir();
        let drain = drain::Drain::new(config.drain_timeout, rooms.clone(), lifecycle.clone());
        let state = http::AppState {
            drain: drain.clone(),
            cluster: cluster.clone(),
            pool: pool.clone(),
            lifecycle: lifecycle.clone(),
            signaling: signaling::Signaling {
                rooms: rooms.clone(),
                auth: auth.clone(),
                turn: turn.clone(),
                quotas: config.quotas,
                ip_conns: Default::default(),
                join_times: Default::default(),
            },
            web_dir: Arc::new(web_dir),
            store: store.clone(),
            recordings: recordings.clone(),
            limits: config.room_limits,
        };
        let admin_app = http::admin_router(state.clone());
        let app = limits::rest_layer(
            http::router(state)
                .merge(recording::routes(recording::ApiState {
                    recordings: recordings.clone(),
                    auth: auth.clone(),
                }))
                .merge(captions::routes(captions::ApiState {
                    captions: captions::Captions::new(
                        config.captions.clone(),
                        &recordings,
                        rooms.clone(),
                    ),
                    auth,
                    store: store.clone(),
                })),
            config.quotas.rest_requests_per_second,
        );
        let secure = tls.is_some();
        let (http_stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let admin_task = admin_listener.map(|l| {
            let mut stop_rx = stop_rx.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(l, admin_app).with_graceful_shutdown(stop).await {
                    tracing::error!("admin http server: {e}");
                }
            })
        });
        let http_task = tokio::spawn(async move {
            let stop = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            let r = match tls {
                // The client's address reaches handlers (`ConnectInfo`): sockets per IP.
                Some(cfg) => match tls::TlsListener::new(listener, cfg) {
                    Ok(l) => {
                        axum::serve(
                            l,
                            app.into_make_service_with_connect_info::<tls::ClientAddr>(),
                        )
                        .with_graceful_shutdown(stop)
                        .await
                    }
                    Err(e) => Err(e),
                },
                None => {
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<tls::ClientAddr>(),
                    )
                    .with_graceful_shutdown(stop)
                    .await
                }
            };
            if let Err(e) = r {
                tracing::error!("http server: {e}");
            }
            if let Some(t) = admin_task {
                let _ = t.await;
            }
        });
        // Running before the line that tells the world (and tests) where to connect: a client
        // that reads it finds /healthz answering "running".
        lifecycle.advance(Phase::Running);
        if let Some(addr) = admin_addr {
            tracing::info!(%addr, "admin listening");
        }
        tracing::info!(addr = %http_addr, tls = secure, "http listening");
        notify_systemd(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&format!("{} workers running", cores.len())),
        ]);
        Ok(Supervisor {
            config,
            pool,
            lifecycle,
            http_addr,
            admin_addr,
            tls_reloader,
            http_stop,
            http_task,
            rooms,
            recordings,
            store,
            cluster,
            turn,
            drain,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn pool(&self) -> &WorkerPool {
        &self.pool
    }

    /// This node's cluster membership (None: `[cluster] redis_url` unset).
    pub fn cluster(&self) -> Option<Arc<cluster::Cluster>> {
        self.cluster.clone()
    }

    /// The built-in TURN server (None: `[turn] listen` unset).
    pub fn turn(&self) -> Option<Arc<turn::Turn>> {
        self.turn.clone()
    }

    /// The lifecycle; keep the `Arc` to observe phases after `shutdown` consumed the supervisor.
    pub fn lifecycle(&self) -> Arc<Lifecycle> {
        self.lifecycle.clone()
    }

    /// The bound HTTP address (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The node certificate's reloader (None: no TLS): `reload()` on SIGHUP.
    pub fn tls_reloader(&self) -> Option<Arc<CertReloader>> {
        self.tls_reloader.clone()
    }

    /// The bound admin listener address (None: `admin_listen = "off"`).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Starts a graceful drain (`why`: what asked): new rooms refused, readiness 503, every
    /// peer told `serverDraining`; a drain under way is kept. Answers its deadline.
    pub async fn drain(&self, why: &str) -> chrono::DateTime<chrono::Utc> {
        self.drain.start(why).await
    }

    /// Resolves once a drain started (`POST /api/drain`, or [`Supervisor::drain`]).
    pub async fn drain_started(&self) {
        self.drain.started().await
    }

    /// Resolves once the drain under way is over: every room closed by its peers, or
    /// `[supervisor] drain_timeout_s` passed. Then call [`Supervisor::shutdown`].
    pub async fn drained(&self) {
        self.drain.finished().await
    }

    /// Stops: no new work, recordings finalized, rooms closed, workers closed
    /// (stragglers killed), the store's queued writes flushed, listener stopped.
    pub async fn shutdown(self) {
        self.lifecycle.advance(Phase::Draining);
        notify_systemd(&[sd_notify::NotifyState::Stopping]);
        // Leave the cluster first: the other nodes drop this node's peers at once.
        if let Some(c) = &self.cluster {
            c.shutdown().await;
        }
        self.recordings.stop_all().await;
        self.rooms.close_all().await;
        if let Some(t) = &self.turn {
            t.stop();
        }
        self.pool.close().await;
        self.store.close(std::time::Duration::from_secs(10)).await;
        self.http_stop.send_replace(true);
        // In-flight HTTP requests get a moment; the server then stops regardless.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.http_task).await;
        self.lifecycle.advance(Phase::Stopped);
        tracing::info!("stopped");
    }
}

fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!("sd_notify: {e}");
    }
}
