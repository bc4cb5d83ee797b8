//! The planner arm (capability `plan`): breaks a goal into 1–7 steps with
//! the LLM, as structured output checked against [`plan::schema`] and the
//! rules in [`plan::check`]; an invalid plan is asked for again once, then
//! the answer is a 502 naming what was wrong.

pub mod plan;

use arm_kit::llm::{self, StructuredOutput};
use arm_kit::{Arm, ArmError, ArmParts, Call, Schema};
use arm_protocol::{ArmKind, ExecuteResponse, capability};
use llm_client::{ChatMessage, LlmArgs, LlmClient, LlmConfig};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::{Kit, KitArgs};

/// Longest goal accepted, in characters.
pub const GOAL_MAX_CHARS: usize = 10_000;
/// Longest context accepted, in characters.
pub const CONTEXT_MAX_CHARS: usize = 50_000;
/// Largest plan asked of the LLM, in tokens.
const PLAN_MAX_TOKENS: u32 = 2_048;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "planner-arm",
    version,
    about = "OctoLLM planner arm: breaks a goal into 1-7 steps with the LLM.",
    long_about = "OctoLLM planner arm: POST /v1/execute with capability `plan` and input \
{goal, context?} answers a plan of 1-7 steps, each {id, action, capability, \
acceptance_criteria, depends_on}, asked of the LLM as structured output and validated; an \
invalid plan is asked for once more, then the answer is 502.\n\nEvery flag can also be set \
through the environment variable shown next to it."
)]
pub struct Args {
    #[command(flatten)]
    pub kit: KitArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    #[error(transparent)]
    Llm(#[from] llm_client::LlmError),
    #[error("the plan schema does not compile: {0}")]
    Schema(String),
}

/// Builds the planner from its flags; its LLM metrics go to the kit's registry.
pub fn build(args: &Args, kit: &Kit) -> Result<ArmParts<Planner>, PlannerError> {
    let llm = LlmClient::new(LlmConfig::from_args(&args.llm)?, kit.registry())?;
    Ok(ArmParts::new(Planner::new(llm)?))
}

pub struct Planner {
    llm: LlmClient,
    plan_schema: Schema,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanInput {
    goal: String,
    #[serde(default)]
    context: Option<String>,
}

impl Planner {
    pub fn new(llm: LlmClient) -> Result<Self, PlannerError> {
        Ok(Self {
            llm,
            plan_schema: Schema::compile(plan::schema()).map_err(PlannerError::Schema)?,
        })
    }

    fn messages(input: &PlanInput) -> Vec<ChatMessage> {
        let capabilities = plan::step_capabilities()
            .into_iter()
            .map(|c| format!("- {c}: {}", describe(c)))
            .collect::<Vec<_>>()
            .join("\n");
        let system = format!(
            "You are the planner of OctoLLM. Break the user's goal into 1 to {max} steps that \
             together achieve it. Each step has:\n\
             - id: short and unique, e.g. s1\n\
             - action: what to do, in one imperative sentence\n\
             - capability: exactly one of\n{capabilities}\n\
             - acceptance_criteria: 1 to {criteria} checkable statements that are true once the step is done\n\
             - depends_on: ids of earlier steps whose output this step needs (never a later step, never itself)\n\
             Prefer few steps. Answer with JSON only, matching the schema.",
            max = plan::MAX_STEPS,
            criteria = plan::MAX_CRITERIA,
        );
        let mut user = format!("Goal:\n{}\n", input.goal.trim());
        if let Some(context) = input.context.as_deref().filter(|c| !c.trim().is_empty()) {
            user.push_str(&format!("\nContext:\n{}\n", context.trim()));
        }
        vec![ChatMessage::system(system), ChatMessage::user(user)]
    }
}

/// What each step capability is for, as the LLM is told.
fn describe(capability: &str) -> &'static str {
    match capability {
        capability::RETRIEVE => "search the knowledge base for relevant documents",
        capability::GENERATE_CODE => "write code in a given language",
        capability::EXPLAIN_CODE => "explain what a piece of code does",
        capability::VALIDATE => "check an output against criteria",
        capability::SAFETY_CHECK => "screen text for personal data, secrets and prompt injection",
        capability::RUN_COMMAND => {
            "run one allow-listed command (echo, ls, cat, wc, head, tail, date, uname, sleep) without a shell"
        }
        _ => "",
    }
}

impl Arm for Planner {
    fn kind(&self) -> ArmKind {
        ArmKind::Planner
    }

    fn cost_tier(&self) -> u8 {
        3
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["goal"],
            "properties": {
                "goal": {"type": "string", "minLength": 1, "maxLength": GOAL_MAX_CHARS, "pattern": "\\S"},
                "context": {"type": ["string", "null"], "maxLength": CONTEXT_MAX_CHARS}
            }
        })
    }

    fn output_schema(&self) -> Value {
        plan::schema()
    }

    async fn execute(&self, call: Call) -> Result<ExecuteResponse, ArmError> {
        let input: PlanInput = call.input()?;
        let output = StructuredOutput {
            name: "plan",
            schema: &self.plan_schema,
            max_tokens: PLAN_MAX_TOKENS,
        };
        let planned = llm::structured(
            &self.llm,
            Self::messages(&input),
            &output,
            call.deadline,
            plan::check,
        )
        .await?;
        tracing::info!(
            steps = planned.value.steps.len(),
            attempts = planned.attempts,
            "planned"
        );
        Ok(ExecuteResponse {
            output: serde_json::to_value(&planned.value)
                .map_err(|e| ArmError::Upstream(format!("cannot encode the plan: {e}")))?,
            usage: planned.usage,
            // A plan that needed a second attempt is less trustworthy.
            confidence: if planned.attempts == 1 { 0.9 } else { 0.7 },
        })
    }
}
