//! A service binary run by an integration test: its own free port, its own
//! log file, `/health` polling, restart, SIGTERM and SIGKILL, and reading
//! its Prometheus `/metrics`.
//!
//! ```no_run
//! # async fn example() -> Result<(), test_support::service::ServiceError> {
//! use std::time::Duration;
//! use test_support::service::{ServiceProcess, sample};
//!
//! let mut svc = ServiceProcess::new("my-service", "/path/to/binary")?;
//! svc.env("LISTEN", svc.listen_addr()).arg("--verbose");
//! svc.start(Duration::from_secs(20)).await?; // spawn, then wait for /health
//! let text = svc.metrics().await?;
//! assert_eq!(sample(&text, "up", &[("job", "x")]), Some(1.0));
//! # Ok(()) }
//! ```
//!
//! The process is killed (SIGKILL) when the handle is dropped. Its log
//! (stdout and stderr, appended across restarts) is removed then, unless the
//! thread is panicking: a failing test keeps it and says where it is.

use std::{
    ffi::{OsStr, OsString},
    fmt,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rustix::process::{Pid, Signal, kill_process};

/// How many log lines a failure message carries.
pub const LOG_TAIL_LINES: usize = 40;

/// How long one poll of a status path may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to sleep between polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Why a service could not be run or read.
///
/// `Debug` prints the same text as `Display` (plus causes), so a test that
/// returns `Result<(), Box<dyn Error>>` shows the service's log tail.
#[derive(thiserror::Error)]
pub enum ServiceError {
    /// A local operation (port, log file, spawn, signal) failed.
    #[error("{name}: cannot {action}: {source}")]
    Io {
        name: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The process exited while it was waited on.
    #[error("{name} exited with {status} before {path} answered 200; log tail:\n{log_tail}")]
    Exited {
        name: String,
        path: String,
        status: ExitStatus,
        log_tail: String,
    },
    /// The process runs but `path` did not answer 200 in time.
    #[error(
        "{name}: {path} did not answer 200 within {waited:?} (last: {last}); log tail:\n{log_tail}"
    )]
    NotAnswering {
        name: String,
        path: String,
        waited: Duration,
        last: String,
        log_tail: String,
    },
    /// The process did not exit in time after SIGTERM.
    #[error("{name} did not exit within {within:?} of SIGTERM; log tail:\n{log_tail}")]
    NoExit {
        name: String,
        within: Duration,
        log_tail: String,
    },
    /// The process is not running (never started, or killed).
    #[error("{name} is not running")]
    NotRunning { name: String },
    /// An HTTP request failed or answered an error status.
    #[error("GET {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl fmt::Debug for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::write_with_causes(self, f)
    }
}

/// A port that is free on 127.0.0.1 right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `GET url` until it answers 200, for at most `timeout`.
///
/// For services that run in the test's own process; a [`ServiceProcess`]
/// uses [`ServiceProcess::wait_healthy`], which also notices an early exit.
pub async fn wait_ok(url: &str, timeout: Duration) -> Result<(), ServiceError> {
    let http = poll_client(url)?;
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < timeout {
        match poll(&http, url).await {
            Ok(()) => return Ok(()),
            Err(err) => last = err,
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Err(ServiceError::NotAnswering {
        name: "in-process service".to_owned(),
        path: url.to_owned(),
        waited: started.elapsed(),
        last,
        log_tail: String::new(),
    })
}

/// The Prometheus text at `url` (e.g. `http://127.0.0.1:PORT/metrics`).
pub async fn scrape(url: &str) -> Result<String, ServiceError> {
    let http_error = |source| ServiceError::Http {
        url: url.to_owned(),
        source,
    };
    reqwest::Client::builder()
        .timeout(POLL_TIMEOUT)
        .build()
        .map_err(http_error)?
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(http_error)?
        .text()
        .await
        .map_err(http_error)
}

/// The value of the sample `name{labels}` in a Prometheus text exposition.
///
/// `labels` must be the sample's whole label set, in any order; `&[]` is a
/// sample without labels. `None` when no such sample is present.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let parsed = parse_sample(line)?;
        let same_labels = parsed.labels.len() == labels.len()
            && labels
                .iter()
                .all(|(k, v)| parsed.labels.iter().any(|(pk, pv)| pk == k && pv == v));
        (parsed.name == name && same_labels).then_some(parsed.value)
    })
}

struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

/// One sample line: `name{k="v",...} value [timestamp]`; `None` for
/// comments, blank or malformed lines.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        rest = parse_labels(inside, &mut labels)?;
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parses `k="v",...}` into `labels`; returns what follows the `}`.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Vec<(&'a str, String)>) -> Option<&'a str> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Some(after);
        }
        let (key, after_key) = rest.split_once('=')?;
        let quoted = after_key.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let close = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    escaped => value.push(escaped),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim(), value));
        rest = quoted[close + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// A service binary run as a child process on its own free port.
///
/// Configure it like a [`Command`] ([`arg`](Self::arg), [`env`](Self::env),
/// using [`listen_addr`](Self::listen_addr) to tell it its port), then
/// [`start`](Self::start) it. Killed on drop.
pub struct ServiceProcess {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    port: u16,
    log: PathBuf,
    child: Mutex<Option<Child>>,
}

impl fmt::Debug for ServiceProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceProcess")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("port", &self.port)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl ServiceProcess {
    /// A service not started yet, with a free port and a log file path of
    /// its own (in the temp directory, named after `name`).
    pub fn new(name: &str, program: impl Into<PathBuf>) -> Result<Self, ServiceError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let port = free_port().map_err(|source| ServiceError::Io {
            name: name.to_owned(),
            action: "find a free port on 127.0.0.1",
            source,
        })?;
        let log = std::env::temp_dir().join(format!(
            "{name}-it-{}-{}-{port}.log",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(Self {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            port,
            log,
            child: Mutex::new(None),
        })
    }

    /// Adds a command-line argument (used from the next start on).
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds command-line arguments (used from the next start on).
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable (used from the next start on); later
    /// settings of the same key win.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Sets environment variables (used from the next start on).
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, value) in vars {
            self.env(key, value);
        }
        self
    }

    /// The name given to [`new`](Self::new).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port picked for this service (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, for the service's listen option.
    pub fn listen_addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The log file (stdout and stderr of every start).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far (empty when there is none yet).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The process id while one is started (also after it exited, until
    /// it is killed or started again).
    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    /// Whether a started process has not exited yet.
    pub fn is_running(&self) -> bool {
        matches!(self.child().as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Spawns the process (killing a running one first) without waiting.
    pub fn spawn(&mut self) -> Result<(), ServiceError> {
        self.kill()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(self.io_error("open its log file"))?;
        let stderr = log
            .try_clone()
            .map_err(self.io_error("open its log file"))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(self.io_error("spawn"))?;
        *self.child() = Some(child);
        Ok(())
    }

    /// Spawns the process and waits until `/health` answers 200.
    pub async fn start(&mut self, timeout: Duration) -> Result<(), ServiceError> {
        self.spawn()?;
        self.wait_healthy(timeout).await
    }

    /// SIGKILL, then [`start`](Self::start) again on the same port, with
    /// the same arguments and environment, appending to the same log.
    pub async fn restart(&mut self, timeout: Duration) -> Result<(), ServiceError> {
        self.start(timeout).await
    }

    /// Waits until `/health` answers 200; fails at once when the process exits.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<(), ServiceError> {
        self.wait_for("/health", timeout).await
    }

    /// Waits until `GET path` answers 200; fails at once when the process
    /// exits, and after `timeout` with the last answer and the log tail.
    pub async fn wait_for(&self, path: &str, timeout: Duration) -> Result<(), ServiceError> {
        let url = self.url(path);
        let http = poll_client(&url)?;
        let started = Instant::now();
        loop {
            self.ensure_alive(path)?;
            let Err(last) = poll(&http, &url).await else {
                return Ok(());
            };
            if started.elapsed() >= timeout {
                return Err(ServiceError::NotAnswering {
                    name: self.name.clone(),
                    path: path.to_owned(),
                    waited: started.elapsed(),
                    last,
                    log_tail: self.log_tail(LOG_TAIL_LINES),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String, ServiceError> {
        scrape(&self.url("/metrics")).await
    }

    /// SIGKILL and reap the process; nothing happens when none runs.
    pub fn kill(&mut self) -> Result<(), ServiceError> {
        let Some(mut child) = self.child().take() else {
            return Ok(());
        };
        child
            .kill()
            .and_then(|()| child.wait().map(drop))
            .map_err(self.io_error("kill"))
    }

    /// SIGTERM, and the exit status once the process exits, within `within`.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus, ServiceError> {
        let mut child = self
            .child()
            .take()
            .ok_or_else(|| ServiceError::NotRunning {
                name: self.name.clone(),
            })?;
        kill_process(Pid::from_child(&child), Signal::TERM)
            .map_err(std::io::Error::from)
            .map_err(self.io_error("send SIGTERM"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(self.io_error("wait"))? {
                return Ok(status);
            }
            if started.elapsed() >= within {
                // Do not leave it behind: the caller gets the error, the
                // process gets SIGKILL.
                let _ = child.kill();
                let _ = child.wait();
                return Err(ServiceError::NoExit {
                    name: self.name.clone(),
                    within,
                    log_tail: self.log_tail(LOG_TAIL_LINES),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Turns an I/O error of `action` into a [`ServiceError::Io`].
    fn io_error(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> ServiceError {
        let name = self.name.clone();
        move |source| ServiceError::Io {
            name,
            action,
            source,
        }
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An error when the process never started or has exited.
    fn ensure_alive(&self, path: &str) -> Result<(), ServiceError> {
        let status = match self.child().as_mut().map(Child::try_wait) {
            None => {
                return Err(ServiceError::NotRunning {
                    name: self.name.clone(),
                });
            }
            Some(Ok(None)) => return Ok(()),
            Some(Ok(Some(status))) => status,
            Some(Err(source)) => return Err(self.io_error("check on the process")(source)),
        };
        Err(ServiceError::Exited {
            name: self.name.clone(),
            path: path.to_owned(),
            status,
            log_tail: self.log_tail(LOG_TAIL_LINES),
        })
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.kill();
        if std::thread::panicking() {
            // The one place a failing test learns where the whole log is.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{} log kept at {}", self.name, self.log.display());
            }
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn poll_client(url: &str) -> Result<reqwest::Client, ServiceError> {
    reqwest::Client::builder()
        .timeout(POLL_TIMEOUT)
        .build()
        .map_err(|source| ServiceError::Http {
            url: url.to_owned(),
            source,
        })
}

/// One `GET url`: Ok on 200, else what came back.
async fn poll(http: &reqwest::Client, url: &str) -> Result<(), String> {
    match http.get(url).send().await {
        Ok(response) if response.status() == reqwest::StatusCode::OK => Ok(()),
        Ok(response) => Err(format!("HTTP {}", response.status())),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP octollm_tasks_total Tasks.
# TYPE octollm_tasks_total counter
octollm_tasks_total{status="ok",task_type="general"} 3
octollm_tasks_total{status="error",task_type="general"} 0
octollm_tasks_total_extra 9
octollm_queue_depth 4
octollm_odd{path="a,b}=c",quote="say \"hi\"\\"} 1.5 1700000000000
octollm_up +Inf
"#;

    #[test]
    fn sample_matches_name_and_the_whole_label_set_in_any_order() {
        let general = ("task_type", "general");
        assert_eq!(
            sample(TEXT, "octollm_tasks_total", &[("status", "ok"), general]),
            Some(3.0)
        );
        assert_eq!(
            sample(TEXT, "octollm_tasks_total", &[general, ("status", "ok")]),
            Some(3.0)
        );
        assert_eq!(
            sample(TEXT, "octollm_tasks_total", &[general, ("status", "error")]),
            Some(0.0)
        );
        // A subset of the labels is not the sample.
        assert_eq!(
            sample(TEXT, "octollm_tasks_total", &[("status", "ok")]),
            None
        );
        assert_eq!(
            sample(TEXT, "octollm_tasks_total", &[general, ("status", "x")]),
            None
        );
    }

    #[test]
    fn sample_does_not_take_a_longer_name_for_a_prefix() {
        assert_eq!(sample(TEXT, "octollm_queue_depth", &[]), Some(4.0));
        assert_eq!(sample(TEXT, "octollm_tasks_total_extra", &[]), Some(9.0));
        assert_eq!(sample(TEXT, "octollm_queue", &[]), None);
        assert_eq!(sample(TEXT, "octollm_tasks_total", &[]), None);
        assert_eq!(sample(TEXT, "octollm_absent", &[]), None);
    }

    #[test]
    fn sample_reads_escaped_values_timestamps_and_infinity() {
        assert_eq!(
            sample(
                TEXT,
                "octollm_odd",
                &[("path", "a,b}=c"), ("quote", "say \"hi\"\\")]
            ),
            Some(1.5)
        );
        assert_eq!(sample(TEXT, "octollm_up", &[]), Some(f64::INFINITY));
    }

    #[test]
    fn comments_blank_and_malformed_lines_are_no_samples() {
        for line in ["", "# HELP x y", "x{a=\"1\"", "x{a=1} 2", "x notanumber"] {
            assert!(parse_sample(line).is_none(), "{line:?}");
        }
    }

    #[test]
    fn free_ports_are_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}
