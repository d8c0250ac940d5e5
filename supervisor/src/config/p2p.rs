//! `[rooms] p2p`, `p2p_return_after_s`, `p2p_connect_timeout_s`: two-party calls peer to peer
//! (see `crate::rooms::P2pSettings`), with their flags.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[rooms] p2p`: whether two-party rooms go peer to peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum P2pMode {
    #[default]
    Auto,
    Off,
}

impl std::str::FromStr for P2pMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            other => Err(format!("p2p mode {other:?}: use \"auto\" or \"off\"")),
        }
    }
}

/// The node's P2P settings (`[rooms]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P2pSettings {
    /// The default of rooms that do not set theirs (the join URL's `p2p=`).
    pub mode: P2pMode,
    /// How long a room back at two peers stays on the SFU before they return to P2P.
    pub return_after: Duration,
    /// How long the two have to report `p2pConnected` before the room falls back to the SFU.
    pub connect_timeout: Duration,
}

impl Default for P2pSettings {
    fn default() -> Self {
        Self {
            mode: P2pMode::Auto,
            return_after: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(8),
        }
    }
}

/// The P2P flags (each also an environment variable).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct P2pCli {
    /// Two-party rooms peer to peer: auto (when both apps support it) or off. Default auto.
    #[arg(long = "p2p", env = "FERROSFU_P2P", value_name = "auto|off")]
    pub p2p: Option<P2pMode>,

    /// Seconds a room back at two peers stays on the SFU before they return to P2P (default 10).
    #[arg(
        long = "p2p-return-after-s",
        env = "FERROSFU_P2P_RETURN_AFTER_S",
        value_name = "SECONDS"
    )]
    pub p2p_return_after_s: Option<u64>,

    /// Seconds the two have to connect directly before the room falls back to the SFU
    /// (default 8).
    #[arg(
        long = "p2p-connect-timeout-s",
        env = "FERROSFU_P2P_CONNECT_TIMEOUT_S",
        value_name = "SECONDS"
    )]
    pub p2p_connect_timeout_s: Option<u64>,
}

/// The `[rooms]` keys of P2P, as the file gives them.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct FileP2p {
    pub(super) p2p: Option<P2pMode>,
    pub(super) return_after_s: Option<u64>,
    pub(super) connect_timeout_s: Option<u64>,
}

/// Flags and environment over the file over the defaults.
pub(super) fn merge(cli: &P2pCli, f: FileP2p) -> Result<P2pSettings, String> {
    let d = P2pSettings::default();
    let return_after = cli.p2p_return_after_s.or(f.return_after_s);
    let connect = cli.p2p_connect_timeout_s.or(f.connect_timeout_s);
    if return_after.is_some_and(|s| s > 3600) {
        return Err("rooms.p2p_return_after_s: at most 3600".into());
    }
    if connect.is_some_and(|s| !(1..=60).contains(&s)) {
        return Err("rooms.p2p_connect_timeout_s: 1 to 60".into());
    }
    Ok(P2pSettings {
        mode: cli.p2p.or(f.p2p).unwrap_or(d.mode),
        return_after: return_after.map_or(d.return_after, Duration::from_secs),
        connect_timeout: connect.map_or(d.connect_timeout, Duration::from_secs),
    })
}

/// The P2P keys of `[rooms]` as `--print-config` shows them.
pub(super) fn to_json(s: &P2pSettings) -> serde_json::Value {
    serde_json::json!({
        "p2p": s.mode,
        "p2p_return_after_s": s.return_after.as_secs(),
        "p2p_connect_timeout_s": s.connect_timeout.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_and_flags() {
        let d = merge(&P2pCli::default(), FileP2p::default()).unwrap();
        assert_eq!(d, P2pSettings::default());
        assert_eq!(d.mode, P2pMode::Auto);
        let f = FileP2p {
            p2p: Some(P2pMode::Off),
            return_after_s: Some(2),
            connect_timeout_s: Some(5),
        };
        let s = merge(&P2pCli::default(), f).unwrap();
        assert_eq!(
            (
                s.mode,
                s.return_after.as_secs(),
                s.connect_timeout.as_secs()
            ),
            (P2pMode::Off, 2, 5)
        );
        let cli = P2pCli {
            p2p: Some(P2pMode::Auto),
            ..P2pCli::default()
        };
        assert_eq!(merge(&cli, f).unwrap().mode, P2pMode::Auto);
        let bad = FileP2p {
            connect_timeout_s: Some(0),
            ..FileP2p::default()
        };
        assert!(merge(&P2pCli::default(), bad).is_err());
        assert_eq!(to_json(&s)["p2p"], "off");
    }
}
