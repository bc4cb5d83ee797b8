//! `cargo xtask ci`: everything CI checks, in the order a failure is cheapest
//! to find: prerequisites, fmt, clippy, unit and integration tests (against
//! real PostgreSQL through testcontainers), then the deployed-stack system
//! test and the alert-sim subset (each on its own temporary stack).

use std::time::Instant;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

mod api_fuzz;
mod arms_check;
mod pii_scan;
mod rotation_drill;
mod supply_chain;
mod system_test;

use super::{alert_sim, detection_eval, dr_test, images, k8s, monitoring, runbooks, workflows};
use crate::say;
use crate::stack::{container_engine, prerequisites};
use crate::util::check_failed;

#[derive(clap::Args)]
pub struct Ci {
    /// Skip the system test that deploys the whole stack.
    #[arg(long)]
    no_system_test: bool,
}

impl Ci {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let started = Instant::now();
        let mut timings = Vec::new();
        let mut step = |name: &'static str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
            say!("── {name}");
            let t = Instant::now();
            f().with_context(|| format!("ci step `{name}` failed"))?;
            timings.push((name, t.elapsed()));
            Ok(())
        };

        step("prerequisites", &mut || prerequisites::ensure(sh))?;
        step("fmt", &mut || {
            checked(cmd!(sh, "cargo fmt --all --check").run(), "rustfmt")
        })?;
        step("clippy", &mut || {
            checked(
                cmd!(
                    sh,
                    "cargo clippy --workspace --all-targets --locked -- -D warnings"
                )
                .run(),
                "clippy",
            )
        })?;
        step("runbooks", &mut || runbooks::Runbooks {}.run(sh))?;
        step("detection floors (committed dev split)", &mut || {
            detection_eval::ci(sh)
        })?;
        step(
            "workflows (actionlint, shellcheck, zizmor, pins, xtask args)",
            &mut || workflows::check(sh),
        )?;
        step(
            "supply chain (cargo-deny: licences, bans, sources)",
            &mut supply_chain::run,
        )?;
        let mut docker_host = String::new();
        step("container engine", &mut || {
            docker_host = container_engine::ensure_engine(sh)?;
            images::ensure_images(sh)
        })?;
        step("tests", &mut || {
            let _env = sh.push_env("DOCKER_HOST", &docker_host);
            checked(cmd!(sh, "cargo test --workspace --locked").run(), "tests")
        })?;
        if !self.no_system_test {
            step("system test (deploy, smoke, down)", &mut || {
                system_test::run(sh)
            })?;
        }
        if !self.no_system_test {
            step(
                "dr-test (disk-loss, accidental-delete, redis-loss; negative control)",
                &mut || dr_test::ci(sh),
            )?;
            step("alert-sim (CI subset, compressed time)", &mut || {
                alert_sim::AlertSim::ci_subset().run(sh)
            })?;
        }
        step(
            "kubernetes manifests (kustomize, kubernetes-validate, checkov)",
            &mut k8s::check::run,
        )?;
        if !self.no_system_test {
            step("kubernetes: podman kube play smoke", &mut || {
                k8s::kube_play::run(sh)
            })?;
        }
        step("monitoring check + live contract", &mut || {
            monitoring::Check {
                live: !self.no_system_test,
                state_dir: None,
            }
            .run(sh)
        })?;

        say!("ci passed in {:.0?}", started.elapsed());
        for (name, took) in timings {
            say!("  {name:<36} {took:>8.1?}");
        }
        Ok(())
    }
}

/// A cargo check that ran and found problems is a failed check (exit 1),
/// not a broken tool.
fn checked(result: xshell::Result<()>, what: &str) -> Result<()> {
    result.map_err(|error| check_failed(format!("{what} failed: {error}")))
}
