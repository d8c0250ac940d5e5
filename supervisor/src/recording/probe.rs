//! What a finished file holds, read with GStreamer's pbutils Discoverer (in-process, on a
//! blocking thread): its duration and streams. A file the Discoverer cannot read is not
//! playable, and the recording fails.

use std::path::Path;
use std::time::Duration;

use gstreamer_pbutils::prelude::*;
use serde::{Deserialize, Serialize};

/// One stream of a probed file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// "audio" | "video".
    pub kind: String,
    pub caps: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Probe {
    pub duration_seconds: f64,
    pub streams: Vec<StreamInfo>,
}

/// Probes `path` (at most `timeout`).
pub async fn probe(path: &Path, timeout: Duration) -> Result<Probe, String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || probe_blocking(&path, timeout))
        .await
        .map_err(|e| format!("probe task: {e}"))?
}

fn probe_blocking(path: &Path, timeout: Duration) -> Result<Probe, String> {
    gstreamer::init().map_err(|e| format!("GStreamer: {e}"))?;
    let uri = gstreamer::glib::filename_to_uri(path, None)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let timeout =
        gstreamer::ClockTime::from_nseconds(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
    let discoverer =
        gstreamer_pbutils::Discoverer::new(timeout).map_err(|e| format!("Discoverer: {e}"))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|e| format!("not playable: {e}"))?;
    let streams = info
        .stream_list()
        .iter()
        .filter_map(|s| {
            let kind = if s.is::<gstreamer_pbutils::DiscovererAudioInfo>() {
                "audio"
            } else if s.is::<gstreamer_pbutils::DiscovererVideoInfo>() {
                "video"
            } else {
                return None;
            };
            Some(StreamInfo {
                kind: kind.to_owned(),
                caps: s.caps().map(|c| c.to_string()).unwrap_or_default(),
            })
        })
        .collect::<Vec<_>>();
    if streams.is_empty() {
        return Err("no audio or video stream".into());
    }
    let duration_seconds = info
        .duration()
        .map(|d| d.nseconds() as f64 / 1e9)
        .unwrap_or(0.0);
    Ok(Probe {
        duration_seconds,
        streams,
    })
}
