//! HTTP through curl: xtask carries no async runtime.

use std::process::Command;

use anyhow::{Result, bail};

/// Runs curl with `args` (fail on HTTP errors, 60 s cap); returns the body.
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

/// The HTTP status of curl with `args` (no body kept, 10 s cap); 0 when
/// nothing answered.
pub fn http_status(args: &[&str]) -> Result<u16> {
    let output = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .output()?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0))
}

/// Whether a GET of `url` answers 2xx within 2 s.
pub fn http_ok(url: &str) -> bool {
    Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "--max-time", "2", url])
        .status()
        .is_ok_and(|s| s.success())
}
