//! Simulator settings.
//!
//! [`SimConfig`] is both the startup configuration (built from CLI flags) and
//! the JSON document of the admin API (`GET`/`PUT /admin/config`). The hot
//! path takes an `Arc` of the current settings out of the `ArcSwap` (one
//! atomic increment) and holds no guard across an `.await`.

use std::{fmt, str::FromStr, time::Duration};

use rand::Rng;
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, MapAccess, Visitor, value::MapAccessDeserializer},
};

pub use crate::plans::{PlanConfig, PlanLinks, PlanShape};

/// Upper bound for any simulated delay (latency, hang, Retry-After), so that a
/// typo cannot park requests for days.
pub const MAX_DELAY_MS: u64 = 3_600_000;

/// Upper bound for tokens per response; the filler text is precomputed up to it.
pub const MAX_TOKENS: u32 = 32_768;

/// z-score of the 99th percentile of the standard normal distribution.
const Z_P99: f64 = 2.326;

/// A setting that makes no sense, with a message meant for a human.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub(crate) fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// Everything that shapes the simulator's answers.
///
/// `Default` is the friendliest provider imaginable: zero latency, 16 tokens
/// per response and no errors; plans are the plain schema instance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Delay before an answer (not applied to 429s, which come back at once).
    #[serde(default)]
    pub latency: Latency,
    /// Completion tokens per response, before the request's `max_tokens` cap.
    #[serde(default)]
    pub tokens: TokenRange,
    /// Injected failures.
    #[serde(default)]
    pub errors: ErrorConfig,
    /// Answers to `response_format: json_schema` requests.
    #[serde(default)]
    pub structured: StructuredConfig,
    /// How a `stream: true` answer spreads its latency over its chunks.
    #[serde(default)]
    pub stream: StreamConfig,
    /// The mix of plans answered to the planner's plan schema.
    #[serde(default)]
    pub plans: PlanConfig,
}

impl SimConfig {
    /// Rejects nonsense such as an error rate of 2.0 or p99 below p50.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.latency.validate()?;
        self.tokens.validate()?;
        self.errors.validate()?;
        self.structured.validate()?;
        self.stream.validate()?;
        self.plans.validate()
    }
}

/// Streaming (`stream: true`) answers: the first content chunk comes after
/// `ttft_fraction` of the sampled latency (the time to first token), the
/// other chunks are spread evenly over the rest, and the last chunk comes
/// when the whole latency has passed, so a streamed answer takes as long as
/// the same answer unstreamed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Share (0..=1) of the latency before the first content chunk.
    pub ttft_fraction: f64,
    /// Completion tokens (four characters each) per content chunk.
    pub chunk_tokens: u32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            ttft_fraction: 0.2,
            chunk_tokens: 1,
        }
    }
}

impl StreamConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.ttft_fraction.is_finite() && (0.0..=1.0).contains(&self.ttft_fraction)) {
            return Err(invalid(format!(
                "stream.ttft_fraction must be between 0 and 1, got {}",
                self.ttft_fraction
            )));
        }
        if !(1..=MAX_TOKENS).contains(&self.chunk_tokens) {
            return Err(invalid(format!(
                "stream.chunk_tokens must be between 1 and {MAX_TOKENS}, got {}",
                self.chunk_tokens
            )));
        }
        Ok(())
    }
}

/// Structured output (`response_format: {"type": "json_schema", ...}`): the
/// answer is a small JSON instance of the schema, or, for a fraction of
/// answers, that instance cut short (invalid JSON, as when a model runs out
/// of tokens), so that callers' validation and retry paths can be tested.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StructuredConfig {
    /// Fraction (0..=1) of structured answers that are invalid JSON. Spread
    /// evenly and deterministically: the k-th structured answer since the
    /// settings were last set is invalid when `ceil(k * rate)` steps up, so
    /// 0.5 makes the 1st, 3rd, 5th ... invalid and 1.0 makes all invalid.
    pub invalid_rate: f64,
}

/// Resolution of [`StructuredConfig::invalid_rate`] (parts per million).
const PPM: u64 = 1_000_000;

impl StructuredConfig {
    /// Whether the `k`-th (1-based) structured answer is made invalid.
    pub fn is_invalid(&self, k: u64) -> bool {
        let ppm = (self.invalid_rate.clamp(0.0, 1.0) * PPM as f64).round() as u64;
        let ceil = |n: u64| (n.saturating_mul(ppm)).div_ceil(PPM);
        k > 0 && ceil(k) > ceil(k - 1)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.invalid_rate.is_finite() && (0.0..=1.0).contains(&self.invalid_rate)) {
            return Err(invalid(format!(
                "structured.invalid_rate must be between 0 and 1, got {}",
                self.invalid_rate
            )));
        }
        Ok(())
    }
}

/// Latency distribution, in milliseconds, or a named [`LatencyProfile`].
///
/// JSON: `{"kind":"fixed","ms":N}`, `{"kind":"uniform","min_ms":A,"max_ms":B}`,
/// `{"kind":"lognormal","p50_ms":P50,"p99_ms":P99}`, or a profile's name as
/// a plain string (`"realistic"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always the same delay.
    Fixed { ms: u64 },
    /// Uniformly distributed between `min_ms` and `max_ms` (inclusive).
    Uniform { min_ms: u64, max_ms: u64 },
    /// Log-normal with the given median and 99th percentile.
    LogNormal { p50_ms: f64, p99_ms: f64 },
    /// A named distribution committed in this crate.
    Profile(LatencyProfile),
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Fixed { ms: 0 }
    }
}

/// Named latency distributions, per call (see [`LatencyProfile::distribution`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyProfile {
    /// No delay at all.
    Zero,
    /// Log-normal, p50 1.5 s, p99 8 s: a hosted model answering a few hundred tokens.
    Realistic,
    /// Log-normal, p50 30 s, p99 45 s: long answers from a loaded provider.
    /// Sized so 10,000 tasks in flight ask for less than this box completes
    /// (about 130 tasks/s at 2.4 calls per task), with its tail well inside
    /// the arms' 60 s LLM timeout.
    Slow,
}

impl LatencyProfile {
    /// Every profile, in the documented order.
    pub const ALL: [LatencyProfile; 3] = [
        LatencyProfile::Zero,
        LatencyProfile::Realistic,
        LatencyProfile::Slow,
    ];

    /// The profile's name in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LatencyProfile::Zero => "zero",
            LatencyProfile::Realistic => "realistic",
            LatencyProfile::Slow => "slow",
        }
    }

    /// The distribution behind the name.
    pub fn distribution(self) -> Latency {
        match self {
            LatencyProfile::Zero => Latency::Fixed { ms: 0 },
            LatencyProfile::Realistic => Latency::LogNormal {
                p50_ms: 1_500.0,
                p99_ms: 8_000.0,
            },
            LatencyProfile::Slow => Latency::LogNormal {
                p50_ms: 30_000.0,
                p99_ms: 45_000.0,
            },
        }
    }
}

impl FromStr for LatencyProfile {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LatencyProfile::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| {
                invalid(format!(
                    "unknown latency profile {s:?}: expected one of {}",
                    LatencyProfile::ALL.map(LatencyProfile::name).join(", ")
                ))
            })
    }
}

impl fmt::Display for LatencyProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The object forms of [`Latency`] in JSON.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum Distribution {
    Fixed { ms: u64 },
    Uniform { min_ms: u64, max_ms: u64 },
    LogNormal { p50_ms: f64, p99_ms: f64 },
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Latency::Fixed { ms } => Distribution::Fixed { ms }.serialize(s),
            Latency::Uniform { min_ms, max_ms } => {
                Distribution::Uniform { min_ms, max_ms }.serialize(s)
            }
            Latency::LogNormal { p50_ms, p99_ms } => {
                Distribution::LogNormal { p50_ms, p99_ms }.serialize(s)
            }
            Latency::Profile(profile) => s.serialize_str(profile.name()),
        }
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LatencyVisitor;

        impl<'de> Visitor<'de> for LatencyVisitor {
            type Value = Latency;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a latency profile name or a {\"kind\": ...} object")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Latency, E> {
                v.parse::<LatencyProfile>()
                    .map(Latency::Profile)
                    .map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Latency, A::Error> {
                Ok(
                    match Distribution::deserialize(MapAccessDeserializer::new(map))? {
                        Distribution::Fixed { ms } => Latency::Fixed { ms },
                        Distribution::Uniform { min_ms, max_ms } => {
                            Latency::Uniform { min_ms, max_ms }
                        }
                        Distribution::LogNormal { p50_ms, p99_ms } => {
                            Latency::LogNormal { p50_ms, p99_ms }
                        }
                    },
                )
            }
        }

        d.deserialize_any(LatencyVisitor)
    }
}

/// The `(mu, sigma)` of a log-normal distribution (of milliseconds) whose
/// median is `p50_ms` and whose 99th percentile is `p99_ms`.
pub fn lognormal_params(p50_ms: f64, p99_ms: f64) -> (f64, f64) {
    let mu = p50_ms.ln();
    let sigma = (p99_ms.ln() - mu) / Z_P99;
    (mu, sigma)
}

/// One draw from the standard normal distribution (Box-Muller).
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // 1 - [0, 1) is (0, 1]: never ln(0).
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Latency {
    /// The distribution itself: a profile's, or `self`.
    pub fn resolved(&self) -> Latency {
        match *self {
            Latency::Profile(profile) => profile.distribution(),
            other => other,
        }
    }

    /// True when no request is ever delayed (lets the hot path skip timers).
    pub fn is_zero(&self) -> bool {
        matches!(
            self.resolved(),
            Latency::Fixed { ms: 0 }
                | Latency::Uniform {
                    min_ms: 0,
                    max_ms: 0
                }
        )
    }

    /// Draws one delay, in whole milliseconds (the simulator reports its
    /// delays in milliseconds, exactly). Deterministic kinds do not touch
    /// the RNG.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        let ms = match self.resolved() {
            Latency::Fixed { ms } => ms as f64,
            Latency::Uniform { min_ms, max_ms } if min_ms >= max_ms => min_ms as f64,
            Latency::Uniform { min_ms, max_ms } => rng.random_range(min_ms..=max_ms) as f64,
            Latency::LogNormal { p50_ms, p99_ms } => {
                let (mu, sigma) = lognormal_params(p50_ms, p99_ms);
                (mu + sigma * standard_normal(rng)).exp()
            }
            Latency::Profile(_) => 0.0,
        };
        Duration::from_millis(ms.clamp(0.0, MAX_DELAY_MS as f64).round() as u64)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Latency::Fixed { ms } if ms > MAX_DELAY_MS => Err(invalid(format!(
                "latency.ms is {ms}, above the maximum of {MAX_DELAY_MS}"
            ))),
            Latency::Uniform { min_ms, max_ms } if min_ms > max_ms => Err(invalid(format!(
                "latency.min_ms ({min_ms}) is greater than latency.max_ms ({max_ms})"
            ))),
            Latency::Uniform { max_ms, .. } if max_ms > MAX_DELAY_MS => Err(invalid(format!(
                "latency.max_ms is {max_ms}, above the maximum of {MAX_DELAY_MS}"
            ))),
            Latency::LogNormal { p50_ms, .. } if !(p50_ms.is_finite() && p50_ms > 0.0) => {
                Err(invalid(format!(
                    "latency.p50_ms must be a positive number, got {p50_ms}"
                )))
            }
            Latency::LogNormal { p50_ms, p99_ms } if !(p99_ms.is_finite() && p99_ms >= p50_ms) => {
                Err(invalid(format!(
                    "latency.p99_ms ({p99_ms}) must be at least latency.p50_ms ({p50_ms})"
                )))
            }
            Latency::LogNormal { p99_ms, .. } if p99_ms > MAX_DELAY_MS as f64 => Err(invalid(
                format!("latency.p99_ms is {p99_ms}, above the maximum of {MAX_DELAY_MS}"),
            )),
            _ => Ok(()),
        }
    }
}

/// `fixed:MS`, plain `MS`, `uniform:MIN,MAX`, `lognormal:P50,P99` or a
/// profile name (`zero`, `realistic`, `slow`).
impl FromStr for Latency {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(profile) = s.parse::<LatencyProfile>() {
            return Ok(Latency::Profile(profile));
        }
        let (kind, args) = s.split_once(':').unwrap_or(("fixed", s));
        let syntax = || {
            invalid(format!(
                "invalid latency {s:?}: expected fixed:MS, uniform:MIN,MAX, lognormal:P50,P99 \
                 or a profile name ({})",
                LatencyProfile::ALL.map(LatencyProfile::name).join(", ")
            ))
        };
        let pair = || -> Result<(&str, &str), ConfigError> {
            let (a, b) = args.split_once(',').ok_or_else(syntax)?;
            Ok((a.trim(), b.trim()))
        };
        let latency = match kind.trim() {
            "fixed" => Latency::Fixed {
                ms: args.trim().parse().map_err(|_| syntax())?,
            },
            "uniform" => {
                let (a, b) = pair()?;
                Latency::Uniform {
                    min_ms: a.parse().map_err(|_| syntax())?,
                    max_ms: b.parse().map_err(|_| syntax())?,
                }
            }
            "lognormal" => {
                let (a, b) = pair()?;
                Latency::LogNormal {
                    p50_ms: a.parse().map_err(|_| syntax())?,
                    p99_ms: b.parse().map_err(|_| syntax())?,
                }
            }
            _ => return Err(syntax()),
        };
        latency.validate()?;
        Ok(latency)
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latency::Fixed { ms } => write!(f, "fixed:{ms}"),
            Latency::Uniform { min_ms, max_ms } => write!(f, "uniform:{min_ms},{max_ms}"),
            Latency::LogNormal { p50_ms, p99_ms } => write!(f, "lognormal:{p50_ms},{p99_ms}"),
            Latency::Profile(profile) => write!(f, "{profile}"),
        }
    }
}

/// Completion tokens per response, uniformly distributed in `min..=max`
/// (`min == max` for a fixed count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRange {
    pub min: u32,
    pub max: u32,
}

impl Default for TokenRange {
    fn default() -> Self {
        TokenRange { min: 16, max: 16 }
    }
}

impl TokenRange {
    /// Draws one token count. A fixed count does not touch the RNG.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        if self.min >= self.max {
            self.min
        } else {
            rng.random_range(self.min..=self.max)
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.min == 0 {
            return Err(invalid("tokens.min must be at least 1"));
        }
        if self.min > self.max {
            return Err(invalid(format!(
                "tokens.min ({}) is greater than tokens.max ({})",
                self.min, self.max
            )));
        }
        if self.max > MAX_TOKENS {
            return Err(invalid(format!(
                "tokens.max is {}, above the maximum of {MAX_TOKENS}",
                self.max
            )));
        }
        Ok(())
    }
}

/// `N` or `MIN-MAX`.
impl FromStr for TokenRange {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || invalid(format!("invalid token count {s:?}: expected N or MIN-MAX"));
        let (min, max) = s.trim().split_once('-').unwrap_or((s.trim(), s.trim()));
        let range = TokenRange {
            min: min.trim().parse().map_err(|_| syntax())?,
            max: max.trim().parse().map_err(|_| syntax())?,
        };
        range.validate()?;
        Ok(range)
    }
}

impl fmt::Display for TokenRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

/// Injected failures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErrorConfig {
    /// Probability (0..=1) that a valid chat request fails.
    pub rate: f64,
    /// Relative weights of the failure kinds (a kind left out weighs 0).
    pub kinds: ErrorWeights,
    /// Value of the `Retry-After` header on 429 answers, in seconds.
    pub retry_after_s: u64,
    /// How long a `timeout` failure hangs before answering 504, in seconds.
    pub timeout_s: u64,
}

impl Default for ErrorConfig {
    fn default() -> Self {
        ErrorConfig {
            rate: 0.0,
            kinds: ErrorWeights::STANDARD,
            retry_after_s: 1,
            timeout_s: 600,
        }
    }
}

/// The kinds of failure the simulator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 429 with `Retry-After`, answered at once.
    RateLimited,
    /// 500 after the usual latency.
    Server,
    /// The request hangs for `timeout_s`, then 504.
    Timeout,
}

impl ErrorConfig {
    /// Decides whether this request fails, and how.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<ErrorKind> {
        if self.rate <= 0.0 || (self.rate < 1.0 && rng.random::<f64>() >= self.rate) {
            return None;
        }
        let w = self.kinds;
        let mut x = rng.random::<f64>() * w.total();
        for (weight, kind) in [
            (w.rate_limited, ErrorKind::RateLimited),
            (w.server, ErrorKind::Server),
        ] {
            if x < weight {
                return Some(kind);
            }
            x -= weight;
        }
        if w.timeout > 0.0 {
            Some(ErrorKind::Timeout)
        } else if w.server > 0.0 {
            Some(ErrorKind::Server)
        } else {
            Some(ErrorKind::RateLimited)
        }
    }

    /// `Retry-After` as a duration.
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(self.retry_after_s)
    }

    /// How long a `timeout` failure hangs.
    pub fn hang(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.rate.is_finite() && (0.0..=1.0).contains(&self.rate)) {
            return Err(invalid(format!(
                "errors.rate must be between 0 and 1, got {}",
                self.rate
            )));
        }
        self.kinds.validate()?;
        if self.rate > 0.0 && self.kinds.total() <= 0.0 {
            return Err(invalid(
                "errors.rate is above 0 but every weight in errors.kinds is 0",
            ));
        }
        let max_s = MAX_DELAY_MS / 1000;
        if self.retry_after_s > max_s {
            return Err(invalid(format!(
                "errors.retry_after_s is {}, above the maximum of {max_s}",
                self.retry_after_s
            )));
        }
        if self.timeout_s > max_s {
            return Err(invalid(format!(
                "errors.timeout_s is {}, above the maximum of {max_s}",
                self.timeout_s
            )));
        }
        Ok(())
    }
}

/// Relative weights of the failure kinds, keyed `"429"`, `"500"` and
/// `"timeout"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorWeights {
    #[serde(rename = "429", default)]
    pub rate_limited: f64,
    #[serde(rename = "500", default)]
    pub server: f64,
    #[serde(default)]
    pub timeout: f64,
}

impl ErrorWeights {
    /// 429 and 500 equally likely, no timeouts.
    pub const STANDARD: ErrorWeights = ErrorWeights {
        rate_limited: 1.0,
        server: 1.0,
        timeout: 0.0,
    };

    fn total(&self) -> f64 {
        self.rate_limited + self.server + self.timeout
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, w) in [
            ("429", self.rate_limited),
            ("500", self.server),
            ("timeout", self.timeout),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(invalid(format!(
                    "errors.kinds.{name} must be a non-negative number, got {w}"
                )));
            }
        }
        Ok(())
    }
}

impl Default for ErrorWeights {
    fn default() -> Self {
        ErrorWeights::STANDARD
    }
}

/// `429=1,500=1,timeout=0`; a kind left out weighs 0.
impl FromStr for ErrorWeights {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights = ErrorWeights {
            rate_limited: 0.0,
            server: 0.0,
            timeout: 0.0,
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let syntax = || {
                invalid(format!(
                    "invalid error kind {item:?}: expected KIND=WEIGHT with KIND one of 429, 500, timeout"
                ))
            };
            let (kind, weight) = item.split_once('=').ok_or_else(syntax)?;
            let weight: f64 = weight.trim().parse().map_err(|_| syntax())?;
            match kind.trim() {
                "429" => weights.rate_limited = weight,
                "500" => weights.server = weight,
                "timeout" => weights.timeout = weight,
                _ => return Err(syntax()),
            }
        }
        weights.validate()?;
        Ok(weights)
    }
}

impl fmt::Display for ErrorWeights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "429={},500={},timeout={}",
            self.rate_limited, self.server, self.timeout
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    fn percentile(sorted: &[f64], p: f64) -> f64 {
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }

    #[test]
    fn lognormal_params_follow_the_formula() {
        let (mu, sigma) = lognormal_params(200.0, 2000.0);
        assert!((mu - 200f64.ln()).abs() < 1e-12);
        assert!((sigma - (2000f64.ln() - 200f64.ln()) / 2.326).abs() < 1e-12);
        // p99 == p50 degenerates to a fixed delay.
        assert_eq!(lognormal_params(50.0, 50.0).1, 0.0);
    }

    #[test]
    fn lognormal_samples_hit_p50_and_p99() {
        let latency = Latency::LogNormal {
            p50_ms: 200.0,
            p99_ms: 2000.0,
        };
        let mut rng = StdRng::seed_from_u64(42);
        let mut ms: Vec<f64> = (0..100_000)
            .map(|_| latency.sample(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let p50 = percentile(&ms, 0.50);
        let p99 = percentile(&ms, 0.99);
        assert!((p50 / 200.0 - 1.0).abs() < 0.05, "empirical p50 {p50}");
        assert!((p99 / 2000.0 - 1.0).abs() < 0.10, "empirical p99 {p99}");
    }

    #[test]
    fn uniform_and_token_samples_stay_in_range() {
        let mut rng = StdRng::seed_from_u64(7);
        let latency = Latency::Uniform {
            min_ms: 10,
            max_ms: 20,
        };
        let tokens = TokenRange { min: 5, max: 9 };
        for _ in 0..1000 {
            let d = latency.sample(&mut rng);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20));
            assert!((5..=9).contains(&tokens.sample(&mut rng)));
        }
    }

    #[test]
    fn error_pick_respects_rate_and_weights() {
        let mut rng = StdRng::seed_from_u64(1);
        let only_500 = ErrorConfig {
            rate: 1.0,
            kinds: "500=1".parse().unwrap(),
            ..ErrorConfig::default()
        };
        assert!((0..1000).all(|_| only_500.pick(&mut rng) == Some(ErrorKind::Server)));
        let none = ErrorConfig::default();
        assert!((0..1000).all(|_| none.pick(&mut rng).is_none()));
        let half = ErrorConfig {
            rate: 0.5,
            ..ErrorConfig::default()
        };
        let failed = (0..10_000)
            .filter(|_| half.pick(&mut rng).is_some())
            .count();
        assert!((4_500..5_500).contains(&failed), "{failed} failures");
    }

    #[test]
    fn validation_rejects_nonsense() {
        let mut c = SimConfig::default();
        c.validate().unwrap();
        c.errors.rate = 2.0;
        assert!(c.validate().unwrap_err().0.contains("errors.rate"));
        c.errors.rate = 0.5;
        c.errors.kinds = "429=0".parse().unwrap();
        assert!(c.validate().is_err());
        let c = SimConfig {
            latency: Latency::LogNormal {
                p50_ms: 200.0,
                p99_ms: 100.0,
            },
            ..SimConfig::default()
        };
        assert!(c.validate().unwrap_err().0.contains("p99_ms"));
        let c = SimConfig {
            tokens: TokenRange { min: 10, max: 5 },
            ..SimConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn cli_syntax_round_trips() {
        for s in ["fixed:5", "uniform:1,9", "lognormal:200,2000"] {
            assert_eq!(s.parse::<Latency>().unwrap().to_string(), s);
        }
        assert_eq!("7".parse::<Latency>().unwrap(), Latency::Fixed { ms: 7 });
        assert_eq!(
            "50-200".parse::<TokenRange>().unwrap().to_string(),
            "50-200"
        );
        assert_eq!(
            "500=2,timeout=1".parse::<ErrorWeights>().unwrap(),
            ErrorWeights {
                rate_limited: 0.0,
                server: 2.0,
                timeout: 1.0
            }
        );
        assert!("lognormal:200,100".parse::<Latency>().is_err());
        assert!("503=1".parse::<ErrorWeights>().is_err());
    }

    #[test]
    fn invalid_structured_answers_are_spread_evenly() {
        let pattern = |rate: f64| -> Vec<bool> {
            let c = StructuredConfig { invalid_rate: rate };
            (1..=10).map(|k| c.is_invalid(k)).collect()
        };
        assert!(pattern(0.0).iter().all(|i| !i));
        assert!(pattern(1.0).iter().all(|i| *i));
        assert_eq!(
            pattern(0.5),
            [
                true, false, true, false, true, false, true, false, true, false
            ]
        );
        let third = pattern(0.3).iter().filter(|i| **i).count();
        assert_eq!(third, 3);
        let c = StructuredConfig { invalid_rate: 0.1 };
        assert_eq!((1..=1000).filter(|k| c.is_invalid(*k)).count(), 100);
        let mut bad = SimConfig::default();
        bad.structured.invalid_rate = 1.5;
        assert!(
            bad.validate()
                .unwrap_err()
                .0
                .contains("structured.invalid_rate")
        );
    }

    #[test]
    fn latency_profiles_are_the_documented_distributions() {
        assert_eq!(
            LatencyProfile::Zero.distribution(),
            Latency::Fixed { ms: 0 }
        );
        assert!(Latency::Profile(LatencyProfile::Zero).is_zero());
        assert!(!Latency::Profile(LatencyProfile::Realistic).is_zero());
        // realistic: mu = ln 1500 = 7.313, sigma = ln(8000/1500) / 2.326 = 0.720.
        let Latency::LogNormal { p50_ms, p99_ms } = LatencyProfile::Realistic.distribution() else {
            panic!("realistic is log-normal");
        };
        let (mu, sigma) = lognormal_params(p50_ms, p99_ms);
        assert!((mu - 7.313).abs() < 1e-3, "{mu}");
        assert!((sigma - 0.720).abs() < 1e-3, "{sigma}");
        // slow: mu = ln 30000 = 10.309, sigma = ln 1.5 / 2.326 = 0.174.
        let Latency::LogNormal { p50_ms, p99_ms } = LatencyProfile::Slow.distribution() else {
            panic!("slow is log-normal");
        };
        let (mu, sigma) = lognormal_params(p50_ms, p99_ms);
        assert!((mu - 10.309).abs() < 1e-3, "{mu}");
        assert!((sigma - 0.174).abs() < 1e-3, "{sigma}");
        for (profile, p50, p99) in [
            (LatencyProfile::Realistic, 1_500.0, 8_000.0),
            (LatencyProfile::Slow, 30_000.0, 45_000.0),
        ] {
            let latency = Latency::Profile(profile);
            let mut rng = StdRng::seed_from_u64(11);
            let mut ms: Vec<f64> = (0..100_000)
                .map(|_| {
                    let d = latency.sample(&mut rng);
                    assert_eq!(d.subsec_micros() % 1000, 0, "whole milliseconds");
                    d.as_secs_f64() * 1000.0
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            let (got50, got99) = (percentile(&ms, 0.50), percentile(&ms, 0.99));
            assert!((got50 / p50 - 1.0).abs() < 0.05, "{profile}: p50 {got50}");
            assert!((got99 / p99 - 1.0).abs() < 0.10, "{profile}: p99 {got99}");
        }
    }

    #[test]
    fn latency_profiles_by_name_in_json_and_flags() {
        let c: SimConfig = serde_json::from_str(r#"{"latency":"realistic"}"#).unwrap();
        assert_eq!(c.latency, Latency::Profile(LatencyProfile::Realistic));
        assert_eq!(
            serde_json::to_value(&c).unwrap()["latency"],
            serde_json::json!("realistic")
        );
        let c: SimConfig = serde_json::from_str(r#"{"latency":{"kind":"fixed","ms":3}}"#).unwrap();
        assert_eq!(c.latency, Latency::Fixed { ms: 3 });
        let error = serde_json::from_str::<SimConfig>(r#"{"latency":"snappy"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("zero, realistic, slow"), "{error}");
        assert!(serde_json::from_str::<SimConfig>(r#"{"latency":5}"#).is_err());
        assert!(
            serde_json::from_str::<SimConfig>(r#"{"latency":{"kind":"fixed","ms":1,"x":2}}"#)
                .is_err()
        );
        for name in ["zero", "realistic", "slow"] {
            let latency: Latency = name.parse().unwrap();
            assert_eq!(latency.to_string(), name);
        }
    }

    #[test]
    fn stream_settings_are_checked() {
        let mut c = SimConfig::default();
        assert_eq!(c.stream.ttft_fraction, 0.2);
        assert_eq!(c.stream.chunk_tokens, 1);
        c.stream.ttft_fraction = 1.5;
        assert!(c.validate().unwrap_err().0.contains("stream.ttft_fraction"));
        c.stream.ttft_fraction = 0.5;
        c.stream.chunk_tokens = 0;
        assert!(c.validate().unwrap_err().0.contains("stream.chunk_tokens"));
    }

    #[test]
    fn json_shape_is_the_documented_one() {
        let json = r#"{"latency":{"kind":"lognormal","p50_ms":200,"p99_ms":2000},
            "tokens":{"min":50,"max":200},
            "errors":{"rate":0.1,"kinds":{"429":1,"500":1,"timeout":0}}}"#;
        let c: SimConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.tokens, TokenRange { min: 50, max: 200 });
        assert_eq!(c.errors.retry_after_s, 1);
        let back: SimConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<SimConfig>(r#"{"errors":{"rat":1}}"#).is_err());
        // A partial `kinds` object means "only these kinds".
        let c: SimConfig =
            serde_json::from_str(r#"{"errors":{"rate":1,"kinds":{"500":1}}}"#).unwrap();
        assert_eq!(c.errors.kinds.rate_limited, 0.0);
    }
}
