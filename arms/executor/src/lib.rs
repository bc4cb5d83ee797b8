//! The executor arm (capability `run_command`): runs one allow-listed
//! command as argv (never a shell) in a confined working directory, with a
//! scrubbed environment, a timeout that kills the process group and an
//! output cap. Each call must carry a short-lived capability token signed by
//! the orchestrator for this task and this command. Anything not allowed is
//! a 403 naming the reason, counted as `outcome="denied"`.

pub mod policy;
pub mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arm_kit::{Arm, ArmError, ArmParts, Call};
use arm_protocol::capability_token::{self, CAPABILITY_TOKEN_HEADER};
use arm_protocol::{ArmKind, ArmUsage, ExecuteResponse};
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::{Kit, KitArgs};

use crate::policy::{CommandPolicy, DEFAULT_COMMANDS};
use crate::run::{Limits, Outcome};

/// Most arguments of one command.
pub const MAX_ARGS: usize = 64;
/// Longest argument, in characters.
pub const MAX_ARG_CHARS: usize = 4_096;
/// `command` label of commands outside the allow-list (bounded cardinality).
pub const OTHER_COMMAND: &str = "other";
/// `outcome` values of `octollm_executor_commands_total`.
pub const OUTCOMES: [&str; 4] = ["ok", "nonzero", "timeout", "denied"];

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "executor-arm",
    version,
    about = "OctoLLM executor arm: runs allow-listed commands without a shell, confined and time-limited.",
    long_about = "OctoLLM executor arm: POST /v1/execute with capability `run_command` and input \
{command, args} runs the command as argv (never through a shell) in the working directory, \
with an empty environment but PATH, no stdin, a timeout that kills its process group and a \
cap on the output kept. Every call needs the orchestrator's capability token for the task and \
the command in the x-octollm-capability header. Anything not allowed is answered 403 with \
the reason.\n\nEvery flag can also be set through the environment variable shown next to it."
)]
pub struct Args {
    #[command(flatten)]
    pub kit: KitArgs,

    /// Programs that may run, comma separated; each must be in /usr/bin or /bin.
    #[arg(long, env = "EXECUTOR_ALLOWED_COMMANDS", default_value = DEFAULT_COMMANDS)]
    pub allowed_commands: String,

    /// The directory commands run in; relative paths in arguments stay inside it.
    #[arg(long, env = "EXECUTOR_WORKDIR")]
    pub workdir: PathBuf,

    /// A command still running after this long is killed with its process group.
    #[arg(long, env = "EXECUTOR_COMMAND_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub command_timeout: Duration,

    /// Bytes of stdout (and of stderr) kept; the rest is read and dropped.
    #[arg(long, env = "EXECUTOR_MAX_OUTPUT_BYTES", default_value_t = 64 * 1024)]
    pub max_output_bytes: usize,

    /// The capability signing key shared with the orchestrator. Prefer the file.
    #[arg(long, env = "OCTOLLM_CAPABILITY_KEY", hide_env_values = true)]
    pub capability_key: Option<String>,

    /// File holding the capability signing key (at least 16 bytes).
    #[arg(long, env = "OCTOLLM_CAPABILITY_KEY_FILE")]
    pub capability_key_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error(transparent)]
    Key(#[from] capability_token::KeyError),
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Builds the executor from its flags.
pub fn build(args: &Args, kit: &Kit) -> Result<ArmParts<Executor>, ExecutorError> {
    let key = capability_token::load_key(
        args.capability_key.as_deref(),
        args.capability_key_file.as_deref(),
    )?;
    let policy = CommandPolicy::new(&args.allowed_commands, &args.workdir)?;
    tracing::info!(
        workdir = %policy.workdir().display(),
        commands = ?policy.names().collect::<Vec<_>>(),
        "executor policy"
    );
    let executor = Executor::new(
        policy,
        key,
        Limits {
            timeout: args.command_timeout,
            max_output_bytes: args.max_output_bytes,
        },
        kit.registry(),
    )?;
    Ok(ArmParts::new(executor))
}

pub struct Executor {
    policy: CommandPolicy,
    key: Arc<Vec<u8>>,
    /// Tokens that ran a command: each runs once.
    used: capability_token::UsedTokens,
    limits: Limits,
    commands: IntCounterVec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandInput {
    command: String,
    #[serde(default)]
    args: Vec<String>,
}

impl Executor {
    pub fn new(
        policy: CommandPolicy,
        key: Vec<u8>,
        limits: Limits,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let commands = IntCounterVec::new(
            Opts::new(
                "octollm_executor_commands_total",
                "Commands asked of the executor, by command (allow-listed name or `other`) and outcome (ok/nonzero/timeout/denied).",
            ),
            &["command", "outcome"],
        )?;
        registry.register(Box::new(commands.clone()))?;
        for name in policy.names() {
            for outcome in OUTCOMES {
                commands.with_label_values(&[name, outcome]);
            }
        }
        commands.with_label_values(&[OTHER_COMMAND, "denied"]);
        Ok(Self {
            policy,
            key: Arc::new(key),
            used: Default::default(),
            limits,
            commands,
        })
    }

    fn label<'a>(&self, command: &'a str) -> &'a str {
        if self.policy.allows(command) {
            command
        } else {
            OTHER_COMMAND
        }
    }

    fn deny(&self, command: &str, reason: String) -> ArmError {
        self.commands
            .with_label_values(&[self.label(command), "denied"])
            .inc();
        tracing::warn!(command = self.label(command), %reason, "command denied");
        ArmError::Forbidden(reason)
    }

    /// The capability token: present, signed with our key, unexpired, for
    /// this task and step, granting this command with these arguments.
    fn authorise(
        &self,
        call: &Call,
        input: &CommandInput,
    ) -> Result<capability_token::CapabilityClaims, String> {
        let token = call
            .headers
            .get(CAPABILITY_TOKEN_HEADER)
            .ok_or_else(|| {
                format!("a capability token is required in the {CAPABILITY_TOKEN_HEADER} header")
            })?
            .to_str()
            .map_err(|_| "the capability token is not valid ASCII".to_owned())?;
        let claims = capability_token::verify(&self.key, token.trim(), chrono::Utc::now())
            .map_err(|e| e.to_string())?;
        claims
            .authorise(call.task_id, &call.step_id, &input.command, &input.args)
            .map_err(|e| e.to_string())?;
        Ok(claims)
    }
}

/// Counts a run as `timeout` if it is dropped (deadline) before it reports.
struct RunCount<'a> {
    commands: &'a IntCounterVec,
    command: &'a str,
    outcome: Option<Outcome>,
}

impl Drop for RunCount<'_> {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or(Outcome::Timeout);
        self.commands
            .with_label_values(&[self.command, outcome.as_str()])
            .inc();
    }
}

impl Arm for Executor {
    fn kind(&self) -> ArmKind {
        ArmKind::Executor
    }

    fn cost_tier(&self) -> u8 {
        1
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["command"],
            "properties": {
                "command": {"type": "string", "minLength": 1, "maxLength": 64},
                "args": {
                    "type": "array",
                    "maxItems": MAX_ARGS,
                    "items": {"type": "string", "maxLength": MAX_ARG_CHARS}
                }
            }
        })
    }

    fn output_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["command", "outcome", "exit_code", "stdout", "stderr",
                         "stdout_truncated", "stderr_truncated", "duration_ms"],
            "properties": {
                "command": {"type": "string"},
                "outcome": {"enum": ["ok", "nonzero", "timeout"]},
                "exit_code": {"type": ["integer", "null"]},
                "stdout": {"type": "string"},
                "stderr": {"type": "string"},
                "stdout_truncated": {"type": "boolean"},
                "stderr_truncated": {"type": "boolean"},
                "duration_ms": {"type": "integer", "minimum": 0}
            }
        })
    }

    async fn execute(&self, call: Call) -> Result<ExecuteResponse, ArmError> {
        let input: CommandInput = call.input()?;
        let command = input.command.as_str();
        let claims = match self.authorise(&call, &input) {
            Ok(claims) => claims,
            Err(reason) => return Err(self.deny(command, reason)),
        };
        let program = match self.policy.check(command, &input.args) {
            Ok(program) => program.to_owned(),
            Err(denial) => return Err(self.deny(command, denial.to_string())),
        };
        if let Err(replayed) = self.used.first_use(&claims, chrono::Utc::now()) {
            return Err(self.deny(command, replayed.to_string()));
        }
        let mut count = RunCount {
            commands: &self.commands,
            command: self.label(command),
            outcome: None,
        };
        let report = run::run(&program, &input.args, self.policy.workdir(), self.limits)
            .await
            .map_err(|e| {
                count.outcome = Some(Outcome::Nonzero);
                ArmError::Unavailable(format!("cannot start {command}: {e}"))
            })?;
        count.outcome = Some(report.outcome);
        tracing::info!(
            command,
            outcome = report.outcome.as_str(),
            exit_code = report.exit_code,
            duration_ms = report.duration_ms,
            "command ran"
        );
        let confidence = match report.outcome {
            Outcome::Ok => 1.0,
            Outcome::Nonzero => 0.5,
            Outcome::Timeout => 0.0,
        };
        let mut output = serde_json::to_value(&report)
            .map_err(|e| ArmError::Upstream(format!("cannot encode the report: {e}")))?;
        output["command"] = json!(command);
        Ok(ExecuteResponse {
            output,
            usage: ArmUsage::default(),
            confidence,
        })
    }
}
