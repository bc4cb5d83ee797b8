//! A Docker-compatible container engine for testcontainers.
//!
//! [`ensure_engine`] returns a `DOCKER_HOST` value that answers `GET /_ping`:
//! the caller's `DOCKER_HOST`, an existing Docker/Podman socket, or a rootful
//! `podman system service` that it starts (detached, so it outlives xtask)
//! with the repository's `deploy/containers/containers.conf`.

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::say;

/// Directory of the Podman service that xtask starts (socket, pid, log).
pub const RUN_DIR: &str = "/run/octollm";
/// Socket of the Podman service that xtask starts.
pub const PODMAN_SOCKET: &str = "/run/octollm/podman.sock";
/// `DOCKER_HOST` value for [`PODMAN_SOCKET`].
pub const PODMAN_DOCKER_HOST: &str = "unix:///run/octollm/podman.sock";
/// Repository-relative path of the Podman configuration (`CONTAINERS_CONF`).
pub const CONTAINERS_CONF: &str = "deploy/containers/containers.conf";

/// Other well-known engine sockets, tried when `DOCKER_HOST` does not answer.
const KNOWN_SOCKETS: &[&str] = &[
    PODMAN_SOCKET,
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
];
/// How long a freshly started Podman service may take to answer.
const START_DEADLINE: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Which engine answers behind a `DOCKER_HOST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Podman,
    Docker,
}

impl Flavor {
    /// The CLI that manages this engine's local images.
    pub fn cli(self) -> &'static str {
        match self {
            Flavor::Podman => "podman",
            Flavor::Docker => "docker",
        }
    }
}

/// Returns a `DOCKER_HOST` value whose engine answers `GET /_ping`, starting
/// rootful Podman's Docker-compatible service when no engine runs.
///
/// Idempotent: a second call finds and reuses the running service.
pub fn ensure_engine(sh: &Shell) -> Result<String> {
    if let Ok(host) = sh.var("DOCKER_HOST")
        && !host.trim().is_empty()
    {
        match ping(&host) {
            Ok(()) => {
                say!("container engine: DOCKER_HOST={host} answers");
                return Ok(host);
            }
            Err(err) => say!("DOCKER_HOST={host} does not answer ({err:#}); looking further"),
        }
    }
    if let Some(host) = find_running_engine() {
        say!("container engine: {host} answers");
        return Ok(host);
    }
    ensure_podman_installed(sh)?;
    start_podman_service(sh)?;
    Ok(PODMAN_DOCKER_HOST.to_owned())
}

/// Absolute path of the repository's Podman configuration file.
pub fn containers_conf(sh: &Shell) -> PathBuf {
    sh.current_dir().join(CONTAINERS_CONF)
}

/// Asks the engine at `docker_host` which flavour it is (`GET /version`).
pub fn flavor(docker_host: &str) -> Result<Flavor> {
    let (status, body) = http_get(docker_host, "/version")?;
    if status != 200 {
        bail!("GET /version on {docker_host} answered HTTP {status}");
    }
    let version: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("GET /version on {docker_host}"))?;
    let is_podman = version["Components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Name"].as_str())
        .any(|name| name.to_ascii_lowercase().contains("podman"));
    Ok(if is_podman {
        Flavor::Podman
    } else {
        Flavor::Docker
    })
}

/// `GET /_ping` on a `unix://` or `tcp://` Docker host; Ok when it says OK.
pub fn ping(docker_host: &str) -> Result<()> {
    let (status, body) = http_get(docker_host, "/_ping")?;
    if status == 200 && body.trim() == "OK" {
        Ok(())
    } else {
        bail!("GET /_ping answered HTTP {status}: {}", body.trim())
    }
}

/// True when `name` is an executable in PATH (or in /usr/sbin, /sbin, which
/// a non-root PATH often lacks).
pub fn have_program(name: &str) -> bool {
    find_program(name).is_some()
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// True when xtask runs as root.
pub fn is_root(sh: &Shell) -> bool {
    cmd!(sh, "id -u")
        .quiet()
        .read()
        .is_ok_and(|uid| uid.trim() == "0")
}

/// Installs Debian packages with apt-get when a program is missing. As
/// non-root, fails with the command to run.
pub fn apt_install(sh: &Shell, missing_program: &str, packages: &[&str]) -> Result<()> {
    if have_program(missing_program) {
        return Ok(());
    }
    let list = packages.join(" ");
    if !is_root(sh) || !have_program("apt-get") {
        bail!(
            "`{missing_program}` is not installed; install it as root with:\n  \
             apt-get update && apt-get install -y {list}"
        );
    }
    say!("`{missing_program}` is missing: apt-get install {list}");
    let started = Instant::now();
    cmd!(sh, "apt-get update -q")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    cmd!(sh, "apt-get install -y -q {packages...}")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    say!(
        "installed {list} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if !have_program(missing_program) {
        bail!("apt-get installed {list} but `{missing_program}` is still not found");
    }
    Ok(())
}

fn ensure_podman_installed(sh: &Shell) -> Result<()> {
    // runc: containers.conf selects it; iptables: netavark's port forwarding.
    apt_install(sh, "podman", &["podman", "runc", "iptables"])?;
    apt_install(sh, "runc", &["runc"])
}

fn find_running_engine() -> Option<String> {
    KNOWN_SOCKETS
        .iter()
        .filter(|sock| Path::new(sock).exists())
        .map(|sock| format!("unix://{sock}"))
        .find(|host| ping(host).is_ok())
}

fn start_podman_service(sh: &Shell) -> Result<()> {
    if !is_root(sh) {
        bail!(
            "no container engine answers and rootful Podman needs root; start it with\n  \
             sudo CONTAINERS_CONF={conf} podman system service --time=0 {PODMAN_DOCKER_HOST} &\n\
             and export DOCKER_HOST={PODMAN_DOCKER_HOST}",
            conf = containers_conf(sh).display()
        );
    }
    let conf = containers_conf(sh);
    if !conf.is_file() {
        bail!("missing {}", conf.display());
    }
    let run_dir = Path::new(RUN_DIR);
    fs::create_dir_all(run_dir).with_context(|| format!("creating {RUN_DIR}"))?;
    let pid_file = run_dir.join("podman.pid");
    let log_path = run_dir.join("podman-service.log");

    let mut child = None;
    if let Some(pid) = running_service_pid(&pid_file) {
        say!("podman service (pid {pid}) is starting; waiting for it");
    } else {
        // A socket file without a live service would make podman fail to bind.
        if Path::new(PODMAN_SOCKET).exists() {
            fs::remove_file(PODMAN_SOCKET)
                .with_context(|| format!("removing stale {PODMAN_SOCKET}"))?;
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let log_err = log.try_clone()?;
        say!(
            "starting rootful podman system service on {PODMAN_SOCKET} (log: {})",
            log_path.display()
        );
        // setsid: own session and process group, so the service neither gets
        // the terminal's Ctrl-C nor dies with xtask. Output goes to a file so
        // no pipe of the caller stays open.
        let spawned = Command::new("setsid")
            .args([
                "podman",
                "system",
                "service",
                "--time=0",
                PODMAN_DOCKER_HOST,
            ])
            .env("CONTAINERS_CONF", &conf)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .context("spawning `setsid podman system service`")?;
        fs::write(&pid_file, spawned.id().to_string())
            .with_context(|| format!("writing {}", pid_file.display()))?;
        child = Some(spawned);
    }

    let started = Instant::now();
    let mut last_err = None;
    while started.elapsed() < START_DEADLINE {
        match ping(PODMAN_DOCKER_HOST) {
            Ok(()) => {
                say!(
                    "podman service answers on {PODMAN_SOCKET} after {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Err(err) => last_err = Some(err),
        }
        if let Some(child) = child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "podman system service exited with {status} before answering; \
                 last lines of {}:\n{}",
                log_path.display(),
                log_tail(&log_path)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "podman system service did not answer GET /_ping on {PODMAN_SOCKET} within {}s \
         (last error: {}); last lines of {}:\n{}",
        START_DEADLINE.as_secs(),
        last_err.map_or_else(|| "none".to_owned(), |e| format!("{e:#}")),
        log_path.display(),
        log_tail(&log_path)
    )
}

/// The pid recorded in `pid_file` when that process is still a podman service.
fn running_service_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    (cmdline.contains("podman") && cmdline.contains("service")).then_some(pid)
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A minimal HTTP/1.0 GET over the engine's socket: (status, body).
/// HTTP/1.0 keeps the answer unchunked and the connection closed after it.
fn http_get(docker_host: &str, path: &str) -> Result<(u16, String)> {
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: octollm-xtask\r\n\r\n");
    let mut response = Vec::new();
    if let Some(socket) = docker_host.strip_prefix("unix://") {
        let mut stream =
            UnixStream::connect(socket).with_context(|| format!("connecting to {socket}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(request.as_bytes())?;
        stream.read_to_end(&mut response)?;
    } else if let Some(addr) = docker_host
        .strip_prefix("tcp://")
        .or_else(|| docker_host.strip_prefix("http://"))
    {
        let addr = addr.trim_end_matches('/');
        let mut stream =
            TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(request.as_bytes())?;
        stream.read_to_end(&mut response)?;
    } else {
        bail!("unsupported DOCKER_HOST {docker_host:?} (expected unix:// or tcp://)");
    }
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed HTTP answer from {docker_host}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("malformed HTTP status line from {docker_host}"))?;
    Ok((status, body.to_owned()))
}
