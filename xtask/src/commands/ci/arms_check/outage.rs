//! The guardian dies during a run of tasks (every task needs it): its
//! circuit must open and the orchestrator mark it unavailable, the tasks
//! must fail fast with a `routing_error` naming it, and once it is back the
//! circuit must close and a new task succeed.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::exposition::Scrape;
use super::{
    Catalogue, error_summary, orchestrator_metrics, poll, steps_summary, submit, task_duration,
    unix_seconds, wait_terminal,
};
use crate::stack::deploy::reconcile;
use crate::stack::launch::DEFAULT_TIMINGS;
use crate::stack::{Component, Stack};

/// Tasks submitted just before the guardian dies (in flight when it does),
/// and again once its circuit is open.
const TASKS_PER_WAVE: usize = 3;

/// A task that needs a dead arm must end well inside its deadline (300 s by
/// default): a tenth of it.
const FAIL_FAST: Duration = Duration::from_secs(30);

/// The orchestrator probes every 5 s (OCTOLLM_ARM_PROBE_INTERVAL) and the
/// circuit cools down for 10 s: room for both, twice.
const CIRCUIT_WITHIN: Duration = Duration::from_secs(30);

const CIRCUIT: &str = "octollm_arm_circuit_state";
const AVAILABLE: &str = "octollm_arm_available";

pub struct OutageReport {
    open_after: Duration,
    unavailable_after: Duration,
    failed: Vec<Duration>,
    /// In-flight tasks whose guardian step finished before it died.
    through: usize,
    closed_after: Duration,
    /// One of the failed tasks' errors, as the API gave it.
    example: String,
}

impl fmt::Display for OutageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed: Vec<String> = self.failed.iter().map(|d| format!("{d:.1?}")).collect();
        write!(
            f,
            "guardian killed: circuit open after {:.1?}, unavailable after {:.1?}; {} tasks failed in [{}] (created → finished), e.g. \"{}\"; {} in-flight tasks had passed the guardian before it died; restarted: circuit closed after {:.1?}, a new task succeeded",
            self.open_after,
            self.unavailable_after,
            self.failed.len(),
            failed.join(", "),
            self.example,
            self.through,
            self.closed_after
        )
    }
}

pub fn check(stack: &Stack, catalogue: &Catalogue) -> Result<OutageReport> {
    let arm = catalogue
        .arm("guardian")
        .context("expected a deployed arm named guardian, saw none")?;
    let guardian = arm.component;
    let metrics = orchestrator_metrics(stack);
    let gauge = |name: &str| -> Result<f64> {
        Scrape::fetch(&metrics)?.require(name, &[("arm", "guardian")])
    };
    let (circuit, available) = (gauge(CIRCUIT)?, gauge(AVAILABLE)?);
    if circuit != 0.0 || available != 1.0 {
        bail!(
            "before the outage: expected the guardian's circuit 0 and available 1, saw {circuit} and {available}"
        );
    }

    // Right after a probe the next one is a whole interval away, so the
    // in-flight tasks reach the dead guardian (and trip its circuit) before
    // a probe marks it unavailable, which would keep calls away from it.
    wait_for_probe(stack, guardian)?;
    let mut in_flight = Vec::new();
    for _ in 0..TASKS_PER_WAVE {
        in_flight.push(submit(stack, "Summarise the guardian's role.")?);
    }
    let killed = Instant::now();
    if !stack.stop(guardian, Duration::from_secs(5))? {
        bail!("expected the guardian to be running before the outage, saw no process");
    }
    // Guardian steps that finished by now ran before the outage.
    let stopped_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());

    poll(
        "the guardian's circuit open (octollm_arm_circuit_state 2)",
        CIRCUIT_WITHIN,
        || {
            let (state, up) = (gauge(CIRCUIT)?, gauge(AVAILABLE)?);
            Ok((
                (state == 2.0).then_some(()),
                format!("state {state}, available {up}"),
            ))
        },
    )?;
    let open_after = killed.elapsed();
    poll(
        "octollm_arm_available{arm=\"guardian\"} 0",
        CIRCUIT_WITHIN,
        || {
            let up = gauge(AVAILABLE)?;
            Ok(((up == 0.0).then_some(()), format!("{up}")))
        },
    )?;
    let unavailable_after = killed.elapsed();

    // Tasks submitted while it is down must not wait for it either.
    for _ in 0..TASKS_PER_WAVE {
        in_flight.push(submit(stack, "Summarise the guardian's role.")?);
    }
    let mut failed = Vec::new();
    let mut example = String::new();
    let mut through = 0;
    for (i, id) in in_flight.iter().enumerate() {
        let task = wait_terminal(stack, id, FAIL_FAST)?;
        // A task submitted before the kill may have been quicker than it.
        if i < TASKS_PER_WAVE && task["status"] == "succeeded" && guarded_by(&task, stopped_at) {
            through += 1;
            continue;
        }
        let took = task_duration(&task).unwrap_or(FAIL_FAST + Duration::from_secs(1));
        let error = error_summary(&task);
        if task["status"] != "failed"
            || task["error"]["kind"] != "routing_error"
            || !error.contains("guardian")
            || took > FAIL_FAST
        {
            bail!(
                "task {id} while the guardian is down: expected failed with a routing_error naming the guardian within {FAIL_FAST:?}, saw {} ({error}) after {took:.1?}; steps: {}",
                task["status"],
                steps_summary(&task)
            );
        }
        failed.push(took);
        example = error;
    }

    let restarted = Instant::now();
    reconcile(stack, guardian, &DEFAULT_TIMINGS).context("restarting the guardian")?;
    poll(
        "the guardian's circuit closed (0) and available (1)",
        CIRCUIT_WITHIN,
        || {
            let (state, up) = (gauge(CIRCUIT)?, gauge(AVAILABLE)?);
            Ok((
                (state == 0.0 && up == 1.0).then_some(()),
                format!("state {state}, available {up}"),
            ))
        },
    )?;
    let closed_after = restarted.elapsed();

    let id = submit(stack, "Summarise why circuits close again.")?;
    let task = wait_terminal(stack, &id, Duration::from_secs(120))?;
    let guarded = task["steps"].as_array().is_some_and(|steps| {
        steps.iter().any(|s| {
            s["capability"] == "safety_check"
                && s["arm"] == "guardian"
                && s["status"] == "succeeded"
        })
    });
    if task["status"] != "succeeded" || !guarded {
        bail!(
            "task {id} after the guardian's return: expected succeeded with a safety_check step on the guardian, saw {} ({}); steps: {}",
            task["status"],
            error_summary(&task),
            steps_summary(&task)
        );
    }
    Ok(OutageReport {
        open_after,
        unavailable_after,
        failed,
        through,
        closed_after,
        example,
    })
}

/// Whether the task's guardian step succeeded by `unix` (seconds).
fn guarded_by(task: &Value, unix: f64) -> bool {
    task["steps"].as_array().is_some_and(|steps| {
        steps.iter().any(|s| {
            s["capability"] == "safety_check"
                && s["status"] == "succeeded"
                && s["finished_at"]
                    .as_str()
                    .and_then(unix_seconds)
                    .is_some_and(|t| t <= unix)
        })
    })
}

/// Waits until the orchestrator's next health probe reaches `arm`: the
/// arm's count of served `/v1/capabilities` requests (only the probe asks)
/// goes up.
fn wait_for_probe(stack: &Stack, arm: Component) -> Result<()> {
    let url = format!("{}/metrics", stack.url(arm));
    let route = [("route", "/v1/capabilities")];
    let count = || Scrape::fetch(&url)?.require("octollm_http_requests_total", &route);
    let before = count()?;
    poll(
        "a health probe of the guardian (its /v1/capabilities count rising)",
        Duration::from_secs(15),
        || {
            let now = count()?;
            Ok(((now > before).then_some(()), format!("{before} → {now}")))
        },
    )?;
    Ok(())
}
