//! The monitoring stack on Prometheus Operator CRs, from the local stack's
//! single sources: `PrometheusRule`s from `deploy/monitoring/rules/*.yml`,
//! the `AlertmanagerConfig` from `deploy/monitoring/alertmanager.yml.tmpl`,
//! Grafana dashboard ConfigMaps from `deploy/monitoring/dashboards/*.json`.
//! Plus Grafana (dashboards sidecar), Loki with Promtail shipping the pods'
//! JSON logs, and Jaeger receiving OTLP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{
    ConfigMap, HostPathVolumeSource, LocalObjectReference, PodSecurityContext, SeccompProfile,
    SecretKeySelector, Volume,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;

use crate::crd::{
    AlertingSpec, AlertmanagerConfigSpec, AlertmanagerEndpoint, AlertmanagerSpec, Custom,
    EmbeddedClaim, InhibitRule, MONITORING_V1, MONITORING_V1ALPHA1, Matcher, NamespaceSelector,
    PrometheusRuleSpec, PrometheusSpec, Receiver, Route, ScrapeEndpoint, ServiceMonitorSpec,
    StorageSpec, WebhookConfig,
};
use crate::services::SERVICES;
use crate::workload::{
    App, Check, JOB_LABEL, Kind, PART_OF, PART_OF_LABEL, Part, Size, claim, config_volume,
    empty_dir, env, labels, meta, mount,
};
use crate::{NS_APP, NS_DATA, NS_MONITORING, Object, Params};

pub const PROMETHEUS_VERSION: &str = "v3.5.0";
pub const ALERTMANAGER_VERSION: &str = "v0.28.1";
pub const GRAFANA_IMAGE: &str = "docker.io/grafana/grafana:12.1.1";
pub const GRAFANA_SIDECAR_IMAGE: &str = "quay.io/kiwigrid/k8s-sidecar:1.30.9";
pub const LOKI_IMAGE: &str = "docker.io/grafana/loki:3.5.3";
pub const PROMTAIL_IMAGE: &str = "docker.io/grafana/promtail:3.5.3";
pub const JAEGER_IMAGE: &str = "docker.io/jaegertracing/all-in-one:1.72.0";
/// The label Grafana's sidecar picks dashboard ConfigMaps up by.
pub const DASHBOARD_LABEL: &str = "grafana_dashboard";
pub const PUSHGATEWAY_IMAGE: &str = "quay.io/prometheus/pushgateway:v1.11.1";
/// Receives the backup metrics the pgBackRest sidecar pushes (as `cargo
/// xtask backup` pushes them locally).
pub const PUSHGATEWAY: &str = "pushgateway";
pub const PUSHGATEWAY_PORT: i32 = 9091;
pub const RECEIVERS_SECRET: &str = "alertmanager-receivers";
pub const GRAFANA_SECRET: &str = "grafana-admin";

fn part_of() -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            PART_OF_LABEL.to_owned(),
            PART_OF.to_owned(),
        )])),
        ..LabelSelector::default()
    }
}

fn cr<S>(
    kind: &'static str,
    api_version: &'static str,
    name: &str,
    namespace: &str,
    spec: S,
) -> Custom<S> {
    Custom {
        api_version,
        kind,
        metadata: meta(name, namespace, labels(name, "monitoring")),
        spec,
    }
}

/// The sorted files of `dir` ending in `ext`.
pub fn files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == ext));
    files.sort();
    Ok(files)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn objects(root: &Path, params: &Params) -> Result<Vec<Object>> {
    let mut out = prometheus(params);
    out.extend(service_monitors());
    out.extend(rules(root)?);
    out.extend(alertmanager(root, params)?);
    out.extend(dashboards(root)?);
    out.extend(grafana(params));
    out.extend(loki(params));
    out.extend(promtail(params));
    out.extend(jaeger(params));
    out.extend(pushgateway(params));
    Ok(out)
}

fn pod_security(user: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(user),
        run_as_group: Some(user),
        fs_group: Some(user),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

fn rbac_cluster(name: &str, rules: Vec<PolicyRule>) -> Vec<Object> {
    vec![
        ClusterRole {
            metadata: crate::workload::meta_cluster(name),
            rules: Some(rules),
            ..ClusterRole::default()
        }
        .into(),
        ClusterRoleBinding {
            metadata: crate::workload::meta_cluster(name),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_owned(),
                kind: "ClusterRole".to_owned(),
                name: format!("octollm-{name}"),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_owned(),
                name: name.to_owned(),
                namespace: Some(NS_MONITORING.to_owned()),
                ..Subject::default()
            }]),
        }
        .into(),
    ]
}

fn read_rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(resources.iter().map(|s| (*s).to_owned()).collect()),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

fn prometheus(params: &Params) -> Vec<Object> {
    let name = "prometheus";
    let mut out: Vec<Object> = vec![
        k8s_openapi::api::core::v1::ServiceAccount {
            metadata: meta(name, NS_MONITORING, labels(name, "monitoring")),
            automount_service_account_token: Some(true),
            ..Default::default()
        }
        .into(),
    ];
    let mut discovery = read_rule(
        &["services", "endpoints", "pods"],
        &["get", "list", "watch"],
    );
    discovery.api_groups = Some(vec![String::new()]);
    let mut slices = read_rule(&["endpointslices"], &["get", "list", "watch"]);
    slices.api_groups = Some(vec!["discovery.k8s.io".to_owned()]);
    out.extend(rbac_cluster(name, vec![discovery, slices]));
    out.push(Object::Prometheus(Box::new(cr(
        "Prometheus",
        MONITORING_V1,
        name,
        NS_MONITORING,
        PrometheusSpec {
            version: PROMETHEUS_VERSION.to_owned(),
            replicas: params.monitoring_replicas,
            retention: "30d".to_owned(),
            service_account_name: name.to_owned(),
            service_monitor_selector: part_of(),
            service_monitor_namespace_selector: LabelSelector::default(),
            rule_selector: part_of(),
            rule_namespace_selector: LabelSelector::default(),
            external_labels: BTreeMap::from([(
                "stack".to_owned(),
                params.overlay.name().to_owned(),
            )]),
            alerting: AlertingSpec {
                alertmanagers: vec![AlertmanagerEndpoint {
                    namespace: NS_MONITORING.to_owned(),
                    name: "alertmanager-operated".to_owned(),
                    port: "web".to_owned(),
                }],
            },
            resources: params.size(Size::new(500, 2000, 1024, 4096)).resources(),
            security_context: pod_security(1000),
            storage: Some(StorageSpec {
                volume_claim_template: EmbeddedClaim {
                    spec: claim(
                        "prometheus",
                        &params.prometheus_storage,
                        params.storage_class.as_deref(),
                    )
                    .spec
                    .unwrap_or_default(),
                },
            }),
        },
    ))));
    out
}

/// One ServiceMonitor per service, and one per exporter (job `postgres`, `redis`).
fn service_monitors() -> Vec<Object> {
    let monitor = |name: &str, namespace: &str, port: &str| -> Object {
        let honor_labels = name == PUSHGATEWAY;
        Object::ServiceMonitor(Box::new(cr(
            "ServiceMonitor",
            MONITORING_V1,
            name,
            namespace,
            ServiceMonitorSpec {
                job_label: JOB_LABEL.to_owned(),
                selector: crate::workload::selector(name),
                namespace_selector: NamespaceSelector {
                    match_names: vec![namespace.to_owned()],
                },
                endpoints: vec![ScrapeEndpoint {
                    port: port.to_owned(),
                    path: "/metrics".to_owned(),
                    interval: "15s".to_owned(),
                    honor_labels,
                }],
            },
        )))
    };
    let mut out: Vec<Object> = SERVICES
        .iter()
        .map(|s| monitor(s.name, NS_APP, "http"))
        .collect();
    out.push(monitor(crate::services::POSTGRES, NS_DATA, "metrics"));
    out.push(monitor(crate::services::REDIS, NS_DATA, "metrics"));
    for (name, port) in [
        ("grafana", "http"),
        ("loki", "http"),
        ("jaeger", "admin"),
        (PUSHGATEWAY, "http"),
    ] {
        out.push(monitor(name, NS_MONITORING, port));
    }
    out
}

/// One PrometheusRule per rule file, its groups as the file has them.
pub fn rules(root: &Path) -> Result<Vec<Object>> {
    files(&root.join("deploy/monitoring/rules"), "yml")?
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)?;
            let spec: PrometheusRuleSpec = serde_yaml_ng::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            let name = format!("octollm-{}", stem(&path));
            Ok(Object::PrometheusRule(Box::new(cr(
                "PrometheusRule",
                MONITORING_V1,
                &name,
                NS_MONITORING,
                spec,
            ))))
        })
        .collect()
}

#[derive(Deserialize)]
struct AmFile {
    route: AmRoute,
    inhibit_rules: Vec<AmInhibit>,
    receivers: Vec<AmReceiver>,
}

#[derive(Deserialize)]
struct AmRoute {
    receiver: String,
    #[serde(default)]
    group_by: Vec<String>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    repeat_interval: Option<String>,
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default)]
    routes: Vec<AmRoute>,
}

#[derive(Deserialize)]
struct AmInhibit {
    source_matchers: Vec<String>,
    target_matchers: Vec<String>,
    equal: Vec<String>,
}

#[derive(Deserialize)]
struct AmReceiver {
    name: String,
    #[serde(default)]
    webhook_configs: Vec<AmWebhook>,
}

#[derive(Deserialize)]
struct AmWebhook {
    #[serde(default = "sends_resolved")]
    send_resolved: bool,
}

/// Alertmanager's default for a webhook.
fn sends_resolved() -> bool {
    true
}

/// `name="value"`, `name!="value"`, `name=~"re"`, `name!~"re"`.
pub fn parse_matcher(text: &str) -> Result<Matcher> {
    let at = text
        .find(['=', '!'])
        .with_context(|| format!("matcher `{text}` has no operator"))?;
    let name = text[..at].trim();
    let rest = &text[at..];
    let op = ["=~", "!~", "!=", "="]
        .into_iter()
        .find(|op| rest.starts_with(op))
        .with_context(|| format!("matcher `{text}`: unknown operator"))?;
    let value = rest[op.len()..].trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if name.is_empty() {
        bail!("matcher `{text}` has no label name");
    }
    Ok(Matcher {
        name: name.to_owned(),
        value: value.to_owned(),
        match_type: op.to_owned(),
    })
}

fn route(r: &AmRoute) -> Result<Route> {
    Ok(Route {
        receiver: r.receiver.clone(),
        group_by: r.group_by.clone(),
        group_wait: r.group_wait.clone(),
        group_interval: r.group_interval.clone(),
        repeat_interval: r.repeat_interval.clone(),
        matchers: r
            .matchers
            .iter()
            .map(|m| parse_matcher(m))
            .collect::<Result<_>>()?,
        routes: r.routes.iter().map(route).collect::<Result<_>>()?,
    })
}

/// The AlertmanagerConfig from the local routing template (normal timings).
pub fn alertmanager_config(root: &Path) -> Result<AlertmanagerConfigSpec> {
    let vars = BTreeMap::from([
        ("GROUP_WAIT", "30s".to_owned()),
        ("GROUP_INTERVAL", "5m".to_owned()),
        ("ALERT_SINK_URL", "http://unused".to_owned()),
        ("ALERT_SINK_TOKEN_FILE", "/unused".to_owned()),
    ]);
    let text =
        crate::data::render_template(root, "deploy/monitoring/alertmanager.yml.tmpl", &vars)?;
    let file: AmFile = serde_yaml_ng::from_str(&text).context("parsing alertmanager.yml.tmpl")?;
    Ok(AlertmanagerConfigSpec {
        route: route(&file.route)?,
        inhibit_rules: file
            .inhibit_rules
            .iter()
            .map(|i| {
                Ok(InhibitRule {
                    source_match: i
                        .source_matchers
                        .iter()
                        .map(|m| parse_matcher(m))
                        .collect::<Result<_>>()?,
                    target_match: i
                        .target_matchers
                        .iter()
                        .map(|m| parse_matcher(m))
                        .collect::<Result<_>>()?,
                    equal: i.equal.clone(),
                })
            })
            .collect::<Result<_>>()?,
        receivers: file
            .receivers
            .iter()
            .map(|r| Receiver {
                name: r.name.clone(),
                webhook_configs: vec![WebhookConfig {
                    url_secret: SecretKeySelector {
                        name: RECEIVERS_SECRET.to_owned(),
                        key: format!("{}-url", r.name),
                        optional: Some(false),
                    },
                    send_resolved: r.webhook_configs.iter().all(|w| w.send_resolved),
                }],
            })
            .collect(),
    })
}

fn alertmanager(root: &Path, params: &Params) -> Result<Vec<Object>> {
    let name = "alertmanager";
    Ok(vec![
        k8s_openapi::api::core::v1::ServiceAccount {
            metadata: meta(name, NS_MONITORING, labels(name, "monitoring")),
            automount_service_account_token: Some(false),
            ..Default::default()
        }
        .into(),
        Object::AlertmanagerConfig(Box::new(cr(
            "AlertmanagerConfig",
            MONITORING_V1ALPHA1,
            "octollm",
            NS_MONITORING,
            alertmanager_config(root)?,
        ))),
        Object::Alertmanager(Box::new(cr(
            "Alertmanager",
            MONITORING_V1,
            name,
            NS_MONITORING,
            AlertmanagerSpec {
                version: ALERTMANAGER_VERSION.to_owned(),
                replicas: params.monitoring_replicas,
                service_account_name: name.to_owned(),
                alertmanager_configuration: LocalObjectReference {
                    name: "octollm".to_owned(),
                },
                resources: params.size(Size::new(50, 500, 64, 256)).resources(),
                security_context: pod_security(1000),
            },
        ))),
    ])
}

/// One ConfigMap per dashboard, labelled for Grafana's sidecar.
pub fn dashboards(root: &Path) -> Result<Vec<Object>> {
    files(&root.join("deploy/monitoring/dashboards"), "json")?
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)?;
            serde_json::from_str::<serde::de::IgnoredAny>(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let file = format!("{}.json", stem(&path));
            let mut l = labels(&format!("dashboard-{}", stem(&path)), "dashboard");
            l.insert(DASHBOARD_LABEL.to_owned(), "1".to_owned());
            Ok(ConfigMap {
                metadata: meta(&format!("dashboard-{}", stem(&path)), NS_MONITORING, l),
                data: Some(BTreeMap::from([(file, text)])),
                ..ConfigMap::default()
            }
            .into())
        })
        .collect()
}

const GRAFANA_DATASOURCES: &str = "apiVersion: 1
datasources:
  - name: Prometheus
    uid: prometheus
    type: prometheus
    url: http://prometheus-operated.octollm-monitoring.svc:9090
    isDefault: true
  - name: Loki
    uid: loki
    type: loki
    url: http://loki.octollm-monitoring.svc:3100
  - name: Jaeger
    uid: jaeger
    type: jaeger
    url: http://jaeger.octollm-monitoring.svc:16686
";

fn grafana(params: &Params) -> Vec<Object> {
    let name = "grafana";
    let health = Check::Http {
        path: "/api/health",
        port: "http",
    };
    let mut main = Part::new(
        name,
        GRAFANA_IMAGE,
        params.size(Size::new(100, 1000, 128, 512)),
        health.clone(),
        health,
    );
    main.ports = vec![("http", 3000)];
    main.env = vec![
        // Grafana reads `<VAR>__FILE` settings from files: the Secret stays a file.
        env("GF_SECURITY_ADMIN_USER__FILE", "/etc/grafana/admin/user"),
        env(
            "GF_SECURITY_ADMIN_PASSWORD__FILE",
            "/etc/grafana/admin/password",
        ),
        env("GF_PATHS_DATA", "/var/lib/grafana"),
        env("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"),
        env("GF_ANALYTICS_REPORTING_ENABLED", "false"),
    ];
    main.mounts = vec![
        mount("data", "/var/lib/grafana", false),
        mount("dashboards", "/var/lib/grafana/dashboards", true),
        mount(
            "provisioning",
            "/etc/grafana/provisioning/datasources",
            true,
        ),
        mount(
            "dashboard-provider",
            "/etc/grafana/provisioning/dashboards",
            true,
        ),
    ];
    let mut sidecar = Part::new(
        "dashboards",
        GRAFANA_SIDECAR_IMAGE,
        params.size(Size::new(20, 200, 64, 128)),
        Check::Http {
            path: "/healthz",
            port: "sidecar-health",
        },
        Check::Http {
            path: "/healthz",
            port: "sidecar-health",
        },
    );
    sidecar.ports = vec![("sidecar-health", 8080)];
    sidecar.env = vec![
        env("LABEL", DASHBOARD_LABEL),
        env("LABEL_VALUE", "1"),
        env("FOLDER", "/var/lib/grafana/dashboards"),
        env("RESOURCE", "configmap"),
        env("NAMESPACE", NS_MONITORING),
        env("HEALTH_PORT", "8080"),
    ];
    sidecar.mounts = vec![mount("dashboards", "/var/lib/grafana/dashboards", false)];
    let mut app = App::new(
        name,
        NS_MONITORING,
        "monitoring",
        Kind::Deployment {
            replicas: 1,
            autoscale: None,
        },
        main,
    );
    app.containers.push(sidecar);
    app.service_ports = vec![("http", 3000)];
    app.service_labels
        .insert(JOB_LABEL.to_owned(), name.to_owned());
    app.volumes = vec![
        empty_dir("tmp"),
        empty_dir("data"),
        empty_dir("dashboards"),
        config_volume("provisioning", "grafana-datasources"),
        config_volume("dashboard-provider", "grafana-dashboard-provider"),
        crate::workload::secret_keys_volume("admin", GRAFANA_SECRET, &["user", "password"]),
    ];
    app.api_access = true;
    app.skips.push((
        "CKV_K8S_38",
        "the dashboards sidecar lists ConfigMaps through the API server".to_owned(),
    ));
    let mut out: Vec<Object> = vec![
        ConfigMap {
            metadata: meta("grafana-datasources", NS_MONITORING, labels(name, "monitoring")),
            data: Some(BTreeMap::from([("datasources.yaml".to_owned(), GRAFANA_DATASOURCES.to_owned())])),
            ..ConfigMap::default()
        }
        .into(),
        ConfigMap {
            metadata: meta("grafana-dashboard-provider", NS_MONITORING, labels(name, "monitoring")),
            data: Some(BTreeMap::from([(
                "provider.yaml".to_owned(),
                "apiVersion: 1\nproviders:\n  - name: octollm\n    type: file\n    options:\n      path: /var/lib/grafana/dashboards\n".to_owned(),
            )])),
            ..ConfigMap::default()
        }
        .into(),
        Role {
            metadata: meta(name, NS_MONITORING, labels(name, "monitoring")),
            rules: Some(vec![read_rule(&["configmaps"], &["get", "list", "watch"])]),
        }
        .into(),
        RoleBinding {
            metadata: meta(name, NS_MONITORING, labels(name, "monitoring")),
            role_ref: RoleRef { api_group: "rbac.authorization.k8s.io".to_owned(), kind: "Role".to_owned(), name: name.to_owned() },
            subjects: Some(vec![Subject { kind: "ServiceAccount".to_owned(), name: name.to_owned(), namespace: Some(NS_MONITORING.to_owned()), ..Subject::default() }]),
        }
        .into(),
    ];
    out.extend(app.objects());
    out
}

const LOKI_CONFIG: &str = "auth_enabled: false
server:
  http_listen_port: 3100
common:
  path_prefix: /var/lib/loki
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
  storage:
    filesystem:
      chunks_directory: /var/lib/loki/chunks
      rules_directory: /var/lib/loki/rules
schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
limits_config:
  retention_period: 720h
compactor:
  working_directory: /var/lib/loki/compactor
  retention_enabled: true
  delete_request_store: filesystem
";

fn loki(params: &Params) -> Vec<Object> {
    let name = "loki";
    let ready = Check::Http {
        path: "/ready",
        port: "http",
    };
    let mut main = Part::new(
        name,
        LOKI_IMAGE,
        params.size(Size::new(100, 1000, 256, 1024)),
        ready.clone(),
        ready,
    );
    main.args = vec!["-config.file=/etc/loki/loki.yaml".to_owned()];
    main.ports = vec![("http", 3100)];
    main.mounts = vec![
        mount("data", "/var/lib/loki", false),
        mount("config", "/etc/loki", true),
    ];
    let mut app = App::new(
        name,
        NS_MONITORING,
        "monitoring",
        Kind::StatefulSet {
            claims: vec![claim(
                "data",
                &params.loki_storage,
                params.storage_class.as_deref(),
            )],
        },
        main,
    );
    app.service_labels
        .insert(JOB_LABEL.to_owned(), name.to_owned());
    app.volumes = vec![empty_dir("tmp"), config_volume("config", "loki-config")];
    let mut out: Vec<Object> = vec![
        ConfigMap {
            metadata: meta("loki-config", NS_MONITORING, labels(name, "monitoring")),
            data: Some(BTreeMap::from([(
                "loki.yaml".to_owned(),
                LOKI_CONFIG.to_owned(),
            )])),
            ..ConfigMap::default()
        }
        .into(),
    ];
    out.extend(app.objects());
    out
}

/// Promtail reads the pods' log files (the services log JSON lines) and
/// lifts `level` and `trace_id` into labels/fields for Loki.
const PROMTAIL_CONFIG: &str = "server:
  http_listen_port: 3101
  grpc_listen_port: 0
positions:
  filename: /var/lib/promtail/positions.yaml
clients:
  - url: http://loki.octollm-monitoring.svc:3100/loki/api/v1/push
scrape_configs:
  - job_name: octollm-pods
    kubernetes_sd_configs:
      - role: pod
        namespaces:
          names: [octollm, octollm-data, octollm-monitoring]
    pipeline_stages:
      - cri: {}
      - json:
          expressions:
            level: level
            trace_id: trace_id
      - labels:
          level:
    relabel_configs:
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
        target_label: app
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_container_name]
        target_label: container
      - source_labels: [__meta_kubernetes_pod_uid, __meta_kubernetes_pod_container_name]
        separator: /
        target_label: __path__
        replacement: /var/log/pods/*$1/*.log
";

fn promtail(params: &Params) -> Vec<Object> {
    let name = "promtail";
    let ready = Check::Http {
        path: "/ready",
        port: "http",
    };
    let mut main = Part::new(
        name,
        PROMTAIL_IMAGE,
        params.size(Size::new(50, 500, 64, 256)),
        ready.clone(),
        ready,
    );
    main.args = vec!["-config.file=/etc/promtail/promtail.yaml".to_owned()];
    main.ports = vec![("http", 3101)];
    main.mounts = vec![
        mount("config", "/etc/promtail", true),
        mount("positions", "/var/lib/promtail", false),
        mount("pods", "/var/log/pods", true),
    ];
    let mut app = App::new(name, NS_MONITORING, "monitoring", Kind::DaemonSet, main);
    app.service_ports = Vec::new();
    app.volumes = vec![
        empty_dir("tmp"),
        empty_dir("positions"),
        config_volume("config", "promtail-config"),
        Volume {
            name: "pods".to_owned(),
            host_path: Some(HostPathVolumeSource {
                path: "/var/log/pods".to_owned(),
                type_: Some("Directory".to_owned()),
            }),
            ..Volume::default()
        },
    ];
    // Pod log files are root:root 0640: group 0 reads them without running as root.
    app.supplemental_groups = vec![0];
    app.api_access = true;
    app.skips.push((
        "CKV_K8S_38",
        "promtail discovers pods through the API server".to_owned(),
    ));
    let mut out: Vec<Object> = vec![
        ConfigMap {
            metadata: meta("promtail-config", NS_MONITORING, labels(name, "monitoring")),
            data: Some(BTreeMap::from([(
                "promtail.yaml".to_owned(),
                PROMTAIL_CONFIG.to_owned(),
            )])),
            ..ConfigMap::default()
        }
        .into(),
    ];
    out.extend(rbac_cluster(
        name,
        vec![read_rule(&["pods", "nodes"], &["get", "list", "watch"])],
    ));
    out.extend(app.objects());
    out
}

fn jaeger(params: &Params) -> Vec<Object> {
    let name = "jaeger";
    let ready = Check::Http {
        path: "/",
        port: "admin",
    };
    let mut main = Part::new(
        name,
        JAEGER_IMAGE,
        params.size(Size::new(100, 1000, 256, 1024)),
        ready.clone(),
        ready,
    );
    main.ports = vec![
        ("otlp-http", crate::services::OTLP_HTTP_PORT),
        ("query", 16686),
        ("admin", 14269),
    ];
    main.env = vec![
        env("COLLECTOR_OTLP_ENABLED", "true"),
        env("SPAN_STORAGE_TYPE", "memory"),
        env("MEMORY_MAX_TRACES", "100000"),
    ];
    let mut app = App::new(
        name,
        NS_MONITORING,
        "monitoring",
        Kind::Deployment {
            replicas: 1,
            autoscale: None,
        },
        main,
    );
    app.service_labels
        .insert(JOB_LABEL.to_owned(), name.to_owned());
    app.objects()
}

fn pushgateway(params: &Params) -> Vec<Object> {
    let mut main = Part::new(
        PUSHGATEWAY,
        PUSHGATEWAY_IMAGE,
        params.size(Size::new(20, 200, 32, 128)),
        Check::Http {
            path: "/-/healthy",
            port: "http",
        },
        Check::Http {
            path: "/-/ready",
            port: "http",
        },
    );
    main.args = vec![
        "--persistence.file=/data/metrics".to_owned(),
        "--persistence.interval=30s".to_owned(),
    ];
    main.ports = vec![("http", PUSHGATEWAY_PORT)];
    main.mounts = vec![mount("data", "/data", false)];
    let mut app = App::new(
        PUSHGATEWAY,
        NS_MONITORING,
        "monitoring",
        Kind::Deployment {
            replicas: 1,
            autoscale: None,
        },
        main,
    );
    app.service_labels
        .insert(JOB_LABEL.to_owned(), PUSHGATEWAY.to_owned());
    app.volumes = vec![empty_dir("tmp"), empty_dir("data")];
    app.objects()
}
