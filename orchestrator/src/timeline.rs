//! `GET /v1/tasks/{id}/timeline`: one task's history in time order, built
//! from its events (`task_events`: created, claimed by which replica as
//! which attempt, released, lease expired, cancel requested, finished) and
//! its persisted steps (which arm instance ran each, and for how long). It
//! answers "where did this task's time go" without reading logs.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::{StepRecord, TaskEvent, TaskRecord};
use crate::task::TaskStatus;

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub task_id: Uuid,
    pub status: TaskStatus,
    /// From creation to the end, or to now for a task still open, in ms.
    pub elapsed_ms: i64,
    /// From creation to the first claim (time in the queue), in ms; absent
    /// until a worker claims it.
    pub queued_ms: Option<i64>,
    /// The steps' own time, summed (steps of one batch overlap), in ms.
    pub steps_ms: i64,
    /// LLM time the provider reported as simulated (llm-sim), summed.
    pub simulated_llm_ms: i64,
    pub entries: Vec<TimelineEntry>,
}

/// One moment of the task's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// `created`, `rejected`, `claimed`, `released`, `lease_expired`,
    /// `cancel_requested`, `finished`, or `step` (at the step's start).
    pub kind: String,
    /// The event's details: for `claimed` the replica (`owner`) and
    /// `attempt`, for `finished` the `status` and `error_kind`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepEntry>,
}

/// A persisted step, as the timeline shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepEntry {
    pub index: i32,
    pub name: String,
    pub capability: String,
    /// `succeeded` or `failed`.
    pub status: String,
    /// The arm instance that ran it; absent for steps the orchestrator ran itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    pub duration_ms: i64,
    pub simulated_llm_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Timeline {
    pub fn new(task: TaskRecord, steps: Vec<StepRecord>, events: Vec<TaskEvent>) -> Self {
        let ms = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_milliseconds();
        let queued_ms = events
            .iter()
            .find(|e| e.kind == "claimed")
            .map(|e| ms(task.created_at, e.at));
        let steps_ms = steps.iter().map(|s| ms(s.started_at, s.finished_at)).sum();
        // The task's usage is its steps' sum (TaskStore reads it so).
        let simulated_llm_ms = task.usage.simulated_llm_ms;
        let mut entries: Vec<TimelineEntry> = events
            .into_iter()
            .map(|e| TimelineEntry {
                at: e.at,
                kind: e.kind,
                detail: e
                    .detail
                    .filter(|d| d.as_object().is_some_and(|o| !o.is_empty())),
                step: None,
            })
            .chain(steps.into_iter().map(|s| TimelineEntry {
                at: s.started_at,
                kind: "step".to_owned(),
                detail: None,
                step: Some(StepEntry {
                    duration_ms: ms(s.started_at, s.finished_at),
                    simulated_llm_ms: s.usage.simulated_llm_ms,
                    index: s.index,
                    name: s.name,
                    capability: s.capability,
                    status: s.status,
                    arm: s.arm,
                    error: s.error,
                }),
            }))
            .collect();
        // Stable: an event and a step at the same instant keep events first.
        entries.sort_by_key(|e| e.at);
        Self {
            task_id: task.id,
            status: task.status,
            elapsed_ms: ms(task.created_at, task.finished_at.unwrap_or_else(Utc::now)),
            queued_ms,
            steps_ms,
            simulated_llm_ms,
            entries,
        }
    }
}
