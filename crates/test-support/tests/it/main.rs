//! Integration tests of test-support: the containers against a real engine
//! (needs DOCKER_HOST), and service processes (no engine needed).

mod postgres;
mod redis;
mod service;
