//! Integration tests of test-support against a real engine (needs DOCKER_HOST).

mod postgres;
mod redis;
