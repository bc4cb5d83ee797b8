//! NetworkPolicies: default deny in every namespace of the stack, DNS for
//! every pod, then one policy per workload that opens exactly its edges:
//! the services' calls (`services::calls`), Prometheus' scrapes (one per
//! ServiceMonitor), and the monitoring stack's own paths (`MONITORING_EDGES`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::workload::{NAME_LABEL, labels, meta};
use crate::{NS_APP, NS_DATA, NS_MONITORING, Object};

/// A workload's pods: (namespace, `app.kubernetes.io/name`).
pub type Pod = (&'static str, &'static str);

/// One allowed connection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    Pod(String, String),
    /// Any pod of namespaces carrying this label with value "true".
    Namespaces(String),
    /// Addresses outside the cluster (object storage, receivers, the API server).
    External,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: Peer,
    pub to: Peer,
    pub port: i32,
}

impl Edge {
    /// Whether the policy `id` (`NetworkPolicy/<namespace>/<name>`) opens this
    /// edge on its egress side, i.e. the policy belongs to the edge's source.
    pub fn from_policy(&self, id: &str) -> bool {
        match &self.from {
            Peer::Pod(ns, name) => id == format!("NetworkPolicy/{ns}/{name}"),
            _ => false,
        }
    }
}

/// Namespaces whose pods may call the task API (label value "true").
pub const API_CLIENT_LABEL: &str = "octollm.dev/task-api-client";

/// The monitoring stack's own paths, and the two that leave the cluster.
pub const MONITORING_EDGES: &[(Pod, Pod, i32)] = &[
    (
        (NS_MONITORING, "prometheus"),
        (NS_MONITORING, "alertmanager"),
        9093,
    ),
    (
        (NS_MONITORING, "grafana"),
        (NS_MONITORING, "prometheus"),
        9090,
    ),
    ((NS_MONITORING, "grafana"), (NS_MONITORING, "loki"), 3100),
    ((NS_MONITORING, "grafana"), (NS_MONITORING, "jaeger"), 16686),
    ((NS_MONITORING, "promtail"), (NS_MONITORING, "loki"), 3100),
];

/// Calls of the data tier: the pgBackRest sidecar pushes the backup
/// metrics (its `PUSHGATEWAY_GROUP_URL`).
pub const STORE_CALLS: &[(Pod, Pod, i32)] =
    &[((NS_DATA, "postgres"), (NS_MONITORING, "pushgateway"), 9091)];

/// Paths out of the cluster: (pod, port, why).
pub const EXTERNAL_EGRESS: &[(Pod, i32, &str)] = &[
    (
        (NS_DATA, "postgres"),
        443,
        "pgBackRest repository on object storage",
    ),
    (
        (NS_MONITORING, "alertmanager"),
        443,
        "receivers (PagerDuty, Slack, mail relay)",
    ),
    (
        (NS_MONITORING, "prometheus"),
        443,
        "API server (service discovery)",
    ),
    (
        (NS_MONITORING, "prometheus"),
        6443,
        "API server (service discovery)",
    ),
    (
        (NS_MONITORING, "promtail"),
        443,
        "API server (pod discovery)",
    ),
    (
        (NS_MONITORING, "promtail"),
        6443,
        "API server (pod discovery)",
    ),
    (
        (NS_MONITORING, "grafana"),
        443,
        "API server (dashboard ConfigMaps)",
    ),
    (
        (NS_MONITORING, "grafana"),
        6443,
        "API server (dashboard ConfigMaps)",
    ),
];

fn pod(ns: &str, name: &str) -> Peer {
    Peer::Pod(ns.to_owned(), name.to_owned())
}

/// Every edge the stack needs, derived from the calls and the ServiceMonitors.
pub fn edges(objects: &[Object]) -> BTreeSet<Edge> {
    let mut edges = BTreeSet::new();
    for c in crate::services::calls() {
        edges.insert(Edge {
            from: pod(NS_APP, c.from),
            to: pod(c.namespace, c.to),
            port: c.port,
        });
    }
    // Scrapes: each ServiceMonitor's port on its Service's pods.
    let services: BTreeMap<(String, String), BTreeMap<String, i32>> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Service(s) => Some((
                (
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                ),
                s.spec
                    .as_ref()?
                    .ports
                    .as_ref()?
                    .iter()
                    .map(|p| (p.name.clone().unwrap_or_default(), p.port))
                    .collect(),
            )),
            _ => None,
        })
        .collect();
    for o in objects {
        if let Object::ServiceMonitor(m) = o {
            let ns = m.metadata.namespace.clone().unwrap_or_default();
            let name = m.metadata.name.clone().unwrap_or_default();
            for e in &m.spec.endpoints {
                if let Some(port) = services
                    .get(&(ns.clone(), name.clone()))
                    .and_then(|p| p.get(&e.port))
                {
                    edges.insert(Edge {
                        from: pod(NS_MONITORING, "prometheus"),
                        to: Peer::Pod(ns.clone(), name.clone()),
                        port: *port,
                    });
                }
            }
        }
    }
    for ((fns, from), (tns, to), port) in MONITORING_EDGES.iter().chain(STORE_CALLS) {
        edges.insert(Edge {
            from: pod(fns, from),
            to: pod(tns, to),
            port: *port,
        });
    }
    for ((ns, from), port, _) in EXTERNAL_EGRESS {
        edges.insert(Edge {
            from: pod(ns, from),
            to: Peer::External,
            port: *port,
        });
    }
    edges.insert(Edge {
        from: Peer::Namespaces(API_CLIENT_LABEL.to_owned()),
        to: pod(NS_APP, "orchestrator"),
        port: 8000,
    });
    edges
}

fn ns_selector(ns: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_owned(),
            ns.to_owned(),
        )])),
        ..LabelSelector::default()
    }
}

fn name_selector(name: &str) -> LabelSelector {
    crate::workload::selector(name)
}

fn peer(p: &Peer) -> NetworkPolicyPeer {
    match p {
        Peer::Pod(ns, name) => NetworkPolicyPeer {
            namespace_selector: Some(ns_selector(ns)),
            pod_selector: Some(name_selector(name)),
            ..NetworkPolicyPeer::default()
        },
        Peer::Namespaces(label) => NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(label.clone(), "true".to_owned())])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        },
        Peer::External => NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: "0.0.0.0/0".to_owned(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        },
    }
}

fn port(port: i32) -> Vec<NetworkPolicyPort> {
    vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    }]
}

fn policy(ns: &str, name: &str, spec: NetworkPolicySpec) -> Object {
    NetworkPolicy {
        metadata: meta(name, ns, labels(name, "network-policy")),
        spec: Some(spec),
    }
    .into()
}

/// Default deny and DNS per namespace, then one policy per pod group.
pub fn objects(all: &[Object]) -> Vec<Object> {
    let edges = edges(all);
    let mut out = Vec::new();
    for ns in [NS_APP, NS_DATA, NS_MONITORING] {
        out.push(policy(
            ns,
            "default-deny",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
                ..NetworkPolicySpec::default()
            },
        ));
        let dns = NetworkPolicyPeer {
            namespace_selector: Some(ns_selector("kube-system")),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "k8s-app".to_owned(),
                    "kube-dns".to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        };
        out.push(policy(
            ns,
            "allow-dns",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![dns]),
                    ports: Some(
                        ["UDP", "TCP"]
                            .iter()
                            .map(|p| NetworkPolicyPort {
                                port: Some(IntOrString::Int(53)),
                                protocol: Some((*p).to_owned()),
                                ..NetworkPolicyPort::default()
                            })
                            .collect(),
                    ),
                }]),
                ..NetworkPolicySpec::default()
            },
        ));
    }
    let mut pods: BTreeSet<(String, String)> = BTreeSet::new();
    for e in &edges {
        for p in [&e.from, &e.to] {
            if let Peer::Pod(ns, name) = p {
                pods.insert((ns.clone(), name.clone()));
            }
        }
    }
    for (ns, name) in pods {
        let me = Peer::Pod(ns.clone(), name.clone());
        let ingress: Vec<NetworkPolicyIngressRule> = edges
            .iter()
            .filter(|e| e.to == me)
            .map(|e| NetworkPolicyIngressRule {
                from: Some(vec![peer(&e.from)]),
                ports: Some(port(e.port)),
            })
            .collect();
        let egress: Vec<NetworkPolicyEgressRule> = edges
            .iter()
            .filter(|e| e.from == me)
            .map(|e| NetworkPolicyEgressRule {
                to: Some(vec![peer(&e.to)]),
                ports: Some(port(e.port)),
            })
            .collect();
        let mut types = Vec::new();
        if !ingress.is_empty() {
            types.push("Ingress".to_owned());
        }
        if !egress.is_empty() {
            types.push("Egress".to_owned());
        }
        out.push(policy(
            &ns,
            &name,
            NetworkPolicySpec {
                pod_selector: Some(name_selector(&name)),
                policy_types: Some(types),
                ingress: (!ingress.is_empty()).then_some(ingress),
                egress: (!egress.is_empty()).then_some(egress),
            },
        ));
    }
    out
}

/// The edges a set of NetworkPolicies allows (ingress and egress sides separately,
/// each as (from, to, port) with the policy's own pods on one side).
pub fn allowed(objects: &[Object]) -> Vec<(String, Edge)> {
    let mut out = Vec::new();
    let decode = |p: &NetworkPolicyPeer| -> Peer {
        if p.ip_block.is_some() {
            return Peer::External;
        }
        let ns = p
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref());
        let name = p
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .and_then(|l| l.get(NAME_LABEL));
        match (ns, name) {
            (Some(ns), Some(name)) => Peer::Pod(
                ns.get("kubernetes.io/metadata.name")
                    .cloned()
                    .unwrap_or_default(),
                name.clone(),
            ),
            (Some(ns), None) => Peer::Namespaces(ns.keys().next().cloned().unwrap_or_default()),
            _ => Peer::Pod("?".to_owned(), "?".to_owned()),
        }
    };
    for o in objects {
        let Object::NetworkPolicy(np) = o else {
            continue;
        };
        let Some(spec) = &np.spec else { continue };
        let ns = np.metadata.namespace.clone().unwrap_or_default();
        let Some(me) = spec
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .and_then(|l| l.get(NAME_LABEL))
        else {
            continue; // namespace-wide: default deny and DNS
        };
        let me = Peer::Pod(ns, me.clone());
        let ports = |ps: &Option<Vec<NetworkPolicyPort>>| -> Vec<i32> {
            ps.iter()
                .flatten()
                .filter_map(|p| match &p.port {
                    Some(IntOrString::Int(n)) => Some(*n),
                    _ => None,
                })
                .collect()
        };
        for rule in spec.ingress.iter().flatten() {
            for from in rule.from.iter().flatten() {
                for p in ports(&rule.ports) {
                    out.push((
                        o.id(),
                        Edge {
                            from: decode(from),
                            to: me.clone(),
                            port: p,
                        },
                    ));
                }
            }
        }
        for rule in spec.egress.iter().flatten() {
            for to in rule.to.iter().flatten() {
                for p in ports(&rule.ports) {
                    out.push((
                        o.id(),
                        Edge {
                            from: me.clone(),
                            to: decode(to),
                            port: p,
                        },
                    ));
                }
            }
        }
    }
    out
}
