use std::time::{Duration, Instant};

use serde_json::json;

use crate::{executor, executor_with, process_alive};

#[tokio::test]
async fn runs_a_command_and_reports_its_output() {
    let h = executor().await;
    let answer = h.run("echo", &["hello", "world"]).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let out = &answer.body["output"];
    assert_eq!(out["command"], "echo");
    assert_eq!(out["outcome"], "ok");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["stdout"], "hello world\n");
    assert_eq!(out["stderr"], "");
    assert_eq!(out["stdout_truncated"], false);
    assert_eq!(answer.body["confidence"], 1.0);
    assert_eq!(h.commands("echo", "ok").await, 1.0);

    std::fs::write(h.dir.path().join("notes.txt"), "one\ntwo\nthree\n").unwrap();
    let answer = h.run("wc", &["-l", "notes.txt"]).await;
    assert_eq!(answer.body["output"]["stdout"], "3 notes.txt\n");
    let described = h.arm.get("/v1/capabilities", true).await;
    assert_eq!(described.body["capabilities"], json!(["run_command"]));
    assert_eq!(described.body["cost_tier"], 1);
}

#[tokio::test]
async fn a_failing_command_is_nonzero_not_an_error() {
    let h = executor().await;
    let answer = h.run("cat", &["missing.txt"]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["output"]["outcome"], "nonzero");
    assert_eq!(answer.body["output"]["exit_code"], 1);
    assert!(
        answer.body["output"]["stderr"]
            .as_str()
            .unwrap()
            .contains("missing.txt")
    );
    assert_eq!(h.commands("cat", "nonzero").await, 1.0);
}

#[tokio::test]
async fn huge_output_is_capped() {
    let h = executor().await;
    let big = "x".repeat(1024 * 1024);
    std::fs::write(h.dir.path().join("big.txt"), &big).unwrap();
    // 16 MiB through the pipe; 4 KiB kept.
    let args = ["big.txt"; 16];
    let answer = h.run("cat", &args).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let out = &answer.body["output"];
    assert_eq!(out["outcome"], "ok");
    assert_eq!(out["stdout"].as_str().unwrap().len(), 4096);
    assert_eq!(out["stdout_truncated"], true);
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed() {
    let h = executor().await;
    let started = Instant::now();
    let answer = h.run("sleep", &["7.31"]).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(4));
    let out = &answer.body["output"];
    assert_eq!(out["outcome"], "timeout");
    assert_eq!(out["exit_code"], serde_json::Value::Null);
    assert_eq!(answer.body["confidence"], 0.0);
    assert!(!process_alive(&["/usr/bin/sleep", "7.31"]));
    assert_eq!(h.commands("sleep", "timeout").await, 1.0);
}

#[tokio::test]
async fn the_request_deadline_kills_the_command_too() {
    let h = executor_with("sleep", Duration::from_secs(30)).await;
    let body = arm_kit::testing::execute_body_due(
        "run_command",
        json!({"command": "sleep", "args": ["7.32"]}),
        Duration::from_millis(500),
    );
    let answer = h.run_body(body, &["sleep"]).await;
    assert_eq!(answer.status, 504, "{:?}", answer.body);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!process_alive(&["/usr/bin/sleep", "7.32"]));
    assert_eq!(h.commands("sleep", "timeout").await, 1.0);
}

#[tokio::test]
async fn the_environment_is_scrubbed() {
    let h = executor_with("env", Duration::from_secs(1)).await;
    let answer = h.run("env", &[]).await;
    let mut vars: Vec<&str> = answer.body["output"]["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    vars.sort_unstable();
    assert_eq!(vars, ["HOME", "LC_ALL", "PATH"]);
    assert!(
        answer.body["output"]["stdout"]
            .as_str()
            .unwrap()
            .contains("PATH=/usr/bin:/bin\n")
    );
}
