//! The arm framework: what every OctoLLM arm is built on, over the service kit.
//!
//! An arm implements [`Arm`] (its description and its `execute`); the kit
//! serves it: `GET /v1/capabilities` and `POST /v1/execute` behind the
//! service token, with
//! - the capability checked against the arm's own (422 otherwise),
//! - the input checked against the arm's input schema (422 naming each field),
//! - the request's deadline enforced: past it the work is dropped and the
//!   answer is a 504 problem,
//! - `octollm_arm_executions_total{arm,capability,status}` and
//!   `octollm_arm_execution_duration_seconds{arm,capability}`,
//!
//! plus `/health`, `/ready`, `/health/deep`, `/metrics` and `/openapi.json`
//! from [`service_kit::Kit`]. An arm's `main` is one call to [`run`]:
//!
//! ```ignore
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     let args = Args::parse();
//!     arm_kit::run(ArmKind::Planner, &args.kit, |kit| planner_arm::build(&args, kit)).await
//! }
//! ```

mod error;
pub mod llm;
mod metrics;
mod routes;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use arm_protocol::{ArmDescription, ArmKind, ExecuteResponse};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::Value;
use service_kit::{FieldError, Kit, KitArgs, Readiness, ServiceInfo, telemetry};
use uuid::Uuid;

pub use error::ArmError;
pub use metrics::{ArmMetrics, EXECUTION_STATUSES};
pub use routes::ArmApiDoc;
pub use schema::Schema;

/// What an arm does. The kit calls [`Arm::execute`] only for one of the
/// arm's own capabilities, with an input that passed [`Arm::input_schema`].
pub trait Arm: Send + Sync + 'static {
    /// Which arm this is: its name and capabilities.
    fn kind(&self) -> ArmKind;

    /// 1 (no LLM call) to 3 (one or more LLM calls per step).
    fn cost_tier(&self) -> u8;

    /// JSON Schema of `ExecuteRequest.input`, checked before `execute`.
    fn input_schema(&self) -> Value;

    /// JSON Schema of `ExecuteResponse.output`.
    fn output_schema(&self) -> Value;

    /// Does one step. The future is dropped when the deadline passes, so
    /// work that must not outlive it (child processes) is tied to it.
    fn execute(&self, call: Call)
    -> impl Future<Output = Result<ExecuteResponse, ArmError>> + Send;

    /// `GET /v1/capabilities`.
    fn description(&self) -> ArmDescription {
        let kind = self.kind();
        ArmDescription {
            name: kind.name().to_owned(),
            capabilities: kind
                .capabilities()
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            cost_tier: self.cost_tier(),
            input_schema: self.input_schema(),
            output_schema: self.output_schema(),
        }
    }
}

/// One validated `POST /v1/execute`.
#[derive(Debug)]
pub struct Call {
    pub task_id: Uuid,
    pub step_id: String,
    /// One of the arm's capabilities.
    pub capability: &'static str,
    /// Valid against the arm's input schema.
    pub input: Value,
    /// When the answer is due; LLM calls and child processes stop by then.
    pub deadline: tokio::time::Instant,
    /// The request's headers (the executor reads its capability token here).
    pub headers: http::HeaderMap,
}

impl Call {
    /// The input as the arm's own type; a mismatch is the request's fault (422).
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, ArmError> {
        T::deserialize(&self.input).map_err(|e| {
            ArmError::Invalid(vec![FieldError::new(
                "input",
                format!("does not match the input schema: {e}"),
            )])
        })
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
    }
}

/// Everything an arm's `build` hands the kit.
pub struct ArmParts<A> {
    pub arm: A,
    /// Dependency checks behind `/ready` (e.g. the retriever's PostgreSQL).
    pub readiness: Readiness,
    /// Extra routes, served behind the service token like `/v1/execute`.
    pub routes: Router,
    /// OpenAPI of the extra routes, merged into `/openapi.json`.
    pub openapi: utoipa::openapi::OpenApi,
}

impl<A: Arm> ArmParts<A> {
    pub fn new(arm: A) -> Self {
        Self {
            arm,
            readiness: Readiness::default(),
            routes: Router::new(),
            openapi: utoipa::openapi::OpenApi::default(),
        }
    }

    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    pub fn with_routes(mut self, routes: Router, openapi: utoipa::openapi::OpenApi) -> Self {
        self.routes = routes;
        self.openapi = openapi;
        self
    }
}

/// Name, version and default port of an arm's service, e.g. `planner-arm` on 8001.
pub fn service_info(kind: ArmKind) -> ServiceInfo {
    ServiceInfo {
        name: service_name(kind),
        version: env!("CARGO_PKG_VERSION"),
        default_port: kind.default_port(),
    }
}

/// The service (binary, Prometheus job) name of an arm: `<arm>-arm`.
pub fn service_name(kind: ArmKind) -> &'static str {
    match kind {
        ArmKind::Planner => "planner-arm",
        ArmKind::Retriever => "retriever-arm",
        ArmKind::Coder => "coder-arm",
        ArmKind::Judge => "judge-arm",
        ArmKind::Guardian => "guardian-arm",
        ArmKind::Executor => "executor-arm",
    }
}

/// Why an arm could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the arm's input schema does not compile: {0}")]
    InputSchema(String),
}

/// The whole HTTP app of an arm: its routes behind the service token, and
/// the kit's standard endpoints. Registers the arm's metrics on the kit.
pub fn app<A: Arm>(kit: &Kit, parts: ArmParts<A>) -> Result<Router, SetupError> {
    let ArmParts {
        arm,
        readiness,
        routes,
        mut openapi,
    } = parts;
    let mut doc = <ArmApiDoc as utoipa::OpenApi>::openapi();
    doc.info.title = service_name(arm.kind()).to_owned();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    openapi.info = doc.info.clone();
    doc.merge(openapi);
    // The shared `ExecuteRequest` narrowed to what this arm takes (its own
    // capabilities and input schema): the document then says exactly which
    // requests succeed, and no schema-valid request is refused.
    let capabilities = serde_json::json!(arm.kind().capabilities());
    let input = arm.input_schema();
    kit.refine_openapi(move |doc| {
        let request = &mut doc["components"]["schemas"]["ExecuteRequest"]["properties"];
        if request.is_object() {
            request["capability"]["enum"] = capabilities.clone();
            request["input"] = input.clone();
            // What `ExecuteRequest` validation checks of the step id.
            request["step_id"]["minLength"] = 1.into();
            request["step_id"]["maxLength"] = routes::STEP_ID_MAX_CHARS.into();
            request["step_id"]["pattern"] = service_kit::text::not_blank_pattern().into();
        }
    });
    let api = routes::router(arm, kit.registry())?.merge(routes);
    Ok(kit.app(kit.protect(api), readiness, doc))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An arm's whole life: telemetry, the kit, `build`, the app, serving until
/// SIGTERM. Returns the process exit code (errors printed with their causes).
pub async fn run<A, E>(
    kind: ArmKind,
    kit_args: &KitArgs,
    build: impl FnOnce(&Kit) -> Result<ArmParts<A>, E>,
) -> ExitCode
where
    A: Arm,
    E: Into<BoxError>,
{
    let info = service_info(kind);
    let result = async {
        let _telemetry = telemetry::init(info.name, kit_args.log_format, "info")?;
        let kit = Kit::new(info, kit_args)?;
        let parts = build(&kit).map_err(Into::into)?;
        let app = app(&kit, parts)?;
        kit.serve(app).await?;
        Ok::<(), BoxError>(())
    }
    .await;
    service_kit::exit_code(info.name, result.map_err(|e| ErrorChain(&*e).to_string()))
}

/// Prints an error with its causes, `a: b: c`.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
