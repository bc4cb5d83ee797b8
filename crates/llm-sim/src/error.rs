//! Errors in OpenAI's shape: `{"error":{"message","type","code"}}`.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// An error answer. Every error the simulator gives, real or injected, uses it.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: Option<&'static str>,
    retry_after_s: Option<u64>,
    delay_ms: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            code: None,
            retry_after_s: None,
            delay_ms: None,
        }
    }

    /// Reports the simulated delay before this answer in [`crate::DELAY_HEADER`].
    pub(crate) fn with_delay_ms(mut self, delay_ms: u64) -> Self {
        self.delay_ms = Some(delay_ms);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub(crate) fn unauthorized() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "the admin API needs the header `Authorization: Bearer <admin token>`",
        );
        e.code = Some("invalid_api_key");
        e
    }

    pub(crate) fn not_found(path: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("llm-sim serves no route {path}"),
        );
        e.code = Some("unknown_url");
        e
    }

    pub(crate) fn rate_limited(retry_after_s: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            format!(
                "Rate limit reached (simulated by llm-sim). Please try again in {retry_after_s}s."
            ),
        );
        e.code = Some("rate_limit_exceeded");
        e.retry_after_s = Some(retry_after_s);
        e
    }

    pub(crate) fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server had an error while processing your request (simulated by llm-sim).",
        )
    }

    pub(crate) fn timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "Request timed out (simulated by llm-sim).",
        )
    }

    pub(crate) fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "llm-sim is shutting down.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Detail {
                message: &self.message,
                kind: self.kind,
                code: self.code,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(ms) = self.delay_ms {
            response
                .headers_mut()
                .insert(crate::DELAY_HEADER, HeaderValue::from(ms));
        }
        response
    }
}
