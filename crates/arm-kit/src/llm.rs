//! LLM calls for arms: plain text, and structured output checked against a
//! JSON Schema with one retry, accounting every attempt in [`ArmUsage`].

use arm_protocol::ArmUsage;
use llm_client::{ChatMessage, ChatRequest, ChatResponse, LlmClient};
use serde_json::Value;

use crate::{ArmError, Schema};

/// The usage of one LLM answer.
pub fn usage_of(response: &ChatResponse) -> ArmUsage {
    ArmUsage {
        prompt_tokens: response.usage.prompt_tokens,
        completion_tokens: response.usage.completion_tokens,
        cost_usd: response.cost_usd,
        simulated_llm_ms: response
            .simulated_delay
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// `total += more`.
pub fn add_usage(total: &mut ArmUsage, more: ArmUsage) {
    total.prompt_tokens += more.prompt_tokens;
    total.completion_tokens += more.completion_tokens;
    total.cost_usd += more.cost_usd;
    total.simulated_llm_ms += more.simulated_llm_ms;
}

/// One text answer.
pub async fn text(
    llm: &LlmClient,
    messages: Vec<ChatMessage>,
    max_tokens: u32,
    deadline: tokio::time::Instant,
) -> Result<(String, ArmUsage), ArmError> {
    let response = llm
        .chat(
            ChatRequest::new(messages).with_max_tokens(max_tokens),
            Some(deadline),
        )
        .await?;
    Ok((response.content.clone(), usage_of(&response)))
}

/// What a structured call asks for: a named schema (sent to the provider as
/// `response_format`) and the answer's size bound.
pub struct StructuredOutput<'a> {
    /// `response_format.json_schema.name`, e.g. `plan`.
    pub name: &'a str,
    pub schema: &'a Schema,
    pub max_tokens: u32,
}

/// A structured answer that passed its checks.
#[derive(Debug)]
pub struct Structured<T> {
    pub value: T,
    /// Both attempts' spending when the first answer was invalid.
    pub usage: ArmUsage,
    /// 1, or 2 when the first answer was invalid.
    pub attempts: u32,
}

/// Asks for JSON matching `output.schema`; each answer must parse, match
/// the schema and pass `check` (the caller's own rules, e.g. that a plan's
/// dependencies point backwards). An invalid answer is retried once, with
/// what was wrong; a second invalid answer is a 502 naming the problem.
/// LLM failures are 502; running out of time is 504.
pub async fn structured<T>(
    llm: &LlmClient,
    mut messages: Vec<ChatMessage>,
    output: &StructuredOutput<'_>,
    deadline: tokio::time::Instant,
    check: impl Fn(Value) -> Result<T, String>,
) -> Result<Structured<T>, ArmError> {
    let mut usage = ArmUsage::default();
    let mut last_problem = String::new();
    for attempt in 1..=2u32 {
        let request = ChatRequest::new(messages.clone())
            .with_max_tokens(output.max_tokens)
            .with_json_schema(output.name, output.schema.source().clone());
        let response = llm.chat(request, Some(deadline)).await?;
        add_usage(&mut usage, usage_of(&response));
        match judge(&response.content, output.schema, &check) {
            Ok(value) => {
                return Ok(Structured {
                    value,
                    usage,
                    attempts: attempt,
                });
            }
            Err(problem) => {
                tracing::warn!(
                    attempt,
                    output = output.name,
                    problem = %problem,
                    "the LLM answered an invalid structured output"
                );
                messages.push(ChatMessage::assistant(shorten(&response.content, 4000)));
                messages.push(ChatMessage::user(format!(
                    "That answer is not a valid {}: {problem}. Answer again with only JSON \
                     that satisfies the schema and the rules.",
                    output.name
                )));
                last_problem = problem;
            }
        }
    }
    Err(ArmError::Upstream(format!(
        "the LLM answered an invalid {} twice; last problem: {last_problem}",
        output.name
    )))
}

fn judge<T>(
    content: &str,
    schema: &Schema,
    check: &impl Fn(Value) -> Result<T, String>,
) -> Result<T, String> {
    let value: Value =
        serde_json::from_str(content.trim()).map_err(|e| format!("not JSON ({e})"))?;
    if !schema.is_valid(&value) {
        return Err(format!(
            "does not match the schema ({})",
            schema.describe_problems(&value)
        ));
    }
    check(value)
}

/// At most `max` characters of `text`.
fn shorten(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn answers_are_parsed_schema_checked_then_rule_checked() {
        let schema = Schema::compile(json!({
            "type": "object", "required": ["n"],
            "properties": {"n": {"type": "integer"}}
        }))
        .unwrap();
        let even = |v: Value| {
            let n = v["n"].as_i64().unwrap_or(1);
            if n % 2 == 0 {
                Ok(n)
            } else {
                Err(format!("n must be even, got {n}"))
            }
        };
        assert_eq!(judge(" {\"n\": 4}\n", &schema, &even), Ok(4));
        assert!(
            judge("{\"n\": 4", &schema, &even)
                .unwrap_err()
                .starts_with("not JSON")
        );
        assert!(
            judge("{\"n\": \"4\"}", &schema, &even)
                .unwrap_err()
                .contains("does not match the schema (/n:")
        );
        assert_eq!(
            judge("{\"n\": 3}", &schema, &even),
            Err("n must be even, got 3".to_owned())
        );
    }
}
