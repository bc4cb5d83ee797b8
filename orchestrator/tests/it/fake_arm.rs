//! An in-test arm speaking the arm-protocol contract, with behaviour the test
//! controls: answer, answer slowly, fail with 5xx, or be killed (listener and
//! every open connection dropped at once, like a crashed process) and come
//! back on the same port.
//!
//! Tests address arms only through [`ArmSet::spec`] (`OCTOLLM_ARMS`), so the
//! real arm binaries can replace these by URL once they exist.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arm_protocol::{
    ArmDescription, ArmKind, ArmUsage, CAPABILITY_TOKEN_HEADER, ExecuteRequest, ExecuteResponse,
    capability_token,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tower::ServiceExt;

pub const ARM_TOKEN: &str = "arm-service-token-for-tests-0123";
pub const CAPABILITY_KEY: &str = "capability-key-for-tests-0123456";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Ok,
    /// Answers after this delay.
    Slow(Duration),
    /// Answers 503 problem+json.
    Fail,
    /// Answers 422 problem+json: the step's input is at fault.
    Reject,
}

/// One call to `/v1/execute`, as the arm saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub task_id: String,
    pub step_id: String,
    pub capability: String,
    pub input: Value,
    pub started: Instant,
    pub finished: Instant,
}

struct Shared {
    kind: ArmKind,
    mode: Mutex<Mode>,
    /// Outputs by capability that replace the defaults.
    outputs: Mutex<Vec<(String, Value)>>,
    calls: Mutex<Vec<Call>>,
}

pub struct FakeArm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl FakeArm {
    pub async fn spawn(kind: ArmKind) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arm = Arc::new(Self {
            shared: Arc::new(Shared {
                kind,
                mode: Mutex::new(Mode::Ok),
                outputs: Mutex::default(),
                calls: Mutex::default(),
            }),
            addr,
            server: Mutex::new(None),
        });
        arm.serve(listener);
        arm
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn set_output(&self, capability: &str, output: Value) {
        let mut outputs = self.shared.outputs.lock().unwrap();
        outputs.retain(|(c, _)| c != capability);
        outputs.push((capability.to_owned(), output));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Drops the listener and every connection, like a crashed process.
    pub fn kill(&self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn revive(&self) {
        self.kill();
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/ready", get(|| async { "ready" }))
            .route("/v1/capabilities", get(capabilities))
            .route("/v1/execute", post(execute))
            .with_state(self.shared.clone());
        // Our own accept loop: aborting it drops the JoinSet, and with it
        // every connection task, so a kill leaves no connection alive.
        let server = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let app = app.clone();
                connections.spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| app.clone().oneshot(request));
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        *self.server.lock().unwrap() = Some(server);
    }
}

impl Drop for FakeArm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {ARM_TOKEN}"))
}

fn problem(status: StatusCode, detail: &str) -> Response {
    (
        status,
        [("content-type", "application/problem+json")],
        Json(json!({"type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "detail": detail})),
    )
        .into_response()
}

async fn capabilities(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorised(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "missing or wrong token");
    }
    Json(ArmDescription {
        name: shared.kind.name().into(),
        capabilities: shared
            .kind
            .capabilities()
            .iter()
            .map(|c| c.to_string())
            .collect(),
        cost_tier: if matches!(shared.kind, ArmKind::Executor | ArmKind::Retriever) {
            1
        } else {
            3
        },
        input_schema: json!({"type": "object"}),
        output_schema: json!({"type": "object"}),
    })
    .into_response()
}

async fn execute(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<ExecuteRequest>,
) -> Response {
    let started = Instant::now();
    if !authorised(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "missing or wrong token");
    }
    if !shared
        .kind
        .capabilities()
        .contains(&request.capability.as_str())
    {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "capability not served here",
        );
    }
    let mode = *shared.mode.lock().unwrap();
    match mode {
        Mode::Fail => return problem(StatusCode::SERVICE_UNAVAILABLE, "arm is failing on purpose"),
        Mode::Reject => return problem(StatusCode::UNPROCESSABLE_ENTITY, "query is too vague"),
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        Mode::Ok => {}
    }
    if request.capability == "run_command" {
        let token = headers
            .get(CAPABILITY_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let command = request.input["command"].as_str().unwrap_or_default();
        let args: Vec<String> =
            serde_json::from_value(request.input["args"].clone()).unwrap_or_default();
        let verdict =
            capability_token::verify(CAPABILITY_KEY.as_bytes(), token, chrono::Utc::now())
                .and_then(|claims| {
                    claims.authorise(request.task_id, &request.step_id, command, &args)
                });
        if let Err(error) = verdict {
            return problem(StatusCode::FORBIDDEN, &error.to_string());
        }
    }
    let output = shared
        .outputs
        .lock()
        .unwrap()
        .iter()
        .find(|(c, _)| *c == request.capability)
        .map(|(_, o)| o.clone())
        .unwrap_or_else(|| default_output(&request));
    shared.calls.lock().unwrap().push(Call {
        task_id: request.task_id.to_string(),
        step_id: request.step_id.clone(),
        capability: request.capability.clone(),
        input: request.input.clone(),
        started,
        finished: Instant::now(),
    });
    Json(ExecuteResponse {
        output,
        usage: ArmUsage {
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_usd: 0.001,
            simulated_llm_ms: 7,
        },
        confidence: 0.9,
    })
    .into_response()
}

/// A three-step plan: `s1` retrieve and `s2` run_command are independent,
/// `s3` generate_code needs both.
pub fn default_plan() -> Value {
    json!({"steps": [
        {"id": "s1", "action": "find the docs about sorting", "capability": "retrieve", "acceptance_criteria": [], "depends_on": []},
        {"id": "s2", "action": "echo hello arms", "capability": "run_command", "acceptance_criteria": [], "depends_on": []},
        {"id": "s3", "action": "write a sort function in rust", "capability": "generate_code", "acceptance_criteria": ["the code sorts"], "depends_on": ["s1", "s2"]},
    ]})
}

fn default_output(request: &ExecuteRequest) -> Value {
    let input = &request.input;
    match request.capability.as_str() {
        "plan" => default_plan(),
        "retrieve" => {
            json!({"documents": [{"id": "d1", "text": "sorting is ordering", "score": 0.9}]})
        }
        "run_command" => {
            let args: Vec<&str> = input["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            json!({"exit_code": 0, "stdout": format!("{}\n", args.join(" ")), "stderr": ""})
        }
        "generate_code" => {
            json!({"language": input["language"], "code": "fn sort(v: &mut [i32]) { v.sort(); }"})
        }
        "explain_code" => json!({"explanation": "it sorts"}),
        "safety_check" => {
            json!({"allowed": true, "risk": "low", "sanitized_text": input["text"], "findings": []})
        }
        "validate" => json!({"valid": true, "issues": [], "score": 0.95}),
        other => json!({"echo": other}),
    }
}

/// One fake arm of each kind, plus any extra instances.
pub struct ArmSet {
    pub arms: Vec<(ArmKind, Arc<FakeArm>)>,
}

impl ArmSet {
    pub async fn all() -> Self {
        let mut arms = Vec::new();
        for kind in ArmKind::ALL {
            arms.push((kind, FakeArm::spawn(kind).await));
        }
        Self { arms }
    }

    /// Adds another instance of `kind` (a failover target); returns it.
    pub async fn add(&mut self, kind: ArmKind) -> Arc<FakeArm> {
        let arm = FakeArm::spawn(kind).await;
        self.arms.push((kind, arm.clone()));
        arm
    }

    /// The first instance of `kind`.
    pub fn get(&self, kind: ArmKind) -> Arc<FakeArm> {
        self.arms
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, a)| a.clone())
            .unwrap()
    }

    /// `OCTOLLM_ARMS`.
    pub fn spec(&self) -> String {
        self.arms
            .iter()
            .map(|(kind, arm)| format!("{}={}", kind.name(), arm.url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The orchestrator environment that points at these arms, with fast
    /// probes and a short circuit cool-down so tests see transitions quickly.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("OCTOLLM_ARMS".into(), self.spec()),
            ("OCTOLLM_ARM_TOKEN".into(), ARM_TOKEN.into()),
            ("OCTOLLM_CAPABILITY_KEY".into(), CAPABILITY_KEY.into()),
            ("OCTOLLM_ARM_PROBE_INTERVAL".into(), "200ms".into()),
            ("OCTOLLM_ARM_TIMEOUT".into(), "3s".into()),
            ("OCTOLLM_ARM_RETRIES".into(), "1".into()),
            ("OCTOLLM_ARM_CIRCUIT_FAILURES".into(), "2".into()),
            ("OCTOLLM_ARM_CIRCUIT_COOL_DOWN".into(), "1s".into()),
        ]
    }
}
