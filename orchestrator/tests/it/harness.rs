//! Runs the orchestrator binary as a child process with its own port and log.

use std::time::{Duration, Instant};

use reqwest::{Client, Response};
use serde_json::{Value, json};
use test_support::ServiceProcess;

pub const TOKEN: &str = "integration-test-token-0123456789";

pub fn sim_config(value: Value) -> llm_sim::SimConfig {
    serde_json::from_value(value).expect("valid llm-sim config")
}

/// llm-sim answering at once, without errors.
pub async fn llm_sim() -> llm_sim::SimHandle {
    llm_sim::spawn(llm_sim::SimConfig::default()).await.unwrap()
}

pub async fn postgres() -> test_support::PostgresContainer {
    match test_support::postgres().await {
        Ok(pg) => pg,
        Err(error) => panic!("{error}"),
    }
}

/// How long a start or restart may take to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Orchestrator {
    service: ServiceProcess,
    pub http: Client,
}

impl Orchestrator {
    /// Starts the binary and waits for `/health` (not `/ready`).
    pub async fn start(database_url: &str, llm_url: &str, args: &[&str]) -> Self {
        Self::start_with_env(database_url, llm_url, args, &[]).await
    }

    pub async fn start_with_env(
        database_url: &str,
        llm_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut service =
            ServiceProcess::new("orchestrator", env!("CARGO_BIN_EXE_orchestrator")).unwrap();
        let listen = service.listen_addr();
        service
            .args(args)
            .env("OCTOLLM_LISTEN", listen)
            .env("OCTOLLM_API_TOKEN", TOKEN)
            .env("DATABASE_URL", database_url)
            .env("LLM_BASE_URL", llm_url)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        service.start(START_TIMEOUT).await.unwrap();
        Self {
            service,
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.service.url(path)
    }

    pub fn log_text(&self) -> String {
        self.service.log_text()
    }

    pub async fn wait_ready(&self, within: Duration) {
        self.service.wait_for("/ready", within).await.unwrap();
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST /v1/tasks with `body`, whatever the answer.
    pub async fn post_task(&self, body: Value) -> Response {
        self.post_json("/v1/tasks", &body).await
    }

    /// Submits a task; asserts the 202 and returns its id.
    pub async fn submit(&self, body: Value) -> String {
        let response = self.post_json("/v1/tasks", &body).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        let accepted: Value = response.json().await.unwrap();
        assert_eq!(accepted["status"], "queued");
        accepted["task_id"].as_str().unwrap().to_owned()
    }

    pub async fn submit_goal(&self, goal: &str) -> String {
        self.submit(json!({ "goal": goal })).await
    }

    pub async fn submit_goal_owned(&self, goal: String) -> String {
        self.submit_goal(&goal).await
    }

    /// The JSON body `GET path` answers.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    /// The task as `GET /v1/tasks/{id}` answers it now.
    pub async fn task(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/tasks/{id}")).await
    }

    /// Long-polls until the task is terminal (or `within` passes).
    pub async fn wait_terminal(&self, id: &str, within: Duration) -> Value {
        let started = Instant::now();
        loop {
            let task = self.get_json(&format!("/v1/tasks/{id}?wait=5")).await;
            let status = task["status"].as_str().unwrap_or_default().to_owned();
            if !matches!(status.as_str(), "queued" | "running") {
                return task;
            }
            assert!(
                started.elapsed() < within,
                "task {id} still {status} after {within:?}; log:\n{}",
                self.log_text()
            );
        }
    }

    pub async fn metrics(&self) -> String {
        self.service.metrics().await.unwrap()
    }

    pub fn kill9(&mut self) {
        self.service.kill().unwrap();
    }

    pub async fn restart(&mut self) {
        self.service.restart(START_TIMEOUT).await.unwrap();
    }

    /// SIGTERM, and the exit status within `within`.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        self.service.terminate(within).unwrap()
    }
}
