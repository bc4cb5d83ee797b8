//! `cargo xtask`: the OctoLLM Ops command line.
//!
//! Three layers (ARCHITECTURE.md, "Layers"): `commands` (one module per
//! command) on `stack` (a local stack and everything that operates one) and
//! `prom` (PromQL, rules, the Prometheus API), all on `util`. `main` only
//! parses arguments, dispatches, and turns the outcome into an exit code.

mod commands;
mod prom;
mod stack;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xshell::Shell;

use crate::commands::*;
use crate::util::{ExitStatus, project_root};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, run and check the OctoLLM stack",
    long_about = "Build, run and check the OctoLLM stack.\n\n\
Typical use:\n  \
cargo xtask deploy              run the whole stack on this machine (state in .octollm/)\n  \
cargo xtask status              is everything up? (exit code 1 if not)\n  \
cargo xtask doctor              what is wrong and what to do (--pre before a deploy)\n  \
cargo xtask logs orchestrator   a component's log (-f to follow)\n  \
cargo xtask down                stop it (--purge deletes the data)\n  \
cargo xtask alert-sim           fire, route and resolve every alert on a live stack\n  \
cargo xtask load-test --profile progressive   find the knee of the task path\n  \
cargo xtask ci                  everything CI checks\n\n\
Output: data (tables, --json) on stdout, progress on stderr.\n\
Exit codes: 0 ok, 1 a check failed (a drill, a threshold, a component down),\n\
2 usage, 3 the tool itself failed.\n\
OCTOLLM_STATE_DIR selects the stack for the commands that operate one\n\
(deploy, status, logs, restart, down, backup); alert-sim, dr-test and\n\
load-test, which damage or load a stack on purpose, take one only from\n\
--state-dir (without it they deploy a throwaway stack)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything CI checks: installs prerequisites, then fmt, clippy and every test.
    Ci(ci::Ci),
    /// Run the whole stack on this machine as supervised processes.
    Deploy(deploy::Deploy),
    /// Show each component of the local stack; exit non-zero when one is down.
    Status(status::Status),
    /// What is wrong with the local stack and what to do: checks by category, √ ‼ ×, runbook links.
    Doctor(doctor::Doctor),
    /// Stop the local stack (data kept unless --purge).
    Down(down::Down),
    /// Show (or follow) one component's log.
    Logs(logs::Logs),
    /// Restart one component of the local stack.
    Restart(restart::Restart),
    /// Back up the local stack now: PostgreSQL (pgBackRest) and Redis (RDB copy), metrics pushed.
    Backup(backup::Backup),
    /// Disaster-recovery drills with measured RTO/RPO against a ledger of acknowledged writes.
    DrTest(dr_test::DrTest),
    /// Load-test the task path with a named profile; thresholds decide the exit code.
    #[command(long_about = load_test::ABOUT)]
    LoadTest(load_test::LoadTest),
    /// Build the test container images (PostgreSQL, Redis) from Debian packages, for testcontainers.
    Images(images::Images),
    /// Monitoring as code: rules, promtool tests, Alertmanager routing, dashboards (--live: against a stack).
    Monitoring(monitoring::Monitoring),
    /// Check the on-call runbooks (runbooks/) against the alert rules and this command line.
    Runbooks(runbooks::Runbooks),
    /// Score the detection engine on public data split by source; exit 1 when the dev split crosses its floors.
    DetectionEval(detection_eval::DetectionEval),
    /// Inject each alert's fault into a live stack: it must page the right receiver in time, and resolve.
    #[command(long_about = alert_sim::LONG_ABOUT)]
    AlertSim(alert_sim::AlertSim),
    /// Install the Debian packages of the stack and of CI's checks (apt-get, as root).
    Prerequisites(prerequisites::Prerequisites),
    /// Check the GitHub Actions workflows: actionlint + shellcheck, zizmor, SHA pins, xtask arguments.
    Workflows(workflows::Workflows),
}

fn main() -> ExitCode {
    // clap exits 2 on a usage error and 0 for --help.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitStatus::Ok.into(),
        Err(error) => {
            let status = ExitStatus::of(&error);
            match status {
                ExitStatus::CheckFailed => say!("check failed: {error:#}"),
                _ => say!("error: {error:#}"),
            }
            status.into()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match cli.command {
        Command::Ci(cmd) => cmd.run(&sh),
        Command::Images(cmd) => cmd.run(&sh),
        Command::Deploy(cmd) => cmd.run(&sh),
        Command::LoadTest(cmd) => cmd.run(&sh),
        Command::Backup(cmd) => cmd.run(&sh),
        Command::DrTest(cmd) => cmd.run(&sh),
        Command::Status(cmd) => cmd.run(&sh),
        Command::Doctor(cmd) => cmd.run(&sh),
        Command::Down(cmd) => cmd.run(&sh),
        Command::Logs(cmd) => cmd.run(&sh),
        Command::Restart(cmd) => cmd.run(&sh),
        Command::Monitoring(cmd) => cmd.run(&sh),
        Command::Runbooks(cmd) => cmd.run(&sh),
        Command::DetectionEval(cmd) => cmd.run(&sh),
        Command::AlertSim(cmd) => cmd.run(&sh),
        Command::Prerequisites(cmd) => cmd.run(&sh),
        Command::Workflows(cmd) => cmd.run(&sh),
    }
}
