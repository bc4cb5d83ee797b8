//! `cargo xtask deploy`: the whole stack on this machine as supervised local
//! processes — PostgreSQL (+ pgBackRest), Redis, llm-sim, the services, the
//! exporters, Alertmanager (+ the alert sink) and Prometheus.
//!
//! Rerunning reconciles: a component whose binary, arguments, environment or
//! rendered config changed is restarted; the others, and all data, are kept.

mod arms_check;
pub mod components;
pub mod postgres;
pub mod prerequisites;
pub mod redis;
pub mod stack;
pub mod template;

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use self::components::{DEFAULT_TIMINGS, Timings};
use self::postgres::Postgres;
use self::stack::{COMPONENTS, Component, ORCHESTRATOR, PROMETHEUS, Stack, wait_for};
use crate::{project_root, say};

/// Services this workspace builds for the stack.
const SERVICE_PACKAGES: &[&str] = &[
    "orchestrator",
    "reflex-layer",
    "llm-sim",
    "alert-sink",
    "planner-arm",
    "retriever-arm",
    "coder-arm",
    "judge-arm",
    "guardian-arm",
    "executor-arm",
];

#[derive(clap::Args)]
pub struct Deploy {
    /// Where the stack keeps its state, logs, pids and secrets.
    #[arg(long, default_value = ".octollm")]
    pub state_dir: PathBuf,
    /// Added to every default port, so two stacks can run side by side.
    #[arg(long, default_value_t = 0)]
    pub port_base: u16,
    /// Skip the smoke task after start-up.
    #[arg(long)]
    pub no_smoke: bool,
    /// Where to deploy: this machine (Kubernetes is not built yet).
    #[arg(long, value_enum, default_value_t = Target::Local)]
    pub target: Target,
    /// Run the alerting path on compressed time, for `cargo xtask alert-sim`:
    /// 2 s scrape and 1 s evaluation intervals, 1 s group_wait, 2 s
    /// group_interval, and a copy of the rules with every `for:`, range
    /// window and group interval divided by FACTOR (deploy/monitoring/README.md).
    /// A later deploy without it goes back to normal time.
    #[arg(long, value_name = "FACTOR", value_parser = clap::value_parser!(u32).range(2..=3600))]
    pub compress_time: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Supervised processes on this machine.
    Local,
    /// Typed manifests applied with kubectl (not built yet).
    K8s,
}

impl Deploy {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        if self.target == Target::K8s {
            bail!("--target k8s is not built yet; `cargo xtask deploy` runs the local stack");
        }
        let started = Instant::now();
        let stack = Stack::new(&self.state_dir, self.port_base)?;
        let _lock = stack.lock()?;
        prerequisites::ensure(sh)?;
        say!(
            "building services (release): {}",
            SERVICE_PACKAGES.join(", ")
        );
        let mut args: Vec<&str> = Vec::new();
        for package in SERVICE_PACKAGES {
            args.extend(["-p", package]);
        }
        cmd!(sh, "cargo build --release --locked {args...}").run()?;

        fs::write(
            stack.state_dir.join("port-base"),
            self.port_base.to_string(),
        )?;
        components::ensure_token(&stack)?;
        let timings = match self.compress_time {
            Some(factor) => {
                say!("compressed time: alert windows divided by {factor}");
                fs::write(components::compression_file(&stack), factor.to_string())?;
                components::compressed_timings(factor)
            }
            None => {
                let _ = fs::remove_file(components::compression_file(&stack));
                DEFAULT_TIMINGS
            }
        };
        for component in COMPONENTS {
            reconcile(&stack, *component, &timings).map_err(|error| {
                anyhow::anyhow!(
                    "{error:#}\n\nthe stack is partly up: `cargo xtask status` shows it, `cargo xtask down` stops it"
                )
            })?;
        }
        push_backup_metrics(&stack)?;
        verify_backups_once(&stack)?;
        if !self.no_smoke {
            smoke_arms(&stack)?;
            smoke(&stack)?;
        }
        wait_targets_up(&stack)?;
        print_table(&stack);
        say!("deployed in {:.1?}", started.elapsed());
        say!(
            "API token: {path} (mode 0600). Try:\n    curl -H \"Authorization: Bearer $(cat {path})\" -H 'Content-Type: application/json' \\\n         -d '{{\"goal\":\"say hello\"}}' {url}/v1/tasks",
            path = stack.token_path().display(),
            url = stack.url(ORCHESTRATOR)
        );
        Ok(())
    }
}

/// Starts `component` unless it already runs exactly this launch; restarts
/// it when something changed. Waits for readiness.
pub fn reconcile(stack: &Stack, component: Component, timings: &Timings) -> Result<()> {
    let launch = components::launch(stack, component, timings)
        .with_context(|| format!("preparing {}", component.name))?;
    let running = stack.pid(component).is_some();
    if running && stack.fingerprint(component).as_deref() == Some(launch.fingerprint.as_str()) {
        say!("{:<18} unchanged", component.name);
        return Ok(());
    }
    if running {
        say!("{:<18} changed: restarting", component.name);
        stack.stop(component, Duration::from_secs(20))?;
    } else {
        say!("{:<18} starting", component.name);
    }
    stack.check_port_free(component)?;
    stack.spawn(component, launch.command, &launch.fingerprint)?;
    let ready = wait_for(component.name, components::ready_within(component), || {
        stack.pid(component).is_some() && components::is_ready(stack, component)
    })
    .and_then(|()| components::after_start(stack, component));
    ready.with_context(|| {
        let state = if stack.pid(component).is_some() {
            "is not ready"
        } else {
            "exited"
        };
        format!(
            "{} {state}; last lines of {}:\n{}",
            component.name,
            stack.log_path(component).display(),
            stack.log_tail(component, 30)
        )
    })
}

/// A component's settings from `deploy/local/<component>.env` (KEY=VALUE lines).
pub fn env_template(component: &str) -> Result<Vec<(String, String)>> {
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

pub fn release_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), PathBuf::from)
        .join("release")
}

/// The stack's API token, as `deploy` wrote it.
pub fn api_token(stack: &Stack) -> Result<String> {
    Ok(fs::read_to_string(stack.token_path())
        .context("reading the stack's API token")?
        .trim()
        .to_owned())
}

/// POSTs `task` to the stack's orchestrator; returns the 202 body.
pub fn submit_task(stack: &Stack, task: &serde_json::Value) -> Result<serde_json::Value> {
    let url = format!("{}/v1/tasks", stack.url(ORCHESTRATOR));
    let accepted = post_json(stack, &url, task)?;
    serde_json::from_str(&accepted).with_context(|| format!("not JSON: {accepted}"))
}

/// POSTs `body` as JSON with the stack's API token; returns the answer body
/// (an error for any status but 2xx).
pub fn post_json(stack: &Stack, url: &str, body: &serde_json::Value) -> Result<String> {
    let auth = format!("Authorization: Bearer {}", api_token(stack)?);
    let body = body.to_string();
    curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        url,
    ])
}

/// Long-polls a task for up to 30 s; returns it (terminal unless it timed out).
pub fn wait_task(stack: &Stack, id: &str) -> Result<serde_json::Value> {
    let auth = format!("Authorization: Bearer {}", api_token(stack)?);
    let url = format!("{}/v1/tasks/{id}?wait=30", stack.url(ORCHESTRATOR));
    let task = curl(&["-H", &auth, &url])?;
    serde_json::from_str(&task).with_context(|| format!("not JSON: {task}"))
}

/// Submits a task and waits for it to succeed.
pub fn smoke(stack: &Stack) -> Result<()> {
    say!("smoke test: submitting a task");
    let accepted = submit_task(
        stack,
        &serde_json::json!({"goal": "Summarise why durable task queues matter.", "priority": "high"}),
    )?;
    let id = accepted["task_id"]
        .as_str()
        .with_context(|| format!("no task_id in {accepted}"))?;
    let task = wait_task(stack, id)?;
    if task["status"] != "succeeded" {
        bail!("smoke task {id} ended as {}: {task}", task["status"]);
    }
    say!("smoke task {id} succeeded");
    Ok(())
}

/// Each arm describes itself under its own name (the service token works),
/// and the guardian screens a text, redacting an e-mail address.
pub fn smoke_arms(stack: &Stack) -> Result<()> {
    let auth = format!("Authorization: Bearer {}", api_token(stack)?);
    for arm in stack::ARMS {
        let url = format!("{}/v1/capabilities", stack.url(arm));
        let body: serde_json::Value = serde_json::from_str(&curl(&["-H", &auth, &url])?)?;
        let name = arm.name.trim_end_matches("-arm");
        if body["name"] != name {
            bail!(
                "{} describes itself as {}, not {name}",
                arm.name,
                body["name"]
            );
        }
    }
    let request = serde_json::json!({
        "task_id": "00000000-0000-4000-8000-000000000000",
        "step_id": "smoke",
        "capability": "safety_check",
        "input": {"text": "Smoke test: write to smoke@example.com."},
        "deadline": "2999-01-01T00:00:00Z",
    });
    let url = format!("{}/v1/execute", stack.url(stack::GUARDIAN_ARM));
    let answer: serde_json::Value = serde_json::from_str(&post_json(stack, &url, &request)?)?;
    if answer["output"]["sanitized_text"] != "Smoke test: write to [EMAIL_1]." {
        bail!("the guardian did not redact the smoke text: {answer}");
    }
    say!("smoke: the six arms answer; the guardian redacts");
    Ok(())
}

/// Publishes the PostgreSQL backups' age, duration and size on the
/// Pushgateway (grouping key job=octollm-backup, store=postgres).
pub fn push_backup_metrics(stack: &Stack) -> Result<()> {
    push_metrics(stack, "postgres", &Postgres::new(stack).backup_metrics()?)
}

/// Verifies the repository when no verify result has been pushed yet, so
/// BackupVerifyFailed has a series to watch from the first deploy (the
/// schedule verifies after each daily full backup). A damaged repository
/// does not fail the deploy: the metric and its alert report it.
fn verify_backups_once(stack: &Stack) -> Result<()> {
    let pushed = curl(&[&format!("{}/metrics", stack.url(stack::PUSHGATEWAY))])?;
    if !pushed.contains("octollm_backup_verify_success")
        && let Err(error) = crate::backup::verify(stack)
    {
        say!("warning: {error:#}");
    }
    Ok(())
}

/// Replaces the Pushgateway group job=octollm-backup, store=`store`.
pub fn push_metrics(stack: &Stack, store: &str, text: &str) -> Result<()> {
    let url = format!(
        "{}/metrics/job/octollm-backup/store/{store}",
        stack.url(stack::PUSHGATEWAY)
    );
    let output = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "--max-time",
            "10",
            "--data-binary",
            "@-",
            &url,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                std::io::Write::write_all(&mut stdin, text.as_bytes())?;
            }
            child.wait_with_output()
        })?;
    if !output.status.success() {
        bail!(
            "pushing {store} backup metrics: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(())
}

/// Waits until Prometheus reports every scrape target up.
pub fn wait_targets_up(stack: &Stack) -> Result<()> {
    say!("waiting for every Prometheus target to be up");
    let url = format!("{}/api/v1/targets?state=active", stack.url(PROMETHEUS));
    let mut down = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(90) {
        let body: serde_json::Value = serde_json::from_str(&curl(&[&url])?)?;
        let targets = body["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        down = targets
            .iter()
            .filter(|t| t["health"] != "up")
            .map(|t| {
                format!(
                    "{} ({}: {})",
                    t["labels"]["job"], t["health"], t["lastError"]
                )
            })
            .collect();
        if !targets.is_empty() && down.is_empty() {
            say!("all {} targets up", targets.len());
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    bail!("Prometheus targets not up: {}", down.join(", "))
}

pub fn curl(args: &[&str]) -> Result<String> {
    let output = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--max-time", "60"])
        .args(args)
        .output()?;
    let body = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "curl {}: {body}{}",
            args.last().unwrap_or(&""),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(body)
}

fn component_status(stack: &Stack, component: Component) -> &'static str {
    match (stack.pid(component), components::is_ready(stack, component)) {
        (None, _) => "DOWN",
        (Some(_), false) => "NOT READY",
        (Some(_), true) => "up",
    }
}

/// The components that are down or not ready.
pub fn components_down(stack: &Stack) -> Vec<&'static str> {
    COMPONENTS
        .iter()
        .filter(|c| component_status(stack, **c) != "up")
        .map(|c| c.name)
        .collect()
}

/// Prints component, URL, status and log path; returns the components down.
pub fn print_table(stack: &Stack) -> Vec<&'static str> {
    let mut down = Vec::new();
    say!("{:<18} {:<24} {:<9} log", "component", "url", "status");
    for component in COMPONENTS {
        let status = component_status(stack, *component);
        if status != "up" {
            down.push(component.name);
        }
        let url = if component.listens() {
            format!("127.0.0.1:{}", stack.port(*component))
        } else {
            "-".to_owned()
        };
        say!(
            "{:<18} {url:<24} {status:<9} {}",
            component.name,
            stack.log_path(*component).display()
        );
    }
    down
}

pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    fs::File::open("/dev/urandom")?.read_exact(&mut buffer)?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn write_secret(path: &Path, value: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut file, value.as_bytes())?;
    Ok(())
}

/// Stops every component, last started first.
pub fn stop_all(stack: &Stack) -> Result<()> {
    for component in COMPONENTS.iter().rev() {
        if stack.stop(*component, Duration::from_secs(20))? {
            say!("stopped {}", component.name);
        }
    }
    Ok(())
}

/// Deploys a throwaway stack, runs `check` against it, and always tears it
/// down (all processes, data, backups).
pub fn with_temporary_stack(
    sh: &Shell,
    name: &str,
    port_base: u16,
    check: impl FnOnce(&Stack) -> Result<()>,
) -> Result<()> {
    with_temporary_stack_timed(sh, name, port_base, None, check)
}

/// [`with_temporary_stack`], optionally on compressed time (`--compress-time`).
pub fn with_temporary_stack_timed(
    sh: &Shell,
    name: &str,
    port_base: u16,
    compress_time: Option<u32>,
    check: impl FnOnce(&Stack) -> Result<()>,
) -> Result<()> {
    let state_dir = std::env::temp_dir().join(format!("octollm-{name}-{}", std::process::id()));
    let result = Deploy {
        state_dir: state_dir.clone(),
        port_base,
        no_smoke: false,
        target: Target::Local,
        compress_time,
    }
    .run(sh)
    .and_then(|()| check(&Stack::open(&state_dir)?));
    let teardown = Stack::open(&state_dir).and_then(|stack| {
        stop_all(&stack)?;
        Postgres::new(&stack).purge()
    });
    let _ = fs::remove_dir_all(&state_dir);
    result?;
    teardown
}

/// CI's system test: deploy on shifted ports, smoke, every target up, tasks
/// through the real arms and a guardian outage (`arms_check`), then
/// `promtool check metrics` clean on the services (with that traffic in
/// them), then tear down.
pub fn system_test(sh: &Shell) -> Result<()> {
    with_temporary_stack(sh, "ci", 20_000, |stack| {
        arms_check::run(stack)?;
        let services = [ORCHESTRATOR, stack::REFLEX_LAYER, stack::ALERT_SINK];
        for component in services.into_iter().chain(stack::ARMS) {
            let url = format!("{}/metrics", stack.url(component));
            // `read` trims the final newline, which the exposition format needs.
            let metrics = cmd!(sh, "curl -sf {url}").read()? + "\n";
            let problems = cmd!(sh, "promtool check metrics")
                .stdin(&metrics)
                .ignore_status()
                .read_stderr()?;
            if !problems.trim().is_empty() {
                bail!("promtool check metrics on {}:\n{problems}", component.name);
            }
        }
        let down = print_table(stack);
        if !down.is_empty() {
            bail!(
                "status reports a healthy stack as unhealthy: {}",
                down.join(", ")
            );
        }
        Ok(())
    })
}
