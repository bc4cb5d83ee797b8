//! Integration-test helpers (feature `testing`): an arm served in-process on
//! a loopback port, and a client that speaks its API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use arm_protocol::ArmKind;
use serde_json::{Value, json};
use service_kit::telemetry::LogFormat;
use service_kit::{Kit, KitArgs};
use tokio::task::JoinHandle;

use crate::{Arm, ArmParts};

/// The service token of test arms.
pub const TOKEN: &str = "arm-integration-test-token-0123456789";

/// Kit settings for tests: the test token, 1 MiB bodies, 60 s requests.
pub fn kit_args() -> KitArgs {
    KitArgs {
        listen: None,
        log_format: LogFormat::Json,
        api_token: Some(TOKEN.to_owned()),
        api_token_file: None,
        max_body_bytes: 1024 * 1024,
        request_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(1),
    }
}

/// An arm served on `127.0.0.1:<free port>` until dropped.
pub struct TestArm {
    pub base: String,
    pub http: reqwest::Client,
    server: JoinHandle<()>,
}

impl Drop for TestArm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves the arm that `build` makes, with the test token.
pub async fn serve<A: Arm, E: std::fmt::Debug>(
    kind: ArmKind,
    build: impl FnOnce(&Kit) -> Result<ArmParts<A>, E>,
) -> TestArm {
    serve_with(kind, kit_args(), build).await
}

/// [`serve`] with other kit settings.
pub async fn serve_with<A: Arm, E: std::fmt::Debug>(
    kind: ArmKind,
    args: KitArgs,
    build: impl FnOnce(&Kit) -> Result<ArmParts<A>, E>,
) -> TestArm {
    let kit = Kit::new(crate::service_info(kind), &args).unwrap();
    let parts = build(&kit).unwrap();
    let app = crate::app(&kit, parts).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _kit = kit;
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    TestArm {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        server,
    }
}

/// A status and a JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
}

/// An execute request body for `capability` and `input`, due in 30 s.
pub fn execute_body(capability: &str, input: Value) -> Value {
    execute_body_due(capability, input, Duration::from_secs(30))
}

/// An execute request body due `within` from now.
pub fn execute_body_due(capability: &str, input: Value, within: Duration) -> Value {
    let within = chrono::TimeDelta::from_std(within).unwrap();
    json!({
        "task_id": uuid::Uuid::new_v4(),
        "step_id": "s1",
        "capability": capability,
        "input": input,
        "deadline": chrono::Utc::now() + within,
    })
}

impl TestArm {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /v1/execute` with the token.
    pub async fn execute(&self, capability: &str, input: Value) -> Answer {
        self.post("/v1/execute", &execute_body(capability, input), &[])
            .await
    }

    /// `POST path` with the token and extra headers.
    pub async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.http.post(self.url(path)).bearer_auth(TOKEN).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.send().await.unwrap()).await
    }

    /// `GET path`, with the token when `auth`.
    pub async fn get(&self, path: &str, auth: bool) -> Answer {
        let mut request = self.http.get(self.url(path));
        if auth {
            request = request.bearer_auth(TOKEN);
        }
        answer(request.send().await.unwrap()).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one series in `/metrics`, e.g.
    /// `octollm_arm_executions_total{arm="planner",capability="plan",status="ok"}`
    /// (labels in the order Prometheus prints them); 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series)
    }
}

/// The value of `series` (exact name and labels) in a Prometheus text; 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        content_type,
    }
}
