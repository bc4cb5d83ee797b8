//! Per-client tokens: each task belongs to the client that submitted it;
//! a client without the `admin` scope sees, lists and cancels only its own,
//! and a token without a scope is refused what needs it (403).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Orchestrator, TOKEN, llm_sim, postgres};

const CLIENT_A: &str = "client-a-token-0123456789";
const CLIENT_B: &str = "client-b-token-0123456789";
const READER: &str = "read-only-token-0123456789";

#[tokio::test]
async fn clients_see_and_cancel_only_their_own_tasks() {
    let pg = postgres().await;
    let llm = llm_sim().await;
    let dir = std::env::temp_dir().join(format!("orch-scopes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(
        &tokens,
        format!("{CLIENT_A} submit,read\n{CLIENT_B} submit,read\n{READER} read\n"),
    )
    .unwrap();
    // TOKEN (inline, no scopes listed) has every scope: the operator.
    let orch = Orchestrator::start_with_env(
        &pg.url(),
        &llm.base_url(),
        &[],
        &[("OCTOLLM_API_TOKEN_FILE", tokens.to_str().unwrap())],
    )
    .await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let http = &orch.http;
    let submit = |token: &'static str| {
        http.post(orch.url("/v1/tasks"))
            .bearer_auth(token)
            .json(&json!({"goal": "say hello"}))
            .send()
    };
    let get =
        |token: &'static str, path: String| http.get(orch.url(&path)).bearer_auth(token).send();

    let a: Value = submit(CLIENT_A).await.unwrap().json().await.unwrap();
    let a_id = a["task_id"].as_str().unwrap().to_owned();
    let b: Value = submit(CLIENT_B).await.unwrap().json().await.unwrap();
    let b_id = b["task_id"].as_str().unwrap().to_owned();

    // A reads its own task, not B's (404: B's task does not exist for A).
    let own = get(CLIENT_A, format!("/v1/tasks/{a_id}?wait=10"))
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let other = get(CLIENT_A, format!("/v1/tasks/{b_id}")).await.unwrap();
    assert_eq!(other.status(), 404);
    let other = get(CLIENT_A, format!("/v1/tasks/{b_id}?wait=1"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "the long poll hides it too");
    let timeline = |id: &str| get(CLIENT_A, format!("/v1/tasks/{id}/timeline"));
    assert_eq!(timeline(&a_id).await.unwrap().status(), 200);
    assert_eq!(
        timeline(&b_id).await.unwrap().status(),
        404,
        "and so does the timeline"
    );

    // Listing shows only one's own; the operator (admin) sees both.
    let ids = |page: Value| -> Vec<String> {
        page["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["task_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let listed: Value = get(CLIENT_A, "/v1/tasks".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(listed), std::slice::from_ref(&a_id));
    let listed: Value = get(TOKEN, "/v1/tasks".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all = ids(listed);
    assert!(all.contains(&a_id) && all.contains(&b_id), "{all:?}");

    // B cannot cancel A's task; a read-only token cannot submit or cancel.
    let cancel = |token: &'static str, id: &str| {
        http.post(orch.url(&format!("/v1/tasks/{id}/cancel")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(cancel(CLIENT_B, &a_id).await.unwrap().status(), 404);
    let refused = submit(READER).await.unwrap();
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("`submit` scope"),
        "{problem}"
    );
    assert_eq!(cancel(READER, &a_id).await.unwrap().status(), 403);
    let listed: Value = get(READER, "/v1/tasks".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ids(listed).is_empty(), "the reader submitted nothing");
    std::fs::remove_dir_all(&dir).unwrap();
}
