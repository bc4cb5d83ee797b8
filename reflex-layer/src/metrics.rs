//! The reflex layer's metrics (docs/contracts.md, "Metrics"). Every label set
//! is created at start-up, so rates and alerts see zeros rather than missing
//! series.

use detection::{InjectionCategory, PiiKind, Severity};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct ReflexMetrics {
    pub decisions: IntCounterVec,
    pub pii: IntCounterVec,
    pub injection: IntCounterVec,
    pub injection_blocks: IntCounter,
    pub cache_hits: IntCounterVec,
    pub cache_misses: IntCounterVec,
    pub cache_evictions: IntCounterVec,
    pub rate_limited: IntCounterVec,
}

pub const DECISIONS: [&str; 3] = ["allow", "block", "rate_limited"];
pub const CACHES: [&str; 2] = ["l1", "l2"];
pub const RATE_LIMIT_SCOPES: [&str; 2] = ["user", "ip"];

impl ReflexMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let metrics = Self {
            decisions: counter(
                "octollm_reflex_decisions_total",
                "Screening answers by decision.",
                &["decision"],
            )?,
            pii: counter(
                "octollm_pii_detections_total",
                "PII findings by type.",
                &["pii_type"],
            )?,
            injection: counter(
                "octollm_injection_detections_total",
                "Prompt-injection findings by category and severity.",
                &["category", "severity"],
            )?,
            injection_blocks: IntCounter::new(
                "octollm_injection_blocks_total",
                "Requests blocked for prompt injection.",
            )?,
            cache_hits: counter(
                "octollm_cache_hits_total",
                "Decision-cache hits by level.",
                &["cache"],
            )?,
            cache_misses: counter(
                "octollm_cache_misses_total",
                "Decision-cache misses by level.",
                &["cache"],
            )?,
            cache_evictions: counter(
                "octollm_cache_evictions_total",
                "Decisions evicted for lack of room, by level.",
                &["cache"],
            )?,
            rate_limited: counter(
                "octollm_rate_limit_rejections_total",
                "Requests refused by a rate limit, by scope.",
                &["scope"],
            )?,
        };
        registry.register(Box::new(metrics.decisions.clone()))?;
        registry.register(Box::new(metrics.pii.clone()))?;
        registry.register(Box::new(metrics.injection.clone()))?;
        registry.register(Box::new(metrics.injection_blocks.clone()))?;
        registry.register(Box::new(metrics.cache_hits.clone()))?;
        registry.register(Box::new(metrics.cache_misses.clone()))?;
        registry.register(Box::new(metrics.cache_evictions.clone()))?;
        registry.register(Box::new(metrics.rate_limited.clone()))?;
        for decision in DECISIONS {
            metrics.decisions.with_label_values(&[decision]);
        }
        for kind in PiiKind::ALL {
            metrics.pii.with_label_values(&[kind.as_str()]);
        }
        for category in InjectionCategory::ALL {
            for severity in Severity::ALL {
                metrics
                    .injection
                    .with_label_values(&[category.as_str(), severity.as_str()]);
            }
        }
        for cache in CACHES {
            metrics.cache_hits.with_label_values(&[cache]);
            metrics.cache_misses.with_label_values(&[cache]);
            metrics.cache_evictions.with_label_values(&[cache]);
        }
        for scope in RATE_LIMIT_SCOPES {
            metrics.rate_limited.with_label_values(&[scope]);
        }
        Ok(metrics)
    }
}
