use llm_sim::{ErrorConfig, Latency, SimConfig};
use serde_json::json;

use crate::{planner, series, sim};

#[tokio::test]
async fn an_llm_outage_is_502() {
    let sim = sim(SimConfig {
        errors: ErrorConfig {
            rate: 1.0,
            kinds: "500=1".parse().unwrap(),
            ..ErrorConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let arm = planner(&sim).await;
    let answer = arm
        .execute("plan", json!({"goal": "Plan a backup drill"}))
        .await;
    assert_eq!(answer.status, 502, "{:?}", answer.body);
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("LLM provider answered 500"),
        "{:?}",
        answer.body
    );
}

#[tokio::test]
async fn a_slow_llm_meets_the_deadline_with_504() {
    let sim = sim(SimConfig {
        latency: Latency::Fixed { ms: 5_000 },
        ..SimConfig::default()
    })
    .await;
    let arm = planner(&sim).await;
    let body = arm_kit::testing::execute_body_due(
        "plan",
        json!({"goal": "Plan a backup drill"}),
        std::time::Duration::from_millis(400),
    );
    let started = std::time::Instant::now();
    let answer = arm.post("/v1/execute", &body, &[]).await;
    assert_eq!(answer.status, 504, "{:?}", answer.body);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(arm.metric(&series("timeout")).await, 1.0);
}
