//! `llm-sim`: TEST INFRASTRUCTURE standing in for paid LLM providers.

use std::process::ExitCode;

use clap::Parser;
use llm_sim::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing(cli.log_format);
    let result = cli::runtime(cli.worker_threads).and_then(|rt| rt.block_on(cli::run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "llm-sim failed");
            ExitCode::FAILURE
        }
    }
}
