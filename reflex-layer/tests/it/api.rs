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

#[tokio::test]
async fn forwarded_for_is_read_only_as_far_as_the_trusted_hops() {
    let limits = [
        ("REFLEX_IP_LIMIT", "1/s:3"),
        ("REFLEX_TIERS", "standard=100/s:100"),
    ];
    let check = |reflex: &Reflex, forwarded: String| {
        let request = reflex
            .http
            .post(reflex.url("/v1/reflex/check"))
            .bearer_auth(crate::harness::TOKEN)
            .header("x-forwarded-for", forwarded)
            .json(&json!({"text": "hello"}));
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // Behind one proxy of ours: what the client wrote left of the proxy's
    // entry never buys a fresh bucket.
    let behind_one =
        Reflex::start(&[limits[0], limits[1], ("REFLEX_TRUSTED_PROXY_HOPS", "1")]).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(check(&behind_one, format!("6.6.6.{i}, 203.0.113.7")).await);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "forged entries were trusted"
    );
    // Another client behind the same proxy has its own bucket.
    assert_eq!(check(&behind_one, "203.0.113.8".into()).await, 200);

    // By default the header is ignored altogether: the peer is the client.
    let direct = Reflex::start(&limits).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(check(&direct, format!("198.51.100.{i}")).await);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
}

#[tokio::test]
async fn openapi_states_auth_and_the_rules_the_handler_enforces() {
    let reflex = Reflex::start(&[]).await;
    let doc: Value = reflex
        .http
        .get(reflex.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let check = &doc["paths"]["/v1/reflex/check"]["post"];
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    for status in ["401", "413", "415", "422", "429"] {
        assert!(
            check["responses"][status]["content"]["application/problem+json"].is_object(),
            "{status}: {check}"
        );
    }
    assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]));
    let request = &doc["components"]["schemas"]["CheckRequest"]["properties"];
    assert_eq!(request["text"]["minLength"], 1);
    assert_eq!(request["text"]["maxLength"], 100_000);
    assert_eq!(request["user_id"]["maxLength"], 256);
    assert_eq!(request["checks"]["minItems"], 1);
    // The pattern refuses what the handler calls blank.
    let pattern = request["text"]["pattern"].as_str().unwrap();
    assert_eq!(pattern, service_kit::text::not_blank_pattern());
    for blank in [" ", "\u{3000}\t", "\u{2028}"] {
        let response = reflex.check(&json!({ "text": blank })).await;
        assert_eq!(response.status(), 422, "{blank:?}");
    }
    // What looks blank to some regex engines but is not whitespace is screened.
    for not_blank in ["\u{feff}", "\u{1c}"] {
        let response = reflex.check(&json!({ "text": not_blank })).await;
        assert_eq!(response.status(), 200, "{not_blank:?}");
    }
}

#[test]
fn the_old_trust_proxy_switch_stops_the_start_with_a_pointer() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reflex-layer"))
        .env("OCTOLLM_API_TOKEN", crate::harness::TOKEN)
        .env("OCTOLLM_LISTEN", "127.0.0.1:0")
        .env("REFLEX_TRUST_PROXY", "true")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("REFLEX_TRUSTED_PROXY_HOPS"), "{stderr}");
}
