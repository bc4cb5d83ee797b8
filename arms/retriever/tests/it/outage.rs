use std::time::Duration;

use serde_json::json;

use crate::{doc, postgres, retriever, wait_ready};

#[tokio::test]
async fn a_database_outage_is_503_and_not_ready_until_it_returns() {
    let pg = postgres().await;
    let arm = retriever(&pg.url()).await;
    pg.stop().await.unwrap();
    let answer = arm.execute("retrieve", json!({"query": "wal"})).await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(
        answer.body["type"],
        "https://octollm.dev/problems/unavailable"
    );
    let added = arm
        .post(
            "/v1/documents",
            &json!({"documents": [doc("t", "b", "s")]}),
            &[],
        )
        .await;
    assert_eq!(added.status, 503);
    // `/ready` reuses a verdict for up to a second (service-kit READY_REUSE).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let ready = loop {
        let ready = arm.get("/ready", false).await;
        if ready.status == 503 || std::time::Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.status, 503);
    assert!(
        ready.body["reasons"]["postgres"].is_string(),
        "{:?}",
        ready.body
    );
    assert_eq!(
        arm.metric("octollm_arm_executions_total{arm=\"retriever\",capability=\"retrieve\",status=\"error\"}")
            .await,
        1.0
    );

    pg.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    wait_ready(&arm).await;
    let answer = arm.execute("retrieve", json!({"query": "wal"})).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
}
