//! Real PostgreSQL 15 and Redis 7 for integration tests, through
//! [testcontainers](https://docs.rs/testcontainers), and a service binary
//! run as a child process ([`service`]: free port, `/health`, `/metrics`).
//!
//! Use this crate as a dev-dependency only. The images are local ones,
//! `localhost/octollm/postgres:15` and `localhost/octollm/redis:7`, built
//! from Debian packages by `cargo xtask images`. The engine is found through
//! `DOCKER_HOST` and nothing else: without an engine every function returns
//! an error saying how to get one, so a test never passes without a database.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let pg = test_support::postgres().await?;
//! let client = pg.connect().await?;
//! client.simple_query("SELECT 1").await?;
//! # Ok(()) }
//! ```
//!
//! All engine calls run on one runtime owned by this crate, so containers can
//! be used from any number of `#[tokio::test]`s (each with its own runtime)
//! without sharing a Docker client between runtimes. Dropping a container
//! handle removes the container and waits until it is gone.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    hash::{BuildHasher, RandomState},
    sync::{Arc, OnceLock, mpsc},
    time::{Duration, Instant},
};

pub mod service;

pub use service::{ServiceError, ServiceProcess, free_port, sample, scrape};

use testcontainers::{
    ContainerAsync, GenericImage, ImageExt, TestcontainersError,
    bollard::models::{HostConfig, PortBinding},
    core::{ContainerPort, WaitFor},
    runners::AsyncRunner,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpStream, UnixStream},
    runtime::Runtime,
};

/// What to do when no container engine is available.
pub const HOW_TO_GET_AN_ENGINE: &str = "run `cargo xtask ci`, or `cargo xtask images` and export \
     DOCKER_HOST=unix:///run/octollm/podman.sock";

/// PostgreSQL image (built by `cargo xtask images`).
pub const POSTGRES_IMAGE: &str = "localhost/octollm/postgres:15";
/// Redis image (built by `cargo xtask images`).
pub const REDIS_IMAGE: &str = "localhost/octollm/redis:7";

/// Label put on every container started here, for cleaning up leftovers
/// of killed test processes.
pub const CONTAINER_LABEL: &str = "org.octollm.test-support";

const POSTGRES_PORT: u16 = 5432;
const REDIS_PORT: u16 = 6379;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const DROP_TIMEOUT: Duration = Duration::from_secs(60);
const ENGINE_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a test environment could not be provided.
///
/// `Debug` prints the same text as `Display` (plus causes), so a test that
/// returns `Result<(), Box<dyn Error>>` shows how to fix the environment.
#[derive(thiserror::Error)]
pub enum TestEnvError {
    /// `DOCKER_HOST` is unset or its engine does not answer.
    #[error(
        "no container engine for integration tests: {reason}; to get one, {HOW_TO_GET_AN_ENGINE}"
    )]
    NoEngine { reason: String },
    /// The engine answers but lacks a local image.
    #[error(
        "image {image} is missing from the engine at {docker_host}; to build it, {HOW_TO_GET_AN_ENGINE}"
    )]
    ImageMissing { image: String, docker_host: String },
    /// The engine refused or failed an operation.
    #[error("container engine failed to {action} {image}: {source}")]
    Engine {
        action: &'static str,
        image: &'static str,
        #[source]
        source: Box<TestcontainersError>,
    },
    /// The service did not accept a real client in time.
    #[error("{image} on 127.0.0.1:{port} was not ready within {waited:?}: {last_error}")]
    NotReady {
        image: &'static str,
        port: u16,
        waited: Duration,
        last_error: String,
    },
    /// A local resource (port, runtime) failed.
    #[error("test-support: {0}")]
    Local(String),
}

impl fmt::Debug for TestEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_with_causes(self, f)
    }
}

/// An error's text, then each of its causes on a line of its own: what a
/// failing test that returns `Result<_, Box<dyn Error>>` should show.
fn write_with_causes(err: &dyn std::error::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{err}")?;
    let mut source = err.source();
    while let Some(cause) = source {
        write!(f, "\n  caused by: {cause}")?;
        source = cause.source();
    }
    Ok(())
}

/// A PostgreSQL 15 server in a container, removed when dropped.
///
/// Superuser `postgres`, database `postgres`, a random password, reachable on
/// 127.0.0.1 at [`host_port`](Self::host_port), which stays the same across
/// [`stop`](Self::stop) and [`start`](Self::start). Data survives a restart.
#[derive(Debug)]
pub struct PostgresContainer {
    managed: Managed,
    password: String,
}

/// Starts PostgreSQL 15 and returns once a real client can run `SELECT 1`.
pub async fn postgres() -> Result<PostgresContainer, TestEnvError> {
    let password = random_password();
    let env = vec![("POSTGRES_PASSWORD", password.clone())];
    let ready_password = password.clone();
    let managed = on_engine(async move {
        let ready = WaitFor::message_on_stderr("database system is ready to accept connections");
        let managed = Managed::start(POSTGRES_IMAGE, POSTGRES_PORT, ready, env).await?;
        wait_postgres_ready(managed.port, &ready_password).await?;
        Ok(managed)
    })
    .await?;
    Ok(PostgresContainer { managed, password })
}

impl PostgresContainer {
    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        postgres_url(self.managed.port, &self.password)
    }

    /// The host port mapped to the container's 5432.
    pub fn host_port(&self) -> u16 {
        self.managed.port
    }

    /// The `postgres` superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The container id, for logs and debugging.
    pub fn id(&self) -> &str {
        self.managed.id()
    }

    /// A connected client; its connection task runs on the caller's runtime.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Stops the server (fast shutdown); the container and its data stay.
    pub async fn stop(&self) -> Result<(), TestEnvError> {
        self.managed.stop().await
    }

    /// Starts the stopped server again on the same host port and returns once
    /// a real client can run `SELECT 1`.
    pub async fn start(&self) -> Result<(), TestEnvError> {
        self.managed.start_again().await?;
        let (port, password) = (self.managed.port, self.password.clone());
        on_engine(async move { wait_postgres_ready(port, &password).await }).await
    }
}

/// A Redis 7 server in a container, removed when dropped.
#[derive(Debug)]
pub struct RedisContainer {
    managed: Managed,
}

/// Starts Redis 7 and returns once it answers `PING` with `PONG`.
pub async fn redis() -> Result<RedisContainer, TestEnvError> {
    let managed = on_engine(async move {
        let ready = WaitFor::message_on_stdout("Ready to accept connections");
        let managed = Managed::start(REDIS_IMAGE, REDIS_PORT, ready, Vec::new()).await?;
        wait_redis_ready(managed.port).await?;
        Ok(managed)
    })
    .await?;
    Ok(RedisContainer { managed })
}

impl RedisContainer {
    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.managed.port)
    }

    /// The host port mapped to the container's 6379.
    pub fn host_port(&self) -> u16 {
        self.managed.port
    }

    /// The container id, for logs and debugging.
    pub fn id(&self) -> &str {
        self.managed.id()
    }

    /// Stops the server; the container stays.
    pub async fn stop(&self) -> Result<(), TestEnvError> {
        self.managed.stop().await
    }

    /// Starts the stopped server again on the same host port and returns once
    /// it answers `PING`.
    pub async fn start(&self) -> Result<(), TestEnvError> {
        self.managed.start_again().await?;
        let port = self.managed.port;
        on_engine(async move { wait_redis_ready(port).await }).await
    }
}

/// A started container whose every engine call runs on the engine runtime.
#[derive(Debug)]
struct Managed {
    container: Option<Arc<ContainerAsync<GenericImage>>>,
    id: String,
    image: &'static str,
    port: u16,
}

impl Managed {
    /// Creates and starts `image` with `container_port` mapped to a free
    /// loopback port. Runs on the engine runtime.
    async fn start(
        image: &'static str,
        container_port: u16,
        ready: WaitFor,
        env: Vec<(&'static str, String)>,
    ) -> Result<Managed, TestEnvError> {
        let docker_host = engine_host(std::env::var("DOCKER_HOST").ok())?;
        ping_engine(&docker_host).await?;
        ensure_image(&docker_host, image).await?;
        let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));

        // A port picked free may be taken before the engine binds it: retry.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()
                .map_err(|e| TestEnvError::Local(format!("no free port on 127.0.0.1: {e}")))?;
            let mut request = GenericImage::new(name, tag)
                .with_wait_for(ready.clone())
                .with_mapped_port(port, ContainerPort::Tcp(container_port))
                .with_host_config_modifier(move |config| {
                    bind_loopback(config, container_port, port);
                })
                .with_label(CONTAINER_LABEL, "true")
                .with_startup_timeout(STARTUP_TIMEOUT);
            for (key, value) in &env {
                request = request.with_env_var(*key, value.clone());
            }
            match request.start().await {
                Ok(container) => {
                    return Ok(Managed {
                        id: container.id().to_owned(),
                        container: Some(Arc::new(container)),
                        image,
                        port,
                    });
                }
                Err(err) if attempt < 3 && is_port_conflict(&err) => continue,
                Err(source) => {
                    return Err(TestEnvError::Engine {
                        action: "start",
                        image,
                        source: Box::new(source),
                    });
                }
            }
        }
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn container(&self) -> Result<Arc<ContainerAsync<GenericImage>>, TestEnvError> {
        self.container
            .clone()
            .ok_or_else(|| TestEnvError::Local("container already removed".to_owned()))
    }

    async fn stop(&self) -> Result<(), TestEnvError> {
        let (container, image) = (self.container()?, self.image);
        on_engine(async move {
            container
                .stop()
                .await
                .map_err(|source| TestEnvError::Engine {
                    action: "stop",
                    image,
                    source: Box::new(source),
                })
        })
        .await
    }

    async fn start_again(&self) -> Result<(), TestEnvError> {
        let (container, image) = (self.container()?, self.image);
        on_engine(async move {
            container
                .start()
                .await
                .map_err(|source| TestEnvError::Engine {
                    action: "restart",
                    image,
                    source: Box::new(source),
                })
        })
        .await
    }
}

impl Drop for Managed {
    /// Removes the container on the engine runtime and waits for it, so
    /// nothing outlives the test.
    fn drop(&mut self) {
        let Some(container) = self.container.take() else {
            return;
        };
        let Ok(runtime) = engine_runtime() else {
            return;
        };
        let (done_tx, done_rx) = mpsc::channel();
        runtime.spawn(async move {
            // ContainerAsync's own Drop removes the container.
            drop(container);
            let _ = done_tx.send(());
        });
        let _ = done_rx.recv_timeout(DROP_TIMEOUT);
    }
}

/// The runtime that owns every engine connection (never shut down).
fn engine_runtime() -> Result<&'static Runtime, TestEnvError> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("test-support-engine")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| TestEnvError::Local(format!("cannot build the engine runtime: {e}")))
}

/// Runs `future` on the engine runtime and awaits it from any runtime.
async fn on_engine<T, F>(future: F) -> Result<T, TestEnvError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, TestEnvError>> + Send + 'static,
{
    engine_runtime()?
        .spawn(future)
        .await
        .map_err(|e| TestEnvError::Local(format!("engine task failed: {e}")))?
}

/// `DOCKER_HOST`, or the error that says how to get an engine.
fn engine_host(docker_host: Option<String>) -> Result<String, TestEnvError> {
    docker_host
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| TestEnvError::NoEngine {
            reason: "DOCKER_HOST is not set".to_owned(),
        })
}

async fn ping_engine(docker_host: &str) -> Result<(), TestEnvError> {
    let no_engine = |reason: String| TestEnvError::NoEngine {
        reason: format!("DOCKER_HOST={docker_host} {reason}"),
    };
    match engine_get(docker_host, "/_ping").await {
        Ok((200, _)) => Ok(()),
        Ok((status, body)) => Err(no_engine(format!(
            "answers GET /_ping with HTTP {status}: {}",
            body.trim()
        ))),
        Err(err) => Err(no_engine(format!("does not answer: {err}"))),
    }
}

async fn ensure_image(docker_host: &str, image: &str) -> Result<(), TestEnvError> {
    match engine_get(docker_host, &format!("/images/{image}/json")).await {
        Ok((200, _)) => Ok(()),
        Ok((404, _)) => Err(TestEnvError::ImageMissing {
            image: image.to_owned(),
            docker_host: docker_host.to_owned(),
        }),
        Ok((status, body)) => Err(TestEnvError::NoEngine {
            reason: format!(
                "DOCKER_HOST={docker_host} answers GET /images/{image}/json with HTTP {status}: {}",
                body.trim()
            ),
        }),
        Err(err) => Err(TestEnvError::NoEngine {
            reason: format!("DOCKER_HOST={docker_host} does not answer: {err}"),
        }),
    }
}

/// A one-shot HTTP/1.0 GET to the engine API: (status, body).
async fn engine_get(docker_host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    let exchange = async {
        if let Some(socket) = docker_host.strip_prefix("unix://") {
            exchange(UnixStream::connect(socket).await?, &request).await
        } else if let Some(addr) = docker_host
            .strip_prefix("tcp://")
            .or_else(|| docker_host.strip_prefix("http://"))
        {
            exchange(
                TcpStream::connect(addr.trim_end_matches('/')).await?,
                &request,
            )
            .await
        } else {
            Err(std::io::Error::other(
                "unsupported scheme (expected unix:// or tcp://)",
            ))
        }
    };
    let response = tokio::time::timeout(ENGINE_IO_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP status line"))?;
    Ok((status, body.to_owned()))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(response)
}

/// Publishes the port on 127.0.0.1 only, not on every host address.
fn bind_loopback(config: &mut HostConfig, container_port: u16, host_port: u16) {
    config.port_bindings = Some(HashMap::from([(
        format!("{container_port}/tcp"),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".to_owned()),
            host_port: Some(host_port.to_string()),
        }]),
    )]));
}

fn is_port_conflict(err: &TestcontainersError) -> bool {
    let text = err.to_string().to_ascii_lowercase();
    text.contains("address already in use") || text.contains("port is already allocated")
}

fn random_password() -> String {
    let state = RandomState::new();
    format!(
        "octollm-{:016x}{:016x}",
        state.hash_one(std::process::id()),
        state.hash_one(Instant::now())
    )
}

fn postgres_url(port: u16, password: &str) -> String {
    format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres")
}

/// Retries connect + `SELECT 1` until it works or [`READY_TIMEOUT`] passes.
async fn wait_postgres_ready(port: u16, password: &str) -> Result<(), TestEnvError> {
    let url = postgres_url(port, password);
    retry_until_ready(POSTGRES_IMAGE, port, || async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .map_err(describe_pg_error)?;
        let connection = tokio::spawn(connection);
        let result = client.simple_query("SELECT 1").await;
        drop(client);
        let _ = connection.await;
        result.map(drop).map_err(describe_pg_error)
    })
    .await
}

/// tokio-postgres displays server errors as just "db error".
fn describe_pg_error(err: tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}

/// Retries a RESP `PING` until `+PONG` or [`READY_TIMEOUT`] passes.
async fn wait_redis_ready(port: u16) -> Result<(), TestEnvError> {
    retry_until_ready(REDIS_IMAGE, port, || async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"*1\r\n$4\r\nPING\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut reply = [0_u8; 7];
        stream
            .read_exact(&mut reply)
            .await
            .map_err(|e| e.to_string())?;
        if &reply == b"+PONG\r\n" {
            Ok(())
        } else {
            Err(format!(
                "unexpected reply {:?}",
                String::from_utf8_lossy(&reply)
            ))
        }
    })
    .await
}

async fn retry_until_ready<F, Fut>(
    image: &'static str,
    port: u16,
    mut check: F,
) -> Result<(), TestEnvError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        let last_error = match tokio::time::timeout(Duration::from_secs(5), check()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(err)) => err,
            Err(_) => "check timed out after 5s".to_owned(),
        };
        if started.elapsed() >= READY_TIMEOUT {
            return Err(TestEnvError::NotReady {
                image,
                port,
                waited: started.elapsed(),
                last_error,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_docker_host_says_how_to_get_an_engine() {
        for value in [None, Some(String::new()), Some("  ".to_owned())] {
            let message = engine_host(value).map(drop).err().map(|e| e.to_string());
            let message = message.unwrap_or_default();
            assert!(message.contains("DOCKER_HOST is not set"), "{message}");
            assert!(message.contains("run `cargo xtask ci`"), "{message}");
            assert!(
                message.contains("export DOCKER_HOST=unix:///run/octollm/podman.sock"),
                "{message}"
            );
        }
        assert_eq!(
            engine_host(Some("unix:///x.sock".to_owned()))
                .ok()
                .as_deref(),
            Some("unix:///x.sock")
        );
    }

    #[tokio::test]
    async fn dead_engine_is_an_error_not_a_pass() {
        let err = ping_engine("unix:///nonexistent/octollm-test.sock").await;
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("does not answer"), "{message}");
        assert!(message.contains("cargo xtask images"), "{message}");
    }

    #[test]
    fn passwords_differ() {
        assert_ne!(random_password(), random_password());
    }
}
