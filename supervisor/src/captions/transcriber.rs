//! One transcriber: an audio producer's Opus consumed on a loopback PlainTransport into a child
//! (see `engine.rs`) pinned to the recording cores, its hypotheses turned into `transcript`
//! notifications and, for final ones, stored rows. A child that dies is started again (1 s
//! doubling to 30 s) on the same port; the room never notices. Stopped when the tap stops or
//! the producer closes.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, LinesCodec};

use super::Shared;
use super::engine::{self, Hypothesis};
use crate::media::{Consumer, Transport};
use crate::recording::loopback;
use crate::recording::recorder::udp_ports_bound;
use crate::rooms::{RecordSource, Room, Transcript};
use crate::store::Write;
use crate::worker::new_id;

/// Longest output line read from a child; longer ones are skipped (bounded memory).
const MAX_LINE: usize = 16 * 1024;
/// Longest caption text kept (the store's bound).
const MAX_TEXT: usize = 4096;
/// How long a child may take to bind its socket.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the tap's state shows of a transcriber.
#[derive(Debug, Default)]
pub(crate) struct Status {
    pub pid: AtomicU32,
    pub restarts: AtomicU32,
}

/// Runs the transcriber of `source` until `stop` turns true or the producer closes.
pub(crate) async fn run(
    shared: Arc<Shared>,
    room: Arc<Room>,
    source: RecordSource,
    tap_started: (Instant, DateTime<Utc>),
    status: Arc<Status>,
    mut stop: watch::Receiver<bool>,
) {
    let producer_id = source.producer.id().as_str().to_owned();
    let ports = match shared.ports.take(1) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(target: "captions", room = %room.id, producer = %producer_id, "no transcriber: {e}");
            return;
        }
    };
    let port = ports[0];
    let setup = consume(&room, &source, port).await;
    let (transport, consumer, pt) = match setup {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(target: "captions", room = %room.id, producer = %producer_id, "no transcriber: {e}");
            shared.ports.give_back(&ports);
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        let child = spawn(&shared, port, pt).await;
        let mut children = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(target: "captions", room = %room.id, producer = %producer_id, "transcriber did not start: {e}");
                failures += 1;
                if wait_or_stop(&mut stop, backoff(failures)).await {
                    break;
                }
                continue;
            }
        };
        status.pid.store(children.pid(), Ordering::Relaxed);
        let _ = consumer.resume().await;
        let started = Instant::now();
        let end = follow(
            &shared,
            &room,
            &source,
            &mut children,
            tap_started,
            &mut stop,
            &consumer,
        )
        .await;
        children.kill().await;
        status.pid.store(0, Ordering::Relaxed);
        match end {
            End::Stopped => break,
            End::Exited(why) => {
                // A child that ran a while had a good run: start counting again.
                if started.elapsed() > Duration::from_secs(60) {
                    failures = 0;
                }
                failures += 1;
                status.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "captions", room = %room.id, producer = %producer_id, restart_in_ms = backoff(failures).as_millis() as u64, "transcriber exited: {why}");
                if wait_or_stop(&mut stop, backoff(failures)).await {
                    break;
                }
            }
        }
    }
    let _ = transport.close().await;
    shared.ports.give_back(&ports);
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// Sleeps `d`; true when the transcriber was told to stop meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let stopped = async { stop.wait_for(|s| *s).await.is_ok() };
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stopped => true,
    }
}

/// The producer consumed onto a loopback PlainTransport sending to `port` (RTCP muxed), with
/// the payload type the child must expect.
async fn consume(
    room: &Room,
    source: &RecordSource,
    port: u16,
) -> Result<(Transport, Consumer, u8), String> {
    let params = loopback::consumer_params(room.rtp_capabilities(), &source.consumable)?;
    let codec = params.codecs.first().ok_or("no codec")?;
    if !codec.mime_type.eq_ignore_ascii_case("audio/opus") {
        return Err(format!("{} is not Opus", codec.mime_type));
    }
    let pt = codec.payload_type;
    let (t, c) = loopback::consume(source, &params, port, None).await?;
    Ok((t, c, pt))
}

/// The child processes of one transcriber, in one process group: `gst-launch-1.0`, and the
/// engine command reading its stdout when the engine is a command. Each gets
/// `PR_SET_PDEATHSIG(SIGKILL)` (a killed supervisor leaves none behind).
struct Children {
    procs: Vec<Child>,
    pgid: i32,
}

impl Children {
    fn pid(&self) -> u32 {
        self.procs.last().and_then(Child::id).unwrap_or(0)
    }

    /// Whether one of them exited (and how).
    fn exited(&mut self) -> Option<String> {
        self.procs
            .iter_mut()
            .find_map(|c| c.try_wait().ok().flatten())
            .map(|s| s.to_string())
    }

    async fn kill(&mut self) {
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        for c in &mut self.procs {
            let _ = c.wait().await;
        }
    }
}

/// A command pinned to the recording cores, in process group `pgid` (0: its own).
fn prepare(program: &str, shared: &Shared, pgid: i32) -> Result<Command, String> {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(pgid)
        .kill_on_drop(true);
    let mut set = nix::sched::CpuSet::new();
    for &c in &shared.cores {
        set.set(c as usize).map_err(|e| e.to_string())?;
    }
    let pin = !shared.cores.is_empty();
    // SAFETY: runs in the forked child before exec; only async-signal-safe system calls
    // (prctl, sched_setaffinity) on values prepared before the fork; no allocation.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if pin {
                nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
                    .map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// The children, once `gst-launch-1.0` bound its socket.
async fn spawn(shared: &Shared, port: u16, pt: u8) -> Result<Children, String> {
    let (args, engine_cmd) = engine::command(&shared.settings.engine, port, pt);
    let gst = shared.gst_launch.display().to_string();
    let mut first = prepare(&gst, shared, 0)?;
    let mut gst_child = first
        .args(&args)
        .spawn()
        .map_err(|e| format!("{gst}: {e}"))?;
    let pgid = gst_child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(0);
    let mut children = Children {
        procs: Vec::new(),
        pgid,
    };
    if let Some(c) = engine_cmd {
        let audio: Stdio = gst_child
            .stdout
            .take()
            .ok_or("no stdout")?
            .try_into()
            .map_err(|e| format!("pipe: {e}"))?;
        children.procs.push(gst_child);
        // `exec`: the command replaces the shell and keeps its PDEATHSIG.
        let mut second = prepare("/bin/sh", shared, pgid)?;
        match second
            .arg("-c")
            .arg(format!("exec {c}"))
            .stdin(audio)
            .spawn()
        {
            Ok(child) => children.procs.push(child),
            Err(e) => {
                children.kill().await;
                return Err(format!("captions.command: {e}"));
            }
        }
    } else {
        children.procs.push(gst_child);
    }
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    while !udp_ports_bound(&[port]) {
        if let Some(status) = children.exited() {
            children.kill().await;
            return Err(format!("exited ({status}) before listening"));
        }
        if Instant::now() > deadline {
            children.kill().await;
            return Err(format!("did not listen within {LISTEN_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(children)
}

enum End {
    Stopped,
    Exited(String),
}

/// Reads the child's hypotheses until it exits, the tap stops, or the producer closes.
async fn follow(
    shared: &Shared,
    room: &Room,
    source: &RecordSource,
    children: &mut Children,
    tap_started: (Instant, DateTime<Utc>),
    stop: &mut watch::Receiver<bool>,
    consumer: &Consumer,
) -> End {
    let Some(out) = children.procs.last_mut().and_then(|c| c.stdout.take()) else {
        return End::Exited("no stdout".into());
    };
    let mut lines = FramedRead::new(out, LinesCodec::new_with_max_length(MAX_LINE));
    // An engine's own times count from its first audio: about when the consumer was resumed
    // (a producer sends all the time; DTX silence too), in the tap's time.
    let mut utterance = Utterance {
        audio_origin_ms: tap_started.0.elapsed().as_millis() as u64,
        ..Utterance::default()
    };
    loop {
        tokio::select! {
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => return End::Stopped,
            _ = consumer.closed() => return End::Stopped,
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    if let Some(h) = engine::parse_line(&shared.settings.engine, &line) {
                        utterance.hear(room, source, h, tap_started).await;
                    }
                }
                // Too long: skipped (the codec resynchronizes at the next newline).
                Some(Err(_)) => {}
                None => {
                    let last = children.procs.last_mut().map(Child::wait);
                    let status = match last {
                        Some(w) => w.await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                        None => "gone".into(),
                    };
                    return End::Exited(status);
                }
            },
        }
    }
}

/// The utterance being heard: when it started and the last partial sent; where the engine's
/// audio time 0 is in the tap's time.
#[derive(Default)]
struct Utterance {
    start_ms: Option<u64>,
    last: String,
    audio_origin_ms: u64,
}

impl Utterance {
    fn reset(&mut self) {
        self.start_ms = None;
        self.last.clear();
    }

    async fn hear(
        &mut self,
        room: &Room,
        source: &RecordSource,
        h: Hypothesis,
        (started, started_at): (Instant, DateTime<Utc>),
    ) {
        let now_ms = started.elapsed().as_millis() as u64;
        let mut text = h.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.len() > MAX_TEXT {
            let mut cut = MAX_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        if text.is_empty() || (!h.is_final && text == self.last) {
            if h.is_final {
                self.reset();
            }
            return;
        }
        let (start_ms, end_ms) = match h.span {
            Some((s, e)) => (
                self.audio_origin_ms + (s * 1000.0) as u64,
                self.audio_origin_ms + (e * 1000.0) as u64,
            ),
            None => (*self.start_ms.get_or_insert(now_ms), now_ms),
        };
        let producer_id = source.producer.id().as_str().to_owned();
        let stored = h.is_final.then(|| {
            let at = |ms: u64| started_at + chrono::Duration::milliseconds(ms as i64);
            (
                source.peer_id.clone(),
                Write::TranscriptFinal {
                    id: new_id(),
                    participant_id: String::new(),
                    producer_id: producer_id.clone(),
                    text: text.clone(),
                    started_at: at(start_ms),
                    ended_at: at(end_ms.max(start_ms)),
                },
            )
        });
        let t = Transcript {
            peer_id: source.peer_id.clone(),
            producer_id,
            text: text.clone(),
            is_final: h.is_final,
            start_ms,
            end_ms,
        };
        room.caption(t, stored).await;
        if h.is_final {
            self.reset();
        } else {
            self.last = text;
        }
    }
}
