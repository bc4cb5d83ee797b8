//! Reflex-layer integration tests: the real binary, real Redis (testcontainers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod api;
mod harness;
mod redis_backed;
