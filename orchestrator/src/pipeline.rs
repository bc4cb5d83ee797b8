//! How a task's steps are planned and executed.
//!
//! [`StepExecutor`] is the seam: the worker asks it which steps can run next
//! given the finished ones, runs them (in parallel when there are several),
//! persists each as it finishes, and asks again until nothing is left.
//! [`LlmSteps`] plans and answers through the LLM client (used when no arms
//! are configured); the arms' `ArmSteps` plans with the planner arm and runs
//! the plan on the arms. The seam names no executor's types: an executor
//! turns its own errors into a [`StepError`].

use futures::future::BoxFuture;
use llm_client::{ChatMessage, ChatRequest, LlmClient, LlmError};
use serde_json::{Value, json};

use crate::store::{StepRecord, TaskRecord, Usage};
use crate::task::Budget;

/// One planned unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpec {
    /// Its `task_steps.step_index`: stable across resumes.
    pub index: i32,
    pub name: String,
    /// What the step needs done; arms will be chosen by it.
    pub capability: String,
}

pub struct StepContext<'a> {
    pub task: &'a TaskRecord,
    /// Steps already finished, in order.
    pub previous: &'a [StepRecord],
    pub budget: &'a BudgetMeter,
    pub deadline: tokio::time::Instant,
}

pub struct StepResult {
    pub output: Value,
    pub usage: Usage,
    /// The arm instance that ran it, if an arm did.
    pub arm: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("LLM call failed: {0}")]
    Llm(#[from] LlmError),
    #[error("{0}")]
    BudgetExceeded(String),
    #[error("no executor for capability {0:?}")]
    UnknownCapability(String),
    /// No executor could take the step (none available, or all failed).
    #[error("{0}")]
    Routing(String),
    /// An executor refused the step's input: the step's fault, not its own.
    #[error("{0}")]
    Rejected(String),
    /// The planner's plan breaks the plan rules.
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    /// A `run_command` step asked for a command the orchestrator does not grant.
    #[error("{0}")]
    CommandNotAllowed(String),
    /// An arm answered 2xx with output that does not fit its capability.
    #[error("unexpected output from arm {arm}: {detail}")]
    BadOutput { arm: String, detail: String },
    /// The guardian judged the final output unsafe.
    #[error("{0}")]
    Unsafe(String),
    /// The judge found the final output does not meet the acceptance criteria.
    #[error("{0}")]
    AcceptanceFailed(String),
}

impl StepError {
    /// Stable `error_kind` stored on the task.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Llm(_) => "llm_error",
            Self::BudgetExceeded(_) => "budget_exceeded",
            Self::UnknownCapability(_) | Self::Routing(_) => "routing_error",
            Self::Rejected(_) => "step_rejected",
            Self::InvalidPlan(_) => "invalid_plan",
            Self::CommandNotAllowed(_) => "command_not_allowed",
            Self::BadOutput { .. } => "arm_protocol_error",
            Self::Unsafe(_) => "unsafe_output",
            Self::AcceptanceFailed(_) => "acceptance_failed",
        }
    }

    /// The `'static` kind named `name` (as stored by [`StepError::kind`]),
    /// or `step_failed` for a name this build does not know.
    pub fn kind_named(name: &str) -> &'static str {
        [
            "llm_error",
            "budget_exceeded",
            "routing_error",
            "step_rejected",
            "invalid_plan",
            "command_not_allowed",
            "arm_protocol_error",
            "unsafe_output",
            "acceptance_failed",
        ]
        .into_iter()
        .find(|kind| *kind == name)
        .unwrap_or("step_failed")
    }
}

pub trait StepExecutor: Send + Sync + 'static {
    /// The unfinished steps that can run now, given the `done` ones (all
    /// succeeded); they may run in parallel. Empty: the task is complete.
    /// Must be a function of its inputs, so a resumed task continues the
    /// same way.
    fn next_steps(
        &self,
        task: &TaskRecord,
        done: &[StepRecord],
    ) -> Result<Vec<StepSpec>, StepError>;

    /// The task's result once no steps are left.
    fn result(&self, task: &TaskRecord, done: &[StepRecord]) -> Value;

    fn execute<'a>(
        &'a self,
        step: &'a StepSpec,
        context: StepContext<'a>,
    ) -> BoxFuture<'a, Result<StepResult, StepError>>;
}

/// Tracks spending against a task's budget.
#[derive(Debug, Clone)]
pub struct BudgetMeter {
    budget: Budget,
    used: Usage,
}

impl BudgetMeter {
    pub fn new(budget: Budget, used: Usage) -> Self {
        Self { budget, used }
    }

    pub fn used(&self) -> Usage {
        self.used
    }

    pub fn add(&mut self, usage: Usage) {
        self.used.add(usage);
    }

    pub fn remaining_tokens(&self) -> i64 {
        i64::from(self.budget.max_tokens) - self.used.total_tokens()
    }

    /// Before a step: fails when no tokens or money are left.
    pub fn check_before_step(&self) -> Result<(), StepError> {
        if self.remaining_tokens() <= 0 || self.used.cost_usd >= self.budget.max_cost_usd {
            return Err(self.exceeded());
        }
        Ok(())
    }

    /// After a step: fails when it spent more than the budget.
    pub fn check_after_step(&self) -> Result<(), StepError> {
        if self.remaining_tokens() < 0 || self.used.cost_usd > self.budget.max_cost_usd {
            return Err(self.exceeded());
        }
        Ok(())
    }

    fn exceeded(&self) -> StepError {
        StepError::BudgetExceeded(format!(
            "budget exhausted: used {} of {} tokens and ${:.6} of ${:.2}",
            self.used.total_tokens(),
            self.budget.max_tokens,
            self.used.cost_usd,
            self.budget.max_cost_usd
        ))
    }
}

/// Largest completion asked for in one step.
const STEP_MAX_COMPLETION_TOKENS: i64 = 1_024;

/// Plans and answers with the LLM: step 0 `plan`, step 1 `answer`.
pub struct LlmSteps {
    llm: LlmClient,
}

impl LlmSteps {
    pub fn new(llm: LlmClient) -> Self {
        Self { llm }
    }

    fn prompt(task: &TaskRecord, step: &StepSpec, previous: &[StepRecord]) -> Vec<ChatMessage> {
        let mut brief = format!("Goal:\n{}\n", task.goal);
        if let Some(context) = &task.context {
            brief.push_str(&format!("\nContext:\n{context}\n"));
        }
        for (title, items) in [
            ("Constraints", &task.constraints),
            ("Acceptance criteria", &task.acceptance_criteria),
        ] {
            if !items.is_empty() {
                brief.push_str(&format!("\n{title}:\n"));
                for item in items {
                    brief.push_str(&format!("- {item}\n"));
                }
            }
        }
        for done in previous {
            if let Some(text) = done.output.as_ref().and_then(|o| o["text"].as_str()) {
                brief.push_str(&format!("\nResult of step `{}`:\n{text}\n", done.name));
            }
        }
        let instruction = match step.capability.as_str() {
            "planning" => "Break the goal into a short numbered plan of concrete steps.",
            _ => "Carry out the plan and give the final answer to the goal.",
        };
        vec![
            ChatMessage::system(format!("You are the OctoLLM orchestrator. {instruction}")),
            ChatMessage::user(brief),
        ]
    }
}

impl StepExecutor for LlmSteps {
    /// `plan`, then `answer`: one at a time.
    fn next_steps(
        &self,
        _task: &TaskRecord,
        done: &[StepRecord],
    ) -> Result<Vec<StepSpec>, StepError> {
        let steps = [("plan", "planning"), ("answer", "generation")];
        Ok(steps
            .into_iter()
            .zip(0..)
            .find(|(_, index)| !done.iter().any(|s| s.index == *index))
            .map(|((name, capability), index)| StepSpec {
                index,
                name: name.into(),
                capability: capability.into(),
            })
            .into_iter()
            .collect())
    }

    fn result(&self, _task: &TaskRecord, done: &[StepRecord]) -> Value {
        let answer = done
            .last()
            .and_then(|s| s.output.as_ref())
            .and_then(|o| o.get("text"))
            .cloned()
            .unwrap_or_default();
        json!({ "answer": answer, "steps": done.len() })
    }

    fn execute<'a>(
        &'a self,
        step: &'a StepSpec,
        context: StepContext<'a>,
    ) -> BoxFuture<'a, Result<StepResult, StepError>> {
        Box::pin(async move {
            if !matches!(step.capability.as_str(), "planning" | "generation") {
                return Err(StepError::UnknownCapability(step.capability.clone()));
            }
            let messages = Self::prompt(context.task, step, context.previous);
            let prompt_estimate: i64 = messages
                .iter()
                .map(|m| i64::try_from(m.content.len() / 4).unwrap_or(i64::MAX))
                .sum();
            let room = context.budget.remaining_tokens() - prompt_estimate;
            if room <= 0 {
                return Err(StepError::BudgetExceeded(format!(
                    "token budget too small for step `{}`: about {prompt_estimate} prompt tokens, {} tokens left",
                    step.name,
                    context.budget.remaining_tokens()
                )));
            }
            let request = ChatRequest {
                messages,
                max_tokens: Some(u32::try_from(room.min(STEP_MAX_COMPLETION_TOKENS)).unwrap_or(1)),
                ..ChatRequest::default()
            };
            let response = self.llm.chat(request, Some(context.deadline)).await?;
            Ok(StepResult {
                output: json!({ "text": response.content, "model": response.model }),
                usage: Usage {
                    prompt_tokens: i64::try_from(response.usage.prompt_tokens).unwrap_or(i64::MAX),
                    completion_tokens: i64::try_from(response.usage.completion_tokens)
                        .unwrap_or(i64::MAX),
                    cost_usd: response.cost_usd,
                    simulated_llm_ms: response
                        .simulated_delay
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                },
                arm: None,
            })
        })
    }
}
