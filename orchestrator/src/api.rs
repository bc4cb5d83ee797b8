//! The task API: `/v1/tasks`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::{ApiJson, ApiPath, ApiQuery, Scopes};
use tokio::sync::Notify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use crate::completion::CompletionFeed;
use crate::error::ApiError;
use crate::metrics::TaskMetrics;
use crate::screening::{ReflexScreen, ScreenError, Screening};
use crate::store::{
    CancelOutcome, ListCursor, StepRecord, StoreError, TaskRecord, TaskStore, Usage,
};
use crate::task::{Budget, NewTask, Priority, SubmitTask, TaskStatus, TaskType};
use crate::timeline::Timeline;

const LIST_DEFAULT_LIMIT: i64 = 50;
const LIST_MAX_LIMIT: i64 = 200;
/// Longest `?wait=` accepted, in seconds; the server cuts any wait to its
/// own `OCTOLLM_MAX_WAIT` as well.
const WAIT_MAX_SECS: u64 = 3_600;

#[derive(Clone)]
pub struct ApiState {
    pub store: TaskStore,
    pub completions: CompletionFeed,
    pub metrics: TaskMetrics,
    pub queue_bound: i64,
    /// Last known queue depth (refreshed each second, bumped on submit).
    pub queue_depth: Arc<AtomicI64>,
    pub wake_workers: Arc<Notify>,
    pub max_wait: Duration,
    /// The reflex layer, when configured.
    pub screen: Option<Arc<ReflexScreen>>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/tasks", post(submit_task).get(list_tasks))
        .route("/v1/tasks/{id}", get(get_task))
        .route("/v1/tasks/{id}/cancel", post(cancel_task))
        .route("/v1/tasks/{id}/timeline", get(get_timeline))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "OctoLLM orchestrator", description = "Submit tasks and follow them to completion."),
    paths(submit_task, get_task, get_timeline, list_tasks, cancel_task),
    components(schemas(service_kit::Problem, service_kit::FieldError)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn status_param_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some("Only tasks in this state."))
        .enum_values(Some(TaskStatus::ALL.iter().map(|s| s.as_str())))
        .build()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub task_id: Uuid,
    pub status: TaskStatus,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskError {
    /// Stable machine-readable kind, e.g. `llm_error`, `budget_exceeded`,
    /// `timeout`; with arms also `routing_error`, `step_rejected`,
    /// `invalid_plan`, `command_not_allowed`, `unsafe_output`,
    /// `acceptance_failed`, `arm_protocol_error`.
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cost_usd: f64,
    /// LLM time llm-sim reported as simulated, summed over the task's calls
    /// (0 against real providers): end-to-end time minus this is the
    /// system's own share.
    pub simulated_llm_ms: i64,
}

impl From<Usage> for UsageView {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens(),
            cost_usd: usage.cost_usd,
            simulated_llm_ms: usage.simulated_llm_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    pub task_id: Uuid,
    pub status: TaskStatus,
    pub task_type: TaskType,
    pub priority: Priority,
    pub goal: String,
    pub budget: Budget,
    pub usage: UsageView,
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<TaskError>,
    pub cancel_requested: bool,
    pub attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepRecord>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the task last changed state or was cancelled; a finished step
    /// shows in `steps` and `usage`, not here.
    pub updated_at: DateTime<Utc>,
}

impl TaskView {
    fn new(task: TaskRecord, steps: Option<Vec<StepRecord>>) -> Self {
        let error = match (task.error_kind, task.error) {
            (Some(kind), Some(message)) => Some(TaskError { kind, message }),
            _ => None,
        };
        Self {
            task_id: task.id,
            status: task.status,
            task_type: task.task_type,
            priority: task.priority,
            goal: task.goal,
            budget: task.budget,
            usage: task.usage.into(),
            result: task.result,
            error,
            cancel_requested: task.cancel_requested,
            attempts: task.attempts,
            steps,
            created_at: task.created_at,
            started_at: task.started_at,
            finished_at: task.finished_at,
            updated_at: task.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    pub tasks: Vec<TaskView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Long-poll: wait up to this many seconds (0–3,600; the server may cut
    /// it shorter) for the task to end.
    #[param(minimum = 0, maximum = 3_600)]
    pub wait: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only tasks in this state.
    #[param(schema_with = status_param_schema)]
    pub status: Option<String>,
    /// 1–200; default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page.
    #[param(pattern = "^-?[0-9]{1,16}_[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
}

/// Submit a task. It is screened by the reflex layer (everything it passes
/// on: goal, context, every list item) and committed to the database before
/// the 202. With an `Idempotency-Key`, a retry gets the task the first try
/// created (202, its current state), never a second task.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", request_body = SubmitTask,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1–255 visible ASCII characters, unique per request to this client (a UUID, say). The same key with the same request answers with the first task; with a different request, 409.",
        pattern = "^[!-~]{1,255}$", min_length = 1, max_length = 255)),
    responses(
        (status = 202, body = Accepted, description = "Durably recorded: `queued`, or `rejected` when screening blocked it; for a retried `Idempotency-Key`, the first request's task as it is now."),
        (status = 400, body = service_kit::Problem, description = "Malformed JSON, or an `Idempotency-Key` that is empty, longer than 255 characters, repeated or not visible ASCII."),
        (status = 413, body = service_kit::Problem, description = "Body too large."),
        (status = 415, body = service_kit::Problem, description = "Not JSON."),
        (status = 403, body = service_kit::Problem, description = "The token has no `submit` scope."),
        (status = 409, body = service_kit::Problem, description = "The `Idempotency-Key` was used before for a different request."),
        (status = 422, body = service_kit::Problem, description = "A field is out of bounds, blank where it must not be, holds NUL, or the reflex layer refused to screen it; `errors` names each."),
        (status = 429, body = service_kit::Problem, description = "Queue full, or this client's screening rate limit is spent; see Retry-After."),
        (status = 503, body = service_kit::Problem, description = "Database or (failing closed) reflex layer unavailable; see Retry-After.")))]
async fn submit_task(
    axum::extract::State(state): axum::extract::State<ApiState>,
    caller: Option<axum::Extension<service_kit::Caller>>,
    headers: axum::http::HeaderMap,
    ApiJson(submission): ApiJson<SubmitTask>,
) -> Result<Response, ApiError> {
    require(caller.as_deref(), Scopes::SUBMIT, "submit")?;
    let key = idempotency_key(&headers)?;
    let task = submission.validate().map_err(ApiError::Invalid)?;
    let caller = caller.as_ref().map(|c| c.0.id());
    if let Some(key) = key
        && let Some(first) = state.store.find_by_key(caller, key).await?
    {
        return replay(&task, key, first);
    }
    let depth = state.queue_depth.load(Ordering::Relaxed);
    if depth >= state.queue_bound {
        return Err(ApiError::QueueFull {
            depth,
            bound: state.queue_bound,
        });
    }
    let rejection = match &state.screen {
        Some(screen) => match screen.screen(&task.screened_fields(), caller).await {
            Ok(Screening::Rejected(reason)) => Some(reason),
            Ok(Screening::Allowed | Screening::Unscreened) => None,
            Err(ScreenError::Unavailable(unavailable)) => return Err(unavailable.into()),
            Err(ScreenError::Refused(refused)) => {
                tracing::info!(caller, ?refused, "submission refused by the reflex layer");
                return Ok(refused.into_response());
            }
        },
        None => None,
    };
    let id = Uuid::now_v7();
    if rejection.is_none() {
        // Before the commit: its announcement cannot come earlier.
        state.completions.accepted(id, caller);
    }
    let inserted = state
        .store
        .insert(id, &task, rejection.as_deref(), caller, key)
        .await
        .inspect_err(|_| state.completions.forget(id))?;
    let Some((id, _)) = inserted else {
        state.completions.forget(id);
        // Only a keyed insert comes back empty: a concurrent request with
        // this key committed first.
        let first = match key {
            Some(key) => state.store.find_by_key(caller, key).await?,
            None => None,
        };
        return match (key, first) {
            (Some(key), Some(first)) => replay(&task, key, first),
            _ => Err(StoreError::Corrupt(
                "the insert returned no row, and no task holds its key".into(),
            )
            .into()),
        };
    };
    let task_type = task.task_type.as_str();
    state
        .metrics
        .created
        .with_label_values(&[task_type, task.priority.as_str()])
        .inc();
    let status = if let Some(reason) = &rejection {
        state
            .metrics
            .completed
            .with_label_values(&[task_type, TaskStatus::Rejected.as_str()])
            .inc();
        tracing::warn!(task_id = %id, task_type, %reason, "task rejected by screening");
        TaskStatus::Rejected
    } else {
        let depth = state.queue_depth.fetch_add(1, Ordering::Relaxed) + 1;
        state.metrics.queue_depth.set(depth);
        state.wake_workers.notify_one();
        tracing::info!(task_id = %id, task_type, priority = task.priority.as_str(), caller, "task accepted");
        TaskStatus::Queued
    };
    Ok(accepted(id, status))
}

fn accepted(id: Uuid, status: TaskStatus) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/tasks/{id}"))],
        ApiJson(Accepted {
            task_id: id,
            status,
        }),
    )
        .into_response()
}

/// The `Idempotency-Key` header, if sent: 1–255 visible ASCII characters,
/// at most once.
fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key("idempotency-key") {
            true => Err(ApiError::BadHeader(
                "send Idempotency-Key at most once".into(),
            )),
            false => Ok(None),
        };
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadHeader(
            "Idempotency-Key must be 1-255 visible ASCII characters (no spaces)".into(),
        ));
    }
    Ok(value.to_str().ok())
}

/// The answer to a retry under an idempotency key: the first request's
/// task as it is now, unless the key came with a different request.
fn replay(
    task: &NewTask,
    key: &str,
    (id, status, digest): (Uuid, TaskStatus, Option<Vec<u8>>),
) -> Result<Response, ApiError> {
    if digest.is_some_and(|digest| digest != task.digest()) {
        return Err(ApiError::KeyReused(key.to_owned()));
    }
    Ok(accepted(id, status))
}

/// Fails with 403 unless `caller` has `scope` (named `name`). Without a
/// caller (the API mounted without auth, in tests) everything is allowed.
fn require(
    caller: Option<&service_kit::Caller>,
    scope: Scopes,
    name: &'static str,
) -> Result<(), ApiError> {
    match caller {
        Some(caller) if !caller.scopes().allows(scope) => Err(ApiError::MissingScope(name)),
        _ => Ok(()),
    }
}

/// Whose tasks `caller` may see: `None` (everyone's) with the `admin`
/// scope, else its own id; 403 without `scope`.
fn viewer<'a>(
    caller: Option<&'a service_kit::Caller>,
    scope: Scopes,
    name: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    require(caller, scope, name)?;
    Ok(caller
        .filter(|c| !c.scopes().allows(Scopes::ADMIN))
        .map(service_kit::Caller::id))
}

/// A task with its steps, usage and result. With `wait`, long-polls until it ends.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = Uuid, Path), WaitQuery),
    responses(
        (status = 200, body = TaskView),
        (status = 400, body = service_kit::Problem, description = "`id` is not a UUID, or `wait` is not 0–3,600."),
        (status = 403, body = service_kit::Problem, description = "The token has no `read` scope."),
        (status = 404, body = service_kit::Problem, description = "No such task, or another client's (without the `admin` scope)."),
        (status = 503, body = service_kit::Problem, description = "The database is unavailable; see Retry-After.")))]
async fn get_task(
    axum::extract::State(state): axum::extract::State<ApiState>,
    caller: Option<axum::Extension<service_kit::Caller>>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> Result<ApiJson<TaskView>, ApiError> {
    let viewer = viewer(caller.as_deref(), Scopes::READ, "read")?;
    let wait = query.wait.unwrap_or(0);
    if wait > WAIT_MAX_SECS {
        return Err(ApiError::BadQuery(format!(
            "wait must be between 0 and {WAIT_MAX_SECS} seconds"
        )));
    }
    let wait = Duration::from_secs(wait).min(state.max_wait);
    let found = if wait.is_zero() {
        state.store.get(id, viewer).await?
    } else {
        wait_until_terminal(&state, id, viewer, wait).await?
    };
    let (task, steps) = found.ok_or(ApiError::NotFound(id))?;
    Ok(ApiJson(TaskView::new(task, Some(steps))))
}

/// The task's history in time order: its transitions (created, claimed by
/// which replica as which attempt, released, lease expired, cancel
/// requested, finished) and each step with the arm instance that ran it and
/// its duration, plus the time spent queued.
#[utoipa::path(get, path = "/v1/tasks/{id}/timeline", tag = "tasks", params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Timeline),
        (status = 400, body = service_kit::Problem, description = "`id` is not a UUID."),
        (status = 403, body = service_kit::Problem, description = "The token has no `read` scope."),
        (status = 404, body = service_kit::Problem, description = "No such task, or another client's (without the `admin` scope)."),
        (status = 503, body = service_kit::Problem, description = "The database is unavailable; see Retry-After.")))]
async fn get_timeline(
    axum::extract::State(state): axum::extract::State<ApiState>,
    caller: Option<axum::Extension<service_kit::Caller>>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<Timeline>, ApiError> {
    let viewer = viewer(caller.as_deref(), Scopes::READ, "read")?;
    let (task, steps) = state
        .store
        .get(id, viewer)
        .await?
        .ok_or(ApiError::NotFound(id))?;
    let events = state.store.events(id).await?;
    Ok(ApiJson(Timeline::new(task, steps, events)))
}

async fn wait_until_terminal(
    state: &ApiState,
    id: Uuid,
    viewer: Option<&str>,
    wait: Duration,
) -> Result<Option<(TaskRecord, Vec<StepRecord>)>, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let waiter = state.completions.watch(id);
    let mut first = true;
    loop {
        let notified = waiter.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // A task its submitter just handed to us need not be read to know
        // it is still running; any later wake-up reads.
        let skip = first && waiter.known_unfinished(viewer);
        first = false;
        if !skip {
            let found = state.store.get(id, viewer).await?;
            let done = found
                .as_ref()
                .is_none_or(|(task, _)| task.status.is_terminal());
            if done || tokio::time::Instant::now() >= deadline {
                return Ok(found);
            }
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Tasks, newest first, optionally by state, a page at a time.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(ListQuery),
    responses(
        (status = 200, body = TaskPage),
        (status = 400, body = service_kit::Problem, description = "An unknown `status`, a `limit` outside 1–200, a `cursor` this API did not issue, or an unknown parameter."),
        (status = 403, body = service_kit::Problem, description = "The token has no `read` scope."),
        (status = 503, body = service_kit::Problem, description = "The database is unavailable; see Retry-After.")))]
async fn list_tasks(
    axum::extract::State(state): axum::extract::State<ApiState>,
    caller: Option<axum::Extension<service_kit::Caller>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<ApiJson<TaskPage>, ApiError> {
    let viewer = viewer(caller.as_deref(), Scopes::READ, "read")?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            TaskStatus::parse(s).ok_or_else(|| {
                let known: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::BadQuery(format!("status must be one of {}", known.join(", ")))
            })
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(LIST_DEFAULT_LIMIT);
    if !(1..=LIST_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadQuery(format!(
            "limit must be between 1 and {LIST_MAX_LIMIT}"
        )));
    }
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| {
            ListCursor::decode(c)
                .ok_or_else(|| ApiError::BadQuery("cursor is not one this API issued".into()))
        })
        .transpose()?;
    let tasks = state.store.list(status, limit, cursor, viewer).await?;
    let next_cursor = (i64::try_from(tasks.len()).unwrap_or(0) == limit)
        .then(|| tasks.last())
        .flatten()
        .map(|t| {
            ListCursor {
                created_at: t.created_at,
                id: t.id,
            }
            .encode()
        });
    Ok(ApiJson(TaskPage {
        tasks: tasks.into_iter().map(|t| TaskView::new(t, None)).collect(),
        next_cursor,
    }))
}

/// Cancel a task: a queued one at once, a running one at its next checkpoint.
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = Uuid, Path)),
    responses(
        (status = 202, body = Accepted, description = "Cancelled (`cancelled`) or being cancelled (`running`)."),
        (status = 400, body = service_kit::Problem, description = "`id` is not a UUID."),
        (status = 403, body = service_kit::Problem, description = "The token has no `submit` scope."),
        (status = 404, body = service_kit::Problem, description = "No such task, or another client's (without the `admin` scope)."),
        (status = 409, body = service_kit::Problem, description = "The task already ended."),
        (status = 503, body = service_kit::Problem, description = "The database is unavailable; see Retry-After.")))]
async fn cancel_task(
    axum::extract::State(state): axum::extract::State<ApiState>,
    caller: Option<axum::Extension<service_kit::Caller>>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let viewer = viewer(caller.as_deref(), Scopes::SUBMIT, "submit")?;
    let status = match state.store.cancel(id, viewer).await? {
        CancelOutcome::NotFound => return Err(ApiError::NotFound(id)),
        CancelOutcome::AlreadyFinished(status) => {
            return Err(ApiError::already_finished(id, status));
        }
        CancelOutcome::Cancelled(task_type) => {
            state
                .metrics
                .completed
                .with_label_values(&[task_type.as_str(), TaskStatus::Cancelled.as_str()])
                .inc();
            TaskStatus::Cancelled
        }
        CancelOutcome::Requested => TaskStatus::Running,
    };
    tracing::info!(task_id = %id, status = status.as_str(), "cancel requested");
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(Accepted {
            task_id: id,
            status,
        }),
    ))
}
