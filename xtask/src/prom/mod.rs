//! The monitoring layer: PromQL (`promql`), the rule files (`rules`), their
//! compressed-time copy (`compress`), and the Prometheus HTTP API
//! (`client`). It imports only `util`: callers pass URLs, not stacks.

pub mod client;
pub mod compress;
pub mod promql;
pub mod rules;
