//! The arm-driven task flow against in-test arms (`fake_arm`): planning,
//! parallel and dependent steps, guardian and judge, persistence of every
//! step, resilience when an arm fails or dies, and resuming after a crash.

use std::time::{Duration, Instant};

use arm_protocol::ArmKind;
use serde_json::{Value, json};

use crate::fake_arm::{ArmSet, Mode, default_plan};
use test_support::sample;

use crate::harness::{Orchestrator, postgres};

/// No LLM is called when arms are configured; nothing listens here.
const NO_LLM: &str = "http://127.0.0.1:9/v1";

async fn start(pg_url: &str, arms: &ArmSet, args: &[&str]) -> Orchestrator {
    let env = arms.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let orch = Orchestrator::start_with_env(pg_url, NO_LLM, args, &env).await;
    orch.wait_ready(Duration::from_secs(30)).await;
    for (kind, _) in &arms.arms {
        wait_metric(&orch, "octollm_arm_available", &[("arm", kind.name())], 1.0).await;
    }
    orch
}

/// Waits until the sample `name{labels}` reads `value` on /metrics.
async fn wait_metric(orch: &Orchestrator, name: &str, labels: &[(&str, &str)], value: f64) {
    let started = Instant::now();
    loop {
        let metrics = orch.metrics().await;
        if sample(&metrics, name, labels) == Some(value) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name}{labels:?} never became {value}; metrics:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn steps(task: &Value) -> Vec<(String, String, String)> {
    task["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
                s["arm"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn owned(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[tokio::test]
async fn a_task_flows_planner_then_parallel_steps_then_guardian_and_judge() {
    let pg = postgres().await;
    let arms = ArmSet::all().await;
    // s1 (retriever) and s2 (executor) are independent: slow enough to overlap.
    arms.get(ArmKind::Retriever)
        .set_mode(Mode::Slow(Duration::from_millis(500)));
    arms.get(ArmKind::Executor)
        .set_mode(Mode::Slow(Duration::from_millis(500)));
    let orch = start(&pg.url(), &arms, &[]).await;

    let id = orch
        .submit(json!({"goal": "sort numbers", "acceptance_criteria": ["returns sorted numbers"]}))
        .await;
    let task = orch.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        steps(&task),
        owned(&[
            ("plan", "succeeded", "planner"),
            ("s1", "succeeded", "retriever"),
            ("s2", "succeeded", "executor"),
            ("s3", "succeeded", "coder"),
            ("guardian", "succeeded", "guardian"),
            ("judge", "succeeded", "judge"),
        ])
    );
    assert_eq!(
        task["result"]["answer"],
        "fn sort(v: &mut [i32]) { v.sort(); }"
    );
    assert_eq!(task["result"]["score"], 0.95);
    // Six arm calls of 15 tokens and $0.001 each count against the budget.
    assert_eq!(task["usage"]["total_tokens"], 90, "{task}");
    assert!((task["usage"]["cost_usd"].as_f64().unwrap() - 0.006).abs() < 1e-9);
    // Each reports 7 ms of simulated LLM time, summed into the task.
    assert_eq!(task["usage"]["simulated_llm_ms"], 42, "{task}");

    // s1 and s2 ran at the same time; s3 started after both and got their outputs.
    let s1 = arms.get(ArmKind::Retriever).calls().remove(0);
    let s2 = arms.get(ArmKind::Executor).calls().remove(0);
    let s3 = arms.get(ArmKind::Coder).calls().remove(0);
    assert_eq!(
        (
            s1.step_id.as_str(),
            s2.step_id.as_str(),
            s3.step_id.as_str()
        ),
        ("s1", "s2", "s3")
    );
    assert_eq!(s3.capability, "generate_code");
    assert!(
        s1.started < s2.finished && s2.started < s1.finished,
        "{s1:?} {s2:?}"
    );
    assert!(s3.started >= s1.finished && s3.started >= s2.finished);
    assert_eq!(
        s2.input,
        json!({"command": "echo", "args": ["hello", "arms"]})
    );
    let instruction = s3.input["instruction"].as_str().unwrap();
    assert!(
        instruction.contains("[s1]") && instruction.contains("sorting is ordering"),
        "{instruction}"
    );
    assert!(instruction.contains("[s2]\nhello arms"), "{instruction}");
    assert_eq!(s3.input["language"], "rust");
    let guardian = arms.get(ArmKind::Guardian).calls().remove(0);
    assert_eq!(
        guardian.input["text"],
        "fn sort(v: &mut [i32]) { v.sort(); }"
    );
    let judge = arms.get(ArmKind::Judge).calls().remove(0);
    let criteria = judge.input["criteria"]["description"].as_str().unwrap();
    assert!(
        criteria.contains("returns sorted numbers") && criteria.contains("the code sorts"),
        "{criteria}"
    );
    assert_eq!(judge.task_id, id);

    // Every step is in PostgreSQL with the arm that ran it.
    let (db, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let task_id: uuid::Uuid = id.parse().unwrap();
    let rows = db
        .query(
            "SELECT step_index, name, arm, status FROM task_steps WHERE task_id = $1 ORDER BY step_index",
            &[&task_id],
        )
        .await
        .unwrap();
    let stored: Vec<(i32, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        stored,
        [
            (0, "plan", "planner"),
            (1, "s1", "retriever"),
            (2, "s2", "executor"),
            (3, "s3", "coder"),
            (4, "guardian", "guardian"),
            (5, "judge", "judge")
        ]
        .map(|(i, n, a)| (i, n.to_owned(), a.to_owned()))
    );

    // The timeline tells the same story in time order: created, claimed
    // (attempt 1), the six steps with their arms and durations, finished.
    let timeline = orch.get_json(&format!("/v1/tasks/{id}/timeline")).await;
    let entries = timeline["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "created", "claimed", "step", "step", "step", "step", "step", "step", "finished"
        ],
        "{timeline}"
    );
    assert_eq!(entries[1]["detail"]["attempt"], 1, "{timeline}");
    assert_eq!(entries[8]["detail"]["status"], "succeeded", "{timeline}");
    let arms_in_order: Vec<&str> = entries[2..8]
        .iter()
        .map(|e| e["step"]["arm"].as_str().unwrap())
        .collect();
    assert_eq!(arms_in_order[0], "planner");
    assert_eq!(arms_in_order[3..], ["coder", "guardian", "judge"]);
    // The slow retriever and executor steps took their 500 ms.
    for entry in &entries[3..5] {
        assert!(
            entry["step"]["duration_ms"].as_i64().unwrap() >= 500,
            "{entry}"
        );
    }
    let ats: Vec<&str> = entries.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> =
        ats.iter().map(|a| a.parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{ats:?}");
    assert!(timeline["queued_ms"].as_i64().unwrap() >= 0, "{timeline}");
    assert_eq!(timeline["simulated_llm_ms"], 42, "{timeline}");
    assert!(timeline["steps_ms"].as_i64().unwrap() >= 1000, "{timeline}");
    let unknown = orch
        .get(&format!("/v1/tasks/{}/timeline", uuid::Uuid::nil()))
        .await;
    assert_eq!(unknown.status(), 404);
    let plan: Value = db
        .query_one(
            "SELECT output FROM task_steps WHERE task_id = $1 AND step_index = 0",
            &[&task_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plan, default_plan());

    let metrics = orch.metrics().await;
    for arm in [
        "planner",
        "retriever",
        "executor",
        "coder",
        "guardian",
        "judge",
    ] {
        let of_arm = [("arm", arm)];
        let requests = |status| {
            sample(
                &metrics,
                "octollm_arm_requests_total",
                &[("arm", arm), ("status", status)],
            )
        };
        assert_eq!(requests("ok"), Some(1.0), "{arm}\n{metrics}");
        assert_eq!(requests("error"), Some(0.0), "{arm}");
        assert_eq!(
            sample(
                &metrics,
                "octollm_arm_request_duration_seconds_count",
                &of_arm
            ),
            Some(1.0),
            "{arm}"
        );
        assert_eq!(
            sample(&metrics, "octollm_arm_available", &of_arm),
            Some(1.0),
            "{arm}"
        );
        assert_eq!(
            sample(&metrics, "octollm_arm_circuit_state", &of_arm),
            Some(0.0),
            "{arm}"
        );
    }
}

#[tokio::test]
async fn a_killed_arm_opens_its_circuit_fails_tasks_fast_and_recovers() {
    let pg = postgres().await;
    let arms = ArmSet::all().await;
    let retriever = arms.get(ArmKind::Retriever);
    retriever.set_mode(Mode::Slow(Duration::from_millis(2000)));
    let orch = start(&pg.url(), &arms, &["--workers", "8"]).await;

    // Three tasks reach s1 on the retriever; it dies under them.
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            orch.submit(json!({"goal": format!("killed arm {n}")}))
                .await,
        );
    }
    let started = Instant::now();
    while arms.get(ArmKind::Planner).calls().len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "planner never called"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    retriever.kill();

    for id in &ids {
        let task = orch.wait_terminal(id, Duration::from_secs(20)).await;
        assert_eq!(task["status"], "failed", "{task}");
        assert_eq!(task["error"]["kind"], "routing_error", "{task}");
        let message = task["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("\"retrieve\"") && message.contains("retriever"),
            "{message}"
        );
    }
    let metrics = orch.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "octollm_arm_circuit_state",
            &[("arm", "retriever")]
        ),
        Some(2.0),
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "octollm_arm_requests_total",
            &[("arm", "retriever"), ("status", "error")]
        )
        .unwrap()
            >= 2.0,
        "{metrics}"
    );
    wait_metric(&orch, "octollm_arm_available", &[("arm", "retriever")], 0.0).await;

    // While it is down, a task needing it fails fast, naming the arm.
    let submitted = Instant::now();
    let id = orch
        .submit(json!({"goal": "while the retriever is down"}))
        .await;
    let task = orch.wait_terminal(&id, Duration::from_secs(10)).await;
    assert!(
        submitted.elapsed() < Duration::from_secs(5),
        "{:?}",
        submitted.elapsed()
    );
    assert_eq!(task["error"]["kind"], "routing_error", "{task}");
    let message = task["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("retriever unavailable") || message.contains("retriever circuit open"),
        "{message}"
    );
    assert_eq!(
        steps(&task)[1],
        ("s1".to_owned(), "failed".to_owned(), String::new())
    );

    // It comes back: available again, its circuit closes, tasks succeed.
    retriever.set_mode(Mode::Ok);
    retriever.revive().await;
    wait_metric(&orch, "octollm_arm_available", &[("arm", "retriever")], 1.0).await;
    wait_metric(
        &orch,
        "octollm_arm_circuit_state",
        &[("arm", "retriever")],
        0.0,
    )
    .await;
    let id = orch
        .submit(json!({"goal": "after the retriever came back"}))
        .await;
    let task = orch.wait_terminal(&id, Duration::from_secs(20)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

/// An arm that crashes and is back within the route wait costs its tasks
/// latency, not failures: steps wait for its circuit's trial instead of
/// failing with `routing_error` the moment the circuit opens.
#[tokio::test]
async fn an_arm_that_restarts_within_the_route_wait_fails_no_task() {
    let pg = postgres().await;
    let arms = ArmSet::all().await;
    let retriever = arms.get(ArmKind::Retriever);
    let orch = start(&pg.url(), &arms, &["--arm-route-wait", "10s"]).await;

    retriever.kill();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            orch.submit(json!({"goal": format!("restarted arm {n}")}))
                .await,
        );
    }
    // Nothing can take their retrieve steps now (the probe marks the arm
    // unavailable, or their own calls open its circuit): they wait.
    wait_metric(&orch, "octollm_arm_available", &[("arm", "retriever")], 0.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        let task = orch.task(id).await;
        assert_eq!(task["status"], "running", "{task}");
    }
    retriever.revive().await;

    for id in &ids {
        let task = orch.wait_terminal(id, Duration::from_secs(20)).await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
}

#[tokio::test]
async fn a_failing_instance_is_retried_then_fails_over_to_its_twin() {
    let pg = postgres().await;
    let mut arms = ArmSet::all().await;
    let twin = arms.add(ArmKind::Retriever).await;
    let first = arms.get(ArmKind::Retriever);
    first.set_mode(Mode::Fail);
    // A long cool-down: the open circuit must still refuse the second task.
    let orch = start(&pg.url(), &arms, &["--arm-circuit-cool-down", "60s"]).await;
    wait_metric(
        &orch,
        "octollm_arm_available",
        &[("arm", "retriever-2")],
        1.0,
    )
    .await;

    let id = orch.submit(json!({"goal": "fail over"})).await;
    let task = orch.wait_terminal(&id, Duration::from_secs(20)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        steps(&task)[1],
        (
            "s1".to_owned(),
            "succeeded".to_owned(),
            "retriever-2".to_owned()
        )
    );
    assert_eq!(twin.calls().len(), 1);
    let metrics = orch.metrics().await;
    // One call and one retry on the failing instance, which opened its circuit (2 failures).
    assert_eq!(
        sample(
            &metrics,
            "octollm_arm_requests_total",
            &[("arm", "retriever"), ("status", "error")]
        ),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "octollm_arm_circuit_state",
            &[("arm", "retriever")]
        ),
        Some(2.0),
        "{metrics}"
    );

    // The next task goes straight to the twin: the open circuit is skipped.
    let id = orch.submit(json!({"goal": "fail over again"})).await;
    let task = orch.wait_terminal(&id, Duration::from_secs(20)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(twin.calls().len(), 2);
    let metrics = orch.metrics().await;
    assert!(
        sample(
            &metrics,
            "octollm_arm_requests_total",
            &[("arm", "retriever"), ("status", "circuit_open")]
        )
        .unwrap()
            >= 1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_refused_step_is_neither_retried_nor_failed_over() {
    let pg = postgres().await;
    let mut arms = ArmSet::all().await;
    let twin = arms.add(ArmKind::Retriever).await;
    arms.get(ArmKind::Retriever).set_mode(Mode::Reject);
    let orch = start(&pg.url(), &arms, &[]).await;

    let id = orch.submit(json!({"goal": "a vague question"})).await;
    let task = orch.wait_terminal(&id, Duration::from_secs(20)).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["kind"], "step_rejected", "{task}");
    let message = task["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("arm retriever refused the step (422): query is too vague"),
        "{message}"
    );
    assert!(twin.calls().is_empty());
    let metrics = orch.metrics().await;
    let series = |status: &str| {
        sample(
            &metrics,
            "octollm_arm_requests_total",
            &[("arm", "retriever"), ("status", status)],
        )
    };
    assert_eq!(series("error"), Some(1.0), "{metrics}");
    // The arm answered: its circuit stays closed.
    assert_eq!(
        sample(
            &metrics,
            "octollm_arm_circuit_state",
            &[("arm", "retriever")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_hanging_arm_ends_in_timeout_at_the_task_budget() {
    let pg = postgres().await;
    let arms = ArmSet::all().await;
    // Each attempt may take 30 s, but the task has 3 s in all.
    arms.get(ArmKind::Coder)
        .set_mode(Mode::Slow(Duration::from_secs(60)));
    let orch = start(&pg.url(), &arms, &["--arm-timeout", "30s"]).await;
    let submitted = Instant::now();
    let id = orch
        .submit(json!({"goal": "never answered", "budget": {"max_time_seconds": 3}}))
        .await;
    let task = orch.wait_terminal(&id, Duration::from_secs(20)).await;
    let took = submitted.elapsed();
    assert_eq!(task["status"], "timeout", "{task}");
    assert!(took < Duration::from_secs(8), "took {took:?}: {task}");
    let metrics = orch.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "octollm_arm_requests_total",
            &[("arm", "coder"), ("status", "ok")]
        ),
        Some(0.0)
    );
}

/// Waits (10 s at most) until exactly the steps `names` of task `id` are
/// persisted, failing if more are.
async fn until_persisted(orch: &Orchestrator, id: &str, names: &[&str]) {
    let started = Instant::now();
    loop {
        let task: Value = orch.task(id).await;
        let persisted: Vec<String> = steps(&task).into_iter().map(|s| s.0).collect();
        if persisted == names {
            return;
        }
        assert!(persisted.len() <= names.len(), "{task}");
        assert!(started.elapsed() < Duration::from_secs(10), "{task}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigkill_mid_plan_resumes_at_the_next_unfinished_step() {
    let pg = postgres().await;
    let arms = ArmSet::all().await;
    let executor = arms.get(ArmKind::Executor);
    executor.set_mode(Mode::Slow(Duration::from_secs(4)));
    let mut orch = start(&pg.url(), &arms, &["--task-lease", "2s"]).await;

    let id = orch.submit(json!({"goal": "survive a crash"})).await;
    // Wait until s1 is persisted while s2 is still running on the slow executor.
    until_persisted(&orch, &id, &["plan", "s1"]).await;
    orch.kill9();
    // A re-plan would now produce a different plan; a resumed task must not ask.
    arms.get(ArmKind::Planner).set_output(
        "plan",
        json!({"steps": [{"id": "other", "action": "x", "capability": "retrieve"}]}),
    );
    executor.set_mode(Mode::Ok);

    orch.restart().await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let task = orch.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["attempts"], 2, "{task}");
    let names: Vec<String> = steps(&task).into_iter().map(|s| s.0).collect();
    assert_eq!(names, ["plan", "s1", "s2", "s3", "guardian", "judge"]);
    // Finished steps did not run again.
    assert_eq!(arms.get(ArmKind::Planner).calls().len(), 1);
    assert_eq!(arms.get(ArmKind::Retriever).calls().len(), 1);
    assert_eq!(arms.get(ArmKind::Coder).calls().len(), 1);
    assert!(!executor.calls().is_empty());
}

/// A step whose failure was recorded just before a crash (the task's
/// terminal state was not): the resumed task ends with that step's own
/// error, not re-run into its record and given up as `abandoned`.
#[tokio::test]
async fn a_step_failed_before_a_crash_ends_the_resumed_task_with_its_own_error() {
    let pg = postgres().await;
    let arms = ArmSet::all().await;
    let executor = arms.get(ArmKind::Executor);
    executor.set_mode(Mode::Slow(Duration::from_secs(4)));
    let mut orch = start(&pg.url(), &arms, &["--task-lease", "2s"]).await;
    let id = orch.submit(json!({"goal": "fail, then crash"})).await;
    until_persisted(&orch, &id, &["plan", "s1"]).await;
    orch.kill9();
    // What the worker wrote for s2 (the executor's step) just before dying.
    let (db, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    db.execute(
        "INSERT INTO task_steps (task_id, step_index, name, capability, status, output, error, started_at, finished_at)
         VALUES ($1, 2, 's2', 'run_command', 'failed', '{\"error_kind\": \"command_not_allowed\"}',
                 'command \"rm\" is not allowed', now(), now())",
        &[&uuid],
    )
    .await
    .unwrap();
    executor.set_mode(Mode::Ok);
    let executed = executor.calls().len();

    orch.restart().await;
    orch.wait_ready(Duration::from_secs(30)).await;
    let task = orch.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["kind"], "command_not_allowed", "{task}");
    assert_eq!(
        task["error"]["message"], "step `s2` failed: command \"rm\" is not allowed",
        "{task}"
    );
    assert_eq!(task["attempts"], 2, "{task}");
    assert_eq!(executor.calls().len(), executed, "s2 did not run again");
}

#[tokio::test]
async fn guardian_blocks_unsafe_output_and_the_judge_is_not_asked() {
    let pg = postgres().await;
    let arms = ArmSet::all().await;
    arms.get(ArmKind::Guardian).set_output(
        "safety_check",
        json!({"allowed": false, "risk": "high", "sanitized_text": "[REDACTED]", "findings": [{"kind": "pii_ssn", "start": 0, "end": 11}]}),
    );
    let orch = start(&pg.url(), &arms, &[]).await;
    let id = orch.submit(json!({"goal": "leak something"})).await;
    let task = orch.wait_terminal(&id, Duration::from_secs(20)).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["kind"], "unsafe_output", "{task}");
    let message = task["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("guardian blocked the final output (risk high; findings: pii_ssn)"),
        "{message}"
    );
    assert_eq!(steps(&task).last().unwrap().0, "guardian");
    assert_eq!(steps(&task).last().unwrap().1, "failed");
    assert!(arms.get(ArmKind::Judge).calls().is_empty());

    // A plan asking for a command off the allow-list never reaches the executor.
    let executed = arms.get(ArmKind::Executor).calls().len();
    arms.get(ArmKind::Planner).set_output(
        "plan",
        json!({"steps": [{"id": "s1", "action": "rm -rf build", "capability": "run_command"}]}),
    );
    let id = orch.submit(json!({"goal": "clean up"})).await;
    let task = orch.wait_terminal(&id, Duration::from_secs(20)).await;
    assert_eq!(task["error"]["kind"], "command_not_allowed", "{task}");
    assert_eq!(arms.get(ArmKind::Executor).calls().len(), executed);
    let message = task["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("command \"rm\" is not allowed"),
        "{message}"
    );
}

#[test]
fn bad_arm_configuration_stops_the_start_with_a_clear_error() {
    for (env, expected) in [
        (
            vec![("OCTOLLM_ARMS", "plannr=http://127.0.0.1:1")],
            "unknown arm \"plannr\" (known: planner,",
        ),
        (
            vec![("OCTOLLM_ARMS", "planner=http://127.0.0.1:1")],
            "neither OCTOLLM_ARM_TOKEN nor OCTOLLM_ARM_TOKEN_FILE",
        ),
        (
            vec![
                ("OCTOLLM_ARMS", "planner=http://127.0.0.1:1"),
                ("OCTOLLM_ARM_TOKEN", "t"),
            ],
            "OCTOLLM_ARM_TOKEN: API token is shorter than 16 characters",
        ),
        (
            vec![
                ("OCTOLLM_ARMS", "executor=http://127.0.0.1:1"),
                ("OCTOLLM_ARM_TOKEN", "arm-token-0123456789"),
            ],
            "an executor arm is configured but neither OCTOLLM_CAPABILITY_KEY",
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .env("OCTOLLM_LISTEN", "127.0.0.1:0")
            .env("OCTOLLM_API_TOKEN", crate::harness::TOKEN)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .env("LLM_BASE_URL", NO_LLM)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{env:?}: {log}");
        assert!(log.contains(expected), "{env:?}: {log}");
    }
}
