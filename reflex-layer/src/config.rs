//! Reflex-layer settings: flags, or the environment variables in `--help`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use service_kit::KitArgs;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "reflex-layer",
    version,
    about = "OctoLLM reflex layer: screens text for PII and prompt injection, caches decisions, rate-limits.",
    long_about = "OctoLLM reflex layer: POST /v1/reflex/check screens text for PII and prompt \
injection and answers allow or block, with findings as types and offsets (never the raw values). \
Decisions are cached in-process (L1) and in Redis (L2) under a keyed hash of the text; callers are \
rate-limited per user and per client IP with token buckets kept in Redis. Without Redis it keeps \
serving from L1 with per-instance buckets.\n\nEvery flag can also be set through the environment \
variable shown next to it."
)]
pub struct Args {
    #[command(flatten)]
    pub kit: KitArgs,

    /// Redis URL for the L2 cache and shared rate limits; unset runs without Redis.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// File holding the secret key for cache keys, rate-limit keys and keyed-hash
    /// redaction (at least 16 bytes). Unset: a random key per process.
    #[arg(long, env = "REFLEX_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// Entries in the in-process (L1) decision cache.
    #[arg(long, env = "REFLEX_L1_CAPACITY", default_value_t = 100_000)]
    pub l1_capacity: u64,

    /// Texts shorter than this many bytes are not cached: scanning them costs
    /// less than caching them.
    #[arg(long, env = "REFLEX_L1_MIN_BYTES", default_value_t = 1024)]
    pub l1_min_bytes: usize,

    /// Texts shorter than this many bytes use only L1: scanning them costs
    /// less than a Redis round trip.
    #[arg(long, env = "REFLEX_L2_MIN_BYTES", default_value_t = 2048)]
    pub l2_min_bytes: usize,

    /// How long a cached decision lives (L1 and L2).
    #[arg(long, env = "REFLEX_CACHE_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,

    /// Block when an injection finding has at least this severity (low, medium, high, critical)...
    #[arg(long, env = "REFLEX_BLOCK_SEVERITY", default_value = "high", value_parser = parse_severity)]
    pub block_severity: detection::Severity,

    /// ...and at least this confidence (0–1).
    #[arg(long, env = "REFLEX_BLOCK_CONFIDENCE", default_value_t = 0.5)]
    pub block_confidence: f32,

    /// Rate-limit tiers: NAME=RATE/s:BURST, comma separated. The first is the default.
    #[arg(
        long,
        env = "REFLEX_TIERS",
        default_value = "standard=50/s:100,premium=500/s:1000,internal=5000/s:10000"
    )]
    pub tiers: String,

    /// Users in a tier other than the default: USER=TIER, comma separated.
    #[arg(long, env = "REFLEX_USER_TIERS", default_value = "")]
    pub user_tiers: String,

    /// Token bucket per client IP: RATE/s:BURST.
    #[arg(long, env = "REFLEX_IP_LIMIT", default_value = "200/s:400")]
    pub ip_limit: String,

    /// Proxies of ours in front of this service, each appending the address
    /// it got the request from to X-Forwarded-For. 0 (the default): the
    /// header is ignored and the socket peer is the client of the per-IP
    /// limit. N: the client is the Nth X-Forwarded-For entry from the right
    /// (what the outermost of our proxies saw); entries further left are the
    /// client's own claims and never read. Set it only when clients cannot
    /// reach this service, or an inner proxy, except through the outermost.
    #[arg(long, env = "REFLEX_TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: usize,

    /// Gone: it trusted the leftmost X-Forwarded-For entry, which the client
    /// writes. Setting it stops the start with a pointer to
    /// `--trusted-proxy-hops`, rather than silently changing who is limited.
    #[arg(long, env = "REFLEX_TRUST_PROXY", hide = true)]
    pub trust_proxy: Option<String>,
}

fn parse_severity(text: &str) -> Result<detection::Severity, String> {
    use detection::Severity::*;
    [Low, Medium, High, Critical]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| format!("unknown severity {text:?}: low, medium, high or critical"))
}
