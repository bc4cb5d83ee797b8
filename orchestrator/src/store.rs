//! `TaskStore`: every read and write of task state. Each transition is one
//! statement (or one transaction) committed before anyone is told about it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::metrics::TaskMetrics;
use crate::task::{Budget, NewTask, Priority, TaskStatus, TaskType};

/// Channel on which a task's move to a terminal state is announced
/// (spelled out in `GROUP_COMMIT_SQL` too).
pub const TASK_DONE_CHANNEL: &str = "octollm_task_done";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
    /// A group commit that failed for every write in it (the error's text).
    #[error("database write failed: {0}")]
    Write(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
    /// LLM time the provider reported as simulated (llm-sim); 0 otherwise.
    pub simulated_llm_ms: i64,
}

impl Usage {
    pub fn total_tokens(&self) -> i64 {
        self.prompt_tokens + self.completion_tokens
    }

    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost_usd += other.cost_usd;
        self.simulated_llm_ms += other.simulated_llm_ms;
    }

    fn of_steps<'a>(steps: impl IntoIterator<Item = &'a StepRecord>) -> Usage {
        steps.into_iter().fold(Usage::default(), |mut sum, step| {
            sum.add(step.usage);
            sum
        })
    }
}

/// A task's usage columns are written once, when it ends (summed from its
/// steps in the same statement): rewriting the task's row for every step
/// cost more than the steps' own rows. Until then its usage is the sum of
/// its finished steps, which this fills in.
fn with_running_usage<'a>(
    mut task: TaskRecord,
    steps: impl IntoIterator<Item = &'a StepRecord>,
) -> TaskRecord {
    if !task.status.is_terminal() {
        task.usage = Usage::of_steps(steps);
    }
    task
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

/// One row of `task_events`: a transition of the task.
#[derive(Debug, Clone)]
pub struct TaskEvent {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub detail: Option<Value>,
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

/// The goal stored for a task rejected by screening.
pub const WITHHELD: &str = "[withheld: rejected by screening]";
/// What replaces a finished task's texts after the retention period.
pub const PURGED: &str = "[purged after the retention period]";

const TASK_COLUMNS: &str = "id, status, task_type, priority, goal, context, constraints, \
    acceptance_criteria, max_tokens, max_time_seconds, max_cost_usd, result, error_kind, error, \
    prompt_tokens, completion_tokens, cost_usd, simulated_llm_ms, attempts, cancel_requested, \
    deadline_at, created_at, started_at, finished_at, updated_at";

const STEP_COLUMNS: &str = "task_id, step_index, name, capability, status, output, error, \
    prompt_tokens, completion_tokens, cost_usd, simulated_llm_ms, started_at, finished_at, arm";

const TASK_COLUMNS_OF_T: &str = "t.id, t.status, t.task_type, t.priority, t.goal, t.context, \
    t.constraints, t.acceptance_criteria, t.max_tokens, t.max_time_seconds, t.max_cost_usd, t.result, \
    t.error_kind, t.error, t.prompt_tokens, t.completion_tokens, t.cost_usd, t.simulated_llm_ms, \
    t.attempts, \
    t.cancel_requested, t.deadline_at, t.created_at, t.started_at, t.finished_at, t.updated_at";

/// A task's step columns next to the task's own, named apart.
const STEP_COLUMNS_OF_S: &str = "s.step_index, s.name AS step_name, s.capability AS step_capability, \
    s.status AS step_status, s.output AS step_output, s.error AS step_error, \
    s.prompt_tokens AS step_prompt_tokens, s.completion_tokens AS step_completion_tokens, \
    s.cost_usd AS step_cost_usd, s.simulated_llm_ms AS step_simulated_llm_ms, \
    s.started_at AS step_started_at, \
    s.finished_at AS step_finished_at, s.arm AS step_arm";

#[derive(Clone)]
pub struct TaskStore {
    pool: Pool,
    metrics: TaskMetrics,
    /// The group-commit writer's queue (see [`GroupCommit`]).
    writes: mpsc::UnboundedSender<Write>,
}

impl TaskStore {
    /// Starts the group-commit writer, so it must run inside a Tokio runtime.
    pub fn new(pool: Pool, metrics: TaskMetrics) -> Self {
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(
            GroupCommit {
                pool: pool.clone(),
                metrics: metrics.clone(),
            }
            .run(queue),
        );
        Self {
            pool,
            metrics,
            writes,
        }
    }

    /// Hands one write to the group-commit writer and waits until the
    /// transaction holding it has committed (or failed), recording
    /// `octollm_db_query_duration_seconds{query=name}`: the caller's wait.
    async fn write<T>(
        &self,
        name: &'static str,
        write: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Write("the database writer has stopped".into());
        self.writes.send(write(reply)).map_err(|_| stopped())?;
        let result = answer.await.map_err(|_| stopped())?;
        self.metrics
            .db_query
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        result
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
    /// `rejection` as its error; returns once the insert is committed (in a
    /// group commit with other writes).
    /// Records a new task, `submitted_by` the caller whose token sent it.
    ///
    /// With an idempotency key, returns `None` instead when `submitted_by`
    /// already has a task under that key ([`Self::find_by_key`] says which).
    pub async fn insert(
        &self,
        id: Uuid,
        task: &NewTask,
        rejection: Option<&str>,
        submitted_by: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<Option<(Uuid, DateTime<Utc>)>, StoreError> {
        // A rejected task keeps the reason's categories, never the text that
        // was rejected (it may hold an attack or personal data).
        let (goal, context, constraints, criteria) = match rejection {
            Some(_) => (
                WITHHELD.to_owned(),
                None,
                Value::Array(vec![]),
                Value::Array(vec![]),
            ),
            None => (
                task.goal.clone(),
                task.context.clone(),
                serde_json::to_value(&task.constraints)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                serde_json::to_value(&task.acceptance_criteria)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ),
        };
        let row = NewTaskRow {
            id,
            task_type: task.task_type.as_str(),
            priority: task.priority.rank(),
            goal,
            context,
            constraints,
            criteria,
            budget: task.budget,
            rejection: rejection.map(str::to_owned),
            submitted_by: submitted_by.map(str::to_owned),
            idempotency_key: idempotency_key.map(str::to_owned),
            // A rejected task keeps no digest either: a hash of a blocked
            // text would confirm a guess at it.
            request_digest: idempotency_key
                .filter(|_| rejection.is_none())
                .map(|_| task.digest().to_vec()),
        };
        let created_at = self
            .write("insert_task", |reply| Write::Insert { row, reply })
            .await?;
        Ok(created_at.map(|at| (id, at)))
    }

    /// The task `submitted_by` created under `key`: its id, state and the
    /// digest of the request that created it ([`NewTask::digest`]; none for
    /// a rejected or purged task).
    pub async fn find_by_key(
        &self,
        submitted_by: Option<&str>,
        key: &str,
    ) -> Result<Option<(Uuid, TaskStatus, Option<Vec<u8>>)>, StoreError> {
        let rows = self
            .query(
                "find_by_idempotency_key",
                "SELECT id, status, request_digest FROM tasks
                 WHERE coalesce(submitted_by, '') = coalesce($1, '') AND idempotency_key = $2",
                &[&submitted_by, &key],
            )
            .await?;
        rows.first()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    parse_status(row.try_get(1)?)?,
                    row.try_get(2)?,
                ))
            })
            .transpose()
    }

    /// Blanks the texts (goal, context, constraints, criteria, result, step
    /// outputs and errors, the request's digest) of tasks that finished
    /// before `cutoff`, at most `batch` tasks; keeps states, kinds, usage and
    /// times. Returns how many.
    pub async fn purge_texts(&self, cutoff: DateTime<Utc>, batch: i64) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "purge_texts",
                "WITH expired AS (
                     SELECT id FROM tasks
                     WHERE finished_at < $1 AND goal <> $2
                     ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED),
                 steps AS (
                     UPDATE task_steps s SET output = NULL, error = NULL
                     FROM expired e WHERE s.task_id = e.id)
                 UPDATE tasks t SET goal = $2, context = NULL, constraints = '[]',
                     acceptance_criteria = '[]', result = NULL, request_digest = NULL,
                     error = CASE WHEN t.error IS NULL THEN NULL ELSE $2 END
                 FROM expired e WHERE t.id = e.id
                 RETURNING t.id",
                &[&cutoff, &PURGED, &batch],
            )
            .await?;
        Ok(rows.len() as u64)
    }

    /// A task and its steps, in one statement; `None` also when `viewer`
    /// (a caller id; `None` for an admin) did not submit it.
    pub async fn get(
        &self,
        id: Uuid,
        viewer: Option<&str>,
    ) -> Result<Option<(TaskRecord, Vec<StepRecord>)>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS_OF_T}, {STEP_COLUMNS_OF_S}
             FROM tasks t LEFT JOIN task_steps s ON s.task_id = t.id
             WHERE t.id = $1 AND ($2::text IS NULL OR t.submitted_by = $2)
             ORDER BY s.step_index"
        );
        let rows = self.query("get_task", &sql, &[&id, &viewer]).await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let task = task_from_row(first)?;
        let mut steps = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(step) = joined_step_from_row(row)? {
                steps.push(step);
            }
        }
        Ok(Some((with_running_usage(task, &steps), steps)))
    }

    /// The task's events in the order they happened (see [`TaskEvent`]).
    pub async fn events(&self, id: Uuid) -> Result<Vec<TaskEvent>, StoreError> {
        let rows = self
            .query(
                "get_task_events",
                "SELECT at, kind, detail FROM task_events WHERE task_id = $1 ORDER BY id",
                &[&id],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TaskEvent {
                    at: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    detail: row.try_get(2)?,
                })
            })
            .collect()
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

    /// Tasks newest first; only those `viewer` submitted unless it is
    /// `None` (an admin).
    pub async fn list(
        &self,
        status: Option<TaskStatus>,
        limit: i64,
        after: Option<ListCursor>,
        viewer: Option<&str>,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks
             WHERE ($1::text IS NULL OR status = $1)
               AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
               AND ($5::text IS NULL OR submitted_by = $5)
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
                    &viewer,
                ],
            )
            .await?;
        let tasks: Vec<TaskRecord> = rows.iter().map(task_from_row).collect::<Result<_, _>>()?;
        let unfinished: Vec<Uuid> = tasks
            .iter()
            .filter(|t| !t.status.is_terminal())
            .map(|t| t.id)
            .collect();
        if unfinished.is_empty() {
            return Ok(tasks);
        }
        let steps = self.steps(&unfinished).await?;
        Ok(tasks
            .into_iter()
            .map(|task| {
                let id = task.id;
                let mine = steps.iter().filter(|(of, _)| *of == id).map(|(_, s)| s);
                with_running_usage(task, mine)
            })
            .collect())
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
    /// skipping rows other replicas hold; returns them with their finished
    /// steps. Claims nothing while `owner`'s lease ([`Self::renew_owner`]) is
    /// not current: a replica presumed dead takes no new work.
    pub async fn claim(
        &self,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<(TaskRecord, Vec<StepRecord>)>, StoreError> {
        let sql = format!(
            "WITH picked AS (
                 SELECT id FROM tasks WHERE status = 'queued'
                     AND EXISTS (SELECT 1 FROM task_owners
                                 WHERE owner = $1 AND lease_expires_at > now())
                 ORDER BY priority DESC, created_at LIMIT $2 FOR UPDATE SKIP LOCKED),
             claimed AS (
                 UPDATE tasks t SET status = 'running', lease_owner = $1,
                     lease_expires_at = NULL,
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
        let rows = self.query("claim_tasks", &sql, &[&owner, &limit]).await?;
        let tasks: Vec<TaskRecord> = rows.iter().map(task_from_row).collect::<Result<_, _>>()?;
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        // Steps are written only under a lease, so a task on its first
        // attempt has none: no need to look.
        let ids: Vec<Uuid> = tasks
            .iter()
            .filter(|t| t.attempts > 1)
            .map(|t| t.id)
            .collect();
        let mut steps = if ids.is_empty() {
            Vec::new()
        } else {
            self.steps(&ids).await?
        };
        Ok(tasks
            .into_iter()
            .map(|task| {
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut steps)
                    .into_iter()
                    .partition(|(id, _)| *id == task.id);
                steps = rest;
                let mine: Vec<StepRecord> = mine.into_iter().map(|(_, s)| s).collect();
                (with_running_usage(task, &mine), mine)
            })
            .collect())
    }

    /// Which of `ids` `owner` still holds: after its lease lapsed, the ones
    /// a sweep has not requeued. A plain read takes no row lock.
    pub async fn held_leases(&self, owner: &str, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        let rows = self
            .query(
                "held_leases",
                "SELECT id FROM tasks
                 WHERE id = ANY($2) AND lease_owner = $1 AND status = 'running'",
                &[&owner, &ids],
            )
            .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// The running tasks of `owner` whose cancellation was requested (a
    /// partial index holds just those).
    pub async fn cancel_requests(&self, owner: &str) -> Result<Vec<Uuid>, StoreError> {
        let rows = self
            .query(
                "cancel_requests",
                "SELECT id FROM tasks
                 WHERE lease_owner = $1 AND status = 'running' AND cancel_requested",
                &[&owner],
            )
            .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Extends (or first takes) `owner`'s lease, the one row every task it
    /// runs depends on. Returns whether the lease held without a gap: false
    /// when it is new, or had expired, or a sweep had already deleted it and
    /// requeued its tasks ([`Self::held_leases`] then says which are left).
    /// The row lock orders this against a sweep: either the sweep sees the
    /// renewed lease, or this sees the row gone.
    pub async fn renew_owner(&self, owner: &str, lease: Duration) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "renew_owner",
                "WITH before AS (
                     SELECT lease_expires_at >= now() AS current FROM task_owners
                     WHERE owner = $1 FOR UPDATE),
                 renewed AS (
                     INSERT INTO task_owners (owner, lease_expires_at)
                     VALUES ($1, now() + make_interval(secs => $2))
                     ON CONFLICT (owner) DO UPDATE SET lease_expires_at = excluded.lease_expires_at)
                 SELECT coalesce((SELECT current FROM before), false)",
                &[&owner, &lease.as_secs_f64()],
            )
            .await?;
        Ok(rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(false))
    }

    /// Gives up `owner`'s lease at a clean shutdown, after its tasks were
    /// handed back.
    pub async fn retire_owner(&self, owner: &str) -> Result<(), StoreError> {
        self.query(
            "retire_owner",
            "DELETE FROM task_owners WHERE owner = $1",
            &[&owner],
        )
        .await?;
        Ok(())
    }

    /// Persists a finished step, if `owner` still holds the task; returns
    /// once committed (in a group commit with other writes). Returns false
    /// when the lease was lost.
    pub async fn record_step(
        &self,
        task_id: Uuid,
        owner: &str,
        step: &StepRecord,
    ) -> Result<bool, StoreError> {
        let row = StepRow {
            task_id,
            owner: owner.to_owned(),
            step: step.clone(),
        };
        self.write("record_step", |reply| Write::Step { row, reply })
            .await
    }

    /// Moves a running task that `owner` holds to its terminal state and
    /// announces it, once committed (in a group commit with other writes).
    /// Its usage is summed from its steps then: the worker waits for each
    /// step's [`Self::record_step`] before it finishes the task, so every
    /// step was committed by an earlier group.
    /// Returns the task's age in seconds, or None if the lease was lost.
    pub async fn finish(
        &self,
        task_id: Uuid,
        owner: &str,
        outcome: &Outcome,
    ) -> Result<Option<f64>, StoreError> {
        let (result, kind, message) = match outcome {
            Outcome::Succeeded { result } => (Some(result.clone()), None, None),
            Outcome::Failed { kind, message } => (None, Some(*kind), Some(message.clone())),
            Outcome::Timeout { message } => (None, Some("timeout"), Some(message.clone())),
            Outcome::Cancelled => (None, Some("cancelled"), Some("cancelled on request".into())),
        };
        let row = FinishRow {
            task_id,
            owner: owner.to_owned(),
            status: outcome.status().as_str(),
            result,
            error_kind: kind,
            error: message,
        };
        self.write("finish_task", |reply| Write::Finish { row, reply })
            .await
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

    /// Requeues the running tasks of replicas whose lease expired (they
    /// died, or lost the database for a lease), deleting those leases in the
    /// same transaction, and tasks whose own lease expired (claimed by a
    /// replica older than owner leases). With `orphans`, also tasks whose
    /// owner has no lease row at all (claimed in the instant a sweep deleted
    /// it, then the owner died): a scan of every running task, so the caller
    /// asks for it once a lease, not every second.
    pub async fn requeue_expired(&self, orphans: bool) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "requeue_expired",
                "WITH dead AS (
                     DELETE FROM task_owners WHERE owner IN (
                         SELECT owner FROM task_owners WHERE lease_expires_at < now()
                         FOR UPDATE SKIP LOCKED)
                     RETURNING owner),
                 expired AS (
                     UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
                         updated_at = now()
                     WHERE status = 'running' AND id IN (
                         SELECT id FROM tasks
                         WHERE status = 'running' AND lease_owner IN (SELECT owner FROM dead)
                         UNION ALL
                         SELECT id FROM tasks WHERE status = 'running' AND lease_expires_at < now()
                         UNION ALL
                         SELECT id FROM tasks t
                         WHERE $1 AND t.status = 'running' AND t.lease_expires_at IS NULL
                             AND NOT EXISTS (SELECT 1 FROM task_owners o WHERE o.owner = t.lease_owner))
                     RETURNING id)
                 INSERT INTO task_events (task_id, kind) SELECT id, 'lease_expired' FROM expired
                 RETURNING task_id",
                &[&orphans],
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
    /// Cancels task `id` if `viewer` (a caller id; `None` for an admin)
    /// submitted it; another client's task is `NotFound`.
    pub async fn cancel(
        &self,
        id: Uuid,
        viewer: Option<&str>,
    ) -> Result<CancelOutcome, StoreError> {
        let started = Instant::now();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT status, task_type FROM tasks
                 WHERE id = $1 AND ($2::text IS NULL OR submitted_by = $2) FOR UPDATE",
                &[&id, &viewer],
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
            simulated_llm_ms: row.try_get("simulated_llm_ms")?,
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
            simulated_llm_ms: row.try_get("simulated_llm_ms")?,
        },
        arm: row.try_get("arm")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// The step in a row of `tasks LEFT JOIN task_steps` ([`STEP_COLUMNS_OF_S`]),
/// or None for a task without steps.
fn joined_step_from_row(row: &Row) -> Result<Option<StepRecord>, StoreError> {
    let Some(index) = row.try_get::<_, Option<i32>>("step_index")? else {
        return Ok(None);
    };
    Ok(Some(StepRecord {
        index,
        name: row.try_get("step_name")?,
        capability: row.try_get("step_capability")?,
        status: row.try_get("step_status")?,
        output: row.try_get("step_output")?,
        error: row.try_get("step_error")?,
        usage: Usage {
            prompt_tokens: row.try_get("step_prompt_tokens")?,
            completion_tokens: row.try_get("step_completion_tokens")?,
            cost_usd: row.try_get("step_cost_usd")?,
            simulated_llm_ms: row.try_get("step_simulated_llm_ms")?,
        },
        arm: row.try_get("step_arm")?,
        started_at: row.try_get("step_started_at")?,
        finished_at: row.try_get("step_finished_at")?,
    }))
}

/// Most writes in one group commit.
const MAX_GROUP: usize = 512;
/// How often a group that hit a deadlock is tried again before it is split.
const DEADLOCK_RETRIES: u32 = 3;

/// A task to insert (`TaskStore::insert`).
struct NewTaskRow {
    id: Uuid,
    task_type: &'static str,
    priority: i16,
    goal: String,
    context: Option<String>,
    constraints: Value,
    criteria: Value,
    budget: Budget,
    rejection: Option<String>,
    submitted_by: Option<String>,
    idempotency_key: Option<String>,
    request_digest: Option<Vec<u8>>,
}

/// A finished step to persist under `owner`'s lease (`TaskStore::record_step`).
struct StepRow {
    task_id: Uuid,
    owner: String,
    step: StepRecord,
}

/// A terminal state to record under `owner`'s lease (`TaskStore::finish`).
struct FinishRow {
    task_id: Uuid,
    owner: String,
    status: &'static str,
    result: Option<Value>,
    error_kind: Option<&'static str>,
    error: Option<String>,
}

/// One write waiting for the group commit, and where its answer goes.
enum Write {
    Insert {
        row: NewTaskRow,
        /// `None`: the client already has a task under this idempotency key.
        reply: oneshot::Sender<Result<Option<DateTime<Utc>>, StoreError>>,
    },
    Step {
        row: StepRow,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Finish {
        row: FinishRow,
        reply: oneshot::Sender<Result<Option<f64>, StoreError>>,
    },
}

impl Write {
    /// Sorts a group so its row locks are taken in task id order.
    fn task_id(&self) -> Uuid {
        match self {
            Self::Insert { row, .. } => row.id,
            Self::Step { row, .. } => row.task_id,
            Self::Finish { row, .. } => row.task_id,
        }
    }

    fn fail(self, error: StoreError) {
        // A caller that stopped waiting has nobody to tell.
        match self {
            Self::Insert { reply, .. } => drop(reply.send(Err(error))),
            Self::Step { reply, .. } => drop(reply.send(Err(error))),
            Self::Finish { reply, .. } => drop(reply.send(Err(error))),
        }
    }
}

/// What one group commit wrote: inserted tasks with their creation time,
/// stored steps, finished tasks with their age.
#[derive(Default)]
struct Committed {
    inserted: HashMap<Uuid, DateTime<Utc>>,
    steps: HashSet<(Uuid, i32)>,
    finished: HashMap<Uuid, f64>,
}

/// Group commit: the writes of every task (inserts, finished steps, terminal
/// states) that arrive while the previous group is committing go into one
/// statement, so one transaction and one WAL flush serve them all. Each
/// caller waits for the commit of its own group, so nothing is acknowledged,
/// and no step starts, before the write it depends on is durable; each
/// worker write keeps its lease condition, row by row. A group that fails on
/// a server error is retried write by write, so one bad write fails alone.
struct GroupCommit {
    pool: Pool,
    metrics: TaskMetrics,
}

impl GroupCommit {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Write>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
            self.commit(std::mem::take(&mut group)).await;
        }
    }

    async fn commit(&self, mut group: Vec<Write>) {
        group.sort_by_key(Write::task_id);
        let mut tries = 0;
        let error = loop {
            match self.execute(&group).await {
                Ok(committed) => return answer(group, &committed),
                Err(StoreError::Db(error))
                    if error.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
                        && tries < DEADLOCK_RETRIES =>
                {
                    tries += 1;
                    tracing::debug!(%error, tries, "group commit hit a deadlock; trying again");
                }
                Err(error) => break error,
            }
        };
        let server_error = matches!(&error, StoreError::Db(e) if e.code().is_some());
        if server_error && group.len() > 1 {
            tracing::warn!(%error, writes = group.len(), "group commit failed; writing one by one");
            for write in group {
                match self.execute(std::slice::from_ref(&write)).await {
                    Ok(committed) => answer(vec![write], &committed),
                    Err(error) => write.fail(error),
                }
            }
        } else {
            let text = error.to_string();
            let mut group = group.into_iter();
            if let Some(first) = group.next() {
                first.fail(error);
            }
            for write in group {
                write.fail(StoreError::Write(text.clone()));
            }
        }
    }

    /// Commits `group` in one statement.
    async fn execute(&self, group: &[Write]) -> Result<Committed, StoreError> {
        let started = Instant::now();
        let mut new = NewTaskColumns::default();
        let mut step = StepColumns::default();
        let mut fin = FinishColumns::default();
        for write in group {
            match write {
                Write::Insert { row, .. } => new.push(row),
                Write::Step { row, .. } => step.push(row),
                Write::Finish { row, .. } => fin.push(row),
            }
        }
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(GROUP_COMMIT_SQL).await?;
        let params: [&(dyn ToSql + Sync); 34] = [
            &new.id,
            &new.task_type,
            &new.priority,
            &new.goal,
            &new.context,
            &new.constraints,
            &new.criteria,
            &new.max_tokens,
            &new.max_time_seconds,
            &new.max_cost_usd,
            &new.rejection,
            &step.task_id,
            &step.owner,
            &step.index,
            &step.name,
            &step.capability,
            &step.status,
            &step.output,
            &step.error,
            &step.prompt_tokens,
            &step.completion_tokens,
            &step.cost_usd,
            &step.simulated_llm_ms,
            &step.started_at,
            &step.arm,
            &fin.task_id,
            &fin.owner,
            &fin.status,
            &fin.result,
            &fin.error_kind,
            &fin.error,
            &new.submitted_by,
            &new.idempotency_key,
            &new.request_digest,
        ];
        let rows = client.query(&statement, &params).await;
        self.metrics
            .db_query
            .with_label_values(&["group_commit"])
            .observe(started.elapsed().as_secs_f64());
        let mut committed = Committed::default();
        for row in rows? {
            let id: Uuid = row.try_get(1)?;
            match row.try_get::<_, &str>(0)? {
                "i" => {
                    committed.inserted.insert(id, row.try_get(3)?);
                }
                "s" => {
                    committed.steps.insert((id, row.try_get(2)?));
                }
                _ => {
                    committed.finished.insert(id, row.try_get(4)?);
                }
            }
        }
        Ok(committed)
    }
}

/// Tells each writer of a committed group what became of its write.
fn answer(group: Vec<Write>, committed: &Committed) {
    for write in group {
        // A caller that stopped waiting has nobody to tell.
        match write {
            Write::Insert { row, reply } => {
                let created = match committed.inserted.get(&row.id) {
                    Some(at) => Ok(Some(*at)),
                    // ON CONFLICT DO NOTHING skipped it: the key is taken.
                    None if row.idempotency_key.is_some() => Ok(None),
                    None => Err(StoreError::Corrupt("insert returned no row".into())),
                };
                drop(reply.send(created));
            }
            Write::Step { row, reply } => {
                let stored = committed.steps.contains(&(row.task_id, row.step.index));
                drop(reply.send(Ok(stored)));
            }
            Write::Finish { row, reply } => {
                drop(reply.send(Ok(committed.finished.get(&row.task_id).copied())));
            }
        }
    }
}

#[derive(Default)]
struct NewTaskColumns {
    id: Vec<Uuid>,
    task_type: Vec<&'static str>,
    priority: Vec<i16>,
    goal: Vec<String>,
    context: Vec<Option<String>>,
    constraints: Vec<Value>,
    criteria: Vec<Value>,
    max_tokens: Vec<i32>,
    max_time_seconds: Vec<i32>,
    max_cost_usd: Vec<f64>,
    rejection: Vec<Option<String>>,
    submitted_by: Vec<Option<String>>,
    idempotency_key: Vec<Option<String>>,
    request_digest: Vec<Option<Vec<u8>>>,
}

impl NewTaskColumns {
    fn push(&mut self, row: &NewTaskRow) {
        self.id.push(row.id);
        self.task_type.push(row.task_type);
        self.priority.push(row.priority);
        self.goal.push(row.goal.clone());
        self.context.push(row.context.clone());
        self.constraints.push(row.constraints.clone());
        self.criteria.push(row.criteria.clone());
        self.max_tokens.push(row.budget.max_tokens);
        self.max_time_seconds.push(row.budget.max_time_seconds);
        self.max_cost_usd.push(row.budget.max_cost_usd);
        self.rejection.push(row.rejection.clone());
        self.submitted_by.push(row.submitted_by.clone());
        self.idempotency_key.push(row.idempotency_key.clone());
        self.request_digest.push(row.request_digest.clone());
    }
}

#[derive(Default)]
struct StepColumns {
    task_id: Vec<Uuid>,
    owner: Vec<String>,
    index: Vec<i32>,
    name: Vec<String>,
    capability: Vec<String>,
    status: Vec<String>,
    output: Vec<Option<Value>>,
    error: Vec<Option<String>>,
    prompt_tokens: Vec<i64>,
    completion_tokens: Vec<i64>,
    cost_usd: Vec<f64>,
    simulated_llm_ms: Vec<i64>,
    started_at: Vec<DateTime<Utc>>,
    arm: Vec<Option<String>>,
}

impl StepColumns {
    fn push(&mut self, row: &StepRow) {
        let step = &row.step;
        self.task_id.push(row.task_id);
        self.owner.push(row.owner.clone());
        self.index.push(step.index);
        self.name.push(step.name.clone());
        self.capability.push(step.capability.clone());
        self.status.push(step.status.clone());
        self.output.push(step.output.clone());
        self.error.push(step.error.clone());
        self.prompt_tokens.push(step.usage.prompt_tokens);
        self.completion_tokens.push(step.usage.completion_tokens);
        self.cost_usd.push(step.usage.cost_usd);
        self.simulated_llm_ms.push(step.usage.simulated_llm_ms);
        self.started_at.push(step.started_at);
        self.arm.push(step.arm.clone());
    }
}

#[derive(Default)]
struct FinishColumns {
    task_id: Vec<Uuid>,
    owner: Vec<String>,
    status: Vec<&'static str>,
    result: Vec<Option<Value>>,
    error_kind: Vec<Option<&'static str>>,
    error: Vec<Option<String>>,
}

impl FinishColumns {
    fn push(&mut self, row: &FinishRow) {
        self.task_id.push(row.task_id);
        self.owner.push(row.owner.clone());
        self.status.push(row.status);
        self.result.push(row.result.clone());
        self.error_kind.push(row.error_kind);
        self.error.push(row.error.clone());
    }
}

/// One group commit: new tasks (with their `created`/`rejected` event),
/// finished steps of tasks still held by their owner (with the task's usage),
/// and terminal states of tasks still held (with their `finished` event and
/// the `pg_notify`), each part from its column arrays, all in one
/// statement and so one transaction. Answers `('i', id, created_at)`,
/// `('s', task_id, step_index)` and `('f', id, age)` per row written.
const GROUP_COMMIT_SQL: &str = "WITH
new_task AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int2[], $4::text[], $5::text[], $6::jsonb[],
                         $7::jsonb[], $8::int4[], $9::int4[], $10::float8[], $11::text[],
                         $32::text[], $33::text[], $34::bytea[])
        AS n(id, task_type, priority, goal, context, constraints, criteria, max_tokens,
             max_time_seconds, max_cost_usd, rejection, submitted_by, idempotency_key,
             request_digest)),
-- Tasks without an idempotency key take the plain insert; only keyed ones
-- pay for ON CONFLICT's speculative insertion. A keyed task whose key is
-- taken is not inserted, and its writer is told so.
inserted_plain AS (
    INSERT INTO tasks (id, status, task_type, priority, goal, context, constraints,
        acceptance_criteria, max_tokens, max_time_seconds, max_cost_usd, error_kind, error, finished_at,
        submitted_by)
    SELECT id, CASE WHEN rejection IS NULL THEN 'queued' ELSE 'rejected' END, task_type, priority,
        goal, context, constraints, criteria, max_tokens, max_time_seconds, max_cost_usd,
        CASE WHEN rejection IS NULL THEN NULL ELSE 'rejected' END, rejection,
        CASE WHEN rejection IS NULL THEN NULL ELSE now() END, submitted_by
    FROM new_task WHERE idempotency_key IS NULL
    RETURNING id, status, created_at),
inserted_keyed AS (
    INSERT INTO tasks (id, status, task_type, priority, goal, context, constraints,
        acceptance_criteria, max_tokens, max_time_seconds, max_cost_usd, error_kind, error, finished_at,
        submitted_by, idempotency_key, request_digest)
    SELECT id, CASE WHEN rejection IS NULL THEN 'queued' ELSE 'rejected' END, task_type, priority,
        goal, context, constraints, criteria, max_tokens, max_time_seconds, max_cost_usd,
        CASE WHEN rejection IS NULL THEN NULL ELSE 'rejected' END, rejection,
        CASE WHEN rejection IS NULL THEN NULL ELSE now() END, submitted_by, idempotency_key,
        request_digest
    FROM new_task WHERE idempotency_key IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING id, status, created_at),
inserted AS (SELECT * FROM inserted_plain UNION ALL SELECT * FROM inserted_keyed),
created_events AS (
    INSERT INTO task_events (task_id, kind)
    SELECT id, CASE WHEN status = 'rejected' THEN 'rejected' ELSE 'created' END FROM inserted),
step AS (
    SELECT * FROM unnest($12::uuid[], $13::text[], $14::int4[], $15::text[], $16::text[], $17::text[],
                         $18::jsonb[], $19::text[], $20::int8[], $21::int8[], $22::float8[],
                         $23::int8[], $24::timestamptz[], $25::text[])
        AS s(task_id, owner, step_index, name, capability, status, output, error, prompt_tokens,
             completion_tokens, cost_usd, simulated_llm_ms, started_at, arm)),
stored_step AS (
    INSERT INTO task_steps (task_id, step_index, name, capability, status, output, error,
        prompt_tokens, completion_tokens, cost_usd, simulated_llm_ms, started_at, arm)
    SELECT s.task_id, s.step_index, s.name, s.capability, s.status, s.output, s.error,
        s.prompt_tokens, s.completion_tokens, s.cost_usd, s.simulated_llm_ms, s.started_at, s.arm
    FROM step s
    WHERE EXISTS (SELECT 1 FROM tasks t
                  WHERE t.id = s.task_id AND t.lease_owner = s.owner AND t.status = 'running')
    ON CONFLICT (task_id, step_index) DO NOTHING
    RETURNING task_id, step_index),
finishing AS (
    SELECT * FROM unnest($26::uuid[], $27::text[], $28::text[], $29::jsonb[], $30::text[], $31::text[])
        AS f(id, owner, status, result, error_kind, error)),
finished AS (
    UPDATE tasks t SET status = f.status, result = f.result, error_kind = f.error_kind,
        error = f.error, finished_at = now(), updated_at = now(), lease_owner = NULL,
        lease_expires_at = NULL, prompt_tokens = u.prompt_tokens,
        completion_tokens = u.completion_tokens, cost_usd = u.cost_usd,
        simulated_llm_ms = u.simulated_llm_ms
    FROM finishing f
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(prompt_tokens), 0)::int8 AS prompt_tokens,
               coalesce(sum(completion_tokens), 0)::int8 AS completion_tokens,
               coalesce(sum(cost_usd), 0)::float8 AS cost_usd,
               coalesce(sum(simulated_llm_ms), 0)::int8 AS simulated_llm_ms
        FROM task_steps WHERE task_id = f.id) u
    WHERE t.id = f.id AND t.lease_owner = f.owner AND t.status = 'running'
    RETURNING t.id, t.status, t.error_kind, extract(epoch FROM now() - t.created_at)::float8 AS age),
finished_events AS (
    INSERT INTO task_events (task_id, kind, detail)
    SELECT id, 'finished', jsonb_build_object('status', status, 'error_kind', error_kind)
    FROM finished)
SELECT 'i'::text AS kind, id, NULL::int4 AS step_index, created_at, NULL::float8 AS age
FROM inserted
UNION ALL
SELECT 's', task_id, step_index, NULL, NULL FROM stored_step
UNION ALL
SELECT 'f', id, NULL, NULL, age
FROM (SELECT id, age, pg_notify('octollm_task_done', id::text) FROM finished) AS announced";

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
