//! Errors of an LLM call. Their messages reach users as task errors.

use std::fmt;

/// "1 attempt" / "4 attempts".
#[derive(Debug, Clone, Copy)]
struct Attempts(u32);

impl fmt::Display for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 attempt"),
            n => write!(f, "{n} attempts"),
        }
    }
}

/// ", last failure: rate_limited" or nothing.
struct LastFailure(Option<&'static str>);

impl fmt::Display for LastFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(kind) => write!(f, " (last failure: {kind})"),
            None => Ok(()),
        }
    }
}

/// Why an LLM call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The provider kept answering 429 until the retries ran out.
    #[error("LLM provider rate-limited the call (429) after {}", Attempts(*attempts))]
    RateLimited { attempts: u32 },
    /// The provider kept answering 5xx until the retries ran out.
    #[error("LLM provider answered {status} after {}", Attempts(*attempts))]
    Server { status: u16, attempts: u32 },
    /// Every attempt hit the per-attempt timeout.
    #[error("LLM provider did not answer within the per-attempt timeout after {}", Attempts(*attempts))]
    Timeout { attempts: u32 },
    /// The caller's deadline left no room for (another) attempt.
    #[error("LLM call ran out of time (deadline reached) after {}{}", Attempts(*attempts), LastFailure(*last_failure))]
    DeadlineExceeded {
        attempts: u32,
        /// [`LlmError::kind`] of the last failed attempt, if any.
        last_failure: Option<&'static str>,
    },
    /// The provider rejected the request (4xx other than 408 and 429); not retried.
    #[error("LLM provider rejected the request with {status}: {message}")]
    Client { status: u16, message: String },
    /// A 2xx answer that is not a chat completion; not retried.
    #[error("LLM provider sent an invalid response: {0}")]
    InvalidResponse(String),
    /// The provider could not be reached (connection refused, reset, DNS, TLS, ...).
    #[error("cannot reach the LLM provider: {0}")]
    Transport(String),
    /// The client's own configuration is unusable (bad URL, price table, key file).
    #[error("invalid LLM client configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// Whether trying again may help. (The client has already retried these
    /// as far as its policy and the deadline allowed.)
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Server { .. }
                | LlmError::Timeout { .. }
                | LlmError::DeadlineExceeded { .. }
                | LlmError::Transport(_)
        )
    }

    /// A stable, low-cardinality name for metrics labels and error types.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Server { .. } => "server_error",
            LlmError::Timeout { .. } => "timeout",
            LlmError::DeadlineExceeded { .. } => "deadline_exceeded",
            LlmError::Client { .. } => "client_error",
            LlmError::InvalidResponse(_) => "invalid_response",
            LlmError::Transport(_) => "transport_error",
            LlmError::Config(_) => "config",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_clear() {
        assert_eq!(
            LlmError::Server {
                status: 500,
                attempts: 4
            }
            .to_string(),
            "LLM provider answered 500 after 4 attempts"
        );
        assert_eq!(
            LlmError::RateLimited { attempts: 1 }.to_string(),
            "LLM provider rate-limited the call (429) after 1 attempt"
        );
        assert_eq!(
            LlmError::DeadlineExceeded {
                attempts: 2,
                last_failure: Some("timeout")
            }
            .to_string(),
            "LLM call ran out of time (deadline reached) after 2 attempts (last failure: timeout)"
        );
        assert!(!LlmError::InvalidResponse("x".into()).retryable());
        assert!(LlmError::Transport("x".into()).retryable());
    }
}
