//! `cargo xtask down`: stops every process of the local stack by pid.

use std::fs;

use anyhow::Result;
use xshell::Shell;

use super::StackArgs;
use crate::say;
use crate::stack::deploy::stop_all;
use crate::stack::postgres::Postgres;

#[derive(clap::Args)]
pub struct Down {
    #[command(flatten)]
    stack: StackArgs,
    /// Also delete the data (PostgreSQL cluster, backups, state directory).
    #[arg(long)]
    purge: bool,
}

impl Down {
    pub fn run(&self, _sh: &Shell) -> Result<()> {
        let stack = self.stack.open()?;
        stop_all(&stack)?;
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
