//! The system test's end-to-end check through the real arm binaries of a
//! deployed stack (issue 4's acceptance): tasks run through every arm their
//! plan names, with the persisted steps and both sides' metrics checked
//! (`flow`), and a guardian outage during a run of tasks opens its circuit,
//! fails tasks fast with a routing error and heals once it is back
//! (`outage`). The orchestrator's own tests use in-process fake arms; this
//! is the proof with the deployed processes.
//!
//! Which arm serves which capability is asked of the arms themselves
//! (`/v1/capabilities`), and what a task should have run is read from its
//! own plan (step 0's output): nothing here assumes a particular plan.

mod exposition;
mod flow;
mod outage;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::say;
use crate::stack::api::{submit_task, wait_task};
use crate::stack::{Component, Stack};
use crate::util::curl;

/// Runs the flow check, then the outage drill (which stops and restarts
/// the guardian: only for stacks that may be disturbed).
pub fn run(stack: &Stack) -> Result<()> {
    let catalogue = Catalogue::fetch(stack)?;
    let flow = flow::check(stack, &catalogue, flow::TASKS)?;
    say!("arms e2e: {flow}");
    let outage = outage::check(stack, &catalogue)?;
    say!("arms e2e: {outage}");
    Ok(())
}

/// One deployed arm and what it says it serves.
struct ArmService {
    component: Component,
    /// Its name, which is also its instance label (one instance per arm here).
    name: String,
    capabilities: Vec<String>,
}

/// What every deployed arm serves, from its own `/v1/capabilities`.
pub struct Catalogue {
    arms: Vec<ArmService>,
}

impl Catalogue {
    fn fetch(stack: &Stack) -> Result<Self> {
        let auth = stack.bearer_header(&stack.service_token_path()?)?;
        let arms = Component::ARMS
            .iter()
            .map(|component| {
                let url = format!("{}/v1/capabilities", stack.url(*component));
                let body: Value = serde_json::from_str(&curl(&["-H", &auth, &url])?)
                    .with_context(|| format!("{url} is not JSON"))?;
                let name = body["name"]
                    .as_str()
                    .with_context(|| format!("{url}: no name in {body}"))?;
                let capabilities = body["capabilities"]
                    .as_array()
                    .with_context(|| format!("{url}: no capabilities in {body}"))?
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect();
                Ok(ArmService {
                    component: *component,
                    name: name.to_owned(),
                    capabilities,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { arms })
    }

    fn arm(&self, name: &str) -> Option<&ArmService> {
        self.arms.iter().find(|a| a.name == name)
    }

    /// The arms that say they serve `capability`.
    fn serving(&self, capability: &str) -> Vec<&str> {
        self.arms
            .iter()
            .filter(|a| a.capabilities.iter().any(|c| c == capability))
            .map(|a| a.name.as_str())
            .collect()
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.arms.iter().map(|a| a.name.as_str())
    }
}

/// Submits a task with `goal`; returns its id.
fn submit(stack: &Stack, goal: &str) -> Result<String> {
    let accepted = submit_task(stack, &serde_json::json!({"goal": goal}))?;
    accepted["task_id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| {
            format!("submitting {goal:?}: expected a task_id in the 202, saw {accepted}")
        })
}

const TERMINAL: [&str; 5] = ["succeeded", "failed", "timeout", "cancelled", "rejected"];

/// Long-polls task `id` until it ends or `within` passes.
fn wait_terminal(stack: &Stack, id: &str, within: Duration) -> Result<Value> {
    let started = Instant::now();
    loop {
        let task = wait_task(stack, id)?;
        let status = task["status"].as_str().unwrap_or_default();
        if TERMINAL.contains(&status) {
            return Ok(task);
        }
        if started.elapsed() >= within {
            bail!(
                "task {id}: expected it to end within {within:?}, still {status} after {:.1?}; steps: {}",
                started.elapsed(),
                steps_summary(&task)
            );
        }
    }
}

/// `index:capability@arm=status` for each persisted step, for messages.
fn steps_summary(task: &Value) -> String {
    let Some(steps) = task["steps"].as_array() else {
        return "(none)".to_owned();
    };
    let parts: Vec<String> = steps
        .iter()
        .map(|s| {
            format!(
                "{}:{}@{}={}",
                s["index"],
                s["capability"].as_str().unwrap_or("?"),
                s["arm"].as_str().unwrap_or("-"),
                s["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// `task.error` as `kind: message`, for messages.
fn error_summary(task: &Value) -> String {
    match (
        task["error"]["kind"].as_str(),
        task["error"]["message"].as_str(),
    ) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        _ => "no error".to_owned(),
    }
}

/// How long a task took from acceptance to its end, by its own timestamps
/// (`created_at`, `finished_at`); `None` while it runs.
fn task_duration(task: &Value) -> Option<Duration> {
    let created = unix_seconds(task["created_at"].as_str()?)?;
    let finished = unix_seconds(task["finished_at"].as_str()?)?;
    Duration::try_from_secs_f64(finished - created).ok()
}

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp as the API
/// writes them (`2026-11-29T14:39:42.515236Z`).
fn unix_seconds(text: &str) -> Option<f64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let mut hms = time.splitn(3, ':');
    let (hours, minutes) = (
        hms.next()?.parse::<f64>().ok()?,
        hms.next()?.parse::<f64>().ok()?,
    );
    let seconds = hms.next()?.parse::<f64>().ok()?;
    // Days from 1970-01-01 to the civil date (proleptic Gregorian).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days as f64 * 86_400.0 + hours * 3_600.0 + minutes * 60.0 + seconds)
}

/// Polls `probe` every 100 ms until it returns `Some`, or fails after
/// `within` with `expected` and the last thing seen.
fn poll<T>(
    expected: &str,
    within: Duration,
    mut probe: impl FnMut() -> Result<(Option<T>, String)>,
) -> Result<(T, Duration)> {
    let started = Instant::now();
    loop {
        let (found, seen) = probe()?;
        if let Some(found) = found {
            return Ok((found, started.elapsed()));
        }
        if started.elapsed() >= within {
            bail!("expected {expected} within {within:?}; saw {seen}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The orchestrator's `/metrics` URL.
fn orchestrator_metrics(stack: &Stack) -> String {
    format!("{}/metrics", stack.url(Component::Orchestrator))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_come_from_the_tasks_own_timestamps() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(unix_seconds("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert_eq!(
            unix_seconds("2026-11-29T14:39:42.5Z"),
            Some(1_795_963_182.5)
        );
        assert_eq!(unix_seconds("2026-11-29 14:39:42Z"), None);
        let task = serde_json::json!({
            "created_at": "2026-12-31T23:59:59.750Z",
            "finished_at": "2027-01-01T00:00:00.250Z",
        });
        assert_eq!(task_duration(&task), Some(Duration::from_millis(500)));
        assert_eq!(
            task_duration(&serde_json::json!({"created_at": "2026-12-31T23:59:59Z"})),
            None
        );
    }

    #[test]
    fn summaries_name_each_step_and_the_error() {
        let task = serde_json::json!({
            "steps": [
                {"index": 0, "capability": "plan", "arm": "planner", "status": "succeeded"},
                {"index": 1, "capability": "safety_check", "status": "failed"},
            ],
            "error": {"kind": "routing_error", "message": "no arm could take it"},
        });
        assert_eq!(
            steps_summary(&task),
            "[0:plan@planner=succeeded, 1:safety_check@-=failed]"
        );
        assert_eq!(error_summary(&task), "routing_error: no arm could take it");
        assert_eq!(steps_summary(&serde_json::json!({})), "(none)");
    }
}
