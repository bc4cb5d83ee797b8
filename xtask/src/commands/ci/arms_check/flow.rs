//! Tasks through the real arms: each must succeed with the steps its own
//! plan implies (plan, the planned steps, guardian, judge), each step run
//! by an arm that serves its capability, and every arm that ran a step
//! must show it in the orchestrator's `octollm_arm_requests_total` and in
//! its own `octollm_arm_executions_total`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::exposition::{Scrape, selector};
use super::{Catalogue, orchestrator_metrics, steps_summary, submit, wait_terminal};
use crate::stack::Stack;

/// Tasks per run. The planner's plans come from llm-sim's schema-driven
/// generator, so their shape is whatever it makes of the plan schema; a
/// handful of goals is enough to see every arm those plans name.
pub const TASKS: usize = 6;

/// Goals of different kinds, so the run is not one task repeated.
const GOALS: [&str; 6] = [
    "Summarise why durable task queues matter.",
    "Find what the knowledge base says about write-ahead logging.",
    "Write a Rust function that reverses a string, and explain it.",
    "Explain what `wc -l` counts.",
    "Check that a release note mentions every breaking change.",
    "List the files of the working directory and count them.",
];

/// Longest a task of the run may take (llm-sim answers in 150 ms median).
const TASK_WITHIN: Duration = Duration::from_secs(120);

/// What a run exercised: per arm, steps run by capability.
#[derive(Default)]
pub struct FlowRun {
    tasks: usize,
    steps: BTreeMap<String, BTreeMap<String, u64>>,
    idle: Vec<String>,
}

impl fmt::Display for FlowRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tasks succeeded; steps by arm:", self.tasks)?;
        for (arm, capabilities) in &self.steps {
            let parts: Vec<String> = capabilities
                .iter()
                .map(|(c, n)| format!("{c}×{n}"))
                .collect();
            write!(f, " {arm} ({})", parts.join(", "))?;
        }
        if !self.idle.is_empty() {
            write!(f, "; named by no plan: {}", self.idle.join(", "))?;
        }
        Ok(())
    }
}

/// Submits `tasks` tasks at once, waits for each, and checks steps and
/// metrics.
pub fn check(stack: &Stack, catalogue: &Catalogue, tasks: usize) -> Result<FlowRun> {
    let before = Scrapes::take(stack, catalogue)?;
    let ids = GOALS
        .iter()
        .cycle()
        .take(tasks)
        .map(|goal| submit(stack, goal))
        .collect::<Result<Vec<_>>>()?;
    let mut run = FlowRun {
        tasks,
        ..FlowRun::default()
    };
    for id in &ids {
        let task = wait_terminal(stack, id, TASK_WITHIN)?;
        if task["status"] != "succeeded" {
            bail!(
                "task {id}: expected status succeeded, saw {} ({}); steps: {}",
                task["status"],
                super::error_summary(&task),
                steps_summary(&task)
            );
        }
        for (arm, capability) in
            steps_by_plan(&task, catalogue).with_context(|| format!("task {id}"))?
        {
            *run.steps
                .entry(arm)
                .or_default()
                .entry(capability)
                .or_default() += 1;
        }
    }
    let after = Scrapes::take(stack, catalogue)?;
    for (arm, capabilities) in &run.steps {
        let total: u64 = capabilities.values().sum();
        let labels = [("arm", arm.as_str()), ("status", "ok")];
        after.orchestrator_rose(&before, "octollm_arm_requests_total", &labels, total)?;
        for (capability, count) in capabilities {
            let labels = [
                ("arm", arm.as_str()),
                ("capability", capability.as_str()),
                ("status", "ok"),
            ];
            after.arm_rose(
                &before,
                arm,
                "octollm_arm_executions_total",
                &labels,
                *count,
            )?;
        }
    }
    run.idle = catalogue
        .names()
        .filter(|name| !run.steps.contains_key(*name))
        .map(str::to_owned)
        .collect();
    Ok(run)
}

/// Checks a succeeded task's persisted steps against its plan; returns
/// (arm, capability) of each step.
fn steps_by_plan(task: &Value, catalogue: &Catalogue) -> Result<Vec<(String, String)>> {
    let steps = task["steps"]
        .as_array()
        .with_context(|| format!("expected the task view to carry steps, saw {task}"))?;
    let at = |index: usize| steps.iter().find(|s| s["index"] == index);
    let plan = at(0)
        .and_then(|s| s["output"]["steps"].as_array())
        .with_context(|| {
            format!(
                "expected step 0 to be the plan, with output.steps; saw {}",
                steps_summary(task)
            )
        })?;
    let planned = plan.len();
    // Step 0 plans, plan step i is step i + 1, then the guardian and the judge.
    let mut expected = vec![(0, "plan", "plan".to_owned())];
    for (i, step) in plan.iter().enumerate() {
        let capability = step["capability"]
            .as_str()
            .with_context(|| format!("plan step {i} names no capability: {step}"))?;
        expected.push((i + 1, "planned", capability.to_owned()));
    }
    expected.push((planned + 1, "guardian", "safety_check".to_owned()));
    expected.push((planned + 2, "judge", "validate".to_owned()));
    if steps.len() != expected.len() {
        bail!(
            "expected {} persisted steps (plan, {planned} planned, guardian, judge), saw {}: {}",
            expected.len(),
            steps.len(),
            steps_summary(task)
        );
    }
    let mut ran = Vec::new();
    for (index, role, capability) in expected {
        let step = at(index).with_context(|| {
            format!(
                "expected a step {index} ({role}), saw {}",
                steps_summary(task)
            )
        })?;
        let arm = step["arm"].as_str().unwrap_or_default();
        let serving = catalogue.serving(&capability);
        if step["status"] != "succeeded"
            || step["capability"] != capability.as_str()
            || !serving.contains(&arm)
        {
            bail!(
                "step {index} ({role}): expected {capability} succeeded on one of [{}], saw {}@{}={}",
                serving.join(", "),
                step["capability"],
                if arm.is_empty() { "no arm" } else { arm },
                step["status"]
            );
        }
        if matches!(role, "guardian" | "judge") && step["name"] != role {
            bail!(
                "step {index}: expected it to be named {role}, saw {}",
                step["name"]
            );
        }
        ran.push((arm.to_owned(), capability));
    }
    Ok(ran)
}

/// The orchestrator's and every arm's metrics at one moment.
struct Scrapes {
    orchestrator: Scrape,
    arms: BTreeMap<String, Scrape>,
}

impl Scrapes {
    fn take(stack: &Stack, catalogue: &Catalogue) -> Result<Self> {
        let arms = catalogue
            .arms
            .iter()
            .map(|arm| {
                let url = format!("{}/metrics", stack.url(arm.component));
                Ok((arm.name.clone(), Scrape::fetch(&url)?))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            orchestrator: Scrape::fetch(&orchestrator_metrics(stack))?,
            arms,
        })
    }

    fn orchestrator_rose(
        &self,
        before: &Self,
        name: &str,
        labels: &[(&str, &str)],
        by: u64,
    ) -> Result<()> {
        rose(
            "the orchestrator",
            &before.orchestrator,
            &self.orchestrator,
            name,
            labels,
            by,
        )
    }

    fn arm_rose(
        &self,
        before: &Self,
        arm: &str,
        name: &str,
        labels: &[(&str, &str)],
        by: u64,
    ) -> Result<()> {
        let (Some(old), Some(new)) = (before.arms.get(arm), self.arms.get(arm)) else {
            bail!("expected a scrape of arm {arm}, saw none (not a deployed arm)");
        };
        rose(&format!("the {arm} arm"), old, new, name, labels, by)
    }
}

/// Fails unless the counter rose by at least `by` (one per step); other
/// traffic can only add to it.
fn rose(
    whose: &str,
    before: &Scrape,
    after: &Scrape,
    name: &str,
    labels: &[(&str, &str)],
    by: u64,
) -> Result<()> {
    let old = before.value(name, labels).unwrap_or(0.0);
    let new = after
        .require(name, labels)
        .with_context(|| format!("{whose}'s /metrics"))?;
    if new - old < by as f64 {
        bail!(
            "{whose}'s {}: expected it to rise by at least {by} (one per step run), saw {old} → {new}",
            selector(name, labels)
        );
    }
    Ok(())
}
