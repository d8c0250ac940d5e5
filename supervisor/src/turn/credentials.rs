//! Time-limited TURN credentials, the "TURN REST API" scheme that coturn (`use-auth-secret`)
//! and browsers use: `username = "<expiry unix seconds>:<user>"`, `credential =
//! base64(hmac-sha1(secret, username))`. Anyone holding the secret can mint them; the TURN
//! server recomputes the credential from the username and refuses it after the expiry.

use base64::Engine as _;
use serde::Serialize;

/// Longest username accepted (STUN allows 513 bytes; ours are `<10 digits>:<peer id>`).
pub const MAX_USERNAME: usize = 256;

/// An `RTCIceServer` as the browser takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// The credential (password) for `username`.
pub fn password(secret: &[u8], username: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// Username and credential for `user`, valid until `now_unix + ttl_s`. Characters outside
/// printable ASCII in `user` are replaced (a username travels in STUN as UTF-8, but some TURN
/// clients mishandle anything else).
pub fn issue(secret: &[u8], ttl_s: u64, user: &str, now_unix: u64) -> (String, String) {
    let user: String = user
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(MAX_USERNAME - 21)
        .collect();
    let username = format!("{}:{user}", now_unix.saturating_add(ttl_s));
    let credential = password(secret, &username);
    (username, credential)
}

/// Why a username is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not `<digits>:<user>`, or too long.
    Malformed,
    /// The expiry has passed.
    Expired,
}

/// The user part of a REST username, if it is well formed and not expired at `now_unix`.
pub fn check_username(username: &str, now_unix: u64) -> Result<&str, Refusal> {
    if username.len() > MAX_USERNAME {
        return Err(Refusal::Malformed);
    }
    let (expiry, user) = username.split_once(':').ok_or(Refusal::Malformed)?;
    if expiry.is_empty() || expiry.len() > 12 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Malformed);
    }
    let expiry: u64 = expiry.parse().map_err(|_| Refusal::Malformed)?;
    if expiry < now_unix {
        return Err(Refusal::Expired);
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_credentials_check_and_expire() {
        let (u, c) = issue(b"s3cret", 3600, "peer-1", 1_000_000);
        assert_eq!(u, "1003600:peer-1");
        assert_eq!(c, password(b"s3cret", &u));
        assert_ne!(c, password(b"other", &u));
        assert_eq!(check_username(&u, 1_003_600), Ok("peer-1"));
        assert_eq!(check_username(&u, 1_003_601), Err(Refusal::Expired));
        for bad in ["peer", ":x", "12a:x", "99999999999999:x", &"1:".repeat(200)] {
            assert_eq!(check_username(bad, 0), Err(Refusal::Malformed), "{bad}");
        }
        let (u, _) = issue(b"s", 60, "a b\u{e9}", 0);
        assert_eq!(u, "60:a_b_");
    }

    #[test]
    fn the_credential_is_the_coturn_rest_one() {
        // coturn's turnutils_uclient -W secret and the draft's example compute
        // base64(hmac-sha1(secret, username)); this is that value for a fixed input
        // (python3 -c "import hmac,hashlib,base64;print(base64.b64encode(hmac.new(
        // b'north', b'1700000000:alice', hashlib.sha1).digest()).decode())").
        assert_eq!(
            password(b"north", "1700000000:alice"),
            "Cd/49soE35ICqcJF/bCTn8Z4OyE="
        );
    }
}
