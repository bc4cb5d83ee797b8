//! Traces: the caller's `traceparent` is continued in logs and the response,
//! and spans are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use serde_json::Value;

use crate::harness::{Orchestrator, TOKEN, llm_sim, postgres};

/// An OTLP/HTTP collector that keeps every export body it receives.
async fn collector() -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                ([("content-type", "application/x-protobuf")], Bytes::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

// Multi-threaded: the collector must keep serving while the test thread
// blocks waiting for the orchestrator to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_continued_and_spans_are_exported_over_otlp() {
    let pg = postgres().await;
    let llm = llm_sim().await;
    let (endpoint, received) = collector().await;
    let mut orch = Orchestrator::start_with_env(
        &pg.url(),
        &llm.base_url(),
        &[],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    )
    .await;
    orch.wait_ready(Duration::from_secs(30)).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = orch
        .http
        .post(orch.url("/v1/tasks"))
        .bearer_auth(TOKEN)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({"goal": "trace me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-trace-id"], trace_id);
    let accepted: Value = response.json().await.unwrap();
    let id = accepted["task_id"].as_str().unwrap().to_owned();
    orch.wait_terminal(&id, Duration::from_secs(30)).await;

    let log = orch.log_text();
    let accepted_line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "task accepted")
        .expect("an acceptance log line");
    assert_eq!(accepted_line["trace_id"], trace_id, "{accepted_line}");

    // SIGTERM flushes the batch exporter.
    assert!(orch.terminate(Duration::from_secs(15)).success());
    let bodies = received.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "no OTLP export arrived");
    let all: Vec<u8> = bodies.iter().flat_map(|b| b.to_vec()).collect();
    let raw_trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(
        all.windows(16).any(|w| w == raw_trace_id.as_slice()),
        "exported spans lack the caller's trace id"
    );
    assert!(
        all.windows(12).any(|w| w == b"orchestrator"),
        "exported spans lack service.name"
    );
}
