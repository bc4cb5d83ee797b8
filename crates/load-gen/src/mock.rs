//! `octollm-load serve-mock`: a tiny, cheap HTTP target for comparing load
//! generators (this one, k6, wrk) on the same endpoint.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::routing::get;

use crate::{Failure, Outcome};

const MOCK_HELP: &str = "\
Answers GET / (and POST /) with a fixed 3-byte body; anything else is 404.
Stops on SIGINT or SIGTERM.

Example:
  octollm-load serve-mock --listen 127.0.0.1:18080 --threads 1";

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = MOCK_HELP)]
pub struct MockArgs {
    /// Address to listen on (loopback only is sensible).
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: SocketAddr,
    /// Runtime worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

pub fn router() -> Router {
    Router::new().route("/", get(ok).post(ok))
}

async fn ok() -> &'static str {
    "ok\n"
}

pub async fn serve(args: MockArgs) -> Result<Outcome, Failure> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr().context("reading the bound address")?;
    {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "serve-mock listening on http://{local}/");
    }
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving")?;
    Ok(Outcome::Passed)
}

async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
