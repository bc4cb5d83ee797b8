//! The sink records what Alertmanager sends, per receiver, and refuses the rest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

const TOKEN: &str = "alert-sink-test-token-0123";

#[tokio::test]
async fn records_notifications_per_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alert-sink"))
        .args([
            "--dir",
            dir.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("OCTOLLM_API_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"octollm_alert_notifications_total{receiver="pagerduty",status="firing"} 1"#
        ),
        "{metrics}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
