//! `Idempotency-Key` on `POST /v1/tasks`: a retried submission gets the task
//! its first try created, however the retries race; the key with a different
//! request is a 409; a malformed key is a 400. Without a key, every
//! submission is a task of its own.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Orchestrator, TOKEN, llm_sim, postgres};

async fn post_with_keys(orch: &Orchestrator, body: &Value, keys: &[&str]) -> reqwest::Response {
    let mut request = orch
        .http
        .post(orch.url("/v1/tasks"))
        .bearer_auth(TOKEN)
        .json(body);
    for key in keys {
        request = request.header("Idempotency-Key", *key);
    }
    request.send().await.unwrap()
}

async fn accepted_id(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["task_id"].as_str().unwrap().to_owned()
}

/// How many tasks have `goal`.
async fn tasks_with_goal(orch: &Orchestrator, goal: &str) -> usize {
    let page = orch.get_json("/v1/tasks?limit=200").await;
    page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["goal"] == goal)
        .count()
}

#[tokio::test]
async fn a_retried_submission_gets_its_first_task_and_never_a_second() {
    let pg = postgres().await;
    let llm = llm_sim().await;
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &[]).await;
    orch.wait_ready(Duration::from_secs(30)).await;

    // A retry, after the first try was acknowledged.
    let body = json!({"goal": "idempotent goal one", "priority": "high"});
    let first = accepted_id(post_with_keys(&orch, &body, &["key-one"]).await).await;
    let retry = accepted_id(post_with_keys(&orch, &body, &["key-one"]).await).await;
    assert_eq!(first, retry);
    assert_eq!(tasks_with_goal(&orch, "idempotent goal one").await, 1);

    // Sixteen retries racing each other: one task between them.
    let body = json!({"goal": "idempotent goal raced"});
    let racing = (0..16).map(|_| post_with_keys(&orch, &body, &["raced-key"]));
    let mut ids = Vec::new();
    for response in futures::future::join_all(racing).await {
        ids.push(accepted_id(response).await);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(tasks_with_goal(&orch, "idempotent goal raced").await, 1);

    // The key with another request: 409, and no task for it.
    let other = json!({"goal": "idempotent goal one", "priority": "low"});
    let response = post_with_keys(&orch, &other, &["key-one"]).await;
    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("idempotency-key-reused"),
        "{problem}"
    );
    assert_eq!(tasks_with_goal(&orch, "idempotent goal one").await, 1);

    // Without a key, the same body twice is two tasks.
    let body = json!({"goal": "no key goal"});
    let a = accepted_id(post_with_keys(&orch, &body, &[]).await).await;
    let b = accepted_id(post_with_keys(&orch, &body, &[]).await).await;
    assert_ne!(a, b);

    // Malformed keys are the request's fault, and create nothing.
    let long = "k".repeat(256);
    let body = json!({"goal": "bad key goal"});
    for keys in [
        vec![""],
        vec!["has space"],
        vec![long.as_str()],
        vec!["a", "b"],
    ] {
        let response = post_with_keys(&orch, &body, &keys).await;
        assert_eq!(response.status(), 400, "{keys:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert_eq!(tasks_with_goal(&orch, "bad key goal").await, 0);
    // The longest key allowed is fine.
    let longest = "k".repeat(255);
    accepted_id(post_with_keys(&orch, &body, &[longest.as_str()]).await).await;
}
