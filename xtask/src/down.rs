//! `cargo xtask down`: stops every process of the local stack by pid.

use std::fs;
use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

use crate::deploy::postgres::Postgres;
use crate::deploy::stack::Stack;
use crate::{deploy, say};

#[derive(clap::Args)]
pub struct Down {
    /// The stack's state directory (default: $OCTOLLM_STATE_DIR, else .octollm).
    #[arg(long, env = "OCTOLLM_STATE_DIR", default_value = ".octollm")]
    state_dir: PathBuf,
    /// Also delete the data (PostgreSQL cluster, state directory).
    #[arg(long)]
    purge: bool,
}

impl Down {
    pub fn run(&self, _sh: &Shell) -> Result<()> {
        let stack = Stack::open(&self.state_dir)?;
        deploy::stop_all(&stack)?;
        if self.purge {
            Postgres::new(&stack).purge()?;
            fs::remove_dir_all(&stack.state_dir)?;
            say!("purged {}", stack.state_dir.display());
        } else {
            say!("stack stopped; data kept (use --purge to delete it)");
        }
        Ok(())
    }
}
