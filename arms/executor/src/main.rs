//! executor-arm: parse config, build the executor, serve it with the arm kit.

use std::process::ExitCode;

use arm_protocol::ArmKind;
use clap::Parser;
use executor_arm::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    arm_kit::run(ArmKind::Executor, &args.kit, |kit| {
        executor_arm::build(&args, kit)
    })
    .await
}
