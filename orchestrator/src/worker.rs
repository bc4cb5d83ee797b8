//! `WorkerPool`: claims queued tasks and runs them, at most `workers` at once.
//!
//! Claims use `FOR UPDATE SKIP LOCKED`. A replica holds its tasks through one
//! lease of its own (a `task_owners` row) that a keeper renews; a sweeper
//! requeues the tasks of a replica whose lease expired, so the tasks of a
//! crashed replica resume (at their next unfinished step) elsewhere or after
//! restart. Every write of a task's progress is conditional on its owner, so
//! a replica that lost its lease cannot overwrite the new owner's work.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::metrics::TaskMetrics;
use crate::pipeline::{BudgetMeter, StepContext, StepError, StepExecutor};
use crate::store::{Outcome, StepRecord, StoreError, TaskRecord, TaskStore};

/// Most tasks claimed in one query.
const CLAIM_BATCH: usize = 32;
/// How often an idle worker pool looks for work queued by other replicas.
const IDLE_POLL: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum StopReason {
    Cancelled,
    LeaseLost,
}

struct Running {
    stop: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

/// How much work a replica takes on, and how it holds it.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Tasks run at once.
    pub workers: usize,
    /// How long this replica's tasks stay ours without a renewal.
    pub lease: Duration,
    /// A task claimed more often than this is failed as abandoned.
    pub max_attempts: i32,
}

pub struct WorkerPool {
    store: TaskStore,
    executor: Arc<dyn StepExecutor>,
    metrics: TaskMetrics,
    /// Identifies this replica in leases: host, pid and a random suffix.
    owner: String,
    workers: usize,
    lease: Duration,
    max_attempts: i32,
    /// Poked when a task is submitted to this replica.
    wake: Arc<Notify>,
    running: Mutex<HashMap<Uuid, Running>>,
}

/// Why a run stopped without an outcome to record.
enum Abandoned {
    LeaseLost,
    Store(StoreError),
}

impl WorkerPool {
    pub fn new(
        store: TaskStore,
        executor: Arc<dyn StepExecutor>,
        metrics: TaskMetrics,
        settings: WorkerSettings,
        wake: Arc<Notify>,
    ) -> Arc<Self> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        let owner = format!(
            "{host}:{}:{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        Arc::new(Self {
            store,
            executor,
            metrics,
            owner,
            workers: settings.workers.max(1),
            lease: settings.lease,
            max_attempts: settings.max_attempts,
            wake,
            running: Mutex::default(),
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims and runs tasks until `shutdown`; then hands unfinished tasks back.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // Our lease first: claims need it.
        let mut backoff = Duration::from_millis(100);
        while let Err(error) = self.store.renew_owner(&self.owner, self.lease).await {
            tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "cannot take this replica's task lease");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        tracing::info!(owner = %self.owner, workers = self.workers, "worker pool started");
        tokio::spawn(self.clone().keep_leases(shutdown.clone()));
        let slots = Arc::new(Semaphore::new(self.workers));
        loop {
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = shutdown.cancelled() => break,
            };
            // Tasks finish in groups (one group commit records several
            // outcomes): let the others give back their slots too, so one
            // claim serves them all.
            tokio::task::yield_now().await;
            let mut permits = vec![first];
            while permits.len() < CLAIM_BATCH {
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            let asked = permits.len();
            let limit = i64::try_from(asked).unwrap_or(1);
            match self.store.claim(&self.owner, limit).await {
                Ok(claimed) => {
                    backoff = Duration::from_millis(100);
                    // Fewer tasks than asked for: the queue was empty. Asking
                    // again as each slot frees would find nothing; wait for a
                    // submission (or the idle poll, for other replicas' work).
                    let idle = claimed.len() < asked;
                    for (task, steps) in claimed {
                        let Some(permit) = permits.pop() else { break };
                        let pool = self.clone();
                        let shutdown = shutdown.clone();
                        let span = tracing::info_span!("task", task_id = %task.id, task_type = task.task_type.as_str(), attempt = task.attempts);
                        tokio::spawn(
                            async move {
                                pool.run_task(task, steps, shutdown).await;
                                drop(permit);
                            }
                            .instrument(span),
                        );
                    }
                    drop(permits);
                    if idle {
                        tokio::select! {
                            () = self.wake.notified() => {}
                            () = tokio::time::sleep(IDLE_POLL) => {}
                            () = shutdown.cancelled() => break,
                        }
                    }
                }
                Err(error) => {
                    drop(permits);
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "cannot claim tasks");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // In-flight runs see `shutdown` too and hand their tasks back.
        let _ = slots
            .acquire_many(u32::try_from(self.workers).unwrap_or(u32::MAX))
            .await;
        if let Err(error) = self.store.retire_owner(&self.owner).await {
            tracing::warn!(%error, "cannot give up this replica's lease; it expires on its own");
        }
        tracing::info!("worker pool stopped");
    }

    /// Renews our lease every third of a lease, stops runs whose task was
    /// cancelled or taken away, and requeues the tasks of replicas whose
    /// lease expired.
    async fn keep_leases(self: Arc<Self>, shutdown: CancellationToken) {
        // One row a renewal, however many tasks run (a row per task was
        // 1,000 row versions a second with 10,000 tasks in flight). Cancel
        // requests are looked for every second, in an index of the few.
        let renew_every = self.lease / 3;
        let mut tick = tokio::time::interval(renew_every.min(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewed_at = tokio::time::Instant::now();
        let mut orphans_swept_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if renewed_at.elapsed() >= renew_every {
                // The tasks running before the renewal: one claimed since was
                // claimed under the renewed lease.
                let ids: Vec<Uuid> = self.running().keys().copied().collect();
                match self.store.renew_owner(&self.owner, self.lease).await {
                    Ok(continuous) => {
                        renewed_at = tokio::time::Instant::now();
                        if !continuous {
                            self.stop_lost_runs(&ids).await;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot renew this replica's task lease"),
                }
            }
            if !self.running().is_empty() {
                match self.store.cancel_requests(&self.owner).await {
                    Ok(ids) => self.stop_runs(ids.iter(), StopReason::Cancelled),
                    Err(error) => tracing::debug!(%error, "cannot look for cancel requests"),
                }
            }
            let orphans = orphans_swept_at.elapsed() >= self.lease;
            if orphans {
                orphans_swept_at = tokio::time::Instant::now();
            }
            match self.store.requeue_expired(orphans).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(
                        requeued = n,
                        "requeued tasks whose replica stopped renewing its lease"
                    );
                    self.wake.notify_one();
                }
                Err(error) => tracing::debug!(%error, "cannot sweep expired leases"),
            }
        }
    }

    /// After our lease lapsed: stops the runs of those of `ids` a sweep
    /// requeued (another replica may be running them now).
    async fn stop_lost_runs(&self, ids: &[Uuid]) {
        tracing::warn!(
            "this replica's task lease had lapsed; keeping only the tasks no sweep requeued"
        );
        match self.store.held_leases(&self.owner, ids).await {
            Ok(held) => {
                let held: HashSet<Uuid> = held.into_iter().collect();
                self.stop_runs(
                    ids.iter().filter(|id| !held.contains(id)),
                    StopReason::LeaseLost,
                );
            }
            Err(error) => tracing::warn!(%error, "cannot tell which tasks are still ours"),
        }
    }

    /// Stops the runs of `ids` that are still running here, saying why.
    fn stop_runs<'a>(&self, ids: impl Iterator<Item = &'a Uuid>, reason: StopReason) {
        let running = self.running();
        for run in ids.filter_map(|id| running.get(id)) {
            *run.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
            run.stop.cancel();
        }
    }

    async fn run_task(
        &self,
        task: TaskRecord,
        steps: Vec<StepRecord>,
        shutdown: CancellationToken,
    ) {
        let id = task.id;
        let task_type = task.task_type.as_str();
        let stop = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        self.running().insert(
            id,
            Running {
                stop: stop.clone(),
                reason: reason.clone(),
            },
        );
        self.metrics
            .in_progress
            .with_label_values(&[task_type])
            .inc();
        tracing::info!(resumed_steps = steps.len(), "task started");

        let time_left = task
            .deadline_at
            .and_then(|d| (d - Utc::now()).to_std().ok())
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + time_left;
        let budget_secs = task.budget.max_time_seconds;
        let outcome = if task.attempts > self.max_attempts {
            Some(Outcome::Failed {
                kind: "abandoned",
                message: format!(
                    "gave up after {} attempts: the workers running this task kept stopping",
                    self.max_attempts
                ),
            })
        } else if task.cancel_requested {
            Some(Outcome::Cancelled)
        } else {
            tokio::select! {
                result = tokio::time::timeout_at(deadline, self.execute(&task, steps, deadline)) => match result {
                    Ok(Ok(outcome)) => Some(outcome),
                    Ok(Err(Abandoned::LeaseLost)) => {
                        tracing::warn!("lease lost; another worker owns this task now");
                        None
                    }
                    Ok(Err(Abandoned::Store(error))) => {
                        tracing::warn!(%error, "cannot persist progress; the task resumes when its lease expires");
                        None
                    }
                    Err(_) => Some(Outcome::Timeout {
                        message: format!("task exceeded its time budget of {budget_secs}s"),
                    }),
                },
                () = stop.cancelled() => {
                    match *reason.lock().unwrap_or_else(PoisonError::into_inner) {
                        Some(StopReason::Cancelled) => Some(Outcome::Cancelled),
                        _ => None,
                    }
                }
                () = shutdown.cancelled() => {
                    match self.store.release(&self.owner, &[id]).await {
                        Ok(_) => tracing::info!("shutting down: task handed back to the queue"),
                        Err(error) => tracing::warn!(%error, "shutting down: task resumes when its lease expires"),
                    }
                    None
                }
            }
        };
        if let Some(outcome) = outcome {
            self.record_outcome(&task, &outcome).await;
        }
        self.running().remove(&id);
        self.metrics
            .in_progress
            .with_label_values(&[task_type])
            .dec();
    }

    /// Runs the unfinished steps, batch by batch as the executor releases
    /// them (a batch's steps run in parallel), persisting each as it
    /// finishes; the first failure fails the task.
    async fn execute(
        &self,
        task: &TaskRecord,
        mut done: Vec<StepRecord>,
        deadline: tokio::time::Instant,
    ) -> Result<Outcome, Abandoned> {
        // A step that failed before a crash already decided the task: end it
        // with that step's own error (re-running it would collide with its
        // record), not as abandoned.
        if let Some(step) = done.iter().find(|s| s.status == "failed") {
            let kind = step
                .output
                .as_ref()
                .and_then(|o| o["error_kind"].as_str())
                .map_or("step_failed", StepError::kind_named);
            return Ok(Outcome::Failed {
                kind,
                message: format!(
                    "step `{}` failed: {}",
                    step.name,
                    step.error.as_deref().unwrap_or("no message recorded")
                ),
            });
        }
        let mut meter = BudgetMeter::new(task.budget, task.usage);
        loop {
            let batch = match self.executor.next_steps(task, &done) {
                Ok(batch) => batch,
                Err(error) => return Ok(failed(&error, None)),
            };
            if batch.is_empty() {
                break;
            }
            if let Err(error) = meter.check_before_step() {
                return Ok(failed(&error, None));
            }
            // The batch sees the steps finished before it, and the budget as it was.
            let previous = done.clone();
            let batch_meter = meter.clone();
            let mut running: FuturesUnordered<_> = batch
                .iter()
                .map(|spec| {
                    let started_at = Utc::now();
                    self.executor
                        .execute(
                            spec,
                            StepContext {
                                task,
                                previous: &previous,
                                budget: &batch_meter,
                                deadline,
                            },
                        )
                        .map(move |result| (spec, started_at, result))
                        .instrument(
                            tracing::info_span!("step", step = %spec.name, index = spec.index),
                        )
                })
                .collect();
            while let Some((spec, started_at, result)) = running.next().await {
                let (record, failure) = match result {
                    Ok(step) => {
                        meter.add(step.usage);
                        let record = StepRecord {
                            index: spec.index,
                            name: spec.name.clone(),
                            capability: spec.capability.clone(),
                            status: "succeeded".into(),
                            output: Some(step.output),
                            error: None,
                            usage: step.usage,
                            arm: step.arm,
                            started_at,
                            finished_at: Utc::now(),
                        };
                        (record, None)
                    }
                    Err(error) => {
                        let record = StepRecord {
                            index: spec.index,
                            name: spec.name.clone(),
                            capability: spec.capability.clone(),
                            status: "failed".into(),
                            // Kept so a resume after a crash ends the task
                            // with this kind.
                            output: Some(serde_json::json!({ "error_kind": error.kind() })),
                            error: Some(error.to_string()),
                            usage: Default::default(),
                            arm: None,
                            started_at,
                            finished_at: Utc::now(),
                        };
                        (record, Some(error))
                    }
                };
                if !self
                    .store
                    .record_step(task.id, &self.owner, &record)
                    .await
                    .map_err(Abandoned::Store)?
                {
                    return Err(Abandoned::LeaseLost);
                }
                tracing::info!(step = %record.name, index = record.index, arm = record.arm.as_deref(), status = %record.status, tokens = record.usage.total_tokens(), "step finished");
                if let Some(error) = failure {
                    return Ok(failed(&error, Some(&record.name)));
                }
                done.push(record);
                if let Err(error) = meter.check_after_step() {
                    return Ok(failed(&error, None));
                }
            }
        }
        Ok(Outcome::Succeeded {
            result: self.executor.result(task, &done),
        })
    }

    /// Commits the terminal state, retrying briefly: the outcome cost money.
    async fn record_outcome(&self, task: &TaskRecord, outcome: &Outcome) {
        let status = outcome.status().as_str();
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=5 {
            match self.store.finish(task.id, &self.owner, outcome).await {
                Ok(Some(age_secs)) => {
                    let task_type = task.task_type.as_str();
                    self.metrics
                        .completed
                        .with_label_values(&[task_type, status])
                        .inc();
                    self.metrics
                        .duration
                        .with_label_values(&[task_type])
                        .observe(age_secs);
                    match outcome {
                        Outcome::Succeeded { .. } => tracing::info!(status, "task finished"),
                        Outcome::Failed { kind, message } => {
                            tracing::warn!(status, error_kind = kind, error = %message, "task finished")
                        }
                        Outcome::Timeout { message } => {
                            tracing::warn!(status, error = %message, "task finished")
                        }
                        Outcome::Cancelled => tracing::info!(status, "task finished"),
                    }
                    return;
                }
                Ok(None) => {
                    tracing::warn!("task no longer ours; outcome dropped");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, "cannot record task outcome yet");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        tracing::error!(
            "giving up on recording the outcome; the task re-runs when its lease expires"
        );
    }
}

/// The outcome of a task stopped by `error` (in step `step`, if one ran).
fn failed(error: &StepError, step: Option<&str>) -> Outcome {
    Outcome::Failed {
        kind: error.kind(),
        message: match step {
            Some(step) => format!("step `{step}` failed: {error}"),
            None => error.to_string(),
        },
    }
}
