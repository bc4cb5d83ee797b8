//! Integration tests against a real llm-sim on a loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod deadline;
mod retries;
mod streaming;
mod success;

use std::time::Duration;

use llm_client::{ChatMessage, ChatRequest, LlmClient, LlmConfig};
use llm_sim::{ErrorConfig, SimConfig, SimHandle};
use prometheus::Registry;

/// A client for `sim` with fast backoff, adjusted by `tweak`.
fn client_for(sim: &SimHandle, tweak: impl FnOnce(&mut LlmConfig)) -> (LlmClient, Registry) {
    let mut config = LlmConfig::new(sim.base_url());
    config.provider = "sim".to_owned();
    config.backoff_base = Duration::from_millis(1);
    config.backoff_cap = Duration::from_millis(10);
    tweak(&mut config);
    let registry = Registry::new();
    let client = LlmClient::new(config, &registry).unwrap();
    (client, registry)
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("You are a planner."),
        ChatMessage::user("Split the task into steps, please."),
    ])
}

/// Every failure is of `kinds`, with `Retry-After: 0`.
fn failing(rate: f64, kinds: &str) -> SimConfig {
    SimConfig {
        errors: ErrorConfig {
            rate,
            kinds: kinds.parse().unwrap(),
            retry_after_s: 0,
            timeout_s: 600,
        },
        ..SimConfig::default()
    }
}

/// The value of one sample of `name` whose labels include `labels` (0 if absent).
fn metric(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric().iter())
        .filter(|m| {
            labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            })
        })
        .map(|m| {
            if m.get_histogram().is_some() {
                m.get_histogram().sample_count() as f64
            } else {
                m.get_counter().value()
            }
        })
        .sum()
}

fn calls(registry: &Registry, status: &str) -> f64 {
    metric(
        registry,
        "octollm_llm_api_calls_total",
        &[("provider", "sim"), ("model", "sim-1"), ("status", status)],
    )
}
