//! `[turn]`: the built-in TURN server (off unless `listen` is set).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use super::PortRange;

/// TURN flags (flattened into the main command line).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TurnCli {
    /// Address of the built-in TURN server, UDP and TCP (e.g. 0.0.0.0:3478). Unset: no TURN.
    #[arg(
        long = "turn-listen",
        env = "FERROSFU_TURN_LISTEN",
        value_name = "ADDR:PORT"
    )]
    pub turn_listen: Option<SocketAddr>,

    /// TURN over TLS (turns:) on this address, e.g. 0.0.0.0:443, with the HTTP listener's
    /// certificate (--tls-cert/--tls-key).
    #[arg(
        long = "turn-tls-listen",
        env = "FERROSFU_TURN_TLS_LISTEN",
        value_name = "ADDR:PORT"
    )]
    pub turn_tls_listen: Option<SocketAddr>,

    /// Shared secret of the time-limited TURN credentials (the "TURN REST API" scheme). Unset:
    /// a random secret per start.
    #[arg(
        long = "turn-secret",
        env = "FERROSFU_TURN_SECRET",
        value_name = "SECRET"
    )]
    pub turn_secret: Option<String>,

    /// Host name or IP clients reach the TURN server at, in the URLs given to them (default:
    /// the announced IP). A turns: URL needs the name on the certificate.
    #[arg(
        long = "turn-public-host",
        env = "FERROSFU_TURN_PUBLIC_HOST",
        value_name = "HOST"
    )]
    pub turn_public_host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileTurn {
    listen: Option<SocketAddr>,
    tls_listen: Option<SocketAddr>,
    secret: Option<String>,
    realm: Option<String>,
    credential_ttl_s: Option<u64>,
    public_host: Option<String>,
    relay_ip: Option<IpAddr>,
    relay_ports: Option<PortRange>,
    max_allocations: Option<usize>,
    max_allocations_per_user: Option<usize>,
}

/// `[turn]` as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// UDP and TCP listener; None: TURN is off.
    pub listen: Option<SocketAddr>,
    /// TLS listener (needs the HTTP certificate).
    pub tls_listen: Option<SocketAddr>,
    /// None: random per start.
    pub secret: Option<String>,
    pub realm: String,
    /// Lifetime of the credentials handed out.
    pub credential_ttl: Duration,
    /// None: the announced IP.
    pub public_host: Option<String>,
    /// Address relay sockets bind to; None: the media listen IP, else this host's address.
    pub relay_ip: Option<IpAddr>,
    pub relay_ports: PortRange,
    /// Allocations on this node (508 beyond).
    pub max_allocations: usize,
    /// Allocations per user, the peer part of the credential (486 beyond).
    pub max_allocations_per_user: usize,
}

impl TurnConfig {
    pub fn enabled(&self) -> bool {
        self.listen.is_some()
    }

    pub(super) fn merge(cli: &TurnCli, f: &FileTurn, has_tls: bool) -> Result<Self, String> {
        let c = Self {
            listen: cli.turn_listen.or(f.listen),
            tls_listen: cli.turn_tls_listen.or(f.tls_listen),
            secret: cli
                .turn_secret
                .clone()
                .or_else(|| f.secret.clone())
                .filter(|s| !s.is_empty()),
            realm: f.realm.clone().unwrap_or_else(|| "ferrosfu".into()),
            credential_ttl: Duration::from_secs(f.credential_ttl_s.unwrap_or(86_400)),
            public_host: cli
                .turn_public_host
                .clone()
                .or_else(|| f.public_host.clone()),
            relay_ip: f.relay_ip,
            relay_ports: f.relay_ports.unwrap_or(PortRange {
                min: 51000,
                max: 51999,
            }),
            max_allocations: f.max_allocations.unwrap_or(1000),
            max_allocations_per_user: f.max_allocations_per_user.unwrap_or(10),
        };
        if c.tls_listen.is_some() && c.listen.is_none() {
            return Err("turn.tls_listen needs turn.listen (TURN is off without it)".into());
        }
        if c.tls_listen.is_some() && !has_tls {
            return Err(
                "turn.tls_listen needs the certificate and key of [http] tls_cert/tls_key".into(),
            );
        }
        if !(60..=7 * 86_400).contains(&c.credential_ttl.as_secs()) {
            return Err("turn.credential_ttl_s must be 60-604800".into());
        }
        if c.realm.is_empty() || c.realm.len() > 128 {
            return Err("turn.realm must be 1-128 characters".into());
        }
        if c.max_allocations == 0 || c.max_allocations_per_user == 0 {
            return Err("turn.max_allocations and max_allocations_per_user must be > 0".into());
        }
        Ok(c)
    }

    pub(super) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "listen": self.listen.map(|a| a.to_string()),
            "tls_listen": self.tls_listen.map(|a| a.to_string()),
            "secret": self.secret.as_ref().map(|_| "***"),
            "realm": self.realm,
            "credential_ttl_s": self.credential_ttl.as_secs(),
            "public_host": self.public_host,
            "relay_ip": self.relay_ip.map(|ip| ip.to_string()),
            "relay_ports": format!("{}-{}", self.relay_ports.min, self.relay_ports.max),
            "max_allocations": self.max_allocations,
            "max_allocations_per_user": self.max_allocations_per_user,
        })
    }
}

/// Never shows the secret.
impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("listen", &self.listen)
            .field("tls_listen", &self.tls_listen)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("realm", &self.realm)
            .field("credential_ttl", &self.credential_ttl)
            .field("public_host", &self.public_host)
            .field("relay_ip", &self.relay_ip)
            .field("relay_ports", &self.relay_ports)
            .field("max_allocations", &self.max_allocations)
            .field("max_allocations_per_user", &self.max_allocations_per_user)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_checked_when_on() {
        let c = TurnConfig::merge(&TurnCli::default(), &FileTurn::default(), false).unwrap();
        assert!(!c.enabled());
        let f: FileTurn =
            toml::from_str("listen = \"0.0.0.0:3478\"\ncredential_ttl_s = 3600").expect("toml");
        let c = TurnConfig::merge(&TurnCli::default(), &f, false).unwrap();
        assert!(c.enabled());
        assert_eq!(c.credential_ttl, Duration::from_secs(3600));
        let f: FileTurn =
            toml::from_str("listen = \"0.0.0.0:3478\"\ntls_listen = \"0.0.0.0:443\"").unwrap();
        assert!(TurnConfig::merge(&TurnCli::default(), &f, false).is_err());
        assert!(TurnConfig::merge(&TurnCli::default(), &f, true).is_ok());
        let f: FileTurn = toml::from_str("listen = \"0.0.0.0:3478\"\nsecret = \"s\"").unwrap();
        let c = TurnConfig::merge(&TurnCli::default(), &f, false).unwrap();
        assert!(!format!("{c:?}").contains("\"s\""));
        assert_eq!(c.to_json()["secret"], "***");
    }
}
