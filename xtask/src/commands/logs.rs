//! `cargo xtask logs <component> [-f]`: a component's log.

use anyhow::Result;
use xshell::{Shell, cmd};

use super::StackArgs;
use crate::stack::Component;

#[derive(clap::Args)]
pub struct Logs {
    /// The component, as `cargo xtask status` lists it.
    #[arg(value_enum)]
    component: Component,
    /// Keep printing new lines as they arrive.
    #[arg(short, long)]
    follow: bool,
    /// Lines to show from the end.
    #[arg(short = 'n', long, default_value_t = 100)]
    lines: usize,
    #[command(flatten)]
    stack: StackArgs,
}

impl Logs {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let stack = self.stack.open()?;
        let path = stack.log_path(self.component);
        let lines = self.lines.to_string();
        let follow = self.follow.then_some("-F");
        cmd!(sh, "tail -n {lines} {follow...} {path}").run()?;
        Ok(())
    }
}
