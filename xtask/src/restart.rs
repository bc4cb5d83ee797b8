//! `cargo xtask restart <component>`: stop one component and start it again
//! with its current configuration.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use xshell::Shell;

use crate::deploy::stack::{self, Stack};
use crate::{deploy, say};

#[derive(clap::Args)]
pub struct Restart {
    /// Component name, as `cargo xtask status` lists it.
    component: String,
    /// The stack's state directory (default: $OCTOLLM_STATE_DIR, else .octollm).
    #[arg(long, env = "OCTOLLM_STATE_DIR", default_value = ".octollm")]
    state_dir: PathBuf,
}

impl Restart {
    pub fn run(&self, _sh: &Shell) -> Result<()> {
        let stack = Stack::open(&self.state_dir)?;
        let component = stack::find(&self.component)?;
        let _lock = stack.lock()?;
        stack.stop(component, Duration::from_secs(20))?;
        deploy::reconcile(&stack, component, &deploy::components::timings_of(&stack))?;
        say!("{} restarted", component.name);
        Ok(())
    }
}
