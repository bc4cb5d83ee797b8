//! Processes by pid: alive, signalled, waited for.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Whether `pid` is a live process (not a zombie).
pub fn is_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            // The state follows the parenthesised command name.
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Sends SIG`name` to `pid`; an already dead process is not an error.
pub fn signal(pid: i32, name: &str) -> Result<()> {
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
