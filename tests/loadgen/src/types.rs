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

impl Profile {
    /// The worker core's name for this profile.
    pub fn srtp(self) -> ferrosfu_worker_core::SrtpProfile {
        match self {
            Profile::Cm80 => ferrosfu_worker_core::SrtpProfile::AesCm128HmacSha1_80,
            Profile::Gcm128 => ferrosfu_worker_core::SrtpProfile::AeadAes128Gcm,
        }
    }
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
    /// The stock mediasoup worker, driven by `tests/loadgen/mediasoup/server.mjs`.
    Mediasoup,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Ferrosfu => "ferrosfu",
            Target::Janus => "janus",
            Target::Raw => "raw",
            Target::Mediasoup => "mediasoup",
        }
    }
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

/// Why a step was run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// One of the `--subscribers` steps.
    #[default]
    Fixed,
    /// A step of the saturation search (doubling, then bisecting).
    Search,
    /// Offered load 1.5× the saturating subscriber count.
    Overload,
}

/// Smallest and largest value of one figure over a step's repeats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

impl Range {
    /// Over `values` (an empty slice gives 0..0).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Range {
        let mut it = values.into_iter();
        let Some(first) = it.next() else {
            return Range::default();
        };
        it.fold(
            Range {
                min: first,
                max: first,
            },
            |r, v| Range {
                min: r.min.min(v),
                max: r.max.max(v),
            },
        )
    }
}

/// The spread (min–max over the repeats) of the figures a step reports as medians.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub forwarded_pps: Range,
    pub pps_per_core: Range,
    pub sut_cpu_percent: Range,
    pub loss_percent: Range,
    pub latency_p50_us: Range,
    pub latency_p99_us: Range,
}

/// One load step, measured over `duration_s` after every subscriber got media; repeated
/// `repeats` times at the same load, every figure is then the median of the repeats and
/// `spread` holds min–max of the main ones.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    #[serde(default)]
    pub phase: Phase,
    /// Measurement windows at this load (older results: 1).
    #[serde(default = "one")]
    pub repeats: u32,
    #[serde(default)]
    pub spread: Option<Spread>,
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

fn one() -> u32 {
    1
}

/// What the saturation search found (`--search`), and how the target held an overload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Saturation {
    /// When a step counts as saturated, e.g. "loss > 1 % or SUT CPU ≥ 95 %".
    pub criterion: String,
    /// Largest subscriber count found unsaturated, and the smallest found saturated (None: the
    /// search stopped first, see `stopped`).
    pub last_ok_subscribers: u32,
    pub saturating_subscribers: Option<u32>,
    /// Highest median forwarded pkt/s over the search steps, and where.
    pub peak_forwarded_pps: f64,
    pub peak_at_subscribers: u32,
    /// The overload step: subscribers, median forwarded pkt/s, and that as % of the peak.
    pub overload_subscribers: Option<u32>,
    pub overload_forwarded_pps: Option<f64>,
    pub overload_kept_percent: Option<f64>,
    /// Why the search ended without saturating the target (generator-bound, cap), if so.
    #[serde(default)]
    pub stopped: Option<String>,
}

/// The steps of one (target, scenario) pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// How the report names this run (`--name`; default the target's name): two builds of the
    /// same target in one results file, e.g. `ferrosfu` and `ferrosfu-before`.
    #[serde(default)]
    pub name: String,
    pub target: Target,
    pub scenario: Scenario,
    pub profile: Profile,
    /// Free-form notes (configuration of the system under test, e.g. Janus event loops).
    #[serde(default)]
    pub notes: Vec<String>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub saturation: Option<Saturation>,
}

impl Run {
    /// `name`, or the target's name in results written before `name` existed.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            self.target.as_str()
        } else {
            &self.name
        }
    }
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
