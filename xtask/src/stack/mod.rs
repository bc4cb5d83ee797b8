//! The ground layer: a local stack and everything that operates one.
//!
//! `Stack` is where a stack lives (state directory, ports, pid, log and
//! fingerprint files) and how its background processes are started, watched
//! and stopped; `Component` names its processes; the submodules launch and
//! probe them, run PostgreSQL and Redis, back up and restore, call the
//! orchestrator's API, and deploy whole (temporary) stacks. Commands build
//! on this module; it never imports a command (ARCHITECTURE.md, "Layers").

pub mod api;
pub mod backup;
mod component;
pub mod container_engine;
pub mod deploy;
pub mod launch;
pub mod ports;
pub mod postgres;
pub mod prerequisites;
pub mod redis;
pub mod template;
pub mod tools;

pub use component::{Component, Probe};

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::say;
use crate::util::{is_alive, raise_open_files_limit, signal, wait_for};

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

    /// The component's port on this stack (0 for one that listens on none).
    pub fn port(&self, component: Component) -> u16 {
        component
            .default_port()
            .map_or(0, |port| port + self.port_base)
    }

    pub fn url(&self, component: Component) -> String {
        format!("http://127.0.0.1:{}", self.port(component))
    }

    pub fn log_path(&self, component: Component) -> PathBuf {
        self.state_dir
            .join("logs")
            .join(format!("{}.log", component.name()))
    }

    fn run_file(&self, component: Component, ext: &str) -> PathBuf {
        self.state_dir
            .join("run")
            .join(format!("{}.{ext}", component.name()))
    }

    pub fn config_path(&self, file: &str) -> PathBuf {
        self.state_dir.join("config").join(file)
    }

    /// When `component` was last started by us (its start record's time).
    pub fn started_at(&self, component: Component) -> Option<std::time::SystemTime> {
        fs::metadata(self.run_file(component, "started"))
            .and_then(|m| m.modified())
            .ok()
    }

    pub fn data_dir(&self, component: Component) -> PathBuf {
        self.state_dir.join("data").join(component.name())
    }

    pub fn secret_path(&self, name: &str) -> PathBuf {
        self.state_dir.join("secrets").join(name)
    }

    /// The users' API token: it opens the orchestrator's API and nothing
    /// else.
    pub fn token_path(&self) -> PathBuf {
        self.state_dir.join("api-token")
    }

    /// The orchestrator's own credential, the only one the reflex layer and
    /// the arms accept (`secrets/service-token`, 0600, made on first use).
    pub fn service_token_path(&self) -> Result<PathBuf> {
        self.secret(SERVICE_TOKEN)?;
        Ok(self.secret_path(SERVICE_TOKEN))
    }

    /// The token file a client of `component`'s API presents: the users'
    /// token for the orchestrator, the service token for the internal
    /// services behind it.
    pub fn credential_for(&self, component: Component) -> Result<PathBuf> {
        if component == Component::Orchestrator {
            Ok(self.token_path())
        } else {
            self.service_token_path()
        }
    }

    /// `@FILE` for curl's `-H`: a 0600 file beside the secrets holding
    /// `Authorization: Bearer <token>` for the token in `token_file`, so
    /// the token never shows on a command line (`ps` shows argv to every
    /// local user).
    pub fn bearer_header(&self, token_file: &Path) -> Result<String> {
        let token = crate::util::read_token(token_file)?;
        let name = token_file
            .file_name()
            .map_or("token".into(), |n| n.to_string_lossy().into_owned());
        let path = self.secret_path(&format!("{name}.header"));
        crate::util::write_secret(&path, &format!("Authorization: Bearer {token}\n"))?;
        Ok(format!("@{}", path.display()))
    }

    /// A secret generated once and kept (mode 0600) in `secrets/`.
    pub fn secret(&self, name: &str) -> Result<String> {
        let path = self.secret_path(name);
        if let Ok(value) = fs::read_to_string(&path) {
            return Ok(value.trim().to_owned());
        }
        let value = crate::util::random_hex(24)?;
        crate::util::write_secret(&path, &value)?;
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

    /// The pid of a live process of the component, if any: the recorded
    /// pid, alive, and started when the recorded process started (a pid the
    /// kernel reused for another process is not ours).
    pub fn pid(&self, component: Component) -> Option<i32> {
        let pid: i32 = fs::read_to_string(self.run_file(component, "pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let recorded = fs::read_to_string(self.run_file(component, "started")).ok();
        let same_process = recorded.is_none_or(|r| start_time(pid).as_deref() == Some(r.trim()));
        (is_alive(pid) && same_process).then_some(pid)
    }

    /// What the running process was started from (binary, args, env, config).
    pub fn fingerprint(&self, component: Component) -> Option<String> {
        fs::read_to_string(self.run_file(component, "fingerprint")).ok()
    }

    /// Starts `command` detached, with the stack's open-files limit (own process group, outlives xtask), output
    /// appended to the component's log, pid and fingerprint recorded.
    pub fn spawn(
        &self,
        component: Component,
        mut command: Command,
        fingerprint: &str,
    ) -> Result<i32> {
        raise_open_files_once();
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
            .with_context(|| format!("cannot start {}", component.name()))?;
        let pid = i32::try_from(child.id())?;
        // A long-running xtask (dr-test, alert-sim) restarts components; reap
        // them when they die, or their zombies keep PostgreSQL's stale lock
        // file looking alive. When xtask exits, init inherits them.
        let mut child = child;
        std::thread::spawn(move || child.wait());
        fs::write(self.run_file(component, "pid"), pid.to_string())?;
        fs::write(
            self.run_file(component, "started"),
            start_time(pid).unwrap_or_default(),
        )?;
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
        signal(
            pid,
            if component == Component::Postgres {
                "INT"
            } else {
                "TERM"
            },
        )?;
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

    /// SIGKILLs the component's whole process group (PostgreSQL's backends
    /// too), as a crash would, and waits until it is gone.
    pub fn crash(&self, component: Component) -> Result<()> {
        let Some(pid) = self.pid(component) else {
            return Ok(());
        };
        std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pid}")])
            .status()?;
        crate::util::wait_for(
            &format!("{} to die", component.name()),
            Duration::from_secs(10),
            || self.pid(component).is_none(),
        )?;
        // A zombie still answers kill(pid, 0): PostgreSQL, started again,
        // would take its stale postmaster.pid for a live server and refuse.
        crate::util::wait_for(
            &format!("{} to be reaped", component.name()),
            Duration::from_secs(10),
            || !Path::new(&format!("/proc/{pid}")).exists(),
        )
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
                component.name()
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

/// When `pid` started, in clock ticks since boot (`/proc/<pid>/stat` field 22).
fn start_time(pid: i32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields after the name start at field 3 (the state).
    rest.split_whitespace().nth(22 - 3).map(str::to_owned)
}

/// Removes the deploy lock when dropped.
pub struct DeployLock(PathBuf);

impl Drop for DeployLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `secrets/<name>` of the orchestrator's credential for internal services.
const SERVICE_TOKEN: &str = "service-token";

/// Open files every component may hold: 10,000 long-polled tasks in flight
/// are 10,000 sockets in the orchestrator (and in the load generator), plus
/// pools, arm connections and log files.
pub const OPEN_FILES: u64 = 65_536;

/// Raises xtask's open-files limit to [`OPEN_FILES`] once, so every
/// component it starts inherits it; says so when the hard limit keeps it
/// lower (only root may raise that).
pub fn raise_open_files_once() {
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(|| match raise_open_files_limit(OPEN_FILES) {
        Ok(limit) if limit < OPEN_FILES => say!(
            "warning: open-files limit is {limit}, not {OPEN_FILES} (the hard limit; raise it as root): fewer tasks can be in flight"
        ),
        Ok(_) => {}
        Err(error) => say!("warning: cannot read or raise the open-files limit: {error}"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_not_our_process() {
        let dir = std::env::temp_dir().join(format!("stack-pid-{}", std::process::id()));
        let stack = Stack::new(&dir, 0).unwrap();
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        let pid = stack.spawn(Component::AlertSink, sleep, "f").unwrap();
        assert_eq!(stack.pid(Component::AlertSink), Some(pid));
        // The same pid, but recorded for a process that started at another time.
        fs::write(stack.run_file(Component::AlertSink, "started"), "1").unwrap();
        assert_eq!(stack.pid(Component::AlertSink), None);
        signal(pid, "KILL").unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
