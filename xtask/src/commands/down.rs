//! `cargo xtask down`: stops every process of the local stack by pid.

use std::fs;

use anyhow::Result;
use xshell::Shell;

use super::StackArgs;
use super::k8s::{self, OverlayArg, Target};
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
    /// Which stack: this machine's, or the one in a Kubernetes cluster
    /// (there --purge deletes the namespaces, volumes included).
    #[arg(long, value_enum, default_value_t = Target::Local)]
    target: Target,
    /// With --target k8s: the overlay that was deployed.
    #[arg(long, value_enum, default_value_t = OverlayArg::Dev)]
    overlay: OverlayArg,
    /// With --target k8s: the kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
}

impl Down {
    pub fn run(&self, _sh: &Shell) -> Result<()> {
        if self.target == Target::K8s {
            return k8s::down(self.overlay.overlay(), self.context.as_deref(), self.purge);
        }
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
