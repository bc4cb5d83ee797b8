//! `cargo xtask`: the OctoLLM Ops command line.
//!
//! One module per command; `main` only parses arguments and dispatches.

mod alert_sim;
mod backup;
mod bench;
mod ci;
mod container_engine;
mod deploy;
mod down;
mod dr_test;
mod images;
mod logs;
mod monitoring;
mod restart;
mod runbooks;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xshell::Shell;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, run and check the OctoLLM stack",
    long_about = "Build, run and check the OctoLLM stack.\n\n\
Typical use:\n  \
cargo xtask deploy              run the whole stack on this machine (state in .octollm/)\n  \
cargo xtask status              is everything up? (exit code 1 if not)\n  \
cargo xtask logs orchestrator   a component's log (-f to follow)\n  \
cargo xtask down                stop it (--purge deletes the data)\n  \
cargo xtask alert-sim           fire, route and resolve every alert on a live stack\n  \
cargo xtask ci                  everything CI checks"
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
    /// Measure orchestration overhead per task (llm-sim at zero latency) on a dedicated stack.
    Bench(bench::Bench),
    /// Build the test container images (PostgreSQL, Redis) from Debian packages, for testcontainers.
    Images(images::Images),
    /// Monitoring as code: rules, promtool tests, Alertmanager routing, dashboards (--live: against a stack).
    Monitoring(monitoring::Monitoring),
    /// Check the on-call runbooks (runbooks/) against the alert rules and this command line.
    Runbooks(runbooks::Runbooks),
    /// Inject each alert's fault into a live stack: it must page the right receiver in time, and resolve.
    #[command(long_about = alert_sim::LONG_ABOUT)]
    AlertSim(alert_sim::AlertSim),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            say!("error: {error:#}");
            ExitCode::FAILURE
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
        Command::Bench(cmd) => cmd.run(&sh),
        Command::Backup(cmd) => cmd.run(&sh),
        Command::DrTest(cmd) => cmd.run(&sh),
        Command::Status(cmd) => cmd.run(&sh),
        Command::Down(cmd) => cmd.run(&sh),
        Command::Logs(cmd) => cmd.run(&sh),
        Command::Restart(cmd) => cmd.run(&sh),
        Command::Monitoring(cmd) => cmd.run(&sh),
        Command::Runbooks(cmd) => cmd.run(&sh),
        Command::AlertSim(cmd) => cmd.run(&sh),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Progress output for humans. xtask is a CLI: stderr is its voice.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        #[allow(clippy::print_stderr)]
        { eprintln!("[xtask] {}", format!($($arg)*)); }
    }};
}
