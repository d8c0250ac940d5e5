//! Who may join which room: HS256 JWTs (claims `room`, `peer`, `role`, `exp`) on signaling and
//! REST, an Origin allow-list for browsers, and `--dev` to let everyone in (with a warning at
//! startup).
//!
//! Tokens come as the `token` query parameter on the WebSocket URL (browsers cannot set headers
//! on a WebSocket) and as `Authorization: Bearer <token>` on REST.

use axum::http::{HeaderMap, StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Send and receive media.
    Publish,
    /// Receive only: `produce` is refused.
    Subscribe,
    /// Operators: the recordings API of the token's room, or of every room with `room: "*"`.
    Admin,
}

/// The claims ferrosfu reads. `exp` is required (seconds since the epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub room: String,
    pub peer: String,
    pub role: Role,
    pub exp: u64,
}

/// Why a request was refused; maps to an HTTP status before any upgrade.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a token is required")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token is not for this room or peer")]
    WrongScope,
    #[error("origin {0:?} is not allowed")]
    Origin(String),
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::Invalid(_) => StatusCode::UNAUTHORIZED,
            AuthError::WrongScope | AuthError::Origin(_) => StatusCode::FORBIDDEN,
        }
    }
}

/// The access policy of this supervisor.
#[derive(Clone)]
pub struct Auth {
    key: Option<DecodingKey>,
    validation: Validation,
    dev: bool,
    allowed_origins: Vec<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("jwt", &self.key.is_some())
            .field("dev", &self.dev)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

impl Auth {
    pub fn new(secret: Option<&str>, dev: bool, allowed_origins: Vec<String>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        Self {
            key: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            validation,
            dev,
            allowed_origins: allowed_origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        }
    }

    /// Browsers send `Origin`; a request with an origin outside a non-empty allow-list is
    /// refused. Requests without `Origin` (non-browser clients) pass: tokens guard those.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        if self.allowed_origins.is_empty() {
            return Ok(());
        }
        match headers.get(header::ORIGIN).map(|o| o.to_str()) {
            None => Ok(()),
            Some(Ok(o)) if self.allowed_origins.iter().any(|a| a == "*" || a == o) => Ok(()),
            Some(o) => Err(AuthError::Origin(o.unwrap_or("?").to_owned())),
        }
    }

    /// Checks a token for `room` and (when given) `peer`. Without a token: allowed (as
    /// publisher) in dev mode, refused otherwise. A token that is present is always verified.
    pub fn authorize(
        &self,
        token: Option<&str>,
        room: &str,
        peer: Option<&str>,
    ) -> Result<Role, AuthError> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return if self.dev {
                Ok(Role::Publish)
            } else {
                Err(AuthError::Missing)
            };
        };
        let Some(key) = &self.key else {
            // No secret configured: tokens cannot be checked. Only dev mode gets in.
            return if self.dev {
                Ok(Role::Publish)
            } else {
                Err(AuthError::Invalid("no jwt_secret is configured".into()))
            };
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let c = data.claims;
        if c.room != room || peer.is_some_and(|p| p != c.peer) {
            return Err(AuthError::WrongScope);
        }
        Ok(c.role)
    }

    /// Checks a token for `room` whatever its peer, and returns the role and the token's peer
    /// (None without a token in dev mode). For clients that take their id from the token
    /// (WHIP, WHEP).
    pub fn authorize_room(
        &self,
        token: Option<&str>,
        room: &str,
    ) -> Result<(Role, Option<String>), AuthError> {
        let role = self.authorize(token, room, None)?;
        let peer = match (token.filter(|t| !t.is_empty()), &self.key) {
            (Some(token), Some(key)) => {
                let c = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
                    .map_err(|e| AuthError::Invalid(e.to_string()))?
                    .claims;
                Some(c.peer).filter(|p| !p.is_empty())
            }
            _ => None,
        };
        Ok((role, peer))
    }

    /// Checks an operator token (role `admin`) for `room`, or for every room when `room` is
    /// None; a token for room `"*"` covers every room. Without a token: allowed in dev mode.
    pub fn authorize_admin(
        &self,
        token: Option<&str>,
        room: Option<&str>,
    ) -> Result<(), AuthError> {
        if token.is_none_or(str::is_empty) && self.dev {
            return Ok(());
        }
        let scope = room.unwrap_or("*");
        let role = match self.authorize(token, scope, None) {
            Err(AuthError::WrongScope) if room.is_some() => self.authorize(token, "*", None)?,
            r => r?,
        };
        if role == Role::Admin {
            Ok(())
        } else {
            Err(AuthError::WrongScope)
        }
    }

    /// An operator REST request: its `Origin` (see [`check_origin`](Self::check_origin)) and
    /// its bearer token (see [`authorize_admin`](Self::authorize_admin)).
    pub fn authorize_admin_request(
        &self,
        headers: &HeaderMap,
        room: Option<&str>,
    ) -> Result<(), AuthError> {
        self.check_origin(headers)?;
        self.authorize_admin(Self::bearer(headers), room)
    }

    /// The bearer token of a REST request.
    pub fn bearer(headers: &HeaderMap) -> Option<&str> {
        headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
            .map(str::trim)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &str = "0123456789abcdef0123";

    fn token(room: &str, peer: &str, role: Role, exp_in: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let c = Claims {
            room: room.into(),
            peer: peer.into(),
            role,
            exp: (now + exp_in) as u64,
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn tokens() {
        let auth = Auth::new(Some(SECRET), false, vec![]);
        let t = token("r", "p", Role::Subscribe, 60);
        assert_eq!(
            auth.authorize(Some(&t), "r", Some("p")),
            Ok(Role::Subscribe)
        );
        assert_eq!(auth.authorize(Some(&t), "r", None), Ok(Role::Subscribe));
        assert_eq!(
            auth.authorize(Some(&t), "other", Some("p")),
            Err(AuthError::WrongScope)
        );
        assert_eq!(
            auth.authorize(Some(&t), "r", Some("q")),
            Err(AuthError::WrongScope)
        );
        assert_eq!(
            auth.authorize(None, "r", Some("p")),
            Err(AuthError::Missing)
        );
        let expired = token("r", "p", Role::Publish, -120);
        assert!(matches!(
            auth.authorize(Some(&expired), "r", Some("p")),
            Err(AuthError::Invalid(_))
        ));
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(matches!(
            auth.authorize(Some(&forged), "r", Some("p")),
            Err(AuthError::Invalid(_))
        ));
        // Dev mode still verifies a token that is present.
        let dev = Auth::new(Some(SECRET), true, vec![]);
        assert_eq!(dev.authorize(None, "r", Some("p")), Ok(Role::Publish));
        assert!(dev.authorize(Some(&forged), "r", Some("p")).is_err());
    }

    #[test]
    fn admin_tokens() {
        let auth = Auth::new(Some(SECRET), false, vec![]);
        let room = token("r", "ops", Role::Admin, 60);
        let all = token("*", "ops", Role::Admin, 60);
        let publisher = token("r", "p", Role::Publish, 60);
        assert_eq!(auth.authorize_admin(Some(&room), Some("r")), Ok(()));
        assert_eq!(
            auth.authorize_admin(Some(&room), Some("other")),
            Err(AuthError::WrongScope)
        );
        assert_eq!(
            auth.authorize_admin(Some(&room), None),
            Err(AuthError::WrongScope)
        );
        assert_eq!(auth.authorize_admin(Some(&all), Some("r")), Ok(()));
        assert_eq!(auth.authorize_admin(Some(&all), None), Ok(()));
        assert_eq!(
            auth.authorize_admin(Some(&publisher), Some("r")),
            Err(AuthError::WrongScope)
        );
        assert_eq!(auth.authorize_admin(None, None), Err(AuthError::Missing));
        let dev = Auth::new(Some(SECRET), true, vec![]);
        assert_eq!(dev.authorize_admin(None, Some("r")), Ok(()));
        assert!(dev.authorize_admin(Some(&publisher), Some("r")).is_err());
    }

    #[test]
    fn origins() {
        let auth = Auth::new(None, true, vec!["https://meet.example.com/".into()]);
        let mut h = HeaderMap::new();
        assert!(auth.check_origin(&h).is_ok());
        h.insert(header::ORIGIN, "https://meet.example.com".parse().unwrap());
        assert!(auth.check_origin(&h).is_ok());
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(
            auth.check_origin(&h).unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
    }
}
