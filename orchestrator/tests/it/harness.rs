//! Runs the orchestrator binary as a child process with its own port and log.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, Response};
use serde_json::{Value, json};

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Orchestrator {
    child: Option<Child>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    database_url: String,
    llm_url: String,
    port: u16,
    pub log: PathBuf,
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
        let log =
            std::env::temp_dir().join(format!("orchestrator-it-{}.log", uuid::Uuid::new_v4()));
        let mut this = Self {
            child: None,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            database_url: database_url.into(),
            llm_url: llm_url.into(),
            port: free_port(),
            log,
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        this.spawn().await;
        this
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .args(&self.args)
            .env("OCTOLLM_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("OCTOLLM_API_TOKEN", TOKEN)
            .env("DATABASE_URL", &self.database_url)
            .env("LLM_BASE_URL", &self.llm_url)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = self.http.get(self.url("/health")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("orchestrator did not start; log:\n{}", self.log_text());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn wait_ready(&self, within: Duration) {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(r) = self.http.get(self.url("/ready")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "orchestrator not ready within {within:?}; log:\n{}",
            self.log_text()
        );
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

    /// Long-polls until the task is terminal (or `within` passes).
    pub async fn wait_terminal(&self, id: &str, within: Duration) -> Value {
        let started = Instant::now();
        loop {
            let task: Value = self
                .get(&format!("/v1/tasks/{id}?wait=5"))
                .await
                .json()
                .await
                .unwrap();
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
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    /// SIGTERM, and the exit status within `within`.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "no exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        self.kill9();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("orchestrator log kept at {}", self.log.display());
        }
    }
}

/// Value of a sample line `name{labels} value` in Prometheus text.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}
