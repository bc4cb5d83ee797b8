//! Screening, redaction, hygiene and bad input, without Redis.

use serde_json::{Value, json};

use crate::harness::{Reflex, assert_no_raw_pii, sensitive_text};

#[tokio::test]
async fn screens_pii_and_injection_without_echoing_values() {
    let reflex = Reflex::start(&[("REFLEX_L1_MIN_BYTES", "0")]).await;
    let text = sensitive_text();
    let response = reflex
        .check(&json!({"text": text, "user_id": "jane", "redact": "typed_token"}))
        .await;
    assert_eq!(response.status(), 200);
    let raw = response.text().await.unwrap();
    assert_no_raw_pii(&raw, "the response");
    let body: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(body["decision"], "block", "{body}");
    assert_eq!(body["cache"], "miss");
    let types: Vec<&str> = body["pii"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    for kind in ["email", "ssn", "credit_card"] {
        assert!(types.contains(&kind), "{kind} not found in {types:?}");
    }
    // Offsets point into the original text.
    let email = body["pii"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "email")
        .unwrap();
    let (start, end) = (
        email["start"].as_u64().unwrap() as usize,
        email["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&text[start..end], crate::harness::EMAIL);
    let categories: Vec<&str> = body["injection"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["category"].as_str().unwrap())
        .collect();
    assert!(categories.contains(&"ignore_previous"), "{categories:?}");
    assert!(
        body["redacted_text"]
            .as_str()
            .unwrap()
            .contains("[EMAIL_1]")
    );

    // The same text again is a cache hit with the same answer.
    let again: Value = reflex
        .check(&json!({"text": text}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["cache"], "hit");
    assert_eq!(again["decision"], "block");

    // Benign text passes.
    let benign: Value = reflex
        .check(&json!({"text": "How do I ignore a previous git commit?"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(benign["decision"], "allow", "{benign}");

    let metrics = reflex.metrics().await;
    assert!(
        metrics.contains("octollm_reflex_decisions_total{decision=\"block\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("octollm_injection_blocks_total 2"));
    assert!(metrics.contains("octollm_cache_hits_total{cache=\"l1\"} 1"));
    assert!(metrics.contains("octollm_pii_detections_total{pii_type=\"email\"} 2"));
    // Even at debug level, logs never carry the text or its PII.
    assert_no_raw_pii(&reflex.log_text(), "the logs");
}

#[tokio::test]
async fn bad_input_gets_precise_problems() {
    let reflex = Reflex::start(&[]).await;
    let check = reflex.url("/v1/reflex/check");
    for (body, field) in [
        (json!({"text": ""}), "text"),
        (json!({"text": "   "}), "text"),
        (json!({"text": "a".repeat(100_001)}), "text"),
        (json!({"text": "hello", "checks": []}), "checks"),
        (json!({"text": "hello", "user_id": ""}), "user_id"),
    ] {
        let response = reflex.check(&body).await;
        assert_eq!(response.status(), 422);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    // 100,000 characters exactly is fine.
    assert_eq!(
        reflex
            .check(&json!({"text": "a".repeat(100_000)}))
            .await
            .status(),
        200
    );
    for body in [
        json!({"text": 5}),
        json!({"text": "x", "checks": ["dna"]}),
        json!({"text": "x", "redact": "shred"}),
        json!({"text": "x", "extra": 1}),
    ] {
        assert_eq!(reflex.check(&body).await.status(), 422, "{body}");
    }
    // Invalid UTF-8 and malformed JSON are 400.
    let invalid_utf8 = b"{\"text\": \"\xff\xfe\"}".to_vec();
    assert_eq!(
        reflex.check_raw("application/json", invalid_utf8).await,
        400
    );
    assert_eq!(reflex.check_raw("application/json", "{").await, 400);
    assert_eq!(reflex.check_raw("text/plain", "{}").await, 415);
    let response = reflex
        .http
        .post(&check)
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(!reflex.metrics().await.contains("status=\"500\""));
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let reflex = Reflex::start(&[
        ("REFLEX_IP_LIMIT", "1/s:3"),
        ("REFLEX_TIERS", "standard=100/s:100"),
    ])
    .await;
    for _ in 0..3 {
        assert_eq!(reflex.check(&json!({"text": "hello"})).await.status(), 200);
    }
    let response = reflex.check(&json!({"text": "hello"})).await;
    assert_eq!(response.status(), 429);
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let metrics = reflex.metrics().await;
    assert!(
        metrics.contains("octollm_rate_limit_rejections_total{scope=\"ip\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("octollm_reflex_decisions_total{decision=\"rate_limited\"} 1"));

    let per_user = Reflex::start(&[
        ("REFLEX_TIERS", "standard=1/s:2,premium=100/s:100"),
        ("REFLEX_USER_TIERS", "vip=premium"),
    ])
    .await;
    for _ in 0..2 {
        assert_eq!(
            per_user
                .check(&json!({"text": "hi", "user_id": "bob"}))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        per_user
            .check(&json!({"text": "hi", "user_id": "bob"}))
            .await
            .status(),
        429
    );
    for _ in 0..5 {
        assert_eq!(
            per_user
                .check(&json!({"text": "hi", "user_id": "vip"}))
                .await
                .status(),
            200,
            "premium tier"
        );
    }
}
