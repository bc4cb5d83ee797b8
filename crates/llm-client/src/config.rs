//! Client configuration: clap flags (with env) and the resolved [`LlmConfig`].

use std::{fmt, path::PathBuf, time::Duration};

use crate::{LlmError, PriceTable};

/// An API key. Never logged: `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; surrounding whitespace (e.g. a file's trailing newline) is dropped.
    pub fn new(key: impl AsRef<str>) -> Self {
        ApiKey(key.as_ref().trim().to_owned())
    }

    /// The key itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl std::str::FromStr for ApiKey {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ApiKey::new(s))
    }
}

/// LLM flags for a service's command line: `#[command(flatten)] llm: LlmArgs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LlmArgs {
    /// OpenAI-compatible base URL (OpenAI, vLLM, Ollama or llm-sim).
    #[arg(
        long = "llm-base-url",
        env = "LLM_BASE_URL",
        default_value = "http://127.0.0.1:8090/v1"
    )]
    pub base_url: String,

    /// File holding the API key (wins over LLM_API_KEY).
    #[arg(long = "llm-api-key-file", env = "LLM_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// API key; prefer the env var or the key file to the flag.
    #[arg(long = "llm-api-key", env = "LLM_API_KEY", hide_env_values = true)]
    pub api_key: Option<ApiKey>,

    /// Default model.
    #[arg(long = "llm-model", env = "LLM_MODEL", default_value = "sim-1")]
    pub model: String,

    /// Provider name, used only as a metrics label.
    #[arg(
        long = "llm-provider",
        env = "LLM_PROVIDER",
        default_value = "openai-compatible"
    )]
    pub provider: String,

    /// Timeout of each attempt (humantime, e.g. 30s, 2m).
    #[arg(long = "llm-timeout", env = "LLM_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Retries after the first attempt (429, 5xx, timeouts, connection errors).
    #[arg(long = "llm-max-retries", env = "LLM_MAX_RETRIES", default_value_t = 3)]
    pub max_retries: u32,

    /// Base of the full-jitter exponential backoff.
    #[arg(long = "llm-backoff-base", env = "LLM_BACKOFF_BASE", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub backoff_base: Duration,

    /// Cap of the full-jitter exponential backoff.
    #[arg(long = "llm-backoff-cap", env = "LLM_BACKOFF_CAP", default_value = "5s", value_parser = humantime::parse_duration)]
    pub backoff_cap: Duration,

    /// JSON price table {"MODEL": {"prompt_usd_per_million": .., "completion_usd_per_million": ..}};
    /// replaces the built-in table.
    #[arg(long = "llm-price-table", env = "LLM_PRICE_TABLE")]
    pub price_table: Option<PathBuf>,
}

/// Everything an [`crate::LlmClient`] needs, resolved (files read).
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// e.g. `http://127.0.0.1:8090/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    /// Model used when a request names none.
    pub model: String,
    /// Metrics label only.
    pub provider: String,
    /// Timeout of each attempt (further limited by the call's deadline).
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub prices: PriceTable,
}

impl Default for LlmConfig {
    /// The same defaults as the flags, with the built-in price table.
    fn default() -> Self {
        LlmConfig {
            base_url: "http://127.0.0.1:8090/v1".to_owned(),
            api_key: None,
            model: "sim-1".to_owned(),
            provider: "openai-compatible".to_owned(),
            timeout: Duration::from_secs(60),
            max_retries: 3,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(5),
            prices: PriceTable::builtin(),
        }
    }
}

impl LlmConfig {
    /// Defaults pointed at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        LlmConfig {
            base_url: base_url.into(),
            ..LlmConfig::default()
        }
    }

    /// Resolves the flags: reads the key file and the price table.
    pub fn from_args(args: &LlmArgs) -> Result<Self, LlmError> {
        let api_key = match &args.api_key_file {
            Some(path) => {
                let key = std::fs::read_to_string(path).map_err(|e| {
                    LlmError::Config(format!("cannot read API key file {}: {e}", path.display()))
                })?;
                Some(ApiKey::new(key))
            }
            None => args.api_key.clone(),
        }
        .filter(|k| !k.expose().is_empty());
        let prices = match &args.price_table {
            Some(path) => PriceTable::load(path)?,
            None => PriceTable::builtin(),
        };
        Ok(LlmConfig {
            base_url: args.base_url.clone(),
            api_key,
            model: args.model.clone(),
            provider: args.provider.clone(),
            timeout: args.timeout,
            max_retries: args.max_retries,
            backoff_base: args.backoff_base,
            backoff_cap: args.backoff_cap,
            prices,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        llm: LlmArgs,
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let cli = Cli::try_parse_from(["svc"]).unwrap();
        let config = LlmConfig::from_args(&cli.llm).unwrap();
        assert_eq!(config.base_url, "http://127.0.0.1:8090/v1");
        assert_eq!(config.model, "sim-1");
        assert_eq!(config.timeout, Duration::from_secs(60));
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.prices, PriceTable::builtin());
    }

    #[test]
    fn keys_are_read_from_files_and_never_printed() {
        let path = std::env::temp_dir().join(format!("llm-key-{}", std::process::id()));
        std::fs::write(&path, "sk-test-123\n").unwrap();
        let cli = Cli::try_parse_from([
            "svc",
            "--llm-api-key-file",
            path.to_str().unwrap(),
            "--llm-timeout",
            "1s 500ms",
        ])
        .unwrap();
        let config = LlmConfig::from_args(&cli.llm).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(config.api_key.as_ref().unwrap().expose(), "sk-test-123");
        assert_eq!(config.timeout, Duration::from_millis(1500));
        assert!(!format!("{config:?}").contains("sk-test"));

        let cli = Cli::try_parse_from(["svc", "--llm-api-key", "sk-flag"]).unwrap();
        assert!(!format!("{:?}", cli.llm).contains("sk-flag"));
    }
}
