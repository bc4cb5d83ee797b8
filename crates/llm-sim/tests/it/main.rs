//! Integration tests: a real llm-sim on a loopback port, driven over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod chat;
mod errors;
mod latency;
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
