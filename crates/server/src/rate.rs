//! Token buckets, and a bounded table of them keyed by who is asking.
//!
//! A [`Bucket`] holds up to `burst` tokens and gains `rate` per second; each request (or
//! failed login, or agent message) takes one. [`Table`] keeps one bucket per key (an API
//! token's digest, a peer's address) and at most `capacity` keys: a new key beyond that
//! evicts the key touched longest ago, so a flood of new keys costs a bounded amount of
//! memory. An evicted bucket starts full when its key returns, the same as a bucket left idle
//! for `burst / rate` seconds.
//!
//! Time is passed in, so the arithmetic is tested without clocks; [`Limits`] is the server's
//! set of tables, reading `Instant::now()`.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::Config;

/// A rate (`per_sec`) and a burst (the bucket's size).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

impl Rate {
    /// `count` per `window` with a burst of `burst`.
    pub fn per(count: u32, window: Duration, burst: u32) -> Rate {
        Rate {
            per_sec: f64::from(count) / window.as_secs_f64().max(1e-9),
            burst: f64::from(burst.max(1)),
        }
    }
}

/// One token bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate.per_sec).min(rate.burst);
        self.at = now;
    }

    /// Takes one token: `Ok` if there was one, else how long until there is.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.wait(rate))
        }
    }

    /// Whether a token is there, without taking it: `Err` with how long until there is one.
    pub fn peek(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.wait(rate))
        }
    }

    fn wait(&self, rate: Rate) -> Duration {
        if rate.per_sec <= 0.0 {
            return Duration::from_secs(3600);
        }
        Duration::from_secs_f64(((1.0 - self.tokens) / rate.per_sec).clamp(0.0, 3600.0))
    }
}

/// At most `capacity` buckets by key; the least recently touched is evicted for a new one.
#[derive(Debug)]
pub struct Table<K> {
    rate: Rate,
    capacity: usize,
    /// key -> (bucket, stamp of its last touch)
    buckets: HashMap<K, (Bucket, u64)>,
    /// stamp -> key, oldest first.
    order: BTreeMap<u64, K>,
    next: u64,
}

impl<K: Hash + Eq + Clone> Table<K> {
    pub fn new(rate: Rate, capacity: usize) -> Table<K> {
        Table {
            rate,
            capacity: capacity.max(1),
            buckets: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
        }
    }

    /// Keys held now (never above the capacity).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn bucket(&mut self, key: &K, now: Instant) -> &mut Bucket {
        self.next += 1;
        let stamp = self.next;
        if let Some((_, old)) = self.buckets.get(key) {
            let old = *old;
            self.order.remove(&old);
        } else {
            while self.buckets.len() >= self.capacity {
                let Some((_, oldest)) = self.order.pop_first() else {
                    break;
                };
                self.buckets.remove(&oldest);
            }
            self.buckets
                .insert(key.clone(), (Bucket::new(self.rate, now), stamp));
        }
        self.order.insert(stamp, key.clone());
        let entry = self
            .buckets
            .get_mut(key)
            .expect("inserted or present above");
        entry.1 = stamp;
        &mut entry.0
    }

    /// Takes a token from `key`'s bucket.
    pub fn take(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        let rate = self.rate;
        self.bucket(key, now).take(rate, now)
    }

    /// Whether `key` has a token left, without taking it (a key never seen has).
    pub fn peek(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        let rate = self.rate;
        match self.buckets.get_mut(key) {
            Some((b, _)) => b.peek(rate, now),
            None => Ok(()),
        }
    }
}

/// Who a failed login is charged to: the peer's address, an IPv6 peer by its /64 (one
/// host usually holds a whole /64). IPv4-mapped IPv6 addresses count as IPv4.
pub fn peer_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The server's request limits: per API token, and failed logins per peer.
#[derive(Debug)]
pub struct Limits {
    tokens: Mutex<Table<[u8; 32]>>,
    failures: Mutex<Table<IpAddr>>,
}

/// Why a request is refused: what was exceeded and when to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttled {
    pub retry_after: Duration,
    pub reason: &'static str,
}

impl Throttled {
    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A table left by a panic is still a valid table.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        Limits {
            tokens: Mutex::new(Table::new(config.token_rate, config.rate_keys)),
            failures: Mutex::new(Table::new(config.auth_failure_rate, config.rate_keys)),
        }
    }

    /// Before a request: refused if its peer has used up its failed logins, or its token
    /// its request rate (each request takes one token).
    pub fn admit(&self, peer: Option<IpAddr>, bearer: Option<&str>) -> Result<(), Throttled> {
        let now = Instant::now();
        if let Some(ip) = peer {
            lock(&self.failures)
                .peek(&peer_key(ip), now)
                .map_err(|retry_after| Throttled {
                    retry_after,
                    reason: "too many failed authentications from this address",
                })?;
        }
        if let Some(secret) = bearer {
            lock(&self.tokens)
                .take(&token_key(secret), now)
                .map_err(|retry_after| Throttled {
                    retry_after,
                    reason: "too many requests with this token",
                })?;
        }
        Ok(())
    }

    /// A failed authentication from `peer` (no address known: nothing to charge).
    pub fn auth_failed(&self, peer: Option<IpAddr>) {
        if let Some(ip) = peer {
            let key = peer_key(ip);
            if lock(&self.failures).take(&key, Instant::now()).is_err() {
                tracing::warn!(peer = %key, "failed authentications over the limit");
            }
        }
    }
}

/// A token's bucket is keyed by its SHA-256, so the table holds no secret.
fn token_key(secret: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

/// The peer of a request, when the listener recorded it (`ConnectInfo<SocketAddr>`).
pub fn peer_of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let rate = Rate::per(10, Duration::from_secs(1), 3);
        let t0 = Instant::now();
        let mut b = Bucket::new(rate, t0);
        for _ in 0..3 {
            assert_eq!(b.take(rate, t0), Ok(()));
        }
        let wait = b.take(rate, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // 100 ms later one token is back, and only one.
        assert_eq!(b.take(rate, at(t0, 100)), Ok(()));
        assert!(b.take(rate, at(t0, 100)).is_err());
        // Idle for long: full again, never above the burst.
        for _ in 0..3 {
            assert_eq!(b.take(rate, at(t0, 60_000)), Ok(()));
        }
        assert!(b.take(rate, at(t0, 60_000)).is_err());
    }

    #[test]
    fn peek_takes_nothing() {
        let rate = Rate::per(1, Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let mut b = Bucket::new(rate, t0);
        for _ in 0..5 {
            assert_eq!(b.peek(rate, t0), Ok(()));
        }
        b.take(rate, t0).unwrap();
        b.take(rate, t0).unwrap();
        let wait = b.peek(rate, t0).unwrap_err();
        assert_eq!(wait.as_secs(), 60);
    }

    #[test]
    fn a_table_holds_at_most_its_capacity_evicting_the_oldest() {
        let rate = Rate::per(1, Duration::from_secs(3600), 1);
        let t0 = Instant::now();
        let mut t: Table<u32> = Table::new(rate, 3);
        for k in 0..3 {
            t.take(&k, t0).unwrap();
        }
        // Key 0 touched again: key 1 is now the oldest.
        assert!(t.take(&0, t0).is_err());
        for k in 3..1000 {
            t.take(&k, t0).unwrap();
            assert!(t.len() <= 3);
        }
        assert_eq!(t.len(), 3);
        // 997..999 are held and empty; 0 was evicted and starts full.
        assert!(t.peek(&999, t0).is_err());
        assert_eq!(t.peek(&0, t0), Ok(()));
        assert_eq!(t.take(&0, t0), Ok(()));
        assert_eq!(t.order.len(), t.buckets.len());
    }

    #[test]
    fn ipv6_peers_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        assert_ne!(peer_key(a), peer_key(c));
        let mapped: IpAddr = "::ffff:198.18.0.1".parse().unwrap();
        assert_eq!(peer_key(mapped), "198.18.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn failed_logins_block_the_peer_but_not_others() {
        let config = Config {
            auth_failure_rate: Rate::per(1, Duration::from_secs(3600), 2),
            ..Config::default()
        };
        let limits = Limits::new(&config);
        let bad: IpAddr = "198.18.0.1".parse().unwrap();
        let good: IpAddr = "198.18.0.2".parse().unwrap();
        assert!(limits.admit(Some(bad), None).is_ok());
        limits.auth_failed(Some(bad));
        assert!(limits.admit(Some(bad), Some("ecp_x")).is_ok());
        limits.auth_failed(Some(bad));
        let refused = limits.admit(Some(bad), Some("ecp_x")).unwrap_err();
        assert!(refused.reason.contains("failed authentications"));
        assert!(refused.retry_after_secs() >= 1);
        assert!(limits.admit(Some(good), Some("ecp_x")).is_ok());
    }
}
