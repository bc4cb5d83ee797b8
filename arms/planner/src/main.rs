//! planner-arm: parse config, build the planner, serve it with the arm kit.

use std::process::ExitCode;

use arm_protocol::ArmKind;
use clap::Parser;
use planner_arm::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    arm_kit::run(ArmKind::Planner, &args.kit, |kit| {
        planner_arm::build(&args, kit)
    })
    .await
}
