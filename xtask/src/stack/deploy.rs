//! Deploying a whole stack: build the services, reconcile every component
//! in start order, smoke it, and wait until Prometheus sees every target.
//! `cargo xtask deploy` is this plus a table; the throwaway stacks of the
//! checks (`with_temporary_stack`) are this plus a teardown.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use super::launch::{self, DEFAULT_TIMINGS, Timings};
use super::ports::PlannedStack;
use super::postgres::Postgres;
use super::{Component, Stack, api, backup, prerequisites};
use crate::util::{progress, random_hex, wait_for};
use crate::{prom, say};

/// What to deploy, and where.
pub struct DeployPlan {
    pub state_dir: PathBuf,
    pub port_base: u16,
    /// Submit a smoke task through the arms after start-up.
    pub smoke: bool,
    /// Alert windows divided by this factor (`deploy --compress-time`).
    pub compress_time: Option<u32>,
}

impl DeployPlan {
    /// Brings the stack up (or reconciles it), smoke-tests it and waits for
    /// every Prometheus target; returns it.
    pub fn run(&self, sh: &Shell) -> Result<Stack> {
        let stack = Stack::new(&self.state_dir, self.port_base)?;
        let _lock = stack.lock()?;
        prerequisites::ensure(sh)?;
        build_services(sh)?;
        fs::write(
            stack.state_dir.join("port-base"),
            self.port_base.to_string(),
        )?;
        launch::ensure_token(&stack)?;
        let timings = match self.compress_time {
            Some(factor) => {
                say!("compressed time: alert windows divided by {factor}");
                fs::write(launch::compression_file(&stack), factor.to_string())?;
                launch::compressed_timings(factor)
            }
            None => {
                let _ = fs::remove_file(launch::compression_file(&stack));
                DEFAULT_TIMINGS
            }
        };
        for component in Component::ALL {
            reconcile(&stack, component, &timings).map_err(|error| {
                anyhow::anyhow!(
                    "{error:#}\n\nthe stack is partly up: `cargo xtask status` shows it, `cargo xtask down` stops it"
                )
            })?;
        }
        backup::push_backup_metrics(&stack)?;
        backup::verify_once(&stack)?;
        if self.smoke {
            api::smoke_arms(&stack)?;
            api::smoke(&stack)?;
        }
        let step = progress::step("waiting for every Prometheus target to be up");
        let up = prom::client::Prometheus::new(&stack.url(Component::Prometheus))
            .wait_targets_up(Duration::from_secs(90))?;
        step.done();
        say!("all {up} targets up");
        Ok(stack)
    }
}

/// `cargo build --release` of every workspace package the stack runs.
pub fn build_services(sh: &Shell) -> Result<()> {
    let packages = Component::workspace_packages();
    let step = progress::step(format!(
        "building services (release): {}",
        packages.join(", ")
    ));
    let mut args: Vec<&str> = Vec::new();
    for package in &packages {
        args.extend(["-p", package]);
    }
    cmd!(sh, "cargo build --release --locked {args...}")
        .quiet()
        .run()?;
    step.done();
    Ok(())
}

/// `cargo build --release` of `octollm-load`, the load generator the drills
/// and the load test run.
pub fn build_load_generator(sh: &Shell) -> Result<()> {
    cmd!(sh, "cargo build --release --locked -p load-gen")
        .quiet()
        .run()?;
    Ok(())
}

/// Starts `component` unless it already runs exactly this launch; restarts
/// it when something changed. Waits for readiness.
pub fn reconcile(stack: &Stack, component: Component, timings: &Timings) -> Result<()> {
    let launch = launch::launch(stack, component, timings)
        .with_context(|| format!("preparing {component}"))?;
    let running = stack.pid(component).is_some();
    if running && stack.fingerprint(component).as_deref() == Some(launch.fingerprint.as_str()) {
        say!("{:<18} unchanged", component.name());
        return Ok(());
    }
    if running {
        say!("{:<18} changed: restarting", component.name());
        stack.stop(component, Duration::from_secs(20))?;
    } else {
        say!("{:<18} starting", component.name());
    }
    stack.check_port_free(component)?;
    stack.spawn(component, launch.command, &launch.fingerprint)?;
    let ready = wait_for(component.name(), component.ready_within(), || {
        stack.pid(component).is_some() && launch::is_ready(stack, component)
    })
    .and_then(|()| launch::after_start(stack, component));
    ready.with_context(|| {
        let state = if stack.pid(component).is_some() {
            "is not ready"
        } else {
            "exited"
        };
        format!(
            "{component} {state}; last lines of {}:\n{}",
            stack.log_path(component).display(),
            stack.log_tail(component, 30)
        )
    })
}

/// Stops every component, last started first.
pub fn stop_all(stack: &Stack) -> Result<()> {
    for component in Component::ALL.iter().rev() {
        if stack.stop(*component, Duration::from_secs(20))? {
            say!("stopped {component}");
        }
    }
    Ok(())
}

/// Deploys a throwaway stack on its planned ports, runs `check` against it,
/// and always tears it down (all processes, data, backups).
pub fn with_temporary_stack<T>(
    sh: &Shell,
    planned: PlannedStack,
    compress_time: Option<u32>,
    check: impl FnOnce(&Stack) -> Result<T>,
) -> Result<T> {
    let state_dir = temporary_state_dir(planned.name())?;
    let result = planned.allocate().and_then(|port_base| {
        DeployPlan {
            state_dir: state_dir.clone(),
            port_base,
            smoke: true,
            compress_time,
        }
        .run(sh)
    });
    let result = result.and_then(|stack| check(&stack));
    let teardown = teardown(&state_dir);
    let value = result?;
    teardown?;
    Ok(value)
}

/// A new directory of our own under the temp dir: a random name, created
/// exclusively with mode 0700, so nobody can plant or read files in it.
fn temporary_state_dir(name: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("octollm-{name}-{}", random_hex(8)?));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Stops a stack and deletes everything it had: processes, data, backups.
pub fn teardown(state_dir: &Path) -> Result<()> {
    let result = Stack::open(state_dir).and_then(|stack| {
        stop_all(&stack)?;
        Postgres::new(&stack).purge()
    });
    let _ = fs::remove_dir_all(state_dir);
    result
}
