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

/// The `gst-launch-1.0` arguments: video to `video_port`, audio to `audio_port`.
fn pipeline(video_port: u16, audio_port: u16) -> Vec<String> {
    format!(
        "videotestsrc is-live=true pattern=ball \
         ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc deadline=1 keyframe-max-dist=15 threads=1 target-bitrate=300000 \
         ! rtpvp8pay mtu=1200 pt={VP8_PAYLOAD_TYPE} picture-id-mode=15-bit \
         ! udpsink host=127.0.0.1 port={video_port} async=false \
         audiotestsrc is-live=true wave=sine freq=440 \
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
        let args = pipeline(video.local_addr()?.port(), audio.local_addr()?.port());
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

#[cfg(test)]
mod tests {
    use super::vp8_payload_is_keyframe;

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
}
