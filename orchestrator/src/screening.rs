//! `ReflexScreen`: every submitted task passes the reflex layer first.
//!
//! Blocked input makes the task `rejected`, with the reasons as types and
//! categories only. When the reflex layer cannot be reached (or its circuit
//! is open) the orchestrator fails closed (503) by default, or fails open by
//! configuration; `octollm_reflex_screenings_total{outcome}` shows which.

use std::time::Duration;

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde_json::{Value, json};

use crate::circuit::CircuitBreaker;

pub const OUTCOMES: [&str; 4] = [
    "allowed",
    "rejected",
    "unavailable_closed",
    "unavailable_open",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screening {
    Allowed,
    /// Blocked: a human-readable reason naming categories and types only.
    Rejected(String),
    /// The reflex layer was unavailable and we fail open.
    Unscreened,
}

#[derive(Debug, thiserror::Error)]
#[error("the reflex layer is unavailable ({0}); tasks cannot be screened")]
pub struct Unavailable(String);

pub struct ReflexScreen {
    http: reqwest::Client,
    url: String,
    token: String,
    fail_open: bool,
    breaker: CircuitBreaker,
    outcomes: IntCounterVec,
}

impl ReflexScreen {
    pub fn new(
        url: &str,
        token: String,
        fail_open: bool,
        timeout: Duration,
        registry: &Registry,
    ) -> Result<Self, anyhow::Error> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "octollm_reflex_screenings_total",
                "Task screenings by outcome.",
            ),
            &["outcome"],
        )?;
        let state = IntGauge::new(
            "octollm_reflex_circuit_state",
            "Circuit to the reflex layer: 0 closed, 1 half-open, 2 open.",
        )?;
        registry.register(Box::new(outcomes.clone()))?;
        registry.register(Box::new(state.clone()))?;
        for outcome in OUTCOMES {
            outcomes.with_label_values(&[outcome]);
        }
        Ok(Self {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            url: format!("{}/v1/reflex/check", url.trim_end_matches('/')),
            token,
            fail_open,
            breaker: CircuitBreaker::new(5, Duration::from_secs(10), state),
            outcomes,
        })
    }

    pub async fn screen(&self, text: &str) -> Result<Screening, Unavailable> {
        let answer = if self.breaker.allow() {
            let answer = self.call(text).await;
            match &answer {
                Ok(_) => self.breaker.record_success(),
                Err(_) => self.breaker.record_failure(),
            }
            answer
        } else {
            Err("circuit open".to_owned())
        };
        let outcome = match answer {
            Ok(screening) => Ok(screening),
            Err(reason) if self.fail_open => {
                tracing::warn!(%reason, "reflex layer unavailable: accepting the task unscreened (fail open)");
                Ok(Screening::Unscreened)
            }
            Err(reason) => {
                tracing::warn!(%reason, "reflex layer unavailable: refusing the task (fail closed)");
                Err(Unavailable(reason))
            }
        };
        let label = match &outcome {
            Ok(Screening::Allowed) => "allowed",
            Ok(Screening::Rejected(_)) => "rejected",
            Ok(Screening::Unscreened) => "unavailable_open",
            Err(_) => "unavailable_closed",
        };
        self.outcomes.with_label_values(&[label]).inc();
        outcome
    }

    async fn call(&self, text: &str) -> Result<Screening, String> {
        let mut request = self.http.post(&self.url).bearer_auth(&self.token);
        if let Some(traceparent) = service_kit::telemetry::current_traceparent() {
            request = request.header("traceparent", traceparent);
        }
        let response = request
            .json(&json!({ "text": text }))
            .send()
            .await
            .map_err(|e| format!("cannot reach it: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("it answered {status}"));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("unreadable answer: {e}"))?;
        if body["decision"] != "block" {
            return Ok(Screening::Allowed);
        }
        let mut categories: Vec<&str> = body["injection"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["category"].as_str())
            .collect();
        categories.dedup();
        let mut pii: Vec<&str> = body["pii"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["type"].as_str())
            .collect();
        pii.sort_unstable();
        pii.dedup();
        let mut reason = format!(
            "blocked by the reflex layer: prompt injection ({})",
            categories.join(", ")
        );
        if !pii.is_empty() {
            reason.push_str(&format!("; PII present ({})", pii.join(", ")));
        }
        Ok(Screening::Rejected(reason))
    }
}
