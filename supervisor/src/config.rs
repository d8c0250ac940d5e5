//! Configuration: built-in defaults < TOML file (`--config`) < environment (`FERROSFU_*`) < CLI
//! flags. Clap reads flags and environment together; the file fills in what neither gave.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use ferrosfu_fbs::LogLevel;
use serde::Deserialize;

mod admin;
mod captions;
mod cluster;
mod data_channels;
mod file;
mod limits;
mod media;
mod p2p;
mod scaling;
mod storage;
mod turn;

pub use captions::{CaptionEngine, CaptionsSettings};
pub use cluster::{ClusterConfig, TTL_HEARTBEATS, redact_url};
pub use data_channels::DataChannels;
use file::FileConfig;
pub use media::{MediaAddr, MediaListen, host_addresses};
pub use p2p::{P2pCli, P2pMode, P2pSettings};
pub use storage::{Credentials, StorageCli, StorageSettings};
pub use turn::{TurnCli, TurnConfig};

use crate::container::{Container, ContainerPrefs};
use crate::placement::Limits;
use crate::pool::RestartPolicy;

/// ferrosfu: a WebRTC SFU. Supervises one pinned media worker per core, serves signaling, REST
/// and Prometheus metrics.
///
/// Every flag can also be set in the environment (FERROSFU_<FLAG>) or in the TOML file given to
/// --config; flags win over the environment, which wins over the file.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "ferrosfu", version)]
pub struct Cli {
    /// TOML configuration file (see config/ferrosfu.toml for every key, commented).
    #[arg(long, env = "FERROSFU_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address of the HTTP listener (REST, /metrics, /healthz, signaling). Port 0 picks a free
    /// port; the bound address is logged as "http listening".
    #[arg(long, env = "FERROSFU_HTTP_LISTEN", value_name = "ADDR:PORT")]
    pub http_listen: Option<SocketAddr>,

    /// Address of the admin listener (/metrics, /api/workers, /api/rooms, /api/drain,
    /// /api/log-level and the health endpoints, reads without a token): default 127.0.0.1:3001;
    /// "off" for none. On the public listener the admin endpoints need an admin token. The bound
    /// address is logged as "admin listening".
    #[arg(long, env = "FERROSFU_ADMIN_LISTEN", value_name = "ADDR:PORT|off")]
    pub admin_listen: Option<String>,

    /// Cores that run a media worker, one worker per core: "auto" (every core this process may
    /// use), a list "0,1", a range "6-21", or a mix "0,4-7".
    #[arg(long, env = "FERROSFU_WORKER_CORES", value_name = "LIST")]
    pub worker_cores: Option<CoreList>,

    /// Cores the supervisor's own threads (async runtime and blocking pool) are pinned to, as
    /// --worker-cores; unset: not pinned. Keep them apart from the workers' cores.
    #[arg(long, env = "FERROSFU_SUPERVISOR_CORES", value_name = "LIST")]
    pub supervisor_cores: Option<CoreList>,

    /// Highest CPU share of one core (0-1] a worker may reach over 5 s before rooms grow onto
    /// another worker; when every worker is above it, the node refuses new rooms (default 0.8).
    #[arg(long, env = "FERROSFU_WORKER_MAX_LOAD", value_name = "SHARE")]
    pub worker_max_load: Option<f64>,

    /// Most consumers on one worker (0: no limit but the CPU one; default 2000).
    #[arg(long, env = "FERROSFU_WORKER_MAX_CONSUMERS", value_name = "N")]
    pub worker_max_consumers: Option<usize>,

    /// Supervisor log filter: a level (trace|debug|info|warn|error) or tracing directives such as
    /// "info,channel=debug". Worker log lines arrive under target "worker".
    #[arg(long, env = "FERROSFU_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Log output format.
    #[arg(long, env = "FERROSFU_LOG_FORMAT", value_name = "text|json")]
    pub log_format: Option<LogFormat>,

    /// UDP/TCP port range for RTC transports, shared by the workers.
    #[arg(long, env = "FERROSFU_RTC_PORTS", value_name = "MIN-MAX")]
    pub rtc_ports: Option<PortRange>,

    /// First port of the workers' WebRtcServers: worker i (cores in ascending order) takes UDP
    /// and TCP port PORT + i on the RTC listen IP, shared by all its WebRTC transports. 0: no
    /// server; each WebRTC transport binds its own ports from --rtc-ports.
    #[arg(long, env = "FERROSFU_WEBRTC_SERVER_PORT", value_name = "PORT")]
    pub webrtc_server_port: Option<u16>,

    /// Public IP announced in ICE candidates of the IPv4 listen addresses (of the only listen
    /// address, whatever its family) when they are private or 0.0.0.0.
    #[arg(long, env = "FERROSFU_ANNOUNCED_IP", value_name = "IP")]
    pub announced_ip: Option<IpAddr>,

    /// Public IPv6 address announced in ICE candidates of the IPv6 listen addresses.
    #[arg(long, env = "FERROSFU_ANNOUNCED_IPV6", value_name = "IPV6")]
    pub announced_ipv6: Option<std::net::Ipv6Addr>,

    /// IPs the RTC transports listen on, comma-separated, in preference order (e.g.
    /// "0.0.0.0,::"). Default: 0.0.0.0, plus :: when the host has a global IPv6 address. An
    /// unspecified address listens everywhere and announces --announced-ip/--announced-ipv6,
    /// else the host's first address of its family that is not loopback or link-local, else
    /// loopback.
    #[arg(
        long,
        env = "FERROSFU_RTC_LISTEN_IP",
        value_name = "IP[,IP…]",
        value_delimiter = ','
    )]
    pub rtc_listen_ip: Vec<IpAddr>,

    /// PEM certificate chain for HTTPS/WSS on the HTTP listener (with --tls-key). Without both,
    /// the listener speaks plain HTTP/WS (for loopback and development).
    #[arg(long, env = "FERROSFU_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "FERROSFU_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Directory of the demo web app bundle served at /app/ (default: the one built by
    /// scripts/build-web in the source tree, else /usr/share/ferrosfu/web).
    #[arg(long, env = "FERROSFU_WEB_DIR", value_name = "DIR")]
    pub web_dir: Option<PathBuf>,

    /// Allowed Origin of browser WebSocket and REST requests (repeatable; default: any).
    #[arg(
        long = "allowed-origin",
        env = "FERROSFU_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allowed_origins: Vec<String>,

    /// Database: sqlite://PATH (created on first run) or postgres://USER:PASS@HOST/DB.
    #[arg(long, env = "FERROSFU_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Directory where recordings are written.
    #[arg(long, env = "FERROSFU_RECORDINGS_DIR", value_name = "DIR")]
    pub recordings_dir: Option<PathBuf>,

    /// Cores the gst-launch recorder children are pinned to: "auto" (the cores that run no
    /// worker, or every core when workers use them all), or a list/range as --worker-cores.
    #[arg(long, env = "FERROSFU_RECORDING_CORES", value_name = "LIST")]
    pub recording_cores: Option<CoreList>,

    /// Loopback UDP ports the recorders receive RTP/RTCP on (two per recorded track).
    #[arg(long, env = "FERROSFU_RECORDING_PORTS", value_name = "MIN-MAX")]
    pub recording_ports: Option<PortRange>,

    /// Development mode: allow unauthenticated access (a warning is logged at startup).
    #[arg(long, env = "FERROSFU_DEV")]
    pub dev: bool,

    /// Data channels (SCTP over DTLS) on WebRTC transports: true (default) or false.
    #[arg(long, env = "FERROSFU_DATA_CHANNELS", value_name = "BOOL")]
    pub data_channels: Option<bool>,

    /// Largest data channel message, bytes (1024-16777216; default 262144).
    #[arg(long, env = "FERROSFU_DATA_MAX_MESSAGE_SIZE", value_name = "BYTES")]
    pub data_max_message_size: Option<u32>,

    /// Path of the ferrosfu-worker binary (default: next to this binary, else on PATH).
    #[arg(long, env = "FERROSFU_WORKER_BIN", value_name = "PATH")]
    pub worker_bin: Option<PathBuf>,

    /// Redis of the cluster this node joins: redis://[:PASSWORD@]HOST[:PORT][/DB]. Unset: a
    /// single node, no Redis.
    #[arg(
        long,
        env = "FERROSFU_CLUSTER_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub cluster_redis_url: Option<String>,

    /// This node's id in the cluster (default: hostname:http-port).
    #[arg(long, env = "FERROSFU_CLUSTER_NODE_ID", value_name = "ID")]
    pub cluster_node_id: Option<String>,

    /// Cluster heartbeat period in milliseconds (100-10000, default 1000); a node that misses
    /// three is dropped from the cluster.
    #[arg(long, env = "FERROSFU_CLUSTER_HEARTBEAT_MS", value_name = "MS")]
    pub cluster_heartbeat_ms: Option<u64>,

    /// Host name or IP other nodes and clients reach this node at (default: the announced IP).
    #[arg(long, env = "FERROSFU_CLUSTER_PUBLIC_ADDRESS", value_name = "HOST")]
    pub cluster_public_address: Option<String>,

    /// Signaling URL announced to the cluster (default: ws[s]://PUBLIC_ADDRESS:HTTP_PORT/).
    #[arg(long, env = "FERROSFU_CLUSTER_SIGNALING_URL", value_name = "URL")]
    pub cluster_signaling_url: Option<String>,

    /// IP other nodes send pipe (node-to-node) media to, on the --rtc-ports range (default: the
    /// announced IP).
    #[arg(long, env = "FERROSFU_CLUSTER_PIPE_IP", value_name = "IP")]
    pub cluster_pipe_ip: Option<IpAddr>,

    #[command(flatten)]
    pub turn: TurnCli,

    #[command(flatten)]
    pub p2p: P2pCli,

    #[command(flatten)]
    pub storage: StorageCli,

    /// How long a drain (SIGTERM, `POST /api/drain`) waits for the open rooms to empty, seconds.
    #[arg(long, env = "FERROSFU_DRAIN_TIMEOUT_S", value_name = "SECONDS")]
    pub drain_timeout_s: Option<u64>,

    /// Print the effective configuration (defaults, file, environment and flags merged) as JSON
    /// and exit without starting anything.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A set of cores, or "auto".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreList {
    Auto,
    List(Vec<u32>),
}

impl FromStr for CoreList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(CoreList::Auto);
        }
        let mut cores = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let num = |x: &str| {
                x.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("bad core {x:?} in {s:?}"))
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b || b - a > 4096 {
                        return Err(format!("bad core range {part:?}"));
                    }
                    cores.extend(a..=b);
                }
                None => cores.push(num(part)?),
            }
        }
        cores.sort_unstable();
        cores.dedup();
        if cores.is_empty() {
            return Err("empty core list".into());
        }
        Ok(CoreList::List(cores))
    }
}

impl<'de> Deserialize<'de> for CoreList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl CoreList {
    /// The cores to use, checked against those this process may run on.
    pub fn resolve(&self) -> Result<Vec<u32>, String> {
        let available: Vec<u32> = core_ids();
        match self {
            CoreList::Auto if available.is_empty() => Err("no cores available".into()),
            CoreList::Auto => Ok(available),
            CoreList::List(cores) => {
                if let Some(c) = cores.iter().find(|c| !available.contains(c)) {
                    return Err(format!(
                        "core {c} is not available (this process may use {available:?})"
                    ));
                }
                Ok(cores.clone())
            }
        }
    }
}

/// Cores in this process's affinity mask, as it was when first asked: the supervisor asks before
/// it pins its own threads ([`crate::affinity`]), so workers and recorders may still be placed on
/// cores outside the supervisor's.
fn core_ids() -> Vec<u32> {
    static CORES: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    CORES
        .get_or_init(
            || match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
                Ok(set) => (0..nix::sched::CpuSet::count())
                    .filter(|&i| set.is_set(i).unwrap_or(false))
                    .map(|i| i as u32)
                    .collect(),
                Err(_) => Vec::new(),
            },
        )
        .clone()
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("expected MIN-MAX, got {s:?}"))?;
        let min: u16 = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
        let max: u16 = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
        if min == 0 || min > max {
            return Err(format!("bad port range {s:?}: need 0 < MIN <= MAX"));
        }
        Ok(PortRange { min, max })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub http_listen: SocketAddr,
    /// `[http] admin_listen`; None: no admin listener.
    pub admin_listen: Option<SocketAddr>,
    pub worker_cores: CoreList,
    pub worker_bin: Option<PathBuf>,
    pub worker_log_level: LogLevel,
    pub worker_log_targets: Vec<String>,
    pub request_timeout: Duration,
    pub restart: RestartPolicy,
    pub log_level: String,
    pub log_format: LogFormat,
    pub rtc_ports: PortRange,
    /// First WebRtcServer port (worker i listens on it + i); 0: per-transport ports.
    pub webrtc_server_port: u16,
    /// `[media] listen_ips` and the announced addresses.
    pub media_listen: MediaListen,
    pub database_url: String,
    pub recordings_dir: PathBuf,
    /// None: "auto" (cores without a worker, else all).
    pub recording_cores: Option<CoreList>,
    pub recording_ports: PortRange,
    pub gst_launch: PathBuf,
    pub containers: ContainerPrefs,
    /// How long a recorder may take to finalize its file after SIGINT before it is killed.
    pub recording_stop_timeout: Duration,
    /// Recordings are finalized at this length (None: no limit).
    pub recording_max_duration: Option<Duration>,
    /// Free space (bytes) the recordings directory must keep: below it no recording starts and
    /// running ones are finalized.
    pub recording_min_free_disk: u64,
    /// `[recording.storage]`: finished recordings go to this bucket (None: they stay local).
    pub recording_storage: Option<StorageSettings>,
    /// `[captions]`: live captions' engine and limits.
    pub captions: CaptionsSettings,
    pub dev: bool,
    /// (certificate chain, key) PEM files: HTTPS/WSS when set.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub web_dir: Option<PathBuf>,
    /// HS256 secret for signaling and REST tokens (`[auth] jwt_secret`, env FERROSFU_JWT_SECRET).
    pub jwt_secret: Option<String>,
    /// Empty: any origin.
    pub allowed_origins: Vec<String>,
    pub data_channels: DataChannels,
    pub cluster: ClusterConfig,
    /// `[rooms]` worker load limits for placement and admission.
    pub room_limits: Limits,
    /// `[supervisor] cores`: None pins nothing.
    pub supervisor_cores: Option<CoreList>,
    /// `[supervisor] drain_timeout_s`.
    pub drain_timeout: Duration,
    /// `[turn]`: the built-in TURN server.
    pub turn: TurnConfig,
    /// `[rooms] p2p*`: two-party calls peer to peer.
    pub p2p: P2pSettings,
    /// `[limits]`: quotas per room, node, peer, IP and token.
    pub quotas: crate::limits::Quotas,
}

impl Default for Config {
    fn default() -> Self {
        Config::merge(Cli::default(), FileConfig::default()).expect("defaults are valid")
    }
}

impl Config {
    /// Reads the file named by `cli.config` (if any) and merges.
    pub fn load(cli: Cli) -> Result<Config, String> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Config::merge(cli, file)
    }

    /// Parses a TOML document (for tests and `--config`).
    pub fn from_toml(cli: Cli, toml_text: &str) -> Result<Config, String> {
        let file: FileConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Config::merge(cli, file)
    }

    fn merge(cli: Cli, f: FileConfig) -> Result<Config, String> {
        let data_channels = DataChannels::merge(&cli, &f.data_channels)?;
        let media_listen = MediaListen::merge(&cli, &f.media)?;
        let cluster = ClusterConfig::merge(&cli, &f.cluster)?;
        let room_limits = scaling::limits(&cli, &f.rooms)?;
        let p2p = p2p::merge(&cli.p2p, f.rooms.p2p())?;
        let recording_storage = storage::merge(&cli.storage, f.recording.storage.clone())?;
        let captions = captions::merge(f.captions.clone())?;
        let supervisor_cores = scaling::supervisor_cores(&cli, &f.supervisor);
        let drain_timeout = scaling::drain_timeout(&cli, &f.supervisor)?;
        let worker_log_level = match f.workers.log_level {
            Some(l) => l.parse::<LogLevel>()?,
            None => LogLevel::Warn,
        };
        let defaults = RestartPolicy::default();
        let tls = match (
            cli.tls_cert.or(f.http.tls_cert),
            cli.tls_key.or(f.http.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("TLS needs both a certificate (tls_cert) and a key (tls_key)".into()),
        };
        let jwt_secret = std::env::var("FERROSFU_JWT_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
            .or(f.auth.jwt_secret);
        if jwt_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("auth.jwt_secret must be at least 16 bytes".into());
        }
        let containers = ContainerPrefs {
            audio_only: match f.recording.audio_container.unwrap_or(Container::Ogg) {
                c @ (Container::Ogg | Container::Webm) => c,
                c => {
                    return Err(format!(
                        "recording.audio_container {c:?}: use \"ogg\" or \"webm\""
                    ));
                }
            },
            h264: match f.recording.h264_container.unwrap_or(Container::Mp4) {
                c @ (Container::Mp4 | Container::Mkv) => c,
                c => {
                    return Err(format!(
                        "recording.h264_container {c:?}: use \"mp4\" or \"mkv\""
                    ));
                }
            },
        };
        let allowed_origins = if cli.allowed_origins.is_empty() {
            f.auth.allowed_origins.unwrap_or_default()
        } else {
            cli.allowed_origins
        };
        let turn = TurnConfig::merge(&cli.turn, &f.turn, tls.is_some())?;
        let admin_listen =
            admin::admin_listen(cli.admin_listen.as_deref(), f.http.admin_listen.as_deref())?;
        Ok(Config {
            quotas: limits::quotas(&f.limits),
            admin_listen,
            turn,
            media_listen,
            data_channels,
            cluster,
            room_limits,
            p2p,
            supervisor_cores,
            drain_timeout,
            tls,
            web_dir: cli.web_dir.or(f.http.web_dir),
            jwt_secret,
            allowed_origins,
            http_listen: cli
                .http_listen
                .or(f.http.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000))),
            worker_cores: cli
                .worker_cores
                .or(f.workers.cores)
                .unwrap_or(CoreList::Auto),
            worker_bin: cli.worker_bin.or(f.workers.bin),
            worker_log_level,
            worker_log_targets: f.workers.log_targets.unwrap_or_default(),
            request_timeout: Duration::from_millis(f.workers.request_timeout_ms.unwrap_or(5000)),
            restart: RestartPolicy {
                max_per_minute: f
                    .workers
                    .max_restarts_per_minute
                    .unwrap_or(defaults.max_per_minute),
                close_grace: f
                    .workers
                    .close_grace_ms
                    .map_or(defaults.close_grace, Duration::from_millis),
                ..defaults
            },
            log_level: cli
                .log_level
                .or(f.log.level)
                .unwrap_or_else(|| "info".into()),
            log_format: cli.log_format.or(f.log.format).unwrap_or_default(),
            rtc_ports: cli.rtc_ports.or(f.media.rtc_ports).unwrap_or(PortRange {
                min: 40000,
                max: 49999,
            }),
            webrtc_server_port: cli
                .webrtc_server_port
                .or(f.media.webrtc_server_port)
                .unwrap_or(44444),
            database_url: cli
                .database_url
                .or(f.store.database_url)
                .unwrap_or_else(|| "sqlite://data/ferrosfu.db".into()),
            recordings_dir: cli
                .recordings_dir
                .or(f.recording.dir)
                .unwrap_or_else(|| "recordings".into()),
            recording_cores: cli
                .recording_cores
                .or(f.recording.cores)
                .filter(|c| *c != CoreList::Auto),
            recording_ports: cli
                .recording_ports
                .or(f.recording.ports)
                .unwrap_or(PortRange {
                    min: 50000,
                    max: 50999,
                }),
            gst_launch: f
                .recording
                .gst_launch
                .unwrap_or_else(|| "gst-launch-1.0".into()),
            containers,
            recording_stop_timeout: Duration::from_millis(
                f.recording.stop_timeout_ms.unwrap_or(15000),
            ),
            recording_max_duration: f
                .recording
                .max_duration_s
                .filter(|&s| s > 0)
                .map(Duration::from_secs),
            recording_min_free_disk: f.recording.min_free_disk_mb.unwrap_or(256) << 20,
            recording_storage,
            captions,
            dev: cli.dev || f.dev.unwrap_or(false),
        })
    }

    /// The worker binary: configured, else next to the running executable (or one directory up,
    /// for test binaries in target/*/deps), else `ferrosfu-worker` on PATH.
    /// The effective configuration as JSON (`--print-config`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut rooms = scaling::limits_json(&self.room_limits);
        if let (Some(r), serde_json::Value::Object(p)) =
            (rooms.as_object_mut(), p2p::to_json(&self.p2p))
        {
            r.extend(p);
        }
        serde_json::json!({
            "dev": self.dev,
            "http": {
                "listen": self.http_listen.to_string(),
                "admin_listen": self.admin_listen.map_or_else(|| "off".to_owned(), |a| a.to_string()),
                "tls_cert": self.tls.as_ref().map(|t| t.0.display().to_string()),
                "tls_key": self.tls.as_ref().map(|t| t.1.display().to_string()),
                "web_dir": self.resolve_web_dir().display().to_string(),
            },
            "auth": {
                "jwt_secret": self.jwt_secret.as_ref().map(|_| "(set)"),
                "allowed_origins": self.allowed_origins,
            },
            "log": {
                "level": self.log_level,
                "format": match self.log_format { LogFormat::Text => "text", LogFormat::Json => "json" },
            },
            "workers": {
                "cores": match &self.worker_cores {
                    CoreList::Auto => serde_json::json!("auto"),
                    CoreList::List(c) => serde_json::json!(c),
                },
                "bin": self.resolve_worker_bin().display().to_string(),
                "log_level": self.worker_log_level.as_str(),
                "log_targets": self.worker_log_targets,
                "request_timeout_ms": self.request_timeout.as_millis() as u64,
                "max_restarts_per_minute": self.restart.max_per_minute,
                "close_grace_ms": self.restart.close_grace.as_millis() as u64,
            },
            "media": self.media_listen.to_json(
                format!("{}-{}", self.rtc_ports.min, self.rtc_ports.max),
                self.webrtc_server_port,
            ),
            "store": { "database_url": self.database_url },
            "rooms": rooms,
            "supervisor": {
                "cores": match &self.supervisor_cores {
                    None => serde_json::Value::Null,
                    Some(CoreList::Auto) => serde_json::json!("auto"),
                    Some(CoreList::List(c)) => serde_json::json!(c),
                },
                "drain_timeout_s": self.drain_timeout.as_secs(),
            },
            "data_channels": self.data_channels.to_json(),
            "cluster": self.cluster.to_json(),
            "turn": self.turn.to_json(),
            "limits": limits::to_json(&self.quotas),
            "recording": {
                "dir": self.recordings_dir.display().to_string(),
                "cores": match &self.recording_cores {
                    None => serde_json::json!("auto"),
                    Some(CoreList::Auto) => serde_json::json!("auto"),
                    Some(CoreList::List(c)) => serde_json::json!(c),
                },
                "ports": format!("{}-{}", self.recording_ports.min, self.recording_ports.max),
                "gst_launch": self.gst_launch.display().to_string(),
                "audio_container": self.containers.audio_only.extension(),
                "h264_container": self.containers.h264.extension(),
                "stop_timeout_ms": self.recording_stop_timeout.as_millis() as u64,
                "max_duration_s": self.recording_max_duration.map_or(0, |d| d.as_secs()),
                "min_free_disk_mb": self.recording_min_free_disk >> 20,
                "storage": storage::to_json(self.recording_storage.as_ref()),
            },
            "captions": captions::to_json(&self.captions),
        })
    }

    /// The demo app bundle: configured, else the source tree's `supervisor/web/dist` (a build
    /// from the repository), else `/usr/share/ferrosfu/web` (the package).
    pub fn resolve_web_dir(&self) -> PathBuf {
        if let Some(d) = &self.web_dir {
            return d.clone();
        }
        let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/dist");
        if tree.is_dir() {
            return tree;
        }
        PathBuf::from("/usr/share/ferrosfu/web")
    }

    pub fn resolve_worker_bin(&self) -> PathBuf {
        if let Some(b) = &self.worker_bin {
            return b.clone();
        }
        if let Ok(exe) = std::env::current_exe() {
            for dir in exe.ancestors().skip(1).take(2) {
                let candidate = dir.join("ferrosfu-worker");
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
        PathBuf::from("ferrosfu-worker")
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists() {
        assert_eq!("auto".parse::<CoreList>().unwrap(), CoreList::Auto);
        assert_eq!(
            "0,1".parse::<CoreList>().unwrap(),
            CoreList::List(vec![0, 1])
        );
        assert_eq!(
            "6-9".parse::<CoreList>().unwrap(),
            CoreList::List(vec![6, 7, 8, 9])
        );
        assert_eq!(
            "3, 0-1,1".parse::<CoreList>().unwrap(),
            CoreList::List(vec![0, 1, 3])
        );
        for bad in ["", "x", "3-1", "1-", "-1", "0,,a"] {
            assert!(bad.parse::<CoreList>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            "10-20".parse::<PortRange>().unwrap(),
            PortRange { min: 10, max: 20 }
        );
        for bad in ["20-10", "0-5", "5", "a-b", "1-70000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let toml = r#"
            [http]
            listen = "0.0.0.0:8080"
            [workers]
            cores = "0-1"
            [log]
            level = "debug"
            format = "json"
            [media]
            rtc_ports = "50000-50100"
        "#;
        let cli = Cli::try_parse_from([
            "ferrosfu",
            "--http-listen",
            "127.0.0.1:9",
            "--log-format",
            "text",
        ])
        .unwrap();
        let c = Config::from_toml(cli, toml).unwrap();
        assert_eq!(c.http_listen, "127.0.0.1:9".parse().unwrap());
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.worker_cores, CoreList::List(vec![0, 1]));
        assert_eq!(
            c.rtc_ports,
            PortRange {
                min: 50000,
                max: 50100
            }
        );
        assert_eq!(c.database_url, "sqlite://data/ferrosfu.db");
    }

    #[test]
    fn workers_share_a_webrtc_server_port_unless_it_is_zero() {
        assert_eq!(Config::default().webrtc_server_port, 44444);
        let file = "[media]\nwebrtc_server_port = 50000";
        let c = Config::from_toml(Cli::default(), file).unwrap();
        assert_eq!(c.webrtc_server_port, 50000);
        let cli = Cli::try_parse_from(["ferrosfu", "--webrtc-server-port", "0"]).unwrap();
        assert_eq!(Config::from_toml(cli, file).unwrap().webrtc_server_port, 0);
        assert_eq!(c.to_json()["media"]["webrtc_server_port"], 50000);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Config::from_toml(Cli::default(), "[http]\nlisten_typo = 1").is_err());
    }

    #[test]
    fn the_shipped_config_file_parses() {
        let text = include_str!("../../config/ferrosfu.toml");
        Config::from_toml(Cli::default(), text).unwrap();
    }
}
