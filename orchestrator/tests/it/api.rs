//! Bad input gets a precise 4xx problem+json; never a 500.

use serde_json::{Value, json};

use crate::harness::{Orchestrator, TOKEN, llm_sim, postgres};

async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn bad_input_gets_precise_problems() {
    let pg = postgres().await;
    let llm = llm_sim().await;
    let orch =
        Orchestrator::start(&pg.url(), &llm.base_url(), &["--max-body-bytes", "262144"]).await;
    orch.wait_ready(std::time::Duration::from_secs(30)).await;
    let tasks = orch.url("/v1/tasks");

    // Each violated bound names its field.
    for (body, field) in [
        (json!({"goal": ""}), "goal"),
        (json!({"goal": " \n\t "}), "goal"),
        (json!({"goal": "x".repeat(10_001)}), "goal"),
        (
            json!({"goal": "x", "context": "c".repeat(50_001)}),
            "context",
        ),
        (
            json!({"goal": "x", "budget": {"max_tokens": 0}}),
            "budget.max_tokens",
        ),
        (
            json!({"goal": "x", "budget": {"max_tokens": 100_001}}),
            "budget.max_tokens",
        ),
        (
            json!({"goal": "x", "budget": {"max_time_seconds": 0}}),
            "budget.max_time_seconds",
        ),
        (
            json!({"goal": "x", "budget": {"max_time_seconds": 3601}}),
            "budget.max_time_seconds",
        ),
        (
            json!({"goal": "x", "budget": {"max_cost_usd": -1}}),
            "budget.max_cost_usd",
        ),
        (
            json!({"goal": "x", "budget": {"max_cost_usd": 100.01}}),
            "budget.max_cost_usd",
        ),
        (json!({"goal": "x", "constraints": [""]}), "constraints[0]"),
    ] {
        let body = problem(orch.post_json("/v1/tasks", &body).await, 422).await;
        assert_eq!(body["type"], "https://octollm.dev/problems/validation");
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
    // Wrong types and unknown enum values are 422 naming the path.
    for (body, path) in [
        (json!({"goal": 5}), "goal"),
        (json!({"goal": "x", "priority": "urgent"}), "priority"),
        (
            json!({"goal": "x", "budget": {"max_tokens": "many"}}),
            "budget.max_tokens",
        ),
        (json!({"goal": "x", "surprise": true}), "surprise"),
    ] {
        let body = problem(orch.post_json("/v1/tasks", &body).await, 422).await;
        assert!(body["detail"].as_str().unwrap().contains(path), "{body}");
    }
    // Malformed JSON → 400.
    let response = orch
        .http
        .post(&tasks)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"goal\": ")
        .send()
        .await
        .unwrap();
    problem(response, 400).await;
    // Wrong content type → 415.
    let response = orch
        .http
        .post(&tasks)
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body("{\"goal\":\"x\"}")
        .send()
        .await
        .unwrap();
    problem(response, 415).await;
    // Body over the limit → 413.
    let huge = json!({"goal": "x", "context": "y".repeat(300_000)});
    problem(orch.post_json("/v1/tasks", &huge).await, 413).await;
    // Unknown task → 404; malformed id → 400.
    let unknown = uuid::Uuid::new_v4();
    problem(orch.get(&format!("/v1/tasks/{unknown}")).await, 404).await;
    problem(
        orch.post_json(&format!("/v1/tasks/{unknown}/cancel"), &json!({}))
            .await,
        404,
    )
    .await;
    problem(orch.get("/v1/tasks/not-a-uuid").await, 400).await;
    // Bad query strings → 400.
    problem(orch.get("/v1/tasks?status=sleeping").await, 400).await;
    problem(orch.get("/v1/tasks?limit=0").await, 400).await;
    problem(orch.get("/v1/tasks?cursor=zzz").await, 400).await;
    problem(orch.get(&format!("/v1/tasks/{unknown}?wait=-1")).await, 400).await;
    // Missing or wrong token → 401, counted by reason.
    let response = orch.http.get(&tasks).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    problem(response, 401).await;
    let response = orch
        .http
        .get(&tasks)
        .bearer_auth("not-the-token-at-all")
        .send()
        .await
        .unwrap();
    problem(response, 401).await;
    problem(
        orch.http
            .get(orch.url("/health/deep"))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    // Unknown route and method.
    problem(orch.get("/v2/nothing").await, 404).await;
    problem(
        orch.http
            .delete(&tasks)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;

    let metrics = orch.metrics().await;
    assert!(
        !metrics.contains("status=\"500\""),
        "a request got a 500:\n{metrics}"
    );
    assert!(
        metrics.contains("octollm_auth_failures_total{reason=\"missing\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("octollm_auth_failures_total{reason=\"invalid\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/v1/tasks/{id}\""),
        "route templates, not raw paths"
    );
}

#[tokio::test]
async fn nul_in_any_text_field_is_a_422_naming_it_not_a_503() {
    let pg = postgres().await;
    let llm = llm_sim().await;
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &[]).await;
    orch.wait_ready(std::time::Duration::from_secs(30)).await;
    let nul = "Summarise the report\u{0} please";
    for (body, field) in [
        (json!({"goal": nul}), "goal"),
        (json!({"goal": "x", "context": nul}), "context"),
        (
            json!({"goal": "x", "constraints": ["ok", nul]}),
            "constraints[1]",
        ),
        (
            json!({"goal": "x", "acceptance_criteria": [nul]}),
            "acceptance_criteria[0]",
        ),
    ] {
        let body = problem(orch.post_json("/v1/tasks", &body).await, 422).await;
        assert_eq!(body["errors"][0]["field"], field, "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("NUL"),
            "{body}"
        );
    }
    // The raw JSON escape, as a client sends it.
    let response = orch
        .http
        .post(orch.url("/v1/tasks"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"goal":"Summarise the report\u0000 please"}"#)
        .send()
        .await
        .unwrap();
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], "goal");
    // Whatever the arms would refuse is refused here, before any budget is spent.
    for (body, field) in [
        (json!({"goal": "x".repeat(4_001)}), "goal"),
        (
            json!({"goal": "x", "acceptance_criteria": vec!["c".repeat(2_000); 3]}),
            "acceptance_criteria",
        ),
        (
            json!({"goal": "x", "context": "c".repeat(40_000), "constraints": vec!["k".repeat(2_000); 6]}),
            "context",
        ),
    ] {
        let body = problem(orch.post_json("/v1/tasks", &body).await, 422).await;
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
    // Long polls are bounded as documented.
    let unknown = uuid::Uuid::new_v4();
    problem(
        orch.get(&format!("/v1/tasks/{unknown}?wait=3601")).await,
        400,
    )
    .await;
    problem(
        orch.get(&format!("/v1/tasks/{unknown}?wait=3600")).await,
        404,
    )
    .await;
    // (`/ready` may have answered 503 while the database came up.)
    let metrics = orch.metrics().await;
    assert!(
        !metrics
            .lines()
            .any(|l| l.contains("route=\"/v1/tasks") && l.contains("status=\"5")),
        "{metrics}"
    );
}

#[tokio::test]
async fn openapi_document_is_stable() {
    let pg = postgres().await;
    let llm = llm_sim().await;
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &[]).await;
    let doc: Value = orch
        .http
        .get(orch.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    insta::assert_json_snapshot!("openapi", doc);
}
