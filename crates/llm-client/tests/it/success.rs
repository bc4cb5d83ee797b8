use llm_client::{LlmClient, LlmConfig, LlmError, ModelPrice, PriceTable};
use llm_sim::{SimConfig, TokenRange};
use prometheus::Registry;

use crate::{calls, client_for, metric, request};

#[tokio::test]
async fn success_reports_usage_and_cost() {
    let sim = llm_sim::spawn(SimConfig {
        tokens: TokenRange { min: 100, max: 100 },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (client, registry) = client_for(&sim, |_| {});
    let response = client.chat(request(), None).await.unwrap();

    assert_eq!(response.model, "sim-1");
    assert_eq!(response.attempts, 1);
    assert_eq!(response.finish_reason.as_deref(), Some("stop"));
    assert_eq!(response.content.split(' ').count(), 100);
    // 18 + 34 characters -> 13 prompt tokens at llm-sim's four characters a token.
    assert_eq!(response.usage.prompt_tokens, 13);
    assert_eq!(response.usage.completion_tokens, 100);
    // Built-in price of sim-1: $2.50 / $10 per million tokens.
    let expected = (13.0 * 2.5 + 100.0 * 10.0) / 1e6;
    assert!((response.cost_usd - expected).abs() < 1e-12);

    assert_eq!(calls(&registry, "ok"), 1.0);
    let tokens = |kind| {
        metric(
            &registry,
            "octollm_llm_api_tokens_total",
            &[("provider", "sim"), ("model", "sim-1"), ("type", kind)],
        )
    };
    assert_eq!(tokens("prompt"), 13.0);
    assert_eq!(tokens("completion"), 100.0);
    let cost = metric(
        &registry,
        "octollm_llm_api_cost_usd_total",
        &[("model", "sim-1")],
    );
    assert!((cost - expected).abs() < 1e-12);
    assert_eq!(
        metric(
            &registry,
            "octollm_llm_api_duration_seconds",
            &[("model", "sim-1")]
        ),
        1.0
    );
}

#[tokio::test]
async fn model_override_and_custom_price_table() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let mut prices = PriceTable::default();
    prices.insert(
        "cheap-model",
        ModelPrice {
            prompt_usd_per_million: 1.0,
            completion_usd_per_million: 1.0,
        },
    );
    let (client, registry) = client_for(&sim, |c| c.prices = prices);

    let cheap = client
        .chat(request().with_model("cheap-model").with_max_tokens(4), None)
        .await
        .unwrap();
    assert_eq!(cheap.model, "cheap-model");
    assert_eq!(cheap.usage.completion_tokens, 4);
    assert!((cheap.cost_usd - 17.0 / 1e6).abs() < 1e-12);

    // sim-1 is not in this table: cost 0 (and a one-time warning).
    for _ in 0..2 {
        let unknown = client.chat(request(), None).await.unwrap();
        assert_eq!(unknown.cost_usd, 0.0);
    }
    assert_eq!(
        metric(
            &registry,
            "octollm_llm_api_cost_usd_total",
            &[("model", "sim-1")]
        ),
        0.0
    );
    assert_eq!(
        metric(
            &registry,
            "octollm_llm_api_calls_total",
            &[("model", "cheap-model"), ("status", "ok")]
        ),
        1.0
    );
}

#[tokio::test]
async fn one_client_per_registry_is_enforced_clearly() {
    let registry = Registry::new();
    let _first = LlmClient::new(LlmConfig::default(), &registry).unwrap();
    let second = LlmClient::new(LlmConfig::default(), &registry).unwrap_err();
    assert_eq!(second.kind(), "config");
    assert!(second.to_string().contains("one LlmClient per registry"));
    let bad_url = LlmClient::new(LlmConfig::new("not a url"), &Registry::new()).unwrap_err();
    assert!(matches!(bad_url, LlmError::Config(_)));
}

#[tokio::test]
async fn json_schema_requests_get_structured_answers() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let (client, _registry) = client_for(&sim, |_| {});
    let schema = serde_json::json!({
        "type": "object",
        "required": ["answer", "score"],
        "properties": {
            "answer": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1}
        }
    });
    let response = client
        .chat(request().with_json_schema("verdict", schema), None)
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&response.content).unwrap();
    assert_eq!(value["score"], 0.5);
    assert!(value["answer"].is_string());
}
