//! Arm settings: which arm instances exist, how to authenticate to them, and
//! how hard to try each one.
//!
//! `OCTOLLM_ARMS` lists `name=url` pairs separated by commas. A name is an arm
//! kind (`planner`, `retriever`, `coder`, `judge`, `guardian`, `executor`) and
//! may appear more than once: further instances of a kind are failover
//! targets. Each instance gets a label for metrics and logs: the kind for the
//! first, `<kind>-2`, `<kind>-3`, … for the next ones, so the `arm` label
//! stays bounded by the configuration and names one instance.

use std::path::PathBuf;
use std::time::Duration;

use arm_protocol::ArmKind;
use clap::Args;
// Redacts itself in `Debug`, so the secrets in `ArmArgs` never reach a log.
use llm_client::ApiKey;

#[derive(Debug, Clone, Args)]
pub struct ArmArgs {
    /// Arm instances as comma-separated `name=url` pairs, e.g.
    /// `planner=http://127.0.0.1:8001,planner=http://127.0.0.1:8011`.
    /// Unset: tasks are planned and answered by the LLM directly.
    #[arg(long, env = "OCTOLLM_ARMS")]
    pub arms: Option<String>,

    /// Bearer token for calls to the arms.
    #[arg(long, env = "OCTOLLM_ARM_TOKEN", hide_env_values = true)]
    pub arm_token: Option<ApiKey>,

    /// File holding the bearer token for calls to the arms.
    #[arg(long, env = "OCTOLLM_ARM_TOKEN_FILE")]
    pub arm_token_file: Option<PathBuf>,

    /// Key that signs the executor's capability tokens (shared with the executor arm).
    #[arg(long, env = "OCTOLLM_CAPABILITY_KEY", hide_env_values = true)]
    pub capability_key: Option<ApiKey>,

    /// File holding the capability-token signing key.
    #[arg(long, env = "OCTOLLM_CAPABILITY_KEY_FILE")]
    pub capability_key_file: Option<PathBuf>,

    /// Commands a `run_command` step may ask the executor for (argv[0]).
    #[arg(
        long,
        env = "OCTOLLM_EXECUTOR_COMMANDS",
        value_delimiter = ',',
        default_value = "echo,date,ls,wc"
    )]
    pub executor_commands: Vec<String>,

    /// Longest single call to an arm (further bounded by the task's deadline).
    /// Above one LLM attempt (the arms' `LLM_TIMEOUT`, 60 s) plus the arm's
    /// own work, so a slow but healthy model does not count against the arm's
    /// circuit; a hung arm is found by its failing probes sooner than this.
    #[arg(long, env = "OCTOLLM_ARM_TIMEOUT", default_value = "90s", value_parser = humantime::parse_duration)]
    pub arm_timeout: Duration,

    /// Retries of a failed call on the same arm instance before failing over.
    #[arg(long, env = "OCTOLLM_ARM_RETRIES", default_value_t = 2)]
    pub arm_retries: u32,

    /// How often each arm's `/ready` and `/v1/capabilities` are probed.
    #[arg(long, env = "OCTOLLM_ARM_PROBE_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub arm_probe_interval: Duration,

    /// Consecutive failures that open an arm instance's circuit.
    #[arg(long, env = "OCTOLLM_ARM_CIRCUIT_FAILURES", default_value_t = 3)]
    pub arm_circuit_failures: u32,

    /// How long an open circuit refuses calls before admitting a trial.
    #[arg(long, env = "OCTOLLM_ARM_CIRCUIT_COOL_DOWN", default_value = "10s", value_parser = humantime::parse_duration)]
    pub arm_circuit_cool_down: Duration,

    /// How long a step waits for an instance of its capability to become
    /// callable again (probe up, circuit closed or due its trial) before it
    /// fails with `routing_error`. Default: the cool-down plus the probe
    /// interval, so an arm that crashes and restarts costs its tasks
    /// latency, not failures.
    #[arg(long, env = "OCTOLLM_ARM_ROUTE_WAIT", value_parser = humantime::parse_duration)]
    pub arm_route_wait: Option<Duration>,
}

/// One configured arm instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmEndpoint {
    pub kind: ArmKind,
    /// `planner`, `planner-2`, …: the `arm` label.
    pub label: String,
    /// Base URL without a trailing slash.
    pub url: String,
}

/// Parses `OCTOLLM_ARMS`. Errors name the offending entry.
pub fn parse_endpoints(spec: &str) -> Result<Vec<ArmEndpoint>, String> {
    let mut endpoints: Vec<ArmEndpoint> = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| format!("OCTOLLM_ARMS entry {entry:?} is not `name=url`"))?;
        let name = name.trim();
        let kind = ArmKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = ArmKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "OCTOLLM_ARMS entry {entry:?}: unknown arm {name:?} (known: {})",
                    known.join(", ")
                )
            })?;
        let url = url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("OCTOLLM_ARMS entry {entry:?}: invalid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "OCTOLLM_ARMS entry {entry:?}: the URL must be http(s)://host[:port]"
            ));
        }
        if endpoints.iter().any(|e| e.url == url) {
            return Err(format!("OCTOLLM_ARMS lists {url} twice"));
        }
        let nth = endpoints.iter().filter(|e| e.kind == kind).count() + 1;
        let label = if nth == 1 {
            name.to_owned()
        } else {
            format!("{name}-{nth}")
        };
        endpoints.push(ArmEndpoint {
            kind,
            label,
            url: url.to_owned(),
        });
    }
    if endpoints.is_empty() {
        return Err("OCTOLLM_ARMS is set but lists no arms".into());
    }
    Ok(endpoints)
}

/// A secret given directly or in a file (trimmed); `what` names it in errors.
pub fn secret(
    value: Option<&str>,
    file: Option<&PathBuf>,
    what: &str,
) -> Result<Option<String>, String> {
    let secret = match (value, file) {
        (Some(_), Some(_)) => return Err(format!("set {what} or {what}_FILE, not both")),
        (Some(value), None) => value.trim().to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("reading {what}_FILE {}: {e}", path.display()))?
            .trim()
            .to_owned(),
        (None, None) => return Ok(None),
    };
    if secret.is_empty() {
        return Err(format!("{what} is empty"));
    }
    Ok(Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_further_instances_of_a_kind() {
        let arms = parse_endpoints(
            "planner=http://127.0.0.1:8001/, judge=http://a:8004,planner=http://127.0.0.1:8011",
        )
        .unwrap();
        let labels: Vec<&str> = arms.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels, ["planner", "judge", "planner-2"]);
        assert_eq!(arms[0].url, "http://127.0.0.1:8001");
        assert_eq!(arms[2].kind, ArmKind::Planner);
    }

    #[test]
    fn bad_config_is_named() {
        for (spec, expected) in [
            ("", "lists no arms"),
            ("planner", "is not `name=url`"),
            ("plannr=http://x:1", "unknown arm \"plannr\""),
            ("planner=not a url", "invalid URL"),
            ("planner=ftp://x:1", "must be http(s)"),
            ("planner=http://x:1,judge=http://x:1/", "twice"),
        ] {
            let error = parse_endpoints(spec).unwrap_err();
            assert!(error.contains(expected), "{spec:?}: {error}");
        }
    }

    #[test]
    fn secrets_come_from_one_place() {
        assert_eq!(secret(None, None, "K"), Ok(None));
        assert_eq!(secret(Some(" s "), None, "K"), Ok(Some("s".into())));
        assert!(secret(Some(" "), None, "K").unwrap_err().contains("empty"));
        let path = PathBuf::from("/nonexistent/octollm-key");
        assert!(
            secret(Some("a"), Some(&path), "K")
                .unwrap_err()
                .contains("not both")
        );
        assert!(
            secret(None, Some(&path), "K")
                .unwrap_err()
                .contains("K_FILE")
        );
    }
}
