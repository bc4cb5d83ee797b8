//! Orchestrator settings: flags, or the environment variables named in `--help`.

use std::time::Duration;

use clap::Parser;
use llm_client::LlmArgs;
use service_kit::KitArgs;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "OctoLLM orchestrator: accepts tasks, persists them in PostgreSQL and runs them on a worker pool.",
    long_about = "OctoLLM orchestrator: accepts tasks over HTTP (POST /v1/tasks), commits each to \
PostgreSQL before acknowledging it, and runs them on a bounded worker pool that claims work with \
FOR UPDATE SKIP LOCKED plus an expiring lease, so several replicas can share one database and \
a crashed replica's tasks resume elsewhere.\n\nEvery flag can also be set through the environment \
variable shown next to it."
)]
pub struct Args {
    #[command(flatten)]
    pub kit: KitArgs,

    #[command(flatten)]
    pub llm: LlmArgs,

    #[command(flatten)]
    pub arms: crate::arms::ArmArgs,

    /// PostgreSQL connection URL, e.g. postgres://octollm@127.0.0.1:5432/octollm.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Largest number of PostgreSQL connections this replica opens.
    #[arg(long, env = "OCTOLLM_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,

    /// Tasks this replica runs at once.
    #[arg(long, env = "OCTOLLM_WORKERS", default_value_t = 64)]
    pub workers: usize,

    /// Queued tasks beyond which POST /v1/tasks answers 429.
    #[arg(long, env = "OCTOLLM_QUEUE_BOUND", default_value_t = 10_000)]
    pub queue_bound: i64,

    /// How long a claimed task stays ours without renewal; after a crash,
    /// another replica (or this one restarted) resumes the task once it expires.
    #[arg(long, env = "OCTOLLM_TASK_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub task_lease: Duration,

    /// How long a finished task keeps its texts (goal, context, criteria,
    /// result, step outputs); then they are blanked, keeping states, error
    /// kinds, usage and times.
    #[arg(long, env = "OCTOLLM_TEXT_RETENTION", default_value = "30days", value_parser = humantime::parse_duration)]
    pub text_retention: Duration,

    /// A task claimed this many times without finishing is failed, not retried.
    #[arg(long, env = "OCTOLLM_MAX_TASK_ATTEMPTS", default_value_t = 3)]
    pub max_task_attempts: i32,

    /// Reflex layer base URL; every submitted task is screened there first.
    /// Unset: tasks are accepted unscreened (a warning says so at start-up).
    #[arg(long, env = "REFLEX_URL")]
    pub reflex_url: Option<String>,

    /// File holding the bearer token for the reflex layer.
    #[arg(long, env = "REFLEX_TOKEN_FILE")]
    pub reflex_token_file: Option<std::path::PathBuf>,

    /// When the reflex layer is unreachable, accept tasks unscreened instead
    /// of answering 503 (fail open). Default: fail closed.
    #[arg(long, env = "REFLEX_FAIL_OPEN")]
    pub reflex_fail_open: bool,

    /// How long one screening call may take.
    #[arg(long, env = "REFLEX_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub reflex_timeout: Duration,

    /// Call the reflex layer and the arms over HTTP/2 (prior knowledge): one
    /// connection carries every call in flight. `false`: HTTP/1.1, a
    /// connection per call in flight, which a Kubernetes Service spreads over
    /// its pods (it balances connections, not requests).
    #[arg(long, env = "OCTOLLM_INTERNAL_HTTP2", default_value_t = true, action = clap::ArgAction::Set)]
    pub internal_http2: bool,

    /// Longest `?wait=` a client may ask for on GET /v1/tasks/{id}.
    #[arg(long, env = "OCTOLLM_MAX_WAIT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub max_wait: Duration,
}
