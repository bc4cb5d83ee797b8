//! The kustomize layout of `deploy/k8s/`: `base/` holds the base rendering,
//! one file per namespace (plus `cluster.yaml` and `backups.yaml`); each
//! overlay is the base plus JSON 6902 patches computed by diffing its
//! rendering against the base, so the overlay built by kustomize is the
//! overlay rendered by the code (`cargo xtask ci` checks it).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{HEADER, NS_APP, NS_DATA, NS_MONITORING, Object, Overlay, render, to_yaml};

/// The base file an object goes into.
fn base_file(o: &Object) -> &'static str {
    match o.namespace() {
        _ if matches!(o, Object::Schedule(_)) => "backups.yaml",
        None => "cluster.yaml",
        Some(NS_APP) => "services.yaml",
        Some(NS_DATA) => "data.yaml",
        Some(NS_MONITORING) => "monitoring.yaml",
        Some(_) => "other.yaml",
    }
}

const BASE_FILES: [&str; 6] = [
    "cluster.yaml",
    "services.yaml",
    "data.yaml",
    "monitoring.yaml",
    "backups.yaml",
    "other.yaml",
];

/// One JSON patch operation.
#[derive(Debug, Serialize, PartialEq)]
pub struct Op {
    pub op: &'static str,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The operations that turn `a` into `b` (arrays of different length are replaced whole).
pub fn diff(a: &Value, b: &Value, path: &str, ops: &mut Vec<Op>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = format!("{path}/{}", escape(k));
                match y.get(k) {
                    Some(vb) => diff(va, vb, &p, ops),
                    None => ops.push(Op {
                        op: "remove",
                        path: p,
                        value: None,
                    }),
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    ops.push(Op {
                        op: "add",
                        path: format!("{path}/{}", escape(k)),
                        value: Some(vb.clone()),
                    });
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff(va, vb, &format!("{path}/{i}"), ops);
            }
        }
        _ if a != b => ops.push(Op {
            op: "replace",
            path: path.to_owned(),
            value: Some(b.clone()),
        }),
        _ => {}
    }
}

/// `(group, version)` of an apiVersion.
fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Every file of `deploy/k8s/`, relative path and text.
pub fn files(root: &Path) -> Result<Vec<(String, String)>> {
    let base = render(root, Overlay::Base)?;
    let mut out = Vec::new();
    let mut resources = Vec::new();
    for file in BASE_FILES {
        let objects: Vec<Object> = base
            .iter()
            .filter(|o| base_file(o) == file)
            .cloned()
            .collect();
        if objects.is_empty() {
            continue;
        }
        resources.push(file);
        out.push((
            format!("base/{file}"),
            format!("{HEADER}{}", to_yaml(&objects)?),
        ));
    }
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    out.push((
        "base/kustomization.yaml".to_owned(),
        format!(
            "{HEADER}{}",
            crate::yaml_1_1_safe(&serde_yaml_ng::to_string(&kustomization)?)
        ),
    ));
    let base_values: BTreeMap<String, Value> = base
        .iter()
        .map(|o| Ok((o.id(), serde_json::to_value(o)?)))
        .collect::<Result<_>>()?;
    for overlay in Overlay::OVERLAYS {
        let objects = render(root, overlay)?;
        if objects.len() != base.len() {
            bail!(
                "the {} rendering has {} objects, the base {}",
                overlay.name(),
                objects.len(),
                base.len()
            );
        }
        let mut patches = Vec::new();
        for o in &objects {
            let Some(before) = base_values.get(&o.id()) else {
                bail!("{} is in the {} rendering only", o.id(), overlay.name());
            };
            let after = serde_json::to_value(o)?;
            let mut ops = Vec::new();
            diff(before, &after, "", &mut ops);
            if ops.is_empty() {
                continue;
            }
            let api_version = after
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (group, version) = group_version(api_version);
            let mut target =
                json!({"group": group, "version": version, "kind": o.kind(), "name": o.name()});
            if let Some(ns) = o.namespace() {
                target["namespace"] = json!(ns);
            }
            patches.push(json!({"target": target, "patch": serde_json::to_string(&ops)?}));
        }
        let kustomization = json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["../../base"],
            "patches": patches,
        });
        out.push((
            format!("{}/kustomization.yaml", overlay.dir()),
            format!(
                "{HEADER}{}",
                crate::yaml_1_1_safe(&serde_yaml_ng::to_string(&kustomization)?)
            ),
        ));
    }
    Ok(out)
}
