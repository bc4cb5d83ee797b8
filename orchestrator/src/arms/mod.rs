//! The arms behind the orchestrator: their configuration and registry, the
//! routing score, the resilient caller, and the task flow that uses them.
//!
//! With `OCTOLLM_ARMS` unset none of this runs and tasks take the
//! [`crate::pipeline::LlmSteps`] path.

pub mod command;
pub mod config;
pub mod dispatch;
pub mod flow;
pub mod metrics;
pub mod registry;

use std::sync::Arc;

use arm_protocol::ArmKind;
use service_kit::OutboundToken;
use tokio_util::sync::CancellationToken;

pub use config::ArmArgs;
pub use dispatch::{ArmCaller, ArmError};
pub use flow::ArmSteps;
pub use registry::ArmRegistry;

/// Builds the arm flow from `args`, or `None` when no arms are configured,
/// and starts probing the arms. Bad configuration is an error naming it.
pub fn start(
    args: &ArmArgs,
    internal: crate::InternalHttp,
    kit: &service_kit::Kit,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<ArmSteps>> {
    let registry = kit.registry();
    let Some(spec) = &args.arms else {
        return Ok(None);
    };
    let endpoints = config::parse_endpoints(spec).map_err(anyhow::Error::msg)?;
    let token = match (&args.arm_token, &args.arm_token_file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("set OCTOLLM_ARM_TOKEN or OCTOLLM_ARM_TOKEN_FILE, not both")
        }
        (Some(token), None) => OutboundToken::fixed(token.expose())
            .map_err(|e| anyhow::anyhow!("OCTOLLM_ARM_TOKEN: {e}"))?,
        (None, Some(path)) => OutboundToken::from_file(path)
            .map_err(|e| anyhow::anyhow!("OCTOLLM_ARM_TOKEN_FILE: {e}"))?,
        (None, None) => anyhow::bail!(
            "OCTOLLM_ARMS is set but neither OCTOLLM_ARM_TOKEN nor OCTOLLM_ARM_TOKEN_FILE is"
        ),
    };
    // A rotation of the service token reaches the arm calls without a restart.
    kit.follow("arm token", token.clone());
    let capability_key = config::secret(
        args.capability_key.as_ref().map(llm_client::ApiKey::expose),
        args.capability_key_file.as_ref(),
        "OCTOLLM_CAPABILITY_KEY",
    )
    .map_err(anyhow::Error::msg)?;
    if capability_key.is_none() && endpoints.iter().any(|e| e.kind == ArmKind::Executor) {
        anyhow::bail!(
            "an executor arm is configured but neither OCTOLLM_CAPABILITY_KEY nor OCTOLLM_CAPABILITY_KEY_FILE is"
        );
    }
    if args.arm_probe_interval.is_zero() || args.arm_timeout.is_zero() {
        anyhow::bail!("OCTOLLM_ARM_PROBE_INTERVAL and OCTOLLM_ARM_TIMEOUT must be above zero");
    }
    let labels: Vec<&str> = endpoints.iter().map(|e| e.label.as_str()).collect();
    let metrics = metrics::ArmMetrics::register(registry, &labels)?;
    tracing::info!(arms = %labels.join(","), "arms configured: tasks are planned and run by the arms");
    let arms = Arc::new(ArmRegistry::new(
        endpoints,
        internal,
        token,
        &metrics,
        args.arm_circuit_failures,
        args.arm_circuit_cool_down,
    )?);
    tokio::spawn(arms.clone().keep_probing(args.arm_probe_interval, shutdown));
    let route_wait = args
        .arm_route_wait
        .unwrap_or(args.arm_circuit_cool_down + args.arm_probe_interval);
    let caller = ArmCaller::new(
        arms,
        internal,
        metrics,
        args.arm_timeout,
        args.arm_retries,
        route_wait,
    )?;
    Ok(Some(ArmSteps::new(
        caller,
        capability_key.map(String::into_bytes),
        args.executor_commands.clone(),
    )))
}
