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
    pub trust_proxy: bool,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// 1–100,000 characters.
    pub text: String,
    /// Rate-limited per user (by tier) when given; at most 256 characters.
    pub user_id: Option<String>,
    /// Which detectors to run; default both.
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
    let ip = client_ip(&headers, peer, state.trust_proxy);
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
    if request.text.trim().is_empty() {
        errors.push(FieldError::new("text", "must not be empty or blank"));
    } else if chars > TEXT_MAX_CHARS {
        errors.push(FieldError::new(
            "text",
            format!("must be at most {TEXT_MAX_CHARS} characters (got {chars})"),
        ));
    }
    if let Some(user) = &request.user_id
        && (user.trim().is_empty() || user.chars().count() > 256)
    {
        errors.push(FieldError::new("user_id", "must be 1–256 characters"));
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

/// The peer address, or with `trust_proxy` the first X-Forwarded-For hop.
fn client_ip(headers: &HeaderMap, peer: SocketAddr, trust_proxy: bool) -> IpAddr {
    if trust_proxy
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    peer.ip()
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
