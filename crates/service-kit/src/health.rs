//! Liveness, readiness and deep health.
//!
//! `/health` never touches dependencies. `/ready` runs every [`DependencyCheck`]
//! and answers 503 with the reasons when a required one fails. `/health/deep`
//! (behind auth) reports each dependency's status, latency and last error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, join_all};
use serde::Serialize;

/// How long one dependency check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency a service needs, e.g. its database pool.
pub trait DependencyCheck: Send + Sync + 'static {
    /// Stable name shown in `/ready` and `/health/deep`, e.g. `postgres`.
    fn name(&self) -> &'static str;
    /// `Ok` when usable now; `Err` says why not, without secrets.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
    /// A failing optional dependency degrades the service but keeps it ready.
    fn required(&self) -> bool {
        true
    }
}

#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Vec<Box<dyn DependencyCheck>>>,
    last_errors: Arc<Mutex<BTreeMap<&'static str, LastError>>>,
}

#[derive(Clone, Serialize)]
struct LastError {
    message: String,
    at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
pub struct DependencyReport {
    pub status: DependencyStatus,
    pub required: bool,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<LastError>,
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum DependencyStatus {
    Up,
    Degraded,
    Down,
}

impl Readiness {
    pub fn new(checks: Vec<Box<dyn DependencyCheck>>) -> Self {
        Self {
            checks: Arc::new(checks),
            last_errors: Arc::default(),
        }
    }

    /// Runs every check concurrently.
    pub async fn report(&self) -> BTreeMap<&'static str, DependencyReport> {
        let runs = self.checks.iter().map(|check| async move {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
            };
            (check, started.elapsed(), outcome)
        });
        let mut reports = BTreeMap::new();
        for (check, latency, outcome) in join_all(runs).await {
            let status = match (&outcome, check.required()) {
                (Ok(()), _) => DependencyStatus::Up,
                (Err(_), true) => DependencyStatus::Down,
                (Err(_), false) => DependencyStatus::Degraded,
            };
            let mut last_errors = self
                .last_errors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(message) = &outcome {
                last_errors.insert(
                    check.name(),
                    LastError {
                        message: message.clone(),
                        at: chrono::Utc::now(),
                    },
                );
            }
            reports.insert(
                check.name(),
                DependencyReport {
                    status,
                    required: check.required(),
                    latency_ms: latency.as_secs_f64() * 1000.0,
                    error: outcome.err(),
                    last_error: last_errors.get(check.name()).cloned(),
                },
            );
        }
        reports
    }
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process works; dependencies are not checked.")))]
pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "Every required dependency is usable."),
              (status = 503, description = "Not ready; `reasons` names each failing dependency.")))]
pub(crate) async fn ready(State(readiness): State<Readiness>) -> Response {
    let reports = readiness.report().await;
    let not_ready: BTreeMap<_, _> = reports
        .iter()
        .filter(|(_, r)| r.status == DependencyStatus::Down)
        .map(|(name, r)| (*name, r.error.clone().unwrap_or_default()))
        .collect();
    if not_ready.is_empty() {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "not_ready", "reasons": not_ready })),
        )
            .into_response()
    }
}

#[utoipa::path(get, path = "/health/deep", tag = "operations", security(("bearer" = [])),
    responses((status = 200, description = "Per-dependency status, latency and last error."),
              (status = 401, body = crate::Problem, description = "Missing or invalid bearer token.")))]
pub(crate) async fn deep(State(readiness): State<Readiness>) -> Response {
    let reports = readiness.report().await;
    let overall = if reports.values().any(|r| r.status == DependencyStatus::Down) {
        DependencyStatus::Down
    } else if reports
        .values()
        .any(|r| r.status == DependencyStatus::Degraded)
    {
        DependencyStatus::Degraded
    } else {
        DependencyStatus::Up
    };
    Json(serde_json::json!({ "status": overall, "dependencies": reports })).into_response()
}
