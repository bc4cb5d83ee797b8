//! `cargo xtask status`: the local stack's components on stdout, as a table
//! or JSON; exit code 1 when a component is down or not ready.

use anyhow::Result;
use serde::Serialize;
use xshell::Shell;

use super::k8s::{self, Target};
use super::{OutputArgs, StackArgs};
use crate::emit;
use crate::stack::{Component, Stack, launch};
use crate::util::check_failed;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cargo xtask status\n  \
cargo xtask status --json | jq '.[] | select(.status != \"up\")'\n  \
OCTOLLM_STATE_DIR=/tmp/stack cargo xtask status\n  \
cargo xtask status --target k8s --context my-cluster   the cluster's OctoLLM workloads, ready/desired\n\n\
Exit codes: 0 every component up, 1 a component down or not ready, 3 no stack there.")]
pub struct Status {
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Which stack: this machine's, or the one in a Kubernetes cluster.
    #[arg(long, value_enum, default_value_t = Target::Local)]
    target: Target,
    /// With --target k8s: the kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
}

#[derive(Serialize)]
pub struct ComponentStatus {
    pub component: &'static str,
    /// `host:port`, or null for a component that listens on none.
    pub address: Option<String>,
    /// `up`, `not-ready` or `down`.
    pub status: &'static str,
    pub pid: Option<i32>,
    pub log: String,
}

impl Status {
    pub fn run(&self, _sh: &Shell) -> Result<()> {
        if self.target == Target::K8s {
            return k8s::status(self.context.as_deref(), self.output.json);
        }
        let stack = self.stack.open()?;
        let rows = statuses(&stack);
        if self.output.json {
            emit!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            print_table(&rows);
        }
        let down = down(&rows);
        if !down.is_empty() {
            return Err(check_failed(format!("not healthy: {}", down.join(", "))));
        }
        Ok(())
    }
}

/// Every component's state, in start order.
pub fn statuses(stack: &Stack) -> Vec<ComponentStatus> {
    Component::ALL
        .iter()
        .map(|&component| {
            let pid = stack.pid(component);
            let status = match pid {
                None => "down",
                Some(_) if launch::is_ready(stack, component) => "up",
                Some(_) => "not-ready",
            };
            ComponentStatus {
                component: component.name(),
                address: component
                    .listens()
                    .then(|| format!("127.0.0.1:{}", stack.port(component))),
                status,
                pid,
                log: stack.log_path(component).display().to_string(),
            }
        })
        .collect()
}

/// The components that are not up.
pub fn down(rows: &[ComponentStatus]) -> Vec<&'static str> {
    rows.iter()
        .filter(|r| r.status != "up")
        .map(|r| r.component)
        .collect()
}

/// The table, on stdout.
pub fn print_table(rows: &[ComponentStatus]) {
    emit!("{:<18} {:<22} {:<10} log", "COMPONENT", "ADDRESS", "STATUS");
    for row in rows {
        emit!(
            "{:<18} {:<22} {:<10} {}",
            row.component,
            row.address.as_deref().unwrap_or("-"),
            row.status,
            row.log
        );
    }
}
