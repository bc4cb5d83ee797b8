//! PostgreSQL: the connection pool, schema migrations, and the readiness check.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::future::BoxFuture;
use service_kit::DependencyCheck;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use crate::metrics::TaskMetrics;

/// Schema migrations, applied in order, each once, in its own transaction.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "tasks", include_str!("../migrations/0001_tasks.sql")),
    (
        2,
        "arm_steps",
        include_str!("../migrations/0002_arm_steps.sql"),
    ),
];

/// Serialises migrations across replicas (an arbitrary, fixed advisory-lock key).
const MIGRATION_LOCK_KEY: i64 = 0x0c70_11a1;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid DATABASE_URL: {0}")]
    Url(String),
    #[error("connection pool: {0}")]
    Pool(String),
}

pub fn connect_config(url: &str) -> Result<tokio_postgres::Config, DbError> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| DbError::Url(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(3));
    }
    config.application_name("octollm-orchestrator");
    Ok(config)
}

/// A lazily connecting pool: creating it never touches the database, so the
/// service starts (and reports not-ready) while PostgreSQL is down.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        connect_config(url)?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Whether the schema is current; readiness waits for it.
#[derive(Clone, Default)]
pub struct SchemaState(Arc<AtomicBool>);

impl SchemaState {
    pub fn is_current(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Applies pending migrations, retrying with backoff until PostgreSQL answers.
pub async fn migrate_until_current(pool: Pool, schema: SchemaState, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    loop {
        match migrate(&pool).await {
            Ok(applied) => {
                tracing::info!(applied, "database schema is current");
                schema.0.store(true, Ordering::Release);
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "migrations not applied yet");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn migrate(pool: &Pool) -> Result<usize, String> {
    let mut client = pool.get().await.map_err(|e| e.to_string())?;
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(|e| e.to_string())?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(|e| e.to_string())?;
        if done.is_some() {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| format!("migration {version} ({name}): {e}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!(version, name, "applied migration");
        applied += 1;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(applied)
}

/// Readiness: a pooled connection answers `SELECT 1` and the schema is current.
pub struct PostgresCheck {
    pub pool: Pool,
    pub schema: SchemaState,
}

impl DependencyCheck for PostgresCheck {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| e.to_string())?;
            if self.schema.is_current() {
                Ok(())
            } else {
                Err("schema migrations not applied yet".to_owned())
            }
        })
    }
}

/// Publishes `octollm_db_pool_connections{state}` once a second.
pub async fn export_pool_gauges(pool: Pool, metrics: TaskMetrics, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let status = pool.status();
        let idle = i64::try_from(status.available).unwrap_or(0);
        let size = i64::try_from(status.size).unwrap_or(0);
        metrics.db_pool.with_label_values(&["idle"]).set(idle);
        metrics
            .db_pool
            .with_label_values(&["in_use"])
            .set(size - idle);
        metrics
            .db_pool
            .with_label_values(&["max"])
            .set(i64::try_from(status.max_size).unwrap_or(0));
    }
}
