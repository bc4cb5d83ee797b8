//! `KnowledgeStore`: every SQL statement of the retriever, each timed and
//! counted in `octollm_memory_*`.

use std::time::Instant;

use db_kit::{Migration, Migrations, Pool};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::Serialize;
use uuid::Uuid;

/// The retriever's schema, recorded in its own table under its own lock.
pub const MIGRATIONS: Migrations = Migrations {
    table: "retriever_schema_migrations",
    lock_key: 0x0c70_4e7a,
    migrations: &[Migration {
        version: 1,
        name: "knowledge",
        sql: include_str!("../migrations/0001_knowledge.sql"),
    }],
};

/// `store` label of the memory metrics.
pub const STORE: &str = "postgres";
/// `op` labels of the memory metrics.
pub const OPS: [&str; 2] = ["insert", "search"];

/// Buckets of `octollm_memory_query_duration_seconds`: 1 ms to 5 s.
const QUERY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A document to store.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub title: String,
    pub body: String,
    pub source: String,
}

/// One search hit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hit {
    pub id: Uuid,
    pub title: String,
    pub source: String,
    /// `ts_rank` of the full-text match plus half the title's trigram
    /// similarity; higher is better.
    pub score: f64,
    /// The best-matching passage of the body.
    pub snippet: String,
}

#[derive(Debug, thiserror::Error)]
#[error("knowledge store unavailable: {0}")]
pub struct StoreError(String);

#[derive(Clone)]
pub struct KnowledgeStore {
    pool: Pool,
    operations: IntCounterVec,
    duration: HistogramVec,
}

impl KnowledgeStore {
    pub fn new(pool: Pool, registry: &Registry) -> Result<Self, prometheus::Error> {
        let operations = IntCounterVec::new(
            Opts::new(
                "octollm_memory_operations_total",
                "Knowledge-store operations completed, by operation (insert/search) and store.",
            ),
            &["op", "store"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "octollm_memory_query_duration_seconds",
                "Time of each knowledge-store operation, successful or not.",
            )
            .buckets(QUERY_BUCKETS.to_vec()),
            &["op"],
        )?;
        registry.register(Box::new(operations.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        for op in OPS {
            operations.with_label_values(&[op, STORE]);
            duration.with_label_values(&[op]);
        }
        Ok(Self {
            pool,
            operations,
            duration,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Stores `documents` in one statement; returns their ids in order.
    pub async fn insert(&self, documents: &[NewDocument]) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<Uuid> = documents.iter().map(|_| Uuid::now_v7()).collect();
        let titles: Vec<&str> = documents.iter().map(|d| d.title.as_str()).collect();
        let bodies: Vec<&str> = documents.iter().map(|d| d.body.as_str()).collect();
        let sources: Vec<&str> = documents.iter().map(|d| d.source.as_str()).collect();
        self.timed("insert", async {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| StoreError(e.to_string()))?;
            let statement = client
                .prepare_cached(
                    "INSERT INTO knowledge_documents (id, title, body, source)
                     SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])",
                )
                .await
                .map_err(|e| StoreError(e.to_string()))?;
            client
                .execute(&statement, &[&ids, &titles, &bodies, &sources])
                .await
                .map_err(|e| StoreError(e.to_string()))?;
            Ok(ids)
        })
        .await
    }

    /// The `limit` best documents for `query`: full-text matches (web-search
    /// syntax: words, "phrases", -exclusions, or) and titles similar to it.
    pub async fn search(&self, query: &str, limit: i64) -> Result<Vec<Hit>, StoreError> {
        self.timed("search", async {
            let client = self.pool.get().await.map_err(|e| StoreError(e.to_string()))?;
            // Prepared once per connection: parsing and planning this
            // statement cost PostgreSQL more than running it.
            let statement = client
                .prepare_cached(
                    "WITH q AS (SELECT websearch_to_tsquery('english', $1) AS query),
                     ranked AS (
                         SELECT d.id, d.title, d.source, d.body, q.query,
                                ts_rank(d.search, q.query) + 0.5 * similarity(d.title, $1) AS score,
                                d.created_at
                         FROM knowledge_documents d, q
                         WHERE d.search @@ q.query OR d.title % $1
                         ORDER BY score DESC, d.created_at DESC
                         LIMIT $2)
                     SELECT id, title, source, score::float8 AS score,
                            ts_headline('english', body, query,
                                'MaxFragments=1, MaxWords=35, MinWords=15, StartSel=\"\", StopSel=\"\"') AS snippet
                     FROM ranked
                     ORDER BY score DESC, created_at DESC",
                )
                .await
                .map_err(|e| StoreError(e.to_string()))?;
            let rows = client
                .query(&statement, &[&query, &limit])
                .await
                .map_err(|e| StoreError(e.to_string()))?;
            Ok(rows
                .iter()
                .map(|row| Hit {
                    id: row.get("id"),
                    title: row.get("title"),
                    source: row.get("source"),
                    score: row.get("score"),
                    snippet: row.get("snippet"),
                })
                .collect())
        })
        .await
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = work.await;
        self.duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => self.operations.with_label_values(&[op, STORE]).inc(),
            Err(error) => tracing::warn!(op, %error, "knowledge store operation failed"),
        }
        result
    }
}
