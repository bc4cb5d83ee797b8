//! The orchestrator's PostgreSQL: its schema migrations and the name it
//! connects under. The pool, the migration runner (advisory lock, one
//! transaction, retried until PostgreSQL answers), the readiness check and
//! the pool gauges are `db-kit`'s, shared with the retriever.

pub use db_kit::{DbError, Pool, PostgresCheck, SchemaState, export_pool_gauges};
use db_kit::{Migration, Migrations};

/// `application_name` of every connection (shown in `pg_stat_activity`).
const APPLICATION_NAME: &str = "octollm-orchestrator";

/// Schema migrations, applied in order, each once. The table and lock key
/// are the ones the orchestrator has always used, so a database migrated
/// by an earlier release is recognised as current.
pub const MIGRATIONS: Migrations = Migrations {
    table: "schema_migrations",
    // Serialises migrations across replicas (an arbitrary, fixed key).
    lock_key: 0x0c70_11a1,
    migrations: &[
        Migration {
            version: 1,
            name: "tasks",
            sql: include_str!("../migrations/0001_tasks.sql"),
        },
        Migration {
            version: 2,
            name: "arm_steps",
            sql: include_str!("../migrations/0002_arm_steps.sql"),
        },
        Migration {
            version: 3,
            name: "simulated_llm_time",
            sql: include_str!("../migrations/0003_simulated_llm_time.sql"),
        },
        Migration {
            version: 4,
            name: "submitted_by",
            sql: include_str!("../migrations/0004_submitted_by.sql"),
        },
        Migration {
            version: 5,
            name: "owner_leases",
            sql: include_str!("../migrations/0005_owner_leases.sql"),
        },
        Migration {
            version: 6,
            name: "idempotency_keys",
            sql: include_str!("../migrations/0006_idempotency_keys.sql"),
        },
    ],
};

/// The connection settings of `url` under the orchestrator's name (the
/// completion feed's LISTEN connection uses them directly).
pub fn connect_config(url: &str) -> Result<tokio_postgres::Config, DbError> {
    db_kit::connect_config(url, APPLICATION_NAME)
}

/// A lazily connecting pool: creating it never touches the database, so the
/// service starts (and reports not-ready) while PostgreSQL is down.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    db_kit::pool(url, size, APPLICATION_NAME)
}
