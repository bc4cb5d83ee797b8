//! `cargo xtask`: the OctoLLM Ops command line.
//!
//! One module per command; `main` only parses arguments and dispatches.

mod bench;
mod ci;
mod container_engine;
mod deploy;
mod down;
mod images;
mod status;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use xshell::Shell;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and check the OctoLLM stack", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything CI checks: installs prerequisites, then fmt, clippy and every test.
    Ci(ci::Ci),
    /// Run the stack on this machine: PostgreSQL, llm-sim and the services, as supervised processes.
    Deploy(deploy::Deploy),
    /// Show each component of the local stack; exit non-zero when one is down.
    Status(status::Status),
    /// Stop the local stack (data kept unless --purge).
    Down(down::Down),
    /// Measure orchestration overhead per task (llm-sim at zero latency) on a dedicated stack.
    Bench(bench::Bench),
    /// Build the local container images (PostgreSQL) from Debian packages, for testcontainers.
    Images(images::Images),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match cli.command {
        Command::Ci(cmd) => cmd.run(&sh),
        Command::Images(cmd) => cmd.run(&sh),
        Command::Deploy(cmd) => cmd.run(&sh),
        Command::Bench(cmd) => cmd.run(&sh),
        Command::Status(cmd) => cmd.run(&sh),
        Command::Down(cmd) => cmd.run(&sh),
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
