//! `Stack`: where a local stack lives: its state directory, ports, pid and
//! log files, and the supervised background processes.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Default ports (TARGET.md §3), shifted by `--port-base`.
pub const ORCHESTRATOR_PORT: u16 = 8000;
pub const LLM_SIM_PORT: u16 = 8090;
pub const POSTGRES_PORT: u16 = 5432;

/// The components, in start order.
pub const COMPONENTS: &[&str] = &["postgres", "llm-sim", "orchestrator"];

pub struct Stack {
    pub state_dir: PathBuf,
    pub port_base: u16,
}

impl Stack {
    pub fn new(state_dir: &Path, port_base: u16) -> Result<Self> {
        fs::create_dir_all(state_dir.join("logs"))?;
        fs::create_dir_all(state_dir.join("run"))?;
        let state_dir = state_dir
            .canonicalize()
            .with_context(|| format!("state directory {}", state_dir.display()))?;
        Ok(Self {
            state_dir,
            port_base,
        })
    }

    /// Reopens the stack recorded in `state_dir` by a previous deploy.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let base = fs::read_to_string(state_dir.join("port-base")).with_context(|| {
            format!(
                "no stack deployed in {} (run `cargo xtask deploy`)",
                state_dir.display()
            )
        })?;
        Self::new(state_dir, base.trim().parse()?)
    }

    pub fn port(&self, default: u16) -> u16 {
        default + self.port_base
    }

    pub fn log_path(&self, component: &str) -> PathBuf {
        self.state_dir.join("logs").join(format!("{component}.log"))
    }

    fn pid_path(&self, component: &str) -> PathBuf {
        self.state_dir.join("run").join(format!("{component}.pid"))
    }

    pub fn token_path(&self) -> PathBuf {
        self.state_dir.join("api-token")
    }

    /// PostgreSQL's data lives where the `postgres` user can reach it even
    /// when the state directory is under /root: /var/lib/octollm/<stack id>.
    pub fn postgres_dir(&self) -> PathBuf {
        let name = self
            .state_dir
            .to_string_lossy()
            .trim_matches('/')
            .replace(['/', '.'], "-");
        PathBuf::from("/var/lib/octollm").join(name)
    }

    pub fn pid(&self, component: &str) -> Option<i32> {
        let pid: i32 = fs::read_to_string(self.pid_path(component))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// Starts `program` detached (own process group, survives xtask), output
    /// appended to the component's log, pid recorded.
    pub fn spawn(&self, component: &str, mut command: Command) -> Result<i32> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(component))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {component}"))?;
        let pid = i32::try_from(child.id())?;
        fs::write(self.pid_path(component), pid.to_string())?;
        Ok(pid)
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns whether it was running.
    pub fn stop(&self, component: &str, grace: Duration) -> Result<bool> {
        let Some(pid) = self.pid(component) else {
            let _ = fs::remove_file(self.pid_path(component));
            return Ok(false);
        };
        signal(pid, "TERM")?;
        let started = Instant::now();
        while started.elapsed() < grace {
            if self.pid(component).is_none() || is_zombie(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.pid(component).is_some() && !is_zombie(pid) {
            signal(pid, "KILL")?;
        }
        let _ = fs::remove_file(self.pid_path(component));
        Ok(true)
    }

    /// The last `lines` lines of a component's log, for failure reports.
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let text = fs::read_to_string(self.log_path(component)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

fn signal(pid: i32, name: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stderr(Stdio::null())
        .status()?;
    if !status.success() && Path::new(&format!("/proc/{pid}")).exists() {
        bail!("cannot send SIG{name} to {pid}");
    }
    Ok(())
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2) == Some("Z"))
        .unwrap_or(true)
}

/// Polls `probe` until it succeeds or `deadline` passes.
pub fn wait_for(what: &str, deadline: Duration, mut probe: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if probe() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{what} not ready within {}s", deadline.as_secs())
}
