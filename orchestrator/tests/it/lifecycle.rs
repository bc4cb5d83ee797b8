//! A task's life: accepted, run through the LLM, listed, cancelled.

use std::time::Duration;

use serde_json::{Value, json};

use test_support::sample;

use crate::harness::{Orchestrator, llm_sim, postgres, sim_config};

#[tokio::test]
async fn task_runs_to_success_with_steps_usage_and_metrics() {
    let pg = postgres().await;
    let llm = llm_sim().await;
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &[]).await;
    orch.wait_ready(Duration::from_secs(30)).await;

    let id = orch
        .submit(json!({
            "goal": "Explain write-ahead logging in two sentences.",
            "acceptance_criteria": ["mentions durability"],
            "task_type": "research",
            "priority": "high"
        }))
        .await;
    let task = orch.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["task_type"], "research");
    let steps = task["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["name"], "plan");
    assert_eq!(steps[1]["name"], "answer");
    assert!(task["usage"]["total_tokens"].as_i64().unwrap() > 0);
    assert!(task["usage"]["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(
        task["result"]["answer"]
            .as_str()
            .is_some_and(|a| !a.is_empty())
    );
    assert!(task["finished_at"].is_string());

    // The worker counts a finished task right after its commit, which is
    // also when the long poll wakes: give the counter a moment to follow.
    let mut metrics = orch.metrics().await;
    for _ in 0..50 {
        let completed = sample(
            &metrics,
            "octollm_tasks_completed_total",
            &[("status", "succeeded"), ("task_type", "research")],
        );
        if completed == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = orch.metrics().await;
    }
    assert_eq!(
        sample(
            &metrics,
            "octollm_tasks_created_total",
            &[("priority", "high"), ("task_type", "research")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "octollm_tasks_completed_total",
            &[("status", "succeeded"), ("task_type", "research")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "octollm_task_duration_seconds_count",
            &[("task_type", "research")]
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &metrics,
            "octollm_llm_api_calls_total",
            &[
                ("model", "sim-1"),
                ("provider", "openai-compatible"),
                ("status", "ok")
            ]
        )
        .is_some_and(|n| n >= 2.0),
        "{metrics}"
    );
    assert!(metrics.contains("octollm_db_query_duration_seconds_count{query=\"claim_tasks\"}"));
    assert!(metrics.contains("octollm_build_info{service=\"orchestrator\""));
    assert!(metrics.contains("process_resident_memory_bytes"));

    // Logs are JSON lines, and request logs carry a trace id.
    let log = orch.log_text();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "task accepted"
            && l["trace_id"].as_str().is_some_and(|t| t.len() == 32)),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "task finished" && l["span"]["task_id"] == id.as_str()),
        "{log}"
    );
}

#[tokio::test]
async fn listing_pages_and_filters() {
    let pg = postgres().await;
    let llm = llm_sim().await;
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &[]).await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(orch.submit_goal(&format!("task number {n}")).await);
    }
    for id in &ids {
        orch.wait_terminal(id, Duration::from_secs(30)).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tasks?status=succeeded&limit=2&cursor={c}"),
            None => "/v1/tasks?status=succeeded&limit=2".to_owned(),
        };
        let page: Value = orch.get(&path).await.json().await.unwrap();
        for task in page["tasks"].as_array().unwrap() {
            assert_eq!(task["status"], "succeeded");
            seen.push(task["task_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids.reverse(); // newest first
    assert_eq!(seen, ids);
    let none: Value = orch
        .get("/v1/tasks?status=failed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["tasks"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn cancel_queued_and_running_tasks_and_backpressure() {
    let pg = postgres().await;
    let llm = llm_sim::spawn(sim_config(
        json!({"latency": {"kind": "fixed", "ms": 2000}}),
    ))
    .await
    .unwrap();
    let orch = Orchestrator::start(
        &pg.url(),
        &llm.base_url(),
        &["--workers", "1", "--queue-bound", "2"],
    )
    .await;
    orch.wait_ready(Duration::from_secs(30)).await;

    let running = orch.submit_goal("slow one").await;
    // Wait until the single worker holds it.
    for _ in 0..50 {
        let task: Value = orch
            .get(&format!("/v1/tasks/{running}"))
            .await
            .json()
            .await
            .unwrap();
        if task["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and the queue-depth gauge (which drives backpressure) has seen it leave the queue.
    for _ in 0..50 {
        if sample(&orch.metrics().await, "octollm_task_queue_depth", &[]) == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued = orch.submit_goal("waits in the queue").await;
    let _second = orch.submit_goal("fills the queue").await;
    // The queue bound (2) is reached: 429 with Retry-After.
    let response = orch
        .post_json("/v1/tasks", &json!({"goal": "one too many"}))
        .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));

    let response = orch
        .post_json(&format!("/v1/tasks/{queued}/cancel"), &json!({}))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "cancelled");
    let response = orch
        .post_json(&format!("/v1/tasks/{running}/cancel"), &json!({}))
        .await;
    assert_eq!(response.status(), 202);
    let task = orch.wait_terminal(&running, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "cancelled", "{task}");
    // Cancelling an ended task is a conflict.
    let response = orch
        .post_json(&format!("/v1/tasks/{queued}/cancel"), &json!({}))
        .await;
    assert_eq!(response.status(), 409);
}

/// Finished tasks keep their texts for the retention period only; then
/// goal, criteria, result and step outputs are blanked, and the state,
/// usage and times stay.
#[tokio::test]
async fn texts_are_blanked_after_the_retention_period() {
    let pg = postgres().await;
    let llm = llm_sim().await;
    let orch = Orchestrator::start_with_env(
        &pg.url(),
        &llm.base_url(),
        &[],
        &[("OCTOLLM_TEXT_RETENTION", "1s")],
    )
    .await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let id = orch
        .submit(json!({
            "goal": "Write to jane.doe@example.com about the outage.",
            "acceptance_criteria": ["is polite"]
        }))
        .await;
    let task = orch.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert!(task["goal"].as_str().unwrap().contains("jane.doe"));
    let started = std::time::Instant::now();
    let purged = loop {
        let task: Value = orch.task(&id).await;
        if task["goal"] != "Write to jane.doe@example.com about the outage." {
            break task;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never purged: {task}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        purged["goal"], "[purged after the retention period]",
        "{purged}"
    );
    assert_eq!(purged["status"], "succeeded");
    assert!(purged["result"].is_null(), "{purged}");
    assert!(
        purged["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["output"].is_null()),
        "{purged}"
    );
    assert!(purged["usage"]["total_tokens"].as_i64().unwrap() > 0);
    assert!(!purged.to_string().contains("jane.doe"), "{purged}");
}

/// The usual client submits and then long-polls: the orchestrator knows the
/// task cannot have finished unannounced, so it reads the task once, when
/// it finishes, not also when the poll starts. (Whose polls may skip the
/// read is `completion`'s unit test.)
#[tokio::test]
async fn a_long_poll_after_submitting_reads_the_task_once() {
    let pg = postgres().await;
    let llm = llm_sim::spawn(sim_config(json!({"latency": {"kind": "fixed", "ms": 300}})))
        .await
        .unwrap();
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &[]).await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let reads = |metrics: &str| {
        sample(
            metrics,
            "octollm_db_query_duration_seconds_count",
            &[("query", "get_task")],
        )
        .unwrap_or(0.0)
    };
    let before = reads(&orch.metrics().await);
    let id = orch.submit_goal("read me once").await;
    let task = orch.get_json(&format!("/v1/tasks/{id}?wait=30")).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(reads(&orch.metrics().await) - before, 1.0);
}
