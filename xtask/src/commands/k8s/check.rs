//! The Kubernetes checks of `cargo xtask ci`, on both overlays:
//!
//! 1. `kubectl kustomize deploy/k8s/overlays/<name>` builds, and what it
//!    builds is object for object the code's rendering of that overlay
//!    (so the committed patches are right);
//! 2. the rendering passes `k8s_manifests::checks` (limits, probes,
//!    non-root, NetworkPolicies against the configured calls, every rule
//!    file and dashboard present);
//! 3. kubernetes-validate `--strict` against Kubernetes 1.33 (the
//!    k8s-openapi feature the types come from): 0 errors. It has no
//!    schemas for custom resources: those are validated, strictly (no
//!    undeclared field), against the `openAPIV3Schema` of their CRDs,
//!    committed in `crates/k8s-manifests/crds` (`validate_crs.py`), after
//!    a negative control shows a broken resource is caught;
//! 4. checkov (`--framework kubernetes`, offline): 0 failed checks; every
//!    skip is an annotation on its resource, with the reason.
//!
//! The PyPI tools live in a venv under `target/tools/k8s-checks`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use k8s_manifests::{Object, Overlay, checks, render};
use serde_json::Value;

use crate::say;
use crate::stack::container_engine::have_program;
use crate::stack::tools::pip_tool;
use crate::util::{check_failed, project_root};

/// The Kubernetes minor the manifests are validated against (k8s-openapi's `v1_33`).
pub const KUBERNETES_VERSION: &str = "1.33";
const VENV: &str = "k8s-checks";
const REQUIREMENTS: &[&str] = &["kubernetes-validate==1.37.0", "checkov==3.3.30"];

/// Runs every check on both overlays.
pub fn run() -> Result<()> {
    let root = project_root();
    let validate = pip_tool(VENV, REQUIREMENTS, "kubernetes-validate")?;
    let checkov = pip_tool(VENV, REQUIREMENTS, "checkov")?;
    let kustomize = kustomize_available()?;
    crd_check_catches_a_broken_resource(&validate, &root.join("target/k8s-check/negative"))?;
    let work = root.join("target/k8s-check");
    let mut problems = Vec::new();
    for overlay in Overlay::OVERLAYS {
        let objects = render(&root, overlay)?;
        let name = overlay.name();
        problems.extend(
            checks::all(&root, &objects)?
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
        let docs = match &kustomize {
            Ok(()) => {
                let built = kubectl_kustomize(&root.join("deploy/k8s").join(overlay.dir()))?;
                problems.extend(
                    compare(&built, &objects)?
                        .into_iter()
                        .map(|p| format!("{name}: kustomize: {p}")),
                );
                built
            }
            Err(why) => {
                say!(
                    "{name}: `kubectl kustomize` skipped: {why}; checking the code's rendering instead"
                );
                objects
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?
            }
        };
        let dir = work.join(name);
        write_documents(&dir, &docs)?;
        // checkov and kubernetes-validate read YAML 1.1 (PyYAML): a document
        // it cannot load would be skipped without a word.
        problems.extend(
            yaml_1_1_loads(&validate, &dir)?
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
        problems.extend(
            kubernetes_validate(&validate, &dir)?
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
        let (checked, cr_problems) = crs_against_crds(&validate, &dir)?;
        problems.extend(cr_problems.into_iter().map(|p| format!("{name}: {p}")));
        let (summary, failures) = checkov_scan(&checkov, &dir)?;
        problems.extend(
            failures
                .into_iter()
                .map(|p| format!("{name}: checkov: {p}")),
        );
        let kinds = kinds(&objects);
        say!(
            "{name}: {} objects ({kinds}); kubernetes-validate {KUBERNETES_VERSION} strict: ok; {checked} custom resources valid against their CRDs; checkov: {summary}",
            objects.len()
        );
    }
    if !problems.is_empty() {
        return Err(check_failed(format!(
            "Kubernetes manifests:\n  {}",
            problems.join("\n  ")
        )));
    }
    Ok(())
}

fn kinds(objects: &[Object]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for o in objects {
        *counts.entry(o.kind()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `kubectl kustomize` can build the overlays: Ok, or why not.
/// kubectl is not in Debian's main archive in a usable version (its
/// `kubernetes-client` is 1.20, whose kustomize 2.0 predates `patches:`),
/// so it is not installed by the prerequisites; a missing or too old
/// kubectl skips this one check, saying so.
fn kustomize_available() -> Result<Result<(), String>> {
    if !have_program("kubectl") {
        return Ok(Err("kubectl is not installed (install kubectl >= 1.21 from the Kubernetes or Google Cloud apt repository)".to_owned()));
    }
    let output = Command::new("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output()?;
    let version: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    let minor: u32 = version
        .pointer("/clientVersion/minor")
        .and_then(Value::as_str)
        .map(|m| m.trim_end_matches('+'))
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if minor < 21 {
        return Ok(Err(format!(
            "kubectl 1.{minor} bundles a kustomize without `patches:` (need >= 1.21)"
        )));
    }
    Ok(Ok(()))
}

/// `kubectl kustomize DIR`, as JSON values.
fn kubectl_kustomize(dir: &Path) -> Result<Vec<Value>> {
    let output = Command::new("kubectl").arg("kustomize").arg(dir).output()?;
    if !output.status.success() {
        return Err(check_failed(format!(
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    documents(&String::from_utf8_lossy(&output.stdout))
}

/// A multi-document YAML stream as JSON values.
pub fn documents(yaml: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = Value::deserialize(doc).context("reading kustomize's YAML")?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

use serde::Deserialize;

fn id(v: &Value) -> String {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    format!(
        "{}/{}/{}",
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name")
    )
}

/// Problems where kustomize's build differs from the rendering.
pub fn compare(built: &[Value], objects: &[Object]) -> Result<Vec<String>> {
    let rendered: BTreeMap<String, Value> = objects
        .iter()
        .map(|o| Ok((o.id(), serde_json::to_value(o)?)))
        .collect::<Result<_>>()?;
    let built: BTreeMap<String, Value> = built.iter().map(|v| (id(v), v.clone())).collect();
    let mut problems = Vec::new();
    for (id, value) in &rendered {
        match built.get(id) {
            None => problems.push(format!("{id} is missing")),
            Some(b) if b != value => problems.push(format!(
                "{id} differs from the rendering (regenerate deploy/k8s)"
            )),
            Some(_) => {}
        }
    }
    for id in built.keys() {
        if !rendered.contains_key(id) {
            problems.push(format!("{id} is not in the rendering"));
        }
    }
    Ok(problems)
}

/// One file per document: checkov skips, without a word, every document
/// of a file it cannot load, so a file per document keeps one bad
/// document from hiding the others (and `yaml_1_1_loads` names it).
fn write_documents(dir: &Path, docs: &[Value]) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for (i, doc) in docs.iter().enumerate() {
        let name = id(doc).replace('/', "_");
        std::fs::write(
            dir.join(format!("{i:03}-{name}.yaml")),
            k8s_manifests::yaml_1_1_safe(&serde_yaml_ng::to_string(doc)?),
        )?;
    }
    Ok(())
}

/// Loads every file of `dir` with PyYAML (`yaml.safe_load`), with the
/// Python of the venv that `program` lives in; the files it cannot load.
fn yaml_1_1_loads(program: &Path, dir: &Path) -> Result<Vec<String>> {
    let python = program.with_file_name("python");
    let script = "import sys, yaml\nfor f in sys.argv[1:]:\n    try:\n        yaml.safe_load(open(f))\n    except Exception as e:\n        print(f'{f}: {e}'.replace('\\n', ' '))\n";
    let files = sorted_files(dir)?;
    let output = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| format!("not loadable as YAML 1.1: {l}"))
        .collect())
}

/// The files of `dir`, in name order.
fn sorted_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    Ok(files)
}

fn kubernetes_validate(program: &Path, dir: &Path) -> Result<Vec<String>> {
    let files = sorted_files(dir)?;
    let output = Command::new(program)
        .args(["--strict", "-k", KUBERNETES_VERSION, "--quiet", "--no-warn"])
        .args(&files)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let errors: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("ERROR"))
        .map(str::to_owned)
        .collect();
    match output.status.code() {
        Some(0) => Ok(Vec::new()),
        Some(1) if !errors.is_empty() => Ok(errors),
        _ => bail!(
            "kubernetes-validate crashed: {}{text}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The validator of custom resources against their CRDs, run with the
/// venv's Python (jsonschema and PyYAML come with kubernetes-validate).
const VALIDATE_CRS: &str = include_str!("validate_crs.py");

/// Validates every custom resource in `dir` against its CRD; how many were
/// checked, and the problems.
fn crs_against_crds(program: &Path, dir: &Path) -> Result<(usize, Vec<String>)> {
    let python = program.with_file_name("python");
    let files = sorted_files(dir)?;
    let output = Command::new(&python)
        .arg("-c")
        .arg(VALIDATE_CRS)
        .arg(project_root().join("crates/k8s-manifests/crds"))
        .args(&files)
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let checked = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("checked ")?
                .strip_suffix(" custom resources")
        })
        .and_then(|n| n.parse().ok());
    match (output.status.success(), checked) {
        (true, Some(checked)) => Ok((
            checked,
            text.lines()
                .filter(|l| !l.starts_with("checked "))
                .map(|l| format!("CR against its CRD: {l}"))
                .collect(),
        )),
        _ => bail!(
            "validating custom resources against their CRDs failed: {}{text}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Negative control: a ServiceMonitor with an undeclared field and a
/// wrongly typed one must be reported, or the CRD check proves nothing.
fn crd_check_catches_a_broken_resource(program: &Path, dir: &Path) -> Result<()> {
    let broken = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n\
metadata: {name: broken}\nspec:\n  selector: {}\n  endpointz: []\n  \
endpoints: [{port: web, interval: 30}]\n";
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("broken.yaml"), broken)?;
    let (checked, problems) = crs_against_crds(program, dir)?;
    let caught = |what: &str| problems.iter().any(|p| p.contains(what));
    if checked != 1 || !caught("endpointz") || !caught("endpoints/0/interval") {
        bail!(
            "the CRD check missed a broken ServiceMonitor (undeclared `endpointz`, integer `interval`): {problems:?}"
        );
    }
    Ok(())
}

/// checkov's summary line and its failures.
fn checkov_scan(program: &Path, dir: &Path) -> Result<(String, Vec<String>)> {
    let output = Command::new(program)
        .args([
            "--framework",
            "kubernetes",
            "--skip-download",
            "--quiet",
            "--compact",
            "-o",
            "json",
            "-d",
        ])
        .arg(dir)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "checkov printed no JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    // One report, or a list of them (one per framework).
    let report = match report {
        Value::Array(mut list) if list.len() == 1 => list.remove(0),
        other => other,
    };
    let summary = report
        .get("summary")
        .context("no summary in checkov's report")?;
    let count = |k: &str| summary.get(k).and_then(Value::as_u64).unwrap_or(0);
    let files = std::fs::read_dir(dir)?.count() as u64;
    if count("resource_count") < files || count("passed") == 0 {
        bail!(
            "checkov read {} resources of {files} documents",
            count("resource_count")
        );
    }
    let failures = report
        .pointer("/results/failed_checks")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|f| {
                    let s = |k: &str| {
                        f.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    format!("{} {} ({})", s("check_id"), s("resource"), s("check_name"))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((
        format!(
            "{} passed, {} failed, {} skipped (each with its reason)",
            count("passed"),
            count("failed"),
            count("skipped")
        ),
        failures,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_names_missing_changed_and_extra_objects() {
        let objects = render(&project_root(), Overlay::Dev).unwrap();
        let mut built: Vec<Value> = objects
            .iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect();
        assert!(compare(&built, &objects).unwrap().is_empty());
        built[0]["metadata"]["labels"]["extra"] = Value::from("x");
        let extra = serde_json::json!({"kind": "Secret", "metadata": {"namespace": "octollm", "name": "leak"}});
        built.push(extra);
        let gone = built.remove(1);
        let problems = compare(&built, &objects).unwrap();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("differs")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("{} is missing", id(&gone))))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("Secret/octollm/leak is not in the rendering"))
        );
    }

    #[test]
    fn documents_reads_a_stream() {
        let docs = documents("---\na: 1\n---\n---\nb: [2]\n").unwrap();
        assert_eq!(
            docs,
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": [2]})]
        );
    }
}
