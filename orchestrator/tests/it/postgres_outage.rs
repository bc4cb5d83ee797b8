//! PostgreSQL down at start: not ready, retrying. Restarted while running:
//! the service recovers without a restart of its own.

use std::time::Duration;

use crate::harness::{Orchestrator, llm_sim, postgres};

#[tokio::test]
async fn not_ready_until_postgres_answers_then_recovers_from_a_restart() {
    let pg = postgres().await;
    pg.stop().await.unwrap();
    let llm = llm_sim().await;
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &[]).await;

    // Down at start: alive, not ready, and the reason says why.
    let response = orch.http.get(orch.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["reasons"]["postgres"].is_string(), "{body}");
    assert_eq!(
        orch.http
            .get(orch.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Submissions are refused with 503, not 500, and nothing is acknowledged.
    let response = orch
        .post_json("/v1/tasks", &serde_json::json!({"goal": "too early"}))
        .await;
    assert_eq!(response.status(), 503);

    pg.start().await.unwrap();
    orch.wait_ready(Duration::from_secs(60)).await;
    let id = orch.submit_goal("after start").await;
    assert_eq!(
        orch.wait_terminal(&id, Duration::from_secs(30)).await["status"],
        "succeeded"
    );

    // Restarted underneath the running service.
    pg.stop().await.unwrap();
    pg.start().await.unwrap();
    orch.wait_ready(Duration::from_secs(60)).await;
    let id = orch.submit_goal("after restart").await;
    assert_eq!(
        orch.wait_terminal(&id, Duration::from_secs(30)).await["status"],
        "succeeded"
    );
}
