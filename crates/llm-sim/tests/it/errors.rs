use std::time::{Duration, Instant};

use llm_sim::{ErrorConfig, SimConfig};
use serde_json::Value;

use crate::{chat_body, post_chat};

fn failing(kinds: &str) -> SimConfig {
    SimConfig {
        errors: ErrorConfig {
            rate: 1.0,
            kinds: kinds.parse().unwrap(),
            retry_after_s: 3,
            timeout_s: 600,
        },
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn only_429_gives_429_with_retry_after() {
    let sim = llm_sim::spawn(failing("429=1")).await.unwrap();
    for _ in 0..20 {
        let resp = post_chat(&sim, &chat_body(None)).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "3");
        assert_eq!(crate::delay_ms(&resp), 0);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    }
}

#[tokio::test]
async fn only_500_gives_500() {
    let sim = llm_sim::spawn(failing("500=1")).await.unwrap();
    for _ in 0..20 {
        let resp = post_chat(&sim, &chat_body(None)).await;
        assert_eq!(resp.status(), 500);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], "server_error");
    }
}

#[tokio::test]
async fn timeout_hangs_until_the_client_gives_up() {
    let sim = llm_sim::spawn(failing("timeout=1")).await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let result = client
        .post(format!("{}/chat/completions", sim.base_url()))
        .json(&chat_body(None))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Dropping the simulator ends the hang instead of waiting 600 s.
    tokio::time::timeout(Duration::from_secs(10), sim.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn bad_requests_are_rejected_before_injection() {
    let sim = llm_sim::spawn(failing("500=1")).await.unwrap();
    let resp = post_chat(&sim, &serde_json::json!({"model": "m", "messages": []})).await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn server_errors_report_the_delay_they_waited() {
    let mut config = failing("500=1");
    config.latency = llm_sim::Latency::Fixed { ms: 25 };
    let sim = llm_sim::spawn(config).await.unwrap();
    let started = Instant::now();
    let resp = post_chat(&sim, &chat_body(None)).await;
    assert_eq!(resp.status(), 500);
    assert_eq!(crate::delay_ms(&resp), 25);
    assert!(started.elapsed() >= Duration::from_millis(25));
    // A bad request waits nothing and reports nothing.
    let bad = post_chat(&sim, &serde_json::json!({"model": "m", "messages": []})).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.headers().get(llm_sim::DELAY_HEADER).is_none());

    // A timeout reports its hang.
    let mut config = failing("timeout=1");
    config.errors.timeout_s = 1;
    sim.set_config(config).unwrap();
    let resp = post_chat(&sim, &chat_body(None)).await;
    assert_eq!(resp.status(), 504);
    assert_eq!(crate::delay_ms(&resp), 1000);
}
