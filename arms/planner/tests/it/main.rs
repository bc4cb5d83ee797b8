//! The planner over real HTTP, in-process, against llm-sim.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod failures;
mod mix;
mod planning;

use arm_kit::testing::TestArm;
use arm_protocol::ArmKind;
use llm_client::{LlmClient, LlmConfig};
use llm_sim::{SimConfig, SimHandle};
use planner_arm::Planner;

/// A planner whose LLM is `sim`, retrying fast.
pub async fn planner(sim: &SimHandle) -> TestArm {
    let base_url = sim.base_url();
    arm_kit::testing::serve(ArmKind::Planner, move |kit| {
        let mut config = LlmConfig::new(base_url);
        config.backoff_base = std::time::Duration::from_millis(1);
        config.backoff_cap = std::time::Duration::from_millis(5);
        let llm = LlmClient::new(config, kit.registry())?;
        Ok::<_, Box<dyn std::error::Error>>(arm_kit::ArmParts::new(Planner::new(llm)?))
    })
    .await
}

pub async fn sim(config: SimConfig) -> SimHandle {
    llm_sim::spawn(config).await.unwrap()
}

pub fn series(status: &str) -> String {
    format!(
        "octollm_arm_executions_total{{arm=\"planner\",capability=\"plan\",status=\"{status}\"}}"
    )
}
