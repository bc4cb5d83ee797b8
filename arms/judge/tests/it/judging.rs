use llm_sim::{SimConfig, StructuredConfig};
use serde_json::json;

use crate::{judge, llm_calls};

#[tokio::test]
async fn passing_outputs_are_judged_by_the_llm() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let arm = judge(&sim).await;
    let answer = arm
        .execute(
            "validate",
            json!({
                "output": {"status": "ok", "steps": 3},
                "criteria": {
                    "json_schema": {"type": "object", "required": ["status"]},
                    "required_substrings": ["\"status\":\"ok\""],
                    "regexes": ["steps\":\\d"],
                    "min_length": 5,
                    "max_length": 100,
                    "description": "A status report."
                }
            }),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let out = &answer.body["output"];
    // llm-sim's verdict: the first enum value and the middle of the range.
    assert_eq!(out["valid"], true);
    assert_eq!(out["llm_check"], "pass");
    assert_eq!(out["score"], 0.5);
    assert_eq!(out["issues"], json!([]));
    assert_eq!(answer.body["confidence"], 0.7);
    assert!(answer.body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(llm_calls(&sim), 1.0);
}

#[tokio::test]
async fn failing_outputs_skip_the_llm() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let arm = judge(&sim).await;
    let answer = arm
        .execute(
            "validate",
            json!({
                "output": "The plan has two steps.",
                "criteria": {
                    "required_substrings": ["three"],
                    "regexes": ["steps\\.$"],
                    "min_length": 100
                }
            }),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let out = &answer.body["output"];
    assert_eq!(out["valid"], false);
    assert_eq!(out["llm_check"], "skipped");
    let checks: Vec<&str> = out["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["required_substring", "min_length"]);
    let score = out["score"].as_f64().unwrap();
    assert!((score - 1.0 / 3.0).abs() < 1e-9, "{score}");
    assert_eq!(answer.body["confidence"], 1.0);
    assert_eq!(answer.body["usage"]["prompt_tokens"], 0);
    assert_eq!(
        llm_calls(&sim),
        0.0,
        "the LLM was called for a failing output"
    );

    let schema_failure = arm
        .execute(
            "validate",
            json!({"output": "not json", "criteria": {"json_schema": {"type": "object"}}}),
        )
        .await;
    assert_eq!(schema_failure.body["output"]["valid"], false);
    assert_eq!(
        schema_failure.body["output"]["issues"][0]["check"],
        "json_schema"
    );
}

#[tokio::test]
async fn invalid_criteria_are_422() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let arm = judge(&sim).await;
    for (criteria, field) in [
        (
            json!({"regexes": ["(unclosed"]}),
            "input.criteria.regexes[0]",
        ),
        (
            json!({"json_schema": {"type": "colour"}}),
            "input.criteria.json_schema",
        ),
        (
            json!({"min_length": 9, "max_length": 3}),
            "input.criteria.min_length",
        ),
        (json!({"max_length": -1}), "input.criteria.max_length"),
        (json!({"regexes": [""]}), "input.criteria.regexes[0]"),
        (json!({"unknown": true}), "input.criteria"),
    ] {
        let answer = arm
            .execute("validate", json!({"output": "x", "criteria": criteria}))
            .await;
        assert_eq!(answer.status, 422, "{criteria}: {:?}", answer.body);
        assert_eq!(answer.body["errors"][0]["field"], field, "{criteria}");
    }
    let missing = arm.execute("validate", json!({"output": "x"})).await;
    assert_eq!(missing.status, 422);
    assert_eq!(llm_calls(&sim), 0.0);
}

#[tokio::test]
async fn an_llm_answering_nonsense_twice_is_502() {
    let sim = llm_sim::spawn(SimConfig {
        structured: StructuredConfig { invalid_rate: 1.0 },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let arm = judge(&sim).await;
    let answer = arm
        .execute("validate", json!({"output": "fine", "criteria": {}}))
        .await;
    assert_eq!(answer.status, 502, "{:?}", answer.body);
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("invalid verdict twice")
    );
}
