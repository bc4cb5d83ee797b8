//! PostgreSQL for OctoLLM services: a pool that connects lazily (a service
//! starts, and reports not-ready, while the database is down), migrations
//! applied in order under an advisory lock until they succeed, the
//! readiness check and `octollm_db_pool_connections{state}`.
//!
//! The shape is the orchestrator's `db.rs`, made reusable: each service
//! names its own migrations table and lock key, so services never share
//! either.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use deadpool_postgres::Pool;
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use futures::future::BoxFuture;
use prometheus::{IntGaugeVec, Opts, Registry};
use service_kit::DependencyCheck;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid DATABASE_URL: {0}")]
    Url(String),
    #[error("connection pool: {0}")]
    Pool(String),
}

/// Longest statement a service runs: a stuck query gives its pool
/// connection back instead of holding it from the workers forever.
pub const STATEMENT_TIMEOUT: &str = "30s";

/// The connection settings of `url`, with a 3 s connect timeout and a
/// [`STATEMENT_TIMEOUT`] unless the URL sets them, and `application_name`
/// (shown in `pg_stat_activity`).
pub fn connect_config(
    url: &str,
    application_name: &str,
) -> Result<tokio_postgres::Config, DbError> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| DbError::Url(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(3));
    }
    config.application_name(application_name);
    if config.get_options().is_none() {
        config.options(format!("-c statement_timeout={STATEMENT_TIMEOUT}"));
    }
    Ok(config)
}

/// A lazily connecting pool of at most `size` connections; waiting for,
/// creating and recycling a connection are each bounded.
pub fn pool(url: &str, size: usize, application_name: &str) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        connect_config(url, application_name)?,
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

/// One schema migration: applied once, in version order, in its own transaction.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A service's migrations and where it records them.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// The table recording applied versions, e.g. `retriever_schema_migrations`.
    pub table: &'static str,
    /// Advisory-lock key serialising migrations across replicas.
    pub lock_key: i64,
    pub migrations: &'static [Migration],
}

/// Whether the schema is current; readiness waits for it.
#[derive(Clone, Default)]
pub struct SchemaState(Arc<AtomicBool>);

impl SchemaState {
    pub fn is_current(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Migrations {
    /// Applies pending migrations, retrying with backoff until PostgreSQL
    /// answers (or `shutdown`); then marks `schema` current.
    pub async fn apply_until_current(
        self,
        pool: Pool,
        schema: SchemaState,
        shutdown: CancellationToken,
    ) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.apply(&pool).await {
                Ok(applied) => {
                    tracing::info!(applied, table = self.table, "database schema is current");
                    schema.0.store(true, Ordering::Release);
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "migrations not applied yet");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Applies pending migrations once; returns how many.
    pub async fn apply(&self, pool: &Pool) -> Result<usize, String> {
        let mut client = pool.get().await.map_err(|e| e.to_string())?;
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        // A migration may rewrite a large table: no statement timeout here.
        tx.batch_execute("SET LOCAL statement_timeout = 0")
            .await
            .map_err(|e| e.to_string())?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&self.lock_key])
            .await
            .map_err(|e| e.to_string())?;
        let table = self.table;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await
        .map_err(|e| e.to_string())?;
        let mut applied = 0;
        for Migration { version, name, sql } in self.migrations {
            let done = tx
                .query_opt(
                    &format!("SELECT 1 FROM {table} WHERE version = $1"),
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
                &format!("INSERT INTO {table} (version, name) VALUES ($1, $2)"),
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

/// `octollm_db_pool_connections{state}` (idle/in_use/max), registered.
pub fn register_pool_gauge(registry: &Registry) -> Result<IntGaugeVec, prometheus::Error> {
    let gauge = IntGaugeVec::new(
        Opts::new(
            "octollm_db_pool_connections",
            "Database pool connections by state (idle/in_use/max).",
        ),
        &["state"],
    )?;
    registry.register(Box::new(gauge.clone()))?;
    for state in ["idle", "in_use", "max"] {
        gauge.with_label_values(&[state]);
    }
    Ok(gauge)
}

/// Publishes the pool's state on `gauge` once a second until `shutdown`.
pub async fn export_pool_gauges(pool: Pool, gauge: IntGaugeVec, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let status = pool.status();
        let idle = i64::try_from(status.available).unwrap_or(0);
        let size = i64::try_from(status.size).unwrap_or(0);
        gauge.with_label_values(&["idle"]).set(idle);
        gauge.with_label_values(&["in_use"]).set(size - idle);
        gauge
            .with_label_values(&["max"])
            .set(i64::try_from(status.max_size).unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_get_a_statement_timeout_unless_the_url_sets_options() {
        let config = connect_config("postgres://app@127.0.0.1/app", "test").unwrap();
        assert_eq!(config.get_options(), Some("-c statement_timeout=30s"));
        let own = connect_config(
            "postgres://app@127.0.0.1/app?options=-c%20statement_timeout%3D5s",
            "test",
        )
        .unwrap();
        assert_eq!(own.get_options(), Some("-c statement_timeout=5s"));
    }
}
