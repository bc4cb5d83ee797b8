//! `chat_stream` against llm-sim's server-sent events, the simulated delay
//! carried to the caller, and streams that break.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use llm_client::{LlmError, ModelPrice, PriceTable};
use llm_sim::{Latency, SimConfig, StreamConfig, TokenRange};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{calls, client_for, failing, metric, request};

fn ttft_count(registry: &prometheus::Registry, model: &str) -> f64 {
    metric(
        registry,
        "octollm_llm_time_to_first_token_seconds",
        &[("provider", "sim"), ("model", model)],
    )
}

#[tokio::test]
async fn a_streamed_call_returns_the_same_answer_delta_by_delta() {
    let sim = llm_sim::spawn(SimConfig {
        tokens: TokenRange { min: 30, max: 30 },
        stream: StreamConfig {
            ttft_fraction: 0.2,
            chunk_tokens: 4,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (client, registry) = client_for(&sim, |_| {});
    let whole = client.chat(request(), None).await.unwrap();
    assert_eq!(whole.time_to_first_token, None);

    let mut deltas = Vec::new();
    let streamed = client
        .chat_stream(request(), None, |d| deltas.push(d.to_owned()))
        .await
        .unwrap();
    assert_eq!(streamed.content, whole.content);
    assert_eq!(deltas.concat(), whole.content);
    // 30 tokens, 4 a chunk: 8 content deltas.
    assert_eq!(deltas.len(), 8);
    assert_eq!(streamed.usage, whole.usage);
    assert_eq!(streamed.cost_usd, whole.cost_usd);
    assert_eq!(streamed.finish_reason.as_deref(), Some("stop"));
    assert_eq!(streamed.model, "sim-1");
    assert_eq!(streamed.attempts, 1);
    assert!(streamed.time_to_first_token.is_some());
    assert_eq!(streamed.simulated_delay, Some(Duration::ZERO));
    assert_eq!(calls(&registry, "ok"), 2.0);
    assert_eq!(ttft_count(&registry, "sim-1"), 1.0);
    let tokens = metric(
        &registry,
        "octollm_llm_api_tokens_total",
        &[("model", "sim-1"), ("type", "completion")],
    );
    assert_eq!(tokens, 60.0);
}

#[tokio::test]
async fn time_to_first_token_follows_the_simulated_share_of_the_delay() {
    let sim = llm_sim::spawn(SimConfig {
        latency: Latency::Fixed { ms: 300 },
        tokens: TokenRange { min: 12, max: 12 },
        stream: StreamConfig {
            ttft_fraction: 0.5,
            chunk_tokens: 3,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (client, registry) = client_for(&sim, |_| {});
    let started = tokio::time::Instant::now();
    let response = client.chat_stream(request(), None, |_| {}).await.unwrap();
    let elapsed = started.elapsed();
    let ttft = response.time_to_first_token.unwrap();
    assert!(ttft >= Duration::from_millis(150), "ttft {ttft:?}");
    assert!(elapsed >= Duration::from_millis(300), "elapsed {elapsed:?}");
    assert!(ttft < elapsed, "ttft {ttft:?}, elapsed {elapsed:?}");
    assert_eq!(response.simulated_delay, Some(Duration::from_millis(300)));
    assert_eq!(ttft_count(&registry, "sim-1"), 1.0);
}

#[tokio::test]
async fn the_simulated_delay_is_summed_over_every_attempt() {
    // Every other call fails with a 500 after the same 20 ms the successes
    // take; 20 retries make a final failure a one-in-two-million event.
    let mut config = failing(0.5, "500=1");
    config.latency = Latency::Fixed { ms: 20 };
    let sim = llm_sim::spawn(config).await.unwrap();
    let (client, registry) = client_for(&sim, |c| c.max_retries = 20);
    let mut retried = false;
    for streamed in [false, true] {
        for _ in 0..12 {
            let response = if streamed {
                client.chat_stream(request(), None, |_| {}).await.unwrap()
            } else {
                client.chat(request(), None).await.unwrap()
            };
            retried |= response.attempts > 1;
            assert_eq!(
                response.simulated_delay,
                Some(Duration::from_millis(20) * response.attempts),
                "streamed {streamed}, {} attempts",
                response.attempts
            );
        }
    }
    assert!(retried, "no call needed a retry");
    assert!(calls(&registry, "server_error") > 0.0);
}

#[tokio::test]
async fn a_cheaper_model_is_one_field_away() {
    let sim = llm_sim::spawn(SimConfig {
        tokens: TokenRange { min: 100, max: 100 },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut prices = PriceTable::builtin();
    prices.insert(
        "sim-mini",
        ModelPrice {
            prompt_usd_per_million: 0.25,
            completion_usd_per_million: 1.0,
        },
    );
    let (client, registry) = client_for(&sim, |c| c.prices = prices);
    let default = client.chat(request(), None).await.unwrap();
    let mini = client
        .chat_stream(request().with_model("sim-mini"), None, |_| {})
        .await
        .unwrap();
    assert_eq!(default.model, "sim-1");
    assert_eq!(mini.model, "sim-mini");
    assert_eq!(default.usage, mini.usage);
    assert!(
        mini.cost_usd * 9.0 < default.cost_usd,
        "{mini:?} vs {default:?}"
    );
    assert_eq!(ttft_count(&registry, "sim-mini"), 1.0);
    assert_eq!(ttft_count(&registry, "sim-1"), 0.0);
}

/// A one-route HTTP/1.1 server that answers every connection with `reply`
/// (head and body, then closes) and counts the connections.
async fn raw_server(reply: String) -> (String, Arc<AtomicU32>) {
    let reply: Arc<str> = reply.into();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU32::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            tokio::spawn(async move {
                // Read the request head and body (enough for these tests).
                let mut buffer = vec![0u8; 64 * 1024];
                let mut read = 0;
                loop {
                    let n = socket.read(&mut buffer[read..]).await.unwrap_or(0);
                    read += n;
                    let text = String::from_utf8_lossy(&buffer[..read]);
                    if n == 0 || (text.contains("\"messages\"") && text.ends_with('}')) {
                        break;
                    }
                }
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/v1"), connections)
}

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

#[tokio::test]
async fn a_stream_that_breaks_after_a_delta_is_not_retried() {
    let reply =
        format!("{SSE_HEAD}data: {{\"choices\":[{{\"delta\":{{\"content\":\"partial\"}}}}]}}\n\n");
    let (url, connections) = raw_server(reply).await;
    let registry = prometheus::Registry::new();
    let mut config = llm_client::LlmConfig::new(url);
    config.backoff_base = Duration::from_millis(1);
    let client = llm_client::LlmClient::new(config, &registry).unwrap();
    let mut seen = String::new();
    let error = client
        .chat_stream(request(), None, |d| seen.push_str(d))
        .await
        .unwrap_err();
    assert_eq!(seen, "partial");
    assert!(
        matches!(&error, LlmError::Transport(m) if m.contains("ended before its last chunk")),
        "{error}"
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "retried after a delta"
    );
}

#[tokio::test]
async fn a_stream_that_breaks_before_any_delta_is_retried_and_real_providers_report_no_delay() {
    let reply = format!(
        "{SSE_HEAD}data: {{\"model\":\"real-1\",\"choices\":[{{\"delta\":{{\"role\":\"assistant\"}}}}]}}\n\n"
    );
    let (url, connections) = raw_server(reply).await;
    let registry = prometheus::Registry::new();
    let mut config = llm_client::LlmConfig::new(url);
    config.backoff_base = Duration::from_millis(1);
    config.max_retries = 2;
    let client = llm_client::LlmClient::new(config, &registry).unwrap();
    let error = client
        .chat_stream(request(), None, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::Transport(_)), "{error}");
    assert_eq!(connections.load(Ordering::SeqCst), 3);

    let whole = format!(
        "{SSE_HEAD}data: {{\"model\":\"real-1\",\"choices\":[{{\"delta\":{{\"content\":\"hi\"}}}}]}}\n\n\
             data: {{\"choices\":[{{\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: [DONE]\n\n"
    );
    let (url, _) = raw_server(whole).await;
    let client = llm_client::LlmClient::new(
        llm_client::LlmConfig::new(url),
        &prometheus::Registry::new(),
    )
    .unwrap();
    let response = client.chat_stream(request(), None, |_| {}).await.unwrap();
    assert_eq!(response.content, "hi");
    assert_eq!(response.model, "real-1");
    assert_eq!(response.simulated_delay, None);
    // No usage chunk: usage counts 0.
    assert_eq!(response.usage.completion_tokens, 0);
}
