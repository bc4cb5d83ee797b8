use std::time::Duration;

use llm_client::LlmError;
use tokio::time::Instant;

use crate::{calls, client_for, failing, request};

#[tokio::test]
async fn hanging_provider_returns_by_the_deadline() {
    let sim = llm_sim::spawn(failing(1.0, "timeout=1")).await.unwrap();
    let (client, registry) = client_for(&sim, |c| {
        c.timeout = Duration::from_millis(200);
        c.max_retries = 50;
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(1);
    let err = client.chat(request(), Some(deadline)).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(200), "took {elapsed:?}");
    match err {
        LlmError::DeadlineExceeded {
            attempts,
            last_failure,
        } => {
            assert!(attempts >= 2, "{attempts} attempts");
            assert_eq!(last_failure, Some("timeout"));
            assert_eq!(calls(&registry, "timeout"), f64::from(attempts));
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
}

#[tokio::test]
async fn per_attempt_timeouts_without_deadline_end_in_timeout() {
    let sim = llm_sim::spawn(failing(1.0, "timeout=1")).await.unwrap();
    let (client, registry) = client_for(&sim, |c| {
        c.timeout = Duration::from_millis(100);
        c.max_retries = 1;
    });
    let err = client.chat(request(), None).await.unwrap_err();
    assert_eq!(err, LlmError::Timeout { attempts: 2 });
    assert_eq!(calls(&registry, "timeout"), 2.0);
}

#[tokio::test]
async fn a_past_deadline_fails_at_once_without_calling() {
    let sim = llm_sim::spawn(llm_sim::SimConfig::default()).await.unwrap();
    let (client, registry) = client_for(&sim, |_| {});
    let err = client
        .chat(request(), Some(Instant::now()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LlmError::DeadlineExceeded {
            attempts: 0,
            last_failure: None
        }
    );
    assert_eq!(calls(&registry, "ok") + calls(&registry, "timeout"), 0.0);
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_ends_the_call_at_once() {
    let mut config = failing(1.0, "429=1");
    config.errors.retry_after_s = 30;
    let sim = llm_sim::spawn(config).await.unwrap();
    let (client, _registry) = client_for(&sim, |_| {});
    let started = Instant::now();
    let err = client
        .chat(request(), Some(started + Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err,
        LlmError::DeadlineExceeded {
            attempts: 1,
            last_failure: Some("rate_limited")
        }
    );
}
