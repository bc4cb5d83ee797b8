//! `Stack`: where a local stack lives (state directory, ports, pid, log and
//! fingerprint files) and how its background processes are started, watched
//! and stopped.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One process of the local stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    pub name: &'static str,
    /// Port before `--port-base` is added (TARGET.md §3 for the services);
    /// 0 for a component that listens on no port.
    pub default_port: u16,
}

impl Component {
    pub fn listens(self) -> bool {
        self.default_port != 0
    }
}

const fn component(name: &'static str, default_port: u16) -> Component {
    Component { name, default_port }
}

pub const POSTGRES: Component = component("postgres", 5432);
/// `pg_receivewal`: streams WAL into the backup store as it is written, so a
/// restore loses at most the last milliseconds (archiving alone: a segment).
pub const WAL_STREAM: Component = component("wal-stream", 0);
pub const REDIS: Component = component("redis", 6379);
pub const LLM_SIM: Component = component("llm-sim", 8090);
pub const REFLEX_LAYER: Component = component("reflex-layer", 8080);
pub const ORCHESTRATOR: Component = component("orchestrator", 8000);
// The arms, on ArmKind::default_port (a test keeps them equal).
pub const PLANNER_ARM: Component = component("planner-arm", 8001);
pub const RETRIEVER_ARM: Component = component("retriever-arm", 8002);
pub const CODER_ARM: Component = component("coder-arm", 8003);
pub const JUDGE_ARM: Component = component("judge-arm", 8004);
pub const GUARDIAN_ARM: Component = component("guardian-arm", 8005);
pub const EXECUTOR_ARM: Component = component("executor-arm", 8006);
pub const ALERT_SINK: Component = component("alert-sink", 9095);
pub const PUSHGATEWAY: Component = component("pushgateway", 9091);
/// `cargo xtask backup --schedule`: daily full, hourly differential and Redis copy.
pub const BACKUP_SCHEDULER: Component = component("backup-scheduler", 0);
pub const NODE_EXPORTER: Component = component("node-exporter", 9100);
pub const POSTGRES_EXPORTER: Component = component("postgres-exporter", 9187);
pub const REDIS_EXPORTER: Component = component("redis-exporter", 9121);
pub const ALERTMANAGER: Component = component("alertmanager", 9093);
pub const PROMETHEUS: Component = component("prometheus", 9090);

/// The six arms; the orchestrator dispatches steps to them.
pub const ARMS: [Component; 6] = [
    PLANNER_ARM,
    RETRIEVER_ARM,
    CODER_ARM,
    JUDGE_ARM,
    GUARDIAN_ARM,
    EXECUTOR_ARM,
];

/// Every component, in start order (dependencies first).
pub const COMPONENTS: &[Component] = &[
    POSTGRES,
    WAL_STREAM,
    REDIS,
    LLM_SIM,
    REFLEX_LAYER,
    PLANNER_ARM,
    RETRIEVER_ARM,
    CODER_ARM,
    JUDGE_ARM,
    GUARDIAN_ARM,
    EXECUTOR_ARM,
    ORCHESTRATOR,
    ALERT_SINK,
    PUSHGATEWAY,
    BACKUP_SCHEDULER,
    NODE_EXPORTER,
    POSTGRES_EXPORTER,
    REDIS_EXPORTER,
    ALERTMANAGER,
    PROMETHEUS,
];

pub fn find(name: &str) -> Result<Component> {
    COMPONENTS
        .iter()
        .copied()
        .find(|c| c.name == name)
        .with_context(|| {
            let names: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
            format!("no component {name:?}; components: {}", names.join(", "))
        })
}

pub struct Stack {
    pub state_dir: PathBuf,
    pub port_base: u16,
}

impl Stack {
    pub fn new(state_dir: &Path, port_base: u16) -> Result<Self> {
        for sub in ["logs", "run", "config", "data", "secrets"] {
            fs::create_dir_all(state_dir.join(sub))?;
        }
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

    pub fn port(&self, component: Component) -> u16 {
        component.default_port + self.port_base
    }

    pub fn url(&self, component: Component) -> String {
        format!("http://127.0.0.1:{}", self.port(component))
    }

    pub fn log_path(&self, component: Component) -> PathBuf {
        self.state_dir
            .join("logs")
            .join(format!("{}.log", component.name))
    }

    fn run_file(&self, component: Component, ext: &str) -> PathBuf {
        self.state_dir
            .join("run")
            .join(format!("{}.{ext}", component.name))
    }

    pub fn config_path(&self, file: &str) -> PathBuf {
        self.state_dir.join("config").join(file)
    }

    pub fn data_dir(&self, component: Component) -> PathBuf {
        self.state_dir.join("data").join(component.name)
    }

    pub fn secret_path(&self, name: &str) -> PathBuf {
        self.state_dir.join("secrets").join(name)
    }

    pub fn token_path(&self) -> PathBuf {
        self.state_dir.join("api-token")
    }

    /// A secret generated once and kept (mode 0600) in `secrets/`.
    pub fn secret(&self, name: &str) -> Result<String> {
        let path = self.secret_path(name);
        if let Ok(value) = fs::read_to_string(&path) {
            return Ok(value.trim().to_owned());
        }
        let value = super::random_hex(24)?;
        super::write_secret(&path, &value)?;
        Ok(value)
    }

    /// PostgreSQL's files live where the `postgres` user can reach them even
    /// when the state directory is under /root: /var/lib/octollm/<stack id>.
    pub fn postgres_dir(&self) -> PathBuf {
        let name = self
            .state_dir
            .to_string_lossy()
            .trim_matches('/')
            .replace(['/', '.'], "-");
        PathBuf::from("/var/lib/octollm").join(name)
    }

    /// The pid of a live process of the component, if any.
    pub fn pid(&self, component: Component) -> Option<i32> {
        let pid: i32 = fs::read_to_string(self.run_file(component, "pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        is_alive(pid).then_some(pid)
    }

    /// What the running process was started from (binary, args, env, config).
    pub fn fingerprint(&self, component: Component) -> Option<String> {
        fs::read_to_string(self.run_file(component, "fingerprint")).ok()
    }

    /// Starts `command` detached (own process group, outlives xtask), output
    /// appended to the component's log, pid and fingerprint recorded.
    pub fn spawn(
        &self,
        component: Component,
        mut command: Command,
        fingerprint: &str,
    ) -> Result<i32> {
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(component))?;
        writeln!(
            log,
            "---- started by cargo xtask at {:?} ----",
            std::time::SystemTime::now()
        )?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", component.name))?;
        let pid = i32::try_from(child.id())?;
        // A long-running xtask (dr-test, alert-sim) restarts components; reap
        // them when they die, or their zombies keep PostgreSQL's stale lock
        // file looking alive. When xtask exits, init inherits them.
        let mut child = child;
        std::thread::spawn(move || child.wait());
        fs::write(self.run_file(component, "pid"), pid.to_string())?;
        fs::write(self.run_file(component, "fingerprint"), fingerprint)?;
        Ok(pid)
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns whether it was running.
    pub fn stop(&self, component: Component, grace: Duration) -> Result<bool> {
        let running = self.pid(component);
        let _ = fs::remove_file(self.run_file(component, "fingerprint"));
        let Some(pid) = running else {
            let _ = fs::remove_file(self.run_file(component, "pid"));
            return Ok(false);
        };
        // PostgreSQL's SIGTERM is a "smart" shutdown that waits for every
        // client to leave; SIGINT is the fast, clean one.
        signal(pid, if component == POSTGRES { "INT" } else { "TERM" })?;
        let started = Instant::now();
        while started.elapsed() < grace && is_alive(pid) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if is_alive(pid) {
            signal(pid, "KILL")?;
        }
        let _ = fs::remove_file(self.run_file(component, "pid"));
        Ok(true)
    }

    /// The last `lines` lines of a component's log, for failure reports.
    pub fn log_tail(&self, component: Component, lines: usize) -> String {
        let text = fs::read_to_string(self.log_path(component)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails clearly when something other than our own process holds the port.
    pub fn check_port_free(&self, component: Component) -> Result<()> {
        let port = self.port(component);
        // A process killed a moment ago leaves its connections closing for
        // a little while; give the port a few seconds before calling it taken.
        let free = || std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if component.listens() && wait_for("the port", Duration::from_secs(5), free).is_err() {
            bail!(
                "port {port} ({}) is already in use by another process; stop it, or deploy with --port-base N to shift every port",
                component.name
            );
        }
        Ok(())
    }

    /// Takes the deploy lock; a second deploy exits with a clear message.
    pub fn lock(&self) -> Result<DeployLock> {
        let path = self.state_dir.join("deploy.lock");
        if let Ok(text) = fs::read_to_string(&path)
            && let Ok(pid) = text.trim().parse::<i32>()
            && pid != i32::try_from(std::process::id()).unwrap_or(0)
            && is_alive(pid)
        {
            bail!(
                "stack already being deployed (pid {pid}, lock {}); wait for it to finish",
                path.display()
            );
        }
        fs::write(&path, std::process::id().to_string())?;
        Ok(DeployLock(path))
    }
}

/// Removes the deploy lock when dropped.
pub struct DeployLock(PathBuf);

impl Drop for DeployLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn is_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            // The state follows the parenthesised command name.
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

fn signal(pid: i32, name: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stderr(Stdio::null())
        .status()?;
    if !status.success() && is_alive(pid) {
        bail!("cannot send SIG{name} to {pid}");
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use arm_protocol::ArmKind;

    use super::*;

    #[test]
    fn arm_components_match_the_protocol() {
        for (component, kind) in ARMS.iter().zip([
            ArmKind::Planner,
            ArmKind::Retriever,
            ArmKind::Coder,
            ArmKind::Judge,
            ArmKind::Guardian,
            ArmKind::Executor,
        ]) {
            assert_eq!(component.name, format!("{}-arm", kind.name()));
            assert_eq!(component.default_port, kind.default_port());
            assert!(COMPONENTS.contains(component));
        }
        let position = |c: Component| COMPONENTS.iter().position(|x| *x == c);
        for arm in ARMS {
            assert!(position(arm) > position(LLM_SIM) && position(arm) > position(POSTGRES));
            assert!(position(arm) < position(ORCHESTRATOR));
        }
    }
}
