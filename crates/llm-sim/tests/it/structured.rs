use llm_sim::{SimConfig, StructuredConfig, TokenRange};
use serde_json::{Value, json};

use crate::{chat_body, post_chat};

fn plan_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["steps"],
        "properties": {
            "steps": {
                "type": "array", "minItems": 2, "maxItems": 7,
                "items": {
                    "type": "object",
                    "required": ["id", "capability", "depends_on"],
                    "properties": {
                        "id": {"type": "string"},
                        "capability": {"type": "string", "enum": ["retrieve", "validate"]},
                        "depends_on": {"type": "array", "items": {"type": "string"}}
                    }
                }
            }
        }
    })
}

fn structured_body(schema: Value) -> Value {
    let mut body = chat_body(None);
    body["response_format"] = json!({
        "type": "json_schema",
        "json_schema": {"name": "plan", "schema": schema, "strict": true}
    });
    body
}

async fn content(sim: &llm_sim::SimHandle, body: &Value) -> (String, Value) {
    let resp = post_chat(sim, body).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    (
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned(),
        body,
    )
}

#[tokio::test]
async fn json_schema_answers_satisfy_the_schema() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let (text, body) = content(&sim, &structured_body(plan_schema())).await;
    let plan: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        plan,
        json!({"steps": [
            {"id": "alpha bravo charlie", "capability": "retrieve", "depends_on": []},
            {"id": "bravo charlie delta", "capability": "validate", "depends_on": []}
        ]})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let tokens = body["usage"]["completion_tokens"].as_u64().unwrap();
    assert_eq!(tokens, (text.chars().count() as u64).div_ceil(4));

    // json_object answers are an (empty) object; text answers stay filler.
    let mut object = chat_body(None);
    object["response_format"] = json!({"type": "json_object"});
    assert_eq!(content(&sim, &object).await.0, "{}");
    let mut text_format = chat_body(None);
    text_format["response_format"] = json!({"type": "text"});
    assert_eq!(content(&sim, &text_format).await.0.split(' ').count(), 16);
}

#[tokio::test]
async fn max_tokens_cuts_structured_answers_short() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let mut body = structured_body(plan_schema());
    body["max_tokens"] = json!(5);
    let (text, answer) = content(&sim, &body).await;
    assert_eq!(text.chars().count(), 20);
    assert!(serde_json::from_str::<Value>(&text).is_err());
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn a_fraction_of_structured_answers_is_invalid_json() {
    let sim = llm_sim::spawn(SimConfig {
        structured: StructuredConfig { invalid_rate: 0.5 },
        tokens: TokenRange { min: 8, max: 8 },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let body = structured_body(plan_schema());
    let mut valid = Vec::new();
    for _ in 0..4 {
        let (text, _) = content(&sim, &body).await;
        valid.push(serde_json::from_str::<Value>(&text).is_ok());
    }
    assert_eq!(valid, [false, true, false, true]);
    // Plain answers neither count nor change.
    assert_eq!(
        content(&sim, &chat_body(None)).await.0.split(' ').count(),
        8
    );

    // The knob through the admin API; setting it restarts the sequence.
    let client = reqwest::Client::new();
    let url = format!("{}/admin/config", sim.origin());
    let resp = client
        .put(&url)
        .json(&json!({"structured": {"invalid_rate": 1.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (text, _) = content(&sim, &body).await;
    assert!(serde_json::from_str::<Value>(&text).is_err());
    let now: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["structured"], json!({"invalid_rate": 1.0}));
    for bad in [
        json!({"structured": {"invalid_rate": 2}}),
        json!({"structured": {"rate": 1}}),
    ] {
        let resp = client.put(&url).json(&bad).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
    sim.reset();
    let (text, _) = content(&sim, &body).await;
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "reset keeps 0.5, first is invalid"
    );

    let metrics = client
        .get(format!("{}/metrics", sim.origin()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("llm_sim_structured_responses_total{validity=\"invalid\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("llm_sim_structured_responses_total{validity=\"valid\"} 2"));
}

#[tokio::test]
async fn malformed_response_formats_are_rejected() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    for format in [
        json!({"type": "json_schema", "json_schema": {"name": "plan"}}),
        json!({"type": "json_schema", "json_schema": {"name": "has space", "schema": {}}}),
        json!({"type": "json_schema", "json_schema": {"name": "", "schema": {}}}),
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": 5}}),
        json!({"type": "json_schema"}),
        json!({"type": "yaml"}),
    ] {
        let mut body = chat_body(None);
        body["response_format"] = format.clone();
        let resp = post_chat(&sim, &body).await;
        assert_eq!(resp.status(), 400, "{format}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], "invalid_request_error");
    }
}
