//! Orchestrator integration tests: the real binary against a real PostgreSQL
//! (testcontainers) and llm-sim.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod api;
mod arms;
mod durability;
mod fake_arm;
mod group_commit;
mod harness;
mod idempotency;
mod leases;
mod lifecycle;
mod llm_failures;
mod postgres_outage;
mod scopes;
mod screening;
mod tracing_export;
