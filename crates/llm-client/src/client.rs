//! The client: one chat call = one or more attempts within a deadline.

use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::Rng;
use reqwest::{
    StatusCode,
    header::{CONTENT_TYPE, HeaderMap},
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::Instrument;

use crate::{LlmConfig, LlmError, metrics::LlmMetrics};

/// The longest `Retry-After` the client honours; longer values are clamped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Longest provider error message kept in [`LlmError::Client`].
const MAX_ERROR_MESSAGE: usize = 300;

/// Response header in which llm-sim reports the delay it simulated, in
/// milliseconds. Real providers do not send it; the client sums it over a
/// call's attempts into [`ChatResponse::simulated_delay`].
pub const SIMULATED_DELAY_HEADER: &str = "x-llm-sim-delay-ms";

/// Who speaks in a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message. `Debug` shows the role and length, never the text.
#[derive(Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

impl fmt::Debug for ChatMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatMessage")
            .field("role", &self.role)
            .field("content_chars", &self.content.chars().count())
            .finish()
    }
}

/// A chat-completion request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Overrides the configured model.
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// OpenAI's `response_format`, e.g. from [`ChatRequest::with_json_schema`].
    pub response_format: Option<serde_json::Value>,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            ..ChatRequest::default()
        }
    }

    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Asks for structured output: OpenAI's
    /// `response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}`.
    /// The provider may still answer something else; callers validate.
    pub fn with_json_schema(mut self, name: &str, schema: serde_json::Value) -> Self {
        self.response_format = Some(serde_json::json!({
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": true},
        }));
        self
    }
}

/// Token usage reported by the provider (0 when it reports none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// A successful chat completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The assistant's text (empty when the provider sent `null`).
    pub content: String,
    /// The model the provider says answered (the requested one if it says none).
    pub model: String,
    pub finish_reason: Option<String>,
    pub usage: Usage,
    /// From the price table and the usage; 0 for unknown models.
    pub cost_usd: f64,
    /// Attempts made, including the successful one.
    pub attempts: u32,
    /// The delay the provider says it simulated ([`SIMULATED_DELAY_HEADER`]),
    /// summed over every attempt of the call whose answer carried it (a
    /// retried 500 waited too); `None` when no answer carried it, as with
    /// every real provider. Subtract it from the call's wall time to get the
    /// time spent outside the simulated model.
    pub simulated_delay: Option<Duration>,
    /// Streamed calls ([`LlmClient::chat_stream`]): from the start of the
    /// successful attempt to its first non-empty content delta. `None` for
    /// unstreamed calls and for streams without content.
    pub time_to_first_token: Option<Duration>,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<WireStreamOptions>,
}

#[derive(Serialize)]
struct WireStreamOptions {
    include_usage: bool,
}

/// One `data:` event of a streamed answer.
#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<WireErrorDetail>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireErrorBody {
    error: WireErrorDetail,
}

#[derive(Deserialize)]
struct WireErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

/// What went wrong in one attempt.
#[derive(Debug)]
enum Failure {
    RateLimited,
    Server(u16),
    Timeout,
    Client(u16, String),
    Invalid(String),
    Transport(String),
}

impl Failure {
    /// The `status` label of `octollm_llm_api_calls_total` (and `LlmError::kind`).
    fn status(&self) -> &'static str {
        match self {
            Failure::RateLimited => "rate_limited",
            Failure::Server(_) => "server_error",
            Failure::Timeout => "timeout",
            Failure::Client(..) => "client_error",
            Failure::Invalid(_) => "invalid_response",
            Failure::Transport(_) => "transport_error",
        }
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            Failure::RateLimited | Failure::Server(_) | Failure::Timeout | Failure::Transport(_)
        )
    }

    fn into_error(self, attempts: u32) -> LlmError {
        match self {
            Failure::RateLimited => LlmError::RateLimited { attempts },
            Failure::Server(status) => LlmError::Server { status, attempts },
            Failure::Timeout => LlmError::Timeout { attempts },
            Failure::Client(status, message) => LlmError::Client { status, message },
            Failure::Invalid(message) => LlmError::InvalidResponse(message),
            Failure::Transport(message) => LlmError::Transport(match attempts {
                1 => format!("{message} (after 1 attempt)"),
                n => format!("{message} (after {n} attempts)"),
            }),
        }
    }
}

struct Attempt {
    result: Result<ChatResponse, Failure>,
    retry_after: Option<Duration>,
    /// [`SIMULATED_DELAY_HEADER`] of the answer, if one came with it.
    simulated_delay: Option<Duration>,
    /// Content of this attempt already handed to the caller (a streamed
    /// attempt that fails after that is not retried).
    delivered: bool,
}

/// How a call reads its answer.
enum Mode<'a> {
    /// One JSON body.
    Complete,
    /// Server-sent events; each content delta goes to the callback.
    Stream(&'a mut (dyn FnMut(&str) + Send)),
}

impl Mode<'_> {
    fn streams(&self) -> bool {
        matches!(self, Mode::Stream(_))
    }
}

struct Inner {
    http: reqwest::Client,
    url: String,
    config: LlmConfig,
    metrics: LlmMetrics,
    warned_models: Mutex<HashSet<String>>,
}

/// An OpenAI-compatible chat-completions client. Cheap to clone.
#[derive(Clone)]
pub struct LlmClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmClient")
            .field("url", &self.inner.url)
            .field("model", &self.inner.config.model)
            .field("provider", &self.inner.config.provider)
            .finish_non_exhaustive()
    }
}

/// The full-jitter exponential backoff before retry number `retry` (1-based):
/// uniform in `[0, min(cap, base * 2^(retry-1))]`.
pub fn backoff_delay<R: Rng + ?Sized>(
    base: Duration,
    cap: Duration,
    retry: u32,
    rng: &mut R,
) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    let ceiling = base.saturating_mul(factor).min(cap);
    ceiling.mul_f64(rng.random::<f64>())
}

/// `Retry-After` (seconds) or `retry-after-ms`, clamped to [`MAX_RETRY_AFTER`].
/// HTTP-date values are ignored (the backoff applies instead).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let parsed = header("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|ms| ms / 1000.0)
        .or_else(|| header("retry-after").and_then(|v| v.trim().parse::<f64>().ok()))?;
    if !(parsed.is_finite() && parsed >= 0.0) {
        return None;
    }
    Some(Duration::from_secs_f64(parsed).min(MAX_RETRY_AFTER))
}

/// [`SIMULATED_DELAY_HEADER`] (whole or fractional milliseconds).
fn simulated_delay(headers: &HeaderMap) -> Option<Duration> {
    let ms = headers
        .get(SIMULATED_DELAY_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
}

/// A transport error as an attempt's failure.
fn transport(error: reqwest::Error) -> Failure {
    if error.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Transport(describe(error))
    }
}

/// The error text of a reqwest error with its causes, without the URL.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl LlmClient {
    /// Builds a client and registers its metrics into `registry` (once per
    /// registry: clone the client to share it).
    pub fn new(config: LlmConfig, registry: &prometheus::Registry) -> Result<Self, LlmError> {
        let base = reqwest::Url::parse(config.base_url.trim()).map_err(|e| {
            LlmError::Config(format!("invalid LLM base URL {:?}: {e}", config.base_url))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(LlmError::Config(format!(
                "LLM base URL {:?} must be http or https",
                config.base_url
            )));
        }
        if config.model.trim().is_empty() {
            return Err(LlmError::Config("the LLM model name is empty".to_owned()));
        }
        if config.timeout.is_zero() {
            return Err(LlmError::Config(
                "the LLM per-attempt timeout must be above zero".to_owned(),
            ));
        }
        let url = format!("{}/chat/completions", base.as_str().trim_end_matches('/'));
        let http = reqwest::Client::builder()
            .user_agent(concat!("octollm-llm-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                LlmError::Config(format!("cannot build the HTTP client: {}", describe(e)))
            })?;
        let metrics = LlmMetrics::register(registry)?;
        Ok(LlmClient {
            inner: Arc::new(Inner {
                http,
                url,
                config,
                metrics,
                warned_models: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &LlmConfig {
        &self.inner.config
    }

    /// One chat completion, retried on 429, 5xx, timeouts and connection
    /// errors with full-jitter exponential backoff (or `Retry-After`), never
    /// past `deadline`: when the deadline leaves no room for the next attempt
    /// or wait, the call ends at once with [`LlmError::DeadlineExceeded`].
    pub async fn chat(
        &self,
        req: ChatRequest,
        deadline: Option<Instant>,
    ) -> Result<ChatResponse, LlmError> {
        let model = req
            .model
            .clone()
            .unwrap_or_else(|| self.inner.config.model.clone());
        let span = tracing::info_span!(
            "llm.chat",
            provider = %self.inner.config.provider,
            model = %model,
            attempts = tracing::field::Empty,
        );
        self.chat_with_retries(req, model, deadline, Mode::Complete)
            .instrument(span)
            .await
    }

    /// Like [`LlmClient::chat`], streamed: asks for `stream: true` (with
    /// `stream_options.include_usage`), reads OpenAI's server-sent events
    /// and hands each content delta to `on_delta` as it arrives. The result
    /// is the whole answer, with [`ChatResponse::time_to_first_token`],
    /// which is also observed in `octollm_llm_time_to_first_token_seconds`.
    ///
    /// Retries and the deadline work as in `chat`, except that an attempt
    /// that breaks after a delta was handed over is not retried (the caller
    /// has seen part of an answer): the call fails. The per-attempt timeout
    /// bounds the whole stream.
    pub async fn chat_stream<F>(
        &self,
        req: ChatRequest,
        deadline: Option<Instant>,
        mut on_delta: F,
    ) -> Result<ChatResponse, LlmError>
    where
        F: FnMut(&str) + Send,
    {
        let model = req
            .model
            .clone()
            .unwrap_or_else(|| self.inner.config.model.clone());
        let span = tracing::info_span!(
            "llm.chat_stream",
            provider = %self.inner.config.provider,
            model = %model,
            attempts = tracing::field::Empty,
        );
        self.chat_with_retries(req, model, deadline, Mode::Stream(&mut on_delta))
            .instrument(span)
            .await
    }

    async fn chat_with_retries(
        &self,
        req: ChatRequest,
        model: String,
        deadline: Option<Instant>,
        mut mode: Mode<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let config = &self.inner.config;
        let body = serde_json::to_vec(&WireRequest {
            model: &model,
            messages: &req.messages,
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            response_format: req.response_format.as_ref(),
            stream: mode.streams(),
            stream_options: mode.streams().then_some(WireStreamOptions {
                include_usage: true,
            }),
        })
        .map_err(|e| LlmError::Config(format!("cannot encode the request: {e}")))?;
        let labels = [config.provider.as_str(), model.as_str()];
        let max_attempts = config.max_retries.saturating_add(1);
        let mut last_failure = None;
        let mut attempts = 0u32;
        let mut total_delay: Option<Duration> = None;

        let result = loop {
            let timeout = match deadline {
                None => config.timeout,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break Err(LlmError::DeadlineExceeded {
                            attempts,
                            last_failure,
                        });
                    }
                    config.timeout.min(left)
                }
            };
            attempts += 1;
            let started = Instant::now();
            let Attempt {
                result,
                retry_after,
                simulated_delay,
                delivered,
            } = self.attempt(body.clone(), &model, timeout, &mut mode).await;
            if let Some(delay) = simulated_delay {
                total_delay = Some(total_delay.unwrap_or_default() + delay);
            }
            self.inner
                .metrics
                .duration
                .with_label_values(&labels)
                .observe(started.elapsed().as_secs_f64());
            let failure = match result {
                Ok(mut response) => {
                    self.inner
                        .metrics
                        .calls
                        .with_label_values(&[labels[0], labels[1], "ok"])
                        .inc();
                    response.attempts = attempts;
                    response.simulated_delay = total_delay;
                    self.account(&model, &mut response);
                    break Ok(response);
                }
                Err(failure) => failure,
            };
            let status = failure.status();
            self.inner
                .metrics
                .calls
                .with_label_values(&[labels[0], labels[1], status])
                .inc();
            let deadline_hit = deadline.is_some_and(|d| Instant::now() >= d);
            if matches!(failure, Failure::Timeout) && deadline_hit {
                break Err(LlmError::DeadlineExceeded {
                    attempts,
                    last_failure: Some(status),
                });
            }
            if !failure.retryable() || delivered || attempts >= max_attempts {
                break Err(failure.into_error(attempts));
            }
            let delay = retry_after.unwrap_or_else(|| {
                backoff_delay(
                    config.backoff_base,
                    config.backoff_cap,
                    attempts,
                    &mut rand::rng(),
                )
            });
            if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                break Err(LlmError::DeadlineExceeded {
                    attempts,
                    last_failure: Some(status),
                });
            }
            tracing::warn!(
                attempt = attempts,
                failure = status,
                delay_ms = delay.as_millis() as u64,
                "LLM attempt failed; retrying"
            );
            last_failure = Some(status);
            tokio::time::sleep(delay).await;
        };

        tracing::Span::current().record("attempts", attempts);
        match &result {
            Ok(response) => tracing::debug!(
                prompt_tokens = response.usage.prompt_tokens,
                completion_tokens = response.usage.completion_tokens,
                cost_usd = response.cost_usd,
                "LLM call succeeded"
            ),
            Err(e) => tracing::warn!(kind = e.kind(), error = %e, "LLM call failed"),
        }
        result
    }

    /// Counts tokens and cost of a successful call.
    fn account(&self, model: &str, response: &mut ChatResponse) {
        let inner = &self.inner;
        let provider = inner.config.provider.as_str();
        let usage = response.usage;
        inner
            .metrics
            .tokens
            .with_label_values(&[provider, model, "prompt"])
            .inc_by(usage.prompt_tokens);
        inner
            .metrics
            .tokens
            .with_label_values(&[provider, model, "completion"])
            .inc_by(usage.completion_tokens);
        response.cost_usd = match inner.config.prices.get(model) {
            Some(price) => price.cost_usd(usage.prompt_tokens, usage.completion_tokens),
            None => {
                let mut warned = inner
                    .warned_models
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if warned.insert(model.to_owned()) {
                    tracing::warn!(
                        model,
                        "model missing from the LLM price table; its cost counts as 0"
                    );
                }
                0.0
            }
        };
        inner
            .metrics
            .cost
            .with_label_values(&[provider, model])
            .inc_by(response.cost_usd);
    }

    /// One HTTP exchange, bounded by `timeout` (connect, send and body read).
    async fn attempt(
        &self,
        body: Vec<u8>,
        model: &str,
        timeout: Duration,
        mode: &mut Mode<'_>,
    ) -> Attempt {
        let mut request = self
            .inner
            .http
            .post(&self.inner.url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.inner.config.api_key {
            request = request.bearer_auth(key.expose());
        }
        match mode {
            Mode::Complete => self.complete(request, model, timeout).await,
            Mode::Stream(on_delta) => self.stream(request, model, timeout, &mut **on_delta).await,
        }
    }

    async fn complete(
        &self,
        request: reqwest::RequestBuilder,
        model: &str,
        timeout: Duration,
    ) -> Attempt {
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            let retry_after = retry_after(response.headers());
            let delay = simulated_delay(response.headers());
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, retry_after, delay, bytes))
        };
        let (status, retry_after, delay, bytes) =
            match tokio::time::timeout(timeout, exchange).await {
                Err(_elapsed) => return failed(Failure::Timeout, None),
                Ok(Err(e)) => return failed(transport(e), None),
                Ok(Ok(parts)) => parts,
            };
        let result = if status.is_success() {
            parse_completion(&bytes, model)
        } else {
            Err(classify(status, &bytes))
        };
        Attempt {
            result,
            retry_after,
            simulated_delay: delay,
            delivered: false,
        }
    }

    async fn stream(
        &self,
        request: reqwest::RequestBuilder,
        model: &str,
        timeout: Duration,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Attempt {
        let started = Instant::now();
        let ttft = self
            .inner
            .metrics
            .ttft
            .with_label_values(&[self.inner.config.provider.as_str(), model]);
        let mut head: Option<(Option<Duration>, Option<Duration>)> = None;
        let mut progress = StreamProgress::default();
        let exchange = async {
            let mut response = request.send().await.map_err(transport)?;
            let status = response.status();
            head = Some((
                retry_after(response.headers()),
                simulated_delay(response.headers()),
            ));
            if !status.is_success() {
                let bytes = response.bytes().await.map_err(transport)?;
                return Err(classify(status, &bytes));
            }
            let mut lines = SseLines::default();
            while !progress.done {
                let Some(chunk) = response.chunk().await.map_err(transport)? else {
                    break;
                };
                for data in lines.push(&chunk) {
                    progress.event(&data, &mut *on_delta, started, &ttft)?;
                    if progress.done {
                        break;
                    }
                }
            }
            Ok(())
        };
        let outcome = match tokio::time::timeout(timeout, exchange).await {
            Err(_elapsed) => Err(Failure::Timeout),
            Ok(outcome) => outcome,
        };
        let (retry_after, delay) = head.unwrap_or((None, None));
        let delivered = progress.time_to_first_token.is_some();
        let result = outcome.and_then(|()| progress.finish(model));
        Attempt {
            result,
            retry_after,
            simulated_delay: delay,
            delivered,
        }
    }
}

/// What a non-2xx answer means.
fn classify(status: StatusCode, bytes: &[u8]) -> Failure {
    if status == StatusCode::TOO_MANY_REQUESTS {
        Failure::RateLimited
    } else if status == StatusCode::REQUEST_TIMEOUT {
        Failure::Timeout
    } else if status.is_server_error() {
        Failure::Server(status.as_u16())
    } else {
        Failure::Client(status.as_u16(), error_message(bytes, status))
    }
}

/// Splits a server-sent event stream into the data of its events (several
/// `data:` lines of one event joined by newlines; comments and other fields
/// ignored). Chunks may cut lines anywhere.
#[derive(Default)]
struct SseLines {
    pending: Vec<u8>,
    data: Option<String>,
}

impl SseLines {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let end = start + offset;
            let line = &self.pending[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(data);
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                let value = value.strip_prefix(' ').unwrap_or(value);
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                }
            }
            start = end + 1;
        }
        self.pending.drain(..start);
        events
    }
}

/// A streamed answer being read.
#[derive(Default)]
struct StreamProgress {
    content: String,
    model: Option<String>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    time_to_first_token: Option<Duration>,
    done: bool,
}

impl StreamProgress {
    /// Takes one event's data: a chunk, or `[DONE]`.
    fn event(
        &mut self,
        data: &str,
        on_delta: &mut (dyn FnMut(&str) + Send),
        started: Instant,
        ttft: &prometheus::Histogram,
    ) -> Result<(), Failure> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: WireChunk = serde_json::from_str(data)
            .map_err(|e| Failure::Invalid(format!("not a chat completion chunk: {e}")))?;
        if let Some(error) = chunk.error {
            return Err(Failure::Invalid(format!(
                "the provider reported an error mid-stream: {}",
                truncate(error.message.unwrap_or_default(), MAX_ERROR_MESSAGE)
            )));
        }
        if self.model.is_none() {
            self.model = chunk.model;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in chunk.choices.into_iter().take(1) {
            if let Some(content) = choice.delta.and_then(|d| d.content)
                && !content.is_empty()
            {
                if self.time_to_first_token.is_none() {
                    let elapsed = started.elapsed();
                    self.time_to_first_token = Some(elapsed);
                    ttft.observe(elapsed.as_secs_f64());
                }
                on_delta(&content);
                self.content.push_str(&content);
            }
            if choice.finish_reason.is_some() {
                self.finish_reason = choice.finish_reason;
            }
        }
        Ok(())
    }

    /// The whole answer, once the stream has ended.
    fn finish(self, requested_model: &str) -> Result<ChatResponse, Failure> {
        if !self.done && self.finish_reason.is_none() {
            return Err(Failure::Transport(
                "the stream ended before its last chunk".to_owned(),
            ));
        }
        Ok(ChatResponse {
            content: self.content,
            model: self.model.unwrap_or_else(|| requested_model.to_owned()),
            finish_reason: self.finish_reason,
            usage: self.usage.unwrap_or_default(),
            cost_usd: 0.0,
            attempts: 0,
            simulated_delay: None,
            time_to_first_token: self.time_to_first_token,
        })
    }
}

fn failed(failure: Failure, retry_after: Option<Duration>) -> Attempt {
    Attempt {
        result: Err(failure),
        retry_after,
        simulated_delay: None,
        delivered: false,
    }
}

fn parse_completion(bytes: &[u8], requested_model: &str) -> Result<ChatResponse, Failure> {
    let wire: WireResponse = serde_json::from_slice(bytes)
        .map_err(|e| Failure::Invalid(format!("not a chat completion: {e}")))?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| Failure::Invalid("the completion has no choices".to_owned()))?;
    Ok(ChatResponse {
        content: choice.message.content.unwrap_or_default(),
        model: wire.model.unwrap_or_else(|| requested_model.to_owned()),
        finish_reason: choice.finish_reason,
        usage: wire.usage.unwrap_or_default(),
        cost_usd: 0.0,
        attempts: 0,
        simulated_delay: None,
        time_to_first_token: None,
    })
}

/// The provider's `error.message`, or the start of the body, shortened.
fn error_message(bytes: &[u8], status: StatusCode) -> String {
    let message = serde_json::from_slice::<WireErrorBody>(bytes)
        .ok()
        .and_then(|b| b.error.message)
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).trim().to_owned());
    if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_owned()
    } else {
        truncate(message, MAX_ERROR_MESSAGE)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use rand::{SeedableRng, rngs::StdRng};
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn backoff_is_full_jitter_capped() {
        let mut rng = StdRng::seed_from_u64(3);
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        for retry in 1..=12 {
            let ceiling = (base * 2u32.pow(retry - 1)).min(cap);
            for _ in 0..200 {
                assert!(backoff_delay(base, cap, retry, &mut rng) <= ceiling);
            }
        }
        assert!(backoff_delay(base, cap, u32::MAX, &mut rng) <= cap);
        let spread: Vec<_> = (0..100)
            .map(|_| backoff_delay(base, cap, 3, &mut rng))
            .collect();
        assert!(spread.iter().any(|d| *d < Duration::from_millis(100)));
        assert!(spread.iter().any(|d| *d > Duration::from_millis(300)));
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        headers.clear();
        headers.insert("retry-after", HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn provider_error_messages_are_extracted_and_shortened() {
        let body = br#"{"error":{"message":"bad things","type":"invalid_request_error"}}"#;
        assert_eq!(error_message(body, StatusCode::BAD_REQUEST), "bad things");
        assert_eq!(error_message(b"", StatusCode::NOT_FOUND), "Not Found");
        let long = "é".repeat(400);
        assert!(error_message(long.as_bytes(), StatusCode::BAD_REQUEST).len() <= 304);
    }

    #[test]
    fn sse_events_survive_any_cut() {
        let stream = b"data: {\"a\":1}\n\n: comment\r\nevent: x\r\ndata: one\r\ndata: two\r\n\r\ndata: [DONE]\n\n";
        let whole = SseLines::default().push(stream);
        assert_eq!(whole, ["{\"a\":1}", "one\ntwo", "[DONE]"]);
        for cut in 1..stream.len() {
            let mut lines = SseLines::default();
            let mut events = lines.push(&stream[..cut]);
            events.extend(lines.push(&stream[cut..]));
            assert_eq!(events, whole, "cut at {cut}");
        }
        // Byte by byte, including inside a multi-byte character.
        let text = "data: {\"c\":\"héllo\"}\n\n".as_bytes();
        let mut lines = SseLines::default();
        let events: Vec<String> = text.iter().flat_map(|b| lines.push(&[*b])).collect();
        assert_eq!(events, ["{\"c\":\"héllo\"}"]);
    }

    #[test]
    fn stream_chunks_build_the_answer() {
        let histogram =
            prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).unwrap();
        let mut progress = StreamProgress::default();
        let mut deltas = Vec::new();
        let mut sink = |d: &str| deltas.push(d.to_owned());
        let started = Instant::now();
        for data in [
            r#"{"model":"m-1","choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":"lo"}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
            "[DONE]",
        ] {
            progress
                .event(data, &mut sink, started, &histogram)
                .unwrap();
        }
        assert!(progress.done);
        let response = progress.finish("asked").unwrap();
        assert_eq!(deltas, ["Hel", "lo"]);
        assert_eq!(response.content, "Hello");
        assert_eq!(response.model, "m-1");
        assert_eq!(response.finish_reason.as_deref(), Some("stop"));
        assert_eq!(response.usage.prompt_tokens, 3);
        assert_eq!(response.usage.completion_tokens, 2);
        assert!(response.time_to_first_token.is_some());
        assert_eq!(histogram.get_sample_count(), 1);

        let mut broken = StreamProgress::default();
        let mut ignore = |_: &str| {};
        assert!(matches!(
            broken.event("{not json", &mut ignore, started, &histogram),
            Err(Failure::Invalid(_))
        ));
        assert!(matches!(
            broken.event(r#"{"error":{"message":"overloaded"}}"#, &mut ignore, started, &histogram),
            Err(Failure::Invalid(m)) if m.contains("overloaded")
        ));
        assert!(matches!(
            StreamProgress::default().finish("m"),
            Err(Failure::Transport(_))
        ));
    }

    #[test]
    fn the_simulated_delay_header_is_read_in_milliseconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(simulated_delay(&headers), None);
        headers.insert(SIMULATED_DELAY_HEADER, HeaderValue::from_static("1523"));
        assert_eq!(simulated_delay(&headers), Some(Duration::from_millis(1523)));
        headers.insert(SIMULATED_DELAY_HEADER, HeaderValue::from_static("2.5"));
        assert_eq!(simulated_delay(&headers), Some(Duration::from_micros(2500)));
        for bad in ["-1", "soon", "NaN"] {
            headers.insert(SIMULATED_DELAY_HEADER, HeaderValue::from_static(bad));
            assert_eq!(simulated_delay(&headers), None, "{bad}");
        }
    }

    #[test]
    fn messages_debug_hides_content() {
        let req = ChatRequest::new(vec![ChatMessage::user("my secret prompt")]);
        assert!(!format!("{req:?}").contains("secret"));
    }
}
