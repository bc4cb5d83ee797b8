//! Typed custom resources: the fields of the Prometheus Operator's
//! (`monitoring.coreos.com`) and Velero's (`velero.io`) CRDs this target
//! uses, written from their published API references. Every struct
//! serialises to the CRD's field names; unset options are left out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LocalObjectReference, PodSecurityContext, ResourceRequirements, SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// A custom resource: `apiVersion`, `kind`, metadata and a typed spec.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Custom<S> {
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: S,
}

pub const MONITORING_V1: &str = "monitoring.coreos.com/v1";
pub const MONITORING_V1ALPHA1: &str = "monitoring.coreos.com/v1alpha1";
pub const VELERO_V1: &str = "velero.io/v1";

/// `Prometheus` (monitoring.coreos.com/v1).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSpec {
    pub version: String,
    pub replicas: i32,
    pub retention: String,
    pub service_account_name: String,
    pub service_monitor_selector: LabelSelector,
    pub service_monitor_namespace_selector: LabelSelector,
    pub rule_selector: LabelSelector,
    pub rule_namespace_selector: LabelSelector,
    pub external_labels: BTreeMap<String, String>,
    pub alerting: AlertingSpec,
    pub resources: ResourceRequirements,
    pub security_context: PodSecurityContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertingSpec {
    pub alertmanagers: Vec<AlertmanagerEndpoint>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerEndpoint {
    pub namespace: String,
    pub name: String,
    pub port: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    pub volume_claim_template: EmbeddedClaim,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedClaim {
    pub spec: k8s_openapi::api::core::v1::PersistentVolumeClaimSpec,
}

/// `ServiceMonitor` (monitoring.coreos.com/v1).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// The Service label whose value becomes the `job` label.
    pub job_label: String,
    pub selector: LabelSelector,
    pub namespace_selector: NamespaceSelector,
    pub endpoints: Vec<ScrapeEndpoint>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    pub match_names: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScrapeEndpoint {
    pub port: String,
    pub path: String,
    pub interval: String,
    /// Keep the scraped series' own `job` (the Pushgateway's pushed groups).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub honor_labels: bool,
}

/// `PrometheusRule` (monitoring.coreos.com/v1); the groups are read from
/// `deploy/monitoring/rules/*.yml` with these same types.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusRuleSpec {
    pub groups: Vec<RuleGroup>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `Alertmanager` (monitoring.coreos.com/v1).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerSpec {
    pub version: String,
    pub replicas: i32,
    pub service_account_name: String,
    /// The `AlertmanagerConfig` used as the global configuration.
    pub alertmanager_configuration: LocalObjectReference,
    pub resources: ResourceRequirements,
    pub security_context: PodSecurityContext,
}

/// `AlertmanagerConfig` (monitoring.coreos.com/v1alpha1).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerConfigSpec {
    pub route: Route,
    pub inhibit_rules: Vec<InhibitRule>,
    pub receivers: Vec<Receiver>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub receiver: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<Matcher>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub name: String,
    pub value: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub match_type: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InhibitRule {
    pub source_match: Vec<Matcher>,
    pub target_match: Vec<Matcher>,
    pub equal: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receiver {
    pub name: String,
    pub webhook_configs: Vec<WebhookConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    /// The receiver's URL lives in a Secret, never in the manifest.
    pub url_secret: SecretKeySelector,
    pub send_resolved: bool,
}

/// Velero `Schedule` (velero.io/v1).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Cron expression, UTC.
    pub schedule: String,
    pub template: BackupTemplate,
    pub use_owner_references_in_backup: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupTemplate {
    pub included_namespaces: Vec<String>,
    pub snapshot_volumes: bool,
    /// Back volumes up with the node agent (file system backup).
    pub default_volumes_to_fs_backup: bool,
    pub ttl: String,
    pub storage_location: String,
}
