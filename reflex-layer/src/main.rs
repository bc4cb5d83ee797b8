//! reflex-layer: parse config, init telemetry, build state, build the app, serve.

use std::process::ExitCode;

use clap::Parser;
use reflex_layer::api::{self, ApiDoc};
use reflex_layer::config::Args;
use service_kit::{Kit, telemetry};
use utoipa::OpenApi;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::exit_code(reflex_layer::SERVICE.name, run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(reflex_layer::SERVICE.name, args.kit.log_format, "info")?;
    let kit = Kit::new(reflex_layer::SERVICE, &args.kit)?;
    let (state, readiness) = reflex_layer::build(&args, &kit)?;
    let app = kit.app(
        kit.protect(api::router(state)),
        readiness,
        ApiDoc::openapi(),
    );
    kit.serve(app).await?;
    Ok(())
}
