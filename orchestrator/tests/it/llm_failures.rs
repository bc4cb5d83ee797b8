//! LLM errors are retried within the budget; then the task fails clearly and
//! never hangs past its timeout.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Orchestrator, postgres, sim_config};

#[tokio::test]
async fn persistent_500s_fail_the_task_with_a_clear_error() {
    let pg = postgres().await;
    let llm = llm_sim::spawn(sim_config(
        json!({"errors": {"rate": 1.0, "kinds": {"500": 1}}}),
    ))
    .await
    .unwrap();
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &["--llm-max-retries", "2"]).await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let id = orch.submit_goal("doomed").await;
    let task = orch.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["kind"], "llm_error");
    let message = task["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("500") && message.contains("3 attempts"),
        "{message}"
    );
    let metrics = orch.metrics().await;
    assert!(metrics.contains("octollm_llm_api_calls_total{model=\"sim-1\",provider=\"openai-compatible\",status=\"server_error\"} 3"), "{metrics}");
}

#[tokio::test]
async fn rate_limits_are_retried_until_the_provider_recovers() {
    let pg = postgres().await;
    let llm = llm_sim::spawn(sim_config(
        json!({"errors": {"rate": 1.0, "kinds": {"429": 1}, "retry_after_s": 1}}),
    ))
    .await
    .unwrap();
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &["--llm-max-retries", "5"]).await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let id = orch.submit_goal("patient").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    llm.set_config(llm_sim::SimConfig::default()).unwrap();
    let task = orch.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let metrics = orch.metrics().await;
    assert!(metrics.contains("status=\"rate_limited\"}"), "{metrics}");
}

#[tokio::test]
async fn a_hanging_provider_ends_in_timeout_at_the_budget() {
    let pg = postgres().await;
    let llm = llm_sim::spawn(sim_config(
        json!({"errors": {"rate": 1.0, "kinds": {"timeout": 1}}}),
    ))
    .await
    .unwrap();
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &[]).await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let started = Instant::now();
    let id = orch
        .submit(json!({"goal": "wait forever", "budget": {"max_time_seconds": 3}}))
        .await;
    let task = orch.wait_terminal(&id, Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert!(
        matches!(task["status"].as_str(), Some("timeout") | Some("failed")),
        "{task}"
    );
    assert!(
        took < Duration::from_secs(8),
        "took {took:?} for a 3 s budget: {task}"
    );
}

#[tokio::test]
async fn the_token_budget_is_enforced() {
    let pg = postgres().await;
    let llm = llm_sim::spawn(sim_config(json!({"tokens": {"min": 500, "max": 500}})))
        .await
        .unwrap();
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &[]).await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let id = orch
        .submit(json!({"goal": "talk a lot", "budget": {"max_tokens": 300}}))
        .await;
    let task = orch.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["kind"], "budget_exceeded", "{task}");
    assert!(
        task["usage"]["total_tokens"].as_i64().unwrap() <= 300,
        "{task}"
    );
}
