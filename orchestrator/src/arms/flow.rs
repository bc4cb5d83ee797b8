//! `ArmSteps`: the task flow when arms are configured.
//!
//! Step 0 asks the planner arm for a plan; its output *is* the plan and is
//! persisted like any step, so a resumed task follows the plan it already
//! has instead of planning again. Plan step `i` is step `i + 1`; the steps
//! whose dependencies have all finished run together. Then the guardian
//! checks the final output (step `n + 1`) and the judge checks it against the
//! acceptance criteria (step `n + 2`).
//!
//! The final output is the text of the plan's sink steps (those no other
//! step depends on), in plan order, as the guardian sanitised it.

use std::collections::HashSet;
use std::time::Duration;

use arm_protocol::{CapabilityClaims, ExecuteRequest, capability, capability_token};
use chrono::Utc;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::command;
use super::dispatch::ArmCaller;
use crate::pipeline::{StepContext, StepError, StepExecutor, StepResult, StepSpec};
use crate::store::{StepRecord, TaskRecord, Usage};

/// Most steps a plan may have.
pub const MAX_PLAN_STEPS: usize = 7;
const MAX_STEP_ID_CHARS: usize = 64;
/// Longest validity of an executor capability token.
const CAPABILITY_TOKEN_TTL: Duration = Duration::from_secs(120);
/// Documents asked of the retriever per `retrieve` step.
const RETRIEVE_LIMIT: u32 = 5;
/// Guardian risk levels that fail the task even when it allows the text.
const BLOCKING_RISKS: [&str; 2] = ["high", "critical"];
/// Languages recognised in a goal for the coder; the first named wins.
const LANGUAGES: [&str; 9] = [
    "rust",
    "python",
    "javascript",
    "typescript",
    "go",
    "java",
    "bash",
    "sql",
    "c",
];
const DEFAULT_LANGUAGE: &str = "python";

const PLAN_STEP: &str = "plan";
const GUARDIAN_STEP: &str = "guardian";
const JUDGE_STEP: &str = "judge";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Plan {
    pub steps: Vec<PlannedStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PlannedStep {
    pub id: String,
    pub action: String,
    pub capability: String,
    #[serde(default)]
    pub acceptance_criteria: Vec<String>,
    #[serde(default)]
    pub depends_on: Vec<String>,
}

impl Plan {
    /// Reads and checks a planner's output: 1–7 steps with unique ids, each
    /// asking for a known capability other than `plan`, depending only on
    /// earlier steps (so the plan is acyclic by construction).
    pub fn parse(output: &Value) -> Result<Self, String> {
        let plan: Plan =
            serde_json::from_value(output.clone()).map_err(|e| format!("unreadable: {e}"))?;
        if plan.steps.is_empty() || plan.steps.len() > MAX_PLAN_STEPS {
            return Err(format!(
                "{} steps; a plan has 1 to {MAX_PLAN_STEPS}",
                plan.steps.len()
            ));
        }
        let mut seen = HashSet::new();
        for step in &plan.steps {
            if step.id.is_empty() || step.id.chars().count() > MAX_STEP_ID_CHARS {
                return Err(format!(
                    "a step id must have 1 to {MAX_STEP_ID_CHARS} characters"
                ));
            }
            if [PLAN_STEP, GUARDIAN_STEP, JUDGE_STEP].contains(&step.id.as_str()) {
                return Err(format!("step id {:?} is reserved", step.id));
            }
            if step.capability == capability::PLAN
                || !capability::ALL.contains(&step.capability.as_str())
            {
                return Err(format!(
                    "step {:?} asks for capability {:?}, which a plan cannot use",
                    step.id, step.capability
                ));
            }
            if step.action.trim().is_empty() {
                return Err(format!("step {:?} has no action", step.id));
            }
            for dependency in &step.depends_on {
                if !seen.contains(dependency.as_str()) {
                    return Err(format!(
                        "step {:?} depends on {dependency:?}, which is not an earlier step",
                        step.id
                    ));
                }
            }
            if !seen.insert(step.id.as_str()) {
                return Err(format!("step id {:?} appears twice", step.id));
            }
        }
        Ok(plan)
    }

    fn index_of(&self, id: &str) -> Option<i32> {
        self.steps
            .iter()
            .position(|s| s.id == id)
            .and_then(|p| i32::try_from(p + 1).ok())
    }

    fn len(&self) -> i32 {
        i32::try_from(self.steps.len()).unwrap_or(i32::MAX)
    }

    /// Steps no other step depends on: together they are the task's output.
    fn sinks(&self) -> impl Iterator<Item = &PlannedStep> {
        self.steps
            .iter()
            .filter(|s| !self.steps.iter().any(|o| o.depends_on.contains(&s.id)))
    }
}

/// The text of an arm's output, for the next arm to read.
pub fn text_of(output: &Value) -> String {
    if let Some(text) = output.as_str() {
        return text.to_owned();
    }
    for key in [
        "text",
        "answer",
        "code",
        "explanation",
        "stdout",
        "sanitized_text",
    ] {
        if let Some(text) = output.get(key).and_then(Value::as_str) {
            return text.to_owned();
        }
    }
    output.to_string()
}

pub struct ArmSteps {
    caller: ArmCaller,
    /// Signs executor capability tokens; `None` when no executor is configured.
    capability_key: Option<Vec<u8>>,
    allowed_commands: Vec<String>,
}

impl ArmSteps {
    pub fn new(
        caller: ArmCaller,
        capability_key: Option<Vec<u8>>,
        allowed_commands: Vec<String>,
    ) -> Self {
        Self {
            caller,
            capability_key,
            allowed_commands,
        }
    }

    async fn call(
        &self,
        task: &TaskRecord,
        step: &StepSpec,
        input: Value,
        capability_token: Option<String>,
        deadline: tokio::time::Instant,
    ) -> Result<(Value, Usage, String), StepError> {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let request = ExecuteRequest {
            task_id: task.id,
            step_id: step.name.clone(),
            capability: step.capability.clone(),
            input,
            deadline: Utc::now() + chrono::Duration::from_std(left).unwrap_or_default(),
        };
        let dispatched = self
            .caller
            .dispatch(&request, capability_token.as_deref(), deadline)
            .await?;
        let usage = dispatched.response.usage;
        Ok((
            dispatched.response.output,
            Usage {
                prompt_tokens: i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX),
                completion_tokens: i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX),
                cost_usd: usage.cost_usd.max(0.0),
                simulated_llm_ms: i64::try_from(usage.simulated_llm_ms).unwrap_or(i64::MAX),
            },
            dispatched.arm,
        ))
    }

    /// The planner's brief: the task's context, constraints and criteria.
    fn planner_input(task: &TaskRecord) -> Value {
        let mut context = task.context.clone().unwrap_or_default();
        for (title, items) in [
            ("Constraints", &task.constraints),
            ("Acceptance criteria", &task.acceptance_criteria),
        ] {
            if !items.is_empty() {
                context.push_str(&format!("\n{title}:\n"));
                for item in items {
                    context.push_str(&format!("- {item}\n"));
                }
            }
        }
        let context = context.trim();
        if context.is_empty() {
            json!({ "goal": task.goal })
        } else {
            json!({ "goal": task.goal, "context": context })
        }
    }

    /// The input of plan step `planned` for its capability's arm.
    fn step_input(
        &self,
        task: &TaskRecord,
        planned: &PlannedStep,
        inputs: &str,
    ) -> Result<(Value, Option<String>), StepError> {
        let action = planned.action.trim();
        let with_inputs = |text: &str| {
            if inputs.is_empty() {
                text.to_owned()
            } else {
                format!("{text}\n\nInputs:\n{inputs}")
            }
        };
        let input = match planned.capability.as_str() {
            capability::RETRIEVE => json!({ "query": action, "limit": RETRIEVE_LIMIT }),
            capability::GENERATE_CODE | capability::EXPLAIN_CODE => {
                let lowered = format!("{action} {}", task.goal).to_lowercase();
                let words: HashSet<&str> = lowered
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .collect();
                let language = LANGUAGES
                    .into_iter()
                    .find(|l| words.contains(l))
                    .unwrap_or(DEFAULT_LANGUAGE);
                let instruction = with_inputs(&format!("{action}\n\nGoal: {}", task.goal));
                json!({ "language": language, "instruction": instruction })
            }
            capability::VALIDATE => {
                let mut description = action.to_owned();
                for criterion in &planned.acceptance_criteria {
                    description.push_str(&format!("\n- {criterion}"));
                }
                let output = if inputs.is_empty() {
                    task.goal.as_str()
                } else {
                    inputs
                };
                json!({ "output": output, "criteria": { "description": description } })
            }
            capability::SAFETY_CHECK => {
                json!({ "text": if inputs.is_empty() { action } else { inputs } })
            }
            capability::RUN_COMMAND => {
                let (command, args) = command::derive(action, &self.allowed_commands)
                    .map_err(StepError::CommandNotAllowed)?;
                let Some(key) = &self.capability_key else {
                    return Err(StepError::CommandNotAllowed(
                        "no capability key is configured for the executor".into(),
                    ));
                };
                let claims = CapabilityClaims {
                    task_id: task.id,
                    step_id: planned.id.clone(),
                    commands: vec![command.clone()],
                    args_sha256: capability_token::args_digest(&args),
                    token_id: uuid::Uuid::now_v7(),
                    expires_at: (Utc::now()
                        + chrono::Duration::from_std(CAPABILITY_TOKEN_TTL).unwrap_or_default())
                    .timestamp(),
                };
                let token = capability_token::sign(key, &claims);
                return Ok((json!({ "command": command, "args": args }), Some(token)));
            }
            other => return Err(StepError::UnknownCapability(other.to_owned())),
        };
        Ok((input, None))
    }

    /// The texts of the finished steps `ids`, each under its id.
    fn texts_of(plan: &Plan, ids: &[&str], previous: &[StepRecord]) -> String {
        ids.iter()
            .filter_map(|id| {
                let index = plan.index_of(id)?;
                let output = previous
                    .iter()
                    .find(|s| s.index == index)?
                    .output
                    .as_ref()?;
                Some(format!("[{id}]\n{}", text_of(output)))
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    fn final_text(plan: &Plan, previous: &[StepRecord]) -> String {
        let sinks: Vec<&str> = plan.sinks().map(|s| s.id.as_str()).collect();
        if sinks.len() == 1 {
            let index = plan.index_of(sinks[0]).unwrap_or(0);
            return previous
                .iter()
                .find(|s| s.index == index)
                .and_then(|s| s.output.as_ref())
                .map(text_of)
                .unwrap_or_default();
        }
        Self::texts_of(plan, &sinks, previous)
    }

    fn guardian_verdict(output: &Value, arm: &str) -> Result<(), StepError> {
        let bad = |detail: &str| StepError::BadOutput {
            arm: arm.to_owned(),
            detail: detail.to_owned(),
        };
        let allowed = output
            .get("allowed")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("no boolean `allowed`"))?;
        let risk = output
            .get("risk")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        if allowed && !BLOCKING_RISKS.contains(&risk) {
            return Ok(());
        }
        // Finding kinds only: findings may quote the text itself.
        let mut kinds: Vec<&str> = output
            .get("findings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| {
                ["kind", "type", "category"]
                    .into_iter()
                    .find_map(|k| f.get(k).and_then(Value::as_str))
            })
            .filter(|k| k.len() <= 64)
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        Err(StepError::Unsafe(format!(
            "the guardian blocked the final output (risk {risk}; findings: {})",
            if kinds.is_empty() {
                "none listed".to_owned()
            } else {
                kinds.join(", ")
            }
        )))
    }

    fn judge_verdict(output: &Value, arm: &str) -> Result<(), StepError> {
        let valid = output
            .get("valid")
            .and_then(Value::as_bool)
            .ok_or_else(|| StepError::BadOutput {
                arm: arm.to_owned(),
                detail: "no boolean `valid`".into(),
            })?;
        if valid {
            return Ok(());
        }
        let issues: Vec<String> = output
            .get("issues")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .take(3)
            .map(|i| i.chars().take(200).collect())
            .collect();
        let score = output.get("score").and_then(Value::as_f64).unwrap_or(0.0);
        Err(StepError::AcceptanceFailed(format!(
            "the judge found the output does not meet the acceptance criteria (score {score:.2}): {}",
            if issues.is_empty() {
                "no issues listed".to_owned()
            } else {
                issues.join("; ")
            }
        )))
    }

    fn plan_of(previous: &[StepRecord]) -> Result<Plan, StepError> {
        let output = previous
            .iter()
            .find(|s| s.index == 0)
            .and_then(|s| s.output.as_ref())
            .ok_or_else(|| StepError::InvalidPlan("the plan step has no output".into()))?;
        Plan::parse(output).map_err(StepError::InvalidPlan)
    }
}

/// The steps that can run next given the finished ones: the plan step, then
/// every plan step whose dependencies are done, then the guardian, then the
/// judge. A function of `done` alone, so a resumed task continues as it was.
fn schedule(done: &[StepRecord]) -> Result<Vec<StepSpec>, StepError> {
    let finished = |index: i32| done.iter().any(|s| s.index == index);
    if !finished(0) {
        return Ok(vec![StepSpec {
            index: 0,
            name: PLAN_STEP.into(),
            capability: capability::PLAN.into(),
        }]);
    }
    let plan = ArmSteps::plan_of(done)?;
    let mut ready = Vec::new();
    let mut unfinished = false;
    for (planned, index) in plan.steps.iter().zip(1..) {
        if finished(index) {
            continue;
        }
        unfinished = true;
        let deps_done = planned
            .depends_on
            .iter()
            .all(|d| plan.index_of(d).is_some_and(finished));
        if deps_done {
            ready.push(StepSpec {
                index,
                name: planned.id.clone(),
                capability: planned.capability.clone(),
            });
        }
    }
    if unfinished {
        return if ready.is_empty() {
            Err(StepError::InvalidPlan("no step can start".into()))
        } else {
            Ok(ready)
        };
    }
    let n = plan.len();
    for (index, name, capability) in [
        (n + 1, GUARDIAN_STEP, capability::SAFETY_CHECK),
        (n + 2, JUDGE_STEP, capability::VALIDATE),
    ] {
        if !finished(index) {
            return Ok(vec![StepSpec {
                index,
                name: name.into(),
                capability: capability.into(),
            }]);
        }
    }
    Ok(Vec::new())
}

impl StepExecutor for ArmSteps {
    fn next_steps(
        &self,
        _task: &TaskRecord,
        done: &[StepRecord],
    ) -> Result<Vec<StepSpec>, StepError> {
        schedule(done)
    }

    fn result(&self, _task: &TaskRecord, done: &[StepRecord]) -> Value {
        let Ok(plan) = Self::plan_of(done) else {
            return json!({ "answer": "", "steps": done.len() });
        };
        let output_of = |index: i32| done.iter().find(|s| s.index == index)?.output.as_ref();
        let answer = output_of(plan.len() + 1)
            .and_then(|g| g.get("sanitized_text"))
            .and_then(Value::as_str)
            .map_or_else(|| Self::final_text(&plan, done), str::to_owned);
        let judge = output_of(plan.len() + 2);
        json!({
            "answer": answer,
            "steps": done.len(),
            "plan": plan.steps.iter().map(|s| json!({"id": s.id, "capability": s.capability})).collect::<Vec<_>>(),
            "score": judge.and_then(|j| j.get("score")).cloned().unwrap_or(Value::Null),
        })
    }

    fn execute<'a>(
        &'a self,
        step: &'a StepSpec,
        context: StepContext<'a>,
    ) -> BoxFuture<'a, Result<StepResult, StepError>> {
        Box::pin(async move {
            let task = context.task;
            if step.index == 0 {
                let (output, usage, arm) = self
                    .call(
                        task,
                        step,
                        Self::planner_input(task),
                        None,
                        context.deadline,
                    )
                    .await?;
                Plan::parse(&output).map_err(StepError::InvalidPlan)?;
                return Ok(StepResult {
                    output,
                    usage,
                    arm: Some(arm),
                });
            }
            let plan = Self::plan_of(context.previous)?;
            let (input, token) = if step.index <= plan.len() {
                let planned = usize::try_from(step.index - 1)
                    .ok()
                    .and_then(|i| plan.steps.get(i))
                    .ok_or_else(|| StepError::InvalidPlan(format!("no step {}", step.index)))?;
                let deps: Vec<&str> = planned.depends_on.iter().map(String::as_str).collect();
                let inputs = Self::texts_of(&plan, &deps, context.previous);
                self.step_input(task, planned, &inputs)?
            } else if step.name == GUARDIAN_STEP {
                (
                    json!({ "text": Self::final_text(&plan, context.previous) }),
                    None,
                )
            } else {
                let output = context
                    .previous
                    .iter()
                    .find(|s| s.index == plan.len() + 1)
                    .and_then(|s| s.output.as_ref())
                    .map(text_of)
                    .unwrap_or_default();
                let mut criteria: Vec<String> = task.acceptance_criteria.clone();
                criteria.extend(
                    plan.steps
                        .iter()
                        .flat_map(|s| s.acceptance_criteria.iter().cloned()),
                );
                let description = if criteria.is_empty() {
                    format!("The output achieves the goal: {}", task.goal)
                } else {
                    criteria.join("\n")
                };
                (
                    json!({ "output": output, "criteria": { "description": description, "min_length": 1 } }),
                    None,
                )
            };
            let (output, usage, arm) = self
                .call(task, step, input, token, context.deadline)
                .await?;
            if step.name == GUARDIAN_STEP && step.index == plan.len() + 1 {
                Self::guardian_verdict(&output, &arm)?;
            } else if step.name == JUDGE_STEP && step.index == plan.len() + 2 {
                Self::judge_verdict(&output, &arm)?;
            }
            Ok(StepResult {
                output,
                usage,
                arm: Some(arm),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_value() -> Value {
        json!({"steps": [
            {"id": "s1", "action": "find docs", "capability": "retrieve", "acceptance_criteria": [], "depends_on": []},
            {"id": "s2", "action": "write code", "capability": "generate_code", "acceptance_criteria": ["compiles"], "depends_on": []},
            {"id": "s3", "action": "explain it", "capability": "explain_code", "acceptance_criteria": [], "depends_on": ["s1", "s2"]},
        ]})
    }

    fn record(index: i32, output: Value) -> StepRecord {
        StepRecord {
            index,
            name: format!("step{index}"),
            capability: String::new(),
            status: "succeeded".into(),
            output: Some(output),
            error: None,
            usage: Usage::default(),
            arm: None,
            started_at: Utc::now(),
            finished_at: Utc::now(),
        }
    }

    #[test]
    fn a_plan_is_checked() {
        assert!(Plan::parse(&plan_value()).is_ok());
        let step = |id: &str, capability: &str, deps: &[&str]| json!({"id": id, "action": "x", "capability": capability, "depends_on": deps});
        for (steps, expected) in [
            (json!([]), "0 steps"),
            (json!(vec![step("a", "retrieve", &[]); 8]), "8 steps"),
            (json!([step("a", "plan", &[])]), "cannot use"),
            (json!([step("a", "fly", &[])]), "cannot use"),
            (
                json!([step("a", "retrieve", &["b"]), step("b", "retrieve", &[])]),
                "not an earlier step",
            ),
            (
                json!([step("a", "retrieve", &["a"])]),
                "not an earlier step",
            ),
            (
                json!([step("a", "retrieve", &[]), step("a", "retrieve", &[])]),
                "appears twice",
            ),
            (json!([step("judge", "retrieve", &[])]), "reserved"),
            (json!([step("", "retrieve", &[])]), "1 to 64"),
        ] {
            let error = Plan::parse(&json!({ "steps": steps })).unwrap_err();
            assert!(error.contains(expected), "{steps}: {error}");
        }
        assert!(
            Plan::parse(&json!({"nope": 1}))
                .unwrap_err()
                .contains("unreadable")
        );
    }

    #[test]
    fn text_of_prefers_text_fields() {
        assert_eq!(text_of(&json!("plain")), "plain");
        assert_eq!(
            text_of(&json!({"code": "fn x() {}", "other": 1})),
            "fn x() {}"
        );
        assert_eq!(text_of(&json!({"documents": []})), "{\"documents\":[]}");
    }

    #[test]
    fn verdicts_fail_with_kinds_only() {
        assert!(ArmSteps::guardian_verdict(&json!({"allowed": true, "risk": "low"}), "g").is_ok());
        let blocked = ArmSteps::guardian_verdict(
            &json!({"allowed": false, "risk": "high", "findings": [{"kind": "pii_email", "text": "a@b.c"}, {"kind": "pii_email"}]}),
            "g",
        )
        .unwrap_err();
        assert_eq!(blocked.kind(), "unsafe_output");
        let message = blocked.to_string();
        assert!(
            message.contains("risk high; findings: pii_email"),
            "{message}"
        );
        assert!(!message.contains("a@b.c"));
        // Allowed but high risk still fails the task.
        assert!(
            ArmSteps::guardian_verdict(&json!({"allowed": true, "risk": "high"}), "g").is_err()
        );
        assert_eq!(
            ArmSteps::guardian_verdict(&json!({"risk": "low"}), "g")
                .unwrap_err()
                .kind(),
            "arm_protocol_error"
        );
        assert!(ArmSteps::judge_verdict(&json!({"valid": true, "score": 1.0}), "j").is_ok());
        let rejected = ArmSteps::judge_verdict(
            &json!({"valid": false, "score": 0.25, "issues": ["too short"]}),
            "j",
        )
        .unwrap_err();
        assert_eq!(rejected.kind(), "acceptance_failed");
        assert!(rejected.to_string().contains("(score 0.25): too short"));
    }

    #[test]
    fn steps_run_in_dependency_order_with_independent_ones_together() {
        let names = |done: &[StepRecord]| -> Vec<(i32, String)> {
            schedule(done)
                .unwrap()
                .into_iter()
                .map(|s| (s.index, s.name))
                .collect()
        };
        assert_eq!(names(&[]), [(0, "plan".to_owned())]);
        let mut done = vec![record(0, plan_value())];
        assert_eq!(names(&done), [(1, "s1".to_owned()), (2, "s2".to_owned())]);
        done.push(record(2, json!("code")));
        assert_eq!(names(&done), [(1, "s1".to_owned())], "s3 waits for s1 too");
        done.push(record(1, json!("docs")));
        assert_eq!(names(&done), [(3, "s3".to_owned())]);
        done.push(record(3, json!("explained")));
        assert_eq!(names(&done), [(4, "guardian".to_owned())]);
        done.push(record(4, json!({"allowed": true})));
        assert_eq!(names(&done), [(5, "judge".to_owned())]);
        done.push(record(5, json!({"valid": true})));
        assert!(names(&done).is_empty());
        // A stored plan that no longer reads fails the task, it is not re-planned.
        let broken = vec![record(0, json!({"steps": []}))];
        assert_eq!(schedule(&broken).unwrap_err().kind(), "invalid_plan");
    }

    #[test]
    fn sinks_make_the_final_text() {
        let plan = Plan::parse(&plan_value()).unwrap();
        let done = vec![record(3, json!({"explanation": "it works"}))];
        assert_eq!(ArmSteps::final_text(&plan, &done), "it works");
        let two_sinks = Plan::parse(&json!({"steps": [
            {"id": "a", "action": "x", "capability": "retrieve"},
            {"id": "b", "action": "y", "capability": "retrieve"},
        ]}))
        .unwrap();
        let done = vec![
            record(1, json!({"text": "A"})),
            record(2, json!({"text": "B"})),
        ];
        assert_eq!(ArmSteps::final_text(&two_sinks, &done), "[a]\nA\n\n[b]\nB");
    }
}
