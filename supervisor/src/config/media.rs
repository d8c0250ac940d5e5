//! `[media]` listen addresses: where RTC transports listen (IPv4 and IPv6) and what each address
//! announces in ICE candidates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrosfu_fbs::{ListenInfo, TransportProtocol};
use serde::Deserialize;

use super::{Cli, PortRange};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileMedia {
    pub(super) rtc_ports: Option<PortRange>,
    pub(super) webrtc_server_port: Option<u16>,
    announced_ip: Option<IpAddr>,
    announced_ipv6: Option<Ipv6Addr>,
    /// The single-address form (before dual stack); still accepted.
    listen_ip: Option<IpAddr>,
    listen_ips: Option<Vec<IpAddr>>,
}

/// Most listen addresses (each one binds a UDP and a TCP socket per transport or server).
const MAX_LISTEN_IPS: usize = 8;

/// `[media] listen_ips` and the announced addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaListen {
    /// Listen addresses in preference order: candidates of the first get the highest ICE
    /// priority. None: `0.0.0.0`, plus `::` when the host has a global IPv6 address.
    pub ips: Option<Vec<IpAddr>>,
    /// Announced for the IPv4 listen addresses (for the only one, whatever its family).
    pub announced_ip: Option<IpAddr>,
    /// Announced for the IPv6 listen addresses.
    pub announced_ipv6: Option<Ipv6Addr>,
}

/// One listen address and the address its candidates carry (None: the listen address itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaAddr {
    pub ip: IpAddr,
    pub announced: Option<String>,
}

impl MediaAddr {
    /// The worker's listen info for this address (port 0: any of the workers' range).
    pub fn listen_info(&self, protocol: TransportProtocol, port: u16) -> ListenInfo {
        ListenInfo {
            protocol,
            ip: self.ip.to_string(),
            announced_address: self.announced.clone(),
            port,
        }
    }

    /// The address clients are told to send to.
    pub fn public(&self) -> String {
        self.announced
            .clone()
            .unwrap_or_else(|| self.ip.to_string())
    }
}

impl MediaListen {
    pub(super) fn merge(cli: &Cli, f: &FileMedia) -> Result<Self, String> {
        let ips = if cli.rtc_listen_ip.is_empty() {
            match (&f.listen_ip, &f.listen_ips) {
                (Some(_), Some(_)) => {
                    return Err("media: set listen_ips or listen_ip, not both".into());
                }
                (Some(ip), None) => Some(vec![*ip]),
                (None, ips) => ips.clone(),
            }
        } else {
            Some(cli.rtc_listen_ip.clone())
        };
        let m = MediaListen {
            ips,
            announced_ip: cli.announced_ip.or(f.announced_ip),
            announced_ipv6: cli.announced_ipv6.or(f.announced_ipv6),
        };
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        let Some(ips) = &self.ips else { return Ok(()) };
        if ips.is_empty() {
            return Err("media.listen_ips is empty".into());
        }
        if ips.len() > MAX_LISTEN_IPS {
            return Err(format!(
                "media.listen_ips: at most {MAX_LISTEN_IPS} addresses"
            ));
        }
        for (i, ip) in ips.iter().enumerate() {
            if ips[..i].contains(ip) {
                return Err(format!("media.listen_ips: {ip} is listed twice"));
            }
            if ip.is_multicast() || ip.to_canonical() != *ip {
                return Err(format!("media.listen_ips: {ip} is not a unicast address"));
            }
        }
        if ips.len() > 1 && self.announced_ip.is_some_and(|a| a.is_ipv6()) {
            return Err(
                "media.announced_ip is IPv6 with several listen addresses: use announced_ipv6"
                    .into(),
            );
        }
        Ok(())
    }

    /// The listen addresses (defaults filled in from the host's interface addresses).
    pub fn listen_ips(&self, host: &[IpAddr]) -> Vec<IpAddr> {
        match &self.ips {
            Some(ips) => ips.clone(),
            None if host.iter().any(|ip| is_global_v6(*ip)) => {
                vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()]
            }
            None => vec![Ipv4Addr::UNSPECIFIED.into()],
        }
    }

    /// Every listen address with what it announces, given the addresses of the host's
    /// interfaces that are up (loopback included). An unspecified address without a configured
    /// announced address announces the host's first address of its family that is neither
    /// loopback nor link-local, else loopback (a loopback-only host or network namespace).
    pub fn resolve(&self, host: &[IpAddr]) -> Vec<MediaAddr> {
        let ips = self.listen_ips(host);
        let only = ips.len() == 1;
        ips.iter()
            .map(|&ip| {
                let configured = match ip {
                    IpAddr::V4(_) => self.announced_ip,
                    IpAddr::V6(_) => self
                        .announced_ipv6
                        .map(IpAddr::V6)
                        .or(self.announced_ip.filter(|_| only)),
                };
                let announced = configured.or_else(|| {
                    ip.is_unspecified().then(|| match ip {
                        IpAddr::V4(_) => host
                            .iter()
                            .copied()
                            .find(|a| a.is_ipv4() && !a.is_loopback())
                            .unwrap_or(Ipv4Addr::LOCALHOST.into()),
                        IpAddr::V6(_) => host
                            .iter()
                            .copied()
                            .find(|a| is_global_v6(*a))
                            .unwrap_or(Ipv6Addr::LOCALHOST.into()),
                    })
                });
                MediaAddr {
                    ip,
                    announced: announced.map(|a| a.to_string()),
                }
            })
            .collect()
    }

    pub(super) fn to_json(&self, rtc_ports: String, webrtc_server_port: u16) -> serde_json::Value {
        serde_json::json!({
            "rtc_ports": rtc_ports,
            "webrtc_server_port": webrtc_server_port,
            "listen_ips": self
                .listen_ips(&host_addresses())
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            "announced_ip": self.announced_ip.map(|ip| ip.to_string()),
            "announced_ipv6": self.announced_ipv6.map(|ip| ip.to_string()),
        })
    }
}

/// An IPv6 address others may reach: not loopback, unspecified, link-local (fe80::/10),
/// multicast or IPv4-mapped.
fn is_global_v6(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => {
            !v6.is_loopback()
                && !v6.is_unspecified()
                && !v6.is_multicast()
                && (v6.segments()[0] & 0xffc0) != 0xfe80
                && v6.to_ipv4_mapped().is_none()
        }
        IpAddr::V4(_) => false,
    }
}

/// The addresses of the host's interfaces that are up (loopback included).
pub fn host_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP))
        .filter_map(|a| {
            let s = a.address?;
            s.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn listen(ips: &[&str], a4: Option<&str>, a6: Option<&str>) -> MediaListen {
        MediaListen {
            ips: Some(ips.iter().map(|s| ip(s)).collect()),
            announced_ip: a4.map(ip),
            announced_ipv6: a6.map(|s| s.parse().unwrap()),
        }
    }

    fn resolved(m: &MediaListen, host: &[&str]) -> Vec<(String, Option<String>)> {
        let host: Vec<IpAddr> = host.iter().map(|s| ip(s)).collect();
        m.resolve(&host)
            .into_iter()
            .map(|a| (a.ip.to_string(), a.announced))
            .collect()
    }

    const HOST: &[&str] = &["127.0.0.1", "::1", "fe80::1", "10.0.0.5", "2001:db8::5"];

    #[test]
    fn each_family_announces_its_own_address() {
        let m = listen(&["0.0.0.0", "::"], None, None);
        assert_eq!(
            resolved(&m, HOST),
            [
                ("0.0.0.0".into(), Some("10.0.0.5".into())),
                ("::".into(), Some("2001:db8::5".into())),
            ]
        );
        let m = listen(
            &["0.0.0.0", "::"],
            Some("203.0.113.10"),
            Some("2001:db8::99"),
        );
        assert_eq!(
            resolved(&m, HOST),
            [
                ("0.0.0.0".into(), Some("203.0.113.10".into())),
                ("::".into(), Some("2001:db8::99".into())),
            ]
        );
        // A loopback-only namespace announces loopback of each family.
        let m = listen(&["0.0.0.0", "::"], None, None);
        assert_eq!(
            resolved(&m, &["127.0.0.1", "::1"]),
            [
                ("0.0.0.0".into(), Some("127.0.0.1".into())),
                ("::".into(), Some("::1".into())),
            ]
        );
        // Specific addresses announce themselves.
        let m = listen(&["127.0.0.1", "::1"], None, None);
        assert_eq!(
            resolved(&m, HOST),
            [("127.0.0.1".into(), None), ("::1".into(), None)]
        );
    }

    #[test]
    fn the_single_address_form_keeps_its_announced_ip() {
        let m = listen(&["::"], Some("2001:db8::7"), None);
        assert_eq!(
            resolved(&m, HOST),
            [("::".into(), Some("2001:db8::7".into()))]
        );
        assert!(m.check().is_ok());
        let m = listen(&["0.0.0.0", "::"], Some("2001:db8::7"), None);
        assert!(m.check().unwrap_err().contains("announced_ipv6"));
    }

    #[test]
    fn the_default_is_dual_stack_only_with_a_global_ipv6_address() {
        let m = MediaListen {
            ips: None,
            announced_ip: None,
            announced_ipv6: None,
        };
        assert_eq!(
            m.listen_ips(&[ip("127.0.0.1"), ip("::1"), ip("fe80::1"), ip("10.0.0.5")]),
            [ip("0.0.0.0")]
        );
        assert_eq!(
            m.listen_ips(&[ip("10.0.0.5"), ip("2001:db8::5")]),
            [ip("0.0.0.0"), ip("::")]
        );
    }

    #[test]
    fn bad_lists_are_refused() {
        for ips in [
            &[][..],
            &["::1", "::1"][..],
            &["224.0.0.1"][..],
            &["::ffff:127.0.0.1"][..],
        ] {
            assert!(listen(ips, None, None).check().is_err(), "{ips:?}");
        }
    }
}
