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

/// Runs `command` with `input` on its stdin (for what must not go on
/// argv: SQL with passwords, tokens, pushed metrics); its stdout, or an
/// error with its stderr and stdout.
pub fn run_with_input(command: &mut Command, input: &str) -> Result<String> {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run {}: {e}",
                command.get_program().to_string_lossy()
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{} failed: {}{}",
            command.get_program().to_string_lossy(),
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// CPU seconds (user + system) spent by `pid`, its children that have
/// ended, and its live descendants, from /proc.
pub fn cpu_seconds_of_tree(pid: i32) -> f64 {
    let ticks = clock_ticks();
    let mut total = 0.0;
    let mut pending = vec![pid];
    while let Some(pid) = pending.pop() {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3, utime 14,
        // stime 15, cutime 16, cstime 17 (1-based, proc(5)).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        total += [14, 15, 16, 17]
            .iter()
            .filter_map(|n| field(*n))
            .sum::<f64>()
            / ticks;
        pending.extend(children(pid));
    }
    total
}

/// The live children of `pid`.
fn children(pid: i32) -> Vec<i32> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Raises this process's open-files limit towards `want` (soft and hard;
/// only root may raise the hard limit) and returns the soft limit now in
/// force. Every process xtask starts afterwards inherits it.
pub fn raise_open_files_limit(want: u64) -> std::io::Result<u64> {
    let resource = rlimit::Resource::NOFILE;
    let (soft, hard) = resource.get()?;
    if soft >= want {
        return Ok(soft);
    }
    if hard < want && rlimit::setrlimit(resource, want, want).is_ok() {
        return Ok(want);
    }
    let soft = want.min(hard);
    rlimit::setrlimit(resource, soft, hard)?;
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_child_counts_toward_its_parent() {
        // A shell that spins for a while in a child, then sleeps.
        let mut parent = Command::new("sh")
            .args([
                "-c",
                "sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5'",
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let pid = i32::try_from(parent.id()).unwrap();
        let mut spent = 0.0;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) && spent < 0.05 {
            spent = cpu_seconds_of_tree(pid);
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = parent.kill();
        let _ = parent.wait();
        assert!(spent >= 0.05, "saw {spent} CPU seconds");
    }
}
