//! A small in-process stand-in for the orchestrator's task API, shaped like
//! `orchestrator/src/api.rs`: `POST /v1/tasks` → 202 `{task_id, status}`
//! with a Location header (`rejected` at once for injection texts, else
//! `queued`), 429 with Retry-After when told to, `GET /v1/tasks/{id}?wait=N`
//! → the task view (long-polling until terminal), 404 problem+json for an
//! unknown id, 401 for a wrong token. Knobs let a test forget a task, stall
//! every answer, cap throughput or fail submissions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

pub const TOKEN: &str = "test-token-0123456789";

#[derive(Default)]
pub struct Knobs {
    /// Forget this acknowledged task (1-based) once it has been reported terminal.
    pub forget_nth: Option<u64>,
    /// How long a task runs.
    pub task_time: Duration,
    /// Tasks finish at most this many per second (0 = no cap).
    pub capacity_per_s: f64,
    /// Mirror tasks into a `tasks (id uuid, status text)` table, as the
    /// orchestrator's store does.
    pub db: Option<Arc<tokio_postgres::Client>>,
    /// Never write this acknowledged task (1-based) to the table.
    pub db_skip_nth: Option<u64>,
    /// Leave this task's row `queued` when it succeeds.
    pub db_stale_nth: Option<u64>,
}

struct Task {
    status: &'static str,
    done_at: Instant,
    forget: bool,
    n: u64,
}

pub struct FakeState {
    knobs: Knobs,
    tasks: Mutex<HashMap<String, Task>>,
    acked: AtomicU64,
    last_done: Mutex<Option<Instant>>,
    stall_until: Mutex<Option<Instant>>,
    /// Answer the next N submissions 429.
    pub reject_next: AtomicU64,
    /// Answer every submission 503.
    pub fail_submits: AtomicBool,
    pub submissions: AtomicU64,
}

impl FakeState {
    /// Every answer waits until `now + d`.
    pub fn stall_for(&self, d: Duration) {
        *self.stall_until.lock().unwrap() = Some(Instant::now() + d);
    }

    async fn stall(&self) {
        let until = *self.stall_until.lock().unwrap();
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

pub struct Fake {
    pub url: String,
    pub state: Arc<FakeState>,
}

pub async fn start(knobs: Knobs) -> Fake {
    let state = Arc::new(FakeState {
        knobs,
        tasks: Mutex::new(HashMap::new()),
        acked: AtomicU64::new(0),
        last_done: Mutex::new(None),
        stall_until: Mutex::new(None),
        reject_next: AtomicU64::new(0),
        fail_submits: AtomicBool::new(false),
        submissions: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route("/v1/tasks", post(submit))
        .route("/v1/tasks/{id}", get(task))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fake {
        url: format!("http://{addr}"),
        state,
    }
}

fn problem(status: StatusCode, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        Json(json!({"type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "detail": detail})),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submit {
    goal: String,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    task_type: Option<String>,
    #[serde(default)]
    budget: Option<serde_json::Value>,
}

async fn submit(
    State(s): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    s.stall().await;
    if !authorized(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    s.submissions.fetch_add(1, Ordering::Relaxed);
    let Ok(submission) = serde_json::from_slice::<Submit>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "malformed JSON");
    };
    let priority_ok = submission
        .priority
        .as_deref()
        .is_none_or(|p| ["low", "medium", "high", "critical"].contains(&p));
    let type_ok = submission
        .task_type
        .as_deref()
        .is_none_or(|t| ["general", "code", "research", "analysis"].contains(&t));
    let budget_ok = submission
        .budget
        .as_ref()
        .is_none_or(serde_json::Value::is_object);
    if submission.goal.trim().is_empty() || !priority_ok || !type_ok || !budget_ok {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "a field is out of bounds");
    }
    if s.fail_submits.load(Ordering::Relaxed) {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the task database is unavailable",
        );
    }
    if s.reject_next
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        let mut response = problem(StatusCode::TOO_MANY_REQUESTS, "the task queue is full");
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return response;
    }
    let id = uuid::Uuid::new_v4().to_string();
    let n = s.acked.fetch_add(1, Ordering::Relaxed) + 1;
    let rejected = submission.goal.contains("ignore all previous instructions");
    let now = Instant::now();
    let done_at = if rejected {
        now
    } else if s.knobs.capacity_per_s > 0.0 {
        let mut last = s.last_done.lock().unwrap();
        let slot = Duration::from_secs_f64(1.0 / s.knobs.capacity_per_s);
        let at = last.map_or(now, |l| (l + slot).max(now)) + s.knobs.task_time;
        *last = Some(at - s.knobs.task_time);
        at
    } else {
        now + s.knobs.task_time
    };
    let status = if rejected { "rejected" } else { "queued" };
    s.tasks.lock().unwrap().insert(
        id.clone(),
        Task {
            status,
            done_at,
            forget: s.knobs.forget_nth == Some(n),
            n,
        },
    );
    if let Some(db) = &s.knobs.db
        && s.knobs.db_skip_nth != Some(n)
    {
        db.execute(
            "INSERT INTO tasks (id, status) VALUES ($1::text::uuid, $2)",
            &[&id, &status],
        )
        .await
        .unwrap();
    }
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/tasks/{id}"))],
        Json(json!({"task_id": id, "status": status})),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wait {
    wait: Option<u64>,
}

async fn task(
    State(s): State<Arc<FakeState>>,
    Path(id): Path<String>,
    Query(q): Query<Wait>,
    headers: HeaderMap,
) -> Response {
    s.stall().await;
    if !authorized(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let deadline = Instant::now() + Duration::from_secs(q.wait.unwrap_or(0).min(30));
    loop {
        let (status, finished_n) = {
            let mut tasks = s.tasks.lock().unwrap();
            let Some(task) = tasks.get_mut(&id) else {
                return problem(StatusCode::NOT_FOUND, &format!("no task {id}"));
            };
            let mut finished_n = None;
            if task.status == "queued" && Instant::now() >= task.done_at {
                task.status = "succeeded";
                finished_n = Some(task.n);
            }
            let (status, forget) = (task.status, task.forget);
            if forget && status != "queued" {
                // Reported terminal once; from now on the task is gone.
                tasks.remove(&id);
            }
            (status, finished_n)
        };
        if let (Some(db), Some(n)) = (&s.knobs.db, finished_n)
            && s.knobs.db_stale_nth != Some(n)
        {
            db.execute(
                "UPDATE tasks SET status = 'succeeded' WHERE id = $1::text::uuid",
                &[&id],
            )
            .await
            .unwrap();
        }
        if status != "queued" || Instant::now() >= deadline {
            return Json(json!({
                "task_id": id, "status": status, "task_type": "general", "priority": "medium",
                "goal": "…", "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost_usd": 0.0},
                "result": null, "error": null, "cancel_requested": false, "attempts": 1, "steps": []
            }))
            .into_response();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
