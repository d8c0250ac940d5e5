//! Types shared by the generator's parts: what a client peer knows of the server side of one
//! transport, and the result schema (`results.json`) that `report` turns into tables and plots.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Our DTLS role on one transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtlsRole {
    Client,
    Server,
}

/// The SRTP protection profile every client offers (one only, so every system under test runs
/// the same cipher suite).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// AES_CM_128_HMAC_SHA1_80
    Cm80,
    /// AEAD_AES_128_GCM
    Gcm128,
}

/// The server side of one transport, as signaling told us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteTransport {
    /// Where the server receives (its UDP candidate).
    pub addr: SocketAddr,
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// ICE-lite servers (ferrosfu) never send checks; full-ICE ones (Janus) must be answered.
    pub ice_lite: bool,
    /// Upper-case colon hex of the SHA-256 of the server's certificate.
    pub fingerprint_sha256: String,
    pub our_dtls_role: DtlsRole,
}

/// Our side of one transport, to signal to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalTransport {
    pub addr: SocketAddr,
    pub ice_ufrag: String,
    pub ice_pwd: String,
    pub fingerprint_sha256: String,
}

/// Which system forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Ferrosfu,
    Janus,
    Raw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// 1 publisher (video) → N subscribers.
    Fanout,
    /// 10 publishers (audio) × N subscribers.
    AudioMeeting,
    /// M publishers × M subscribers (each peer both), audio + video.
    Meeting,
}

/// Latency percentiles in microseconds (send timestamp in the payload → kernel receive time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// One load step, measured over `duration_s` after every subscriber got media.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub publishers: u32,
    pub subscribers: u32,
    /// Per publisher (video), bits/s.
    pub bitrate_bps: u64,
    pub packet_size: u32,
    pub duration_s: f64,
    /// Packets/s the publishers sent.
    pub sent_pps: f64,
    /// Packets/s the subscribers should get if nothing is lost.
    pub expected_pps: f64,
    /// Packets/s the subscribers got (forwarded by the system under test).
    pub forwarded_pps: f64,
    /// CPU of the system under test (all its forwarding threads), % of one core.
    pub sut_cpu_percent: f64,
    /// forwarded_pps scaled to 100 % of one core.
    pub pps_per_core: f64,
    /// The generator's own CPU, % of one core.
    pub generator_cpu_percent: f64,
    pub loss_percent: f64,
    pub latency: Latency,
    /// Resident memory of the system under test at the end of the step.
    pub sut_rss_bytes: u64,
    /// (RSS at this step − RSS before any peer) / subscribers' consumers.
    pub rss_per_consumer_bytes: f64,
    /// The generator could not keep up (its CPU ≥ 90 % or receive buffer drops): not a figure
    /// of the system under test.
    pub generator_bound: bool,
}

/// The steps of one (target, scenario) pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub target: Target,
    pub scenario: Scenario,
    pub profile: Profile,
    /// Free-form notes (configuration of the system under test, e.g. Janus event loops).
    #[serde(default)]
    pub notes: Vec<String>,
    pub steps: Vec<Step>,
}

/// A whole bench run: `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub commit: String,
    pub started_at: String,
    /// `uname -srm`, CPU model, core count, load average at start.
    pub machine: Machine,
    pub runs: Vec<Run>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub uname: String,
    pub cpu_model: String,
    pub cores: u32,
    pub loadavg_start: String,
}
