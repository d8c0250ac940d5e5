//! `[cluster]`: several ferrosfu nodes coordinated through a shared Redis (off unless
//! `redis_url` is set; a single node needs nothing).

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::Cli;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileCluster {
    redis_url: Option<String>,
    node_id: Option<String>,
    heartbeat_ms: Option<u64>,
    public_address: Option<String>,
    signaling_url: Option<String>,
    pipe_ip: Option<IpAddr>,
}

/// `[cluster]` as configured; what the config leaves open (node id, addresses) is resolved by
/// the supervisor once it knows its bound HTTP port and announced IP.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `redis://[:PASSWORD@]HOST[:PORT][/DB]`; None: clustering is off. Holds the password:
    /// show it only through [`redact_url`].
    pub redis_url: Option<String>,
    /// None: `<hostname>:<http port>`.
    pub node_id: Option<String>,
    /// How often the node refreshes its registration and reads the directory; the registration
    /// expires after [`ClusterConfig::ttl`].
    pub heartbeat: Duration,
    /// Host name or IP other nodes and clients reach this node at. None: the announced IP.
    pub public_address: Option<String>,
    /// None: `ws[s]://<public_address>:<http port>/`.
    pub signaling_url: Option<String>,
    /// IP other nodes send pipe (node-to-node) RTP to. None: the announced IP.
    pub pipe_ip: Option<IpAddr>,
}

/// Heartbeats a registration survives without a refresh.
pub const TTL_HEARTBEATS: u32 = 3;

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        self.redis_url.is_some()
    }

    /// How long a registration lives without a heartbeat.
    pub fn ttl(&self) -> Duration {
        self.heartbeat * TTL_HEARTBEATS
    }

    pub(super) fn merge(cli: &Cli, f: &FileCluster) -> Result<Self, String> {
        let c = Self {
            redis_url: cli
                .cluster_redis_url
                .clone()
                .or_else(|| f.redis_url.clone())
                .filter(|u| !u.trim().is_empty()),
            node_id: cli.cluster_node_id.clone().or_else(|| f.node_id.clone()),
            heartbeat: Duration::from_millis(
                cli.cluster_heartbeat_ms.or(f.heartbeat_ms).unwrap_or(1000),
            ),
            public_address: cli
                .cluster_public_address
                .clone()
                .or_else(|| f.public_address.clone()),
            signaling_url: cli
                .cluster_signaling_url
                .clone()
                .or_else(|| f.signaling_url.clone()),
            pipe_ip: cli.cluster_pipe_ip.or(f.pipe_ip),
        };
        if let Some(url) = &c.redis_url {
            check_redis_url(url)?;
        }
        if !(100..=10_000).contains(&c.heartbeat.as_millis()) {
            return Err("cluster.heartbeat_ms must be 100-10000".into());
        }
        if let Some(id) = &c.node_id {
            if id.is_empty() || id.len() > 200 || id.chars().any(|ch| ch.is_whitespace()) {
                return Err("cluster.node_id must be 1-200 characters without spaces".into());
            }
        }
        Ok(c)
    }

    pub(super) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "redis_url": self.redis_url.as_deref().map(redact_url),
            "node_id": self.node_id,
            "heartbeat_ms": self.heartbeat.as_millis() as u64,
            "public_address": self.public_address,
            "signaling_url": self.signaling_url,
            "pipe_ip": self.pipe_ip.map(|ip| ip.to_string()),
        })
    }
}

/// Never shows the password (the derived Debug would).
impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("node_id", &self.node_id)
            .field("heartbeat", &self.heartbeat)
            .field("public_address", &self.public_address)
            .field("signaling_url", &self.signaling_url)
            .field("pipe_ip", &self.pipe_ip)
            .finish()
    }
}

/// `redis://` or `redis+unix://`, parsed the way the client will parse it. The error never
/// contains the URL (it may hold a password).
fn check_redis_url(url: &str) -> Result<(), String> {
    if url.starts_with("rediss://") {
        return Err(
            "cluster.redis_url: rediss:// (TLS) is not supported by this build; \
                    reach Redis over a private network or a tunnel"
                .into(),
        );
    }
    if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) {
        return Err(format!(
            "cluster.redis_url must start with redis:// (got {})",
            redact_url(url)
        ));
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("cluster.redis_url {}: {e}", redact_url(url)))
}

/// The URL with its password (if any) replaced by `***`: `redis://:***@10.0.0.5:6379/0`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (user, host) = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            let user = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                // A lone user part: Redis clients take it as the password of the default user.
                None if !userinfo.is_empty() => "***".to_owned(),
                None => String::new(),
            };
            (user, host)
        }
        None => (String::new(), authority),
    };
    // A password in the query (`?password=`) is redacted too.
    let tail = match tail.split_once("password=") {
        Some((before, after)) => {
            let end = after.find('&').unwrap_or(after.len());
            format!("{before}password=***{}", &after[end..])
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{user}{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("redis://:s3cret@10.0.0.5:6379/0"),
            "redis://:***@10.0.0.5:6379/0"
        );
        assert_eq!(
            redact_url("redis://app:s3cret@host/1"),
            "redis://app:***@host/1"
        );
        assert_eq!(redact_url("redis://s3cret@host"), "redis://***@host");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=1&password=s3cret"),
            "redis+unix:///run/redis.sock?db=1&password=***"
        );
        let cli = Cli {
            cluster_redis_url: Some("redis://:s3cret@127.0.0.1:6379/0".into()),
            ..Cli::default()
        };
        let c = Config::from_toml(cli, "").expect("valid");
        let shown = format!("{} {:?}", c.to_json(), c);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://:***@127.0.0.1:6379/0"));
    }

    #[test]
    fn off_by_default_and_validated() {
        let c = Config::default().cluster;
        assert!(!c.enabled());
        assert_eq!(c.heartbeat, Duration::from_millis(1000));
        assert!(c.ttl() <= Duration::from_secs(5));
        let file = "[cluster]\nredis_url = \"redis://:pw@10.0.0.5:6379/0\"\nnode_id = \"a\"\n\
                    heartbeat_ms = 500\npipe_ip = \"10.0.0.7\"";
        let c = Config::from_toml(Cli::default(), file)
            .expect("valid")
            .cluster;
        assert!(c.enabled());
        assert_eq!(c.node_id.as_deref(), Some("a"));
        assert_eq!(c.heartbeat, Duration::from_millis(500));
        let cli = Cli {
            cluster_node_id: Some("b".into()),
            cluster_heartbeat_ms: Some(2000),
            ..Cli::default()
        };
        let c = Config::from_toml(cli, file).expect("valid").cluster;
        assert_eq!(c.node_id.as_deref(), Some("b"), "the flag beats the file");
        assert_eq!(c.heartbeat, Duration::from_millis(2000));
        for bad in [
            "[cluster]\nredis_url = \"http://x\"",
            "[cluster]\nredis_url = \"rediss://x\"",
            "[cluster]\nheartbeat_ms = 50",
            "[cluster]\nnode_id = \"a b\"",
            "[cluster]\nredis = 1",
        ] {
            assert!(Config::from_toml(Cli::default(), bad).is_err(), "{bad}");
        }
    }
}
