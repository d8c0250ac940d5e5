//! The `ferrosfu-loadgen` crate: real WebRTC publishers and subscribers (ICE, DTLS, SRTP; sans
//! IO, all on one UDP socket and one pinned thread) against ferrosfu or a raw forwarding loop,
//! measuring forwarded packets/s, the system under test's CPU and memory, loss and one-way
//! latency. See DESIGN-NOTES.md.
//!
//! Threads (all pinned to `--core`): the media engine (`media.rs`), and the signaling runtime
//! (tokio, current thread) that joins peers and runs the steps. `--target raw` adds a child
//! process pinned to `--raw-core`.

mod ferrosfu;
pub mod janus;
mod janus_target;
mod media;
mod peer;
mod raw;
pub mod report;
mod stats;
pub mod types;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use crate::media::{Engine, EngineHandle, Window};
use crate::types::{Profile, Results, Run, Scenario, Step};

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
    /// ferrosfu's HTTP base URL (signaling and /api/workers).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Process whose CPU and RSS are measured (default: ferrosfu's worker hosting the room, the
    /// raw forwarder for --target raw).
    #[arg(long)]
    sut_pid: Option<u32>,
    /// Steps: subscribers per step (meeting: peers that each publish and subscribe).
    #[arg(long, value_delimiter = ',', default_value = "50,200,500")]
    subscribers: Vec<u32>,
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

async fn run(a: RunArgs) -> Result<()> {
    if a.subscribers.is_empty() {
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
    let run = match a.target {
        types::Target::Ferrosfu => {
            let t = ferrosfu::FerrosfuTarget::new(
                cfg.clone(),
                handle.clone(),
                &a.url,
                a.room.clone(),
                a.jwt_secret.clone(),
            )?;
            run_steps(&a, &cfg, &handle, t).await?
        }
        types::Target::Raw => {
            let t = raw::RawTarget::new(cfg.clone(), handle.clone(), a.raw_core)?;
            run_steps(&a, &cfg, &handle, t).await?
        }
        types::Target::Janus => {
            let t = janus_target::JanusTarget::new(cfg.clone(), handle.clone(), &a.url)?;
            run_steps(&a, &cfg, &handle, t).await?
        }
    };
    drop(engine);
    if let Some(out) = &a.out {
        append_run(out, run, started_at, machine)?;
        eprintln!("loadgen: results appended to {}", out.display());
    }
    Ok(())
}

/// Consumers the scenario should have at `n`.
fn expected_consumers(scenario: Scenario, publishers: u32, n: u32) -> u32 {
    match scenario {
        Scenario::Fanout | Scenario::AudioMeeting => n * publishers,
        // Every peer consumes the audio and video of every other.
        Scenario::Meeting => n * n.saturating_sub(1) * 2,
    }
}

/// Waits until every expected consumer got a packet; reports who did not.
async fn wait_ready(engine: &EngineHandle, want: u32, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = engine.status().await?;
        let all_connected = s.connected == s.peers;
        if s.consumers >= want && s.flowing >= want && all_connected {
            return Ok(());
        }
        if Instant::now() > deadline {
            eprintln!(
                "loadgen: after {timeout:?}: {}/{} transports connected, {}/{want} consumers \
                 announced, {} receiving; waiting: {:?}; failed: {:?}; {} datagrams dropped",
                s.connected, s.peers, s.consumers, s.flowing, s.waiting, s.failed, s.dropped
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run_steps<T: Target>(
    a: &RunArgs,
    cfg: &LoadConfig,
    engine: &EngineHandle,
    mut target: T,
) -> Result<Run> {
    let mut steps = Vec::new();
    let mut notes: Vec<String> = a.label.iter().cloned().collect();
    let mut rss0: HashMap<u32, u64> = HashMap::new();
    let result = async {
        target.prepare().await?;
        // RSS before any subscriber.
        let pids = match a.sut_pid {
            Some(p) => vec![p],
            None => target.sut_pids().await?,
        };
        for p in pids {
            rss0.insert(p, stats::proc_sample(p)?.rss_bytes);
        }
        for &n in &a.subscribers {
            let t_join = Instant::now();
            target.grow(n).await?;
            let publishers = target.publishers();
            let want = expected_consumers(cfg.scenario, publishers, n);
            let timeout = a
                .ready_timeout
                .map_or(Duration::from_secs(20) + Duration::from_millis(40) * n, |s| {
                    Duration::from_secs_f64(s)
                });
            wait_ready(engine, want, timeout).await?;
            let joined_in = t_join.elapsed();

            // Warm-up; the candidate that burns the most CPU meanwhile is the one forwarding.
            let candidates = match a.sut_pid {
                Some(p) => vec![p],
                None => target.sut_pids().await?,
            };
            let before: Vec<_> = candidates
                .iter()
                .map(|p| stats::proc_sample(*p).map(|s| s.cpu).unwrap_or_default())
                .collect();
            tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
            let sut = candidates
                .iter()
                .zip(before)
                .max_by_key(|(p, c0)| {
                    stats::proc_sample(**p)
                        .map(|s| s.cpu.saturating_sub(*c0))
                        .unwrap_or_default()
                })
                .map(|(p, _)| *p)
                .context("no process to measure (give --sut-pid)")?;

            let s0 = stats::proc_sample(sut)?;
            let g0 = stats::process_cpu();
            let u0 = stats::udp_counters().unwrap_or_default();
            let t0 = Instant::now();
            eprintln!(
                "loadgen: measuring n={n} pubs={publishers} for {:.0} s",
                a.duration
            );
            engine.start_window().await?;
            tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
            let w = engine.end_window().await?;
            let wall = t0.elapsed().as_secs_f64();
            let s1 = stats::proc_sample(sut)?;
            let g1 = stats::process_cpu();
            let u1 = stats::udp_counters().unwrap_or_default();
            let status = engine.status().await?;

            let step = step_of(
                cfg,
                publishers,
                n,
                &w,
                StepSamples {
                    wall,
                    sut_cpu: s1.cpu.saturating_sub(s0.cpu),
                    gen_cpu: g1.saturating_sub(g0),
                    sut_rss: s1.rss_bytes,
                    rss0: rss0.get(&sut).copied().unwrap_or(s1.rss_bytes),
                    consumers: status.consumers,
                },
            );
            let rcvbuf = u1.rcvbuf_errors.saturating_sub(u0.rcvbuf_errors);
            eprintln!(
                "loadgen: {:?}/{:?} n={n} pubs={publishers}: forwarded {:.0} pkt/s (expected \
                 {:.0}, loss {:.2} %, seq gaps {}) | SUT pid {sut} CPU {:.1} % => {:.0} pkt/s \
                 per core | latency p50 {:.0} us p99 {:.0} us p99.9 {:.0} us max {} us ({} \
                 samples) | generator CPU {:.1} % (engine {:.1} %, waited {:.0} ms for a CPU, decrypt 1/{}) rx drops {} \
                 | RSS {:.1} MiB, {:.1} KiB/consumer | system RcvbufErrors +{rcvbuf} | joined \
                 in {:.1} s{}",
                a.target,
                a.scenario,
                step.forwarded_pps,
                step.expected_pps,
                step.loss_percent,
                w.seq_gap_lost,
                step.sut_cpu_percent,
                step.pps_per_core,
                step.latency.p50_us,
                step.latency.p99_us,
                step.latency.p999_us,
                w.latency_max_us,
                w.latency_samples,
                step.generator_cpu_percent,
                w.engine_cpu.as_secs_f64() * 100.0 / wall,
                w.engine_run_delay.as_secs_f64() * 1000.0,
                w.decrypt_every_max,
                w.rx_drops,
                step.sut_rss_bytes as f64 / 1048576.0,
                step.rss_per_consumer_bytes / 1024.0,
                joined_in.as_secs_f64(),
                if step.generator_bound {
                    " | GENERATOR-BOUND"
                } else {
                    ""
                },
            );
            if w.decrypt_every_max > 1 {
                notes.push(format!(
                    "n={n}: generator decrypted 1 packet in {} per stream (latency sampled; loss \
                     from RTP headers)",
                    w.decrypt_every_max
                ));
            }
            if w.srtp_failures > 0 || w.unknown_ssrc > 0 || w.send_errors > 0 {
                notes.push(format!(
                    "n={n}: {} SRTP failures, {} packets of unknown SSRC, {} send errors",
                    w.srtp_failures, w.unknown_ssrc, w.send_errors
                ));
            }
            steps.push(step);
        }
        anyhow::Ok(())
    }
    .await;
    notes.extend(target.notes());
    notes.push(format!(
        "generator: one UDP socket, media thread + signaling pinned to core {}; profile {:?}",
        a.core, a.profile
    ));
    if let Some(ms) = a.rtcp_interval_ms.filter(|&ms| ms > 0) {
        notes.push(format!(
            "subscribers send an SRTCP receiver report every {ms} ms"
        ));
    }
    target.close().await;
    result?;
    Ok(Run {
        target: a.target,
        scenario: a.scenario,
        profile: a.profile,
        notes,
        steps,
    })
}

struct StepSamples {
    wall: f64,
    sut_cpu: Duration,
    gen_cpu: Duration,
    sut_rss: u64,
    rss0: u64,
    consumers: u32,
}

fn step_of(cfg: &LoadConfig, publishers: u32, n: u32, w: &Window, s: StepSamples) -> Step {
    let secs = w.wall.as_secs_f64().max(1e-9);
    let sut_cpu_percent = s.sut_cpu.as_secs_f64() * 100.0 / s.wall;
    let generator_cpu_percent = s.gen_cpu.as_secs_f64() * 100.0 / s.wall;
    let forwarded_pps = w.received as f64 / secs;
    let loss_percent = if w.expected > 0 {
        (w.expected.saturating_sub(w.received)) as f64 * 100.0 / w.expected as f64
    } else {
        0.0
    };
    Step {
        publishers,
        subscribers: n,
        bitrate_bps: cfg.bitrate,
        packet_size: cfg.packet_size as u32,
        duration_s: secs,
        sent_pps: w.sent as f64 / secs,
        expected_pps: w.expected as f64 / secs,
        forwarded_pps,
        sut_cpu_percent,
        pps_per_core: if sut_cpu_percent > 0.0 {
            forwarded_pps * 100.0 / sut_cpu_percent
        } else {
            0.0
        },
        generator_cpu_percent,
        loss_percent,
        latency: w.latency,
        sut_rss_bytes: s.sut_rss,
        rss_per_consumer_bytes: if s.consumers > 0 {
            s.sut_rss.saturating_sub(s.rss0) as f64 / f64::from(s.consumers)
        } else {
            0.0
        },
        // Busy, dropping, or kept off its core by other processes for > 10 % of the window.
        generator_bound: generator_cpu_percent >= 90.0
            || w.rx_drops > 0
            || w.engine_run_delay.as_secs_f64() > 0.1 * s.wall,
    }
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
