//! **Test infrastructure.** `llm-sim` is an OpenAI-compatible chat-completions
//! server that stands in for paid LLM providers, so that the stack, the alert
//! simulation and the load tests run without one. Latency distribution, token
//! counts and injected errors are configurable at startup and at run time.
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
mod server;
mod state;
pub mod structured;

use std::{io, net::SocketAddr};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use config::{
    ConfigError, ErrorConfig, ErrorKind, ErrorWeights, Latency, SimConfig, StructuredConfig,
    TokenRange,
};
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
