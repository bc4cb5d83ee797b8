//! orchestrator: parse config, init telemetry, build state, build the app, serve.

use std::process::ExitCode;

use clap::Parser;
use orchestrator::api::{self, ApiDoc};
use orchestrator::config::Args;
use orchestrator::{Orchestrator, SERVICE};
use service_kit::{Kit, telemetry};
use utoipa::OpenApi;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::exit_code(SERVICE.name, run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(SERVICE.name, args.kit.log_format, "info")?;
    let kit = Kit::new(SERVICE, &args.kit)?;
    let orchestrator = Orchestrator::start(&args, &kit)?;
    let api = kit.protect(api::router(orchestrator.api_state()));
    let app = kit.app(api, orchestrator.readiness(), ApiDoc::openapi());
    kit.serve(app).await?;
    orchestrator.stop(args.kit.shutdown_grace).await;
    Ok(())
}
