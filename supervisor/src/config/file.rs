//! The TOML file's shape (`--config`): every key optional, unknown keys refused. The sections
//! with their own merge rules live in the sibling modules.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::cluster::FileCluster;
use super::data_channels::FileDataChannels;
use super::limits::FileLimits;
use super::media::FileMedia;
use super::scaling::{FileRooms, FileSupervisor};
use super::turn::FileTurn;
use super::{CoreList, LogFormat, PortRange};
use crate::container::Container;

/// The TOML file, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileConfig {
    pub(super) dev: Option<bool>,
    pub(super) http: FileHttp,
    pub(super) log: FileLog,
    pub(super) workers: FileWorkers,
    pub(super) media: FileMedia,
    pub(super) store: FileStore,
    pub(super) recording: FileRecording,
    pub(super) auth: FileAuth,
    pub(super) data_channels: FileDataChannels,
    pub(super) cluster: FileCluster,
    pub(super) rooms: FileRooms,
    pub(super) supervisor: FileSupervisor,
    pub(super) turn: FileTurn,
    pub(super) limits: FileLimits,
    pub(super) captions: Option<super::captions::FileCaptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileAuth {
    pub(super) jwt_secret: Option<String>,
    pub(super) allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileHttp {
    pub(super) listen: Option<SocketAddr>,
    pub(super) admin_listen: Option<String>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) web_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileLog {
    pub(super) level: Option<String>,
    pub(super) format: Option<LogFormat>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileWorkers {
    pub(super) cores: Option<CoreList>,
    pub(super) bin: Option<PathBuf>,
    pub(super) log_level: Option<String>,
    pub(super) log_targets: Option<Vec<String>>,
    pub(super) request_timeout_ms: Option<u64>,
    pub(super) max_restarts_per_minute: Option<u32>,
    pub(super) close_grace_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileStore {
    pub(super) database_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileRecording {
    pub(super) dir: Option<PathBuf>,
    pub(super) cores: Option<CoreList>,
    pub(super) ports: Option<PortRange>,
    pub(super) gst_launch: Option<PathBuf>,
    pub(super) audio_container: Option<Container>,
    pub(super) h264_container: Option<Container>,
    pub(super) stop_timeout_ms: Option<u64>,
    pub(super) max_duration_s: Option<u64>,
    pub(super) min_free_disk_mb: Option<u64>,
    pub(super) storage: Option<super::storage::FileStorage>,
}
