//! A `gst-launch-1.0` child that sends Opus RTP (payload type 100) to a plain transport of the
//! REST broadcaster API, from any GStreamer audio source: a test tone, or a WAV file (speech
//! made by `espeak-ng`, for the captions tests). Killed on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// Payload type the sender uses (give it to [`crate::plain_opus_publisher`]).
pub const OPUS_PT: u8 = 100;

#[derive(Debug)]
pub struct OpusSender {
    child: Child,
}

impl OpusSender {
    /// Sends `source` (a gst-launch description ending in raw audio, e.g. `audiotestsrc
    /// is-live=true`) encoded as Opus in RTP with `ssrc` to `to`.
    pub fn start(source: &str, ssrc: u32, to: SocketAddr) -> anyhow::Result<OpusSender> {
        let desc = format!(
            "{source} ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 \
             ! opusenc bitrate=64000 frame-size=20 ! rtpopuspay pt={OPUS_PT} ssrc={ssrc} \
             ! udpsink host={} port={} async=false",
            to.ip(),
            to.port()
        );
        let child = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(desc.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn gst-launch-1.0 (gstreamer1.0-tools)")?;
        Ok(OpusSender { child })
    }
}

impl Drop for OpusSender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
