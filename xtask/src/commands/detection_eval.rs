//! `cargo xtask detection-eval`: the detection engine scored on public data
//! split by source (crates/detection/eval/manifest.json), through the
//! crate's own `detection-eval` binary: per source and per category
//! precision, recall and FPR, rules alone and fused with the learned stage,
//! and the learned threshold table. It fails (exit 1) when the dev split
//! crosses `crates/detection/eval/floors.json`.
//!
//! The held-out test sources are rebuilt into `target/detection-data/` by
//! `crates/detection/eval/prepare.py`; without them only the committed
//! (train and dev) sources are scored, which is what `cargo xtask ci` does.

use std::path::PathBuf;

use anyhow::Result;
use xshell::{Shell, cmd};

use crate::util::check_failed;

#[derive(clap::Args)]
pub struct DetectionEval {
    /// Score the rules alone (learned stage off).
    #[arg(long)]
    no_learned: bool,
    /// Retrain the learned stage from the train split and rewrite
    /// crates/detection/model/learned.bin (deterministic).
    #[arg(long)]
    train: bool,
    /// Where the sources that are not committed are cached.
    #[arg(long)]
    cache: Option<PathBuf>,
}

impl DetectionEval {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let mut args: Vec<String> = Vec::new();
        if self.train {
            args.push("train".into());
        }
        if self.no_learned {
            args.push("--no-learned".into());
        }
        if let Some(cache) = &self.cache {
            args.push("--cache".into());
            args.push(cache.display().to_string());
        }
        eval(sh, &args)
    }
}

/// The CI step: committed sources only (CI cannot fetch the others), floors
/// on the dev split.
pub fn ci(sh: &Shell) -> Result<()> {
    let empty = sh.create_temp_dir()?;
    eval(
        sh,
        &["--cache".to_string(), empty.path().display().to_string()],
    )
}

fn eval(sh: &Shell, args: &[String]) -> Result<()> {
    let mut command: std::process::Command = cmd!(
        sh,
        "cargo run --quiet --release --locked -p detection --bin detection-eval -- {args...}"
    )
    .into();
    // The report goes straight to this command's stdout and stderr.
    let status = command.status()?;
    match status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(check_failed(
            "detection-eval: the dev split crossed a floor (crates/detection/eval/floors.json)",
        )),
        other => anyhow::bail!("detection-eval failed (exit {other:?})"),
    }
}
