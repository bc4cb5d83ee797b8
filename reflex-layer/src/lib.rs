//! The OctoLLM reflex layer: PII and prompt-injection screening with a
//! two-level decision cache and rate limits. See ARCHITECTURE.md.

pub mod api;
pub mod cache;
pub mod config;
pub mod keys;
pub mod metrics;
pub mod rate_limit;
pub mod redis_link;

use std::sync::Arc;

use anyhow::Context;
use service_kit::{Kit, Readiness, ServiceInfo};

use crate::api::ApiState;
use crate::cache::DecisionCache;
use crate::config::Args;
use crate::keys::Keyring;
use crate::metrics::ReflexMetrics;
use crate::rate_limit::{RateLimiter, Tiers};
use crate::redis_link::{RedisCheck, RedisLink};

pub const SERVICE: ServiceInfo = ServiceInfo {
    name: "reflex-layer",
    version: env!("CARGO_PKG_VERSION"),
    default_port: 8080,
};

/// Builds the API state and the readiness checks; starts the Redis link.
pub fn build(args: &Args, kit: &Kit) -> anyhow::Result<(ApiState, Readiness)> {
    if args.trust_proxy.is_some() {
        anyhow::bail!(
            "REFLEX_TRUST_PROXY / --trust-proxy is gone (it trusted the client-written leftmost \
             X-Forwarded-For entry); set REFLEX_TRUSTED_PROXY_HOPS to the number of proxies of \
             yours in front of the reflex layer (0: use the peer address)"
        );
    }
    let keys = match &args.key_file {
        Some(path) => {
            let key = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Keyring::new(key).map_err(anyhow::Error::msg)?
        }
        None => {
            tracing::warn!(
                "no REFLEX_KEY_FILE: using a random key, so the L2 cache is not shared across restarts"
            );
            Keyring::random().map_err(anyhow::Error::msg)?
        }
    };
    let detector = detection::Detector::new(detection::DetectorConfig {
        block_min_severity: args.block_severity,
        block_min_confidence: args.block_confidence,
        hash_key: Some(keys.bytes().to_vec()),
        ..detection::DetectorConfig::default()
    })?;
    let redis = match &args.redis_url {
        Some(url) => RedisLink::connect(url, kit.shutdown_token())?,
        None => RedisLink::disabled(),
    };
    let metrics = ReflexMetrics::register(kit.registry())?;
    let state = ApiState {
        detector: Arc::new(detector),
        cache: DecisionCache::new(
            args.l1_capacity,
            args.cache_ttl,
            args.l1_min_bytes,
            args.l2_min_bytes,
            redis.clone(),
            keys.clone(),
            metrics.clone(),
        ),
        limiter: RateLimiter::new(redis.clone(), keys),
        tiers: Arc::new(Tiers::parse(&args.tiers, &args.user_tiers).map_err(anyhow::Error::msg)?),
        ip_limit: args.ip_limit.parse().map_err(anyhow::Error::msg)?,
        trusted_proxy_hops: args.trusted_proxy_hops,
        metrics,
    };
    Ok((state, Readiness::new(vec![Box::new(RedisCheck(redis))])))
}
