//! `TaskStore`: every read and write of task state. Each transition is one
//! statement (or one transaction) committed before anyone is told about it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::metrics::TaskMetrics;
use crate::task::{Budget, NewTask, Priority, TaskStatus, TaskType};

/// Channel on which a task's move to a terminal state is announced.
pub const TASK_DONE_CHANNEL: &str = "octollm_task_done";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
}

impl Usage {
    pub fn total_tokens(&self) -> i64 {
        self.prompt_tokens + self.completion_tokens
    }

    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost_usd += other.cost_usd;
    }
}

#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub id: Uuid,
    pub status: TaskStatus,
    pub task_type: TaskType,
    pub priority: Priority,
    pub goal: String,
    pub context: Option<String>,
    pub constraints: Vec<String>,
    pub acceptance_criteria: Vec<String>,
    pub budget: Budget,
    pub result: Option<Value>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub usage: Usage,
    pub attempts: i32,
    pub cancel_requested: bool,
    pub deadline_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepRecord {
    pub index: i32,
    pub name: String,
    pub capability: String,
    /// `succeeded` or `failed`.
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub usage: Usage,
    /// The arm instance that ran it (`planner`, `planner-2`, …); absent for
    /// steps the orchestrator ran itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// How a task ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded { result: Value },
    Failed { kind: &'static str, message: String },
    Timeout { message: String },
    Cancelled,
}

impl Outcome {
    pub fn status(&self) -> TaskStatus {
        match self {
            Self::Succeeded { .. } => TaskStatus::Succeeded,
            Self::Failed { .. } => TaskStatus::Failed,
            Self::Timeout { .. } => TaskStatus::Timeout,
            Self::Cancelled => TaskStatus::Cancelled,
        }
    }
}

pub enum CancelOutcome {
    NotFound,
    /// Was queued: now cancelled.
    Cancelled(TaskType),
    /// Is running: its worker will stop it.
    Requested,
    AlreadyFinished(TaskStatus),
}

/// Keyset position for listing (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl ListCursor {
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('_')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

const TASK_COLUMNS: &str = "id, status, task_type, priority, goal, context, constraints, \
    acceptance_criteria, max_tokens, max_time_seconds, max_cost_usd, result, error_kind, error, \
    prompt_tokens, completion_tokens, cost_usd, attempts, cancel_requested, deadline_at, \
    created_at, started_at, finished_at, updated_at";

const STEP_COLUMNS: &str = "task_id, step_index, name, capability, status, output, error, \
    prompt_tokens, completion_tokens, cost_usd, started_at, finished_at, arm";

#[derive(Clone)]
pub struct TaskStore {
    pool: Pool,
    metrics: TaskMetrics,
}

impl TaskStore {
    pub fn new(pool: Pool, metrics: TaskMetrics) -> Self {
        Self { pool, metrics }
    }

    /// Runs one named query, recording `octollm_db_query_duration_seconds{query}`.
    async fn query(
        &self,
        name: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let started = Instant::now();
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        let rows = client.query(&statement, params).await;
        self.metrics
            .db_query
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        Ok(rows?)
    }

    /// Inserts a task, queued or (when screening blocked it) rejected with
    /// `rejection` as its error; returns once the insert is committed.
    pub async fn insert(
        &self,
        task: &NewTask,
        rejection: Option<&str>,
    ) -> Result<(Uuid, DateTime<Utc>), StoreError> {
        let id = Uuid::now_v7();
        let constraints = serde_json::to_value(&task.constraints)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let criteria = serde_json::to_value(&task.acceptance_criteria)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let rows = self
            .query(
                "insert_task",
                "WITH t AS (
                     INSERT INTO tasks (id, status, task_type, priority, goal, context, constraints,
                         acceptance_criteria, max_tokens, max_time_seconds, max_cost_usd,
                         error_kind, error, finished_at)
                     VALUES ($1, CASE WHEN $11::text IS NULL THEN 'queued' ELSE 'rejected' END,
                         $2, $3, $4, $5, $6, $7, $8, $9, $10,
                         CASE WHEN $11::text IS NULL THEN NULL ELSE 'rejected' END, $11,
                         CASE WHEN $11::text IS NULL THEN NULL ELSE now() END)
                     RETURNING id, status, created_at)
                 INSERT INTO task_events (task_id, kind)
                 SELECT id, CASE WHEN status = 'rejected' THEN 'rejected' ELSE 'created' END FROM t
                 RETURNING (SELECT created_at FROM t)",
                &[
                    &id,
                    &task.task_type.as_str(),
                    &task.priority.rank(),
                    &task.goal,
                    &task.context,
                    &constraints,
                    &criteria,
                    &task.budget.max_tokens,
                    &task.budget.max_time_seconds,
                    &task.budget.max_cost_usd,
                    &rejection,
                ],
            )
            .await?;
        let created_at = rows
            .first()
            .map(|row| row.try_get(0))
            .transpose()?
            .ok_or_else(|| StoreError::Corrupt("insert returned no row".into()))?;
        Ok((id, created_at))
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<(TaskRecord, Vec<StepRecord>)>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let Some(row) = self
            .query("get_task", &sql, &[&id])
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let task = task_from_row(&row)?;
        let steps = self.steps(&[id]).await?;
        Ok(Some((task, steps.into_iter().map(|(_, s)| s).collect())))
    }

    pub async fn status(&self, id: Uuid) -> Result<Option<TaskStatus>, StoreError> {
        let rows = self
            .query(
                "get_task_status",
                "SELECT status FROM tasks WHERE id = $1",
                &[&id],
            )
            .await?;
        rows.first()
            .map(|row| parse_status(row.try_get(0)?))
            .transpose()
    }

    pub async fn list(
        &self,
        status: Option<TaskStatus>,
        limit: i64,
        after: Option<ListCursor>,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks
             WHERE ($1::text IS NULL OR status = $1)
               AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let status = status.map(TaskStatus::as_str);
        let rows = self
            .query(
                "list_tasks",
                &sql,
                &[
                    &status,
                    &after.map(|c| c.created_at),
                    &after.map_or(Uuid::nil(), |c| c.id),
                    &limit,
                ],
            )
            .await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn steps(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, StepRecord)>, StoreError> {
        let sql = format!(
            "SELECT {STEP_COLUMNS} FROM task_steps WHERE task_id = ANY($1) ORDER BY task_id, step_index"
        );
        let rows = self.query("get_steps", &sql, &[&ids]).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("task_id")?, step_from_row(row)?)))
            .collect()
    }

    /// Claims up to `limit` queued tasks for `owner`, highest priority first,
    /// skipping rows other replicas hold; returns them with their finished steps.
    pub async fn claim(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<(TaskRecord, Vec<StepRecord>)>, StoreError> {
        let sql = format!(
            "WITH picked AS (
                 SELECT id FROM tasks WHERE status = 'queued'
                 ORDER BY priority DESC, created_at LIMIT $3 FOR UPDATE SKIP LOCKED),
             claimed AS (
                 UPDATE tasks t SET status = 'running', lease_owner = $1,
                     lease_expires_at = now() + make_interval(secs => $2),
                     attempts = t.attempts + 1, started_at = coalesce(t.started_at, now()),
                     deadline_at = coalesce(t.deadline_at, now() + t.max_time_seconds * interval '1 second'),
                     updated_at = now()
                 FROM picked WHERE t.id = picked.id
                 RETURNING t.*),
             events AS (
                 INSERT INTO task_events (task_id, kind, detail)
                 SELECT id, 'claimed', jsonb_build_object('owner', $1::text, 'attempt', attempts) FROM claimed)
             SELECT {TASK_COLUMNS} FROM claimed"
        );
        let lease_secs = lease.as_secs_f64();
        let rows = self
            .query("claim_tasks", &sql, &[&owner, &lease_secs, &limit])
            .await?;
        let tasks: Vec<TaskRecord> = rows.iter().map(task_from_row).collect::<Result<_, _>>()?;
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
        let mut steps = self.steps(&ids).await?;
        Ok(tasks
            .into_iter()
            .map(|task| {
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut steps)
                    .into_iter()
                    .partition(|(id, _)| *id == task.id);
                steps = rest;
                (task, mine.into_iter().map(|(_, s)| s).collect())
            })
            .collect())
    }

    /// Extends the leases `owner` holds. Returns, per still-held task, whether
    /// cancellation was requested; a task missing from the answer is no longer ours.
    pub async fn renew_leases(
        &self,
        owner: &str,
        ids: &[Uuid],
        lease: Duration,
    ) -> Result<Vec<(Uuid, bool)>, StoreError> {
        let lease_secs = lease.as_secs_f64();
        let rows = self
            .query(
                "renew_leases",
                "UPDATE tasks SET lease_expires_at = now() + make_interval(secs => $2)
                 WHERE id = ANY($3) AND lease_owner = $1 AND status = 'running'
                 RETURNING id, cancel_requested",
                &[&owner, &lease_secs, &ids],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// Persists a finished step and adds its usage to the task, if `owner`
    /// still holds the task. Returns false when the lease was lost.
    pub async fn record_step(
        &self,
        task_id: Uuid,
        owner: &str,
        step: &StepRecord,
    ) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "record_step",
                "WITH s AS (
                     INSERT INTO task_steps (task_id, step_index, name, capability, status, output,
                         error, prompt_tokens, completion_tokens, cost_usd, started_at, arm)
                     SELECT $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
                     WHERE EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND lease_owner = $2 AND status = 'running')
                     ON CONFLICT (task_id, step_index) DO NOTHING
                     RETURNING task_id)
                 UPDATE tasks SET prompt_tokens = prompt_tokens + $9,
                     completion_tokens = completion_tokens + $10, cost_usd = cost_usd + $11,
                     updated_at = now()
                 WHERE id IN (SELECT task_id FROM s)
                 RETURNING id",
                &[
                    &task_id,
                    &owner,
                    &step.index,
                    &step.name,
                    &step.capability,
                    &step.status,
                    &step.output,
                    &step.error,
                    &step.usage.prompt_tokens,
                    &step.usage.completion_tokens,
                    &step.usage.cost_usd,
                    &step.started_at,
                    &step.arm,
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Moves a running task that `owner` holds to its terminal state and
    /// announces it. Returns the task's age in seconds, or None if the lease was lost.
    pub async fn finish(
        &self,
        task_id: Uuid,
        owner: &str,
        outcome: &Outcome,
    ) -> Result<Option<f64>, StoreError> {
        let (result, kind, message) = match outcome {
            Outcome::Succeeded { result } => (Some(result.clone()), None, None),
            Outcome::Failed { kind, message } => (None, Some(*kind), Some(message.as_str())),
            Outcome::Timeout { message } => (None, Some("timeout"), Some(message.as_str())),
            Outcome::Cancelled => (None, Some("cancelled"), Some("cancelled on request")),
        };
        let sql = format!(
            "WITH done AS (
                 UPDATE tasks SET status = $3, result = $4, error_kind = $5, error = $6,
                     finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'
                 RETURNING id, status, created_at, finished_at),
             events AS (
                 INSERT INTO task_events (task_id, kind, detail)
                 SELECT id, 'finished', jsonb_build_object('status', status, 'error_kind', $5::text) FROM done)
             SELECT extract(epoch FROM finished_at - created_at)::float8, pg_notify('{TASK_DONE_CHANNEL}', id::text)
             FROM done"
        );
        let rows = self
            .query(
                "finish_task",
                &sql,
                &[
                    &task_id,
                    &owner,
                    &outcome.status().as_str(),
                    &result,
                    &kind,
                    &message,
                ],
            )
            .await?;
        rows.first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(Into::into)
    }

    /// Hands tasks back to the queue (on shutdown), so they resume at once elsewhere.
    pub async fn release(&self, owner: &str, ids: &[Uuid]) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "release_tasks",
                "WITH released AS (
                     UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
                         updated_at = now()
                     WHERE id = ANY($2) AND lease_owner = $1 AND status = 'running'
                     RETURNING id)
                 INSERT INTO task_events (task_id, kind) SELECT id, 'released' FROM released
                 RETURNING task_id",
                &[&owner, &ids],
            )
            .await?;
        Ok(rows.len() as u64)
    }

    /// Requeues running tasks whose lease expired (their worker died).
    pub async fn requeue_expired(&self) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "requeue_expired",
                "WITH expired AS (
                     UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
                         updated_at = now()
                     WHERE id IN (SELECT id FROM tasks WHERE status = 'running' AND lease_expires_at < now()
                                  FOR UPDATE SKIP LOCKED)
                     RETURNING id)
                 INSERT INTO task_events (task_id, kind) SELECT id, 'lease_expired' FROM expired
                 RETURNING task_id",
                &[],
            )
            .await?;
        Ok(rows.len() as u64)
    }

    pub async fn queue_depth(&self) -> Result<i64, StoreError> {
        let rows = self
            .query(
                "queue_depth",
                "SELECT count(*) FROM tasks WHERE status = 'queued'",
                &[],
            )
            .await?;
        Ok(rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
    }

    /// Cancels a queued task at once, or flags a running one for its worker.
    pub async fn cancel(&self, id: Uuid) -> Result<CancelOutcome, StoreError> {
        let started = Instant::now();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT status, task_type FROM tasks WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?;
        let Some(row) = row else {
            return Ok(CancelOutcome::NotFound);
        };
        let outcome = match parse_status(row.try_get(0)?)? {
            TaskStatus::Queued => {
                tx.execute(
                    "UPDATE tasks SET status = 'cancelled', cancel_requested = true,
                         error_kind = 'cancelled', error = 'cancelled on request',
                         finished_at = now(), updated_at = now() WHERE id = $1",
                    &[&id],
                )
                .await?;
                tx.execute(
                    &format!("SELECT pg_notify('{TASK_DONE_CHANNEL}', $1::uuid::text)"),
                    &[&id],
                )
                .await?;
                let task_type: &str = row.try_get(1)?;
                CancelOutcome::Cancelled(TaskType::parse(task_type).unwrap_or_default())
            }
            TaskStatus::Running => {
                tx.execute(
                    "UPDATE tasks SET cancel_requested = true, updated_at = now() WHERE id = $1",
                    &[&id],
                )
                .await?;
                CancelOutcome::Requested
            }
            status => return Ok(CancelOutcome::AlreadyFinished(status)),
        };
        tx.execute(
            "INSERT INTO task_events (task_id, kind) VALUES ($1, 'cancel_requested')",
            &[&id],
        )
        .await?;
        tx.commit().await?;
        self.metrics
            .db_query
            .with_label_values(&["cancel_task"])
            .observe(started.elapsed().as_secs_f64());
        Ok(outcome)
    }
}

fn parse_status(text: &str) -> Result<TaskStatus, StoreError> {
    TaskStatus::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown task status {text:?}")))
}

fn task_from_row(row: &Row) -> Result<TaskRecord, StoreError> {
    let task_type: &str = row.try_get("task_type")?;
    let strings = |column: &str| -> Result<Vec<String>, StoreError> {
        let value: Value = row.try_get(column)?;
        serde_json::from_value(value).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
    };
    Ok(TaskRecord {
        id: row.try_get("id")?,
        status: parse_status(row.try_get("status")?)?,
        task_type: TaskType::parse(task_type)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown task type {task_type:?}")))?,
        priority: Priority::from_rank(row.try_get("priority")?),
        goal: row.try_get("goal")?,
        context: row.try_get("context")?,
        constraints: strings("constraints")?,
        acceptance_criteria: strings("acceptance_criteria")?,
        budget: Budget {
            max_tokens: row.try_get("max_tokens")?,
            max_time_seconds: row.try_get("max_time_seconds")?,
            max_cost_usd: row.try_get("max_cost_usd")?,
        },
        result: row.try_get("result")?,
        error_kind: row.try_get("error_kind")?,
        error: row.try_get("error")?,
        usage: Usage {
            prompt_tokens: row.try_get("prompt_tokens")?,
            completion_tokens: row.try_get("completion_tokens")?,
            cost_usd: row.try_get("cost_usd")?,
        },
        attempts: row.try_get("attempts")?,
        cancel_requested: row.try_get("cancel_requested")?,
        deadline_at: row.try_get("deadline_at")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn step_from_row(row: &Row) -> Result<StepRecord, StoreError> {
    Ok(StepRecord {
        index: row.try_get("step_index")?,
        name: row.try_get("name")?,
        capability: row.try_get("capability")?,
        status: row.try_get("status")?,
        output: row.try_get("output")?,
        error: row.try_get("error")?,
        usage: Usage {
            prompt_tokens: row.try_get("prompt_tokens")?,
            completion_tokens: row.try_get("completion_tokens")?,
            cost_usd: row.try_get("cost_usd")?,
        },
        arm: row.try_get("arm")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = ListCursor {
            created_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(ListCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(ListCursor::decode("nonsense"), None);
        assert_eq!(ListCursor::decode("12_notauuid"), None);
    }
}
