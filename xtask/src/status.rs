//! `cargo xtask status`: a table of the local stack; exits non-zero when a
//! component is down or not ready.

use std::path::PathBuf;

use anyhow::{Result, bail};
use xshell::Shell;

use crate::deploy::{self, stack::Stack};

#[derive(clap::Args)]
pub struct Status {
    /// The stack's state directory (default: $OCTOLLM_STATE_DIR, else .octollm).
    #[arg(long, env = "OCTOLLM_STATE_DIR", default_value = ".octollm")]
    state_dir: PathBuf,
}

impl Status {
    pub fn run(&self, _sh: &Shell) -> Result<()> {
        let stack = Stack::open(&self.state_dir)?;
        let down = deploy::print_table(&stack);
        if !down.is_empty() {
            bail!("not healthy: {}", down.join(", "));
        }
        Ok(())
    }
}
