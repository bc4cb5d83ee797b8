//! The wire contract between the orchestrator and the six arms.
//!
//! Every arm serves `GET /v1/capabilities` ([`ArmDescription`]) and
//! `POST /v1/execute` ([`ExecuteRequest`] → [`ExecuteResponse`]), both behind
//! the service token. Errors are problem+json; the orchestrator treats 4xx as
//! the step's own fault (no retry, no failover) and 5xx, timeouts and refused
//! connections as the arm's fault (retry, then fail over).
//!
//! The executor additionally requires a [`capability_token`] in the
//! [`CAPABILITY_TOKEN_HEADER`]: HMAC-signed by the orchestrator, scoped to a
//! task and a list of commands, and short-lived.

pub mod capability_token;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use capability_token::{CAPABILITY_TOKEN_HEADER, CapabilityClaims, TokenError};

/// The six arms, with their default ports (docs/contracts.md, "Ports").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArmKind {
    Planner,
    Retriever,
    Coder,
    Judge,
    Guardian,
    Executor,
}

impl ArmKind {
    pub const ALL: [ArmKind; 6] = [
        Self::Planner,
        Self::Retriever,
        Self::Coder,
        Self::Judge,
        Self::Guardian,
        Self::Executor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Planner => "planner",
            Self::Retriever => "retriever",
            Self::Coder => "coder",
            Self::Judge => "judge",
            Self::Guardian => "guardian",
            Self::Executor => "executor",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Self::Planner => 8001,
            Self::Retriever => 8002,
            Self::Coder => 8003,
            Self::Judge => 8004,
            Self::Guardian => 8005,
            Self::Executor => 8006,
        }
    }

    /// The capabilities this kind of arm serves.
    pub fn capabilities(self) -> &'static [&'static str] {
        match self {
            Self::Planner => &[capability::PLAN],
            Self::Retriever => &[capability::RETRIEVE],
            Self::Coder => &[capability::GENERATE_CODE, capability::EXPLAIN_CODE],
            Self::Judge => &[capability::VALIDATE],
            Self::Guardian => &[capability::SAFETY_CHECK],
            Self::Executor => &[capability::RUN_COMMAND],
        }
    }
}

/// Capability names: what a planned step asks for; arms are chosen by it.
pub mod capability {
    pub const PLAN: &str = "plan";
    pub const RETRIEVE: &str = "retrieve";
    pub const GENERATE_CODE: &str = "generate_code";
    pub const EXPLAIN_CODE: &str = "explain_code";
    pub const VALIDATE: &str = "validate";
    pub const SAFETY_CHECK: &str = "safety_check";
    pub const RUN_COMMAND: &str = "run_command";
    /// Every capability a plan may name, in a stable order.
    pub const ALL: [&str; 7] = [
        PLAN,
        RETRIEVE,
        GENERATE_CODE,
        EXPLAIN_CODE,
        VALIDATE,
        SAFETY_CHECK,
        RUN_COMMAND,
    ];
}

/// `GET /v1/capabilities`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArmDescription {
    /// The arm's name, e.g. `planner`.
    pub name: String,
    pub capabilities: Vec<String>,
    /// 1 (cheapest: no LLM call) to 3 (one or more LLM calls per step).
    pub cost_tier: u8,
    /// JSON Schema of `ExecuteRequest.input`.
    pub input_schema: Value,
    /// JSON Schema of `ExecuteResponse.output`.
    pub output_schema: Value,
}

/// `POST /v1/execute` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    pub task_id: Uuid,
    /// The step's id within its task's plan, e.g. `s2`.
    pub step_id: String,
    pub capability: String,
    /// Capability-specific input, validated against the arm's input schema.
    pub input: Value,
    /// The arm gives up (504 problem) rather than answer after this instant.
    pub deadline: DateTime<Utc>,
}

/// `POST /v1/execute` success body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecuteResponse {
    pub output: Value,
    pub usage: ArmUsage,
    /// The arm's confidence in its output, 0.0 to 1.0.
    pub confidence: f64,
}

/// LLM spending for one execution; zero for arms that call no LLM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArmUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    /// LLM time the provider reported as simulated (llm-sim's
    /// `x-llm-sim-delay-ms`), summed over every call; 0 against real
    /// providers. Lets a load test subtract the LLM's share of a task exactly.
    #[serde(default)]
    pub simulated_llm_ms: u64,
}
