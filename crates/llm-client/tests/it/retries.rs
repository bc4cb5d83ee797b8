use std::time::{Duration, Instant};

use llm_client::{ChatRequest, LlmError};
use llm_sim::SimConfig;

use crate::{calls, client_for, failing, request};

#[tokio::test]
async fn rate_limits_are_retried_until_success() {
    // Half the calls get 429 (Retry-After: 0); 20 retries make a final
    // failure a one-in-two-million event per call.
    let sim = llm_sim::spawn(failing(0.5, "429=1")).await.unwrap();
    let (client, registry) = client_for(&sim, |c| c.max_retries = 20);
    let mut retried = 0;
    let mut total_attempts = 0;
    for _ in 0..40 {
        let response = client.chat(request(), None).await.unwrap();
        total_attempts += response.attempts;
        if response.attempts > 1 {
            retried += 1;
        }
    }
    assert!(retried > 0, "no call needed a retry");
    assert_eq!(calls(&registry, "ok"), 40.0);
    assert_eq!(
        calls(&registry, "rate_limited"),
        f64::from(total_attempts - 40)
    );
}

#[tokio::test]
async fn persistent_500_fails_after_max_retries_plus_one() {
    let sim = llm_sim::spawn(failing(1.0, "500=1")).await.unwrap();
    let (client, registry) = client_for(&sim, |c| c.max_retries = 3);
    let err = client.chat(request(), None).await.unwrap_err();
    assert_eq!(
        err,
        LlmError::Server {
            status: 500,
            attempts: 4
        }
    );
    assert_eq!(
        err.to_string(),
        "LLM provider answered 500 after 4 attempts"
    );
    assert!(err.retryable());
    assert_eq!(err.kind(), "server_error");
    assert_eq!(calls(&registry, "server_error"), 4.0);
    assert_eq!(calls(&registry, "ok"), 0.0);
}

#[tokio::test]
async fn rate_limit_exhaustion_is_reported_as_such() {
    let sim = llm_sim::spawn(failing(1.0, "429=1")).await.unwrap();
    let (client, registry) = client_for(&sim, |c| c.max_retries = 2);
    let err = client.chat(request(), None).await.unwrap_err();
    assert_eq!(err, LlmError::RateLimited { attempts: 3 });
    assert_eq!(calls(&registry, "rate_limited"), 3.0);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let mut config = failing(1.0, "429=1");
    config.errors.retry_after_s = 1;
    let sim = llm_sim::spawn(config).await.unwrap();
    let (client, _registry) = client_for(&sim, |c| c.max_retries = 1);
    let started = Instant::now();
    let err = client.chat(request(), None).await.unwrap_err();
    assert_eq!(err, LlmError::RateLimited { attempts: 2 });
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let (client, registry) = client_for(&sim, |_| {});
    // llm-sim rejects an empty conversation with 400.
    let err = client
        .chat(ChatRequest::new(vec![]), None)
        .await
        .unwrap_err();
    match &err {
        LlmError::Client { status, message } => {
            assert_eq!(*status, 400);
            assert!(message.contains("messages"), "{message}");
        }
        other => panic!("expected a client error, got {other:?}"),
    }
    assert!(!err.retryable());
    assert_eq!(calls(&registry, "client_error"), 1.0);
}

#[tokio::test]
async fn connection_errors_are_transport_errors_after_retries() {
    let sim = llm_sim::spawn(SimConfig::default()).await.unwrap();
    let (client, registry) = client_for(&sim, |c| c.max_retries = 2);
    sim.shutdown().await.unwrap();
    let err = client.chat(request(), None).await.unwrap_err();
    assert_eq!(err.kind(), "transport_error");
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
    assert_eq!(calls(&registry, "transport_error"), 3.0);
}
