//! `[captions]`: live captions (see `crate::captions`): the per-node maximum of transcriber
//! children and the speech-to-text engine, a pipeline template an operator can swap without code
//! changes.

use serde::Deserialize;

/// The default engine: Debian's `gstreamer1.0-pocketsphinx` with `pocketsphinx-en-us`.
pub(super) const DEFAULT_PIPELINE: &str = "pocketsphinx ! fakesink sync=false";

/// `[captions]` as the file gives it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileCaptions {
    pub(super) max_transcribers: Option<usize>,
    pub(super) pipeline: Option<String>,
    pub(super) command: Option<String>,
}

/// What turns a producer's audio (16 kHz mono S16LE) into text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaptionEngine {
    /// GStreamer elements after the decoded audio, in the same `gst-launch-1.0 -m` child: every
    /// element message with `hypothesis=` (and `final=`) is a caption, as pocketsphinx posts them.
    Pipeline(String),
    /// A shell command that reads the audio on stdin and writes one JSON object per line on
    /// stdout: `{"text": "...", "final": true|false, "start": s, "end": s}` (seconds of audio
    /// since its start), e.g. a whisper.cpp or vosk wrapper.
    Command(String),
}

/// The node's captions settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptionsSettings {
    /// Transcriber children this node runs at most (one per transcribed audio producer); they
    /// run on the recording cores, beside the recorders.
    pub max_transcribers: usize,
    pub engine: CaptionEngine,
}

impl Default for CaptionsSettings {
    fn default() -> Self {
        Self {
            max_transcribers: 8,
            engine: CaptionEngine::Pipeline(DEFAULT_PIPELINE.into()),
        }
    }
}

pub(super) fn merge(f: Option<FileCaptions>) -> Result<CaptionsSettings, String> {
    let f = f.unwrap_or_default();
    let d = CaptionsSettings::default();
    let max = f.max_transcribers.unwrap_or(d.max_transcribers);
    if max > 1024 {
        return Err(format!("captions.max_transcribers {max}: at most 1024"));
    }
    let engine = match (f.command, f.pipeline) {
        (Some(_), Some(_)) => {
            return Err("captions: give `pipeline` or `command`, not both".into());
        }
        (Some(c), None) if c.trim().is_empty() => {
            return Err("captions.command is empty".into());
        }
        (Some(c), None) => CaptionEngine::Command(c),
        (None, Some(p)) if p.trim().is_empty() || p.trim_start().starts_with('!') => {
            return Err(format!(
                "captions.pipeline {p:?}: give the elements after the audio, e.g. {DEFAULT_PIPELINE:?}"
            ));
        }
        (None, Some(p)) => CaptionEngine::Pipeline(p),
        (None, None) => d.engine,
    };
    Ok(CaptionsSettings {
        max_transcribers: max,
        engine,
    })
}

pub(super) fn to_json(s: &CaptionsSettings) -> serde_json::Value {
    match &s.engine {
        CaptionEngine::Pipeline(p) => {
            serde_json::json!({ "max_transcribers": s.max_transcribers, "pipeline": p })
        }
        CaptionEngine::Command(c) => {
            serde_json::json!({ "max_transcribers": s.max_transcribers, "command": c })
        }
    }
}
