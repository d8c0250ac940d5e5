//! Quotas against abuse and runaway clients (`[limits]`): how many peers a room and rooms a
//! node may hold, what one peer may own, how fast a peer may send protoo requests and a token
//! may call the REST APIs, how many signaling sockets one IP may hold. Refusals are typed errors
//! with status 429 (protoo `errorCode` 429 and close code [`CLOSE_TOO_MANY`]; HTTP 429 with
//! `Retry-After`), except a node at its room limit, which is full (503) like a loaded one.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// WebSocket close code for a peer refused or cut by a quota (4000-4999: application codes;
/// 4429 mirrors HTTP 429).
pub(crate) const CLOSE_TOO_MANY: u16 = 4429;

/// The configured quotas; `None` = no limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quotas {
    pub peers_per_room: Option<usize>,
    pub rooms_per_node: Option<usize>,
    pub transports_per_peer: Option<usize>,
    pub producers_per_peer: Option<usize>,
    pub consumers_per_peer: Option<usize>,
    /// Protoo requests a peer may send per second (bursts of twice as many).
    pub requests_per_second: Option<u32>,
    /// Open signaling WebSockets per client IP.
    pub ws_connections_per_ip: Option<usize>,
    /// REST requests per second per bearer token (bursts of twice as many).
    pub rest_requests_per_second: Option<u32>,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            peers_per_room: Some(1000),
            rooms_per_node: Some(10_000),
            transports_per_peer: Some(8),
            producers_per_peer: Some(32),
            consumers_per_peer: Some(5000),
            requests_per_second: Some(50),
            // Off: behind a reverse proxy every client has the proxy's address.
            ws_connections_per_ip: None,
            rest_requests_per_second: Some(20),
        }
    }
}

impl Quotas {
    /// No limit at all (unit tests of other modules).
    pub fn none() -> Self {
        Self {
            peers_per_room: None,
            rooms_per_node: None,
            transports_per_peer: None,
            producers_per_peer: None,
            consumers_per_peer: None,
            requests_per_second: None,
            ws_connections_per_ip: None,
            rest_requests_per_second: None,
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `burst`.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// `per_second` sustained, bursts of twice as many.
    pub(crate) fn new(per_second: u32, now: Instant) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            burst: rate * 2.0,
            tokens: rate * 2.0,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.at = now;
    }

    /// Takes a token; `Err(wait)` (how long until one is there) when empty.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// Most keys [`KeyedBuckets`] tracks; idle (full) buckets are dropped first when it is reached.
const MAX_KEYS: usize = 10_000;

/// One bucket per key (a hash of the bearer token), bounded to [`MAX_KEYS`].
#[derive(Debug)]
pub(crate) struct KeyedBuckets {
    per_second: u32,
    buckets: Mutex<HashMap<u64, Bucket>>,
}

impl KeyedBuckets {
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let key = h.finish();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(&key) {
            map.retain(|_, b| !b.is_full(now));
            if map.len() >= MAX_KEYS {
                // Every tracked key is active: forget them all rather than grow without bound.
                map.clear();
            }
        }
        map.entry(key)
            .or_insert_with(|| Bucket::new(self.per_second, now))
            .take(now)
    }
}

/// Open signaling sockets per client IP.
#[derive(Debug, Default)]
pub(crate) struct IpConns {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted socket; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct IpConn {
    conns: Arc<IpConns>,
    ip: IpAddr,
}

impl IpConns {
    /// Counts a socket of `ip` unless it already holds `max`.
    pub(crate) fn open(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpConn> {
        let mut map = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpConn {
            conns: self.clone(),
            ip,
        })
    }
}

impl Drop for IpConn {
    fn drop(&mut self) {
        let mut map = self.conns.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Limits the REST requests that carry a bearer token to `per_second` per token (bursts of
/// twice as many): 429 `{"error": …}` with `Retry-After` beyond. Requests without a token
/// (pages, health checks, the signaling upgrade, whose token is in the URL) pass.
pub(crate) fn rest_layer(router: axum::Router, per_second: Option<u32>) -> axum::Router {
    let Some(per_second) = per_second else {
        return router;
    };
    let buckets = Arc::new(KeyedBuckets::new(per_second));
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let buckets = buckets.clone();
            async move {
                let limited = crate::auth::Auth::bearer(req.headers())
                    .map(|token| buckets.take(token, Instant::now()));
                match limited {
                    Some(Err(wait)) => too_many_requests(per_second, wait),
                    _ => next.run(req).await,
                }
            }
        },
    ))
}

fn too_many_requests(per_second: u32, wait: Duration) -> axum::response::Response {
    use axum::response::IntoResponse;
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, secs.to_string())],
        axum::Json(serde_json::json!({
            "error": format!("too many requests: at most {per_second} per second for this token")
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_bursts_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, t0);
        for _ in 0..20 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(b.take(t0 + Duration::from_millis(100)).is_ok());
        assert!(b.take(t0 + Duration::from_millis(100)).is_err());
        // Idle for long: full again, never more than the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..20 {
            assert!(b.take(later).is_ok());
        }
        assert!(b.take(later).is_err());
    }

    #[test]
    fn keyed_buckets_are_per_key_and_bounded() {
        let t0 = Instant::now();
        let k = KeyedBuckets::new(1);
        assert!(k.take("a", t0).is_ok() && k.take("a", t0).is_ok());
        assert!(k.take("a", t0).is_err());
        assert!(k.take("b", t0).is_ok());
        for i in 0..(MAX_KEYS * 2) {
            let _ = k.take(&format!("key{i}"), t0);
        }
        assert!(k.buckets.lock().unwrap().len() <= MAX_KEYS);
    }

    #[test]
    fn ip_conns_count_and_release() {
        let c = Arc::new(IpConns::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = c.open(ip, 2).unwrap();
        let _b = c.open(ip, 2).unwrap();
        assert!(c.open(ip, 2).is_none());
        assert!(c.open("192.0.2.2".parse().unwrap(), 2).is_some());
        drop(a);
        assert!(c.open(ip, 2).is_some());
    }
}
