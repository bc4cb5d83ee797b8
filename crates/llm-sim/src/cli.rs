//! Command line of the `llm-sim` binary (every flag also reads an env var).

use std::{io, net::SocketAddr, path::PathBuf};

use clap::{Parser, ValueEnum};
use tokio::net::TcpListener;

use crate::{
    config::{
        ConfigError, ErrorConfig, ErrorWeights, Latency, PlanConfig, SimConfig, StreamConfig,
        StructuredConfig, TokenRange,
    },
    server,
    state::{AdminToken, SimState},
};

/// TEST INFRASTRUCTURE: an OpenAI-compatible chat-completions server that
/// stands in for paid LLM providers, with configurable latency, token counts
/// and injected errors.
#[derive(Debug, Parser)]
#[command(name = "llm-sim", version, about, long_about = None)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "LLM_SIM_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,

    /// Bearer token for /admin/*. When neither this nor the file is set the admin API is open.
    #[arg(long, env = "LLM_SIM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<AdminToken>,

    /// File holding the admin bearer token (alternative to --admin-token).
    #[arg(long, env = "LLM_SIM_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,

    /// Latency distribution: fixed:MS, uniform:MIN,MAX or lognormal:P50,P99 (milliseconds),
    /// or a profile: zero, realistic (p50 1.5 s, p99 8 s) or slow (p50 30 s, p99 45 s).
    #[arg(long, env = "LLM_SIM_LATENCY", default_value = "fixed:0")]
    pub latency: Latency,

    /// Completion tokens per response: N or MIN-MAX (capped by the request's max_tokens).
    #[arg(long, env = "LLM_SIM_TOKENS", default_value = "16")]
    pub tokens: TokenRange,

    /// Probability (0..1) that a chat request fails.
    #[arg(long, env = "LLM_SIM_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,

    /// Weights of the failure kinds, e.g. 429=1,500=1,timeout=0 (kinds left out weigh 0).
    #[arg(
        long,
        env = "LLM_SIM_ERROR_KINDS",
        default_value = "429=1,500=1,timeout=0"
    )]
    pub error_kinds: ErrorWeights,

    /// Retry-After value of injected 429s, in seconds.
    #[arg(long, env = "LLM_SIM_RETRY_AFTER_SECS", default_value_t = 1)]
    pub retry_after_secs: u64,

    /// How long an injected timeout hangs before answering 504, in seconds.
    #[arg(long, env = "LLM_SIM_TIMEOUT_SECS", default_value_t = 600)]
    pub timeout_secs: u64,

    /// Fraction (0..1) of structured (`response_format: json_schema`) answers
    /// that are invalid JSON, spread evenly (0.5: every other one).
    #[arg(long, env = "LLM_SIM_STRUCTURED_INVALID_RATE", default_value_t = 0.0)]
    pub structured_invalid_rate: f64,

    /// Share (0..1) of a streamed answer's latency before its first content chunk.
    #[arg(long, env = "LLM_SIM_STREAM_TTFT_FRACTION", default_value_t = StreamConfig::default().ttft_fraction)]
    pub stream_ttft_fraction: f64,

    /// Completion tokens per content chunk of a streamed answer.
    #[arg(long, env = "LLM_SIM_STREAM_CHUNK_TOKENS", default_value_t = StreamConfig::default().chunk_tokens)]
    pub stream_chunk_tokens: u32,

    /// The plan mix, as the JSON of the `plans` settings section, e.g.
    /// {"seed":1,"shapes":[{"weight":3,"steps":["retrieve"]},{"steps":["run_command"]}]}.
    #[arg(long, env = "LLM_SIM_PLANS", value_parser = parse_plans)]
    pub plans: Option<PlanConfig>,

    /// Tokio worker threads (default: one per core).
    #[arg(long, env = "LLM_SIM_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// Log format.
    #[arg(long, env = "LLM_SIM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How `llm-sim` writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    /// The startup settings the flags describe (validated).
    pub fn sim_config(&self) -> io::Result<SimConfig> {
        let config = SimConfig {
            latency: self.latency,
            tokens: self.tokens,
            errors: ErrorConfig {
                rate: self.error_rate,
                kinds: self.error_kinds,
                retry_after_s: self.retry_after_secs,
                timeout_s: self.timeout_secs,
            },
            structured: StructuredConfig {
                invalid_rate: self.structured_invalid_rate,
            },
            stream: StreamConfig {
                ttft_fraction: self.stream_ttft_fraction,
                chunk_tokens: self.stream_chunk_tokens,
            },
            plans: self.plans.clone().unwrap_or_default(),
        };
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(config)
    }

    /// The admin token from the flag, env or file. A token given but empty
    /// (an empty file, `LLM_SIM_ADMIN_TOKEN=`) is an error: read as "no
    /// token", it would leave the admin API open to anyone.
    pub fn admin_token(&self) -> io::Result<Option<AdminToken>> {
        let token = self.given_admin_token()?;
        if token.as_ref().is_some_and(AdminToken::is_empty) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the admin token (LLM_SIM_ADMIN_TOKEN or its file) is empty: give one, or set neither to run without admin auth",
            ));
        }
        Ok(token)
    }

    fn given_admin_token(&self) -> io::Result<Option<AdminToken>> {
        match (&self.admin_token, &self.admin_token_file) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot read admin token file {}: {e}", path.display()),
                    )
                })?;
                Ok(Some(AdminToken::new(text)))
            }
            (None, None) => Ok(None),
        }
    }
}

fn parse_plans(json: &str) -> Result<PlanConfig, ConfigError> {
    let plans: PlanConfig = serde_json::from_str(json)
        .map_err(|e| ConfigError(format!("invalid --plans JSON: {e}")))?;
    plans.validate()?;
    Ok(plans)
}

/// Starts the tracing subscriber (`RUST_LOG` filters, default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A Tokio runtime with `worker_threads` workers (Tokio's default when `None`).
pub fn runtime(worker_threads: Option<usize>) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads {
        builder.worker_threads(n.max(1));
    }
    builder.enable_all().build()
}

/// Binds, serves and returns after SIGINT/SIGTERM.
pub async fn run(cli: Cli) -> io::Result<()> {
    let state = SimState::new(cli.sim_config()?, cli.admin_token()?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(cli.listen)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", cli.listen)))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        config = ?state.config(),
        admin_auth = state.admin_token_set(),
        "llm-sim (test infrastructure) listening"
    );
    server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("llm-sim stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn an_empty_admin_token_is_refused_not_read_as_none() {
        let dir = std::env::temp_dir().join(format!("llm-sim-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "\n").unwrap();
        let cli = Cli::parse_from(["llm-sim", "--admin-token-file", file.to_str().unwrap()]);
        let error = cli.admin_token().unwrap_err();
        assert!(error.to_string().contains("is empty"), "{error}");
        std::fs::write(&file, "admin-token-0123456789\n").unwrap();
        let cli = Cli::parse_from(["llm-sim", "--admin-token-file", file.to_str().unwrap()]);
        assert!(cli.admin_token().unwrap().is_some());
        let cli = Cli::parse_from(["llm-sim"]);
        assert!(cli.admin_token().unwrap().is_none(), "unset stays allowed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
