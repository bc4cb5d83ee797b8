//! Bearer-token authentication for APIs, admin endpoints and service-to-service calls.
//!
//! Tokens come from the environment or a file, never from the repository. The
//! comparison hashes both sides first, so its time does not depend on how many
//! leading bytes of a guess are right.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::Problem;
use crate::metrics::ServiceMetrics;

/// Label values of `octollm_auth_failures_total{reason}`.
pub const FAILURE_REASONS: [&str; 3] = ["missing", "malformed", "invalid"];

/// What a token may do. A line of a token file is `TOKEN` (every scope) or
/// `TOKEN SCOPE,SCOPE…`; a service decides what each scope opens (the
/// orchestrator: `submit` tasks, `read` its own, `admin` everyone's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub const SUBMIT: Scopes = Scopes(1);
    pub const READ: Scopes = Scopes(2);
    pub const ADMIN: Scopes = Scopes(4);
    pub const ALL: Scopes = Scopes(7);
    const NAMES: [(&'static str, Scopes); 3] = [
        ("submit", Self::SUBMIT),
        ("read", Self::READ),
        ("admin", Self::ADMIN),
    ];

    /// Whether every scope of `wanted` is granted.
    pub fn allows(self, wanted: Scopes) -> bool {
        self.0 & wanted.0 == wanted.0
    }

    fn parse(list: &str) -> Result<Self, TokenError> {
        list.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .try_fold(Scopes(0), |scopes, name| {
                Self::NAMES
                    .iter()
                    .find(|(known, _)| *known == name)
                    .map(|(_, scope)| Scopes(scopes.0 | scope.0))
                    .ok_or_else(|| TokenError::UnknownScope(name.to_owned()))
            })
    }
}

/// SHA-256 digests of the accepted tokens, each with its scopes.
type TokenSet = Arc<Vec<([u8; 32], Scopes)>>;

/// The set of accepted bearer tokens (several, so tokens can be rotated).
/// Loaded from a file, it follows the file: [`BearerTokens::reload`] (run
/// on SIGHUP and every few seconds by the kit) takes the new set, so a
/// rotation is "add the new line, move the clients, drop the old line", with
/// no restart.
#[derive(Clone)]
pub struct BearerTokens {
    digests: Arc<RwLock<TokenSet>>,
    inline: Option<String>,
    file: Option<PathBuf>,
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
    #[error("unknown token scope `{0}` (known: submit, read, admin)")]
    UnknownScope(String),
}

impl std::fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BearerTokens({} token(s), redacted)",
            self.current().len()
        )
    }
}

impl BearerTokens {
    pub fn new<I, S>(tokens: I) -> Result<Self, TokenError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self {
            digests: Arc::new(RwLock::new(Arc::new(digests_of(tokens)?))),
            inline: None,
            file: None,
        })
    }

    /// Tokens from `inline` (comma separated) and/or one token per line of `file`.
    pub fn load(inline: Option<&str>, file: Option<&Path>) -> Result<Self, TokenError> {
        let tokens = Self {
            digests: Arc::default(),
            inline: inline.map(str::to_owned),
            file: file.map(Path::to_path_buf),
        };
        tokens.reload()?;
        Ok(tokens)
    }

    /// Reads the tokens again; returns whether the set changed. On an error
    /// (unreadable or empty file, short token) the old set stays in force.
    pub fn reload(&self) -> Result<bool, TokenError> {
        let mut tokens: Vec<String> = self
            .inline
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::to_owned)
            .collect();
        if let Some(path) = &self.file {
            tokens.extend(read_lines(path)?);
        }
        let fresh = digests_of(tokens)?;
        let mut current = self.digests.write().unwrap_or_else(PoisonError::into_inner);
        let changed = **current != fresh;
        if changed {
            *current = Arc::new(fresh);
        }
        Ok(changed)
    }

    fn current(&self) -> TokenSet {
        self.digests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn accepts(&self, presented: &str) -> bool {
        self.scopes_of(presented).is_some()
    }

    /// The scopes of `presented`, or `None` when it is not a known token.
    pub fn scopes_of(&self, presented: &str) -> Option<Scopes> {
        let presented = digest(presented);
        // Check every digest so timing does not reveal which one matched.
        self.current()
            .iter()
            .fold(None, |matched, (known, scopes)| {
                if *known == presented {
                    Some(*scopes)
                } else {
                    matched
                }
            })
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Unreadable {
        path: path.display().to_string(),
        source,
    })?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// `TOKEN` or `TOKEN SCOPES` per entry, blank entries skipped.
fn digests_of<I, S>(tokens: I) -> Result<Vec<([u8; 32], Scopes)>, TokenError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut digests = Vec::new();
    for entry in tokens {
        let mut fields = entry.as_ref().split_whitespace();
        let Some(token) = fields.next() else {
            continue;
        };
        let scopes = match fields.next() {
            Some(list) => Scopes::parse(list)?,
            None => Scopes::ALL,
        };
        if token.len() < 16 {
            return Err(TokenError::TooShort);
        }
        digests.push((digest(token), scopes));
    }
    if digests.is_empty() {
        return Err(TokenError::Missing);
    }
    Ok(digests)
}

/// A credential this service presents to another, from a file. During a
/// rotation the file holds the new token on its first line and the old one
/// after it (the receivers accept both); the first line is presented.
/// [`OutboundToken::reload`] follows the file like [`BearerTokens`] does.
#[derive(Clone)]
pub struct OutboundToken {
    current: Arc<RwLock<Arc<str>>>,
    file: Option<PathBuf>,
}

impl std::fmt::Debug for OutboundToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutboundToken(redacted)")
    }
}

impl OutboundToken {
    /// A token that never changes (tests, or a token given inline).
    pub fn fixed(token: &str) -> Result<Self, TokenError> {
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::from(first_token([token])?))),
            file: None,
        })
    }

    /// The first non-empty line of `path`.
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::from(first_token(read_lines(path)?)?))),
            file: Some(path.to_path_buf()),
        })
    }

    /// The token to present now.
    pub fn get(&self) -> Arc<str> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the file again; returns whether the presented token changed.
    pub fn reload(&self) -> Result<bool, TokenError> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let fresh = first_token(read_lines(path)?)?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let changed = **current != *fresh;
        if changed {
            *current = Arc::from(fresh);
        }
        Ok(changed)
    }
}

fn first_token<I, S>(lines: I) -> Result<String, TokenError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let token = lines
        .into_iter()
        .find_map(|line| line.as_ref().split_whitespace().next().map(str::to_owned))
        .ok_or(TokenError::Missing)?;
    if token.len() < 16 {
        return Err(TokenError::TooShort);
    }
    Ok(token)
}

/// A credential the kit re-reads on SIGHUP and every few seconds.
pub trait Reload: Send + Sync {
    /// Re-reads; whether anything changed.
    fn reload(&self) -> Result<bool, TokenError>;
}

impl Reload for BearerTokens {
    fn reload(&self) -> Result<bool, TokenError> {
        BearerTokens::reload(self)
    }
}

impl Reload for OutboundToken {
    fn reload(&self) -> Result<bool, TokenError> {
        OutboundToken::reload(self)
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
    scopes: Scopes,
}

impl Caller {
    /// A caller with every scope.
    pub fn of_token(token: &str) -> Self {
        Self::with_scopes(token, Scopes::ALL)
    }

    pub fn with_scopes(token: &str, scopes: Scopes) -> Self {
        let digest = Sha256::new()
            .chain_update(b"octollm-caller-v1:")
            .chain_update(token.as_bytes())
            .finalize();
        let mut id = String::with_capacity(7 + 16);
        id.push_str("bearer-");
        for byte in &digest[..8] {
            id.push_str(&format!("{byte:02x}"));
        }
        Self { id, scopes }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn scopes(&self) -> Scopes {
        self.scopes
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
            Some(token) => match auth.tokens.scopes_of(token.trim()) {
                Some(scopes) => Ok(Caller::with_scopes(token.trim(), scopes)),
                None => Err(("invalid", "bearer token is not valid")),
            },
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
    fn file_tokens_follow_the_file_and_survive_a_bad_edit() {
        let dir = std::env::temp_dir().join(format!("kit-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(&file, "old-token-0123456789\n").unwrap();
        let tokens = BearerTokens::load(None, Some(&file)).unwrap();
        let outbound = OutboundToken::from_file(&file).unwrap();
        assert!(tokens.accepts("old-token-0123456789"));
        assert_eq!(&*outbound.get(), "old-token-0123456789");

        // Overlap: both accepted, the first line presented.
        std::fs::write(&file, "new-token-0123456789\nold-token-0123456789\n").unwrap();
        assert!(tokens.reload().unwrap());
        assert!(outbound.reload().unwrap());
        assert!(tokens.accepts("new-token-0123456789") && tokens.accepts("old-token-0123456789"));
        assert_eq!(&*outbound.get(), "new-token-0123456789");
        assert!(!tokens.reload().unwrap(), "an unchanged file is no change");

        // A broken file keeps the last good set.
        std::fs::write(&file, "short\n").unwrap();
        assert!(matches!(tokens.reload(), Err(TokenError::TooShort)));
        assert!(matches!(outbound.reload(), Err(TokenError::TooShort)));
        assert!(tokens.accepts("old-token-0123456789"));
        assert_eq!(&*outbound.get(), "new-token-0123456789");

        std::fs::write(&file, "new-token-0123456789\n").unwrap();
        assert!(tokens.reload().unwrap());
        assert!(!tokens.accepts("old-token-0123456789"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn token_lines_carry_scopes() {
        let tokens = BearerTokens::new([
            "operator-token-0123456789",
            "client-a-token-0123456789 submit,read",
            "auditor-token-0123456789 read,admin",
        ])
        .unwrap();
        let scopes = |t: &str| tokens.scopes_of(t);
        assert_eq!(scopes("operator-token-0123456789"), Some(Scopes::ALL));
        let client = scopes("client-a-token-0123456789").unwrap();
        assert!(client.allows(Scopes::SUBMIT) && client.allows(Scopes::READ));
        assert!(!client.allows(Scopes::ADMIN));
        let auditor = scopes("auditor-token-0123456789").unwrap();
        assert!(auditor.allows(Scopes::ADMIN) && !auditor.allows(Scopes::SUBMIT));
        assert_eq!(scopes("client-a-token-0123456789 submit,read"), None);
        assert!(matches!(
            BearerTokens::new(["client-a-token-0123456789 submit,write"]),
            Err(TokenError::UnknownScope(s)) if s == "write"
        ));
        // The token presented from such a file is the first field.
        let outbound = OutboundToken::fixed("client-a-token-0123456789 submit").unwrap();
        assert_eq!(&*outbound.get(), "client-a-token-0123456789");
    }

    #[test]
    fn debug_never_shows_tokens() {
        let tokens = BearerTokens::new(["secret-token-0123456789"]).unwrap();
        assert!(!format!("{tokens:?}").contains("secret"));
    }
}
