//! `RateLimiter`: token buckets per user (by tier) and per client IP.
//!
//! Buckets live in Redis and are updated atomically by one Lua script that
//! uses Redis's own clock, so every replica shares them. When Redis is
//! unreachable each replica falls back to its own in-process buckets.
//! Bucket keys are keyed hashes: no user id or IP address is stored raw.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::keys::Keyring;
use crate::redis_link::RedisLink;

/// Refill rate and capacity of a token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketSpec {
    pub per_second: f64,
    pub burst: f64,
}

impl std::str::FromStr for BucketSpec {
    type Err = String;

    /// `RATE/s:BURST`, e.g. `50/s:100`.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not RATE/s:BURST (e.g. 50/s:100)");
        let (rate, burst) = text.trim().split_once(":").ok_or_else(bad)?;
        let rate = rate.strip_suffix("/s").ok_or_else(bad)?;
        let spec = Self {
            per_second: rate.parse().map_err(|_| bad())?,
            burst: burst.parse().map_err(|_| bad())?,
        };
        if spec.per_second <= 0.0 || spec.burst < 1.0 {
            return Err(format!("{text:?}: rate must be > 0 and burst >= 1"));
        }
        Ok(spec)
    }
}

/// Named tiers for users; the first is the default.
#[derive(Debug, Clone)]
pub struct Tiers {
    tiers: Vec<(String, BucketSpec)>,
    users: HashMap<String, usize>,
}

impl Tiers {
    /// `tiers` is `NAME=RATE/s:BURST,...`; `users` is `USER=TIER,...`.
    pub fn parse(tiers: &str, users: &str) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for entry in tiers.split(',').filter(|e| !e.trim().is_empty()) {
            let (name, spec) = entry
                .split_once('=')
                .ok_or_else(|| format!("tier {entry:?} is not NAME=RATE/s:BURST"))?;
            parsed.push((name.trim().to_owned(), spec.parse()?));
        }
        if parsed.is_empty() {
            return Err("at least one rate-limit tier is needed".into());
        }
        let mut map = HashMap::new();
        for entry in users.split(',').filter(|e| !e.trim().is_empty()) {
            let (user, tier) = entry
                .split_once('=')
                .ok_or_else(|| format!("user tier {entry:?} is not USER=TIER"))?;
            let index = parsed
                .iter()
                .position(|(name, _)| name == tier.trim())
                .ok_or_else(|| format!("user tier {entry:?} names an unknown tier"))?;
            map.insert(user.trim().to_owned(), index);
        }
        Ok(Self {
            tiers: parsed,
            users: map,
        })
    }

    pub fn for_user(&self, user: &str) -> (&str, BucketSpec) {
        let index = self.users.get(user).copied().unwrap_or(0);
        let (name, spec) = &self.tiers[index.min(self.tiers.len() - 1)];
        (name, *spec)
    }
}

/// Token bucket in Redis: KEYS[1]; ARGV rate/s, burst. Returns {allowed, retry_after_ms}.
const TOKEN_BUCKET_LUA: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) / 1000 * rate)
local allowed = 0
local retry_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry_ms = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, retry_ms}
";

/// Why a request was refused, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub scope: &'static str,
    pub retry_after: Duration,
}

#[derive(Clone)]
pub struct RateLimiter {
    redis: RedisLink,
    keys: Keyring,
    script: Arc<redis::Script>,
    local: Arc<Mutex<HashMap<String, LocalBucket>>>,
}

struct LocalBucket {
    tokens: f64,
    at: Instant,
}

/// Local buckets kept at most; idle ones are dropped first when full.
const LOCAL_BUCKETS_MAX: usize = 100_000;

impl RateLimiter {
    pub fn new(redis: RedisLink, keys: Keyring) -> Self {
        Self {
            redis,
            keys,
            script: Arc::new(redis::Script::new(TOKEN_BUCKET_LUA)),
            local: Arc::default(),
        }
    }

    /// Takes one token from the `scope` bucket of `subject`.
    pub async fn take(
        &self,
        scope: &'static str,
        subject: &str,
        spec: BucketSpec,
    ) -> Result<(), Limited> {
        let key = format!("reflex:rl:{scope}:{}", self.keys.tag(subject.as_bytes()));
        let script = self.script.clone();
        let redis_key = key.clone();
        let outcome = self
            .redis
            .call(|mut c| async move {
                script
                    .key(redis_key)
                    .arg(spec.per_second)
                    .arg(spec.burst)
                    .invoke_async::<(i64, i64)>(&mut c)
                    .await
            })
            .await;
        let (allowed, retry_ms) = match outcome {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(%error, "rate limit falls back to this instance");
                self.take_local(key, spec)
            }
        };
        if allowed == 1 {
            Ok(())
        } else {
            Err(Limited {
                scope,
                retry_after: Duration::from_millis(u64::try_from(retry_ms.max(1)).unwrap_or(1000)),
            })
        }
    }

    fn take_local(&self, key: String, spec: BucketSpec) -> (i64, i64) {
        let mut buckets = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= LOCAL_BUCKETS_MAX && !buckets.contains_key(&key) {
            let idle = Duration::from_secs_f64(spec.burst / spec.per_second);
            buckets.retain(|_, b| b.at.elapsed() < idle);
        }
        let now = Instant::now();
        let bucket = buckets.entry(key).or_insert(LocalBucket {
            tokens: spec.burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.at).as_secs_f64() * spec.per_second)
            .min(spec.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            (1, 0)
        } else {
            let wait_ms = ((1.0 - bucket.tokens) / spec.per_second * 1000.0).ceil();
            (0, wait_ms as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_tiers_parse_or_explain() {
        assert_eq!(
            "50/s:100".parse::<BucketSpec>(),
            Ok(BucketSpec {
                per_second: 50.0,
                burst: 100.0
            })
        );
        assert!("50:100".parse::<BucketSpec>().is_err());
        assert!("0/s:1".parse::<BucketSpec>().is_err());
        let tiers = Tiers::parse("standard=1/s:2,premium=10/s:20", "alice=premium").unwrap();
        assert_eq!(tiers.for_user("alice").0, "premium");
        assert_eq!(tiers.for_user("bob").0, "standard");
        assert!(Tiers::parse("standard=1/s:2", "alice=gold").is_err());
    }

    #[tokio::test]
    async fn local_buckets_refuse_past_the_burst() {
        let limiter = RateLimiter::new(RedisLink::disabled(), Keyring::random().unwrap());
        let spec = BucketSpec {
            per_second: 1.0,
            burst: 3.0,
        };
        for _ in 0..3 {
            assert!(limiter.take("user", "u1", spec).await.is_ok());
        }
        let limited = limiter.take("user", "u1", spec).await.unwrap_err();
        assert_eq!(limited.scope, "user");
        assert!(limited.retry_after > Duration::ZERO);
        assert!(
            limiter.take("user", "u2", spec).await.is_ok(),
            "buckets are per subject"
        );
    }
}
