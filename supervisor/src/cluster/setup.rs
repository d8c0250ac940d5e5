//! The cluster settings of a supervisor: the config's `[cluster]` with its defaults filled
//! from the bound HTTP address and the announced IP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{ClusterSettings, NodeId, PipePorts};
use crate::config::Config;

/// None when clustering is off (no `redis_url`).
pub(crate) fn settings_from_config(
    config: &Config,
    http: SocketAddr,
    announced: Option<&str>,
    tls: bool,
) -> Option<ClusterSettings> {
    let c = &config.cluster;
    let redis_url = c.redis_url.clone()?;
    let node_id = c
        .node_id
        .clone()
        .unwrap_or_else(|| format!("{}:{}", hostname(), http.port()));
    let announced_ip: Option<IpAddr> = announced.and_then(|a| a.parse().ok());
    let public_address = c
        .public_address
        .clone()
        .or_else(|| announced.map(str::to_owned))
        .or_else(|| (!http.ip().is_unspecified()).then(|| http.ip().to_string()))
        .unwrap_or_else(|| Ipv4Addr::LOCALHOST.to_string());
    let signaling_url = c.signaling_url.clone().unwrap_or_else(|| {
        let host = if public_address.contains(':') {
            format!("[{public_address}]")
        } else {
            public_address.clone()
        };
        let scheme = if tls { "wss" } else { "ws" };
        format!("{scheme}://{host}:{}/", http.port())
    });
    let pipe_ip = c
        .pipe_ip
        .or(announced_ip)
        .or_else(|| public_address.parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    Some(ClusterSettings {
        redis_url,
        node_id: NodeId::new(node_id),
        heartbeat: c.heartbeat,
        public_address,
        signaling_url,
        pipe_ip,
        pipe_ports: PipePorts {
            min: config.rtc_ports.min,
            max: config.rtc_ports.max,
        },
    })
}

/// The kernel's host name (a node id needs no more than that).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ferrosfu".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;

    #[test]
    fn defaults_come_from_the_bound_port_and_the_announced_ip() {
        let off = Config::default();
        assert!(
            settings_from_config(&off, "127.0.0.1:3000".parse().unwrap(), None, false).is_none()
        );
        let cli = Cli {
            cluster_redis_url: Some("redis://:pw@127.0.0.1:6379/0".into()),
            ..Cli::default()
        };
        let c = Config::from_toml(cli, "").expect("valid");
        let s = settings_from_config(&c, "0.0.0.0:4443".parse().unwrap(), Some("10.0.0.7"), true)
            .expect("on");
        assert!(s.node_id.as_str().ends_with(":4443"), "{}", s.node_id);
        assert_eq!(s.public_address, "10.0.0.7");
        assert_eq!(s.signaling_url, "wss://10.0.0.7:4443/");
        assert_eq!(s.pipe_ip, "10.0.0.7".parse::<IpAddr>().unwrap());
        assert_eq!((s.pipe_ports.min, s.pipe_ports.max), (40000, 49999));
        assert!(!format!("{s:?}").contains(":pw@"));
    }
}
