//! Liveness, readiness and deep health.
//!
//! `/health` never touches dependencies. `/ready` runs every [`DependencyCheck`]
//! and answers 503 with the reasons when a required one fails; one run at a
//! time, its verdict reused for [`READY_REUSE`], so a flood of probes costs
//! the dependencies (a database pool the workers need) one check a second.
//! `/health/deep`
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

/// How long a `/ready` verdict is answered again without checking.
pub const READY_REUSE: Duration = Duration::from_secs(1);

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
    /// The last `/ready` verdict and when it was reached; the async lock
    /// makes concurrent probes wait for one check instead of each running it.
    last_verdict: Arc<tokio::sync::Mutex<Option<(Instant, Verdict)>>>,
}

/// Not ready: each failing required dependency and why.
type Verdict = Result<(), BTreeMap<&'static str, String>>;

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
            last_verdict: Arc::default(),
        }
    }

    /// The readiness verdict, checked at most once per [`READY_REUSE`].
    pub async fn verdict(&self) -> Verdict {
        let mut last = self.last_verdict.lock().await;
        if let Some((at, verdict)) = last.as_ref()
            && at.elapsed() < READY_REUSE
        {
            return verdict.clone();
        }
        let not_ready: BTreeMap<_, _> = self
            .report()
            .await
            .into_iter()
            .filter(|(_, r)| r.status == DependencyStatus::Down)
            .map(|(name, r)| (name, r.error.unwrap_or_default()))
            .collect();
        let verdict = if not_ready.is_empty() {
            Ok(())
        } else {
            Err(not_ready)
        };
        *last = Some((Instant::now(), verdict.clone()));
        verdict
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
    match readiness.verdict().await {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(not_ready) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "not_ready", "reasons": not_ready })),
        )
            .into_response(),
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counting(Arc<AtomicUsize>);

    impl DependencyCheck for Counting {
        fn name(&self) -> &'static str {
            "counted"
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async {
                self.0.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_flood_of_ready_probes_checks_the_dependency_once() {
        let checks = Arc::new(AtomicUsize::new(0));
        let readiness = Readiness::new(vec![Box::new(Counting(checks.clone()))]);
        let probes = (0..200).map(|_| readiness.verdict());
        let verdicts = join_all(probes).await;
        assert!(verdicts.iter().all(Result::is_ok));
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        std::thread::sleep(READY_REUSE);
        assert!(readiness.verdict().await.is_ok());
        assert_eq!(
            checks.load(Ordering::SeqCst),
            2,
            "a stale verdict is checked again"
        );
    }
}
