//! Recording file formats: what the configuration chooses from and the recorder writes.

use serde::{Deserialize, Serialize};

/// File formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Ogg,
    Webm,
    Mp4,
    #[serde(alias = "matroska")]
    Mkv,
}

impl Container {
    pub fn extension(self) -> &'static str {
        match self {
            Container::Ogg => "ogg",
            Container::Webm => "webm",
            Container::Mp4 => "mp4",
            Container::Mkv => "mkv",
        }
    }

    /// Content-Type of the file; `audio_only` for Ogg/WebM without video.
    pub fn mime(self, audio_only: bool) -> &'static str {
        match (self, audio_only) {
            (Container::Ogg, _) => "audio/ogg",
            (Container::Webm, true) => "audio/webm",
            (Container::Webm, false) => "video/webm",
            (Container::Mp4, _) => "video/mp4",
            (Container::Mkv, _) => "video/x-matroska",
        }
    }
}

/// Container preferences from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContainerPrefs {
    /// Opus-only recordings: Ogg or WebM.
    pub audio_only: Container,
    /// H264 recordings: MP4 or Matroska.
    pub h264: Container,
}

impl Default for ContainerPrefs {
    fn default() -> Self {
        Self {
            audio_only: Container::Ogg,
            h264: Container::Mp4,
        }
    }
}
