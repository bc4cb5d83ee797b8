//! The arm framework with a stand-in arm, served in-process over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod execute;
mod openapi;

use std::time::Duration;

use arm_kit::{Arm, ArmError, ArmParts, Call};
use arm_protocol::{ArmKind, ArmUsage, ExecuteResponse};
use serde_json::{Value, json};

/// A judge that echoes its input after `sleep_ms`, or fails as told.
pub struct EchoArm;

impl Arm for EchoArm {
    fn kind(&self) -> ArmKind {
        ArmKind::Judge
    }

    fn cost_tier(&self) -> u8 {
        1
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["text"],
            "properties": {
                "text": {"type": "string", "minLength": 1, "maxLength": 20},
                "sleep_ms": {"type": "integer", "minimum": 0, "maximum": 10000},
                "fail": {"enum": ["forbidden", "upstream", "unavailable"]}
            }
        })
    }

    fn output_schema(&self) -> Value {
        json!({"type": "object", "required": ["echo"], "properties": {"echo": {"type": "string"}}})
    }

    async fn execute(&self, call: Call) -> Result<ExecuteResponse, ArmError> {
        #[derive(serde::Deserialize)]
        struct Input {
            text: String,
            sleep_ms: Option<u64>,
            fail: Option<String>,
        }
        let input: Input = call.input()?;
        if let Some(ms) = input.sleep_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        match input.fail.as_deref() {
            Some("forbidden") => return Err(ArmError::Forbidden("not for you".into())),
            Some("upstream") => return Err(ArmError::Upstream("the LLM fell over".into())),
            Some("unavailable") => return Err(ArmError::Unavailable("db down".into())),
            _ => {}
        }
        Ok(ExecuteResponse {
            output: json!({"echo": input.text, "step": call.step_id}),
            usage: ArmUsage::default(),
            confidence: 1.0,
        })
    }
}

pub async fn serve() -> arm_kit::testing::TestArm {
    arm_kit::testing::serve(ArmKind::Judge, |_kit| {
        Ok::<_, std::convert::Infallible>(ArmParts::new(EchoArm))
    })
    .await
}
