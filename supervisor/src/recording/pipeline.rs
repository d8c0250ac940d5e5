//! The `gst-launch-1.0 -e` command line for a recording, chosen from the recorded tracks'
//! codecs. Pure: no processes, no sockets.
//!
//! Every track arrives as plain RTP on its own UDP port with RTCP (the SFU's sender reports) on
//! a second port, into one `rtpbin` session per track, so the jitter buffers and lip sync work
//! from the SRs. Depayloaded streams go into one muxer:
//!
//! | tracks                        | container                         |
//! |-------------------------------|-----------------------------------|
//! | Opus only                     | Ogg (or WebM, `audio_container`)  |
//! | VP8/VP9 (+ Opus)              | WebM                              |
//! | H264 (+ Opus)                 | MP4 (or Matroska, `h264_container`)|
//! | H264 with VP8/VP9             | Matroska                          |

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::container::{Container, ContainerPrefs};

/// A codec the recorder can depayload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Opus,
    Vp8,
    Vp9,
    H264,
}

impl Codec {
    /// From an RTP mime type ("audio/opus", "video/VP8"…); None for codecs not recordable.
    pub fn from_mime(mime: &str) -> Option<Codec> {
        let (_, name) = mime.split_once('/')?;
        Some(match name.to_ascii_lowercase().as_str() {
            "opus" => Codec::Opus,
            "vp8" => Codec::Vp8,
            "vp9" => Codec::Vp9,
            "h264" => Codec::H264,
            _ => return None,
        })
    }

    pub fn is_audio(self) -> bool {
        self == Codec::Opus
    }

    fn encoding_name(self) -> &'static str {
        match self {
            Codec::Opus => "OPUS",
            Codec::Vp8 => "VP8",
            Codec::Vp9 => "VP9",
            Codec::H264 => "H264",
        }
    }

    /// Depayloader (and parser) from RTP to what the muxers take.
    fn depay(self) -> &'static str {
        match self {
            Codec::Opus => "rtpopusdepay ! opusparse",
            Codec::Vp8 => "rtpvp8depay wait-for-keyframe=true",
            Codec::Vp9 => "rtpvp9depay wait-for-keyframe=true",
            Codec::H264 => "rtph264depay wait-for-keyframe=true ! h264parse",
        }
    }
}

/// One recorded track: what arrives on which ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TrackSpec {
    pub(super) codec: Codec,
    pub payload_type: u8,
    pub clock_rate: u32,
    /// Where GStreamer receives RTP (the plain transport sends there).
    pub rtp_port: u16,
    /// Where GStreamer receives RTCP.
    pub rtcp_port: u16,
}

/// The muxer element of a container.
fn muxer(c: Container) -> &'static str {
    match c {
        Container::Ogg => "oggmux",
        Container::Webm => "webmmux",
        // Fragment-free MP4: the moov atom is written at EOS (hence SIGINT, never SIGTERM).
        Container::Mp4 => "mp4mux",
        Container::Mkv => "matroskamux",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum PipelineError {
    #[error("nothing to record")]
    NoTracks,
}

/// Picks the container for these codecs.
pub(super) fn choose_container(
    codecs: &[Codec],
    prefs: ContainerPrefs,
) -> Result<Container, PipelineError> {
    if codecs.is_empty() {
        return Err(PipelineError::NoTracks);
    }
    let h264 = codecs.contains(&Codec::H264);
    let vpx = codecs.iter().any(|c| matches!(c, Codec::Vp8 | Codec::Vp9));
    Ok(match (h264, vpx) {
        (true, true) => Container::Mkv,
        (true, false) => prefs.h264,
        (false, true) => Container::Webm,
        (false, false) => prefs.audio_only,
    })
}

/// The arguments of `gst-launch-1.0` (after the program name): `-e`, then the pipeline.
pub(super) fn launch_args(
    tracks: &[TrackSpec],
    container: Container,
    output: &Path,
) -> Result<Vec<String>, PipelineError> {
    if tracks.is_empty() {
        return Err(PipelineError::NoTracks);
    }
    // gst-launch joins its arguments with spaces and parses the result; quoting inside the
    // description protects the file name.
    let mut d = String::new();
    // 200 ms of jitter buffer; RTCP SRs (rtcp-sync) align the tracks.
    d.push_str("rtpbin name=rtpbin latency=200 ");
    let _ = write!(
        d,
        "{} name=mux ! filesink location=\"{}\" ",
        muxer(container),
        escape(&output.to_string_lossy())
    );
    for (i, t) in tracks.iter().enumerate() {
        let media = if t.codec.is_audio() { "audio" } else { "video" };
        let _ = write!(
            d,
            "udpsrc address=127.0.0.1 port={} reuse=false \
             caps=\"application/x-rtp,media={media},clock-rate={},encoding-name={},payload={}\" \
             ! rtpbin.recv_rtp_sink_{i} \
             udpsrc address=127.0.0.1 port={} reuse=false caps=\"application/x-rtcp\" \
             ! rtpbin.recv_rtcp_sink_{i} ",
            t.rtp_port,
            t.clock_rate,
            t.codec.encoding_name(),
            t.payload_type,
            t.rtcp_port,
        );
        // rtpbin's source pads appear per SSRC; gst-launch links each to the depayloader
        // whose caps accept it (the encoding names differ per codec; two tracks of one codec
        // are interchangeable for the muxer).
        let _ = write!(
            d,
            "rtpbin. ! {} ! queue max-size-time=3000000000 max-size-bytes=0 max-size-buffers=0 \
             ! mux.{media}_%u ",
            t.codec.depay()
        );
    }
    let mut args = vec!["-e".to_owned(), "-q".to_owned()];
    args.extend(d.split_whitespace().map(str::to_owned));
    Ok(args)
}

/// Escapes `"` and `\` for a quoted gst-launch property value.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(codec: Codec, pt: u8, port: u16) -> TrackSpec {
        TrackSpec {
            codec,
            payload_type: pt,
            clock_rate: if codec.is_audio() { 48000 } else { 90000 },
            rtp_port: port,
            rtcp_port: port + 1,
        }
    }

    #[test]
    fn containers_follow_the_codecs() {
        let p = ContainerPrefs::default();
        use Codec::*;
        assert_eq!(choose_container(&[Opus], p), Ok(Container::Ogg));
        assert_eq!(choose_container(&[Opus, Vp8], p), Ok(Container::Webm));
        assert_eq!(choose_container(&[Vp9], p), Ok(Container::Webm));
        assert_eq!(choose_container(&[H264, Opus], p), Ok(Container::Mp4));
        assert_eq!(choose_container(&[H264, Vp8], p), Ok(Container::Mkv));
        let p2 = ContainerPrefs {
            audio_only: Container::Webm,
            h264: Container::Mkv,
        };
        assert_eq!(choose_container(&[Opus], p2), Ok(Container::Webm));
        assert_eq!(choose_container(&[H264], p2), Ok(Container::Mkv));
        assert_eq!(choose_container(&[], p), Err(PipelineError::NoTracks));
    }

    #[test]
    fn codecs_from_mime_types() {
        assert_eq!(Codec::from_mime("audio/opus"), Some(Codec::Opus));
        assert_eq!(Codec::from_mime("video/VP8"), Some(Codec::Vp8));
        assert_eq!(Codec::from_mime("video/h264"), Some(Codec::H264));
        assert_eq!(Codec::from_mime("video/rtx"), None);
        assert_eq!(Codec::from_mime("opus"), None);
    }

    #[test]
    fn audio_and_video_into_one_webm() {
        let args = launch_args(
            &[
                track(Codec::Opus, 100, 50000),
                track(Codec::Vp8, 101, 50002),
            ],
            Container::Webm,
            Path::new("/rec/a b.webm"),
        )
        .expect("tracks");
        assert_eq!(&args[..2], ["-e", "-q"]);
        let d = args[2..].join(" ");
        assert!(d.contains("webmmux name=mux ! filesink location=\"/rec/a b.webm\""));
        assert!(d.contains(
            "udpsrc address=127.0.0.1 port=50000 reuse=false caps=\"application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=100\" ! rtpbin.recv_rtp_sink_0"
        ));
        assert!(d.contains(
            "port=50001 reuse=false caps=\"application/x-rtcp\" ! rtpbin.recv_rtcp_sink_0"
        ));
        assert!(d.contains("encoding-name=VP8,payload=101\" ! rtpbin.recv_rtp_sink_1"));
        assert!(d.contains("rtpopusdepay ! opusparse ! queue"));
        assert!(d.contains("mux.audio_%u"));
        assert!(d.contains("rtpvp8depay wait-for-keyframe=true ! queue"));
        assert!(d.contains("mux.video_%u"));
    }

    #[test]
    fn file_names_are_quoted() {
        let args = launch_args(
            &[track(Codec::Opus, 111, 50000)],
            Container::Ogg,
            Path::new("/r/x\"y.ogg"),
        )
        .expect("tracks");
        assert!(args.join(" ").contains("location=\"/r/x\\\"y.ogg\""));
    }

    /// The descriptions parse in GStreamer itself (every element exists, every link is valid
    /// up to the dynamic rtpbin pads), for each container.
    #[test]
    fn pipelines_parse_in_gstreamer() {
        if gstreamer::init().is_err() {
            panic!("GStreamer is not installed: run scripts/setup");
        }
        let dir = std::env::temp_dir();
        for (tracks, container) in [
            (vec![track(Codec::Opus, 100, 1)], Container::Ogg),
            (vec![track(Codec::Opus, 100, 1)], Container::Webm),
            (
                vec![track(Codec::Opus, 100, 1), track(Codec::Vp8, 101, 3)],
                Container::Webm,
            ),
            (
                vec![track(Codec::Vp9, 101, 3), track(Codec::Opus, 100, 1)],
                Container::Webm,
            ),
            (
                vec![track(Codec::H264, 102, 5), track(Codec::Opus, 100, 1)],
                Container::Mp4,
            ),
            (
                vec![track(Codec::H264, 102, 5), track(Codec::Vp8, 101, 3)],
                Container::Mkv,
            ),
        ] {
            let args = launch_args(&tracks, container, &dir.join("parse-test.out")).expect("ok");
            let desc = args[2..].join(" ");
            if let Err(e) = gstreamer::parse::launch(&desc) {
                panic!("{container:?}: {e}: {desc}");
            }
        }
    }
}
