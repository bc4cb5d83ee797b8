//! `cargo xtask load-test --profile faults`: each fault in turn under a
//! fixed-rate task load. For every component the table names, the engine
//! runs a fresh open-model load; a few seconds in, the component's process
//! group is SIGKILLed and started again at once (as a supervisor would).
//! The engine's ledger then says what became of every acknowledged task.
//!
//! A fault passes when no acknowledged task is lost or stuck, and the run
//! recovers: from some second on, every second until the end of the send
//! phase completes tasks and has no errors. "Recovered after" is that
//! second's distance from the fault, to the engine's 1 s resolution.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::stack::deploy::reconcile;
use crate::stack::launch;
use crate::stack::{Component, Stack};
use crate::{emit, say};

/// Every fault of the full table, in the order they run.
pub const ALL: [Component; 10] = [
    Component::Orchestrator,
    Component::ReflexLayer,
    Component::PlannerArm,
    Component::RetrieverArm,
    Component::CoderArm,
    Component::JudgeArm,
    Component::GuardianArm,
    Component::ExecutorArm,
    Component::Postgres,
    Component::Redis,
];

/// What `cargo xtask ci` runs: the task path's owner and one arm.
pub const CI_SUBSET: [Component; 2] = [Component::Orchestrator, Component::RetrieverArm];

/// The shape of each fault's run.
pub struct Plan {
    /// Arrivals per second.
    pub rate: u32,
    /// The send phase; the fault comes at a third of it.
    pub send: Duration,
    pub injection_share: String,
}

/// One row of the table.
#[derive(Debug, Serialize)]
pub struct Row {
    pub fault: &'static str,
    pub acknowledged: u64,
    pub lost: u64,
    pub stuck: u64,
    /// Final status → tasks.
    pub final_status: Value,
    /// Error kind of the tasks that did not succeed → tasks.
    pub error_kinds: Value,
    /// Submissions and waits that failed (the API was down or answered 5xx).
    pub request_errors: u64,
    /// From the SIGKILL until the component was started again.
    pub restart_s: f64,
    /// From the SIGKILL until tasks kept succeeding; None: not within the run.
    pub recovered_after_s: Option<u64>,
    pub passed: bool,
}

pub fn run(stack: &Stack, faults: &[Component], plan: &Plan, out: &Path) -> Result<Vec<Row>> {
    let fault_at = plan.send / 3;
    let mut rows = Vec::new();
    for (i, &fault) in faults.iter().enumerate() {
        say!(
            "fault {}/{}: {} SIGKILLed {}s into {} tasks/s for {}s",
            i + 1,
            faults.len(),
            fault.name(),
            fault_at.as_secs(),
            plan.rate,
            plan.send.as_secs()
        );
        let dir = out.join(fault.name());
        let mut engine = super::engine_run(stack, &dir)
            .args(["--rate", &plan.rate.to_string()])
            .args(["--duration", &format!("{}s", plan.send.as_secs())])
            .args(["--injection-share", &plan.injection_share])
            // Tasks the killed orchestrator held resume when their lease
            // (30 s) expires: the drain must outlast it.
            .args(["--drain-timeout", "120s", "--no-progress"])
            .args(["--threshold", "lost==0"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting octollm-load")?;
        std::thread::sleep(fault_at);
        let killed = Instant::now();
        stack.crash(fault)?;
        reconcile(stack, fault, &launch::timings_of(stack))
            .with_context(|| format!("starting {} again after its SIGKILL", fault.name()))?;
        let restart_s = killed.elapsed().as_secs_f64();
        let status = engine.wait()?;
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("report.json"))
                .with_context(|| format!("the engine wrote no report ({status})"))?,
        )?;
        let row = row_of(fault.name(), &report, fault_at.as_secs(), restart_s);
        say!(
            "  {}: {} acknowledged, {} lost, {} stuck, recovered after {}",
            row.fault,
            row.acknowledged,
            row.lost,
            row.stuck,
            row.recovered_after_s
                .map_or_else(|| "– (not within the run)".to_owned(), |s| format!("{s} s"))
        );
        rows.push(row);
    }
    std::fs::write(
        out.join("faults.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    let table = markdown(&rows, plan);
    std::fs::write(out.join("faults.md"), &table)?;
    emit!("{table}");
    Ok(rows)
}

fn row_of(fault: &'static str, report: &Value, fault_s: u64, restart_s: f64) -> Row {
    let ledger = &report["ledger"];
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let send_s = report["send_s"].as_f64().unwrap_or(0.0) as u64;
    let recovered_after_s = recovery(
        report["series"].as_array().map_or(&[], Vec::as_slice),
        fault_s,
        send_s,
    );
    let (lost, stuck) = (count(&ledger["lost"]), count(&ledger["stuck"]));
    Row {
        fault,
        acknowledged: count(&ledger["acknowledged"]),
        lost,
        stuck,
        final_status: ledger["final_status"].clone(),
        error_kinds: ledger["error_kinds"].clone(),
        request_errors: count(&report["errors"]),
        restart_s,
        recovered_after_s,
        passed: lost == 0 && stuck == 0 && recovered_after_s.is_some(),
    }
}

/// The first second from `fault_s` on after which every second of the send
/// phase completes tasks and has no errors, as a distance from the fault.
/// At least the last 3 s of the send phase must be clean, or the run did
/// not show a recovery.
fn recovery(series: &[Value], fault_s: u64, send_s: u64) -> Option<u64> {
    let clean = |row: &Value| {
        row["errors"].as_u64() == Some(0) && row["completed"].as_u64().unwrap_or(0) > 0
    };
    let in_send: Vec<&Value> = series
        .iter()
        .filter(|r| r["t"].as_u64().is_some_and(|t| t >= fault_s && t < send_s))
        .collect();
    let first_clean_tail = in_send
        .iter()
        .rposition(|r| !clean(r))
        .map_or(0, |last_bad| last_bad + 1);
    let start = in_send.get(first_clean_tail)?["t"].as_u64()?;
    (send_s.saturating_sub(start) >= 3).then(|| start - fault_s)
}

fn markdown(rows: &[Row], plan: &Plan) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "## Faults under load ({} tasks/s, {} s send phase, SIGKILL at {} s)\n",
        plan.rate,
        plan.send.as_secs(),
        (plan.send / 3).as_secs()
    );
    let _ = writeln!(
        m,
        "| fault | acknowledged | lost | stuck | final states | error kinds | request errors | restart | recovered after | result |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|---|");
    let pairs = |v: &Value| match v.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "–".to_owned(),
    };
    for r in rows {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} s | {} | {} |",
            r.fault,
            r.acknowledged,
            r.lost,
            r.stuck,
            pairs(&r.final_status),
            pairs(&r.error_kinds),
            r.request_errors,
            r.restart_s,
            r.recovered_after_s
                .map_or_else(|| "not within the run".to_owned(), |s| format!("{s} s")),
            if r.passed { "pass" } else { "**FAIL**" }
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::recovery;

    fn rows(errors: &[u64]) -> Vec<serde_json::Value> {
        errors
            .iter()
            .enumerate()
            .map(|(t, e)| json!({"t": t, "errors": e, "completed": 5}))
            .collect()
    }

    #[test]
    fn recovery_is_the_start_of_the_clean_tail_after_the_fault() {
        // Fault at 3 s, errors at 3 and 5, clean from 6 s to the end (10 s).
        assert_eq!(
            recovery(&rows(&[0, 0, 0, 2, 0, 1, 0, 0, 0, 0]), 3, 10),
            Some(3)
        );
        // No error after the fault: recovered at once.
        assert_eq!(recovery(&rows(&[0; 10]), 3, 10), Some(0));
        // Errors until 2 s before the end: too short a tail to call it.
        assert_eq!(
            recovery(&rows(&[0, 0, 0, 1, 1, 1, 1, 1, 0, 0]), 3, 10),
            None
        );
        // A second without completions is not clean either.
        let mut series = rows(&[0; 10]);
        series[8]["completed"] = json!(0);
        assert_eq!(recovery(&series, 3, 10), None);
    }
}
