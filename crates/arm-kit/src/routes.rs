//! `GET /v1/capabilities` and `POST /v1/execute`, and their OpenAPI.

use std::sync::Arc;
use std::time::Instant;

use arm_protocol::{ArmDescription, ArmUsage, ExecuteRequest, ExecuteResponse};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use service_kit::{ApiJson, FieldError};
use tracing::Instrument;
use utoipa::OpenApi;

use crate::metrics::OTHER_CAPABILITY;
use crate::{Arm, ArmError, ArmMetrics, Call, Schema, SetupError};

/// Longest `step_id` accepted.
pub const STEP_ID_MAX_CHARS: usize = 64;

struct ArmState<A> {
    arm: A,
    description: ArmDescription,
    input_schema: Schema,
    metrics: ArmMetrics,
}

pub(crate) fn router<A: Arm>(
    arm: A,
    registry: &prometheus::Registry,
) -> Result<Router, SetupError> {
    let description = arm.description();
    let input_schema =
        Schema::compile(description.input_schema.clone()).map_err(SetupError::InputSchema)?;
    let metrics = ArmMetrics::register(registry, arm.kind())?;
    let state = Arc::new(ArmState {
        arm,
        description,
        input_schema,
        metrics,
    });
    Ok(Router::new()
        .route("/v1/capabilities", get(capabilities::<A>))
        .route("/v1/execute", post(execute::<A>))
        .with_state(state))
}

/// The endpoints every arm serves.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "OctoLLM arm",
        description = "An OctoLLM arm: describes its capabilities and executes steps for the orchestrator."
    ),
    paths(capabilities, execute),
    components(schemas(
        ArmDescription,
        ExecuteRequest,
        ExecuteResponse,
        ArmUsage,
        service_kit::Problem,
        service_kit::FieldError
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ArmApiDoc;

/// The service token, as an HTTP bearer scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// What this arm can do: its capabilities, cost tier and the JSON Schemas of
/// its input and output.
#[utoipa::path(get, path = "/v1/capabilities", tag = "arm", security(("bearer" = [])),
    responses(
        (status = 200, body = ArmDescription),
        (status = 401, body = service_kit::Problem, description = "Missing or invalid bearer token.")))]
async fn capabilities<A: Arm>(State(state): State<Arc<ArmState<A>>>) -> ApiJson<ArmDescription> {
    ApiJson(state.description.clone())
}

/// Executes one step. The arm gives up at `deadline` (504).
#[utoipa::path(post, path = "/v1/execute", tag = "arm", security(("bearer" = [])),
    request_body = ExecuteRequest,
    responses(
        (status = 200, body = ExecuteResponse),
        (status = 400, body = service_kit::Problem, description = "Malformed JSON."),
        (status = 401, body = service_kit::Problem, description = "Missing or invalid bearer token."),
        (status = 403, body = service_kit::Problem, description = "Not allowed (e.g. the executor's capability token or allow-list); the detail says why."),
        (status = 413, body = service_kit::Problem, description = "Body too large."),
        (status = 415, body = service_kit::Problem, description = "Not JSON."),
        (status = 422, body = service_kit::Problem, description = "A capability this arm does not serve, an input that fails the arm's input schema, or a deadline already past; `errors` names each field."),
        (status = 502, body = service_kit::Problem, description = "An upstream (the LLM) failed or answered nonsense; retry or fail over."),
        (status = 503, body = service_kit::Problem, description = "A dependency of the arm is down; retry."),
        (status = 504, body = service_kit::Problem, description = "The deadline passed before the work finished.")))]
async fn execute<A: Arm>(
    State(state): State<Arc<ArmState<A>>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ExecuteRequest>,
) -> Response {
    let started = Instant::now();
    let kind = state.arm.kind();
    let Some(capability) = kind
        .capabilities()
        .iter()
        .copied()
        .find(|c| *c == request.capability)
    else {
        state.metrics.record(OTHER_CAPABILITY, "rejected", None);
        return ArmError::invalid(
            "capability",
            format!(
                "the {} arm serves {}; it does not serve this capability",
                kind.name(),
                kind.capabilities().join(", ")
            ),
        )
        .into_response();
    };
    let span = tracing::info_span!(
        "arm.execute",
        arm = kind.name(),
        capability,
        task_id = %request.task_id,
        step_id = tracing::field::Empty,
    );
    let outcome = run(&state, capability, request, headers, &span)
        .instrument(span.clone())
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let _entered = span.enter();
    match outcome {
        Ok(response) => {
            state.metrics.record(capability, "ok", Some(seconds));
            tracing::info!(duration_ms = seconds * 1000.0, "executed");
            ApiJson(response).into_response()
        }
        Err(error) => {
            let status = error.status();
            let label = if status.as_u16() == 504 {
                "timeout"
            } else if status.is_client_error() {
                "rejected"
            } else {
                "error"
            };
            state.metrics.record(capability, label, Some(seconds));
            if status.is_server_error() {
                tracing::warn!(%error, status = status.as_u16(), "execution failed");
            } else {
                tracing::info!(%error, status = status.as_u16(), "execution refused");
            }
            error.into_response()
        }
    }
}

/// Validates the request, then runs the arm until it answers or the deadline passes.
async fn run<A: Arm>(
    state: &ArmState<A>,
    capability: &'static str,
    request: ExecuteRequest,
    headers: HeaderMap,
    span: &tracing::Span,
) -> Result<ExecuteResponse, ArmError> {
    let ExecuteRequest {
        task_id,
        step_id,
        input,
        deadline,
        ..
    } = request;
    let mut errors = Vec::new();
    let step_chars = step_id.chars().count();
    if step_id.trim().is_empty() || step_chars > STEP_ID_MAX_CHARS {
        errors.push(FieldError::new(
            "step_id",
            format!("must be 1-{STEP_ID_MAX_CHARS} characters, not blank"),
        ));
    } else {
        span.record("step_id", step_id.as_str());
    }
    errors.extend(state.input_schema.field_errors(&input, "input"));
    // A deadline already past on arrival is the caller's mistake (422), not
    // work the arm failed to finish (504).
    let left = (deadline - chrono::Utc::now())
        .to_std()
        .ok()
        .filter(|left| !left.is_zero());
    if left.is_none() {
        errors.push(FieldError::new("deadline", "has already passed"));
    }
    let (Some(left), true) = (left, errors.is_empty()) else {
        return Err(ArmError::Invalid(errors));
    };
    let deadline = tokio::time::Instant::now() + left;
    let call = Call {
        task_id,
        step_id,
        capability,
        input,
        deadline,
        headers,
    };
    match tokio::time::timeout_at(deadline, state.arm.execute(call)).await {
        Ok(outcome) => outcome,
        Err(_elapsed) => Err(ArmError::DeadlineExceeded),
    }
}
