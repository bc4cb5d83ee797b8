//! Running one checked command: its own process group, a scrubbed
//! environment, the confined working directory, no stdin, output read up to
//! a cap (the rest drained and dropped, never buffered), and a timeout after
//! which the whole group is killed. Dropping the run (the request's deadline
//! passed) kills the group too.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::policy::SEARCH_PATH;

/// `outcome` of a run (and of `octollm_executor_commands_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exited 0.
    Ok,
    /// Exited non-zero, or was killed by a signal it did not get from us.
    Nonzero,
    /// Still running at the timeout: killed with its process group.
    Timeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Nonzero => "nonzero",
            Outcome::Timeout => "timeout",
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub outcome: Outcome,
    /// The exit code; null when killed by a signal.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The stream was longer than the cap; the rest was dropped.
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration_ms: u64,
}

/// Limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// Bytes kept of stdout, and of stderr.
    pub max_output_bytes: usize,
}

/// Kills a process group when dropped, unless disarmed (after a clean exit).
struct GroupGuard {
    pgid: Option<rustix::process::Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (already gone) is fine.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `program args` in `workdir`. An error means it could not start.
pub async fn run(
    program: &Path,
    args: &[String],
    workdir: &Path,
    limits: Limits,
) -> std::io::Result<RunReport> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(workdir)
        .env_clear()
        .env("PATH", SEARCH_PATH)
        .env("LC_ALL", "C")
        .env("HOME", workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let mut guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw),
    };
    let cap = limits.max_output_bytes;
    // Readers run on their own, so partial output survives a timeout: once
    // the group is killed the pipes close and they finish.
    let stdout = child
        .stdout
        .take()
        .map(|s| tokio::spawn(read_capped(s, cap)));
    let stderr = child
        .stderr
        .take()
        .map(|s| tokio::spawn(read_capped(s, cap)));

    let (outcome, exit_code) = match tokio::time::timeout(limits.timeout, child.wait()).await {
        Ok(Ok(status)) => {
            // The leader has been reaped; its group id may be reused: disarm.
            guard.pgid = None;
            match status.code() {
                Some(0) => (Outcome::Ok, Some(0)),
                code => (Outcome::Nonzero, code),
            }
        }
        Ok(Err(error)) => return Err(error),
        Err(_elapsed) => {
            guard.kill();
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            (Outcome::Timeout, None)
        }
    };
    let collect = |task: Option<tokio::task::JoinHandle<Captured>>| async move {
        match task {
            Some(task) => tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => Captured::default(),
        }
    };
    let (out, err) = tokio::join!(collect(stdout), collect(stderr));
    Ok(RunReport {
        outcome,
        exit_code,
        stdout: String::from_utf8_lossy(&out.bytes).into_owned(),
        stderr: String::from_utf8_lossy(&err.bytes).into_owned(),
        stdout_truncated: out.truncated,
        stderr_truncated: err.truncated,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Reads to the end, keeping the first `cap` bytes.
async fn read_capped(mut stream: impl AsyncRead + Unpin, cap: usize) -> Captured {
    let mut captured = Captured {
        bytes: Vec::with_capacity(cap.min(16 * 1024)),
        truncated: false,
    };
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = cap.saturating_sub(captured.bytes.len());
        if n > room {
            captured.truncated = true;
        }
        captured.bytes.extend_from_slice(&chunk[..n.min(room)]);
    }
    captured
}
