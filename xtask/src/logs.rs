//! `cargo xtask logs <component> [-f]`: a component's log.

use std::path::PathBuf;

use anyhow::Result;
use xshell::{Shell, cmd};

use crate::deploy::stack::{self, Stack};

#[derive(clap::Args)]
pub struct Logs {
    /// Component name, as `cargo xtask status` lists it.
    component: String,
    /// Keep printing new lines as they arrive.
    #[arg(short, long)]
    follow: bool,
    /// Lines to show from the end.
    #[arg(short = 'n', long, default_value_t = 100)]
    lines: usize,
    /// The stack's state directory (default: $OCTOLLM_STATE_DIR, else .octollm).
    #[arg(long, env = "OCTOLLM_STATE_DIR", default_value = ".octollm")]
    state_dir: PathBuf,
}

impl Logs {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let stack = Stack::open(&self.state_dir)?;
        let path = stack.log_path(stack::find(&self.component)?);
        let lines = self.lines.to_string();
        let follow = self.follow.then_some("-F");
        cmd!(sh, "tail -n {lines} {follow...} {path}").run()?;
        Ok(())
    }
}
