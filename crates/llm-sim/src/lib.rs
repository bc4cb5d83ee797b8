//! **Test infrastructure.** `llm-sim` is an OpenAI-compatible chat-completions
//! server that stands in for paid LLM providers, so that the stack, the alert
//! simulation and the load tests run without one. Latency distribution (or a
//! named profile), token counts, injected errors, streaming and the mix of
//! plans answered to the planner are configurable at startup and at run
//! time. Every answer reports its simulated delay in [`DELAY_HEADER`].
//!
//! In tests, start one in the background with [`spawn`]:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = llm_sim::spawn(llm_sim::SimConfig::default()).await?;
//! let base_url = sim.base_url(); // "http://127.0.0.1:PORT/v1"
//! let mut failing = sim.config();
//! failing.errors.rate = 1.0;
//! sim.set_config(failing).map_err(std::io::Error::other)?;
//! # Ok(()) }
//! ```

mod admin;
mod chat;
pub mod cli;
pub mod config;
mod error;
pub mod plans;
mod server;
mod state;
mod stream;
pub mod structured;

use std::{io, net::SocketAddr};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use config::{
    ConfigError, ErrorConfig, ErrorKind, ErrorWeights, Latency, LatencyProfile, PlanConfig,
    PlanLinks, PlanShape, SimConfig, StreamConfig, StructuredConfig, TokenRange,
};

/// Response header carrying the simulated delay of the answer, in whole
/// milliseconds: the sampled latency (200, 500 and streamed answers), the
/// hang (504) or 0 (429). Subtract it from a measured duration to get the
/// time spent outside llm-sim.
pub const DELAY_HEADER: &str = "x-llm-sim-delay-ms";

/// Response header of streamed answers: the part of [`DELAY_HEADER`]
/// before the first content chunk (the simulated time to first token).
pub const TTFT_HEADER: &str = "x-llm-sim-ttft-ms";
pub use server::{MODELS, router, serve};
pub use state::{AdminToken, SimState};

/// Starts a simulator on `127.0.0.1:0` with an open admin API and serves it
/// in the background until the handle is dropped or shut down.
pub async fn spawn(config: SimConfig) -> io::Result<SimHandle> {
    let state =
        SimState::new(config, None).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    spawn_with_state(state).await
}

/// Like [`spawn`], with a prepared state (e.g. one with an admin token).
pub async fn spawn_with_state(state: SimState) -> io::Result<SimHandle> {
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state.clone(), async move {
        // A dropped sender also means stop.
        let _ = stopped.await;
    }));
    Ok(SimHandle {
        addr,
        state,
        stop: Some(stop),
        task: Some(task),
    })
}

/// A simulator serving in the background. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    state: SimState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl SimHandle {
    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The server origin, e.g. `http://127.0.0.1:PORT` (for `/admin/*`, `/metrics`).
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The settings in force now.
    pub fn config(&self) -> SimConfig {
        self.state.config()
    }

    /// Replaces the settings (as `PUT /admin/config` does), after validation.
    pub fn set_config(&self, config: SimConfig) -> Result<(), ConfigError> {
        self.state.set_config(config)
    }

    /// Back to the settings the simulator was spawned with.
    pub fn reset(&self) -> SimConfig {
        self.state.reset()
    }

    /// The shared state (e.g. for its Prometheus registry).
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Stops accepting, ends pending simulated delays and waits for the server to finish.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.state.begin_shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.state.begin_shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
