//! The arm's server-side metrics (docs/contracts.md, "Metrics"). Every label
//! set is created at start-up, so rates see zeros rather than missing series.

use arm_protocol::ArmKind;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// `status` of `octollm_arm_executions_total`: `ok`; `rejected` (4xx, the
/// request's fault); `error` (5xx other than 504, the arm's fault);
/// `timeout` (504, the deadline passed).
pub const EXECUTION_STATUSES: [&str; 4] = ["ok", "rejected", "error", "timeout"];

/// `capability` label of requests naming a capability the arm does not serve.
pub const OTHER_CAPABILITY: &str = "other";

/// Buckets of `octollm_arm_execution_duration_seconds`: 5 ms to 2 min.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Clone)]
pub struct ArmMetrics {
    arm: &'static str,
    executions: IntCounterVec,
    duration: HistogramVec,
}

impl ArmMetrics {
    pub fn register(registry: &Registry, kind: ArmKind) -> Result<Self, prometheus::Error> {
        let executions = IntCounterVec::new(
            Opts::new(
                "octollm_arm_executions_total",
                "Executions answered by this arm, by capability and status (ok/rejected/error/timeout).",
            ),
            &["arm", "capability", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "octollm_arm_execution_duration_seconds",
                "Time from a valid execute request to its answer.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["arm", "capability"],
        )?;
        registry.register(Box::new(executions.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        let arm = kind.name();
        for capability in kind.capabilities() {
            for status in EXECUTION_STATUSES {
                executions.with_label_values(&[arm, capability, status]);
            }
            duration.with_label_values(&[arm, capability]);
        }
        executions.with_label_values(&[arm, OTHER_CAPABILITY, "rejected"]);
        Ok(Self {
            arm,
            executions,
            duration,
        })
    }

    /// Counts one answer; `seconds` is observed for the arm's own capabilities.
    pub(crate) fn record(&self, capability: &str, status: &str, seconds: Option<f64>) {
        self.executions
            .with_label_values(&[self.arm, capability, status])
            .inc();
        if let Some(seconds) = seconds {
            self.duration
                .with_label_values(&[self.arm, capability])
                .observe(seconds);
        }
    }
}
