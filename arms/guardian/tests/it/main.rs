//! The guardian over real HTTP, in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod screening;

use arm_kit::testing::TestArm;
use arm_protocol::ArmKind;
use detection::{Detector, DetectorConfig};
use guardian_arm::Guardian;

pub async fn guardian() -> TestArm {
    arm_kit::testing::serve(ArmKind::Guardian, |kit| {
        let detector = Detector::new(DetectorConfig::default()).unwrap();
        Guardian::new(detector, kit.registry()).map(arm_kit::ArmParts::new)
    })
    .await
}
