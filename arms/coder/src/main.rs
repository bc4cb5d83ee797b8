//! coder-arm: parse config, build the coder, serve it with the arm kit.

use std::process::ExitCode;

use arm_protocol::ArmKind;
use clap::Parser;
use coder_arm::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    arm_kit::run(ArmKind::Coder, &args.kit, |kit| {
        coder_arm::build(&args, kit)
    })
    .await
}
