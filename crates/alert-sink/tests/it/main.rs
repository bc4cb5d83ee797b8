//! The sink records what Alertmanager sends, per receiver, and refuses the rest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use test_support::{ServiceProcess, sample};

const TOKEN: &str = "alert-sink-test-token-0123";

#[tokio::test]
async fn records_notifications_per_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = ServiceProcess::new("alert-sink", env!("CARGO_BIN_EXE_alert-sink")).unwrap();
    let listen = sink.listen_addr();
    sink.args(["--dir", dir.path().to_str().unwrap(), "--listen", &listen])
        .env("OCTOLLM_API_TOKEN", TOKEN);
    sink.start(Duration::from_secs(20)).await.unwrap();
    let base = sink.url("");
    let http = reqwest::Client::new();
    let payload = json!({"status": "firing", "receiver": "pagerduty", "alerts": [{"labels": {"alertname": "ServiceDown"}}]});
    let r = http
        .post(format!("{base}/v1/notify/pagerduty"))
        .bearer_auth(TOKEN)
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .post(format!("{base}/v1/notify/pagerduty"))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{base}/v1/notify/pager"))
        .bearer_auth(TOKEN)
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .post(format!("{base}/v1/notify/slack"))
        .bearer_auth(TOKEN)
        .json(&json!({"hello": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    let text = std::fs::read_to_string(dir.path().join("pagerduty.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["payload"]["alerts"][0]["labels"]["alertname"],
        "ServiceDown"
    );
    assert!(!dir.path().join("slack.jsonl").exists());
    let listed: Vec<serde_json::Value> = http
        .get(format!("{base}/v1/notifications/pagerduty"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let metrics = sink.metrics().await.unwrap();
    assert_eq!(
        sample(
            &metrics,
            "octollm_alert_notifications_total",
            &[("receiver", "pagerduty"), ("status", "firing")]
        ),
        Some(1.0),
        "{metrics}"
    );
}
