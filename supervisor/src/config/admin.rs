//! `[http] admin_listen`: the operator listener (`/metrics`, `/api/workers`, `/api/rooms`, drain,
//! log levels), apart from the public one.

use std::net::SocketAddr;

/// Where the admin listener binds when neither the flag nor the file says: loopback only, so
/// a Prometheus on the same host scrapes without a token and nothing is exposed outside.
pub(super) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:3001";

/// `--admin-listen` / `[http] admin_listen`: an address, or "off" (or "") for no admin
/// listener (the admin endpoints then exist only on the public listener, behind the admin
/// token).
pub(super) fn admin_listen(
    cli: Option<&str>,
    file: Option<&str>,
) -> Result<Option<SocketAddr>, String> {
    let v = cli.or(file).unwrap_or(DEFAULT_ADMIN_LISTEN).trim();
    if v.is_empty() || v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| {
        format!("http.admin_listen {v:?}: an ADDR:PORT (e.g. 127.0.0.1:3001) or \"off\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_file_default_and_off() {
        assert_eq!(
            admin_listen(None, None).unwrap(),
            Some("127.0.0.1:3001".parse().unwrap())
        );
        assert_eq!(
            admin_listen(Some("[::1]:9"), Some("127.0.0.1:7")).unwrap(),
            Some("[::1]:9".parse().unwrap())
        );
        assert_eq!(admin_listen(None, Some("off")).unwrap(), None);
        assert_eq!(admin_listen(Some(""), None).unwrap(), None);
        let e = admin_listen(Some("3001"), None).unwrap_err();
        assert!(e.contains("http.admin_listen"), "{e}");
    }
}
