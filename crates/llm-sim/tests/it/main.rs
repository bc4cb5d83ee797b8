//! Integration tests: a real llm-sim on a loopback port, driven over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod chat;
mod errors;
mod latency;
mod plans;
mod streaming;
mod structured;

use serde_json::{Value, json};

/// A small chat request body.
fn chat_body(max_tokens: Option<u32>) -> Value {
    let mut body = json!({
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say something about forty characters."}
        ],
        "temperature": 0.2,
        "some_future_field": {"ignored": true}
    });
    if let Some(n) = max_tokens {
        body["max_tokens"] = json!(n);
    }
    body
}

async fn post_chat(sim: &llm_sim::SimHandle, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", sim.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `x-llm-sim-delay-ms` of an answer.
fn delay_ms(resp: &reqwest::Response) -> u64 {
    resp.headers()[llm_sim::DELAY_HEADER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The text of llm-sim's `/metrics`.
async fn metrics_text(sim: &llm_sim::SimHandle) -> String {
    reqwest::get(format!("{}/metrics", sim.origin()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
