//! The orchestrator's own metrics (docs/contracts.md, "Metrics").

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::task::{Priority, TaskStatus, TaskType};

pub const TASK_DURATION_BUCKETS: &[f64] = &[0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
pub const DB_QUERY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Clone)]
pub struct TaskMetrics {
    pub created: IntCounterVec,
    pub completed: IntCounterVec,
    pub duration: HistogramVec,
    pub in_progress: IntGaugeVec,
    pub queue_depth: IntGauge,
    pub db_pool: IntGaugeVec,
    pub db_query: HistogramVec,
}

impl TaskMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            created: IntCounterVec::new(
                Opts::new("octollm_tasks_created_total", "Tasks accepted (202)."),
                &["task_type", "priority"],
            )?,
            completed: IntCounterVec::new(
                Opts::new(
                    "octollm_tasks_completed_total",
                    "Tasks that reached a terminal state.",
                ),
                &["task_type", "status"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "octollm_task_duration_seconds",
                    "Time from a task's creation to its terminal state.",
                )
                .buckets(TASK_DURATION_BUCKETS.to_vec()),
                &["task_type"],
            )?,
            in_progress: IntGaugeVec::new(
                Opts::new(
                    "octollm_tasks_in_progress",
                    "Tasks this replica is running now.",
                ),
                &["task_type"],
            )?,
            queue_depth: IntGauge::new(
                "octollm_task_queue_depth",
                "Tasks queued and not yet claimed (whole database).",
            )?,
            db_pool: IntGaugeVec::new(
                Opts::new(
                    "octollm_db_pool_connections",
                    "PostgreSQL pool connections by state.",
                ),
                &["state"],
            )?,
            db_query: HistogramVec::new(
                HistogramOpts::new(
                    "octollm_db_query_duration_seconds",
                    "PostgreSQL query latency by named query.",
                )
                .buckets(DB_QUERY_BUCKETS.to_vec()),
                &["query"],
            )?,
        };
        registry.register(Box::new(metrics.created.clone()))?;
        registry.register(Box::new(metrics.completed.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        registry.register(Box::new(metrics.in_progress.clone()))?;
        registry.register(Box::new(metrics.queue_depth.clone()))?;
        registry.register(Box::new(metrics.db_pool.clone()))?;
        registry.register(Box::new(metrics.db_query.clone()))?;
        // Export every series at zero from the start, so rates and alerts see them.
        for task_type in TaskType::ALL {
            let t = task_type.as_str();
            for priority in Priority::ALL {
                metrics.created.with_label_values(&[t, priority.as_str()]);
            }
            for status in TaskStatus::TERMINAL {
                metrics.completed.with_label_values(&[t, status.as_str()]);
            }
            metrics.duration.with_label_values(&[t]);
            metrics.in_progress.with_label_values(&[t]);
        }
        Ok(metrics)
    }
}
