//! The `octollm_llm_api_*` metrics (docs/contracts.md, "Metrics").

use prometheus::{CounterVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::LlmError;

/// Buckets of `octollm_llm_api_duration_seconds`, in seconds.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// Buckets of `octollm_llm_time_to_first_token_seconds`, in seconds.
pub const TTFT_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0,
];

#[derive(Clone)]
pub(crate) struct LlmMetrics {
    pub(crate) calls: IntCounterVec,
    pub(crate) tokens: IntCounterVec,
    pub(crate) cost: CounterVec,
    pub(crate) duration: HistogramVec,
    pub(crate) ttft: HistogramVec,
}

impl LlmMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, LlmError> {
        let metrics = Self::new().map_err(|e| LlmError::Config(e.to_string()))?;
        for collector in [
            Box::new(metrics.calls.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.tokens.clone()),
            Box::new(metrics.cost.clone()),
            Box::new(metrics.duration.clone()),
            Box::new(metrics.ttft.clone()),
        ] {
            registry.register(collector).map_err(|e| {
                LlmError::Config(format!(
                    "cannot register LLM metrics ({e}); create one LlmClient per registry and clone it"
                ))
            })?;
        }
        Ok(metrics)
    }

    fn new() -> Result<Self, prometheus::Error> {
        Ok(LlmMetrics {
            calls: IntCounterVec::new(
                Opts::new(
                    "octollm_llm_api_calls_total",
                    "LLM API attempts by provider, model and outcome status.",
                ),
                &["provider", "model", "status"],
            )?,
            tokens: IntCounterVec::new(
                Opts::new(
                    "octollm_llm_api_tokens_total",
                    "LLM tokens reported by the provider, by type (prompt/completion).",
                ),
                &["provider", "model", "type"],
            )?,
            cost: CounterVec::new(
                Opts::new(
                    "octollm_llm_api_cost_usd_total",
                    "Estimated LLM spend in US dollars, from the configured price table.",
                ),
                &["provider", "model"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "octollm_llm_api_duration_seconds",
                    "Duration of each LLM API attempt.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["provider", "model"],
            )?,
            ttft: HistogramVec::new(
                HistogramOpts::new(
                    "octollm_llm_time_to_first_token_seconds",
                    "Time from the start of a streamed LLM attempt to its first content token.",
                )
                .buckets(TTFT_BUCKETS.to_vec()),
                &["provider", "model"],
            )?,
        })
    }
}
