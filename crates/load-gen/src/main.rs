//! octollm-load: the load-testing engine of the OctoLLM services.
//!
//! `run` drives tasks through the orchestrator (open or closed model,
//! ramps, knee finding), keeps a ledger of acknowledged tasks, judges
//! k6-style thresholds and writes a report with plots. `http` is the same
//! open-model scheduler against one endpoint (for comparisons with k6 and
//! wrk), `serve-mock` a cheap endpoint for it. `reflex` (the reflex layer
//! at a fixed rate) and `ledger` (the DR drills' write ledger) are
//! single-purpose generators.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

mod dbcheck;
mod engine;
mod httpbench;
mod ledger;
mod mix;
mod mock;
mod profile;
mod progress;
mod reflex;
mod report;
mod sampler;
mod stats;
mod threshold;
mod wire;

const ABOUT: &str = "Load generators and load-testing engine for the OctoLLM services";

const LONG_ABOUT: &str = "\
Load generators and load-testing engine for the OctoLLM services.

`run` is the engine: open model (constant or ramping arrival rate, latency measured from
each arrival's scheduled time) or closed model (virtual users), a ledger of every
acknowledged task checked through the API at the end (lost, stuck), k6-style thresholds,
live progress on stderr, the JSON summary on stdout and a report (JSON, Markdown, SVG and
PNG plots) in --out.

Exit codes (run, http, report): 0 passed, 1 a threshold failed, 2 usage, 3 the tool failed.

Examples:
  octollm-load run --token-file token --out target/load-test/smoke --rate 50 --duration 30s \\
      --threshold 'p95<5s' --threshold 'errors<0.1%' --threshold 'lost==0'
  octollm-load run --token-file token --out out/ramp --stages 30s:100,60s:1000
  octollm-load run --token-file token --out out/knee --find-knee --knee-start 100 --knee-step 100
  octollm-load http --url http://127.0.0.1:18080/ --rate 20000 --duration 20s --connections 64
  octollm-load serve-mock --listen 127.0.0.1:18080
  octollm-load report --dir out/ramp --server-metrics server.json";

#[derive(Parser, Debug)]
#[command(name = "octollm-load", version, about = ABOUT, long_about = LONG_ABOUT)]
enum Cli {
    /// The load-testing engine: tasks through the orchestrator's API, open or closed model.
    Run(Box<engine::RunArgs>),
    /// Open-model fixed-rate requests to one endpoint (compare with k6, wrk).
    Http(Box<httpbench::HttpArgs>),
    /// A tiny HTTP target answering GET / for generator comparisons.
    ServeMock(mock::MockArgs),
    /// Render an existing report again, e.g. adding server-side figures.
    Report(ReportArgs),
    /// Open model: POST /v1/reflex/check at a fixed rate, every text unique
    /// (cache misses); latency measured from each request's scheduled time.
    Reflex(reflex::ReflexArgs),
    /// Open model for DR drills: submit tasks at a fixed rate until stopped,
    /// recording every acknowledged task id with its acknowledgement time.
    Ledger(ledger::LedgerArgs),
}

#[derive(clap::Args, Debug)]
struct ReportArgs {
    /// The directory holding report.json.
    #[arg(long)]
    dir: PathBuf,
    /// JSON of server-side figures to put into the report.
    #[arg(long)]
    server_metrics: Option<PathBuf>,
}

/// How a run ended, when the tool itself worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
}

/// Why the tool could not do its job.
#[derive(Debug)]
pub enum Failure {
    /// Bad flags or unreadable input files: exit 2.
    Usage(String),
    /// The tool failed (cannot connect, cannot write): exit 3.
    Tool(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Tool(e)
    }
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "octollm-load: {line}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli {
        Cli::Run(a) => a.threads,
        Cli::Http(a) => a.threads,
        Cli::ServeMock(a) => a.threads,
        Cli::Report(_) => 1,
        Cli::Reflex(_) | Cli::Ledger(_) => 2,
    };
    if threads == 0 || threads > 64 {
        say("--threads must be between 1 and 64");
        return ExitCode::from(2);
    }
    let rt = match runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            say(&format!("cannot start the runtime: {e}"));
            return ExitCode::from(3);
        }
    };
    let result = rt.block_on(async {
        match cli {
            Cli::Run(args) => engine::run(*args).await,
            Cli::Http(args) => httpbench::run(*args).await,
            Cli::ServeMock(args) => mock::serve(args).await,
            Cli::Report(args) => rerender(args),
            // The earlier generators keep their contract: exit 1 on any error.
            Cli::Reflex(args) => legacy(reflex::run(args).await),
            Cli::Ledger(args) => legacy(ledger::run(args).await),
        }
    });
    // Iterations still parked on long polls are not waited for.
    rt.shutdown_background();
    match result {
        Ok(Outcome::Passed) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(Failure::Usage(msg)) => {
            say(&format!("usage: {msg}"));
            ExitCode::from(2)
        }
        Err(Failure::Tool(e)) => {
            say(&format!("{e:#}"));
            ExitCode::from(3)
        }
    }
}

fn legacy(result: anyhow::Result<()>) -> Result<Outcome, Failure> {
    match result {
        Ok(()) => Ok(Outcome::Passed),
        Err(e) => {
            say(&format!("{e:#}"));
            Ok(Outcome::Failed)
        }
    }
}

fn rerender(args: ReportArgs) -> Result<Outcome, Failure> {
    let metrics = match &args.server_metrics {
        Some(p) => {
            Some(report::read_server_metrics(p).map_err(|e| Failure::Usage(format!("{e:#}")))?)
        }
        None => None,
    };
    let data = report::rerender(&args.dir, metrics)?;
    report::print_summary(&data)?;
    Ok(if data.passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}
