use llm_sim::{AdminToken, Latency, LatencyProfile, SimConfig, SimState};
use serde_json::{Value, json};

use crate::{chat_body, post_chat};

#[tokio::test]
async fn config_round_trips_and_resets() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/admin/config", sim.origin());

    let initial: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(initial["latency"], json!({"kind": "fixed", "ms": 0}));
    assert_eq!(initial["errors"]["rate"], 0.0);

    let wanted = json!({
        "latency": {"kind": "lognormal", "p50_ms": 1, "p99_ms": 2},
        "tokens": {"min": 50, "max": 200},
        "errors": {"rate": 1.0, "kinds": {"500": 1}}
    });
    let resp = client.put(&url).json(&wanted).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let now: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["tokens"], json!({"min": 50, "max": 200}));
    assert_eq!(
        now["errors"]["kinds"],
        json!({"429": 0.0, "500": 1.0, "timeout": 0.0})
    );
    assert_eq!(sim.config().errors.rate, 1.0);
    assert_eq!(post_chat(&sim, &chat_body(None)).await.status(), 500);

    let reset: Value = client
        .post(format!("{}/admin/reset", sim.origin()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reset, initial);
    assert_eq!(sim.config(), SimConfig::default());
    assert_eq!(post_chat(&sim, &chat_body(None)).await.status(), 200);
}

#[tokio::test]
async fn nonsense_is_rejected_with_a_clear_message() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/admin/config", sim.origin());
    for (body, needle) in [
        (json!({"errors": {"rate": 2.0}}), "errors.rate"),
        (
            json!({"latency": {"kind": "lognormal", "p50_ms": 500, "p99_ms": 100}}),
            "p99_ms",
        ),
        (json!({"tokens": {"min": 9, "max": 3}}), "tokens.min"),
        (json!({"latency": {"kind": "gaussian"}}), "gaussian"),
        (json!({"latency": "snappy"}), "zero, realistic, slow"),
        (json!({"errors": {"rat": 1}}), "rat"),
        (
            json!({"stream": {"ttft_fraction": -0.1}}),
            "stream.ttft_fraction",
        ),
        (
            json!({"plans": {"shapes": [{"steps": ["teleport"]}]}}),
            "capability is one of retrieve, generate_code",
        ),
        (
            json!({"plans": {"shapes": [{"steps": ["run_command"]}], "commands": ["rm"]}}),
            "plans.commands names \"rm\"",
        ),
        (
            json!({"plans": {"shapes": [{"steps": ["retrieve"]}], "file": "../secrets"}}),
            "plans.file",
        ),
        (json!({"plans": {"shapes": [], "colour": 1}}), "colour"),
    ] {
        let resp = client.put(&url).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    assert_eq!(sim.config(), SimConfig::default());
}

#[tokio::test]
async fn latency_profiles_are_set_by_name() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/admin/config", sim.origin());
    let resp = client
        .put(&url)
        .json(&json!({"latency": "slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let now: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["latency"], "slow");
    assert_eq!(sim.config().latency, Latency::Profile(LatencyProfile::Slow));
    // Back to no delay by name; the answer says so.
    let resp = client
        .put(&url)
        .json(&json!({"latency": "zero"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer = post_chat(&sim, &chat_body(None)).await;
    assert_eq!(crate::delay_ms(&answer), 0);
}

#[tokio::test]
async fn admin_token_is_enforced_when_set() {
    let state = SimState::new(SimConfig::default(), Some(AdminToken::new("s3cret"))).unwrap();
    let sim = llm_sim::spawn_with_state(state).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/admin/config", sim.origin());

    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let wrong = client.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let put = client
        .put(&url)
        .json(&json!({"errors": {"rate": 1.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 401);
    assert_eq!(sim.config(), SimConfig::default());
    let reset = client
        .post(format!("{}/admin/reset", sim.origin()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 401);

    let ok = client.get(&url).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // The chat API itself needs no admin token.
    assert_eq!(post_chat(&sim, &chat_body(None)).await.status(), 200);
    assert!(!format!("{:?}", sim.state()).contains("s3cret"));
}
