//! The `ferrosfu-loadgen` crate: real WebRTC publishers and subscribers (ICE, DTLS, SRTP; sans
//! IO, all on one UDP socket and one pinned thread) against ferrosfu or a raw forwarding loop,
//! measuring forwarded packets/s, the system under test's CPU and memory, loss and one-way
//! latency. See DESIGN-NOTES.md.
//!
//! Threads (all pinned to `--core`): the media engine (`media.rs`), and the signaling runtime
//! (tokio, current thread) that joins peers and runs the steps. `--target raw` adds a child
//! process pinned to `--raw-core`.

mod client;
mod ferrosfu;
pub mod janus;
mod janus_target;
mod media;
mod mediasoup;
mod peer;
mod raw;
pub mod report;
mod stats;
mod steps;
pub mod types;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use crate::media::Engine;
use crate::types::{Profile, Results, Run, Scenario};

#[derive(Debug, Parser)]
#[command(name = "ferrosfu-loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs load steps against a target and appends the results.
    Run(Box<RunArgs>),
    /// Internal: the raw forwarding loop (started by `run --target raw`).
    RawForward(raw::RawArgs),
    /// Writes DIR/README.md and the PNG plots from DIR/results.json and prints the markdown.
    Report { dir: PathBuf },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    target: types::Target,
    #[arg(long, value_enum, default_value = "fanout")]
    scenario: Scenario,
    /// ferrosfu's HTTP base URL (signaling and /api/workers); Janus's API base; the mediasoup
    /// driver's (tests/loadgen/mediasoup/server.mjs) base.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// The run's name in the results (default: the target's), e.g. `ferrosfu-before` for a
    /// second build of the same target in one results file.
    #[arg(long)]
    name: Option<String>,
    /// Process whose CPU and RSS are measured (default: ferrosfu's worker hosting the room, the
    /// raw forwarder for --target raw).
    #[arg(long)]
    sut_pid: Option<u32>,
    /// Steps: subscribers per step (meeting: peers that each publish and subscribe). Default
    /// 50,200,500; none with --search.
    #[arg(long, value_delimiter = ',')]
    subscribers: Option<Vec<u32>>,
    /// Measurement windows per step (medians and min–max reported).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// After the fixed steps: find the saturating subscriber count (doubling, then bisecting)
    /// and measure an overload step.
    #[arg(long)]
    search: bool,
    /// Subscribers the search starts at.
    #[arg(long, default_value_t = 100)]
    search_start: u32,
    /// The search stops bisecting once (saturating − unsaturated) ≤ this × unsaturated.
    #[arg(long, default_value_t = 0.2)]
    search_tolerance: f64,
    /// The search gives up unsaturated at this many subscribers.
    #[arg(long, default_value_t = 4000)]
    search_max: u32,
    /// Saturated: median loss above this, in %.
    #[arg(long, default_value_t = 1.0)]
    loss_limit: f64,
    /// Saturated: median CPU of the system under test at or above this, % of one core.
    #[arg(long, default_value_t = 95.0)]
    cpu_limit: f64,
    /// The overload step offers this × the saturating subscriber count (0: none).
    #[arg(long, default_value_t = 1.5)]
    overload: f64,
    /// Publishers (default: fanout 1, audio-meeting 10; meeting: every peer).
    #[arg(long)]
    publishers: Option<u32>,
    /// Video bitrate per publisher, RTP bits/s.
    #[arg(long, default_value_t = 2_000_000)]
    bitrate: u64,
    /// Video RTP packet size (header + payload, before SRTP).
    #[arg(long, default_value_t = 1200)]
    packet_size: usize,
    #[arg(long, value_enum, default_value = "cm80")]
    profile: Profile,
    /// Measured seconds per step.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds between "every subscriber gets media" and the measurement.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Core the generator (all its threads) is pinned to.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Core the raw forwarder is pinned to.
    #[arg(long, default_value_t = 1)]
    raw_core: usize,
    /// IP of the generator's UDP socket.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Results file (read-modify-write: one Run appended).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Free text for Run.notes.
    #[arg(long)]
    label: Option<String>,
    /// Room id.
    #[arg(long, default_value = "loadgen")]
    room: String,
    /// HS256 secret for signaling tokens (servers without --dev).
    #[arg(long, env = "FERROSFU_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Subscribers decrypt (authenticate, read the send stamp of) every N-th packet per stream
    /// at least; the generator samples more sparsely on its own when its core is short.
    #[arg(long, default_value_t = 1)]
    decrypt_every: u32,
    /// Seconds to wait for every subscriber to receive media (default: 20 + 40 ms per peer).
    #[arg(long)]
    ready_timeout: Option<f64>,
    /// ferrosfu: subscribers accept the router's header extensions, as a browser does, so every
    /// forwarded packet carries the consumer's MID, transport-wide sequence number and
    /// abs-send-time (default: none, the bare forwarding cost).
    #[arg(long)]
    header_extensions: bool,
    /// Every subscriber sends an SRTCP receiver report this often, in ms (a browser: ~1000 for
    /// reports, ~50-100 with transport-wide feedback). Default: none.
    #[arg(long)]
    rtcp_interval_ms: Option<u64>,
}

/// What every target needs to generate load.
#[derive(Clone, Debug)]
pub(crate) struct LoadConfig {
    pub(crate) scenario: Scenario,
    pub(crate) publishers: u32,
    pub(crate) bitrate: u64,
    pub(crate) packet_size: usize,
    pub(crate) profile: Profile,
    pub(crate) header_extensions: bool,
}

/// A system under test, driven step by step. Peers stay between steps.
pub(crate) trait Target {
    /// Connects without load (ferrosfu: the room and its router exist; raw: the forwarder runs
    /// and the publisher sends to it), so the baseline RSS can be taken.
    async fn prepare(&mut self) -> Result<()>;
    /// Adds peers until there are `n` subscribers (meeting: `n` peers), after the scenario's
    /// publishers.
    async fn grow(&mut self, n: u32) -> Result<()>;
    /// Removes the newest subscribers until there are `n` (the saturation search bisects).
    async fn shrink(&mut self, n: u32) -> Result<()> {
        let _ = n;
        bail!("this target cannot remove subscribers (no --search)")
    }
    fn publishers(&self) -> u32;
    /// Processes that may be the one forwarding (the busiest during warm-up is measured).
    async fn sut_pids(&self) -> Result<Vec<u32>>;
    fn notes(&self) -> Vec<String>;
    async fn close(self);
}

/// The binary's entry point: parses the command line and runs it.
pub fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // rtc-dtls warns about every ClientHello extension it does not know (OpenSSL's
                // from Janus): noise for a load generator.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rtc_dtls=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::RawForward(a) => raw::raw_forward_main(a),
        Command::Report { dir } => {
            print!("{}", report::write_report(&dir)?);
            Ok(())
        }
        Command::Run(a) => {
            raw::pin(a.core)?;
            raise_nofile();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run(*a))
        }
    }
}

/// 500 peers are 500 WebSockets: lift the soft fd limit to the hard one.
fn raise_nofile() {
    // SAFETY: get/set on a live rlimit struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

impl RunArgs {
    /// The `--subscribers` steps (the default ones unless searching).
    fn fixed_steps(&self) -> Vec<u32> {
        match &self.subscribers {
            Some(s) => s.clone(),
            None if self.search => Vec::new(),
            None => vec![50, 200, 500],
        }
    }
}

async fn run(a: RunArgs) -> Result<()> {
    if a.fixed_steps().is_empty() && !a.search {
        bail!("--subscribers: no steps");
    }
    let publishers = a.publishers.unwrap_or(match a.scenario {
        Scenario::Fanout => 1,
        Scenario::AudioMeeting => 10,
        Scenario::Meeting => 0,
    });
    let cfg = LoadConfig {
        scenario: a.scenario,
        publishers,
        bitrate: a.bitrate,
        packet_size: a.packet_size,
        profile: a.profile,
        header_extensions: a.header_extensions,
    };
    let started_at = stats::utc_now_rfc3339();
    let machine = stats::machine();
    let engine = Engine::start(
        a.bind,
        a.decrypt_every,
        a.rtcp_interval_ms
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis),
    )?;
    let handle = engine.handle();
    let (run, result) = match a.target {
        types::Target::Ferrosfu => {
            let t = ferrosfu::FerrosfuTarget::new(
                cfg.clone(),
                handle.clone(),
                &a.url,
                a.room.clone(),
                a.jwt_secret.clone(),
            )?;
            steps::Runner::new(&a, &cfg, &handle, t).run().await
        }
        types::Target::Raw => {
            let t = raw::RawTarget::new(cfg.clone(), handle.clone(), a.raw_core)?;
            steps::Runner::new(&a, &cfg, &handle, t).run().await
        }
        types::Target::Janus => {
            let t = janus_target::JanusTarget::new(cfg.clone(), handle.clone(), &a.url)?;
            steps::Runner::new(&a, &cfg, &handle, t).run().await
        }
        types::Target::Mediasoup => {
            let t = mediasoup::MediasoupTarget::new(cfg.clone(), handle.clone(), &a.url)?;
            steps::Runner::new(&a, &cfg, &handle, t).run().await
        }
    };
    drop(engine);
    // A run whose later step failed still keeps the steps it measured.
    if let Some(out) = &a.out
        && !run.steps.is_empty()
    {
        append_run(out, run, started_at, machine)?;
        eprintln!("loadgen: results appended to {}", out.display());
    }
    result
}

/// Appends `run` to the results file, creating it (commit, start time, machine) if needed.
fn append_run(path: &Path, run: Run, started_at: String, machine: types::Machine) -> Result<()> {
    let mut results = match std::fs::read_to_string(path) {
        Ok(s) => serde_json::from_str::<Results>(&s)
            .with_context(|| format!("{} is not a results file", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Results {
            commit: stats::commit(),
            started_at,
            machine,
            runs: Vec::new(),
        },
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    results.runs.push(run);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}
