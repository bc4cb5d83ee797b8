//! The OctoLLM orchestrator: accepts tasks, keeps them durably in PostgreSQL,
//! and runs them on a worker pool. See ARCHITECTURE.md for the shape.

pub mod api;
pub mod arms;
pub mod circuit;
pub mod completion;
pub mod config;
pub mod db;
pub mod error;
pub mod metrics;
pub mod pipeline;
pub mod screening;
pub mod store;
pub mod task;
pub mod timeline;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use service_kit::{Kit, OutboundToken, Readiness, ServiceInfo};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::ApiState;
use crate::completion::CompletionFeed;
use crate::config::Args;
use crate::db::{PostgresCheck, SchemaState};
use crate::metrics::TaskMetrics;
use crate::pipeline::{LlmSteps, StepExecutor};
use crate::screening::ReflexScreen;
use crate::store::TaskStore;
use crate::worker::{WorkerPool, WorkerSettings};

/// How the orchestrator calls the stack's own services (the reflex layer,
/// the arms): `OCTOLLM_INTERNAL_HTTP2`.
#[derive(Debug, Clone, Copy)]
pub struct InternalHttp {
    /// HTTP/2 with prior knowledge: one connection carries every call in
    /// flight to a service instead of a socket per call (`service_kit::server`).
    pub http2: bool,
}

impl Default for InternalHttp {
    fn default() -> Self {
        Self { http2: true }
    }
}

impl InternalHttp {
    pub fn client(self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        if self.http2 {
            builder.http2_prior_knowledge()
        } else {
            builder
        }
    }
}

pub const SERVICE: ServiceInfo = ServiceInfo {
    name: "orchestrator",
    version: env!("CARGO_PKG_VERSION"),
    default_port: 8000,
};

/// The running orchestrator: its API state and background work.
pub struct Orchestrator {
    api: ApiState,
    readiness: Readiness,
    workers: JoinHandle<()>,
}

impl Orchestrator {
    /// Builds the state and starts the background work: migrations, then the
    /// worker pool; the completion feed; the queue-depth and pool gauges.
    /// Nothing here waits for PostgreSQL: until it answers, `/ready` says 503.
    pub fn start(args: &Args, kit: &Kit) -> anyhow::Result<Self> {
        let metrics = TaskMetrics::register(kit.registry())?;
        let llm = llm_client::LlmClient::new(
            llm_client::LlmConfig::from_args(&args.llm)?,
            kit.registry(),
        )?;
        let pool = db::pool(&args.database_url, args.db_pool_size)?;
        let store = TaskStore::new(pool.clone(), metrics.clone());
        let schema = SchemaState::default();
        let shutdown = kit.shutdown_token();
        let wake_workers = Arc::new(Notify::new());
        let completions = CompletionFeed::default();
        let queue_depth = Arc::new(AtomicI64::new(0));

        tokio::spawn(db::export_pool_gauges(
            pool.clone(),
            metrics.db_pool.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(
            completions
                .clone()
                .listen(db::connect_config(&args.database_url)?, shutdown.clone()),
        );
        tokio::spawn(purge_expired_texts(
            store.clone(),
            args.text_retention,
            shutdown.clone(),
        ));
        tokio::spawn(watch_queue_depth(
            store.clone(),
            metrics.clone(),
            queue_depth.clone(),
            shutdown.clone(),
        ));
        let internal = InternalHttp {
            http2: args.internal_http2,
        };
        let executor: Arc<dyn StepExecutor> =
            match arms::start(&args.arms, internal, kit, shutdown.clone())? {
                Some(arm_steps) => Arc::new(arm_steps),
                None => Arc::new(LlmSteps::new(llm)),
            };
        let pool_of_workers = WorkerPool::new(
            store.clone(),
            executor,
            metrics.clone(),
            WorkerSettings {
                workers: args.workers,
                lease: args.task_lease,
                max_attempts: args.max_task_attempts,
            },
            wake_workers.clone(),
        );
        let workers = tokio::spawn({
            let (pool, schema, shutdown) = (pool.clone(), schema.clone(), shutdown.clone());
            async move {
                db::MIGRATIONS
                    .apply_until_current(pool, schema, shutdown.clone())
                    .await;
                pool_of_workers.run(shutdown).await;
            }
        });

        let screen = match &args.reflex_url {
            Some(url) => {
                let token = match &args.reflex_token_file {
                    Some(path) => OutboundToken::from_file(path)
                        .map_err(|e| anyhow::anyhow!("REFLEX_TOKEN_FILE: {e}"))?,
                    None => anyhow::bail!("REFLEX_URL is set but REFLEX_TOKEN_FILE is not"),
                };
                kit.follow("reflex token", token.clone());
                let screen = Arc::new(ReflexScreen::new(
                    url,
                    internal,
                    token,
                    args.reflex_fail_open,
                    args.reflex_timeout,
                    kit.registry(),
                )?);
                tokio::spawn(screen.clone().probe_while_open(shutdown.clone()));
                Some(screen)
            }
            None => {
                tracing::warn!("REFLEX_URL unset: tasks are accepted without screening");
                None
            }
        };
        let readiness = Readiness::new(vec![Box::new(PostgresCheck { pool, schema })]);
        let max_wait = args.max_wait.min(
            args.kit
                .request_timeout
                .saturating_sub(Duration::from_secs(1)),
        );
        Ok(Self {
            api: ApiState {
                store,
                completions,
                metrics,
                queue_bound: args.queue_bound,
                queue_depth,
                wake_workers,
                max_wait,
                screen,
            },
            readiness,
            workers,
        })
    }

    pub fn api_state(&self) -> ApiState {
        self.api.clone()
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Waits (up to `grace`) for the worker pool to hand back its tasks.
    pub async fn stop(self, grace: Duration) {
        if tokio::time::timeout(grace, self.workers).await.is_err() {
            tracing::warn!("worker pool did not stop in time; its leases will expire");
        }
    }
}

/// Refreshes `octollm_task_queue_depth` (and the backpressure check) each second.
async fn watch_queue_depth(
    store: TaskStore,
    metrics: TaskMetrics,
    depth: Arc<AtomicI64>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Ok(queued) = store.queue_depth().await {
            depth.store(queued, Ordering::Relaxed);
            metrics.queue_depth.set(queued);
        }
    }
}

/// Blanks the texts of tasks finished longer than `retention` ago, in
/// batches, checking every `min(retention / 2, 1 h)`.
async fn purge_expired_texts(store: TaskStore, retention: Duration, shutdown: CancellationToken) {
    let every = (retention / 2).clamp(Duration::from_millis(100), Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        let Ok(age) = chrono::Duration::from_std(retention) else {
            continue;
        };
        loop {
            match store.purge_texts(chrono::Utc::now() - age, 1000).await {
                Ok(0) => break,
                Ok(purged) => tracing::info!(
                    purged,
                    "blanked the texts of tasks past the retention period"
                ),
                Err(error) => {
                    tracing::warn!(%error, "cannot purge expired task texts; retrying later");
                    break;
                }
            }
        }
    }
}
