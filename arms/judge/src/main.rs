//! judge-arm: parse config, build the judge, serve it with the arm kit.

use std::process::ExitCode;

use arm_protocol::ArmKind;
use clap::Parser;
use judge_arm::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    arm_kit::run(ArmKind::Judge, &args.kit, |kit| {
        judge_arm::build(&args, kit)
    })
    .await
}
