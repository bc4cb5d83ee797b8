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

/// Who made an authenticated request: a stable name for the bearer token it
/// presented that reveals nothing about the token. The kit's auth layer puts
/// one in the request's extensions (`axum::Extension<Caller>`), so a service
/// can key per-client state (rate limits, screening buckets) on it without
/// ever holding the token.
///
/// The id is `bearer-` and the first 16 hex digits (64 bits) of
/// SHA-256(`octollm-caller-v1:` + token); rotating a token gives its holder
/// a new id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    id: String,
}

impl Caller {
    pub fn of_token(token: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"octollm-caller-v1:")
            .chain_update(token.as_bytes())
            .finalize();
        let mut id = String::with_capacity(7 + 16);
        id.push_str("bearer-");
        for byte in &digest[..8] {
            id.push_str(&format!("{byte:02x}"));
        }
        Self { id }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Clone)]
pub(crate) struct AuthState {
    pub tokens: BearerTokens,
    pub metrics: ServiceMetrics,
}

pub(crate) async fn require_bearer(
    State(auth): State<AuthState>,
    mut request: Request,
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
            Some(token) if auth.tokens.accepts(token.trim()) => Ok(Caller::of_token(token.trim())),
            Some(_) => Err(("invalid", "bearer token is not valid")),
        },
    };
    match outcome {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
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
    fn caller_ids_are_a_fixed_function_of_the_token() {
        // xtask computes the same id for the stack's token (its reflex tier);
        // it pins the same vector.
        assert_eq!(
            Caller::of_token("integration-test-token").id(),
            "bearer-b2fface26478a4f3"
        );
    }

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
    fn caller_ids_are_stable_distinct_and_reveal_no_token() {
        let token = "first-token-0123456";
        let id = Caller::of_token(token);
        assert_eq!(id, Caller::of_token(token));
        assert_ne!(id, Caller::of_token("second-token-012345"));
        assert!(id.id().starts_with("bearer-"));
        assert_eq!(id.id().len(), 7 + 16);
        assert!(!id.id().contains(token) && !id.id().contains("first"));
        // Not the plain digest the token check compares either.
        let plain: String = digest(token)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!id.id().ends_with(&plain));
    }

    #[test]
    fn debug_never_shows_tokens() {
        let tokens = BearerTokens::new(["secret-token-0123456789"]).unwrap();
        assert!(!format!("{tokens:?}").contains("secret"));
    }
}
