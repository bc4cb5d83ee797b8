//! `ReflexScreen`: every submitted task passes the reflex layer first.
//!
//! Everything the task passes on is screened: the goal, the context and
//! every constraint and acceptance criterion, joined by newlines as the
//! arms see them together. A text longer than the reflex layer takes
//! ([`REFLEX_TEXT_MAX_CHARS`]) is screened in overlapping chunks (see
//! [`chunks`]), so no payload hides across a boundary; the first blocked
//! chunk rejects the task.
//!
//! Blocked input makes the task `rejected`, with the reasons as types and
//! categories only. The reflex layer's answers are told apart:
//!
//! - 400, 413, 422 and 429 are the request's fault: the submission fails
//!   (422 naming the fields, or 429 with Retry-After) and the circuit does
//!   not count them; the reflex layer answered, so it is up.
//! - 401 and 403 are a configuration fault (a token rotation gone wrong):
//!   they count against the circuit like an outage, are logged at error and
//!   counted as `octollm_screening_errors_total{kind="auth"}` to page on.
//! - Anything else that is not a verdict (unreachable, timeouts, 5xx, other
//!   statuses, unreadable answers) counts against the circuit. Then the
//!   orchestrator fails closed (503) by default, or open by configuration;
//!   `octollm_reflex_screenings_total{outcome}` shows which.
//!
//! Each call carries the submitting client's identity as the reflex layer's
//! `user_id`, so one client draining its bucket does not drain another's:
//! the [`service_kit::Caller`] id of the client's bearer token, never the
//! token or any personal data.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde_json::{Value, json};
use service_kit::{FieldError, OutboundToken, Problem};
use tokio_util::sync::CancellationToken;

use crate::circuit::{CircuitBreaker, CircuitState};

/// Longest text the reflex layer screens in one call, in characters
/// (`reflex_layer::api::TEXT_MAX_CHARS`; a test keeps them equal).
pub const REFLEX_TEXT_MAX_CHARS: usize = 100_000;

/// How far consecutive chunks overlap, in characters. Any stretch of text
/// this long lies wholly inside one chunk. The detector's findings are
/// phrase-sized: its longest rules chain bounded gaps (`[^.\n]{0,60}` then
/// `{0,80}`) between alternations of a few words, a few hundred characters
/// at most, and what can change a finding's verdict lies within 512 bytes
/// before it (quoting) and 120 after (academic context). 4,096 covers a
/// finding with all its context several times over, and whitespace padding
/// inside a phrase up to that size.
pub const CHUNK_OVERLAP_CHARS: usize = 4_096;

/// Smallest chunk size accepted: chunks then advance by at least
/// `max / 2 - 2 × overlap` (≥ 8,192 characters) each.
pub const MIN_CHUNK_CHARS: usize = 8 * CHUNK_OVERLAP_CHARS;

/// Values of `octollm_reflex_screenings_total{outcome}`.
pub const OUTCOMES: [&str; 6] = [
    "allowed",
    "rejected",
    "invalid",
    "rate_limited",
    "unavailable_closed",
    "unavailable_open",
];

/// Values of `octollm_screening_errors_total{kind}`: calls to the reflex
/// layer that produced no verdict.
pub const ERROR_KINDS: [&str; 8] = [
    "auth",
    "unreachable",
    "server_error",
    "unexpected_status",
    "bad_response",
    "circuit_open",
    "invalid_request",
    "rate_limited",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screening {
    Allowed,
    /// Blocked: a human-readable reason naming categories and types only.
    Rejected(String),
    /// The reflex layer was unavailable and we fail open.
    Unscreened,
}

#[derive(Debug, thiserror::Error)]
#[error("the reflex layer is unavailable ({0}); tasks cannot be screened")]
pub struct Unavailable(String);

/// The reflex layer refused the screening request itself: the submission's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// 400, 413 or 422 for the chunk that held these fields.
    Invalid { status: u16, fields: Vec<String> },
    /// 429: this client's screening budget is spent for now.
    RateLimited { retry_after_secs: u64 },
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid { status, fields } => Problem::validation(
                fields
                    .into_iter()
                    .map(|field| {
                        FieldError::new(
                            field,
                            format!("the reflex layer refused to screen this text ({status})"),
                        )
                    })
                    .collect(),
            )
            .into_response(),
            Self::RateLimited { retry_after_secs } => Problem::too_many_requests(
                format!(
                    "this client's screening rate limit is exhausted; retry in {retry_after_secs}s"
                ),
                retry_after_secs,
            )
            .into_response(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("the reflex layer refused the screening request: {0:?}")]
    Refused(Refused),
}

/// What one call to the reflex layer came to.
enum Call {
    Allowed,
    Blocked(String),
    Refused(Refused),
    Failed { kind: &'static str, reason: String },
}

/// How often [`ReflexScreen::probe_while_open`] asks an open circuit's reflex layer.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// What the probe screens: harmless, the same every time (the reflex
/// layer's cache answers it).
const PROBE_TEXT: &str = "orchestrator circuit probe";

pub struct ReflexScreen {
    http: reqwest::Client,
    url: String,
    token: OutboundToken,
    fail_open: bool,
    chunk_chars: usize,
    breaker: CircuitBreaker,
    outcomes: IntCounterVec,
    errors: IntCounterVec,
}

impl ReflexScreen {
    pub fn new(
        url: &str,
        internal: crate::InternalHttp,
        token: OutboundToken,
        fail_open: bool,
        timeout: Duration,
        registry: &Registry,
    ) -> Result<Self, anyhow::Error> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "octollm_reflex_screenings_total",
                "Task screenings by outcome.",
            ),
            &["outcome"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "octollm_screening_errors_total",
                "Calls to the reflex layer that gave no verdict, by kind; auth means the orchestrator's token was refused.",
            ),
            &["kind"],
        )?;
        let state = IntGauge::new(
            "octollm_reflex_circuit_state",
            "Circuit to the reflex layer: 0 closed, 1 half-open, 2 open.",
        )?;
        registry.register(Box::new(outcomes.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(state.clone()))?;
        for outcome in OUTCOMES {
            outcomes.with_label_values(&[outcome]);
        }
        for kind in ERROR_KINDS {
            errors.with_label_values(&[kind]);
        }
        Ok(Self {
            http: internal.client().timeout(timeout).build()?,
            url: format!("{}/v1/reflex/check", url.trim_end_matches('/')),
            token,
            fail_open,
            chunk_chars: REFLEX_TEXT_MAX_CHARS,
            breaker: CircuitBreaker::new(5, Duration::from_secs(10), state),
            outcomes,
            errors,
        })
    }

    /// Screens in chunks of at most `chars` characters (between
    /// [`MIN_CHUNK_CHARS`] and [`REFLEX_TEXT_MAX_CHARS`]; the default is the
    /// latter), e.g. to keep each call's scan short.
    pub fn with_chunk_chars(mut self, chars: usize) -> Result<Self, anyhow::Error> {
        if !(MIN_CHUNK_CHARS..=REFLEX_TEXT_MAX_CHARS).contains(&chars) {
            anyhow::bail!(
                "screening chunks must be {MIN_CHUNK_CHARS}–{REFLEX_TEXT_MAX_CHARS} characters (got {chars})"
            );
        }
        self.chunk_chars = chars;
        Ok(self)
    }

    /// Screens `fields` (name, text) for the client `caller` (a
    /// [`service_kit::Caller`] id).
    pub async fn screen(
        &self,
        fields: &[(String, &str)],
        caller: Option<&str>,
    ) -> Result<Screening, ScreenError> {
        let outcome = self.screen_fields(fields, caller).await;
        let label = match &outcome {
            Ok(Screening::Allowed) => "allowed",
            Ok(Screening::Rejected(_)) => "rejected",
            Ok(Screening::Unscreened) => "unavailable_open",
            Err(ScreenError::Refused(Refused::Invalid { .. })) => "invalid",
            Err(ScreenError::Refused(Refused::RateLimited { .. })) => "rate_limited",
            Err(ScreenError::Unavailable(_)) => "unavailable_closed",
        };
        self.outcomes.with_label_values(&[label]).inc();
        outcome
    }

    async fn screen_fields(
        &self,
        fields: &[(String, &str)],
        caller: Option<&str>,
    ) -> Result<Screening, ScreenError> {
        let (text, spans) = join(fields);
        let bounds = char_bounds(&text);
        let mut unscreened = false;
        for chunk in chunks(&text, self.chunk_chars, CHUNK_OVERLAP_CHARS) {
            let piece = &text[bounds[chunk.start]..bounds[chunk.end]];
            if service_kit::text::is_blank(piece) {
                continue; // nothing to screen, and the reflex layer refuses blank text
            }
            match self.call(piece, caller).await {
                Call::Allowed => {}
                Call::Blocked(reason) => return Ok(Screening::Rejected(reason)),
                Call::Refused(Refused::Invalid { status, .. }) => {
                    let fields = spans
                        .iter()
                        .filter(|(_, span)| span.start < chunk.end && chunk.start < span.end)
                        .map(|(name, _)| name.clone())
                        .collect();
                    return Err(ScreenError::Refused(Refused::Invalid { status, fields }));
                }
                Call::Refused(refused) => return Err(ScreenError::Refused(refused)),
                Call::Failed { reason, .. } if self.fail_open => {
                    tracing::warn!(%reason, "reflex layer unavailable: this part of the task goes unscreened (fail open)");
                    unscreened = true;
                }
                Call::Failed { reason, .. } => {
                    tracing::warn!(%reason, "reflex layer unavailable: refusing the task (fail closed)");
                    return Err(Unavailable(reason).into());
                }
            }
        }
        Ok(if unscreened {
            Screening::Unscreened
        } else {
            Screening::Allowed
        })
    }

    /// While the circuit is open, screens a fixed probe text every
    /// [`PROBE_INTERVAL`]; an answer (the reflex layer is up and takes our
    /// credential) closes the circuit at once. Without it a restarted reflex
    /// layer, back within a second, waited out the whole cool-down, and every
    /// task submitted meanwhile got 503.
    pub async fn probe_while_open(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if self.breaker.state() == CircuitState::Closed {
                continue;
            }
            if !matches!(self.request(PROBE_TEXT, None).await, Call::Failed { .. }) {
                self.breaker.record_success();
                tracing::info!("reflex circuit closed after a successful probe");
            }
        }
    }

    /// One call, through the circuit; counts what gave no verdict.
    async fn call(&self, text: &str, caller: Option<&str>) -> Call {
        let call = if self.breaker.allow() {
            let call = self.request(text, caller).await;
            match &call {
                Call::Failed { .. } => self.breaker.record_failure(),
                // A verdict or a refusal: the reflex layer is up.
                Call::Allowed | Call::Blocked(_) | Call::Refused(_) => {
                    self.breaker.record_success()
                }
            }
            call
        } else {
            Call::Failed {
                kind: "circuit_open",
                reason: "circuit open".to_owned(),
            }
        };
        let kind = match &call {
            Call::Allowed | Call::Blocked(_) => None,
            Call::Refused(Refused::Invalid { .. }) => Some("invalid_request"),
            Call::Refused(Refused::RateLimited { .. }) => Some("rate_limited"),
            Call::Failed { kind, .. } => Some(*kind),
        };
        if let Some(kind) = kind {
            self.errors.with_label_values(&[kind]).inc();
        }
        call
    }

    async fn request(&self, text: &str, caller: Option<&str>) -> Call {
        let failed = |kind: &'static str, reason: String| Call::Failed { kind, reason };
        let mut request = self.http.post(&self.url).bearer_auth(&*self.token.get());
        if let Some(traceparent) = service_kit::telemetry::current_traceparent() {
            request = request.header("traceparent", traceparent);
        }
        let body = match caller {
            Some(user) => json!({ "text": text, "user_id": user }),
            None => json!({ "text": text }),
        };
        let response = match request.json(&body).send().await {
            Ok(response) => response,
            Err(e) => return failed("unreachable", format!("cannot reach it: {e}")),
        };
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            400 | 413 | 422 => {
                tracing::warn!(
                    status,
                    "the reflex layer refused a screening request as invalid"
                );
                return Call::Refused(Refused::Invalid {
                    status,
                    fields: Vec::new(),
                });
            }
            429 => {
                let retry_after_secs = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1)
                    .clamp(1, 60);
                return Call::Refused(Refused::RateLimited { retry_after_secs });
            }
            401 | 403 => {
                tracing::error!(
                    status,
                    "the reflex layer refused the orchestrator's credential: check REFLEX_TOKEN_FILE against the reflex layer's tokens"
                );
                return failed(
                    "auth",
                    format!("it refused our credential ({status}); check REFLEX_TOKEN_FILE"),
                );
            }
            408 | 500..=599 => return failed("server_error", format!("it answered {status}")),
            _ => {
                tracing::error!(
                    status,
                    "the reflex layer answered an unexpected status: check REFLEX_URL"
                );
                return failed("unexpected_status", format!("it answered {status}"));
            }
        }
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(e) => return failed("bad_response", format!("unreadable answer: {e}")),
        };
        match body["decision"].as_str() {
            Some("allow") => Call::Allowed,
            Some("block") => Call::Blocked(reason(&body)),
            _ => failed(
                "bad_response",
                "its answer has no allow/block decision".to_owned(),
            ),
        }
    }
}

/// The rejection reason: injection categories and PII types, only as
/// short identifiers (whatever else an answer holds never reaches the
/// database).
fn reason(body: &Value) -> String {
    let names = |list: &Value, key: &str| -> Vec<String> {
        let mut names: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f[key].as_str())
            .filter(|name| {
                !name.is_empty()
                    && name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
            .map(str::to_owned)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    let categories = names(&body["injection"], "category");
    let pii = names(&body["pii"], "type");
    let mut reason = format!(
        "blocked by the reflex layer: prompt injection ({})",
        categories.join(", ")
    );
    if !pii.is_empty() {
        reason.push_str(&format!("; PII present ({})", pii.join(", ")));
    }
    reason
}

/// The fields joined by newlines, with each field's span in characters.
fn join(fields: &[(String, &str)]) -> (String, Vec<(String, Range<usize>)>) {
    let mut text = String::new();
    let mut spans = Vec::with_capacity(fields.len());
    let mut at = 0;
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            text.push('\n');
            at += 1;
        }
        let chars = value.chars().count();
        text.push_str(value);
        spans.push((name.clone(), at..at + chars));
        at += chars;
    }
    (text, spans)
}

/// Byte offset of every character of `text`, and of its end.
fn char_bounds(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect()
}

/// Chunks of `text` (character ranges) of at most `max` characters, each
/// overlapping the next by at least `overlap` (`max ≥ 8 × overlap`).
///
/// - Any stretch of at most `overlap` characters lies wholly inside one chunk.
/// - A chunk ends where a run of non-whitespace begins when the run straddling
///   the limit starts in the chunk's second half, and the next chunk starts
///   at a run's beginning when one lies within another `overlap` before the
///   nominal start; so no run of non-whitespace of up to `max / 2`
///   characters (a word, a URL, a base64 blob the detector would decode) is
///   ever cut.
pub fn chunks(text: &str, max: usize, overlap: usize) -> Vec<Range<usize>> {
    let chars: Vec<bool> = text.chars().map(char::is_whitespace).collect();
    let n = chars.len();
    let max = max.max(8 * overlap).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let nominal = start + max;
        if nominal >= n {
            out.push(start..n);
            return out;
        }
        let mut end = nominal;
        if !chars[end] && !chars[end - 1] {
            let half = start + max / 2;
            let mut e = end;
            while e > half && !chars[e - 1] {
                e -= 1;
            }
            if e > half {
                end = e;
            }
        }
        out.push(start..end);
        let floor = end.saturating_sub(2 * overlap).max(start + 1);
        let mut next = end - overlap;
        while next > floor && !chars[next - 1] {
            next -= 1;
        }
        start = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random text of words, long runs and spaces.
    fn text(seed: u64, chars: usize) -> String {
        let mut state = seed | 1;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let mut out = String::new();
        while out.chars().count() < chars {
            match next(10) {
                0 => out.push_str(&"B".repeat(next(3_000) as usize + 1)),
                1 => out.push_str("   \n"),
                2 => out.push('é'),
                _ => out.push_str("word "),
            }
        }
        out.chars().take(chars).collect()
    }

    #[test]
    fn chunks_cover_overlap_and_respect_the_limit() {
        let (max, overlap) = (MIN_CHUNK_CHARS, CHUNK_OVERLAP_CHARS);
        for seed in 1..40 {
            let text = text(seed, 150_000 + seed as usize * 1_000);
            let n = text.chars().count();
            let ws: Vec<bool> = text.chars().map(char::is_whitespace).collect();
            let chunks = chunks(&text, max, overlap);
            assert_eq!(chunks.first().unwrap().start, 0);
            assert_eq!(chunks.last().unwrap().end, n);
            for pair in chunks.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                assert!(b.start > a.start, "progress");
                assert!(a.end - b.start >= overlap, "overlap {a:?} {b:?}");
                assert!(b.start - a.start >= max / 2 - 2 * overlap, "{a:?} {b:?}");
            }
            for chunk in &chunks {
                assert!(chunk.len() <= max, "{chunk:?}");
            }
            // Every window of `overlap` characters is inside one chunk.
            for at in (0..n.saturating_sub(overlap)).step_by(97) {
                assert!(
                    chunks
                        .iter()
                        .any(|c| c.start <= at && at + overlap <= c.end),
                    "window at {at}"
                );
            }
            // No run of non-whitespace up to max / 2 is cut.
            let mut at = 0;
            while at < n {
                if ws[at] {
                    at += 1;
                    continue;
                }
                let run_end = (at..n).find(|&i| ws[i]).unwrap_or(n);
                if run_end - at <= max / 2 {
                    assert!(
                        chunks.iter().any(|c| c.start <= at && run_end <= c.end),
                        "run {at}..{run_end} cut"
                    );
                }
                at = run_end;
            }
        }
    }

    #[test]
    fn short_texts_are_one_chunk() {
        assert_eq!(chunks("", 100_000, 4_096), vec![0..0]);
        assert_eq!(chunks("héllo", 100_000, 4_096), vec![0..5]);
        let exact = "x".repeat(REFLEX_TEXT_MAX_CHARS);
        assert_eq!(
            chunks(&exact, REFLEX_TEXT_MAX_CHARS, CHUNK_OVERLAP_CHARS),
            vec![0..REFLEX_TEXT_MAX_CHARS]
        );
    }

    #[test]
    fn a_run_longer_than_half_a_chunk_is_cut_but_still_overlapped() {
        let text = "y".repeat(200_000);
        let chunks = chunks(&text, REFLEX_TEXT_MAX_CHARS, CHUNK_OVERLAP_CHARS);
        assert_eq!(chunks[0], 0..REFLEX_TEXT_MAX_CHARS);
        assert_eq!(
            chunks[1].start,
            REFLEX_TEXT_MAX_CHARS - 2 * CHUNK_OVERLAP_CHARS
        );
    }

    #[test]
    fn fields_join_with_their_spans() {
        let (text, spans) = join(&[
            ("goal".to_owned(), "é1"),
            ("context".to_owned(), "ab"),
            ("constraints[0]".to_owned(), "c"),
        ]);
        assert_eq!(text, "é1\nab\nc");
        let spans: Vec<(&str, Range<usize>)> =
            spans.iter().map(|(n, r)| (n.as_str(), r.clone())).collect();
        assert_eq!(
            spans,
            [("goal", 0..2), ("context", 3..5), ("constraints[0]", 6..7)]
        );
        let bounds = char_bounds(&text);
        assert_eq!(&text[bounds[3]..bounds[5]], "ab");
    }

    #[test]
    fn reasons_carry_identifiers_only() {
        let body = json!({
            "decision": "block",
            "injection": [{"category": "ignore_previous"}, {"category": "ignore_previous"}, {"category": "evil\u{0}text"}],
            "pii": [{"type": "email"}, {"type": "Not An Id"}]
        });
        assert_eq!(
            reason(&body),
            "blocked by the reflex layer: prompt injection (ignore_previous); PII present (email)"
        );
    }
}
