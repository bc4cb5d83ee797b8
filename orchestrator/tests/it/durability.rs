//! An acknowledged task is never lost: SIGKILL mid-task, restart, and every
//! task still reaches a terminal state; SIGTERM drains and hands tasks back.

use std::time::Duration;

use serde_json::json;

use test_support::sample;

use crate::harness::{Orchestrator, postgres, sim_config};

#[tokio::test]
async fn sigkill_mid_task_then_restart_finishes_every_acknowledged_task() {
    let pg = postgres().await;
    let llm = llm_sim::spawn(sim_config(
        json!({"latency": {"kind": "fixed", "ms": 1500}}),
    ))
    .await
    .unwrap();
    let mut orch = Orchestrator::start(
        &pg.url(),
        &llm.base_url(),
        &["--workers", "4", "--task-lease", "2s"],
    )
    .await;
    orch.wait_ready(Duration::from_secs(30)).await;

    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(orch.submit_goal(&format!("durable task {n}")).await);
    }
    // Let the workers get into their first LLM call, then crash hard.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = orch.metrics().await;
    assert!(
        sample(
            &before,
            "octollm_tasks_in_progress",
            &[("task_type", "general")]
        )
        .is_some_and(|n| n > 0.0),
        "{before}"
    );
    orch.kill9();

    orch.restart().await;
    orch.wait_ready(Duration::from_secs(30)).await;
    for id in &ids {
        let task = orch.wait_terminal(id, Duration::from_secs(90)).await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    // The interrupted tasks ran again: some were claimed more than once.
    let mut resumed = 0;
    for id in &ids {
        let task: serde_json::Value = orch.task(id).await;
        if task["attempts"].as_i64().unwrap() > 1 {
            resumed += 1;
        }
    }
    assert!(resumed > 0, "no task was resumed after the crash");
}

#[tokio::test]
async fn sigterm_drains_and_hands_running_tasks_back() {
    let pg = postgres().await;
    let llm = llm_sim::spawn(sim_config(
        json!({"latency": {"kind": "fixed", "ms": 3000}}),
    ))
    .await
    .unwrap();
    let mut orch = Orchestrator::start(&pg.url(), &llm.base_url(), &["--workers", "2"]).await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let id = orch.submit_goal("interrupted politely").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = orch.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    let log = orch.log_text();
    assert!(log.contains("task handed back to the queue"), "{log}");

    // The task is queued again, not stuck running, and a new replica finishes it.
    orch.restart().await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let task = orch.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

#[tokio::test]
async fn healthy_replica_never_loses_a_lease_under_load() {
    let pg = postgres().await;
    let llm = llm_sim::spawn(sim_config(
        json!({"latency": {"kind": "uniform", "min_ms": 5, "max_ms": 50}}),
    ))
    .await
    .unwrap();
    let orch = Orchestrator::start(
        &pg.url(),
        &llm.base_url(),
        &["--workers", "8", "--task-lease", "3s"],
    )
    .await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let submissions = (0..120).map(|n| orch.submit_goal_owned(format!("steady task {n}")));
    let ids = futures::future::join_all(submissions).await;
    for id in &ids {
        let task = orch.wait_terminal(id, Duration::from_secs(60)).await;
        assert_eq!(task["status"], "succeeded", "{task}");
        // Claimed once: the lease keeper never gave up a task it was running.
        assert_eq!(task["attempts"], 1, "{task}");
    }
}
