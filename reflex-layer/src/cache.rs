//! `DecisionCache`: screening results in-process (L1, bounded, with TTL) in
//! front of Redis (L2, shared by replicas).
//!
//! The key is a keyed hash (HMAC) of the checks asked for and the exact text;
//! the value is the decision and the findings as types and offsets. Neither
//! the text nor any PII value is ever stored. Offsets must apply to the text
//! being answered, so the key covers the exact bytes rather than a lossy
//! normalisation; the detector itself normalises confusables before matching.

use std::sync::Arc;
use std::time::Duration;

use detection::{
    Checks, Decision, InjectionCategory, InjectionFinding, PiiFinding, PiiKind, Scan, Severity,
};
use moka::future::Cache;
use moka::notification::RemovalCause;
use serde_json::{Value, json};

use crate::keys::Keyring;
use crate::metrics::ReflexMetrics;
use crate::redis_link::RedisLink;

pub type CacheKey = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    L1,
    L2,
}

#[derive(Clone)]
pub struct DecisionCache {
    l1: Cache<CacheKey, Arc<Scan>>,
    /// Texts shorter than this are not cached at all: scanning them costs
    /// less than keeping them (measured: caching unique short texts raised
    /// the p99 at 5,000 req/s from 0.8 ms to 1.6 ms as L1 filled).
    l1_min_bytes: usize,
    /// Texts shorter than this skip L2: scanning them is cheaper than a round trip.
    l2_min_bytes: usize,
    redis: RedisLink,
    ttl: Duration,
    keys: Keyring,
    metrics: ReflexMetrics,
}

impl DecisionCache {
    pub fn new(
        capacity: u64,
        ttl: Duration,
        l1_min_bytes: usize,
        l2_min_bytes: usize,
        redis: RedisLink,
        keys: Keyring,
        metrics: ReflexMetrics,
    ) -> Self {
        let evictions = metrics.cache_evictions.with_label_values(&["l1"]);
        let l1 = Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .eviction_listener(move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    evictions.inc();
                }
            })
            .build();
        Self {
            l1,
            l1_min_bytes,
            l2_min_bytes,
            redis,
            ttl,
            keys,
            metrics,
        }
    }

    pub fn key(&self, text: &str, checks: &Checks) -> CacheKey {
        self.keys.mac(&[
            b"scan-v1",
            &[u8::from(checks.pii), u8::from(checks.injection)],
            text.as_bytes(),
        ])
    }

    fn redis_key(key: &CacheKey) -> String {
        format!("reflex:scan:v1:{}", hex::encode(key))
    }

    /// For texts of `l1_min_bytes` or more: L1, then (from `l2_min_bytes`) L2,
    /// filling L1 on an L2 hit. Shorter texts are always scanned.
    pub async fn get(&self, key: &CacheKey, text_len: usize) -> Option<(Arc<Scan>, Level)> {
        if text_len < self.l1_min_bytes {
            return None;
        }
        if let Some(scan) = self.l1.get(key).await {
            self.metrics.cache_hits.with_label_values(&["l1"]).inc();
            return Some((scan, Level::L1));
        }
        self.metrics.cache_misses.with_label_values(&["l1"]).inc();
        if text_len < self.l2_min_bytes {
            return None;
        }
        let redis_key = Self::redis_key(key);
        let stored = self
            .redis
            .call(|mut c| async move {
                redis::cmd("GET")
                    .arg(redis_key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await;
        match stored.ok().flatten().and_then(|text| decode(&text)) {
            Some(scan) => {
                self.metrics.cache_hits.with_label_values(&["l2"]).inc();
                let scan = Arc::new(scan);
                self.l1.insert(*key, scan.clone()).await;
                Some((scan, Level::L2))
            }
            None => {
                self.metrics.cache_misses.with_label_values(&["l2"]).inc();
                None
            }
        }
    }

    /// Stores in L1 now and (for long texts) in L2 in the background,
    /// never delaying the answer.
    pub async fn put(&self, key: CacheKey, scan: Arc<Scan>, text_len: usize) {
        if text_len < self.l1_min_bytes {
            return;
        }
        let value = encode(&scan).to_string();
        self.l1.insert(key, scan).await;
        if text_len < self.l2_min_bytes {
            return;
        }
        let redis = self.redis.clone();
        let redis_key = Self::redis_key(&key);
        let ttl = self.ttl.as_secs().max(1);
        tokio::spawn(async move {
            let stored = redis
                .call(|mut c| async move {
                    redis::cmd("SET")
                        .arg(redis_key)
                        .arg(value)
                        .arg("EX")
                        .arg(ttl)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
            if let Err(error) = stored {
                tracing::debug!(%error, "decision not stored in L2");
            }
        });
    }
}

/// Compact JSON: decision, then [type, start, end, confidence] and
/// [category, severity, confidence, start, end] tuples. No text.
fn encode(scan: &Scan) -> Value {
    json!({
        "d": scan.decision.as_str(),
        "p": scan.pii.iter().map(|f| json!([f.kind.as_str(), f.start, f.end, f.confidence])).collect::<Vec<_>>(),
        "i": scan.injection.iter().map(|f| json!([f.category.as_str(), f.severity.as_str(), f.confidence, f.start, f.end])).collect::<Vec<_>>(),
    })
}

fn decode(text: &str) -> Option<Scan> {
    let value: Value = serde_json::from_str(text).ok()?;
    let decision = match value["d"].as_str()? {
        "block" => Decision::Block,
        _ => Decision::Allow,
    };
    let usize_at = |v: &Value, i: usize| v[i].as_u64().and_then(|n| usize::try_from(n).ok());
    let f32_at = |v: &Value, i: usize| v[i].as_f64().map(|n| n as f32);
    let pii = value["p"]
        .as_array()?
        .iter()
        .map(|f| {
            Some(PiiFinding {
                kind: PiiKind::from_name(f[0].as_str()?)?,
                start: usize_at(f, 1)?,
                end: usize_at(f, 2)?,
                confidence: f32_at(f, 3)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let injection = value["i"]
        .as_array()?
        .iter()
        .map(|f| {
            Some(InjectionFinding {
                category: InjectionCategory::from_name(f[0].as_str()?)?,
                severity: Severity::ALL
                    .into_iter()
                    .find(|s| Some(s.as_str()) == f[1].as_str())?,
                confidence: f32_at(f, 2)?,
                start: usize_at(f, 3)?,
                end: usize_at(f, 4)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Scan {
        pii,
        injection,
        decision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_holds_no_text() {
        let scan = Scan {
            pii: vec![PiiFinding {
                kind: PiiKind::ALL[0],
                start: 3,
                end: 20,
                confidence: 0.75,
            }],
            injection: vec![InjectionFinding {
                category: InjectionCategory::ALL[0],
                severity: Severity::High,
                confidence: 0.5,
                start: 0,
                end: 9,
            }],
            decision: Decision::Block,
        };
        let text = encode(&scan).to_string();
        assert_eq!(decode(&text), Some(scan));
        assert!(decode("{\"d\":\"allow\",\"p\":[[\"nonsense\",1,2,0.5]],\"i\":[]}").is_none());
    }
}
