//! `[data_channels]`: SCTP data channels on WebRTC transports.

use serde::Deserialize;

use super::Cli;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileDataChannels {
    enabled: Option<bool>,
    max_message_size: Option<u32>,
    send_buffer_size: Option<u32>,
    num_streams: Option<u16>,
    max_data_producers_per_peer: Option<u32>,
    max_file_size: Option<u64>,
}

/// `[data_channels]`: SCTP data channels on WebRTC transports (mediasoup's `enableSctp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChannels {
    /// Off: transports are created without SCTP and `sctpParameters` is null.
    pub enabled: bool,
    /// Largest message either way (1 KiB-16 MiB).
    pub max_message_size: u32,
    /// Bytes an association may hold unacknowledged toward a peer (at least the message size).
    pub send_buffer_size: u32,
    /// Most SCTP streams (OS and MIS) a transport offers; a client's smaller `numStreams` wins.
    pub num_streams: u16,
    /// Data producers one peer may have open (1-1024).
    pub max_data_producers_per_peer: u32,
    /// Largest file a peer may offer with `shareFile` (bytes, 1 KiB-4 GiB).
    pub max_file_size: u64,
}

impl DataChannels {
    pub(super) fn merge(cli: &Cli, f: &FileDataChannels) -> Result<Self, String> {
        let d = Self {
            enabled: cli.data_channels.or(f.enabled).unwrap_or(true),
            max_message_size: cli
                .data_max_message_size
                .or(f.max_message_size)
                .unwrap_or(262_144),
            send_buffer_size: f.send_buffer_size.unwrap_or(262_144),
            num_streams: f.num_streams.unwrap_or(1024),
            max_data_producers_per_peer: f.max_data_producers_per_peer.unwrap_or(32),
            max_file_size: f.max_file_size.unwrap_or(64 << 20),
        };
        if !(1024..=16 << 20).contains(&d.max_message_size) {
            return Err("data_channels.max_message_size must be 1024-16777216".into());
        }
        if d.send_buffer_size < d.max_message_size || d.send_buffer_size > 64 << 20 {
            return Err(
                "data_channels.send_buffer_size must be at least max_message_size and at most 64 MiB"
                    .into(),
            );
        }
        if d.num_streams == 0 {
            return Err("data_channels.num_streams must be 1-65535".into());
        }
        if !(1024..=4 << 30).contains(&d.max_file_size) {
            return Err("data_channels.max_file_size must be 1024-4294967296".into());
        }
        if !(1..=1024).contains(&d.max_data_producers_per_peer) {
            return Err("data_channels.max_data_producers_per_peer must be 1-1024".into());
        }
        Ok(d)
    }

    pub(super) fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "enabled": self.enabled,
            "max_message_size": self.max_message_size,
            "send_buffer_size": self.send_buffer_size,
            "num_streams": self.num_streams,
            "max_data_producers_per_peer": self.max_data_producers_per_peer,
            "max_file_size": self.max_file_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn data_channels_are_on_by_default_and_validated() {
        let d = Config::default().data_channels;
        assert!(d.enabled);
        assert_eq!((d.max_message_size, d.send_buffer_size), (262_144, 262_144));
        assert_eq!((d.num_streams, d.max_data_producers_per_peer), (1024, 32));
        let file = "[data_channels]\nenabled = false\nnum_streams = 16\nmax_message_size = 65536";
        let c = Config::from_toml(Cli::default(), file).unwrap();
        assert!(!c.data_channels.enabled);
        assert_eq!(c.data_channels.num_streams, 16);
        assert_eq!(c.to_json()["data_channels"]["max_message_size"], 65536);
        let cli = Cli {
            data_channels: Some(true),
            data_max_message_size: Some(131_072),
            ..Cli::default()
        };
        let c = Config::from_toml(cli, file).unwrap();
        assert!(c.data_channels.enabled, "the flag beats the file");
        assert_eq!(c.data_channels.max_message_size, 131_072);
        for bad in [
            "[data_channels]\nmax_message_size = 100",
            "[data_channels]\nnum_streams = 0",
            "[data_channels]\nmax_message_size = 65536\nsend_buffer_size = 1024",
            "[data_channels]\nmax_data_producers_per_peer = 0",
            "[data_channels]\nlabel = 1",
        ] {
            assert!(Config::from_toml(Cli::default(), bad).is_err(), "{bad}");
        }
    }
}
