use std::process::ExitCode;

use clap::Parser;
use ferrosfu_fbs::LogLevel;

/// Worker settings, from argv. The supervisor passes them; people rarely do.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ferrosfu-worker",
    version,
    about = "ferrosfu media worker (spawned by `ferrosfu`)"
)]
pub(crate) struct Settings {
    /// Core to pin this worker to (all of its threads). Without it the worker is not pinned.
    #[arg(long)]
    pub(crate) core: Option<u32>,
    /// Log level: trace, debug, info, warn, error.
    #[arg(long, default_value = "info")]
    pub(crate) log_level: LogLevel,
    /// Comma-separated log targets (ice, dtls, srtp, rtp, rtcp, bwe, channel, router...) logged at
    /// --log-level; the others log at warn. Empty: every target at --log-level.
    #[arg(long, value_delimiter = ',', default_value = "")]
    pub(crate) log_targets: Vec<String>,
    /// UDP/TCP port range for RTC transports, MIN-MAX.
    #[arg(long, default_value = "40000-49999", value_parser = parse_port_range)]
    pub(crate) rtc_ports: (u16, u16),
}

impl Settings {
    /// Parses argv; on failure prints why and returns the exit code (42 for bad settings).
    pub(crate) fn parse_from_env() -> Result<Self, ExitCode> {
        match Settings::try_parse() {
            Ok(mut s) => {
                s.log_targets.retain(|t| !t.is_empty());
                Ok(s)
            }
            Err(e) => {
                let code = if e.use_stderr() {
                    crate::EXIT_BAD_SETTINGS
                } else {
                    0
                };
                let _ = e.print();
                Err(ExitCode::from(code))
            }
        }
    }
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected MIN-MAX")?;
    let min: u16 = a.trim().parse().map_err(|e| format!("bad min port: {e}"))?;
    let max: u16 = b.trim().parse().map_err(|e| format!("bad max port: {e}"))?;
    if min == 0 || min > max {
        return Err(format!("bad port range {min}-{max}: need 0 < MIN <= MAX"));
    }
    Ok((min, max))
}
