//! The orchestrator's task API and the arms, as the stack's own tools call
//! them (through curl, with the stack's API token).

use anyhow::{Context, Result, bail};

use super::{Component, Stack};
use crate::say;
use crate::util::curl;

/// POSTs `task` to the stack's orchestrator; returns the 202 body.
pub fn submit_task(stack: &Stack, task: &serde_json::Value) -> Result<serde_json::Value> {
    let accepted = post_json(stack, Component::Orchestrator, "/v1/tasks", task)?;
    serde_json::from_str(&accepted).with_context(|| format!("not JSON: {accepted}"))
}

/// POSTs `body` as JSON to `path` of `component`'s API, with the credential
/// that API takes ([`Stack::credential_for`]); returns the answer body (an
/// error for any status but 2xx).
pub fn post_json(
    stack: &Stack,
    component: Component,
    path: &str,
    body: &serde_json::Value,
) -> Result<String> {
    let auth = stack.bearer_header(&stack.credential_for(component)?)?;
    let url = format!("{}{path}", stack.url(component));
    let body = body.to_string();
    curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        &url,
    ])
}

/// GETs `path` of `component`'s API with the credential that API takes.
pub fn get(stack: &Stack, component: Component, path: &str) -> Result<String> {
    let auth = stack.bearer_header(&stack.credential_for(component)?)?;
    curl(&["-H", &auth, &format!("{}{path}", stack.url(component))])
}

/// Long-polls a task for up to 30 s; returns it (terminal unless it timed out).
pub fn wait_task(stack: &Stack, id: &str) -> Result<serde_json::Value> {
    let task = get(
        stack,
        Component::Orchestrator,
        &format!("/v1/tasks/{id}?wait=30"),
    )?;
    serde_json::from_str(&task).with_context(|| format!("not JSON: {task}"))
}

/// Submits a task and waits for it to succeed.
pub fn smoke(stack: &Stack) -> Result<()> {
    say!("smoke test: submitting a task");
    let accepted = submit_task(
        stack,
        &serde_json::json!({"goal": "Summarise why durable task queues matter.", "priority": "high"}),
    )?;
    let id = accepted["task_id"]
        .as_str()
        .with_context(|| format!("no task_id in {accepted}"))?;
    let task = wait_task(stack, id)?;
    if task["status"] != "succeeded" {
        bail!("smoke task {id} ended as {}: {task}", task["status"]);
    }
    say!("smoke task {id} succeeded");
    Ok(())
}

/// Each arm describes itself under its own name (the service token works),
/// and the guardian screens a text, redacting an e-mail address.
pub fn smoke_arms(stack: &Stack) -> Result<()> {
    for arm in Component::ARMS {
        let body: serde_json::Value = serde_json::from_str(&get(stack, arm, "/v1/capabilities")?)?;
        let name = arm.arm_name().unwrap_or_default();
        if body["name"] != name {
            bail!("{arm} describes itself as {}, not {name}", body["name"]);
        }
    }
    let request = serde_json::json!({
        "task_id": "00000000-0000-4000-8000-000000000000",
        "step_id": "smoke",
        "capability": "safety_check",
        "input": {"text": "Smoke test: write to smoke@example.com."},
        "deadline": "2999-01-01T00:00:00Z",
    });
    let answer: serde_json::Value = serde_json::from_str(&post_json(
        stack,
        Component::GuardianArm,
        "/v1/execute",
        &request,
    )?)?;
    if answer["output"]["sanitized_text"] != "Smoke test: write to [EMAIL_1]." {
        bail!("the guardian did not redact the smoke text: {answer}");
    }
    say!("smoke: the six arms answer; the guardian redacts");
    Ok(())
}

/// Calls llm-sim's admin API with its token.
pub fn llm_sim_admin(
    stack: &Stack,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<String> {
    let auth = stack
        .bearer_header(&stack.secret_path("llm-sim-admin-token"))
        .context("llm-sim's admin token (redeploy: `cargo xtask deploy` creates it)")?;
    let url = format!("{}{path}", stack.url(Component::LlmSim));
    let mut args = vec!["-X", method, "-H", &auth];
    if let Some(body) = body {
        args.extend(["-H", "Content-Type: application/json", "-d", body]);
    }
    args.push(&url);
    curl(&args)
}
