//! How each component of the local stack is launched and probed.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::postgres::{KNOWLEDGE_DATABASE, Postgres};
use super::template::{self, Vars};
use super::{Component, Probe, Stack};
use crate::prom::rules;
use crate::util::{http_ok, project_root, read_token, run_with_input, write_secret};

/// Prometheus and Alertmanager timings; `alert-sim` compresses them.
pub struct Timings {
    pub scrape_interval: &'static str,
    pub evaluation_interval: &'static str,
    pub group_wait: &'static str,
    pub group_interval: &'static str,
    /// 1: Prometheus loads `deploy/monitoring/rules` as-is. N > 1: it loads
    /// a copy with every `for:`, range window and group interval divided by
    /// N (`alert_sim::compress`).
    pub time_compression: u32,
}

pub const DEFAULT_TIMINGS: Timings = Timings {
    scrape_interval: "15s",
    evaluation_interval: "15s",
    group_wait: "30s",
    group_interval: "5m",
    time_compression: 1,
};

impl Timings {
    /// How these timings shrink alert windows (for rules and queries).
    pub fn compression(&self) -> Result<crate::prom::compress::Compression> {
        crate::prom::compress::Compression::of(
            self.time_compression,
            self.scrape_interval,
            self.evaluation_interval,
        )
    }
}

/// The timings `cargo xtask deploy --compress-time FACTOR` runs with.
pub fn compressed_timings(factor: u32) -> Timings {
    use crate::prom::compress;
    Timings {
        scrape_interval: compress::SCRAPE_INTERVAL,
        evaluation_interval: compress::EVALUATION_INTERVAL,
        group_wait: compress::GROUP_WAIT,
        group_interval: compress::GROUP_INTERVAL,
        time_compression: factor,
    }
}

/// The file recording a stack's time compression factor (absent: none).
pub fn compression_file(stack: &Stack) -> std::path::PathBuf {
    stack.state_dir.join("time-compression")
}

/// The timings a stack was deployed with, so restarts keep them.
pub fn timings_of(stack: &Stack) -> Timings {
    std::fs::read_to_string(compression_file(stack))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|f| *f > 1)
        .map_or(DEFAULT_TIMINGS, compressed_timings)
}

/// A component ready to start, and what identifies this exact launch.
pub struct Launch {
    pub command: Command,
    pub fingerprint: String,
}

impl Launch {
    fn new(command: Command, rendered_config: &str) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        format!("{command:?}").hash(&mut hasher);
        rendered_config.hash(&mut hasher);
        // A rebuilt binary is a change too.
        let program = Path::new(command.get_program());
        if let Ok(meta) = std::fs::metadata(program) {
            meta.len().hash(&mut hasher);
            meta.modified().ok().hash(&mut hasher);
        }
        Self {
            command,
            fingerprint: format!("{:016x}", hasher.finish()),
        }
    }
}

/// A component's settings from `deploy/local/<component>.env` (KEY=VALUE lines).
pub fn env_template(component: Component) -> Result<Vec<(String, String)>> {
    let path = project_root()
        .join("deploy/local")
        .join(format!("{component}.env"));
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .with_context(|| format!("{}: `{line}` is not KEY=VALUE", path.display()))
        })
        .collect()
}

/// Where `cargo build --release` puts the workspace's binaries.
pub fn release_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), PathBuf::from)
        .join("release")
}

/// A workspace binary, named after its component.
fn service(component: Component) -> Command {
    Command::new(release_dir().join(component.name()))
}

fn listen(stack: &Stack, component: Component) -> String {
    format!("127.0.0.1:{}", stack.port(component))
}

/// Renders a config template into the state directory; returns its text.
fn render(stack: &Stack, template: &str, file: &str, vars: &Vars) -> Result<String> {
    let text = template::render_file(&project_root().join(template), vars)?;
    // Mode 0600: a rendered config may carry a secret (redis.conf's requirepass).
    write_secret(&stack.config_path(file), &text)?;
    Ok(text)
}

/// The capability signing key the orchestrator and the executor share
/// (`secrets/capability-key`, mode 0600), generated once.
pub const CAPABILITY_KEY: &str = "capability-key";

/// An arm: its env file, its port, and the service token (the orchestrator's
/// credential, the only one arms accept).
fn arm(stack: &Stack, component: Component) -> Result<Command> {
    let mut command = service(component);
    command
        .envs(env_template(component)?)
        .env("OCTOLLM_LISTEN", listen(stack, component))
        .env("OCTOLLM_API_TOKEN_FILE", stack.service_token_path()?);
    Ok(command)
}

/// `planner=http://127.0.0.1:8001,…`: where the orchestrator finds each arm.
pub fn arm_urls(stack: &Stack) -> String {
    Component::ARMS
        .iter()
        .map(|arm| {
            let name = arm.arm_name().unwrap_or_default();
            format!("{name}={}", stack.url(*arm))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn port_vars(stack: &Stack) -> Vars {
    let mut vars = Vars::new();
    for (name, component) in [
        ("ORCHESTRATOR_PORT", Component::Orchestrator),
        ("LLM_SIM_PORT", Component::LlmSim),
        ("REFLEX_LAYER_PORT", Component::ReflexLayer),
        ("ALERT_SINK_PORT", Component::AlertSink),
        ("POSTGRES_EXPORTER_PORT", Component::PostgresExporter),
        ("REDIS_EXPORTER_PORT", Component::RedisExporter),
        ("NODE_EXPORTER_PORT", Component::NodeExporter),
        ("PUSHGATEWAY_PORT", Component::Pushgateway),
        ("PROMETHEUS_PORT", Component::Prometheus),
        ("ALERTMANAGER_PORT", Component::Alertmanager),
        ("REDIS_PORT", Component::Redis),
        ("PLANNER_ARM_PORT", Component::PlannerArm),
        ("RETRIEVER_ARM_PORT", Component::RetrieverArm),
        ("CODER_ARM_PORT", Component::CoderArm),
        ("JUDGE_ARM_PORT", Component::JudgeArm),
        ("GUARDIAN_ARM_PORT", Component::GuardianArm),
        ("EXECUTOR_ARM_PORT", Component::ExecutorArm),
    ] {
        vars.insert(name, stack.port(component).to_string());
    }
    vars
}

pub fn launch(stack: &Stack, component: Component, timings: &Timings) -> Result<Launch> {
    let data = stack.data_dir(component);
    std::fs::create_dir_all(&data)?;
    let data_str = data.to_string_lossy().into_owned();
    let pg = Postgres::new(stack);
    Ok(match component {
        Component::Postgres => {
            let config = pg.prepare()?;
            Launch::new(pg.command(), &config)
        }
        Component::WalStream => Launch::new(pg.stream_command(), ""),
        Component::Redis => {
            let mut vars = port_vars(stack);
            vars.insert("REDIS_DATA_DIR", data_str);
            vars.insert("REDIS_PASSWORD", stack.secret("redis-password")?);
            let config = render(stack, "deploy/local/redis.conf.tmpl", "redis.conf", &vars)?;
            let mut command = Command::new("redis-server");
            command.arg(stack.config_path("redis.conf"));
            Launch::new(command, &config)
        }
        Component::LlmSim => {
            // The admin API (alert-sim's fault injection) takes a token.
            stack.secret("llm-sim-admin-token")?;
            let mut command = service(Component::LlmSim);
            command
                .envs(env_template(Component::LlmSim)?)
                .env(
                    "LLM_SIM_ADMIN_TOKEN_FILE",
                    stack.secret_path("llm-sim-admin-token"),
                )
                .env("LLM_SIM_LISTEN", listen(stack, component));
            Launch::new(command, "")
        }
        Component::ReflexLayer => {
            stack.secret("reflex-key")?;
            let mut command = service(Component::ReflexLayer);
            // The stack's own API token (its operators, its checks, its load
            // tests) screens in the internal tier; other clients get the default.
            let operator = caller_id(&read_token(&stack.token_path())?)?;
            command
                .envs(env_template(Component::ReflexLayer)?)
                .env("REFLEX_USER_TIERS", format!("{operator}=internal"))
                .env("OCTOLLM_LISTEN", listen(stack, component))
                // Only the orchestrator screens: users' tokens are refused.
                .env("OCTOLLM_API_TOKEN_FILE", stack.service_token_path()?)
                .env("REFLEX_KEY_FILE", stack.secret_path("reflex-key"))
                .env(
                    "REDIS_URL",
                    format!(
                        "redis://:{}@127.0.0.1:{}/0",
                        stack.secret("redis-password")?,
                        stack.port(Component::Redis)
                    ),
                );
            Launch::new(command, "")
        }
        Component::PlannerArm | Component::CoderArm | Component::JudgeArm => {
            let mut command = arm(stack, component)?;
            command.env(
                "LLM_BASE_URL",
                format!("{}/v1", stack.url(Component::LlmSim)),
            );
            Launch::new(command, "")
        }
        Component::RetrieverArm => {
            let mut command = arm(stack, component)?;
            command.env("DATABASE_URL", pg.url_for(KNOWLEDGE_DATABASE)?);
            Launch::new(command, "")
        }
        Component::GuardianArm => Launch::new(arm(stack, component)?, ""),
        Component::ExecutorArm => {
            stack.secret(CAPABILITY_KEY)?;
            let workspace = data.join("workspace");
            std::fs::create_dir_all(&workspace)?;
            let mut command = arm(stack, component)?;
            command.env("EXECUTOR_WORKDIR", workspace).env(
                "OCTOLLM_CAPABILITY_KEY_FILE",
                stack.secret_path(CAPABILITY_KEY),
            );
            Launch::new(command, "")
        }
        Component::Orchestrator => {
            stack.secret(CAPABILITY_KEY)?;
            let mut command = service(Component::Orchestrator);
            command
                .envs(env_template(Component::Orchestrator)?)
                .env("OCTOLLM_LISTEN", listen(stack, component))
                .env("OCTOLLM_API_TOKEN_FILE", stack.token_path())
                .env("DATABASE_URL", pg.url()?)
                .env(
                    "LLM_BASE_URL",
                    format!("{}/v1", stack.url(Component::LlmSim)),
                )
                .env("REFLEX_URL", stack.url(Component::ReflexLayer))
                .env("REFLEX_TOKEN_FILE", stack.service_token_path()?)
                .env("OCTOLLM_ARMS", arm_urls(stack))
                .env("OCTOLLM_ARM_TOKEN_FILE", stack.service_token_path()?)
                .env(
                    "OCTOLLM_CAPABILITY_KEY_FILE",
                    stack.secret_path(CAPABILITY_KEY),
                );
            Launch::new(command, "")
        }
        Component::AlertSink => {
            let token = stack.secret("alert-sink-token")?;
            let mut command = service(Component::AlertSink);
            command
                .envs(env_template(Component::AlertSink)?)
                .env("OCTOLLM_LISTEN", listen(stack, component))
                .env("OCTOLLM_API_TOKEN", token)
                .env("ALERT_SINK_DIR", &data);
            Launch::new(command, "")
        }
        Component::Pushgateway => {
            let mut command = Command::new("prometheus-pushgateway");
            command
                .arg(format!("--web.listen-address={}", listen(stack, component)))
                .arg(format!("--persistence.file={data_str}/metrics"))
                .arg("--persistence.interval=30s");
            Launch::new(command, "")
        }
        Component::BackupScheduler => {
            let mut command = Command::new(xtask_binary()?);
            command
                .args(["backup", "--schedule", "--state-dir"])
                .arg(&stack.state_dir);
            Launch::new(command, "")
        }
        Component::NodeExporter => {
            let mut command = Command::new("prometheus-node-exporter");
            command
                .arg(format!("--web.listen-address={}", listen(stack, component)))
                .arg("--collector.disable-defaults")
                .args([
                    "--collector.cpu",
                    "--collector.meminfo",
                    "--collector.filesystem",
                ])
                .args([
                    "--collector.loadavg",
                    "--collector.netdev",
                    "--collector.diskstats",
                ])
                .args([
                    "--collector.filefd",
                    "--collector.stat",
                    "--collector.uname",
                ]);
            Launch::new(command, "")
        }
        Component::PostgresExporter => {
            let mut command = Command::new("prometheus-postgres-exporter");
            command
                .arg(format!("--web.listen-address={}", listen(stack, component)))
                .env("DATA_SOURCE_NAME", pg.monitor_url()?);
            Launch::new(command, "")
        }
        Component::RedisExporter => {
            let mut command = Command::new("prometheus-redis-exporter");
            command
                .arg(format!("--web.listen-address={}", listen(stack, component)))
                .arg(format!(
                    "--redis.addr=redis://127.0.0.1:{}",
                    stack.port(Component::Redis)
                ))
                .env("REDIS_PASSWORD", stack.secret("redis-password")?);
            Launch::new(command, "")
        }
        Component::Alertmanager => {
            let token_file = stack.secret_path("alert-sink-token");
            stack.secret("alert-sink-token")?;
            let mut vars = port_vars(stack);
            vars.insert("ALERT_SINK_URL", stack.url(Component::AlertSink));
            vars.insert(
                "ALERT_SINK_TOKEN_FILE",
                token_file.to_string_lossy().into_owned(),
            );
            vars.insert("GROUP_WAIT", timings.group_wait.to_owned());
            vars.insert("GROUP_INTERVAL", timings.group_interval.to_owned());
            let config = render(
                stack,
                "deploy/monitoring/alertmanager.yml.tmpl",
                "alertmanager.yml",
                &vars,
            )?;
            let mut command = Command::new("prometheus-alertmanager");
            command
                .arg(format!(
                    "--config.file={}",
                    stack.config_path("alertmanager.yml").display()
                ))
                .arg(format!("--storage.path={data_str}"))
                .arg(format!("--web.listen-address={}", listen(stack, component)))
                .arg("--cluster.listen-address=");
            Launch::new(command, &config)
        }
        Component::Prometheus => {
            let source_rules = project_root().join("deploy/monitoring/rules");
            let base_url = rules::runbook_base_url();
            // The rules load as they are, unless time is compressed or the
            // runbooks live elsewhere: then Prometheus loads a copy.
            let (rules_dir, generated_rules) =
                if timings.time_compression > 1 || base_url != rules::DEFAULT_RUNBOOK_BASE_URL {
                    let dir = stack.config_path("rules");
                    if timings.time_compression > 1 {
                        crate::prom::compress::write_scaled_rules(
                            &source_rules,
                            &dir,
                            &timings.compression()?,
                        )?;
                    } else {
                        rules::copy_rule_files(&source_rules, &dir)?;
                    }
                    let text = rules::rebase_runbook_urls(&dir, &base_url)?;
                    (dir, text)
                } else {
                    (source_rules.clone(), String::new())
                };
            let mut vars = port_vars(stack);
            vars.insert("RULES_DIR", rules_dir.to_string_lossy().into_owned());
            vars.insert("SCRAPE_INTERVAL", timings.scrape_interval.to_owned());
            vars.insert(
                "EVALUATION_INTERVAL",
                timings.evaluation_interval.to_owned(),
            );
            let mut config = render(
                stack,
                "deploy/local/prometheus.yml.tmpl",
                "prometheus.yml",
                &vars,
            )?;
            // Rule changes restart Prometheus too.
            for entry in std::fs::read_dir(&source_rules)? {
                config.push_str(&std::fs::read_to_string(entry?.path())?);
            }
            config.push_str(&generated_rules);
            let mut command = Command::new("prometheus");
            command
                .arg(format!(
                    "--config.file={}",
                    stack.config_path("prometheus.yml").display()
                ))
                .arg(format!("--storage.tsdb.path={data_str}"))
                .arg("--storage.tsdb.retention.time=30d")
                // No --web.enable-lifecycle: nothing here reloads Prometheus
                // over HTTP, and it would let any local user POST /-/quit.
                .arg(format!("--web.listen-address={}", listen(stack, component)));
            Launch::new(command, &config)
        }
    })
}

/// This xtask's binary. A rebuild while xtask runs replaces the file, and
/// Linux then reports the running one as `<path> (deleted)`: the path is
/// still right.
pub fn xtask_binary() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.to_string_lossy();
    Ok(text
        .strip_suffix(" (deleted)")
        .map_or(exe.clone(), std::path::PathBuf::from))
}

/// Whether the component answers its readiness probe.
pub fn is_ready(stack: &Stack, component: Component) -> bool {
    match component.probe() {
        Probe::Postgres => Postgres::new(stack).is_ready(),
        Probe::WalStream => Postgres::new(stack).is_streaming(),
        Probe::Pid => true,
        Probe::Redis => stack.secret("redis-password").is_ok_and(|password| {
            Command::new("redis-cli")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &stack.port(Component::Redis).to_string(),
                    "ping",
                ])
                .env("REDISCLI_AUTH", password)
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
        }),
        Probe::Http(path) => http_ok(&format!("{}{path}", stack.url(component))),
    }
}

/// What must happen once a component is up, before the next one starts.
pub fn after_start(stack: &Stack, component: Component) -> Result<()> {
    if component == Component::Postgres {
        let pg = Postgres::new(stack);
        pg.provision()?;
        pg.ensure_backups()?;
    }
    Ok(())
}

/// The id service-kit gives the client presenting `token` (`Caller::of_token`):
/// `bearer-` and the first 8 bytes, in hex, of SHA-256("octollm-caller-v1:" + token).
/// The reflex layer's per-user buckets and tiers are keyed by it.
pub fn caller_id(token: &str) -> Result<String> {
    let hex = run_with_input(
        &mut Command::new("sha256sum"),
        &format!("octollm-caller-v1:{}", token.trim()),
    )?;
    let digest = hex.get(..16).context("sha256sum printed no digest")?;
    Ok(format!("bearer-{digest}"))
}

/// Keeps a copy of the API token for tools that need a file path.
pub fn ensure_token(stack: &Stack) -> Result<String> {
    if let Ok(token) = read_token(&stack.token_path()) {
        // The header file the runbooks' curl commands read (`-H @file`).
        stack.bearer_header(&stack.token_path())?;
        return Ok(token);
    }
    let token = crate::util::random_hex(32)?;
    write_secret(&stack.token_path(), &token).context("writing the API token")?;
    stack.bearer_header(&stack.token_path())?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_match_service_kits() {
        // The same vector is pinned in crates/service-kit's auth tests.
        assert_eq!(
            caller_id("integration-test-token").ok().as_deref(),
            Some("bearer-b2fface26478a4f3")
        );
    }
}
