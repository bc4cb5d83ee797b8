//! `App`: one workload and everything that goes with it (ServiceAccount,
//! Service, PodDisruptionBudget, HorizontalPodAutoscaler), hardened the same
//! way for every container: non-root, read-only root filesystem, every
//! capability dropped, seccomp `RuntimeDefault`, no privilege escalation,
//! requests and limits, liveness and readiness probes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar,
    EnvVarSource, ExecAction, HTTPGetAction, PersistentVolumeClaim, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, TCPSocketAction, Volume,
    VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::object::Object;

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The label a ServiceMonitor takes its `job` from (docs/contracts.md, "Prometheus jobs").
pub const JOB_LABEL: &str = "octollm.dev/job";
pub const PART_OF: &str = "octollm";

pub fn labels(name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), name.to_owned()),
        (PART_OF_LABEL.to_owned(), PART_OF.to_owned()),
        (COMPONENT_LABEL.to_owned(), component.to_owned()),
    ])
}

pub fn selector(name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(NAME_LABEL.to_owned(), name.to_owned())])),
        ..LabelSelector::default()
    }
}

pub fn meta(name: &str, namespace: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// CPU in millicores and memory in MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub cpu_request_m: u32,
    pub cpu_limit_m: u32,
    pub memory_request_mi: u32,
    pub memory_limit_mi: u32,
}

impl Size {
    pub const fn new(
        cpu_request_m: u32,
        cpu_limit_m: u32,
        memory_request_mi: u32,
        memory_limit_mi: u32,
    ) -> Self {
        Self {
            cpu_request_m,
            cpu_limit_m,
            memory_request_mi,
            memory_limit_mi,
        }
    }

    pub fn resources(self) -> ResourceRequirements {
        let q = |cpu: u32, mem: u32| {
            BTreeMap::from([
                ("cpu".to_owned(), Quantity(format!("{cpu}m"))),
                ("memory".to_owned(), Quantity(format!("{mem}Mi"))),
            ])
        };
        ResourceRequirements {
            requests: Some(q(self.cpu_request_m, self.memory_request_mi)),
            limits: Some(q(self.cpu_limit_m, self.memory_limit_mi)),
            ..ResourceRequirements::default()
        }
    }
}

/// How a probe asks.
#[derive(Clone, Debug)]
pub enum Check {
    Http {
        path: &'static str,
        port: &'static str,
    },
    Tcp {
        port: &'static str,
    },
    Exec(Vec<String>),
}

impl Check {
    fn probe(&self, period: i32, failures: i32) -> Probe {
        let mut probe = Probe {
            period_seconds: Some(period),
            timeout_seconds: Some(2),
            failure_threshold: Some(failures),
            ..Probe::default()
        };
        match self {
            Check::Http { path, port } => {
                probe.http_get = Some(HTTPGetAction {
                    path: Some((*path).to_owned()),
                    port: IntOrString::String((*port).to_owned()),
                    ..HTTPGetAction::default()
                });
            }
            Check::Tcp { port } => {
                probe.tcp_socket = Some(TCPSocketAction {
                    port: IntOrString::String((*port).to_owned()),
                    ..TCPSocketAction::default()
                });
            }
            Check::Exec(command) => {
                probe.exec = Some(ExecAction {
                    command: Some(command.clone()),
                });
            }
        }
        probe
    }
}

/// One hardened container.
#[derive(Clone, Debug)]
pub struct Part {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub ports: Vec<(&'static str, i32)>,
    pub env: Vec<EnvVar>,
    pub env_config_map: Option<String>,
    pub size: Size,
    pub liveness: Check,
    pub readiness: Check,
    pub mounts: Vec<VolumeMount>,
}

impl Part {
    pub fn new(name: &str, image: &str, size: Size, liveness: Check, readiness: Check) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            command: Vec::new(),
            args: Vec::new(),
            ports: Vec::new(),
            env: Vec::new(),
            env_config_map: None,
            size,
            liveness,
            readiness,
            mounts: Vec::new(),
        }
    }

    pub fn container(&self) -> Container {
        let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        Container {
            name: self.name.clone(),
            image: Some(self.image.clone()),
            // Tags are mutable; until a release pins digests, always ask the registry.
            image_pull_policy: Some("Always".to_owned()),
            command: nonempty(&self.command),
            args: nonempty(&self.args),
            ports: (!self.ports.is_empty()).then(|| {
                self.ports
                    .iter()
                    .map(|(name, port)| ContainerPort {
                        name: Some((*name).to_owned()),
                        container_port: *port,
                        protocol: Some("TCP".to_owned()),
                        ..ContainerPort::default()
                    })
                    .collect()
            }),
            env: (!self.env.is_empty()).then(|| self.env.clone()),
            env_from: self.env_config_map.as_ref().map(|name| {
                vec![EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: name.clone(),
                        optional: Some(false),
                    }),
                    ..EnvFromSource::default()
                }]
            }),
            resources: Some(self.size.resources()),
            liveness_probe: Some(self.liveness.probe(10, 3)),
            readiness_probe: Some(self.readiness.probe(5, 2)),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            volume_mounts: (!self.mounts.is_empty()).then(|| self.mounts.clone()),
            ..Container::default()
        }
    }
}

pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// An env var from a key of a Secret the operator creates (never rendered here).
pub fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

pub fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// How the workload runs.
#[derive(Clone, Debug)]
pub enum Kind {
    Deployment {
        replicas: i32,
        autoscale: Option<(i32, i32)>,
    },
    StatefulSet {
        claims: Vec<PersistentVolumeClaim>,
    },
    DaemonSet,
}

/// A workload and its companions.
#[derive(Clone, Debug)]
pub struct App {
    pub name: String,
    pub namespace: String,
    pub component: String,
    pub kind: Kind,
    pub containers: Vec<Part>,
    pub init_containers: Vec<Part>,
    pub volumes: Vec<Volume>,
    /// UID and GID the pod runs as (never 0).
    pub user: i64,
    pub supplemental_groups: Vec<i64>,
    /// Seconds between SIGTERM and SIGKILL: the drain period plus a margin.
    pub grace_seconds: i64,
    /// Whether the pod gets a service-account token (only what calls the API server).
    pub api_access: bool,
    /// Service ports: (name, port); empty means no Service.
    pub service_ports: Vec<(&'static str, i32)>,
    /// Extra labels on the Service (the ServiceMonitor's job label).
    pub service_labels: BTreeMap<String, String>,
    /// Checkov checks skipped on purpose, with the reason.
    pub skips: Vec<(&'static str, String)>,
    pub pod_annotations: BTreeMap<String, String>,
}

impl App {
    pub fn new(name: &str, namespace: &str, component: &str, kind: Kind, main: Part) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            component: component.to_owned(),
            kind,
            service_ports: main.ports.clone(),
            containers: vec![main],
            init_containers: Vec::new(),
            volumes: vec![empty_dir("tmp")],
            user: 10001,
            supplemental_groups: Vec::new(),
            grace_seconds: 30,
            api_access: false,
            service_labels: BTreeMap::new(),
            skips: vec![(
                "CKV_K8S_43",
                "images are pinned by digest at release time (kustomize images), not in committed manifests".to_owned(),
            )],
            pod_annotations: BTreeMap::new(),
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        labels(&self.name, &self.component)
    }

    fn annotations(&self) -> Option<BTreeMap<String, String>> {
        let mut skips = self.skips.clone();
        let secret_vars: Vec<String> = self
            .containers
            .iter()
            .flat_map(|c| c.env.iter())
            .filter(|e| {
                e.value_from
                    .as_ref()
                    .is_some_and(|v| v.secret_key_ref.is_some())
            })
            .map(|e| e.name.clone())
            .collect();
        if !secret_vars.is_empty() && !skips.iter().any(|(c, _)| *c == "CKV_K8S_35") {
            skips.push((
                "CKV_K8S_35",
                format!(
                    "{} read their secret from the environment only (no file option)",
                    secret_vars.join(", ")
                ),
            ));
        }
        (!skips.is_empty()).then(|| {
            skips
                .iter()
                .enumerate()
                .map(|(i, (check, reason))| {
                    (
                        format!("checkov.io/skip{}", i + 1),
                        format!("{check}={reason}"),
                    )
                })
                .collect()
        })
    }

    fn pod(&self) -> PodTemplateSpec {
        let mut containers: Vec<Container> = self.containers.iter().map(Part::container).collect();
        for c in &mut containers {
            let mut mounts = c.volume_mounts.take().unwrap_or_default();
            if !mounts.iter().any(|m| m.mount_path == "/tmp") {
                mounts.push(mount("tmp", "/tmp", false));
            }
            c.volume_mounts = Some(mounts);
        }
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(self.labels()),
                annotations: (!self.pod_annotations.is_empty())
                    .then(|| self.pod_annotations.clone()),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                service_account_name: Some(self.name.clone()),
                automount_service_account_token: Some(self.api_access),
                enable_service_links: Some(false),
                termination_grace_period_seconds: Some(self.grace_seconds),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(self.user),
                    run_as_group: Some(self.user),
                    fs_group: Some(self.user),
                    supplemental_groups: (!self.supplemental_groups.is_empty())
                        .then(|| self.supplemental_groups.clone()),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".to_owned(),
                        ..SeccompProfile::default()
                    }),
                    ..PodSecurityContext::default()
                }),
                init_containers: (!self.init_containers.is_empty()).then(|| {
                    self.init_containers
                        .iter()
                        .map(|p| {
                            let mut c = p.container();
                            // Init containers may not have probes.
                            c.liveness_probe = None;
                            c.readiness_probe = None;
                            c
                        })
                        .collect()
                }),
                containers,
                volumes: Some(self.volumes.clone()),
                ..PodSpec::default()
            }),
        }
    }

    /// The workload, its ServiceAccount, Service, PDB and HPA.
    pub fn objects(&self) -> Vec<Object> {
        let mut out: Vec<Object> = vec![
            ServiceAccount {
                metadata: meta(&self.name, &self.namespace, self.labels()),
                automount_service_account_token: Some(self.api_access),
                ..ServiceAccount::default()
            }
            .into(),
        ];
        let mut metadata = meta(&self.name, &self.namespace, self.labels());
        metadata.annotations = self.annotations();
        let pod = self.pod();
        let mut pdb = false;
        match &self.kind {
            Kind::Deployment {
                replicas,
                autoscale,
            } => {
                out.push(
                    Deployment {
                        metadata,
                        spec: Some(DeploymentSpec {
                            replicas: if autoscale.is_some() {
                                None
                            } else {
                                Some(*replicas)
                            },
                            revision_history_limit: Some(5),
                            selector: selector(&self.name),
                            template: pod,
                            ..DeploymentSpec::default()
                        }),
                        ..Deployment::default()
                    }
                    .into(),
                );
                if let Some((min, max)) = autoscale {
                    out.push(self.hpa(*min, *max));
                }
                pdb = true;
            }
            Kind::StatefulSet { claims } => {
                out.push(
                    StatefulSet {
                        metadata,
                        spec: Some(StatefulSetSpec {
                            replicas: Some(1),
                            service_name: Some(self.name.clone()),
                            selector: selector(&self.name),
                            template: pod,
                            volume_claim_templates: Some(claims.clone()),
                            ..StatefulSetSpec::default()
                        }),
                        ..StatefulSet::default()
                    }
                    .into(),
                );
                pdb = true;
            }
            Kind::DaemonSet => out.push(
                DaemonSet {
                    metadata,
                    spec: Some(DaemonSetSpec {
                        selector: selector(&self.name),
                        template: pod,
                        ..DaemonSetSpec::default()
                    }),
                    ..DaemonSet::default()
                }
                .into(),
            ),
        }
        if !self.service_ports.is_empty() {
            let mut labels = self.labels();
            labels.extend(self.service_labels.clone());
            out.push(
                Service {
                    metadata: meta(&self.name, &self.namespace, labels),
                    spec: Some(ServiceSpec {
                        selector: Some(BTreeMap::from([(
                            NAME_LABEL.to_owned(),
                            self.name.clone(),
                        )])),
                        ports: Some(
                            self.service_ports
                                .iter()
                                .map(|(name, port)| ServicePort {
                                    name: Some((*name).to_owned()),
                                    port: *port,
                                    target_port: Some(IntOrString::String((*name).to_owned())),
                                    protocol: Some("TCP".to_owned()),
                                    ..ServicePort::default()
                                })
                                .collect(),
                        ),
                        ..ServiceSpec::default()
                    }),
                    ..Service::default()
                }
                .into(),
            );
        }
        if pdb {
            out.push(
                PodDisruptionBudget {
                    metadata: meta(&self.name, &self.namespace, self.labels()),
                    spec: Some(PodDisruptionBudgetSpec {
                        // One pod at a time; a single-replica store cannot be
                        // evicted voluntarily at all (drain waits for an operator).
                        max_unavailable: Some(IntOrString::Int(
                            if matches!(self.kind, Kind::StatefulSet { .. }) {
                                0
                            } else {
                                1
                            },
                        )),
                        selector: Some(selector(&self.name)),
                        unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
                        ..PodDisruptionBudgetSpec::default()
                    }),
                    ..PodDisruptionBudget::default()
                }
                .into(),
            );
        }
        out
    }

    fn hpa(&self, min: i32, max: i32) -> Object {
        HorizontalPodAutoscaler {
            metadata: meta(&self.name, &self.namespace, self.labels()),
            spec: Some(HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".to_owned()),
                    kind: "Deployment".to_owned(),
                    name: self.name.clone(),
                },
                min_replicas: Some(min),
                max_replicas: max,
                metrics: Some(vec![MetricSpec {
                    type_: "Resource".to_owned(),
                    resource: Some(ResourceMetricSource {
                        name: "cpu".to_owned(),
                        target: MetricTarget {
                            type_: "Utilization".to_owned(),
                            average_utilization: Some(70),
                            ..MetricTarget::default()
                        },
                    }),
                    ..MetricSpec::default()
                }]),
                ..HorizontalPodAutoscalerSpec::default()
            }),
            ..HorizontalPodAutoscaler::default()
        }
        .into()
    }
}

pub fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(k8s_openapi::api::core::v1::EmptyDirVolumeSource {
            size_limit: Some(Quantity("256Mi".to_owned())),
            ..Default::default()
        }),
        ..Volume::default()
    }
}

pub fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        secret: Some(k8s_openapi::api::core::v1::SecretVolumeSource {
            secret_name: Some(secret.to_owned()),
            default_mode: Some(0o440),
            optional: Some(false),
            ..Default::default()
        }),
        ..Volume::default()
    }
}

/// One key of a Secret as a file named after the key.
pub fn secret_key_volume(name: &str, secret: &str, key: &str) -> Volume {
    secret_keys_volume(name, secret, &[key])
}

/// Only these keys of a Secret, each a file named after its key.
pub fn secret_keys_volume(name: &str, secret: &str, keys: &[&str]) -> Volume {
    let mut v = secret_volume(name, secret);
    if let Some(s) = v.secret.as_mut() {
        s.items = Some(
            keys.iter()
                .map(|key| k8s_openapi::api::core::v1::KeyToPath {
                    key: (*key).to_owned(),
                    path: (*key).to_owned(),
                    mode: None,
                })
                .collect(),
        );
    }
    v
}

pub fn config_volume(name: &str, config_map: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        config_map: Some(k8s_openapi::api::core::v1::ConfigMapVolumeSource {
            name: config_map.to_owned(),
            default_mode: Some(0o444),
            ..Default::default()
        }),
        ..Volume::default()
    }
}

pub fn claim(name: &str, size: &str, storage_class: Option<&str>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(k8s_openapi::api::core::v1::PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: storage_class.map(str::to_owned),
            resources: Some(k8s_openapi::api::core::v1::VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(size.to_owned()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// Metadata of a cluster-scoped object.
pub fn meta_cluster(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(format!("octollm-{name}")),
        labels: Some(labels(name, "monitoring")),
        ..ObjectMeta::default()
    }
}
