//! Settings every service shares, from flags or the environment (`clap` `env`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::telemetry::LogFormat;

/// Flatten into a service's own arguments with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Args)]
pub struct KitArgs {
    /// Address to listen on [default: 127.0.0.1:<the service's port>].
    #[arg(long, env = "OCTOLLM_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Log format: `json` for machines (with trace ids), `pretty` for humans.
    #[arg(long, env = "OCTOLLM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Bearer token(s) for the API, comma separated. Prefer --api-token-file.
    #[arg(long, env = "OCTOLLM_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    /// File holding the bearer token(s), one per line.
    #[arg(long, env = "OCTOLLM_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,

    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "OCTOLLM_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// A request still running after this long is answered 503.
    #[arg(long, env = "OCTOLLM_REQUEST_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[arg(long, env = "OCTOLLM_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}
