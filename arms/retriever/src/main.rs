//! retriever-arm: parse config, build the retriever, serve it with the arm kit.

use std::process::ExitCode;

use arm_protocol::ArmKind;
use clap::Parser;
use retriever_arm::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    arm_kit::run(ArmKind::Retriever, &args.kit, |kit| {
        retriever_arm::build(&args, kit)
    })
    .await
}
