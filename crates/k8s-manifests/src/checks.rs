//! Checks on a rendering; each returns the problems found (empty: clean).
//! The tests run them on every overlay, and on deliberately broken copies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;
use k8s_openapi::api::core::v1::Container;

use crate::netpol::{self, API_CLIENT_LABEL, EXTERNAL_EGRESS, Edge, MONITORING_EDGES, Peer};
use crate::{NS_MONITORING, Object};

/// Every container of every workload: requests and limits for CPU and
/// memory, liveness and readiness probes, non-root, read-only root
/// filesystem, no privilege escalation, every capability dropped; every
/// pod: seccomp `RuntimeDefault`, a non-zero UID, a service-account token
/// only where the workload says it calls the API server.
pub fn containers(objects: &[Object]) -> Vec<String> {
    let mut problems = Vec::new();
    for o in objects {
        let Some(pod) = o.pod_spec() else { continue };
        let id = o.id();
        let psc = pod.security_context.clone().unwrap_or_default();
        if psc.run_as_non_root != Some(true) || psc.run_as_user.is_none_or(|u| u == 0) {
            problems.push(format!("{id}: the pod may run as root"));
        }
        if psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()) != Some("RuntimeDefault") {
            problems.push(format!("{id}: no seccomp RuntimeDefault"));
        }
        if pod.automount_service_account_token != Some(false) {
            let skipped = o
                .metadata()
                .annotations
                .iter()
                .flatten()
                .any(|(k, v)| k.starts_with("checkov.io/skip") && v.starts_with("CKV_K8S_38="));
            if !skipped {
                problems.push(format!(
                    "{id}: mounts a service-account token without saying why"
                ));
            }
        }
        let check = |c: &Container, init: bool, problems: &mut Vec<String>| {
            let cid = format!("{id} container {}", c.name);
            let r = c.resources.clone().unwrap_or_default();
            for (what, map) in [("requests", r.requests), ("limits", r.limits)] {
                for resource in ["cpu", "memory"] {
                    if !map.as_ref().is_some_and(|m| m.contains_key(resource)) {
                        problems.push(format!("{cid}: no {resource} {what}"));
                    }
                }
            }
            if !init && (c.liveness_probe.is_none() || c.readiness_probe.is_none()) {
                problems.push(format!("{cid}: no liveness or readiness probe"));
            }
            let sc = c.security_context.clone().unwrap_or_default();
            if sc.run_as_user == Some(0) || sc.run_as_non_root == Some(false) {
                problems.push(format!("{cid}: runs as root"));
            }
            if sc.read_only_root_filesystem != Some(true) {
                problems.push(format!("{cid}: writable root filesystem"));
            }
            if sc.allow_privilege_escalation != Some(false) {
                problems.push(format!("{cid}: privilege escalation allowed"));
            }
            if sc.privileged == Some(true) {
                problems.push(format!("{cid}: privileged"));
            }
            let drops_all = sc
                .capabilities
                .as_ref()
                .and_then(|c| c.drop.as_ref())
                .is_some_and(|d| d.iter().any(|c| c == "ALL"));
            let adds = sc
                .capabilities
                .as_ref()
                .and_then(|c| c.add.as_ref())
                .is_some_and(|a| !a.is_empty());
            if !drops_all || adds {
                problems.push(format!("{cid}: does not drop every capability"));
            }
        };
        for c in &pod.containers {
            check(c, false, &mut problems);
        }
        for c in pod.init_containers.iter().flatten() {
            check(c, true, &mut problems);
        }
    }
    problems
}

/// `(service, namespace, port)` of each `<service>.<namespace>.svc:<port>` in `text`.
pub fn service_addresses(text: &str) -> Vec<(String, String, i32)> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices(".svc:") {
        let host = &text[..at];
        let start = host
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            .map_or(0, |i| i + 1);
        let host = &host[start..];
        let port: String = text[at + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let (Some((name, ns)), Ok(port)) = (host.split_once('.'), port.parse()) {
            out.push((name.to_owned(), ns.to_owned(), port));
        }
    }
    out
}

/// The calls the rendered services are configured to make: every service
/// address in a workload's env (its own vars and its ConfigMaps').
pub fn configured_calls(objects: &[Object]) -> BTreeSet<Edge> {
    let config_maps: BTreeMap<(String, String), Vec<String>> = objects
        .iter()
        .filter_map(|o| match o {
            Object::ConfigMap(c) => Some((
                (
                    c.metadata.namespace.clone().unwrap_or_default(),
                    c.metadata.name.clone().unwrap_or_default(),
                ),
                c.data.iter().flatten().map(|(_, v)| v.clone()).collect(),
            )),
            _ => None,
        })
        .collect();
    let mut edges = BTreeSet::new();
    for o in objects {
        let (Some(pod), Some(labels)) = (o.pod_spec(), o.pod_labels()) else {
            continue;
        };
        let ns = o.namespace().unwrap_or_default().to_owned();
        if ns == NS_MONITORING {
            continue; // the monitoring stack's paths are MONITORING_EDGES
        }
        let name = labels
            .get(crate::workload::NAME_LABEL)
            .cloned()
            .unwrap_or_default();
        for c in &pod.containers {
            let mut values: Vec<String> = c
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.value.clone())
                .collect();
            for from in c.env_from.iter().flatten() {
                if let Some(cm) = &from.config_map_ref {
                    values.extend(
                        config_maps
                            .get(&(ns.clone(), cm.name.clone()))
                            .cloned()
                            .unwrap_or_default(),
                    );
                }
            }
            for v in values {
                for (to, to_ns, port) in service_addresses(&v) {
                    edges.insert(Edge {
                        from: Peer::Pod(ns.clone(), name.clone()),
                        to: Peer::Pod(to_ns, to),
                        port,
                    });
                }
            }
        }
    }
    edges
}

/// Every path a NetworkPolicy opens must be a configured call, a
/// Prometheus scrape of a ServiceMonitor's port, a monitoring path, a
/// declared external egress, or the task API for its clients.
pub fn network_policies(objects: &[Object]) -> Vec<String> {
    let mut justified = configured_calls(objects);
    // Scrapes: ServiceMonitor → its Service's named port.
    let mut service_ports: BTreeMap<(String, String, String), i32> = BTreeMap::new();
    for o in objects {
        if let Object::Service(s) = o {
            for p in s.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
                service_ports.insert(
                    (
                        o.namespace().unwrap_or_default().to_owned(),
                        o.name().to_owned(),
                        p.name.clone().unwrap_or_default(),
                    ),
                    p.port,
                );
            }
        }
    }
    for o in objects {
        if let Object::ServiceMonitor(m) = o {
            for e in &m.spec.endpoints {
                let key = (
                    o.namespace().unwrap_or_default().to_owned(),
                    o.name().to_owned(),
                    e.port.clone(),
                );
                if let Some(port) = service_ports.get(&key) {
                    justified.insert(Edge {
                        from: Peer::Pod(NS_MONITORING.to_owned(), "prometheus".to_owned()),
                        to: Peer::Pod(key.0, key.1),
                        port: *port,
                    });
                }
            }
        }
    }
    for ((fns, from), (tns, to), port) in MONITORING_EDGES {
        justified.insert(Edge {
            from: Peer::Pod((*fns).to_owned(), (*from).to_owned()),
            to: Peer::Pod((*tns).to_owned(), (*to).to_owned()),
            port: *port,
        });
    }
    for ((ns, from), port, _) in EXTERNAL_EGRESS {
        justified.insert(Edge {
            from: Peer::Pod((*ns).to_owned(), (*from).to_owned()),
            to: Peer::External,
            port: *port,
        });
    }
    justified.insert(Edge {
        from: Peer::Namespaces(API_CLIENT_LABEL.to_owned()),
        to: Peer::Pod(crate::NS_APP.to_owned(), "orchestrator".to_owned()),
        port: 8000,
    });
    let mut problems: Vec<String> = netpol::allowed(objects)
        .into_iter()
        .filter(|(_, e)| !justified.contains(e))
        .map(|(id, e)| {
            format!(
                "{id} opens {:?} -> {:?} port {}, which no service is configured to call",
                e.from, e.to, e.port
            )
        })
        .collect();
    // And every configured call is open on both sides: the caller's egress
    // and the callee's ingress (else the service cannot work).
    let allowed = netpol::allowed(objects);
    let side = |egress: bool| -> BTreeSet<Edge> {
        allowed
            .iter()
            .filter(|(id, e)| (e.from_policy(id)) == egress)
            .map(|(_, e)| e.clone())
            .collect()
    };
    let (egress, ingress) = (side(true), side(false));
    for e in configured_calls(objects) {
        if !(egress.contains(&e) && ingress.contains(&e)) {
            problems.push(format!(
                "{:?} -> {:?} port {} is configured but no NetworkPolicy opens it",
                e.from, e.to, e.port
            ));
        }
    }
    problems
}

/// Every rule file is a PrometheusRule with the file's groups, unchanged.
pub fn rules(root: &Path, objects: &[Object]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for path in crate::monitoring::files(&root.join("deploy/monitoring/rules"), "yml")? {
        let text = std::fs::read_to_string(&path)?;
        let spec: crate::crd::PrometheusRuleSpec = serde_yaml_ng::from_str(&text)?;
        let found = objects
            .iter()
            .any(|o| matches!(o, Object::PrometheusRule(r) if r.spec == spec));
        if !found {
            problems.push(format!(
                "{}: no PrometheusRule carries its groups",
                path.display()
            ));
        }
    }
    Ok(problems)
}

/// Every dashboard is in a ConfigMap labelled for Grafana's sidecar, byte for byte.
pub fn dashboards(root: &Path, objects: &[Object]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for path in crate::monitoring::files(&root.join("deploy/monitoring/dashboards"), "json")? {
        let text = std::fs::read_to_string(&path)?;
        let found = objects.iter().any(|o| match o {
            Object::ConfigMap(c) => {
                c.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(crate::monitoring::DASHBOARD_LABEL))
                    .is_some_and(|v| v == "1")
                    && c.data.iter().flatten().any(|(_, v)| *v == text)
            }
            _ => false,
        });
        if !found {
            problems.push(format!(
                "{}: no dashboard ConfigMap carries it",
                path.display()
            ));
        }
    }
    Ok(problems)
}

/// Every check, on one rendering.
pub fn all(root: &Path, objects: &[Object]) -> Result<Vec<String>> {
    let mut problems = containers(objects);
    problems.extend(network_policies(objects));
    problems.extend(rules(root, objects)?);
    problems.extend(dashboards(root, objects)?);
    Ok(problems)
}
