//! `POST /v1/reflex/check`: screen a text for PII and prompt injection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use detection::{Checks, Decision, Detector, RedactMode, Scan};
use serde::{Deserialize, Serialize};
use service_kit::{ApiJson, FieldError, Problem};
use utoipa::{OpenApi, ToSchema};

use crate::cache::DecisionCache;
use crate::metrics::ReflexMetrics;
use crate::rate_limit::{BucketSpec, RateLimiter, Tiers};

/// Longest text accepted, in characters.
pub const TEXT_MAX_CHARS: usize = 100_000;
/// Texts longer than this (bytes) are scanned off the async workers.
const INLINE_SCAN_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub detector: Arc<Detector>,
    pub cache: DecisionCache,
    pub limiter: RateLimiter,
    pub tiers: Arc<Tiers>,
    pub ip_limit: BucketSpec,
    /// Proxies of ours in front of this service (`--trusted-proxy-hops`).
    pub trusted_proxy_hops: usize,
    pub metrics: ReflexMetrics,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/reflex/check", post(check))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "OctoLLM reflex layer",
        description = "Screens text for PII and prompt injection."
    ),
    paths(check),
    components(schemas(service_kit::Problem, service_kit::FieldError))
)]
pub struct ApiDoc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Pii,
    Injection,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Redaction {
    /// Every character of a PII value becomes `*`.
    Mask,
    /// `[EMAIL_1]`, numbered per type.
    TypedToken,
    /// `[EMAIL:<keyed hash>]`, stable for one key, never a plain hash.
    KeyedHash,
    /// All but the last four letters and digits masked.
    KeepLast4,
}

impl From<Redaction> for RedactMode {
    fn from(r: Redaction) -> Self {
        match r {
            Redaction::Mask => RedactMode::Mask,
            Redaction::TypedToken => RedactMode::TypedToken,
            Redaction::KeyedHash => RedactMode::KeyedHash,
            Redaction::KeepLast4 => RedactMode::KeepLast4,
        }
    }
}

/// Longest `user_id`, in characters.
pub const USER_ID_MAX_CHARS: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// 1–100,000 characters, not blank.
    #[schema(schema_with = text_schema)]
    pub text: String,
    /// Rate-limited per user (by tier) when given; 1–256 characters, not blank.
    #[schema(schema_with = user_id_schema)]
    pub user_id: Option<String>,
    /// Which detectors to run (at least one); default both.
    #[schema(min_items = 1)]
    pub checks: Option<Vec<CheckKind>>,
    /// Return `redacted_text` with PII replaced this way.
    pub redact: Option<Redaction>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PiiView {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub start: usize,
    pub end: usize,
    pub confidence: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InjectionView {
    pub category: &'static str,
    pub severity: &'static str,
    pub confidence: f32,
    pub start: usize,
    pub end: usize,
}

/// Findings carry types and byte offsets into `text`, never the values.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    /// `allow` or `block`.
    pub decision: &'static str,
    pub pii: Vec<PiiView>,
    pub injection: Vec<InjectionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacted_text: Option<String>,
    /// `hit` or `miss`.
    pub cache: &'static str,
    pub duration_us: u64,
}

fn text_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some("1–100,000 characters, not blank."))
        .min_length(Some(1))
        .max_length(Some(TEXT_MAX_CHARS))
        .pattern(Some(service_kit::text::not_blank_pattern()))
        .build()
}

fn user_id_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::schema::Type::String,
            utoipa::openapi::schema::Type::Null,
        ]))
        .description(Some(
            "Rate-limited per user (by tier) when given; 1–256 characters, not blank.",
        ))
        .min_length(Some(1))
        .max_length(Some(USER_ID_MAX_CHARS))
        .pattern(Some(service_kit::text::not_blank_pattern()))
        .build()
}

/// Screen a text. 429 with Retry-After when a rate limit is exhausted.
#[utoipa::path(post, path = "/v1/reflex/check", tag = "reflex", request_body = CheckRequest,
    responses(
        (status = 200, body = CheckResponse),
        (status = 400, body = service_kit::Problem, description = "Malformed JSON or invalid UTF-8."),
        (status = 413, body = service_kit::Problem, description = "Body too large."),
        (status = 415, body = service_kit::Problem, description = "Not JSON."),
        (status = 422, body = service_kit::Problem, description = "A field is invalid; `errors` names each."),
        (status = 429, body = service_kit::Problem, description = "Rate limited; see Retry-After.")))]
async fn check(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CheckRequest>,
) -> Response {
    let started = Instant::now();
    let checks = match validate(&request) {
        Ok(checks) => checks,
        Err(errors) => return Problem::validation(errors).into_response(),
    };
    // The rate limit and the cache lookup each may wait on Redis: overlap them.
    let key = state.cache.key(&request.text, &checks);
    let ip = client_ip(&headers, peer, state.trusted_proxy_hops);
    let (allowed, cached) = tokio::join!(
        state.rate_limit(ip, request.user_id.as_deref()),
        state.cache.get(&key, request.text.len())
    );
    if let Err(problem) = allowed {
        return problem.into_response();
    }
    let (scan, cache) = match cached {
        Some((scan, _level)) => (scan, "hit"),
        None => {
            let scan = Arc::new(state.scan(&request.text, checks).await);
            state.cache.put(key, scan.clone(), request.text.len()).await;
            (scan, "miss")
        }
    };
    state.count(&scan);
    let redacted_text = request
        .redact
        .map(|mode| state.detector.redact(&request.text, &scan.pii, mode.into()));
    let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    tracing::debug!(
        decision = scan.decision.as_str(),
        pii = scan.pii.len(),
        injection = scan.injection.len(),
        cache,
        duration_us,
        "screened"
    );
    ApiJson(CheckResponse {
        decision: scan.decision.as_str(),
        pii: scan
            .pii
            .iter()
            .map(|f| PiiView {
                kind: f.kind.as_str(),
                start: f.start,
                end: f.end,
                confidence: f.confidence,
            })
            .collect(),
        injection: scan
            .injection
            .iter()
            .map(|f| InjectionView {
                category: f.category.as_str(),
                severity: f.severity.as_str(),
                confidence: f.confidence,
                start: f.start,
                end: f.end,
            })
            .collect(),
        redacted_text,
        cache,
        duration_us,
    })
    .into_response()
}

fn validate(request: &CheckRequest) -> Result<Checks, Vec<FieldError>> {
    let mut errors = Vec::new();
    let chars = request.text.chars().count();
    if service_kit::text::is_blank(&request.text) {
        errors.push(FieldError::new("text", "must not be empty or blank"));
    } else if chars > TEXT_MAX_CHARS {
        errors.push(FieldError::new(
            "text",
            format!("must be at most {TEXT_MAX_CHARS} characters (got {chars})"),
        ));
    }
    if let Some(user) = &request.user_id
        && (service_kit::text::is_blank(user) || user.chars().count() > USER_ID_MAX_CHARS)
    {
        errors.push(FieldError::new(
            "user_id",
            format!("must be 1–{USER_ID_MAX_CHARS} characters, not blank"),
        ));
    }
    let checks = match &request.checks {
        None => Checks::default(),
        Some(kinds) if kinds.is_empty() => {
            errors.push(FieldError::new(
                "checks",
                "must name at least one of pii, injection",
            ));
            Checks::default()
        }
        Some(kinds) => Checks {
            pii: kinds.contains(&CheckKind::Pii),
            injection: kinds.contains(&CheckKind::Injection),
        },
    };
    if errors.is_empty() {
        Ok(checks)
    } else {
        Err(errors)
    }
}

/// The client's address for the per-IP rate limit.
///
/// With `hops == 0` (the default) it is the socket peer: X-Forwarded-For is
/// ignored, since anyone can send one. With `hops` proxies of ours in front,
/// each appending the address it got the request from, the last `hops`
/// entries of X-Forwarded-For (all such headers, in order) were written by
/// them, and the client is the entry the outermost of them wrote:
/// `entries[len - hops]`. Whatever a client wrote to the left of it is
/// never read. With fewer entries than hops (a shorter chain than
/// configured) the leftmost is used; an entry that is not an address falls
/// back to the peer.
fn client_ip(headers: &HeaderMap, peer: SocketAddr, hops: usize) -> IpAddr {
    if hops == 0 {
        return peer.ip();
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let Some(entry) = entries.get(entries.len().saturating_sub(hops)) else {
        return peer.ip();
    };
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .unwrap_or_else(|_| peer.ip())
}

impl ApiState {
    async fn rate_limit(&self, ip: IpAddr, user: Option<&str>) -> Result<(), Problem> {
        let mut outcome = self
            .limiter
            .take("ip", &ip.to_string(), self.ip_limit)
            .await;
        if let (Ok(()), Some(user)) = (outcome, user) {
            let (_tier, spec) = self.tiers.for_user(user);
            outcome = self.limiter.take("user", user, spec).await;
        }
        outcome.map_err(|limited| {
            self.metrics
                .rate_limited
                .with_label_values(&[limited.scope])
                .inc();
            self.metrics
                .decisions
                .with_label_values(&["rate_limited"])
                .inc();
            let secs = limited.retry_after.as_secs_f64().ceil().max(1.0) as u64;
            Problem::too_many_requests(
                format!("{} rate limit exceeded; retry in {secs}s", limited.scope),
                secs,
            )
        })
    }

    async fn scan(&self, text: &str, checks: Checks) -> Scan {
        if text.len() <= INLINE_SCAN_BYTES {
            return self.detector.scan(text, &checks);
        }
        let detector = self.detector.clone();
        let owned = text.to_owned();
        match tokio::task::spawn_blocking(move || detector.scan(&owned, &checks)).await {
            Ok(scan) => scan,
            Err(_) => self.detector.scan(text, &checks),
        }
    }

    fn count(&self, scan: &Scan) {
        self.metrics
            .decisions
            .with_label_values(&[scan.decision.as_str()])
            .inc();
        for finding in &scan.pii {
            self.metrics
                .pii
                .with_label_values(&[finding.kind.as_str()])
                .inc();
        }
        for finding in &scan.injection {
            self.metrics
                .injection
                .with_label_values(&[finding.category.as_str(), finding.severity.as_str()])
                .inc();
        }
        if scan.decision == Decision::Block {
            self.metrics.injection_blocks.inc();
            let categories: Vec<&str> =
                scan.injection.iter().map(|f| f.category.as_str()).collect();
            tracing::warn!(categories = ?categories, "blocked prompt injection");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_hops_the_peer_is_the_client() {
        let peer: SocketAddr = "10.0.0.9:4000".parse().unwrap();
        let spoofed = forwarded(&["1.2.3.4"]);
        assert_eq!(client_ip(&spoofed, peer, 0), ip("10.0.0.9"));
    }

    #[test]
    fn trusted_hops_read_from_the_right_and_never_what_the_client_wrote() {
        let peer: SocketAddr = "10.0.0.9:4000".parse().unwrap();
        // The client forged two entries; our one proxy appended 203.0.113.7.
        let headers = forwarded(&["6.6.6.6, 7.7.7.7", "203.0.113.7"]);
        assert_eq!(client_ip(&headers, peer, 1), ip("203.0.113.7"));
        // Two proxies of ours: the outer one wrote the client, the inner one the outer.
        let headers = forwarded(&["6.6.6.6, 198.51.100.1, 10.0.0.2"]);
        assert_eq!(client_ip(&headers, peer, 2), ip("198.51.100.1"));
        // A shorter chain than configured: the leftmost entry.
        let headers = forwarded(&["198.51.100.1"]);
        assert_eq!(client_ip(&headers, peer, 3), ip("198.51.100.1"));
        // Ports and IPv6 are understood; garbage falls back to the peer.
        let headers = forwarded(&["[2001:db8::1]:443"]);
        assert_eq!(client_ip(&headers, peer, 1), ip("2001:db8::1"));
        let headers = forwarded(&["1.2.3.4, unknown"]);
        assert_eq!(client_ip(&headers, peer, 1), ip("10.0.0.9"));
        // No header at all: the peer.
        assert_eq!(client_ip(&HeaderMap::new(), peer, 1), ip("10.0.0.9"));
    }
}
