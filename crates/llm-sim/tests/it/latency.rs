use std::time::{Duration, Instant};

use llm_sim::{Latency, SimConfig};

use crate::{chat_body, delay_ms, post_chat};

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

#[tokio::test]
async fn every_answer_reports_its_simulated_delay() {
    let sim = llm_sim::spawn(SimConfig {
        latency: Latency::Fixed { ms: 40 },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    let resp = post_chat(&sim, &chat_body(None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(delay_ms(&resp), 40);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["usage"]["llm_sim_delay_ms"], 40);
    assert!(started.elapsed() >= Duration::from_millis(40));

    // Log-normal delays are whole milliseconds, reported exactly: the
    // answer never comes sooner than the header says.
    let mut config = sim.config();
    config.latency = Latency::LogNormal {
        p50_ms: 20.0,
        p99_ms: 60.0,
    };
    sim.set_config(config).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let started = Instant::now();
        let resp = post_chat(&sim, &chat_body(None)).await;
        let reported = delay_ms(&resp);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["usage"]["llm_sim_delay_ms"], reported);
        assert!(started.elapsed() >= Duration::from_millis(reported));
        seen.insert(reported);
    }
    assert!(seen.len() > 1, "log-normal delays vary: {seen:?}");
}
