use llm_sim::{SimConfig, StructuredConfig};
use serde_json::{Value, json};

use crate::{planner, series, sim};

fn structured(sim: &llm_sim::SimHandle, validity: &str) -> f64 {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&sim.state().registry().gather())
        .unwrap();
    arm_kit::testing::metric_value(
        &text,
        &format!("llm_sim_structured_responses_total{{validity=\"{validity}\"}}"),
    )
}

#[tokio::test]
async fn a_goal_becomes_a_valid_plan() {
    let sim = sim(SimConfig::default()).await;
    let arm = planner(&sim).await;
    let answer = arm
        .execute(
            "plan",
            json!({"goal": "Explain write-ahead logging", "context": "for a new SRE"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let plan = &answer.body["output"];
    let schema = arm_kit::Schema::compile(planner_arm::plan::schema()).unwrap();
    assert!(schema.is_valid(plan), "{plan}");
    let steps = plan["steps"].as_array().unwrap();
    assert!((1..=7).contains(&steps.len()));
    assert_eq!(steps[0]["id"], "s1");
    assert_eq!(steps[0]["depends_on"], json!([]));
    let capability = steps[0]["capability"].as_str().unwrap();
    assert!(planner_arm::plan::step_capabilities().contains(&capability));
    assert!(answer.body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(answer.body["usage"]["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(answer.body["confidence"], 0.9);
    assert_eq!(structured(&sim, "valid"), 1.0);

    assert_eq!(arm.metric(&series("ok")).await, 1.0);
    let metrics = arm.metrics().await;
    assert!(metrics.contains("octollm_llm_api_calls_total{model=\"sim-1\",provider=\"openai-compatible\",status=\"ok\"} 1"), "{metrics}");

    let described = arm.get("/v1/capabilities", true).await;
    assert_eq!(described.body["name"], "planner");
    assert_eq!(described.body["capabilities"], json!(["plan"]));
    assert_eq!(described.body["cost_tier"], 3);
    assert_eq!(described.body["output_schema"], planner_arm::plan::schema());
}

#[tokio::test]
async fn an_invalid_answer_is_asked_for_again_once() {
    // Every other structured answer is cut short: the first is invalid.
    let sim = sim(SimConfig {
        structured: StructuredConfig { invalid_rate: 0.5 },
        ..SimConfig::default()
    })
    .await;
    let arm = planner(&sim).await;
    let answer = arm
        .execute("plan", json!({"goal": "Plan a backup drill"}))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["confidence"], 0.7);
    assert_eq!(structured(&sim, "invalid"), 1.0);
    assert_eq!(structured(&sim, "valid"), 1.0);
    // Both attempts are paid for.
    let single = {
        let sim = crate::sim(SimConfig::default()).await;
        let arm = planner(&sim).await;
        arm.execute("plan", json!({"goal": "Plan a backup drill"}))
            .await
            .body["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap()
    };
    let both = answer.body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(both > 2 * single - 1, "{both} vs {single}");
}

#[tokio::test]
async fn two_invalid_answers_fail_clearly() {
    let sim = sim(SimConfig {
        structured: StructuredConfig { invalid_rate: 1.0 },
        ..SimConfig::default()
    })
    .await;
    let arm = planner(&sim).await;
    let answer = arm
        .execute("plan", json!({"goal": "Plan a backup drill"}))
        .await;
    assert_eq!(answer.status, 502, "{:?}", answer.body);
    assert_eq!(
        answer.body["type"],
        "https://octollm.dev/problems/upstream-failed"
    );
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(detail.contains("invalid plan twice"), "{detail}");
    assert!(detail.contains("not JSON"), "{detail}");
    assert_eq!(structured(&sim, "invalid"), 2.0);
    assert_eq!(arm.metric(&series("error")).await, 1.0);
}

#[tokio::test]
async fn bad_input_is_422() {
    let sim = sim(SimConfig::default()).await;
    let arm = planner(&sim).await;
    for (input, field) in [
        (json!({}), "input"),
        (json!({"goal": "   "}), "input.goal"),
        (json!({"goal": 5}), "input.goal"),
        (json!({"goal": "x".repeat(10_001)}), "input.goal"),
        (json!({"goal": "ok", "colour": "red"}), "input"),
    ] {
        let answer = arm.execute("plan", input.clone()).await;
        assert_eq!(answer.status, 422, "{input}");
        let fields: Vec<Value> = answer.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].clone())
            .collect();
        assert!(fields.contains(&json!(field)), "{input}: {fields:?}");
    }
    assert_eq!(
        arm.execute("retrieve", json!({"goal": "x"})).await.status,
        422
    );
    assert_eq!(arm.metric(&series("rejected")).await, 5.0);
    assert_eq!(structured(&sim, "valid"), 0.0, "no LLM call for bad input");
}
