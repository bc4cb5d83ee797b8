//! The retriever arm (capability `retrieve`): a knowledge store in its own
//! PostgreSQL database. `POST /v1/documents` adds documents; an execution
//! with `{query, limit?}` answers the best matches with their sources and
//! scores. Ready only while the database answers and the schema is current.

pub mod documents;
pub mod store;

use arm_kit::{Arm, ArmError, ArmParts, Call};
use arm_protocol::{ArmKind, ArmUsage, ExecuteResponse};
use db_kit::{PostgresCheck, SchemaState};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::{Kit, KitArgs, Readiness};
use tokio_util::sync::CancellationToken;

use crate::store::KnowledgeStore;

/// Longest query, in characters.
pub const QUERY_MAX_CHARS: usize = 1_000;
/// Most results of one query.
pub const MAX_LIMIT: i64 = 50;
/// Results when the query names no limit.
pub const DEFAULT_LIMIT: i64 = 5;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "retriever-arm",
    version,
    about = "OctoLLM retriever arm: full-text search over a knowledge store in PostgreSQL.",
    long_about = "OctoLLM retriever arm: POST /v1/documents adds documents {title, body, source}; \
POST /v1/execute with capability `retrieve` and input {query, limit?} answers the best matches \
(full-text rank plus title similarity) with their sources, scores and a snippet. Migrations are \
applied at start; /ready is 200 only while the database answers.\n\nEvery flag can also be set \
through the environment variable shown next to it."
)]
pub struct Args {
    #[command(flatten)]
    pub kit: KitArgs,

    /// PostgreSQL URL of the knowledge database, e.g. postgres://octollm@127.0.0.1:5432/octollm_knowledge.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Largest number of PostgreSQL connections.
    #[arg(long, env = "OCTOLLM_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrieverError {
    #[error(transparent)]
    Db(#[from] db_kit::DbError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Builds the retriever and starts its background work (migrations until
/// they apply, pool gauges). Nothing here waits for PostgreSQL.
pub fn build(args: &Args, kit: &Kit) -> Result<ArmParts<Retriever>, RetrieverError> {
    let pool = db_kit::pool(&args.database_url, args.db_pool_size, "octollm-retriever")?;
    start(pool, kit.registry(), kit.shutdown_token())
}

/// The retriever on `pool`: migrations and gauges run until `shutdown`.
pub fn start(
    pool: db_kit::Pool,
    registry: &prometheus::Registry,
    shutdown: CancellationToken,
) -> Result<ArmParts<Retriever>, RetrieverError> {
    let schema = SchemaState::default();
    let gauge = db_kit::register_pool_gauge(registry)?;
    tokio::spawn(db_kit::export_pool_gauges(
        pool.clone(),
        gauge,
        shutdown.clone(),
    ));
    tokio::spawn(store::MIGRATIONS.apply_until_current(pool.clone(), schema.clone(), shutdown));
    let store = KnowledgeStore::new(pool.clone(), registry)?;
    let readiness = Readiness::new(vec![Box::new(PostgresCheck { pool, schema })]);
    Ok(ArmParts::new(Retriever {
        store: store.clone(),
    })
    .with_readiness(readiness)
    .with_routes(documents::router(store), documents::openapi()))
}

pub struct Retriever {
    store: KnowledgeStore,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    query: String,
    #[serde(default)]
    limit: Option<i64>,
}

impl Arm for Retriever {
    fn kind(&self) -> ArmKind {
        ArmKind::Retriever
    }

    fn cost_tier(&self) -> u8 {
        1
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["query"],
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": QUERY_MAX_CHARS, "pattern": "\\S"},
                "limit": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LIMIT}
            }
        })
    }

    fn output_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["results"],
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "title", "source", "score", "snippet"],
                        "properties": {
                            "id": {"type": "string", "format": "uuid"},
                            "title": {"type": "string"},
                            "source": {"type": "string"},
                            "score": {"type": "number"},
                            "snippet": {"type": "string"}
                        }
                    }
                }
            }
        })
    }

    async fn execute(&self, call: Call) -> Result<ExecuteResponse, ArmError> {
        let input: Query = call.input()?;
        let limit = input.limit.unwrap_or(DEFAULT_LIMIT);
        let results = self
            .store
            .search(input.query.trim(), limit)
            .await
            .map_err(|e| ArmError::Unavailable(e.to_string()))?;
        tracing::info!(results = results.len(), limit, "retrieved");
        // Some match is likely useful; none is a confident "nothing known".
        let confidence = if results.is_empty() { 0.3 } else { 0.8 };
        Ok(ExecuteResponse {
            output: json!({ "results": results }),
            usage: ArmUsage::default(),
            confidence,
        })
    }
}
