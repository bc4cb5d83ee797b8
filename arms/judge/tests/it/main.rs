//! The judge over real HTTP, in-process, against llm-sim.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod judging;

use arm_kit::testing::TestArm;
use arm_protocol::ArmKind;
use judge_arm::Judge;
use llm_client::{LlmClient, LlmConfig};

pub async fn judge(sim: &llm_sim::SimHandle) -> TestArm {
    let base_url = sim.base_url();
    arm_kit::testing::serve(ArmKind::Judge, move |kit| {
        let mut config = LlmConfig::new(base_url);
        config.backoff_base = std::time::Duration::from_millis(1);
        config.backoff_cap = std::time::Duration::from_millis(5);
        let llm = LlmClient::new(config, kit.registry())?;
        Ok::<_, Box<dyn std::error::Error>>(arm_kit::ArmParts::new(Judge::new(llm)?))
    })
    .await
}

/// Chat requests llm-sim answered successfully.
pub fn llm_calls(sim: &llm_sim::SimHandle) -> f64 {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&sim.state().registry().gather())
        .unwrap();
    arm_kit::testing::metric_value(&text, "llm_sim_requests_total{outcome=\"ok\"}")
}
