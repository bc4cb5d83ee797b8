//! `cargo xtask deploy`: the whole stack on this machine as supervised local
//! processes — PostgreSQL (+ pgBackRest), Redis, llm-sim, the services, the
//! exporters, Alertmanager (+ the alert sink) and Prometheus.
//!
//! Rerunning reconciles: a component whose binary, arguments, environment or
//! rendered config changed is restarted; the others, and all data, are kept.
//!
//! `--target k8s` renders the typed manifests of `crates/k8s-manifests`
//! instead (`--dry-run`), or applies them with kubectl (`commands::k8s`).

use std::time::Instant;

use anyhow::{Result, bail};
use xshell::Shell;

use super::StackArgs;
use super::k8s::{self, OverlayArg, Target};
use super::status::{print_table, statuses};
use crate::say;
use crate::stack::Component;
use crate::stack::deploy::DeployPlan;
use crate::stack::ports::{self, PlannedStack};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cargo xtask deploy                                   the stack in .octollm/, default ports\n  \
cargo xtask deploy --state-dir /tmp/s2 --port-base 22800   a second stack beside it\n  \
cargo xtask deploy --compress-time 30                alert windows 30x shorter, for alert-sim\n  \
cargo xtask deploy --target k8s --dry-run            the dev overlay's manifests on stdout\n  \
cargo xtask deploy --target k8s --dry-run --out deploy/k8s   regenerate the committed kustomize layout\n  \
cargo xtask deploy --target k8s --check              the manifest checks of `cargo xtask ci`\n  \
cargo xtask deploy --target k8s --podman-smoke       the podman kube play smoke of `cargo xtask ci`\n  \
cargo xtask deploy --target k8s --overlay prod --context my-cluster   apply (server-side) and wait for rollouts\n\n\
Exit codes: 0 deployed, 2 usage, 3 a component failed to start (the error names it and shows its log).")]
pub struct Deploy {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Added to every default port, so two stacks can run side by side.
    /// Throwaway stacks of the checks use their own bases (docs/contracts.md, "Port plan").
    #[arg(long, default_value_t = PlannedStack::Default.port_base())]
    pub port_base: u16,
    /// Skip the smoke task after start-up.
    #[arg(long)]
    pub no_smoke: bool,
    /// Where to deploy: this machine, or a Kubernetes cluster through kubectl.
    #[arg(long, value_enum, default_value_t = Target::Local)]
    pub target: Target,
    /// With --target k8s: render the manifests instead of applying them.
    #[arg(long, requires = "target")]
    pub dry_run: bool,
    /// With --dry-run: write the kustomize layout (base, dev, prod) into DIR
    /// instead of printing the overlay's YAML.
    #[arg(long, value_name = "DIR", requires = "dry_run")]
    pub out: Option<std::path::PathBuf>,
    /// With --target k8s: check the manifests as `cargo xtask ci` does
    /// (kubectl kustomize against the rendering, kubernetes-validate
    /// --strict 1.33, checkov) instead of deploying.
    #[arg(long, requires = "target", conflicts_with = "dry_run")]
    pub check: bool,
    /// With --target k8s: play the services' Deployments with `podman kube
    /// play` on this machine and smoke them, as `cargo xtask ci` does.
    #[arg(long, requires = "target", conflicts_with_all = ["dry_run", "check"])]
    pub podman_smoke: bool,
    /// With --target k8s: which overlay.
    #[arg(long, value_enum, default_value_t = OverlayArg::Dev)]
    pub overlay: OverlayArg,
    /// With --target k8s: the kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Run the alerting path on compressed time, for `cargo xtask alert-sim`:
    /// 2 s scrape and 1 s evaluation intervals, 1 s group_wait, 2 s
    /// group_interval, and a copy of the rules with every `for:`, range
    /// window and group interval divided by FACTOR (deploy/monitoring/README.md).
    /// A later deploy without it goes back to normal time.
    #[arg(long, value_name = "FACTOR", value_parser = clap::value_parser!(u32).range(2..=3600))]
    pub compress_time: Option<u32>,
}

impl Deploy {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        if self.target == Target::K8s {
            let overlay = self.overlay.overlay();
            return if self.check {
                k8s::check::run()
            } else if self.podman_smoke {
                k8s::kube_play::run(sh)
            } else if self.dry_run {
                k8s::dry_run(overlay, self.out.as_deref())
            } else {
                k8s::deploy(overlay, self.context.as_deref())
            };
        }
        if self.dry_run {
            bail!("--dry-run renders the Kubernetes manifests: add --target k8s");
        }
        let started = Instant::now();
        if let Some(planned) = ports::overlapping(self.port_base) {
            say!(
                "warning: port base {} shares ports with the {} stack of the port plan (docs/contracts.md); {} is kept free for a second stack",
                self.port_base,
                planned.name(),
                PlannedStack::Spare.port_base()
            );
        }
        let stack = DeployPlan {
            state_dir: self.stack.state_dir.clone(),
            port_base: self.port_base,
            smoke: !self.no_smoke,
            compress_time: self.compress_time,
        }
        .run(sh)?;
        print_table(&statuses(&stack));
        say!("deployed in {:.1?}", started.elapsed());
        say!(
            "API token: {path} (mode 0600; it opens the orchestrator's API only). Try (the header file keeps the token off curl's argv):\n    curl -H @{header} -H 'Content-Type: application/json' \\\n         -d '{{\"goal\":\"say hello\"}}' {url}/v1/tasks",
            path = stack.token_path().display(),
            header = stack.secret_path("api-token.header").display(),
            url = stack.url(Component::Orchestrator)
        );
        Ok(())
    }
}
