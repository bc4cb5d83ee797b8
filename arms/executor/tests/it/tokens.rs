use arm_kit::testing::execute_body;
use arm_protocol::capability_token::CAPABILITY_TOKEN_HEADER;
use serde_json::json;
use uuid::Uuid;

use crate::{KEY, executor, token};

#[tokio::test]
async fn every_call_needs_a_valid_token_for_its_task_and_command() {
    let h = executor().await;
    let body = execute_body("run_command", json!({"command": "echo", "args": ["hi"]}));
    let task_id: Uuid = serde_json::from_value(body["task_id"].clone()).unwrap();
    let valid = token(KEY, task_id, &["echo"], 60);
    let (payload, _signature) = valid.split_once('.').unwrap();
    let forged_signature = format!("{payload}.{}", "00".repeat(32));
    let cases = [
        (None, "is required"),
        (Some("not-a-token".to_owned()), "malformed"),
        (Some(token(KEY, task_id, &["echo"], -1)), "expired"),
        (
            Some(token(
                b"another-key-0123456789abcdef",
                task_id,
                &["echo"],
                60,
            )),
            "signature",
        ),
        (Some(forged_signature), "signature"),
        (
            Some(token(KEY, Uuid::new_v4(), &["echo"], 60)),
            "another task",
        ),
        (Some(token(KEY, task_id, &["ls", "cat"], 60)), "not granted"),
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
    assert_eq!(h.commands("echo", "denied").await, 7.0);
    let ok = h
        .arm
        .post("/v1/execute", &body, &[(CAPABILITY_TOKEN_HEADER, &valid)])
        .await;
    assert_eq!(ok.status, 200);
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
