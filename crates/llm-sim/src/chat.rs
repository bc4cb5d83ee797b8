//! `POST /v1/chat/completions`.

use std::{
    borrow::Cow,
    fmt,
    sync::LazyLock,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderName, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::{
    Deserialize, Deserializer, Serialize,
    de::{IgnoredAny, MapAccess, SeqAccess, Visitor},
};

use crate::{
    config::{ErrorKind, MAX_TOKENS, SimConfig},
    error::ApiError,
    plans,
    state::SimState,
    stream, structured,
};

/// The parts of an OpenAI chat request the simulator looks at; everything
/// else is ignored. Strings are borrowed from the body where possible.
#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    messages: Vec<Message<'a>>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    response_format: Option<ResponseFormat>,
}

/// OpenAI's `stream_options`.
#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// OpenAI's `response_format`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Deserialize)]
struct JsonSchemaFormat {
    name: String,
    #[serde(default)]
    schema: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default)]
    content: CharCount,
}

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// The number of characters of a message's content, which may be a string,
/// an array of parts (`{"type":"text","text":"..."}`; others count 0) or
/// null. Counted while parsing, without keeping the text.
#[derive(Default)]
struct CharCount(usize);

impl<'de> Deserialize<'de> for CharCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;

        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = CharCount;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an array of content parts, or null")
            }

            fn visit_str<E>(self, v: &str) -> Result<CharCount, E> {
                Ok(CharCount(v.chars().count()))
            }

            fn visit_unit<E>(self) -> Result<CharCount, E> {
                Ok(CharCount(0))
            }

            fn visit_none<E>(self) -> Result<CharCount, E> {
                Ok(CharCount(0))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CharCount, A::Error> {
                let mut total = 0;
                while let Some(part) = seq.next_element::<PartChars>()? {
                    total += part.0;
                }
                Ok(CharCount(total))
            }
        }

        d.deserialize_any(ContentVisitor)
    }
}

/// Characters of the `text` field of one content part.
struct PartChars(usize);

impl<'de> Deserialize<'de> for PartChars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PartVisitor;

        impl<'de> Visitor<'de> for PartVisitor {
            type Value = PartChars;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a content part object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PartChars, A::Error> {
                let mut chars = 0;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "text" {
                        chars = map.next_value::<CharCount>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(PartChars(chars))
            }
        }

        d.deserialize_map(PartVisitor)
    }
}

#[derive(Serialize)]
struct ChatResponse<'a> {
    id: CompletionId,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Cow<'a, str>,
}

/// OpenAI's `usage`, plus `llm_sim_delay_ms` (the simulated delay, as in
/// [`crate::DELAY_HEADER`]), which OpenAI clients ignore.
#[derive(Serialize)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) total_tokens: u64,
    pub(crate) llm_sim_delay_ms: u64,
}

/// `chatcmpl-sim-<n>`, serialized without an intermediate `String`.
#[derive(Clone, Copy)]
pub(crate) struct CompletionId(pub(crate) u64);

impl Serialize for CompletionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("chatcmpl-sim-{:x}", self.0))
    }
}

/// Filler text: three-letter words and a space, so four characters (about
/// one token) per word. Built once; every response is a prefix of it.
static FILLER: LazyLock<String> = LazyLock::new(|| {
    const WORDS: [&str; 16] = [
        "the", "sim", "can", "say", "all", "you", "ask", "for", "and", "not", "one", "bit", "two",
        "now", "yes", "ok.",
    ];
    let mut text = String::with_capacity(MAX_TOKENS as usize * 4);
    for i in 0..MAX_TOKENS as usize {
        // Visit the words in a scrambled but fixed order.
        let word = WORDS[(i * 7 + i / 16) % WORDS.len()];
        text.push_str(word);
        text.push(' ');
    }
    text
});

/// Deterministic text of about `tokens` tokens (four characters each).
fn filler(tokens: u32) -> &'static str {
    let tokens = tokens.min(MAX_TOKENS) as usize;
    if tokens == 0 {
        ""
    } else {
        &FILLER[..tokens * 4 - 1]
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A structured answer of about one token per four characters, cut at `cap`
/// tokens (then `finish_reason` is `length` and the JSON is incomplete, as
/// with a real model).
fn structured_answer(text: String, cap: u32) -> (Cow<'static, str>, u32, &'static str) {
    let chars = text.chars().count();
    let tokens = u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX).max(1);
    if tokens <= cap {
        return (Cow::Owned(text), tokens, "stop");
    }
    let keep = (cap as usize).saturating_mul(4);
    (Cow::Owned(text.chars().take(keep).collect()), cap, "length")
}

/// Parses and checks a request; the message says what is wrong.
fn parse(body: &[u8]) -> Result<(ChatRequest<'_>, u64), ApiError> {
    let req: ChatRequest<'_> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid chat completion request: {e}")))?;
    if req.model.trim().is_empty() {
        return Err(ApiError::bad_request("`model` must not be empty"));
    }
    if req.messages.is_empty() {
        return Err(ApiError::bad_request(
            "`messages` must contain at least one message",
        ));
    }
    if let Some(m) = req.messages.iter().find(|m| !ROLES.contains(&&*m.role)) {
        return Err(ApiError::bad_request(format!(
            "invalid message role {:?}: expected one of {}",
            m.role,
            ROLES.join(", ")
        )));
    }
    if req.max_tokens == Some(0) || req.max_completion_tokens == Some(0) {
        return Err(ApiError::bad_request("`max_tokens` must be at least 1"));
    }
    if let Some(t) = req.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(ApiError::bad_request(format!(
            "`temperature` must be between 0 and 2, got {t}"
        )));
    }
    if let Some(ResponseFormat::JsonSchema { json_schema }) = &req.response_format {
        let name_ok = !json_schema.name.is_empty()
            && json_schema.name.len() <= 64
            && json_schema
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(ApiError::bad_request(
                "`response_format.json_schema.name` must be 1-64 characters of a-z, A-Z, 0-9, _ and -",
            ));
        }
        if !matches!(
            json_schema.schema,
            Some(serde_json::Value::Object(_) | serde_json::Value::Bool(_))
        ) {
            return Err(ApiError::bad_request(
                "`response_format.json_schema.schema` must be a JSON Schema object",
            ));
        }
    }
    let chars: usize = req.messages.iter().map(|m| m.content.0).sum();
    let prompt_tokens = (chars as u64 / 4).max(1);
    Ok((req, prompt_tokens))
}

/// What a successful answer says.
pub(crate) struct Answer {
    pub(crate) content: Cow<'static, str>,
    pub(crate) completion_tokens: u32,
    pub(crate) finish_reason: &'static str,
}

/// The content of a successful answer. Structured answers (and plans) take
/// their sequence numbers here, when the request arrives, so that their
/// order follows the order of requests rather than of sampled delays.
fn answer(state: &SimState, config: &SimConfig, req: &ChatRequest<'_>, sampled: u32) -> Answer {
    let metrics = state.metrics();
    let cap = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(u32::MAX);
    let (content, completion_tokens, finish_reason) = match &req.response_format {
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let schema = json_schema
                .schema
                .as_ref()
                .unwrap_or(&serde_json::Value::Null);
            let planned = (config.plans.enabled() && plans::plan_fields(schema))
                .then(|| config.plans.plan(schema, state.next_plan()))
                .flatten();
            let value = match planned {
                Some((plan, shape)) => {
                    metrics.plans.with_label_values(&[&shape.to_string()]).inc();
                    for capability in &config.plans.shapes[shape].steps {
                        metrics.plan_steps.with_label_values(&[capability]).inc();
                    }
                    plan
                }
                None => structured::instance(schema),
            };
            let text = value.to_string();
            let text = if config.structured.is_invalid(state.next_structured()) {
                metrics.structured_invalid.inc();
                structured::truncated(&text)
            } else {
                metrics.structured_valid.inc();
                text
            };
            structured_answer(text, cap)
        }
        Some(ResponseFormat::JsonObject) => structured_answer("{}".to_owned(), cap),
        Some(ResponseFormat::Text) | None => {
            let tokens = sampled.min(cap);
            (Cow::Borrowed(filler(tokens)), tokens, "stop")
        }
    };
    Answer {
        content,
        completion_tokens,
        finish_reason,
    }
}

/// The handler. Order: parse, draw the outcome, then answer at once (429),
/// hang (timeout), or wait the sampled latency and answer 500 or 200 (a
/// streamed 200 spreads the latency over its chunks).
pub(crate) async fn completions(State(state): State<SimState>, body: Bytes) -> Response {
    let metrics = state.metrics();
    let (req, prompt_tokens) = match parse(&body) {
        Ok(parsed) => parsed,
        Err(e) => {
            metrics.bad_request.inc();
            return e.into_response();
        }
    };

    let config = state.current();
    let (error, delay, sampled_tokens) = {
        let mut rng = rand::rng();
        (
            config.errors.pick(&mut rng),
            config.latency.sample(&mut rng),
            config.tokens.sample(&mut rng),
        )
    };
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);

    match error {
        Some(ErrorKind::RateLimited) => {
            metrics.rate_limited.inc();
            return ApiError::rate_limited(config.errors.retry_after_s)
                .with_delay_ms(0)
                .into_response();
        }
        Some(ErrorKind::Timeout) => {
            metrics.timeout.inc();
            if !state.sleep(config.errors.hang()).await {
                return ApiError::shutting_down().into_response();
            }
            return ApiError::timeout()
                .with_delay_ms(config.errors.timeout_s.saturating_mul(1000))
                .into_response();
        }
        Some(ErrorKind::Server) => {
            if !state.sleep(delay).await {
                return ApiError::shutting_down().into_response();
            }
            metrics.server_error.inc();
            return ApiError::server_error()
                .with_delay_ms(delay_ms)
                .into_response();
        }
        None => {}
    }

    let Answer {
        content,
        completion_tokens,
        finish_reason,
    } = answer(&state, &config, &req, sampled_tokens);
    let usage = Usage {
        prompt_tokens,
        completion_tokens: u64::from(completion_tokens),
        total_tokens: prompt_tokens + u64::from(completion_tokens),
        llm_sim_delay_ms: delay_ms,
    };

    if req.stream == Some(true) {
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let streamed = stream::Streamed {
            id: CompletionId(state.next_id()),
            created: unix_now(),
            model: &req.model,
            content: &content,
            finish_reason,
            usage: include_usage.then_some(&usage),
        };
        let response = match streamed.respond(state.clone(), delay, config.stream) {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a chat completion chunk");
                metrics.server_error.inc();
                return ApiError::server_error().into_response();
            }
        };
        metrics.ok.inc();
        metrics.streams.inc();
        metrics.prompt_tokens.inc_by(prompt_tokens);
        metrics
            .completion_tokens
            .inc_by(u64::from(completion_tokens));
        return response;
    }

    if !state.sleep(delay).await {
        return ApiError::shutting_down().into_response();
    }
    let capacity = content.len() + 360;
    let response = ChatResponse {
        id: CompletionId(state.next_id()),
        object: "chat.completion",
        created: unix_now(),
        model: &req.model,
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content,
            },
            finish_reason,
        }],
        usage,
    };
    let mut json = Vec::with_capacity(capacity);
    if let Err(e) = serde_json::to_writer(&mut json, &response) {
        tracing::error!(error = %e, "cannot serialize a chat completion");
        metrics.server_error.inc();
        return ApiError::server_error().into_response();
    }
    metrics.ok.inc();
    metrics.prompt_tokens.inc_by(prompt_tokens);
    metrics
        .completion_tokens
        .inc_by(u64::from(completion_tokens));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                HeaderName::from_static(crate::DELAY_HEADER),
                HeaderValue::from(delay_ms),
            ),
        ],
        json,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn filler_has_about_four_chars_per_token() {
        assert_eq!(filler(0), "");
        assert_eq!(filler(1).len(), 3);
        assert_eq!(filler(100).len(), 399);
        assert_eq!(filler(100).split(' ').count(), 100);
        assert_eq!(filler(MAX_TOKENS + 5).len(), MAX_TOKENS as usize * 4 - 1);
    }

    #[test]
    fn prompt_tokens_count_strings_and_parts() {
        let body = br#"{"model":"m","messages":[
            {"role":"system","content":"12345678"},
            {"role":"user","content":[{"type":"text","text":"abcd"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"assistant","content":null}],"unknown":1}"#;
        let (_, prompt_tokens) = parse(body).unwrap();
        assert_eq!(prompt_tokens, 3);
        let (_, tiny) =
            parse(br#"{"model":"m","messages":[{"role":"user","content":"a"}]}"#).unwrap();
        assert_eq!(tiny, 1);
    }

    #[test]
    fn malformed_requests_are_rejected() {
        for body in [
            &br#"{"messages":[{"role":"user","content":"x"}]}"#[..],
            br#"{"model":"m","messages":[]}"#,
            br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
            br#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
            br#"not json"#,
        ] {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
