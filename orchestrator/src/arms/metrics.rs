//! The orchestrator's view of its arms (docs/contracts.md, "Metrics"). The
//! `arm` label is the instance label (`planner`, `planner-2`, …), bounded by
//! the configuration.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// `status` values of `octollm_arm_requests_total`.
pub const REQUEST_STATUSES: [&str; 4] = ["ok", "error", "timeout", "circuit_open"];

pub const ARM_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone)]
pub struct ArmMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub available: IntGaugeVec,
    pub circuit_state: IntGaugeVec,
}

impl ArmMetrics {
    /// Registers the metrics with every series of `labels` at zero.
    pub fn register(registry: &Registry, labels: &[&str]) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "octollm_arm_requests_total",
                    "Calls to arm instances by outcome: ok, error (an error answer or a refused connection), timeout, circuit_open (not attempted).",
                ),
                &["arm", "status"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "octollm_arm_request_duration_seconds",
                    "Duration of each attempted call to an arm instance.",
                )
                .buckets(ARM_DURATION_BUCKETS.to_vec()),
                &["arm"],
            )?,
            available: IntGaugeVec::new(
                Opts::new(
                    "octollm_arm_available",
                    "1 when the arm instance's last /ready and /v1/capabilities probes succeeded.",
                ),
                &["arm"],
            )?,
            circuit_state: IntGaugeVec::new(
                Opts::new(
                    "octollm_arm_circuit_state",
                    "Circuit to the arm instance: 0 closed, 1 half-open, 2 open.",
                ),
                &["arm"],
            )?,
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        registry.register(Box::new(metrics.available.clone()))?;
        registry.register(Box::new(metrics.circuit_state.clone()))?;
        for arm in labels {
            for status in REQUEST_STATUSES {
                metrics.requests.with_label_values(&[arm, status]);
            }
            metrics.duration.with_label_values(&[arm]);
            metrics.available.with_label_values(&[arm]).set(0);
            metrics.circuit_state.with_label_values(&[arm]).set(0);
        }
        Ok(metrics)
    }
}
