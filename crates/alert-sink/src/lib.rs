//! The alert sink: where the local Alertmanager's receivers deliver.
//!
//! `POST /v1/notify/{receiver}` takes an Alertmanager webhook payload and
//! appends it, stamped with the time it arrived, as one JSON line to
//! `<dir>/<receiver>.jsonl`. Tests and `cargo xtask alert-sim` read those
//! files (or `GET /v1/notifications/{receiver}`) to prove an alert reached the
//! right receiver, and that it resolved.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use prometheus::{IntCounterVec, Opts};
use serde_json::Value;
use service_kit::{ApiJson, ApiPath, FieldError, Problem};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Receivers the local Alertmanager routes to (a closed set: metric labels).
pub const RECEIVERS: [&str; 4] = ["pagerduty", "slack", "email", "heartbeat"];

#[derive(Clone)]
pub struct Sink {
    dir: Arc<PathBuf>,
    /// Serialises appends so lines never interleave.
    write: Arc<Mutex<()>>,
    received: IntCounterVec,
}

impl Sink {
    pub fn new(dir: PathBuf, registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let received = IntCounterVec::new(
            Opts::new(
                "octollm_alert_notifications_total",
                "Alertmanager notifications recorded, by receiver and status.",
            ),
            &["receiver", "status"],
        )?;
        registry.register(Box::new(received.clone()))?;
        Ok(Self {
            dir: Arc::new(dir),
            write: Arc::default(),
            received,
        })
    }

    fn file(&self, receiver: &str) -> Result<PathBuf, Problem> {
        if RECEIVERS.contains(&receiver) {
            Ok(self.dir.join(format!("{receiver}.jsonl")))
        } else {
            Err(Problem::not_found(format!(
                "unknown receiver {receiver:?}; known: {}",
                RECEIVERS.join(", ")
            )))
        }
    }
}

pub fn router(sink: Sink) -> Router {
    Router::new()
        .route("/v1/notify/{receiver}", post(notify))
        .route("/v1/notifications/{receiver}", get(notifications))
        .with_state(sink)
}

async fn notify(
    State(sink): State<Sink>,
    ApiPath(receiver): ApiPath<String>,
    ApiJson(payload): ApiJson<Value>,
) -> Result<StatusCode, Problem> {
    let path = sink.file(&receiver)?;
    let status = payload["status"].as_str().unwrap_or_default();
    if !matches!(status, "firing" | "resolved") || !payload["alerts"].is_array() {
        return Err(Problem::validation(vec![FieldError::new(
            "status",
            "expected an Alertmanager webhook payload: status firing|resolved and an alerts array",
        )]));
    }
    let line = serde_json::json!({
        "received_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "receiver": receiver,
        "payload": payload,
    });
    let mut text = line.to_string();
    text.push('\n');
    let _guard = sink.write.lock().await;
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await
        .map_err(|e| Problem::unavailable(format!("cannot open {}: {e}", path.display()), 1))?;
    file.write_all(text.as_bytes())
        .await
        .map_err(|e| Problem::unavailable(format!("cannot write {}: {e}", path.display()), 1))?;
    sink.received.with_label_values(&[&receiver, status]).inc();
    tracing::info!(
        receiver,
        status,
        alerts = payload["alerts"].as_array().map_or(0, Vec::len),
        "notification recorded"
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn notifications(
    State(sink): State<Sink>,
    ApiPath(receiver): ApiPath<String>,
) -> Result<ApiJson<Vec<Value>>, Problem> {
    let path = sink.file(&receiver)?;
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Problem::unavailable(
                format!("cannot read {}: {e}", path.display()),
                1,
            ));
        }
    };
    Ok(ApiJson(
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
    ))
}
