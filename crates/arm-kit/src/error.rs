//! [`ArmError`]: everything an execution can end in besides success. 4xx is
//! the request's fault (the orchestrator does not retry it), 5xx the arm's
//! (it retries, then fails over). Each variant builds its own problem+json.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use llm_client::LlmError;
use service_kit::{FieldError, Problem};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArmError {
    /// The input is not acceptable (422, one entry per field).
    #[error("invalid input: {}", fields(.0))]
    Invalid(Vec<FieldError>),
    /// The request is well formed but not allowed (403), e.g. a command
    /// outside the executor's allow-list; the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// An upstream the arm relies on failed or answered nonsense (502), e.g.
    /// the LLM provider after its retries, or two invalid plans in a row.
    #[error("{0}")]
    Upstream(String),
    /// A dependency of the arm is down (503), e.g. its database.
    #[error("{0}")]
    Unavailable(String),
    /// The request's deadline passed before the work finished (504).
    #[error("the deadline passed before the work finished")]
    DeadlineExceeded,
}

fn fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ArmError {
    /// 422 for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn problem(&self) -> Problem {
        match self {
            Self::Invalid(errors) => Problem::validation(errors.clone()),
            Self::Forbidden(reason) => {
                Problem::new(self.status(), "forbidden", "Forbidden", reason.clone())
            }
            Self::Upstream(detail) => Problem::new(
                self.status(),
                "upstream-failed",
                "Upstream failed",
                detail.clone(),
            ),
            Self::Unavailable(detail) => Problem::unavailable(detail.clone(), 1),
            Self::DeadlineExceeded => Problem::new(
                self.status(),
                "deadline-exceeded",
                "Deadline exceeded",
                self.to_string(),
            ),
        }
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}

impl From<LlmError> for ArmError {
    fn from(error: LlmError) -> Self {
        match error {
            LlmError::DeadlineExceeded { .. } => Self::DeadlineExceeded,
            other => Self::Upstream(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_whose_fault_it_is() {
        assert_eq!(ArmError::invalid("input.goal", "blank").status(), 422);
        assert_eq!(ArmError::Forbidden("no".into()).status(), 403);
        assert_eq!(
            ArmError::from(LlmError::Server {
                status: 500,
                attempts: 4
            })
            .status(),
            502
        );
        assert_eq!(
            ArmError::from(LlmError::DeadlineExceeded {
                attempts: 1,
                last_failure: None
            }),
            ArmError::DeadlineExceeded
        );
        let problem = ArmError::Upstream("LLM answered nonsense".into()).problem();
        assert_eq!(
            problem.type_uri,
            "https://octollm.dev/problems/upstream-failed"
        );
        assert_eq!(problem.detail, "LLM answered nonsense");
    }
}
