//! Group commit: the writes of many tasks share one transaction, and still
//! every acknowledged task and every persisted step survives a crash, no
//! persisted step runs again, usage counts each persisted step once, and a
//! write PostgreSQL refuses fails alone, not the group it was in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arm_protocol::ArmKind;
use serde_json::{Value, json};

use crate::fake_arm::{ArmSet, Mode};
use crate::harness::{Orchestrator, llm_sim, postgres};

/// No LLM is called when arms are configured; nothing listens here.
const NO_LLM: &str = "http://127.0.0.1:9/v1";

const TASKS: usize = 24;

fn step_names(task: &Value) -> Vec<String> {
    task["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Calls each arm saw, per task id.
fn calls_per_task(arms: &ArmSet, kind: ArmKind) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for call in arms.get(kind).calls() {
        *counts.entry(call.task_id).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_crash_amid_group_commits_loses_no_step_and_reruns_none() {
    let pg = postgres().await;
    let arms = ArmSet::all().await;
    // Every task stops at s2 (run_command) for a while, with plan and s1
    // persisted: the kill lands while many tasks share group commits.
    let executor = arms.get(ArmKind::Executor);
    executor.set_mode(Mode::Slow(Duration::from_secs(3)));
    let env = arms.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut orch =
        Orchestrator::start_with_env(&pg.url(), NO_LLM, &["--task-lease", "2s"], &env).await;
    orch.wait_ready(Duration::from_secs(30)).await;

    let submissions = (0..TASKS).map(|n| orch.submit_goal_owned(format!("grouped crash task {n}")));
    let ids = futures::future::join_all(submissions).await;

    // Wait until every task has plan and s1 persisted.
    let started = Instant::now();
    let mut persisted: HashMap<String, Vec<String>> = HashMap::new();
    while persisted.len() < ids.len() {
        for id in &ids {
            let task: Value = orch.task(id).await;
            let names = step_names(&task);
            if names.len() >= 2 {
                persisted.insert(id.clone(), names);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "only {} of {TASKS} tasks got plan and s1 persisted",
            persisted.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What was persisted right before the kill (a superset of `persisted`).
    let mut before_kill: HashMap<String, Vec<String>> = HashMap::new();
    for id in &ids {
        let task: Value = orch.task(id).await;
        // A running task's usage is the sum of its finished steps (each
        // fake arm call costs 10 prompt tokens).
        let steps = step_names(&task);
        assert_eq!(task["usage"]["prompt_tokens"], 10 * steps.len(), "{task}");
        before_kill.insert(id.clone(), steps);
    }
    // The list shows the same for the tasks still running.
    let running = orch.get_json("/v1/tasks?status=running&limit=200").await;
    let running = running["tasks"].as_array().unwrap();
    assert!(!running.is_empty(), "no task is running before the kill");
    for task in running {
        let persisted = before_kill[task["task_id"].as_str().unwrap()].len();
        assert!(
            task["usage"]["prompt_tokens"].as_u64().unwrap() >= 10 * persisted as u64,
            "{task}"
        );
    }
    orch.kill9();
    executor.set_mode(Mode::Ok);

    orch.restart().await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let planner = calls_per_task(&arms, ArmKind::Planner);
    let retriever = calls_per_task(&arms, ArmKind::Retriever);
    let mut resumed = 0;
    for id in &ids {
        let task = orch.wait_terminal(id, Duration::from_secs(60)).await;
        assert_eq!(task["status"], "succeeded", "{task}");
        assert_eq!(
            step_names(&task),
            ["plan", "s1", "s2", "s3", "guardian", "judge"],
            "{task}"
        );
        // Each fake arm call costs 10 prompt tokens: usage counts each
        // persisted step exactly once, however the groups fell.
        assert_eq!(task["usage"]["prompt_tokens"], 60, "{task}");
        assert_eq!(task["usage"]["simulated_llm_ms"], 42, "{task}");
        if task["attempts"].as_i64().unwrap() > 1 {
            resumed += 1;
        }
        // Steps persisted before the kill never ran again.
        let done = &before_kill[id];
        assert!(done.starts_with(&["plan".to_owned(), "s1".to_owned()]));
        assert_eq!(planner.get(id), Some(&1), "task {id} was planned again");
        assert_eq!(retriever.get(id), Some(&1), "task {id} re-ran s1");
    }
    assert!(resumed > 0, "no task was resumed after the crash");
    // Nor after the restart: the totals are still one plan and one s1 per task.
    assert_eq!(arms.get(ArmKind::Planner).calls().len(), TASKS);
    assert_eq!(arms.get(ArmKind::Retriever).calls().len(), TASKS);
}

#[tokio::test]
async fn a_write_postgres_refuses_fails_alone_not_its_group() {
    let pg = postgres().await;
    let llm = llm_sim().await;
    let orch = Orchestrator::start(&pg.url(), &llm.base_url(), &[]).await;
    orch.wait_ready(Duration::from_secs(30)).await;
    // A fault only this goal meets: PostgreSQL refuses it (check_violation).
    let (db, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    db.batch_execute("ALTER TABLE tasks ADD CONSTRAINT no_poison CHECK (goal <> 'poison pill')")
        .await
        .unwrap();

    // Submitted together with good tasks, the poisoned insert lands in a
    // group with some of them; the group is then written one by one.
    // Rounds repeat until a group split.
    let split = "group commit failed; writing one by one";
    let mut good = Vec::new();
    for round in 0..5 {
        let bad = orch.post_task(json!({"goal": "poison pill"}));
        let goods = futures::future::join_all(
            (0..20).map(|n| orch.post_task(json!({"goal": format!("good {round}.{n}")}))),
        );
        let (bad, goods) = tokio::join!(bad, goods);
        assert_eq!(bad.status(), 503, "the poisoned task cannot be stored");
        for response in goods {
            assert_eq!(
                response.status(),
                202,
                "a good task failed with the bad one"
            );
            let accepted: Value = response.json().await.unwrap();
            good.push(accepted["task_id"].as_str().unwrap().to_owned());
        }
        if orch.log_text().contains(split) {
            break;
        }
    }
    assert!(
        orch.log_text().contains(split),
        "the bad write never shared a group"
    );
    for id in &good {
        let task = orch.wait_terminal(id, Duration::from_secs(60)).await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    let poisoned = db
        .query_one("SELECT count(*) FROM tasks WHERE goal = 'poison pill'", &[])
        .await
        .unwrap();
    assert_eq!(poisoned.get::<_, i64>(0), 0);
}
