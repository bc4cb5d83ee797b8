use arm_kit::testing::{TOKEN, execute_body};
use serde_json::json;

use crate::serve;

fn executions(capability: &str, status: &str) -> String {
    format!(
        "octollm_arm_executions_total{{arm=\"judge\",capability=\"{capability}\",status=\"{status}\"}}"
    )
}

#[tokio::test]
async fn capabilities_describe_the_arm() {
    let arm = serve().await;
    let answer = arm.get("/v1/capabilities", true).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["name"], "judge");
    assert_eq!(answer.body["capabilities"], json!(["validate"]));
    assert_eq!(answer.body["cost_tier"], 1);
    assert_eq!(answer.body["input_schema"]["required"], json!(["text"]));
    assert_eq!(arm.get("/v1/capabilities", false).await.status, 401);
}

#[tokio::test]
async fn executes_and_counts() {
    let arm = serve().await;
    let answer = arm.execute("validate", json!({"text": "hi"})).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["output"], json!({"echo": "hi", "step": "s1"}));
    assert_eq!(answer.body["confidence"], 1.0);
    assert_eq!(answer.body["usage"]["prompt_tokens"], 0);
    let metrics = arm.metrics().await;
    assert_eq!(
        arm_kit::testing::metric_value(&metrics, &executions("validate", "ok")),
        1.0
    );
    assert!(metrics.contains(
        "octollm_arm_execution_duration_seconds_count{arm=\"judge\",capability=\"validate\"} 1"
    ));
    // Every status exists from the start, at zero.
    for status in arm_kit::EXECUTION_STATUSES {
        assert!(
            metrics.contains(&executions("validate", status)),
            "{status}"
        );
    }
}

#[tokio::test]
async fn bad_requests_are_4xx_problems_naming_the_field() {
    let arm = serve().await;
    let answer = arm.execute("plan", json!({"text": "hi"})).await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["errors"][0]["field"], "capability");
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("serves validate")
    );

    let secret = "jane.doe@example.com is too long";
    let answer = arm
        .execute(
            "validate",
            json!({"text": secret, "sleep_ms": -1, "extra": 1}),
        )
        .await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    let fields: Vec<&str> = answer.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"input.text"), "{fields:?}");
    assert!(fields.contains(&"input.sleep_ms"), "{fields:?}");
    assert!(fields.contains(&"input"), "{fields:?}");
    assert!(
        !answer.body.to_string().contains("jane.doe"),
        "input echoed"
    );

    let mut body = execute_body("validate", json!({"text": "hi"}));
    body["step_id"] = json!("   ");
    let answer = arm.post("/v1/execute", &body, &[]).await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.body["errors"][0]["field"], "step_id");

    let mut body = execute_body("validate", json!({"text": "hi"}));
    body["surprise"] = json!(true);
    assert_eq!(arm.post("/v1/execute", &body, &[]).await.status, 422);
    body = execute_body("validate", json!({"text": "hi"}));
    body["deadline"] = json!("tomorrow");
    assert_eq!(arm.post("/v1/execute", &body, &[]).await.status, 422);

    let raw = arm
        .http
        .post(arm.url("/v1/execute"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let unauthenticated = arm
        .http
        .post(arm.url("/v1/execute"))
        .json(&execute_body("validate", json!({"text": "hi"})))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let metrics = arm.metrics().await;
    assert_eq!(
        arm_kit::testing::metric_value(&metrics, &executions("other", "rejected")),
        1.0
    );
    assert_eq!(
        arm_kit::testing::metric_value(&metrics, &executions("validate", "rejected")),
        2.0
    );
}

#[tokio::test]
async fn arm_failures_map_to_their_status() {
    let arm = serve().await;
    for (fail, status, slug, label) in [
        ("forbidden", 403, "forbidden", "rejected"),
        ("upstream", 502, "upstream-failed", "error"),
        ("unavailable", 503, "unavailable", "error"),
    ] {
        let answer = arm
            .execute("validate", json!({"text": "hi", "fail": fail}))
            .await;
        assert_eq!(answer.status, status, "{fail}");
        assert_eq!(
            answer.body["type"],
            format!("https://octollm.dev/problems/{slug}")
        );
        assert!(arm.metric(&executions("validate", label)).await >= 1.0);
    }
}

#[tokio::test]
async fn the_deadline_stops_the_work_with_504() {
    let arm = serve().await;
    let mut body = execute_body("validate", json!({"text": "hi", "sleep_ms": 5000}));
    body["deadline"] = json!(chrono::Utc::now() + chrono::TimeDelta::milliseconds(300));
    let started = std::time::Instant::now();
    let answer = arm.post("/v1/execute", &body, &[]).await;
    assert_eq!(answer.status, 504);
    assert_eq!(
        answer.body["type"],
        "https://octollm.dev/problems/deadline-exceeded"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));

    // A deadline already past on arrival is the caller's mistake: 422.
    let mut past = execute_body("validate", json!({"text": "hi"}));
    past["deadline"] = json!(chrono::Utc::now() - chrono::TimeDelta::seconds(1));
    let answer = arm.post("/v1/execute", &past, &[]).await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    assert_eq!(answer.body["errors"][0]["field"], "deadline");
    assert_eq!(arm.metric(&executions("validate", "timeout")).await, 1.0);
}
