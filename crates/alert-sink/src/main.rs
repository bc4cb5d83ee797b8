//! alert-sink: parse config, init telemetry, build the sink, serve.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use service_kit::{Kit, KitArgs, Readiness, ServiceInfo, telemetry};

const SERVICE: ServiceInfo = ServiceInfo {
    name: "alert-sink",
    version: env!("CARGO_PKG_VERSION"),
    default_port: 9095,
};

/// Records Alertmanager notifications as JSON lines, one file per receiver
/// (pagerduty.jsonl, slack.jsonl, email.jsonl): the local stand-in for real
/// paging, chat and mail integrations.
#[derive(Parser)]
#[command(name = "alert-sink", version)]
struct Args {
    #[command(flatten)]
    kit: KitArgs,
    /// Directory the <receiver>.jsonl files are written to.
    #[arg(long, env = "ALERT_SINK_DIR")]
    dir: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::exit_code(SERVICE.name, run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(SERVICE.name, args.kit.log_format, "info")?;
    std::fs::create_dir_all(&args.dir)?;
    let kit = Kit::new(SERVICE, &args.kit)?;
    let sink = alert_sink::Sink::new(args.dir, kit.registry())?;
    let api = kit.protect(alert_sink::router(sink));
    let app = kit.app(
        api,
        Readiness::default(),
        utoipa::openapi::OpenApi::default(),
    );
    kit.serve(app).await?;
    Ok(())
}
