//! Shared server state: live settings, admin token, metrics, shutdown signal.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::{sync::watch, time::Instant};

use crate::config::{ConfigError, SimConfig};

/// An admin bearer token. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// Wraps a token; surrounding whitespace (e.g. a trailing newline from a file) is dropped.
    pub fn new(token: impl AsRef<str>) -> Self {
        AdminToken(token.as_ref().trim().to_owned())
    }

    /// Whether the token is empty (after trimming).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison against a presented token.
    fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl std::str::FromStr for AdminToken {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(AdminToken::new(s))
    }
}

/// Outcome label values of `llm_sim_requests_total`.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) ok: IntCounter,
    pub(crate) bad_request: IntCounter,
    pub(crate) rate_limited: IntCounter,
    pub(crate) server_error: IntCounter,
    pub(crate) timeout: IntCounter,
    pub(crate) prompt_tokens: IntCounter,
    pub(crate) completion_tokens: IntCounter,
    pub(crate) structured_valid: IntCounter,
    pub(crate) structured_invalid: IntCounter,
    pub(crate) streams: IntCounter,
    /// Plans answered from the mix, by shape index.
    pub(crate) plans: IntCounterVec,
    /// Steps of those plans, by capability.
    pub(crate) plan_steps: IntCounterVec,
}

impl Metrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "llm_sim_requests_total",
                "Chat-completion requests answered by llm-sim, by outcome.",
            ),
            &["outcome"],
        )?;
        let tokens = IntCounterVec::new(
            Opts::new(
                "llm_sim_tokens_total",
                "Tokens reported in usage by llm-sim, by type (prompt/completion).",
            ),
            &["type"],
        )?;
        let structured = IntCounterVec::new(
            Opts::new(
                "llm_sim_structured_responses_total",
                "Structured (json_schema) answers by llm-sim, by validity (valid/invalid).",
            ),
            &["validity"],
        )?;
        let streams = IntCounter::new(
            "llm_sim_streamed_responses_total",
            "Answers to `stream: true` requests sent as server-sent events by llm-sim.",
        )?;
        let plans = IntCounterVec::new(
            Opts::new(
                "llm_sim_plans_total",
                "Plans answered from the configured mix by llm-sim, by shape (index in plans.shapes).",
            ),
            &["shape"],
        )?;
        let plan_steps = IntCounterVec::new(
            Opts::new(
                "llm_sim_plan_steps_total",
                "Steps of the plans answered from the configured mix by llm-sim, by capability.",
            ),
            &["capability"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        registry.register(Box::new(structured.clone()))?;
        registry.register(Box::new(streams.clone()))?;
        registry.register(Box::new(plans.clone()))?;
        registry.register(Box::new(plan_steps.clone()))?;
        // Children are resolved once so the hot path is a single atomic add.
        Ok(Metrics {
            ok: requests.with_label_values(&["ok"]),
            bad_request: requests.with_label_values(&["bad_request"]),
            rate_limited: requests.with_label_values(&["rate_limited"]),
            server_error: requests.with_label_values(&["server_error"]),
            timeout: requests.with_label_values(&["timeout"]),
            prompt_tokens: tokens.with_label_values(&["prompt"]),
            completion_tokens: tokens.with_label_values(&["completion"]),
            structured_valid: structured.with_label_values(&["valid"]),
            structured_invalid: structured.with_label_values(&["invalid"]),
            streams,
            plans,
            plan_steps,
            registry,
        })
    }
}

struct Inner {
    config: ArcSwap<SimConfig>,
    startup: SimConfig,
    admin_token: Option<AdminToken>,
    metrics: Metrics,
    shutdown: watch::Sender<bool>,
    next_id: AtomicU64,
    /// Structured answers since the settings were last set.
    structured_seq: AtomicU64,
    /// Plans from the mix since the settings were last set.
    plan_seq: AtomicU64,
}

/// Cheaply clonable handle on the simulator's state; the axum router's state.
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

impl fmt::Debug for SimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimState")
            .field("config", &self.config())
            .field("admin_token", &self.inner.admin_token)
            .finish_non_exhaustive()
    }
}

impl SimState {
    /// Validates `config`, which also becomes the target of `POST /admin/reset`.
    /// With `admin_token` set, the admin API requires `Authorization: Bearer <token>`.
    pub fn new(config: SimConfig, admin_token: Option<AdminToken>) -> Result<Self, ConfigError> {
        config.validate()?;
        let metrics =
            Metrics::new().map_err(|e| ConfigError(format!("cannot register metrics: {e}")))?;
        Ok(SimState {
            inner: Arc::new(Inner {
                config: ArcSwap::from_pointee(config.clone()),
                startup: config,
                admin_token: admin_token.filter(|t| !t.0.is_empty()),
                metrics,
                shutdown: watch::Sender::new(false),
                next_id: AtomicU64::new(1),
                structured_seq: AtomicU64::new(0),
                plan_seq: AtomicU64::new(0),
            }),
        })
    }

    /// The settings in force now (a copy).
    pub fn config(&self) -> SimConfig {
        SimConfig::clone(&self.inner.config.load())
    }

    /// The settings in force now, shared (one atomic increment).
    pub(crate) fn current(&self) -> Arc<SimConfig> {
        self.inner.config.load_full()
    }

    /// Replaces the settings after validating them; the structured and
    /// plan sequences start again.
    pub fn set_config(&self, config: SimConfig) -> Result<(), ConfigError> {
        config.validate()?;
        self.inner.config.store(Arc::new(config));
        self.restart_sequences();
        Ok(())
    }

    /// Back to the settings the state was created with; returns them.
    pub fn reset(&self) -> SimConfig {
        let startup = self.inner.startup.clone();
        self.inner.config.store(Arc::new(startup.clone()));
        self.restart_sequences();
        startup
    }

    fn restart_sequences(&self) {
        self.inner.structured_seq.store(0, Ordering::Relaxed);
        self.inner.plan_seq.store(0, Ordering::Relaxed);
    }

    /// The registry behind `GET /metrics`.
    pub fn registry(&self) -> &Registry {
        &self.inner.metrics.registry
    }

    /// Ends pending simulated delays and hangs (they answer 503 at once).
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Whether the admin API requires a bearer token.
    pub fn admin_token_set(&self) -> bool {
        self.inner.admin_token.is_some()
    }

    pub(crate) fn admin_token(&self) -> Option<&AdminToken> {
        self.inner.admin_token.as_ref()
    }

    pub(crate) fn token_matches(&self, presented: &str) -> bool {
        self.admin_token().is_none_or(|t| t.matches(presented))
    }

    /// The 1-based number of this structured answer since the settings were set.
    pub(crate) fn next_structured(&self) -> u64 {
        self.inner.structured_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The 1-based number of this plan from the mix since the settings were set.
    pub(crate) fn next_plan(&self) -> u64 {
        self.inner.plan_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sleeps for `duration` unless shutdown begins first; `false` when cut short.
    pub(crate) async fn sleep(&self, duration: Duration) -> bool {
        if duration.is_zero() {
            return true;
        }
        let mut shutdown = self.inner.shutdown.subscribe();
        if *shutdown.borrow_and_update() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            _ = shutdown.changed() => false,
        }
    }

    /// Sleeps until `deadline` unless shutdown begins first; `false` when cut short.
    pub(crate) async fn sleep_until(&self, deadline: Instant) -> bool {
        let mut shutdown = self.inner.shutdown.subscribe();
        if *shutdown.borrow_and_update() {
            return false;
        }
        if deadline <= Instant::now() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => true,
            _ = shutdown.changed() => false,
        }
    }
}
