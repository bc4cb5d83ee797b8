//! `cargo xtask restart <component>`: stop one component and start it again
//! with its current configuration.

use std::time::Duration;

use anyhow::Result;
use xshell::Shell;

use super::StackArgs;
use crate::say;
use crate::stack::deploy::reconcile;
use crate::stack::{Component, launch};

#[derive(clap::Args)]
pub struct Restart {
    /// The component, as `cargo xtask status` lists it.
    #[arg(value_enum)]
    component: Component,
    #[command(flatten)]
    stack: StackArgs,
}

impl Restart {
    pub fn run(&self, _sh: &Shell) -> Result<()> {
        let stack = self.stack.open()?;
        let _lock = stack.lock()?;
        stack.stop(self.component, Duration::from_secs(20))?;
        reconcile(&stack, self.component, &launch::timings_of(&stack))?;
        say!("{} restarted", self.component);
        Ok(())
    }
}
