//! `cargo xtask prerequisites`: the Debian packages of the stack and of
//! CI's checks, installed with apt-get (as root). The one step of CI that
//! needs root for packages; everything else then runs as a normal user.

use anyhow::Result;
use xshell::Shell;

use crate::emit;
use crate::stack::prerequisites;

#[derive(clap::Args)]
pub struct Prerequisites {
    /// Print the package names (one a line) instead of installing them.
    #[arg(long)]
    list: bool,
}

impl Prerequisites {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        if self.list {
            for package in prerequisites::packages() {
                emit!("{package}");
            }
            return Ok(());
        }
        prerequisites::ensure(sh)
    }
}
