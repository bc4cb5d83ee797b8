//! Debian packages the stack and CI need, installed with apt-get when missing.

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

use crate::{container_engine, say};

/// Packages of the local stack and of CI's checks.
pub const PACKAGES: &[&str] = &[
    "postgresql-15",
    "postgresql-client-15",
    "pgbackrest",
    "redis-server",
    "redis-tools",
    "prometheus",              // also promtool
    "prometheus-alertmanager", // also amtool
    "prometheus-pushgateway",
    "prometheus-node-exporter",
    "prometheus-postgres-exporter",
    "prometheus-redis-exporter",
    "curl",
    "util-linux", // setpriv
];

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
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
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
