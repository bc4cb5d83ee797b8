//! `stream: true`: OpenAI's server-sent events, on the latency schedule.

use std::time::{Duration, Instant};

use llm_sim::{ErrorConfig, Latency, SimConfig, StreamConfig, TokenRange};
use serde_json::{Value, json};

use crate::{chat_body, delay_ms, metrics_text, post_chat};

/// The events of a streamed answer (`data: ` stripped), and when the first
/// one with non-empty content arrived, measured from `started`.
struct Events {
    data: Vec<String>,
    first_content: Option<Duration>,
    done: Duration,
}

async fn read_events(mut resp: reqwest::Response, started: Instant) -> Events {
    let mut buffer = String::new();
    let mut data = Vec::new();
    let mut first_content = None;
    while let Some(bytes) = resp.chunk().await.unwrap() {
        buffer.push_str(std::str::from_utf8(&bytes).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let payload = event.trim_end().strip_prefix("data: ").unwrap().to_owned();
            if first_content.is_none() && payload != "[DONE]" {
                let chunk: Value = serde_json::from_str(&payload).unwrap();
                let content = chunk["choices"][0]["delta"]["content"].as_str();
                if content.is_some_and(|c| !c.is_empty()) {
                    first_content = Some(started.elapsed());
                }
            }
            data.push(payload);
        }
    }
    assert!(buffer.is_empty(), "trailing bytes {buffer:?}");
    Events {
        data,
        first_content,
        done: started.elapsed(),
    }
}

fn streaming(mut body: Value, include_usage: bool) -> Value {
    body["stream"] = json!(true);
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

#[tokio::test]
async fn a_streamed_answer_has_openai_chunks_and_the_same_text() {
    let sim = llm_sim::spawn(SimConfig {
        tokens: TokenRange { min: 10, max: 10 },
        stream: StreamConfig {
            ttft_fraction: 0.2,
            chunk_tokens: 3,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let plain: Value = post_chat(&sim, &chat_body(None))
        .await
        .json()
        .await
        .unwrap();
    let text = plain["choices"][0]["message"]["content"].as_str().unwrap();

    let started = Instant::now();
    let resp = post_chat(&sim, &streaming(chat_body(None), true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(delay_ms(&resp), 0);
    assert_eq!(resp.headers()[llm_sim::TTFT_HEADER], "0");
    let events = read_events(resp, started).await;
    // 10 tokens of 4 characters in chunks of 3 tokens: 4 content chunks,
    // the finishing chunk, the usage chunk, [DONE].
    assert_eq!(events.data.len(), 7, "{:?}", events.data);
    assert_eq!(events.data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events.data[..6]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let id = &chunks[0]["id"];
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(&chunk["id"], id);
        assert_eq!(chunk["model"], "test-model");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks[1]["choices"][0]["delta"].get("role").is_none());
    let streamed: String = chunks[..4]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, text);
    assert!(
        chunks[..4]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[5]["choices"], json!([]));
    assert_eq!(chunks[5]["usage"]["completion_tokens"], 10);
    assert_eq!(
        chunks[5]["usage"]["prompt_tokens"],
        plain["usage"]["prompt_tokens"]
    );
    assert_eq!(chunks[5]["usage"]["llm_sim_delay_ms"], 0);

    // Without include_usage there is no usage chunk.
    let started = Instant::now();
    let events = read_events(
        post_chat(&sim, &streaming(chat_body(None), false)).await,
        started,
    )
    .await;
    assert_eq!(events.data.len(), 6);
    assert!(events.data.iter().all(|d| !d.contains("\"usage\"")));

    let metrics = metrics_text(&sim).await;
    assert!(
        metrics.contains("llm_sim_streamed_responses_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"llm_sim_requests_total{outcome="ok"} 3"#));
}

#[tokio::test]
async fn the_first_token_comes_after_its_share_of_the_delay_and_the_end_after_all_of_it() {
    let sim = llm_sim::spawn(SimConfig {
        latency: Latency::Fixed { ms: 400 },
        tokens: TokenRange { min: 8, max: 8 },
        stream: StreamConfig {
            ttft_fraction: 0.5,
            chunk_tokens: 2,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    let resp = post_chat(&sim, &streaming(chat_body(None), true)).await;
    assert_eq!(delay_ms(&resp), 400);
    assert_eq!(resp.headers()[llm_sim::TTFT_HEADER], "200");
    // The headers come at once, before the first token.
    assert!(started.elapsed() < Duration::from_millis(200));
    let events = read_events(resp, started).await;
    let first = events.first_content.unwrap();
    assert!(
        first >= Duration::from_millis(200),
        "first token at {first:?}"
    );
    assert!(
        events.done >= Duration::from_millis(400),
        "done at {:?}",
        events.done
    );
    // The rest is spread over the chunks: the first token is well before the end.
    assert!(
        events.done - first >= Duration::from_millis(100),
        "first {first:?}, done {:?}",
        events.done
    );
    let usage: Value = serde_json::from_str(&events.data[events.data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["llm_sim_delay_ms"], 400);
}

#[tokio::test]
async fn structured_answers_stream_too_and_errors_stay_plain() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let mut body = chat_body(None);
    body["response_format"] = json!({"type": "json_schema", "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "required": ["answer"],
                   "properties": {"answer": {"type": "string"}}}
    }});
    let started = Instant::now();
    let events = read_events(post_chat(&sim, &streaming(body, false)).await, started).await;
    let text: String = events
        .data
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            let chunk: Value = serde_json::from_str(d).unwrap();
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert!(value["answer"].is_string());

    // An injected 429 is an ordinary JSON error, stream or not.
    sim.set_config(SimConfig {
        errors: ErrorConfig {
            rate: 1.0,
            kinds: "429=1".parse().unwrap(),
            ..ErrorConfig::default()
        },
        ..SimConfig::default()
    })
    .unwrap();
    let resp = post_chat(&sim, &streaming(chat_body(None), true)).await;
    assert_eq!(resp.status(), 429);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
}
