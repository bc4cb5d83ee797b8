//! `ApiError`: everything the task API can answer besides success. Each
//! variant knows its status and builds its problem+json body; errors are
//! logged once, here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::{FieldError, Problem};
use uuid::Uuid;

use crate::store::StoreError;
use crate::task::TaskStatus;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request failed validation")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    BadQuery(String),
    #[error("no task {0}")]
    NotFound(Uuid),
    #[error("this client's token has no `{0}` scope")]
    MissingScope(&'static str),
    #[error("task {id} already ended as {status}")]
    AlreadyFinished { id: Uuid, status: &'static str },
    #[error("{0}")]
    BadHeader(String),
    #[error(
        "Idempotency-Key `{0}` was used for a different request; a retry must repeat the request it was first sent with"
    )]
    KeyReused(String),
    #[error("{depth} tasks queued (bound {bound})")]
    QueueFull { depth: i64, bound: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    ScreeningUnavailable(#[from] crate::screening::Unavailable),
}

impl ApiError {
    pub fn already_finished(id: Uuid, status: TaskStatus) -> Self {
        Self::AlreadyFinished {
            id,
            status: status.as_str(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Invalid(errors) => Problem::validation(errors.clone()),
            Self::BadQuery(detail) => Problem::bad_request(detail.clone()),
            Self::BadHeader(detail) => Problem::bad_request(detail.clone()),
            // 409, not the draft standard's 422: the request itself is
            // valid; it conflicts with what the key is already bound to.
            Self::KeyReused(_) => Problem::new(
                StatusCode::CONFLICT,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                self.to_string(),
            ),
            Self::NotFound(_) => Problem::not_found(self.to_string()),
            Self::MissingScope(_) => Problem::forbidden(self.to_string()),
            Self::AlreadyFinished { .. } => Problem::conflict(self.to_string()),
            Self::QueueFull { .. } => {
                tracing::warn!(error = %self, "rejecting task: queue full");
                Problem::too_many_requests(
                    format!("the task queue is full ({self}); retry later"),
                    2,
                )
            }
            Self::ScreeningUnavailable(error) => Problem::unavailable(error.to_string(), 5),
            Self::Store(error) => {
                tracing::error!(%error, "task API cannot reach the database");
                Problem::unavailable("the task database is unavailable; retry shortly", 2)
            }
        };
        problem.into_response()
    }
}
