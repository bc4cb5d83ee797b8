use std::time::{Duration, Instant};

use llm_sim::{Latency, SimConfig};

use crate::{chat_body, post_chat};

#[tokio::test]
async fn fixed_latency_is_applied() {
    let sim = llm_sim::spawn(SimConfig {
        latency: Latency::Fixed { ms: 50 },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(post_chat(&sim, &chat_body(None)).await.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}

#[tokio::test]
async fn uniform_latency_respects_its_minimum() {
    let sim = llm_sim::spawn(SimConfig {
        latency: Latency::Uniform {
            min_ms: 30,
            max_ms: 60,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    assert_eq!(post_chat(&sim, &chat_body(None)).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(30));
}
