//! The Kubernetes target (`--target k8s` of deploy, status and down): the
//! manifests come from `crates/k8s-manifests`; this module renders them,
//! builds the `kubectl` commands that apply, watch and remove them, and
//! runs those commands.
//!
//! No cluster is reachable from the machine this repository is developed
//! on: the apply, status and down paths are unit-tested for the commands
//! they build, not run against a live cluster.

pub mod check;
pub mod kube_play;

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use k8s_manifests::{Object, Overlay, kustomize, render, to_yaml};

use crate::util::{check_failed, progress, project_root, run_with_input};
use crate::{emit, say};

/// `--target` of deploy, status and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Supervised processes on this machine.
    Local,
    /// Typed manifests (crates/k8s-manifests) applied with kubectl.
    K8s,
}

/// `--overlay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OverlayArg {
    Dev,
    Prod,
}

impl OverlayArg {
    pub fn overlay(self) -> Overlay {
        match self {
            OverlayArg::Dev => Overlay::Dev,
            OverlayArg::Prod => Overlay::Prod,
        }
    }
}

/// The Prometheus Operator's CRDs, applied server-side before anything
/// else (client-side apply cannot carry them: their annotations outgrow
/// the 256 KiB limit, which is why kube-prometheus' CRDs "never upgrade").
pub const PROMETHEUS_OPERATOR_CRDS: &str = "https://github.com/prometheus-operator/prometheus-operator/releases/download/v0.83.0/stripped-down-crds.yaml";

/// The CRDs the rendering's custom resources need, established before they are applied.
pub const CRDS: &[&str] = &[
    "prometheuses.monitoring.coreos.com",
    "alertmanagers.monitoring.coreos.com",
    "alertmanagerconfigs.monitoring.coreos.com",
    "servicemonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
    // Velero's own install (`velero install`) brings it; the apply waits for it.
    "schedules.velero.io",
];

/// Server-side apply under one field manager.
const FIELD_MANAGER: &str = "octollm-xtask";

/// One kubectl invocation: its arguments, what goes on its stdin, and the
/// progress line shown while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kubectl {
    pub args: Vec<String>,
    pub stdin: Option<String>,
    pub label: String,
}

impl Kubectl {
    fn new(label: impl Into<String>, context: Option<&str>, args: &[&str]) -> Self {
        let mut all: Vec<String> = context
            .map(|c| vec!["--context".to_owned(), c.to_owned()])
            .unwrap_or_default();
        all.extend(args.iter().map(|a| (*a).to_owned()));
        Self {
            args: all,
            stdin: None,
            label: label.into(),
        }
    }

    fn with_stdin(mut self, text: String) -> Self {
        self.stdin = Some(text);
        self
    }

    /// Runs it; its stdout.
    pub fn run(&self) -> Result<String> {
        let mut command = Command::new("kubectl");
        command.args(&self.args);
        run_with_input(&mut command, self.stdin.as_deref().unwrap_or_default())
            .with_context(|| format!("kubectl {}", self.label))
    }
}

fn workloads(objects: &[Object]) -> Vec<&Object> {
    objects
        .iter()
        .filter(|o| {
            matches!(
                o,
                Object::Deployment(_) | Object::StatefulSet(_) | Object::DaemonSet(_)
            )
        })
        .collect()
}

/// Everything `deploy --target k8s` runs, in order: the operator's CRDs
/// (server-side, conflicts forced: we own them), a wait until every CRD we
/// use is established, the built-in objects server-side, then the custom
/// resources, then a `rollout status` per workload.
pub fn apply_plan(objects: &[Object], context: Option<&str>) -> Result<Vec<Kubectl>> {
    let mut plan = vec![Kubectl::new(
        "apply the Prometheus Operator CRDs",
        context,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            FIELD_MANAGER,
            "-f",
            PROMETHEUS_OPERATOR_CRDS,
        ],
    )];
    let mut wait = vec![
        "wait",
        "--for",
        "condition=Established",
        "--timeout",
        "120s",
    ];
    let crds: Vec<String> = CRDS.iter().map(|c| format!("crd/{c}")).collect();
    wait.extend(crds.iter().map(String::as_str));
    plan.push(Kubectl::new("wait for the CRDs", context, &wait));
    let (custom, builtin): (Vec<Object>, Vec<Object>) =
        objects.iter().cloned().partition(Object::is_custom);
    plan.push(
        Kubectl::new(
            format!("apply {} objects", builtin.len()),
            context,
            &[
                "apply",
                "--server-side",
                "--field-manager",
                FIELD_MANAGER,
                "-f",
                "-",
            ],
        )
        .with_stdin(to_yaml(&builtin)?),
    );
    plan.push(
        Kubectl::new(
            format!("apply {} custom resources", custom.len()),
            context,
            &[
                "apply",
                "--server-side",
                "--field-manager",
                FIELD_MANAGER,
                "-f",
                "-",
            ],
        )
        .with_stdin(to_yaml(&custom)?),
    );
    let all = workloads(objects);
    for (i, w) in all.iter().enumerate() {
        let target = format!("{}/{}", w.kind().to_lowercase(), w.name());
        plan.push(Kubectl::new(
            format!(
                "rollout {}/{} {target} in {}",
                i + 1,
                all.len(),
                w.namespace().unwrap_or_default()
            ),
            context,
            &[
                "rollout",
                "status",
                &target,
                "-n",
                w.namespace().unwrap_or_default(),
                "--timeout",
                "300s",
            ],
        ));
    }
    Ok(plan)
}

/// `down --target k8s`: every object but the namespaces, in reverse apply
/// order (the StatefulSets' volume claims, hence the data, stay); with
/// `purge`, then the namespaces, which takes the claims and the data.
pub fn down_plan(objects: &[Object], context: Option<&str>, purge: bool) -> Result<Vec<Kubectl>> {
    let mut keep: Vec<Object> = objects
        .iter()
        .filter(|o| !matches!(o, Object::Namespace(_)))
        .cloned()
        .collect();
    keep.reverse();
    let mut plan = vec![
        Kubectl::new(
            format!("delete {} objects", keep.len()),
            context,
            &["delete", "--ignore-not-found", "--wait", "-f", "-"],
        )
        .with_stdin(to_yaml(&keep)?),
    ];
    if purge {
        let mut args = vec!["delete", "namespace", "--ignore-not-found", "--wait"];
        let names: Vec<&str> = objects
            .iter()
            .filter(|o| matches!(o, Object::Namespace(_)))
            .map(Object::name)
            .collect();
        args.extend(names.iter());
        plan.push(Kubectl::new(
            "delete the namespaces and their volumes",
            context,
            &args,
        ));
    }
    Ok(plan)
}

/// `status --target k8s`: the stack's workloads in every namespace.
pub fn status_command(context: Option<&str>) -> Kubectl {
    Kubectl::new(
        "get the workloads",
        context,
        &[
            "get",
            "deployments,statefulsets,daemonsets",
            "--all-namespaces",
            "-l",
            "app.kubernetes.io/part-of=octollm",
            "-o",
            "json",
        ],
    )
}

/// One workload's state, from `kubectl get -o json`.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub struct WorkloadStatus {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub desired: i64,
    pub ready: i64,
}

/// Reads `kubectl get … -o json`.
pub fn parse_status(json: &str) -> Result<Vec<WorkloadStatus>> {
    let list: serde_json::Value = serde_json::from_str(json).context("kubectl printed no JSON")?;
    let items = list
        .get("items")
        .and_then(|i| i.as_array())
        .context("no items in kubectl's answer")?;
    let num = |v: &serde_json::Value, path: &[&str]| {
        path.iter()
            .try_fold(v, |v, k| v.get(*k))
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0)
    };
    let text = |v: &serde_json::Value, path: &[&str]| {
        path.iter()
            .try_fold(v, |v, k| v.get(*k))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(items
        .iter()
        .map(|item| {
            let kind = text(item, &["kind"]);
            let (desired, ready) = if kind == "DaemonSet" {
                (
                    num(item, &["status", "desiredNumberScheduled"]),
                    num(item, &["status", "numberReady"]),
                )
            } else {
                (
                    num(item, &["spec", "replicas"]),
                    num(item, &["status", "readyReplicas"]),
                )
            };
            WorkloadStatus {
                kind,
                namespace: text(item, &["metadata", "namespace"]),
                name: text(item, &["metadata", "name"]),
                desired,
                ready,
            }
        })
        .collect())
}

/// Runs a plan, one progress line per command.
pub fn run_plan(plan: &[Kubectl]) -> Result<()> {
    if !crate::stack::container_engine::have_program("kubectl") {
        bail!(
            "kubectl is not installed (Debian: apt-get install kubernetes-client, or the upstream binary)"
        );
    }
    for k in plan {
        let step = progress::step(k.label.clone());
        k.run()?;
        step.done();
    }
    Ok(())
}

/// `deploy --target k8s --dry-run`: the overlay's YAML on stdout, or with
/// `out` the whole kustomize layout (base and both overlays) written there.
pub fn dry_run(overlay: Overlay, out: Option<&Path>) -> Result<()> {
    let root = project_root();
    match out {
        None => {
            emit!("{}", to_yaml(&render(&root, overlay)?)?);
        }
        Some(dir) => {
            let files = kustomize::files(&root)?;
            for (path, text) in &files {
                let path = dir.join(path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            say!("wrote {} files into {}", files.len(), dir.display());
        }
    }
    Ok(())
}

/// `deploy --target k8s` without `--dry-run`.
pub fn deploy(overlay: Overlay, context: Option<&str>) -> Result<()> {
    let objects = render(&project_root(), overlay)?;
    let plan = apply_plan(&objects, context)?;
    say!(
        "applying the {} overlay ({} objects) server-side",
        overlay.name(),
        objects.len()
    );
    run_plan(&plan)
}

/// `status --target k8s`: a table (or JSON) on stdout; exit 1 when a workload is not ready.
pub fn status(context: Option<&str>, json: bool) -> Result<()> {
    if !crate::stack::container_engine::have_program("kubectl") {
        bail!("kubectl is not installed");
    }
    let rows = parse_status(&status_command(context).run()?)?;
    if json {
        emit!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        emit!("{:<12} {:<20} {:<24} READY", "KIND", "NAMESPACE", "NAME");
        for r in &rows {
            emit!(
                "{:<12} {:<20} {:<24} {}/{}",
                r.kind,
                r.namespace,
                r.name,
                r.ready,
                r.desired
            );
        }
    }
    let behind: Vec<String> = rows
        .iter()
        .filter(|r| r.ready < r.desired || r.desired == 0)
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect();
    if rows.is_empty() {
        return Err(check_failed("no OctoLLM workloads in the cluster"));
    }
    if !behind.is_empty() {
        return Err(check_failed(format!("not ready: {}", behind.join(", "))));
    }
    Ok(())
}

/// `down --target k8s`.
pub fn down(overlay: Overlay, context: Option<&str>, purge: bool) -> Result<()> {
    let objects = render(&project_root(), overlay)?;
    run_plan(&down_plan(&objects, context, purge)?)?;
    if purge {
        say!("removed the stack and its namespaces (volumes included)");
    } else {
        say!("removed the stack; namespaces and volume claims kept (use --purge to delete them)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects() -> Vec<Object> {
        render(&project_root(), Overlay::Dev).unwrap()
    }

    #[test]
    fn apply_is_server_side_crds_first_then_objects_then_rollouts() {
        let objects = objects();
        let plan = apply_plan(&objects, Some("prod-cluster")).unwrap();
        // Every command names the context.
        assert!(
            plan.iter()
                .all(|k| k.args[..2] == ["--context", "prod-cluster"])
        );
        // 1: the operator CRDs, server-side, conflicts forced.
        assert_eq!(plan[0].args[2], "apply");
        assert!(plan[0].args.contains(&"--server-side".to_owned()));
        assert!(plan[0].args.contains(&"--force-conflicts".to_owned()));
        assert!(plan[0].args.contains(&PROMETHEUS_OPERATOR_CRDS.to_owned()));
        // 2: wait until every CRD is established.
        assert_eq!(plan[1].args[2], "wait");
        for crd in CRDS {
            assert!(plan[1].args.contains(&format!("crd/{crd}")), "{crd}");
        }
        // 3: built-in kinds, server-side, without a custom resource.
        let builtin = plan[2].stdin.as_deref().unwrap();
        assert!(
            plan[2].args.contains(&"--server-side".to_owned())
                && !plan[2].args.contains(&"--force-conflicts".to_owned())
        );
        assert!(builtin.contains("kind: Deployment") && builtin.contains("kind: Namespace"));
        assert!(!builtin.contains("kind: ServiceMonitor") && !builtin.contains("kind: Schedule"));
        // 4: the custom resources after them.
        let custom = plan[3].stdin.as_deref().unwrap();
        assert!(custom.contains("kind: PrometheusRule") && custom.contains("kind: Schedule"));
        assert!(!custom.contains("kind: Deployment"));
        // Then one rollout wait per workload, with its namespace and a progress count.
        let rollouts: Vec<&Kubectl> = plan[4..].iter().collect();
        assert_eq!(rollouts.len(), workloads(&objects).len());
        assert!(
            rollouts
                .iter()
                .all(|k| k.args[2..4] == ["rollout", "status"])
        );
        let orchestrator = rollouts
            .iter()
            .find(|k| k.args.contains(&"deployment/orchestrator".to_owned()))
            .unwrap();
        assert!(orchestrator.args.windows(2).any(|w| w == ["-n", "octollm"]));
        assert!(
            rollouts
                .iter()
                .any(|k| k.args.contains(&"statefulset/postgres".to_owned()))
        );
        assert!(
            rollouts
                .last()
                .unwrap()
                .label
                .starts_with(&format!("rollout {n}/{n} ", n = rollouts.len()))
        );
    }

    /// The Kubernetes call graph (`k8s_manifests::services::calls`, which
    /// the env and the NetworkPolicies are built from) is the local stack's:
    /// every env var `stack::launch` gives a service that holds another
    /// component's address is an edge there, and nothing else is (Jaeger
    /// exists on Kubernetes only).
    #[test]
    fn the_call_graph_is_the_one_the_local_stack_wires() {
        use std::collections::BTreeSet;

        use crate::stack::{Component, Stack, launch};

        let dir = std::env::temp_dir().join(format!("octollm-k8s-graph-{}", std::process::id()));
        let stack = Stack::new(&dir, 0).unwrap();
        launch::ensure_token(&stack).unwrap();
        let services: Vec<&str> = k8s_manifests::services::SERVICES
            .iter()
            .map(|s| s.name)
            .collect();
        let mut local = BTreeSet::new();
        for &component in Component::ALL
            .iter()
            .filter(|c| services.contains(&c.name()))
        {
            let started = launch::launch(&stack, component, &launch::DEFAULT_TIMINGS).unwrap();
            for (key, value) in started.command.get_envs() {
                let (key, value) = (
                    key.to_string_lossy(),
                    value.unwrap_or_default().to_string_lossy(),
                );
                for other in Component::ALL
                    .iter()
                    .filter(|o| **o != component && o.default_port().is_some())
                {
                    let address = format!("127.0.0.1:{}", stack.port(*other));
                    if value
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ':'))
                        .any(|w| w == address)
                    {
                        local.insert((
                            component.name().to_owned(),
                            other.name().to_owned(),
                            key.to_string(),
                        ));
                    }
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let k8s: BTreeSet<(String, String, String)> = k8s_manifests::services::calls()
            .into_iter()
            .filter(|c| c.to != k8s_manifests::services::JAEGER)
            .map(|c| (c.from.to_owned(), c.to.to_owned(), c.var.to_owned()))
            .collect();
        assert_eq!(
            k8s, local,
            "the Kubernetes call graph differs from stack::launch's wiring"
        );
        assert!(local.len() >= 14, "{local:?}");
    }

    /// Which token each service accepts and presents is the local stack's:
    /// a token-file variable `stack::launch` points at the users' API token
    /// reads the `octollm-api-token` Secret on Kubernetes, one it points at
    /// the service token reads `octollm-service-token`.
    #[test]
    fn the_credentials_are_the_ones_the_local_stack_wires() {
        use std::collections::BTreeSet;

        use crate::stack::{Component, Stack, launch};

        let dir = std::env::temp_dir().join(format!("octollm-k8s-tokens-{}", std::process::id()));
        let stack = Stack::new(&dir, 0).unwrap();
        launch::ensure_token(&stack).unwrap();
        let users = stack.token_path();
        let service = stack.service_token_path().unwrap();
        let names: Vec<&str> = k8s_manifests::services::SERVICES
            .iter()
            .map(|s| s.name)
            .collect();
        let mut local = BTreeSet::new();
        for &component in Component::ALL.iter().filter(|c| names.contains(&c.name())) {
            let started = launch::launch(&stack, component, &launch::DEFAULT_TIMINGS).unwrap();
            for (key, value) in started.command.get_envs() {
                let value = std::path::PathBuf::from(value.unwrap_or_default());
                let secret = if value == users {
                    "octollm-api-token"
                } else if value == service {
                    "octollm-service-token"
                } else {
                    continue;
                };
                local.insert((
                    component.name().to_owned(),
                    key.to_string_lossy().into_owned(),
                    secret,
                ));
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let objects = render(&project_root(), Overlay::Dev).unwrap();
        let mut k8s = BTreeSet::new();
        for o in &objects {
            let Object::ConfigMap(c) = o else { continue };
            let Some(service) = o.name().strip_suffix("-config") else {
                continue;
            };
            for (key, value) in c.data.iter().flatten() {
                for (dir, secret) in [
                    ("/api-token/", "octollm-api-token"),
                    ("/service-token/", "octollm-service-token"),
                ] {
                    if value.starts_with("/var/run/secrets/octollm") && value.contains(dir) {
                        k8s.insert((service.to_owned(), key.clone(), secret));
                    }
                }
            }
        }
        assert_eq!(
            k8s, local,
            "the Kubernetes credentials differ from stack::launch's"
        );
        assert!(local.contains(&(
            "planner-arm".to_owned(),
            "OCTOLLM_API_TOKEN_FILE".to_owned(),
            "octollm-service-token"
        )));
    }

    #[test]
    fn down_keeps_namespaces_unless_purged() {
        let objects = objects();
        let plan = down_plan(&objects, None, false).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].args[..2], ["delete", "--ignore-not-found"]);
        let stdin = plan[0].stdin.as_deref().unwrap();
        assert!(!stdin.contains("kind: Namespace") && stdin.contains("kind: StatefulSet"));
        // Reverse order: the policies (applied last) go first.
        assert!(stdin.find("kind: NetworkPolicy") < stdin.find("kind: Deployment"));
        let purge = down_plan(&objects, None, true).unwrap();
        assert_eq!(purge.len(), 2);
        assert_eq!(purge[1].args[..2], ["delete", "namespace"]);
        for ns in ["octollm", "octollm-data", "octollm-monitoring"] {
            assert!(purge[1].args.contains(&ns.to_owned()));
        }
    }

    #[test]
    fn status_reads_kubectls_json() {
        let k = status_command(None);
        assert_eq!(k.args[..2], ["get", "deployments,statefulsets,daemonsets"]);
        assert!(
            k.args
                .contains(&"app.kubernetes.io/part-of=octollm".to_owned())
        );
        let json = r#"{"items":[
          {"kind":"Deployment","metadata":{"namespace":"octollm","name":"orchestrator"},"spec":{"replicas":2},"status":{"readyReplicas":1}},
          {"kind":"DaemonSet","metadata":{"namespace":"octollm-monitoring","name":"promtail"},"status":{"desiredNumberScheduled":3,"numberReady":3}}]}"#;
        let rows = parse_status(json).unwrap();
        assert_eq!(
            rows[0],
            WorkloadStatus {
                kind: "Deployment".into(),
                namespace: "octollm".into(),
                name: "orchestrator".into(),
                desired: 2,
                ready: 1
            }
        );
        assert_eq!((rows[1].desired, rows[1].ready), (3, 3));
        assert!(parse_status("not json").is_err());
    }
}
