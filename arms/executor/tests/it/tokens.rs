use arm_kit::testing::execute_body;
use arm_protocol::capability_token::CAPABILITY_TOKEN_HEADER;
use serde_json::json;
use uuid::Uuid;

use crate::{KEY, executor, token};

#[tokio::test]
async fn every_call_needs_a_valid_token_for_its_task_step_command_and_arguments() {
    let h = executor().await;
    let body = execute_body("run_command", json!({"command": "echo", "args": ["hi"]}));
    let valid = token(KEY, &body, &["echo"], 60);
    let (payload, _signature) = valid.split_once('.').unwrap();
    let forged_signature = format!("{payload}.{}", "00".repeat(32));
    let with = |field: &str, value: serde_json::Value| {
        let mut other = body.clone();
        other[field] = value;
        other
    };
    let other_task = with("task_id", json!(Uuid::new_v4()));
    let other_step = with("step_id", json!("s2"));
    let other_args = with("input", json!({"command": "echo", "args": ["hi", "there"]}));
    let cases = [
        (None, "is required"),
        (Some("not-a-token".to_owned()), "malformed"),
        (Some(token(KEY, &body, &["echo"], -1)), "expired"),
        (
            Some(token(b"another-key-0123456789abcdef", &body, &["echo"], 60)),
            "signature",
        ),
        (Some(forged_signature), "signature"),
        (Some(token(KEY, &other_task, &["echo"], 60)), "another task"),
        (Some(token(KEY, &other_step, &["echo"], 60)), "another step"),
        (
            Some(token(KEY, &other_args, &["echo"], 60)),
            "other arguments",
        ),
        (Some(token(KEY, &body, &["ls", "cat"], 60)), "not granted"),
    ];
    for (token, reason) in cases {
        let headers: Vec<(&str, &str)> = token
            .as_deref()
            .map(|t| vec![(CAPABILITY_TOKEN_HEADER, t)])
            .unwrap_or_default();
        let answer = h.arm.post("/v1/execute", &body, &headers).await;
        assert_eq!(answer.status, 403, "{reason}: {:?}", answer.body);
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(detail.contains(reason), "{reason}: {detail}");
    }
    assert_eq!(h.commands("echo", "denied").await, 9.0);
    let ok = h
        .arm
        .post("/v1/execute", &body, &[(CAPABILITY_TOKEN_HEADER, &valid)])
        .await;
    assert_eq!(ok.status, 200);
    // A token runs its command once: a retry or a replay of it is refused.
    let again = h
        .arm
        .post("/v1/execute", &body, &[(CAPABILITY_TOKEN_HEADER, &valid)])
        .await;
    assert_eq!(again.status, 403, "{:?}", again.body);
    assert!(
        again.body["detail"]
            .as_str()
            .unwrap()
            .contains("used before")
    );
    assert_eq!(h.commands("echo", "ok").await, 1.0);
    // The service token is still required first.
    let anonymous = h
        .arm
        .http
        .post(h.arm.url("/v1/execute"))
        .header(CAPABILITY_TOKEN_HEADER, valid)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
