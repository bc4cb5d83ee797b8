//! Bearer-token authentication for APIs, admin endpoints and service-to-service calls.
//!
//! Tokens come from the environment or a file, never from the repository. The
//! comparison hashes both sides first, so its time does not depend on how many
//! leading bytes of a guess are right.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::Problem;
use crate::metrics::ServiceMetrics;

/// Label values of `octollm_auth_failures_total{reason}`.
pub const FAILURE_REASONS: [&str; 3] = ["missing", "malformed", "invalid"];

/// The set of accepted bearer tokens (several, so tokens can be rotated).
#[derive(Clone)]
pub struct BearerTokens {
    digests: Arc<Vec<[u8; 32]>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no API token configured: set OCTOLLM_API_TOKEN or --api-token-file")]
    Missing,
    #[error("API token file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("API token is shorter than 16 characters")]
    TooShort,
}

impl std::fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BearerTokens({} token(s), redacted)", self.digests.len())
    }
}

impl BearerTokens {
    pub fn new<I, S>(tokens: I) -> Result<Self, TokenError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut digests = Vec::new();
        for token in tokens {
            let token = token.as_ref().trim();
            if token.is_empty() {
                continue;
            }
            if token.len() < 16 {
                return Err(TokenError::TooShort);
            }
            digests.push(digest(token));
        }
        if digests.is_empty() {
            return Err(TokenError::Missing);
        }
        Ok(Self {
            digests: Arc::new(digests),
        })
    }

    /// Tokens from `inline` (comma separated) and/or one token per line of `file`.
    pub fn load(inline: Option<&str>, file: Option<&Path>) -> Result<Self, TokenError> {
        let mut tokens: Vec<String> = inline
            .into_iter()
            .flat_map(|s| s.split(','))
            .map(str::to_owned)
            .collect();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| TokenError::Unreadable {
                path: path.display().to_string(),
                source,
            })?;
            tokens.extend(text.lines().map(str::to_owned));
        }
        Self::new(tokens)
    }

    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        // Check every digest so timing does not reveal which one matched.
        self.digests
            .iter()
            .fold(false, |matched, known| matched | (*known == presented))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Clone)]
pub(crate) struct AuthState {
    pub tokens: BearerTokens,
    pub metrics: ServiceMetrics,
}

pub(crate) async fn require_bearer(
    State(auth): State<AuthState>,
    request: Request,
    next: Next,
) -> Response {
    let header = request.headers().get(AUTHORIZATION);
    let outcome = match header.map(|h| h.to_str()) {
        None => Err(("missing", "missing `Authorization: Bearer <token>` header")),
        Some(Err(_)) => Err(("malformed", "Authorization header is not valid ASCII")),
        Some(Ok(value)) => match value.strip_prefix("Bearer ") {
            None => Err((
                "malformed",
                "Authorization header must use the Bearer scheme",
            )),
            Some(token) if auth.tokens.accepts(token.trim()) => Ok(()),
            Some(_) => Err(("invalid", "bearer token is not valid")),
        },
    };
    match outcome {
        Ok(()) => next.run(request).await,
        Err((reason, detail)) => {
            auth.metrics.auth_failed(reason);
            tracing::warn!(reason, path = request.uri().path(), "authentication failed");
            Problem::unauthorized(detail).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens() {
        let tokens = BearerTokens::new(["first-token-0123456", "second-token-012345"]).unwrap();
        assert!(tokens.accepts("first-token-0123456"));
        assert!(tokens.accepts("second-token-012345"));
        assert!(!tokens.accepts("first-token-012345"));
        assert!(!tokens.accepts(""));
    }

    #[test]
    fn refuses_empty_and_short_tokens() {
        assert!(matches!(
            BearerTokens::new(["", "  "]),
            Err(TokenError::Missing)
        ));
        assert!(matches!(
            BearerTokens::new(["short"]),
            Err(TokenError::TooShort)
        ));
    }

    #[test]
    fn debug_never_shows_tokens() {
        let tokens = BearerTokens::new(["secret-token-0123456789"]).unwrap();
        assert!(!format!("{tokens:?}").contains("secret"));
    }
}
