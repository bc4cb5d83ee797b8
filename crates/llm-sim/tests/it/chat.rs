use llm_sim::{SimConfig, TokenRange};
use serde_json::Value;

use crate::{chat_body, post_chat};

#[tokio::test]
async fn answers_in_openai_shape_with_usage() {
    let sim = llm_sim::spawn(SimConfig {
        tokens: TokenRange { min: 40, max: 40 },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let resp = post_chat(&sim, &chat_body(None)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], "test-model");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().unwrap();
    assert_eq!(content.split(' ').count(), 40);
    // 14 + 37 characters of input -> 12 tokens at four characters a token.
    assert_eq!(body["usage"]["prompt_tokens"], 12);
    assert_eq!(body["usage"]["completion_tokens"], 40);
    assert_eq!(body["usage"]["total_tokens"], 52);
}

#[tokio::test]
async fn max_tokens_caps_the_completion() {
    let sim = llm_sim::spawn(SimConfig {
        tokens: TokenRange { min: 100, max: 200 },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let body: Value = post_chat(&sim, &chat_body(Some(7)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 7);
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.split(' ').count(), 7);

    let mut newer = chat_body(None);
    newer["max_completion_tokens"] = 3.into();
    let body: Value = post_chat(&sim, &newer).await.json().await.unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 3);

    let body: Value = post_chat(&sim, &chat_body(None))
        .await
        .json()
        .await
        .unwrap();
    let n = body["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((100..=200).contains(&n), "{n} tokens");
}

#[tokio::test]
async fn malformed_requests_get_400_in_openai_error_shape() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", sim.base_url());
    for body in [
        "not json",
        r#"{"model":"m"}"#,
        r#"{"model":"m","messages":[]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
    ] {
        let resp = client.post(&url).body(body).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
        assert!(err["error"].get("code").is_some());
    }
}

#[tokio::test]
async fn models_health_and_metrics() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let client = reqwest::Client::new();
    let models: Value = client
        .get(format!("{}/models", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "sim-1");

    let health = client
        .get(format!("{}/health", sim.origin()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    assert_eq!(post_chat(&sim, &chat_body(None)).await.status(), 200);
    let metrics = client
        .get(format!("{}/metrics", sim.origin()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"llm_sim_requests_total{outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"llm_sim_tokens_total{type="completion"} 16"#));
}

#[tokio::test]
async fn shutdown_returns_promptly() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let url = sim.base_url();
    sim.shutdown().await.unwrap();
    assert!(
        reqwest::get(format!("{url}/models")).await.is_err(),
        "still serving after shutdown"
    );
}
