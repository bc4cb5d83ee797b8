//! `cargo xtask backup`: backs up the local stack's PostgreSQL (pgBackRest)
//! and Redis (an RDB copy with its checksum in the same repository), pushes
//! the results to the Pushgateway (docs/contracts.md, "Metrics"), and with
//! `--verify` checks the whole repository. `--schedule` is the stack's
//! `backup-scheduler` component: a daily full, an hourly differential and
//! Redis copy, a daily verify.

use anyhow::Result;
use xshell::Shell;

use super::StackArgs;
use crate::stack::backup::{self, Kind};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cargo xtask backup                   differential PostgreSQL backup + Redis RDB copy\n  \
cargo xtask backup --kind full --verify\n  \
cargo xtask backup --state-dir /tmp/stack --kind incr\n\n\
Exit codes: 0 backed up (and verified), 1 the repository failed its verify, 3 the backup failed.")]
pub struct Backup {
    #[command(flatten)]
    stack: StackArgs,
    /// full: everything; diff: changes since the last full; incr: since the last backup of any kind.
    #[arg(long, value_enum, default_value_t = Kind::Diff)]
    kind: Kind,
    /// Then check every backup and WAL segment in the repository (`pgbackrest verify`).
    #[arg(long)]
    verify: bool,
    /// Run until stopped, backing up on schedule (used by the stack's backup-scheduler).
    #[arg(long)]
    schedule: bool,
}

impl Backup {
    pub fn run(&self, _sh: &Shell) -> Result<()> {
        let stack = self.stack.open()?;
        if self.schedule {
            return backup::schedule(&stack);
        }
        backup::back_up(&stack, self.kind)?;
        if self.verify {
            backup::verify(&stack)?;
        }
        Ok(())
    }
}
