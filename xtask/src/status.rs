//! `cargo xtask status`: a table of the local stack; exits non-zero when a
//! component is down.

use std::path::PathBuf;

use anyhow::{Result, bail};
use xshell::Shell;

use crate::deploy;
use crate::deploy::stack::{COMPONENTS, Stack};

#[derive(clap::Args)]
pub struct Status {
    #[arg(long, default_value = ".octollm")]
    state_dir: PathBuf,
}

impl Status {
    pub fn run(&self, _sh: &Shell) -> Result<()> {
        let stack = Stack::open(&self.state_dir)?;
        deploy::print_table(&stack);
        let down: Vec<&str> = COMPONENTS
            .iter()
            .copied()
            .filter(|c| stack.pid(c).is_none())
            .collect();
        if !down.is_empty() {
            bail!("down: {}", down.join(", "));
        }
        Ok(())
    }
}
