//! Real, decodable media for the webrtc-rs test [`Publisher`]: a `gst-launch-1.0` child encodes
//! a live test picture (VP8, 320x240 at 30 fps, a keyframe every 15 frames) and a sine tone
//! (Opus, 20 ms) and sends both as RTP to two loopback UDP sockets of the test; a task forwards
//! every packet to each publisher with [`Publisher::send_rtp`] (the track sets SSRC and payload
//! type). One source can feed several publishers.
//!
//! The encoder cannot answer PLI/FIR (it is another process), hence the frequent keyframes: a
//! new consumer or recorder gets one within half a second.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrosfu_fbs::MediaKind;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use webrtc::rtp::packet::Packet;
use webrtc::util::Unmarshal;

use crate::rtc_client::{OPUS_PAYLOAD_TYPE, Publisher, VP8_PAYLOAD_TYPE};

/// How long the encoder may take to send its first packet of each kind.
const FIRST_PACKET_TIMEOUT: Duration = Duration::from_secs(15);

type Publishers = Arc<Mutex<Vec<Arc<Publisher>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running `gst-launch-1.0` encoder feeding publishers. Dropping it kills the child and stops
/// the forwarding.
pub struct GstSource {
    child: Child,
    tasks: Vec<JoinHandle<()>>,
    publishers: Publishers,
    /// Packets received from the encoder: audio, video.
    forwarded: Arc<[AtomicU64; 2]>,
    stderr: Arc<Mutex<String>>,
}

impl std::fmt::Debug for GstSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GstSource")
            .field("pid", &self.child.id())
            .field("publishers", &lock(&self.publishers).len())
            .field("audio", &self.packets_forwarded(MediaKind::Audio))
            .field("video", &self.packets_forwarded(MediaKind::Video))
            .finish()
    }
}

fn index(kind: MediaKind) -> usize {
    match kind {
        MediaKind::Audio => 0,
        MediaKind::Video => 1,
    }
}

/// What the encoder shows and plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// A moving ball and a 440 Hz tone.
    Ball,
    /// Marks for measuring audio/video sync, both with period [`SYNC_PERIOD`] from the same
    /// pipeline clock: the whole picture's brightness follows a sine (videotestsrc zone-plate
    /// with only the time term: brightest at frame 0, 64, 128, …) and the audio is silent but for
    /// a 10 ms 1 kHz tick at 0, 64/30 s, 128/30 s, … So in a well-synchronized recording the
    /// brightest instants and the tick onsets coincide.
    SyncMarks,
}

/// The period of [`Pattern::SyncMarks`]: 64 frames at 30 fps.
pub const SYNC_PERIOD: Duration = Duration::from_nanos(2_133_333_333);

/// The `gst-launch-1.0` arguments: video to `video_port`, audio to `audio_port`.
fn pipeline(pattern: Pattern, video_port: u16, audio_port: u16) -> Vec<String> {
    let (video, audio) = match pattern {
        Pattern::Ball => (
            "videotestsrc is-live=true pattern=ball".to_owned(),
            "audiotestsrc is-live=true wave=sine freq=440".to_owned(),
        ),
        Pattern::SyncMarks => (
            // Phase in 1/256 cycles: k0 + kt × frame (kt = 4: a 64-frame period).
            "videotestsrc is-live=true pattern=zone-plate k0=64 kt=4".to_owned(),
            // 1 ms buffers: a tick starts on a buffer boundary (at most 1 ms early).
            format!(
                "audiotestsrc is-live=true wave=ticks freq=1000 samplesperbuffer=48 \
                 tick-interval={}",
                SYNC_PERIOD.as_nanos()
            ),
        ),
    };
    format!(
        "{video} \
         ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc deadline=1 keyframe-max-dist=15 threads=1 target-bitrate=300000 \
         ! rtpvp8pay mtu=1200 pt={VP8_PAYLOAD_TYPE} picture-id-mode=15-bit \
         ! udpsink host=127.0.0.1 port={video_port} async=false \
         {audio} \
         ! audio/x-raw,rate=48000,channels=2 \
         ! opusenc frame-size=20 \
         ! rtpopuspay pt={OPUS_PAYLOAD_TYPE} \
         ! udpsink host=127.0.0.1 port={audio_port} async=false"
    )
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

async fn forward(
    socket: UdpSocket,
    kind: MediaKind,
    publishers: Publishers,
    forwarded: Arc<[AtomicU64; 2]>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok(n) = socket.recv(&mut buf).await else {
            return;
        };
        let Ok(packet) = Packet::unmarshal(&mut &buf[..n]) else {
            continue;
        };
        forwarded[index(kind)].fetch_add(1, Ordering::Relaxed);
        let publishers: Vec<Arc<Publisher>> = lock(&publishers).clone();
        for p in publishers {
            // Fails only for a closed peer connection; the others still get the packet.
            let _ = p.send_rtp(kind, &packet).await;
        }
    }
}

impl GstSource {
    /// Starts the encoder and forwards its packets to `publishers` (more can be added with
    /// [`GstSource::add_publisher`]). Returns once a packet of each kind came from the
    /// encoder; fails with the encoder's stderr when it exits, and with a hint to run
    /// `scripts/setup` when `gst-launch-1.0` is missing.
    pub async fn start(publishers: Vec<Arc<Publisher>>) -> Result<GstSource> {
        Self::start_with(publishers, Pattern::Ball).await
    }

    /// [`GstSource::start`] with the given picture and sound.
    pub async fn start_with(
        publishers: Vec<Arc<Publisher>>,
        pattern: Pattern,
    ) -> Result<GstSource> {
        let present = Command::new("gst-launch-1.0")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            bail!("gst-launch-1.0 is missing (GStreamer tools and plugins): run scripts/setup");
        }
        let audio = UdpSocket::bind("127.0.0.1:0")
            .await
            .context("bind audio socket")?;
        let video = UdpSocket::bind("127.0.0.1:0")
            .await
            .context("bind video socket")?;
        let args = pipeline(
            pattern,
            video.local_addr()?.port(),
            audio.local_addr()?.port(),
        );
        let mut child = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn gst-launch-1.0")?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    lock(&stderr).push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let publishers: Publishers = Arc::new(Mutex::new(publishers));
        let forwarded: Arc<[AtomicU64; 2]> = Arc::default();
        let tasks = [(audio, MediaKind::Audio), (video, MediaKind::Video)]
            .into_iter()
            .map(|(socket, kind)| {
                tokio::spawn(forward(
                    socket,
                    kind,
                    Arc::clone(&publishers),
                    Arc::clone(&forwarded),
                ))
            })
            .collect();
        // From here on, Drop cleans up whatever fails.
        let mut source = GstSource {
            child,
            tasks,
            publishers,
            forwarded,
            stderr,
        };
        let deadline = tokio::time::Instant::now() + FIRST_PACKET_TIMEOUT;
        while source.packets_forwarded(MediaKind::Audio) == 0
            || source.packets_forwarded(MediaKind::Video) == 0
        {
            if let Some(status) = source.child.try_wait()? {
                // Let the stderr reader catch up.
                tokio::time::sleep(Duration::from_millis(100)).await;
                bail!(
                    "gst-launch-1.0 exited ({status}) before sending media: {}\npipeline: {}",
                    lock(&source.stderr).trim(),
                    args.join(" ")
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "gst-launch-1.0 sent no {} within {FIRST_PACKET_TIMEOUT:?}: {}",
                    if source.packets_forwarded(MediaKind::Audio) == 0 {
                        "audio"
                    } else {
                        "video"
                    },
                    lock(&source.stderr).trim()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(source)
    }

    /// Feeds one more publisher from now on.
    pub fn add_publisher(&self, publisher: Arc<Publisher>) {
        lock(&self.publishers).push(publisher);
    }

    /// RTP packets of `kind` received from the encoder (and handed to every publisher) so far.
    pub fn packets_forwarded(&self, kind: MediaKind) -> u64 {
        self.forwarded[index(kind)].load(Ordering::Relaxed)
    }

    /// The encoder's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a VP8 RTP payload starts a keyframe: payload descriptor (RFC 7741) with S=1 and
/// partition index 0, then a frame tag whose bit 0 (inverse key frame flag) is clear.
pub fn vp8_payload_is_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let start_of_partition = b0 & 0x10 != 0;
    let partition_index = b0 & 0x07;
    if !start_of_partition || partition_index != 0 {
        return false;
    }
    let mut at = 1;
    if b0 & 0x80 != 0 {
        // X: extension byte with I, L, T, K.
        let Some(&x) = payload.get(at) else {
            return false;
        };
        at += 1;
        if x & 0x80 != 0 {
            // I: picture id, 7 or 15 bits (M bit).
            let Some(&pid) = payload.get(at) else {
                return false;
            };
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            // L: TL0PICIDX.
            at += 1;
        }
        if x & 0x30 != 0 {
            // T or K: TID/Y/KEYIDX.
            at += 1;
        }
    }
    payload.get(at).is_some_and(|tag| tag & 0x01 == 0)
}

/// What [`measure_sync`] found in a file recorded from a [`Pattern::SyncMarks`] source.
#[derive(Clone, Debug)]
pub struct SyncMeasure {
    /// Decoded video frames and audio tick onsets seen.
    pub video_frames: usize,
    pub ticks: usize,
    /// The brightest instant and the tick onset, each modulo [`SYNC_PERIOD`], in seconds of
    /// the file's timeline.
    pub video_peak: f64,
    pub audio_tick: f64,
    /// Audio minus video, wrapped into ± half a period, in seconds: positive when the sound
    /// comes after the picture.
    pub offset: f64,
}

/// Decodes `path` (a recording of a [`Pattern::SyncMarks`] source) with GStreamer and measures
/// how far its audio is from its video: the phase of the picture's brightness sine (a
/// least-squares fit of a sine plus offset over every frame, timed by its PTS) against the
/// circular mean of the tick onsets (first sample above 0.05 after 100 ms of quiet).
pub fn measure_sync(path: &std::path::Path) -> Result<SyncMeasure> {
    use gstreamer as gst;
    use gstreamer::prelude::*;

    gst::init()?;
    let pipeline = gst::parse::launch(
        "filesrc name=src ! decodebin name=d \
         d. ! queue ! videoconvert ! videoscale \
            ! video/x-raw,format=GRAY8,width=16,height=16 ! fakesink name=v sync=false \
         d. ! queue ! audioconvert ! audioresample \
            ! audio/x-raw,format=F32LE,channels=1,rate=48000,layout=interleaved \
            ! fakesink name=a sync=false",
    )?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let by_name = |n: &str| pipeline.by_name(n).with_context(|| format!("element {n}"));
    by_name("src")?.set_property("location", path.to_str().context("path")?);
    // (PTS s, mean luma) per frame; tick onsets (s).
    let frames: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let onsets: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sink_pad = |n: &str| {
        by_name(n)?
            .static_pad("sink")
            .with_context(|| format!("{n} sink pad"))
    };
    let f = Arc::clone(&frames);
    sink_pad("v")?.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer()
            && let (Some(pts), Ok(map)) = (b.pts(), b.map_readable())
            && !map.is_empty()
        {
            let mean = map.iter().map(|&v| f64::from(v)).sum::<f64>() / map.len() as f64;
            lock(&f).push((pts.nseconds() as f64 / 1e9, mean));
        }
        gst::PadProbeReturn::Ok
    });
    let o = Arc::clone(&onsets);
    let quiet = AtomicU64::new(0);
    sink_pad("a")?.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer()
            && let (Some(pts), Ok(map)) = (b.pts(), b.map_readable())
        {
            for (i, s) in map.chunks_exact(4).enumerate() {
                let x = f32::from_le_bytes([s[0], s[1], s[2], s[3]]).abs();
                if x > 0.05 {
                    if quiet.swap(0, Ordering::Relaxed) >= 4800 {
                        lock(&o).push(pts.nseconds() as f64 / 1e9 + i as f64 / 48_000.0);
                    }
                } else if x < 0.02 {
                    quiet.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().context("bus")?;
    let end = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null)?;
    match end.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => bail!("decoding {}: {}", path.display(), e.error()),
        _ => bail!("decoding {}: no end within 60 s", path.display()),
    }
    let frames = lock(&frames).clone();
    let onsets = lock(&onsets).clone();
    if frames.len() < 30 || onsets.len() < 2 {
        bail!(
            "too little to measure: {} frames, {} ticks",
            frames.len(),
            onsets.len()
        );
    }
    let period = SYNC_PERIOD.as_secs_f64();
    let w = std::f64::consts::TAU / period;
    // Least squares of y = a·cos(wt) + b·sin(wt) + c (not a single DFT bin: the recording is
    // not a whole number of periods). The brightest instant is at phase atan2(b, a).
    let mut m = [[0.0f64; 4]; 3];
    for &(t, y) in &frames {
        let x = [(w * t).cos(), (w * t).sin(), 1.0];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, v) in x.iter().enumerate() {
                row[j] += x[i] * v;
            }
            row[3] += x[i] * y;
        }
    }
    let [a, b, _] = solve3(m).context("brightness fit: singular")?;
    let video_peak = b.atan2(a).rem_euclid(std::f64::consts::TAU) / w;
    let (c, s) = onsets.iter().fold((0.0, 0.0), |(c, s), &t| {
        (c + (w * t).cos(), s + (w * t).sin())
    });
    let audio_tick = s.atan2(c).rem_euclid(std::f64::consts::TAU) / w;
    let mut offset = (audio_tick - video_peak).rem_euclid(period);
    if offset > period / 2.0 {
        offset -= period;
    }
    Ok(SyncMeasure {
        video_frames: frames.len(),
        ticks: onsets.len(),
        video_peak,
        audio_tick,
        offset,
    })
}

/// Solves the 3×3 system given as an augmented matrix (Gaussian elimination, partial pivoting).
fn solve3(mut m: [[f64; 4]; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[pivot][col].abs() < 1e-12 {
            return None;
        }
        m.swap(col, pivot);
        let p = m[col];
        for (row, r) in m.iter_mut().enumerate() {
            if row != col {
                let f = r[col] / p[col];
                for (v, pv) in r.iter_mut().zip(p).skip(col) {
                    *v -= f * pv;
                }
            }
        }
    }
    Some([m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;

    #[test]
    fn keyframe_detection() {
        // Plain descriptor, key frame tag.
        assert!(vp8_payload_is_keyframe(&[0x10, 0x50, 0x00]));
        // Inter frame.
        assert!(!vp8_payload_is_keyframe(&[0x10, 0x51, 0x00]));
        // Not the start of the partition.
        assert!(!vp8_payload_is_keyframe(&[0x00, 0x50, 0x00]));
        // X with a 15-bit picture id.
        assert!(vp8_payload_is_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x50]));
        assert!(!vp8_payload_is_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x51]));
        // X with a 7-bit picture id, TL0PICIDX and TID.
        assert!(vp8_payload_is_keyframe(&[
            0x90, 0xE0, 0x05, 0x01, 0x20, 0x50
        ]));
        assert!(!vp8_payload_is_keyframe(&[0x90]));
        assert!(!vp8_payload_is_keyframe(&[]));
    }

    /// The sync marks encoded straight into WebM (no network, no SFU), audio shifted by
    /// `audio_shift_ms`: what [`measure_sync`] must report.
    fn encode_marks(path: &std::path::Path, audio_shift_ms: i64) {
        let args = format!(
            "-q -e videotestsrc num-buffers=270 pattern=zone-plate k0=64 kt=4 \
             ! video/x-raw,width=320,height=240,framerate=30/1 \
             ! vp8enc deadline=1 keyframe-max-dist=15 threads=1 target-bitrate=300000 \
             ! webmmux name=m ! filesink location={} \
             audiotestsrc num-buffers=9000 wave=ticks freq=1000 samplesperbuffer=48 \
             tick-interval={} timestamp-offset={} \
             ! audio/x-raw,rate=48000,channels=2 ! opusenc frame-size=20 ! m.",
            path.display(),
            SYNC_PERIOD.as_nanos(),
            audio_shift_ms * 1_000_000,
        );
        let status = Command::new("gst-launch-1.0")
            .args(args.split_whitespace())
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn measure_sync_reads_the_offset_of_a_direct_encoding() {
        let dir = std::env::temp_dir().join(format!("ferrosfu-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for shift_ms in [0, 200, -150] {
            let path = dir.join(format!("marks{shift_ms}.webm"));
            encode_marks(&path, shift_ms);
            let m = measure_sync(&path).unwrap();
            assert!(m.video_frames >= 250 && m.ticks >= 4, "{m:?}");
            let got_ms = m.offset * 1000.0;
            eprintln!("audio shifted {shift_ms} ms: measured {got_ms:.1} ms");
            assert!(
                (got_ms - shift_ms as f64).abs() < 5.0,
                "shift {shift_ms} ms, measured {got_ms:.1} ms: {m:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
