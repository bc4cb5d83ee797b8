//! Supply chain: cargo-deny over Cargo.lock with the committed `deny.toml`
//! (licences, bans, sources). Advisories need the RustSec database, which
//! cannot be fetched here; `.github/workflows/security.yml` checks them.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::say;
use crate::stack::tools::cargo_tool;
use crate::util::{check_failed, project_root};

/// The cargo-deny release `deny.toml` is written for.
const CARGO_DENY_VERSION: &str = "0.20.2";

pub fn run() -> Result<()> {
    let deny = cargo_tool("cargo-deny", CARGO_DENY_VERSION, "cargo-deny")?;
    // Negative control: a config that bans a crate the workspace uses must
    // fail, or a pass below would prove nothing.
    let planted = project_root().join("target/tools/deny-negative-control.toml");
    std::fs::write(&planted, "[bans]\ndeny = [{ crate = \"serde\" }]\n")?;
    let (passed, text) = cargo_deny(&deny, &["--config", &planted.to_string_lossy()], "bans")?;
    if passed || !text.contains("bans FAILED") || !text.contains("explicitly banned") {
        anyhow::bail!("cargo-deny's negative control (serde banned) did not fail:\n{text}");
    }
    let (passed, text) = cargo_deny(&deny, &[], "licenses bans sources")?;
    if !passed {
        return Err(check_failed(format!(
            "cargo-deny {CARGO_DENY_VERSION} found problems (deny.toml):\n{text}"
        )));
    }
    say!(
        "cargo-deny {CARGO_DENY_VERSION}: {} (negative control caught; advisories: security.yml, which can fetch RustSec)",
        text.lines().last().unwrap_or("passed").trim()
    );
    Ok(())
}

/// Runs `cargo-deny [extra] --offline check <checks>`: whether it passed,
/// and what it printed.
fn cargo_deny(deny: &Path, extra: &[&str], checks: &str) -> Result<(bool, String)> {
    let output = Command::new(deny)
        .current_dir(project_root())
        .args(["--log-level", "error"])
        .args(extra)
        .args(["--offline", "check"])
        .args(checks.split(' '))
        .output()
        .with_context(|| format!("running {}", deny.display()))?;
    // Findings go to stderr, the per-check summary to stdout.
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    Ok((output.status.success(), text))
}
