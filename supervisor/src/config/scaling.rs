//! `[rooms]` (per-worker load limits for placement and admission) and `[supervisor]` (the cores
//! the supervisor's own threads run on, how long a graceful drain waits).

use serde::Deserialize;

use super::{Cli, CoreList};
use crate::placement::Limits;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileRooms {
    worker_max_load: Option<f64>,
    /// 0: no consumer limit.
    worker_max_consumers: Option<usize>,
    p2p: Option<super::P2pMode>,
    p2p_return_after_s: Option<u64>,
    p2p_connect_timeout_s: Option<u64>,
}

impl FileRooms {
    /// Its P2P keys.
    pub(super) fn p2p(&self) -> super::p2p::FileP2p {
        super::p2p::FileP2p {
            p2p: self.p2p,
            return_after_s: self.p2p_return_after_s,
            connect_timeout_s: self.p2p_connect_timeout_s,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileSupervisor {
    cores: Option<CoreList>,
    drain_timeout_s: Option<u64>,
}

/// `drain_timeout_s` when neither the flag nor the file sets it: half an hour, time for most
/// meetings to end (systemd's `TimeoutStopSec` in packaging/ferrosfu.service is a minute more).
pub(super) const DEFAULT_DRAIN_TIMEOUT_S: u64 = 1800;

/// `[supervisor] drain_timeout_s`, flag and environment first: how long a drain waits for the
/// open rooms to empty (0: stop at once). At most a day.
pub(super) fn drain_timeout(cli: &Cli, f: &FileSupervisor) -> Result<std::time::Duration, String> {
    let s = cli
        .drain_timeout_s
        .or(f.drain_timeout_s)
        .unwrap_or(DEFAULT_DRAIN_TIMEOUT_S);
    if s > 86_400 {
        return Err(format!(
            "supervisor.drain_timeout_s {s}: at most 86400 (a day)"
        ));
    }
    Ok(std::time::Duration::from_secs(s))
}

/// The limits of `[rooms]`, flags and environment first.
pub(super) fn limits(cli: &Cli, f: &FileRooms) -> Result<Limits, String> {
    let d = Limits::default();
    let max_load = cli
        .worker_max_load
        .or(f.worker_max_load)
        .unwrap_or(d.max_load);
    if !(max_load > 0.0 && max_load <= 1.0) {
        return Err(format!(
            "rooms.worker_max_load {max_load}: must be a share of one core in (0, 1]"
        ));
    }
    let max_consumers = match cli.worker_max_consumers.or(f.worker_max_consumers) {
        Some(0) => None,
        Some(n) => Some(n),
        None => d.max_consumers,
    };
    Ok(Limits {
        max_load,
        max_consumers,
        ..d
    })
}

/// `[supervisor] cores`: None (the default) pins nothing.
pub(super) fn supervisor_cores(cli: &Cli, f: &FileSupervisor) -> Option<CoreList> {
    cli.supervisor_cores.clone().or_else(|| f.cores.clone())
}

pub(super) fn limits_json(l: &Limits) -> serde_json::Value {
    serde_json::json!({
        "worker_max_load": l.max_load,
        "worker_max_consumers": l.max_consumers.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use clap::Parser;

    #[test]
    fn room_limits_default_to_80_percent_and_2000_consumers() {
        let c = Config::default();
        assert_eq!(c.room_limits.max_load, 0.8);
        assert_eq!(c.room_limits.max_consumers, Some(2000));
        assert_eq!(c.supervisor_cores, None);
        let file = "[rooms]\nworker_max_load = 0.5\nworker_max_consumers = 0";
        let c = Config::from_toml(Cli::default(), file).unwrap();
        assert_eq!(c.room_limits.max_load, 0.5);
        assert_eq!(c.room_limits.max_consumers, None, "0 is no limit");
        assert_eq!(c.to_json()["rooms"]["worker_max_consumers"], 0);
        let cli = Cli::try_parse_from([
            "ferrosfu",
            "--worker-max-load",
            "0.9",
            "--worker-max-consumers",
            "100",
        ])
        .unwrap();
        let c = Config::from_toml(cli, file).unwrap();
        assert_eq!(c.room_limits.max_load, 0.9, "the flag beats the file");
        assert_eq!(c.room_limits.max_consumers, Some(100));
        for bad in [
            "[rooms]\nworker_max_load = 0",
            "[rooms]\nworker_max_load = 1.5",
            "[rooms]\nmax_load = 0.5",
        ] {
            assert!(Config::from_toml(Cli::default(), bad).is_err(), "{bad}");
        }
    }

    /// The packaged config parses as shipped, and with its 32-core plan uncommented it pins the
    /// supervisor to 2-5, the workers to 6-21 and the recorders to 22-31.
    #[test]
    fn the_packaged_config_shows_the_32_core_plan() {
        let text = include_str!("../../../packaging/ferrosfu.toml");
        let shipped = Config::from_toml(Cli::default(), text).unwrap();
        assert_eq!(shipped.room_limits, Limits::default());
        let plan: String = text
            .lines()
            .filter(|l| !(l.starts_with("cores = \"auto\"")))
            .map(|l| {
                l.strip_prefix("# cores = ")
                    .map_or(l.to_owned(), |v| format!("cores = {v}"))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::from_toml(Cli::default(), &plan).unwrap();
        assert_eq!(c.supervisor_cores, Some(CoreList::List((2..=5).collect())));
        assert_eq!(c.worker_cores, CoreList::List((6..=21).collect()));
        assert_eq!(c.recording_cores, Some(CoreList::List((22..=31).collect())));
    }

    #[test]
    fn supervisor_cores_come_from_the_flag_or_the_file() {
        let file = "[supervisor]\ncores = \"2-5\"";
        let c = Config::from_toml(Cli::default(), file).unwrap();
        assert_eq!(c.supervisor_cores, Some(CoreList::List(vec![2, 3, 4, 5])));
        assert_eq!(
            c.to_json()["supervisor"]["cores"],
            serde_json::json!([2, 3, 4, 5])
        );
        let cli = Cli::try_parse_from(["ferrosfu", "--supervisor-cores", "1"]).unwrap();
        let c = Config::from_toml(cli, file).unwrap();
        assert_eq!(c.supervisor_cores, Some(CoreList::List(vec![1])));
        assert!(Config::from_toml(Cli::default(), "[supervisor]\ncores = \"x\"").is_err());
    }
}
