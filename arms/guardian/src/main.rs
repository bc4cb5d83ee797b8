//! guardian-arm: parse config, build the guardian, serve it with the arm kit.

use std::process::ExitCode;

use arm_protocol::ArmKind;
use clap::Parser;
use guardian_arm::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    arm_kit::run(ArmKind::Guardian, &args.kit, |kit| {
        guardian_arm::build(&args, kit)
    })
    .await
}
