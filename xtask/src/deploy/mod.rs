//! `cargo xtask deploy`: the stack on this machine as supervised local
//! processes (PostgreSQL, llm-sim, orchestrator), or `--target k8s` (later).

pub mod postgres;
pub mod prerequisites;
pub mod stack;

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use self::postgres::Postgres;
use self::stack::{COMPONENTS, LLM_SIM_PORT, ORCHESTRATOR_PORT, Stack, wait_for};
use crate::{project_root, say};

#[derive(clap::Args)]
pub struct Deploy {
    /// Where the stack keeps its state, logs and pids.
    #[arg(long, default_value = ".octollm")]
    pub state_dir: PathBuf,
    /// Added to every default port, so two stacks can run side by side.
    #[arg(long, default_value_t = 0)]
    pub port_base: u16,
    /// Skip the smoke task after start-up.
    #[arg(long)]
    pub no_smoke: bool,
}

impl Deploy {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let started = Instant::now();
        prerequisites::ensure(sh)?;
        say!("building services (release)");
        cmd!(
            sh,
            "cargo build --release --locked -p orchestrator -p llm-sim"
        )
        .run()?;
        let stack = Stack::new(&self.state_dir, self.port_base)?;
        fs::write(
            stack.state_dir.join("port-base"),
            self.port_base.to_string(),
        )?;
        let token = api_token(&stack)?;

        let result = start_all(sh, &stack);
        if let Err(error) = result {
            bail!(
                "{error:#}\n\nthe stack is partly up: `cargo xtask status` shows it, `cargo xtask down` removes it"
            );
        }
        if !self.no_smoke {
            smoke(&stack, &token)?;
        }
        print_table(&stack);
        say!("deployed in {:.1?}", started.elapsed());
        say!(
            "API token: {path} (mode 0600). Try:\n    curl -H \"Authorization: Bearer $(cat {path})\" -H 'Content-Type: application/json' \\\n         -d '{{\"goal\":\"say hello\"}}' http://127.0.0.1:{port}/v1/tasks",
            path = stack.token_path().display(),
            port = stack.port(ORCHESTRATOR_PORT)
        );
        Ok(())
    }
}

fn start_all(sh: &Shell, stack: &Stack) -> Result<()> {
    let pg = Postgres::new(stack);
    pg.init(sh)?;
    start_checked(stack, "postgres", || pg.start())?;
    pg.provision()?;

    let bin = release_dir();
    start_checked(stack, "llm-sim", || {
        stack.stop("llm-sim", Duration::from_secs(5))?;
        let mut command = Command::new(bin.join("llm-sim"));
        command
            .env(
                "LLM_SIM_LISTEN",
                format!("127.0.0.1:{}", stack.port(LLM_SIM_PORT)),
            )
            .env(
                "LLM_SIM_CONFIG",
                project_root().join("deploy/local/llm-sim.json"),
            );
        stack.spawn("llm-sim", command)?;
        wait_http(&format!(
            "http://127.0.0.1:{}/health",
            stack.port(LLM_SIM_PORT)
        ))
    })?;
    start_checked(stack, "orchestrator", || {
        stack.stop("orchestrator", Duration::from_secs(15))?;
        let mut command = Command::new(bin.join("orchestrator"));
        command
            .envs(env_template("orchestrator")?)
            .env(
                "OCTOLLM_LISTEN",
                format!("127.0.0.1:{}", stack.port(ORCHESTRATOR_PORT)),
            )
            .env("OCTOLLM_API_TOKEN_FILE", stack.token_path())
            .env("DATABASE_URL", pg.url()?)
            .env(
                "LLM_BASE_URL",
                format!("http://127.0.0.1:{}/v1", stack.port(LLM_SIM_PORT)),
            );
        stack.spawn("orchestrator", command)?;
        wait_http(&format!(
            "http://127.0.0.1:{}/ready",
            stack.port(ORCHESTRATOR_PORT)
        ))
    })
}

/// A component's settings from `deploy/local/<component>.env` (KEY=VALUE lines).
fn env_template(component: &str) -> Result<Vec<(String, String)>> {
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

/// Starts one component; on failure, shows the tail of its log.
fn start_checked(stack: &Stack, component: &str, start: impl FnOnce() -> Result<()>) -> Result<()> {
    say!("starting {component}");
    start().with_context(|| {
        format!(
            "{component} failed to start; last lines of {}:\n{}",
            stack.log_path(component).display(),
            stack.log_tail(component, 30)
        )
    })
}

fn wait_http(url: &str) -> Result<()> {
    wait_for(url, Duration::from_secs(60), || {
        Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "--max-time", "2", url])
            .status()
            .is_ok_and(|s| s.success())
    })
}

pub fn release_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), PathBuf::from)
        .join("release")
}

/// Submits a task and waits for it to succeed.
pub fn smoke(stack: &Stack, token: &str) -> Result<()> {
    say!("smoke test: submitting a task");
    let base = format!("http://127.0.0.1:{}", stack.port(ORCHESTRATOR_PORT));
    let auth = format!("Authorization: Bearer {token}");
    let accepted = curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"goal":"Summarise why durable task queues matter.","priority":"high"}"#,
        &format!("{base}/v1/tasks"),
    ])?;
    let task_id = json_field(&accepted, "task_id")?;
    let task = curl(&["-H", &auth, &format!("{base}/v1/tasks/{task_id}?wait=30")])?;
    let status = json_field(&task, "status")?;
    if status != "succeeded" {
        bail!("smoke task {task_id} ended as {status}: {task}");
    }
    say!("smoke task {task_id} succeeded");
    Ok(())
}

fn curl(args: &[&str]) -> Result<String> {
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

fn json_field(body: &str, field: &str) -> Result<String> {
    let value: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))?;
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no `{field}` in {body}"))
}

pub fn print_table(stack: &Stack) {
    let urls = [
        (
            "postgres",
            format!("postgres://127.0.0.1:{}", stack.port(stack::POSTGRES_PORT)),
        ),
        (
            "llm-sim",
            format!("http://127.0.0.1:{}", stack.port(LLM_SIM_PORT)),
        ),
        (
            "orchestrator",
            format!("http://127.0.0.1:{}", stack.port(ORCHESTRATOR_PORT)),
        ),
    ];
    say!("{:<14} {:<28} {:<8} log", "component", "url", "status");
    for (component, url) in urls {
        let status = if stack.pid(component).is_some() {
            "up"
        } else {
            "DOWN"
        };
        say!(
            "{component:<14} {url:<28} {status:<8} {}",
            stack.log_path(component).display()
        );
    }
}

/// The API token: generated once, kept in `<state-dir>/api-token` (0600).
fn api_token(stack: &Stack) -> Result<String> {
    if let Ok(token) = fs::read_to_string(stack.token_path()) {
        return Ok(token.trim().to_owned());
    }
    let token = random_hex(32)?;
    write_secret(&stack.token_path(), &token)?;
    Ok(token)
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
        if stack.stop(component, Duration::from_secs(15))? {
            say!("stopped {component}");
        }
    }
    Ok(())
}

/// CI's system test: deploy in a temporary state dir on shifted ports, run
/// the smoke checks, check the metrics with promtool, and always tear down.
pub fn system_test(sh: &Shell) -> Result<()> {
    let state_dir = std::env::temp_dir().join(format!("octollm-ci-{}", std::process::id()));
    let deploy = Deploy {
        state_dir: state_dir.clone(),
        port_base: 20_000,
        no_smoke: false,
    };
    let result = deploy.run(sh).and_then(|()| {
        let stack = Stack::open(&state_dir)?;
        let url = format!("http://127.0.0.1:{}/metrics", stack.port(ORCHESTRATOR_PORT));
        let metrics = cmd!(sh, "curl -sf {url}").read()?;
        let problems = cmd!(sh, "promtool check metrics")
            .stdin(&metrics)
            .ignore_status()
            .read_stderr()?;
        if !problems.trim().is_empty() {
            bail!("promtool check metrics on the orchestrator:\n{problems}");
        }
        Ok(())
    });
    let teardown = Stack::open(&state_dir).and_then(|stack| {
        stop_all(&stack)?;
        Postgres::new(&stack).purge()
    });
    let _ = fs::remove_dir_all(&state_dir);
    result?;
    teardown
}
