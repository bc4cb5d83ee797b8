//! `cargo xtask doctor`: what is wrong with the local stack and what to do
//! about it, in one command. Checks grouped by category (components,
//! Prometheus, Alertmanager, backups, database, resources; `--pre`: the
//! prerequisites of a deploy), each √, ‼ or × with one line of evidence,
//! and for a warning or failure the runbook section and the next command.
//!
//! - `probes.rs` measures (processes, `/proc`, HTTP APIs, pgBackRest,
//!   PostgreSQL's views), `classify.rs` decides (every threshold, unit
//!   tested), `report.rs` is the result: table, JSON (docs/contracts.md,
//!   "Doctor") and exit code (0 healthy, 1 a failure or with `--strict` a
//!   warning, 2 usage, 3 doctor could not run: no stack deployed).
//! - The runbooks' `diagnose` blocks call `cargo xtask doctor --only
//!   <category>` rather than repeating its checks.
//! - [`ci_check`] runs it against the system test's live stack: healthy
//!   first, then with an arm and Alertmanager stopped.

mod classify;
mod probes;
mod report;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xshell::Shell;

use super::StackArgs;
use crate::stack::container_engine::is_root;
use crate::stack::deploy::reconcile;
use crate::stack::{Component, Stack, launch};
use crate::util::check_failed;
use crate::{emit, say};
use report::{Category, Next, Report, StackRef};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cargo xtask doctor                       every check of the deployed stack in .octollm/\n  \
cargo xtask doctor --pre                 before a deploy: packages, ports, permissions, disk\n  \
cargo xtask doctor --only database --only backups\n  \
cargo xtask doctor --json | jq '.checks[] | select(.status != \"ok\")'\n  \
cargo xtask doctor --strict --state-dir /tmp/s2   warnings fail too\n\n\
Marks: √ ok, ‼ warning, × failure; a warning or failure names its runbook section and the next command.\n\
JSON schema: docs/contracts.md, \"Doctor\".\n\
Exit codes: 0 healthy (warnings allowed unless --strict), 1 a failure (or a warning with --strict),\n\
2 usage, 3 doctor could not run (no stack deployed there).")]
pub struct Doctor {
    #[command(flatten)]
    stack: StackArgs,
    /// Check the prerequisites of a deploy instead (packages, ports free or
    /// held by this stack, permissions, disk); needs no deployed stack.
    #[arg(long)]
    pre: bool,
    /// Only these categories (repeatable); default: every category of a
    /// deployed stack.
    #[arg(long, value_enum, value_name = "CATEGORY")]
    only: Vec<Category>,
    /// Print JSON on stdout (docs/contracts.md, "Doctor") instead of the table.
    #[arg(long)]
    json: bool,
    /// Warnings fail the run too (exit 1).
    #[arg(long)]
    strict: bool,
    /// With --pre and no stack deployed in the state directory: the port
    /// base the deploy will use.
    #[arg(long, default_value_t = 0, requires = "pre")]
    port_base: u16,
}

impl Doctor {
    fn categories(&self) -> Vec<Category> {
        let mut chosen = self.only.clone();
        if self.pre {
            chosen.push(Category::Prerequisites);
        }
        if chosen.is_empty() {
            chosen = Category::DEPLOYED.to_vec();
        }
        chosen.sort();
        chosen.dedup();
        chosen
    }

    pub fn run(&self, sh: &Shell) -> Result<()> {
        let categories = self.categories();
        let needs_stack = categories.iter().any(|c| *c != Category::Prerequisites);
        // Like `status`: no stack there is doctor unable to run (exit 3).
        let stack = if needs_stack || self.stack.state_dir.join("port-base").exists() {
            Some(self.stack.open()?)
        } else {
            None
        };
        let root = is_root(sh);
        let report = diagnose(
            &self.stack.state_dir,
            stack.as_ref(),
            &categories,
            self.port_base,
            root,
            self.strict,
        );
        if self.json {
            let stack = stack.as_ref().map(|s| StackRef {
                state_dir: s.state_dir.display().to_string(),
                port_base: s.port_base,
            });
            emit!("{}", serde_json::to_string_pretty(&report.json(stack))?);
        } else {
            emit!("{}", report.render().trim_end());
        }
        let failing = report.failing();
        if !failing.is_empty() {
            let names: Vec<String> = failing
                .iter()
                .map(|c| format!("{}/{}", c.category.name(), c.name))
                .collect();
            return Err(check_failed(format!(
                "doctor: {} check(s) failing: {}",
                failing.len(),
                names.join(", ")
            )));
        }
        Ok(())
    }
}

/// Runs the checks of `categories`, each category on its own thread, and
/// returns them in category order. `stack` is required for every category
/// but the prerequisites.
pub fn diagnose(
    state_dir: &Path,
    stack: Option<&Stack>,
    categories: &[Category],
    port_base: u16,
    root: bool,
    strict: bool,
) -> Report {
    let next = Next::for_state_dir(state_dir);
    let next = &next;
    let checks = std::thread::scope(|scope| {
        let runs: Vec<_> = categories
            .iter()
            .map(|&category| {
                scope.spawn(move || match (category, stack) {
                    (Category::Prerequisites, _) => {
                        probes::prerequisites(state_dir, stack, port_base, root)
                    }
                    (_, None) => vec![
                        report::Check::of(category, "stack")
                            .fail("no stack deployed in this state directory"),
                    ],
                    (Category::Components, Some(s)) => probes::components(s, next),
                    (Category::Prometheus, Some(s)) => probes::prometheus(s, next),
                    (Category::Alertmanager, Some(s)) => probes::alertmanager(s, next),
                    (Category::Backups, Some(s)) => probes::backups(s, next),
                    (Category::Database, Some(s)) => probes::database(s, next),
                    (Category::Resources, Some(s)) => probes::resources(s),
                })
            })
            .collect();
        runs.into_iter()
            .zip(categories)
            .flat_map(|(run, &category)| {
                run.join().unwrap_or_else(|_| {
                    vec![report::Check::of(category, "doctor").fail("the probe panicked")]
                })
            })
            .collect()
    });
    Report { checks, strict }
}

/// Doctor as CI's system test runs it (`ci::system_test`), through this
/// very binary so the exit code and the JSON are the real ones: a healthy
/// stack has no failure (exit 0), `--strict` exits 1 exactly when something
/// warned, `--pre` finds every port held by the stack's own component; with
/// the judge arm stopped, its component
/// check fails naming ServiceDown's runbook (exit 1); with Alertmanager
/// stopped, its config check fails naming its runbook (exit 1). Both are
/// restarted the way `cargo xtask restart` does, and doctor is healthy again.
pub fn ci_check(stack: &Stack) -> Result<()> {
    let (code, json) = run_binary(stack, &[])?;
    let failing = failing_checks(&json);
    if code != 0 || !failing.is_empty() {
        bail!(
            "doctor on a healthy stack: exit {code}, failing: {}",
            failing.join("; ")
        );
    }
    let summary = &json["summary"];
    say!(
        "doctor on the healthy stack: {} √, {} ‼, 0 ×",
        summary["ok"],
        summary["warn"]
    );
    // --strict fails exactly when something warned.
    let warned = summary["warn"].as_u64().unwrap_or(0) > 0;
    let (strict, _) = run_binary(stack, &["--strict"])?;
    if strict != i32::from(warned) {
        bail!(
            "doctor --strict exited {strict} with {} warning(s)",
            summary["warn"]
        );
    }
    // --pre on a deployed stack: its ports are held by its own components.
    let (code, json) = run_binary(stack, &["--pre"])?;
    let ports = json["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "ports")
        .cloned()
        .unwrap_or_default();
    let listening = Component::ALL.iter().filter(|c| c.listens()).count();
    let all_ours = format!(" 0 free, {listening} held by this stack");
    if code != 0
        || ports["status"] != "ok"
        || !ports["evidence"]
            .as_str()
            .is_some_and(|e| e.ends_with(&all_ours))
    {
        bail!(
            "doctor --pre on the deployed stack: exit {code}, ports: {ports}, failing: {}",
            failing_checks(&json).join("; ")
        );
    }

    for (component, category, check, runbook) in [
        (
            Component::JudgeArm,
            Category::Components,
            "judge-arm",
            "runbooks/service-unavailable.md#servicedown",
        ),
        (
            Component::Alertmanager,
            Category::Alertmanager,
            "config",
            "runbooks/monitoring.md#alertmanagernotificationsfailing",
        ),
    ] {
        stack.stop(component, Duration::from_secs(10))?;
        let only = ["--only", category.name()];
        let seen = run_binary(stack, &only);
        // Restart before judging, so a failed assertion leaves a whole stack.
        reconcile(stack, component, &launch::timings_of(stack))?;
        let (code, json) = seen?;
        let found = json["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["category"] == category.name() && c["name"] == check)
            .cloned()
            .unwrap_or_default();
        let names_runbook = found["runbook"]
            .as_str()
            .is_some_and(|url| url.ends_with(runbook));
        if code != 1 || found["status"] != "fail" || !names_runbook {
            bail!(
                "doctor with {component} stopped: exit {code} (want 1), check {}/{check}: {found} (want status fail and runbook …{runbook})",
                category.name()
            );
        }
        say!(
            "doctor with {component} stopped: exit 1, × {check}: {} (see {})",
            found["evidence"].as_str().unwrap_or_default(),
            runbook
        );
        let (code, json) = run_binary(stack, &only)?;
        if code != 0 {
            bail!(
                "doctor after restarting {component}: exit {code}: {}",
                failing_checks(&json).join("; ")
            );
        }
    }
    Ok(())
}

/// `xtask doctor --json --state-dir <stack> <args>`: its exit code and JSON.
fn run_binary(stack: &Stack, args: &[&str]) -> Result<(i32, serde_json::Value)> {
    // The path of this binary even when a build replaced it since it started.
    let output = Command::new(crate::stack::launch::xtask_binary()?)
        .arg("doctor")
        .arg("--json")
        .arg("--state-dir")
        .arg(&stack.state_dir)
        .args(args)
        .output()
        .context("running xtask doctor")?;
    let code = output.status.code().unwrap_or(-1);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "doctor (exit {code}) printed no JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if json["schema"] != report::SCHEMA || json["exit_code"] != code {
        bail!("doctor's JSON disagrees with its schema or exit code {code}: {json}");
    }
    Ok((code, json))
}

fn failing_checks(json: &serde_json::Value) -> Vec<String> {
    json["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "fail")
        .map(|c| format!("{}/{}: {}", c["category"], c["name"], c["evidence"]))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::report::Status;
    use super::*;

    fn parse(args: &[&str]) -> Doctor {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            doctor: Doctor,
        }
        Cli::try_parse_from(std::iter::once("doctor").chain(args.iter().copied()))
            .unwrap()
            .doctor
    }

    #[test]
    fn categories_default_to_a_deployed_stack_and_pre_adds_the_prerequisites() {
        assert_eq!(parse(&[]).categories(), Category::DEPLOYED);
        assert_eq!(parse(&["--pre"]).categories(), [Category::Prerequisites]);
        assert_eq!(
            parse(&[
                "--only", "database", "--only", "backups", "--only", "database"
            ])
            .categories(),
            [Category::Backups, Category::Database]
        );
    }

    #[test]
    fn a_port_base_needs_pre() {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            doctor: Doctor,
        }
        assert!(Cli::try_parse_from(["doctor", "--port-base", "3800"]).is_err());
        assert!(Cli::try_parse_from(["doctor", "--only", "nonsense"]).is_err());
        assert!(Cli::try_parse_from(["doctor", "--pre", "--port-base", "3800"]).is_ok());
    }

    /// Without a stack every category but the prerequisites says so, and
    /// the prerequisites still run.
    #[test]
    fn without_a_stack_only_the_prerequisites_run() {
        let dir = std::env::temp_dir().join(format!("doctor-nostack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let report = diagnose(
            &dir,
            None,
            &[Category::Prerequisites, Category::Database],
            22800,
            true,
            false,
        );
        let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
        assert!(
            names.starts_with(&["packages", "ports", "permissions"]),
            "{names:?}"
        );
        let database = report.find(Category::Database, "stack").unwrap();
        assert_eq!(database.status, Status::Fail);
        assert_eq!(report.exit_code(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
